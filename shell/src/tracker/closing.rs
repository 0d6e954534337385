//! Closing references in pull-request text (`fixes #12`, `closes owner/name#12`, an issue
//! URL), shared by the trackers whose open-pull-request claim skip reads them (GitHub, Gitea).
//! GitHub's keywords; Gitea accepts the same ones.

/// The closing keywords (case does not matter).
const CLOSING_KEYWORDS: [&str; 9] = [
    "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
];

/// Numbers of `repo`'s issues that `text` closes: a closing keyword (optionally followed by
/// `:`), then `#N`, `owner/name#N` naming `repo`, or a URL ending `/owner/name/issues/N`.
pub fn closing_references(text: &str, repo: &str) -> Vec<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut numbers = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0]
            .trim_start_matches(['(', '[', '*', '_'])
            .trim_end_matches(':')
            .to_ascii_lowercase();
        if !CLOSING_KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        let target = pair[1].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?', '*', '_']);
        let number = if let Some(n) = target.strip_prefix('#') {
            n.parse().ok()
        } else if let Some((name, n)) = target.split_once('#') {
            name.eq_ignore_ascii_case(repo)
                .then(|| n.parse().ok())
                .flatten()
        } else if target.starts_with("https://") || target.starts_with("http://") {
            target
                .rsplit_once("/issues/")
                .filter(|(head, _)| {
                    // `get` on both sides of the cut: a cut inside a multi-byte character
                    // (`https://€€€/issues/1`) is no match, never a panic.
                    let cut = head.len().saturating_sub(repo.len());
                    cut > 0
                        && head
                            .get(cut..)
                            .is_some_and(|r| r.eq_ignore_ascii_case(repo))
                        && head.get(..cut).is_some_and(|h| h.ends_with('/'))
                })
                .and_then(|(_, n)| n.parse().ok())
        } else {
            None
        };
        if let Some(number) = number
            && !numbers.contains(&number)
        {
            numbers.push(number);
        }
    }
    numbers
}
