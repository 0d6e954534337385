//! Closing references in pull-request text (`fixes #12`, `closes owner/name#12`, an issue
//! URL), shared by the trackers whose open-pull-request claim skip reads them: GitHub's
//! keywords (Gitea accepts the same ones), and GitLab's default closing pattern, which adds the
//! `-ing` forms and `implement`, and writes issue URLs as `/group/project/-/issues/N`.

/// GitHub's closing keywords (case does not matter).
const CLOSING_KEYWORDS: [&str; 9] = [
    "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
];

/// GitLab's default closing keywords.
const GITLAB_CLOSING_KEYWORDS: [&str; 16] = [
    "close",
    "closes",
    "closed",
    "closing",
    "fix",
    "fixes",
    "fixed",
    "fixing",
    "resolve",
    "resolves",
    "resolved",
    "resolving",
    "implement",
    "implements",
    "implemented",
    "implementing",
];

/// Numbers of `repo`'s issues that `text` closes: a closing keyword (optionally followed by
/// `:`), then `#N`, `owner/name#N` naming `repo`, or a URL ending `/owner/name/issues/N`.
pub fn closing_references(text: &str, repo: &str) -> Vec<u64> {
    references(text, repo, &CLOSING_KEYWORDS)
}

/// [`closing_references`] by GitLab's rules: its keywords, and `/-/issues/N` URLs too.
/// `project` is the project's full path (`group/sub/project`).
pub fn gitlab_closing_references(text: &str, project: &str) -> Vec<u64> {
    references(text, project, &GITLAB_CLOSING_KEYWORDS)
}

fn references(text: &str, repo: &str, keywords: &[&str]) -> Vec<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut numbers = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0]
            .trim_start_matches(['(', '[', '*', '_'])
            .trim_end_matches(':')
            .to_ascii_lowercase();
        if !keywords.contains(&keyword.as_str()) {
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
                .map(|(head, n)| (head.strip_suffix("/-").unwrap_or(head), n))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_keywords_and_urls_name_issues_of_this_project_only() {
        let project = "acme/platform/app";
        assert_eq!(
            gitlab_closing_references(
                "Implements #4, closing acme/platform/app#5 and fixing \
                 https://gitlab.example.com/acme/platform/app/-/issues/6.",
                project
            ),
            [4, 5, 6]
        );
        assert!(
            gitlab_closing_references(
                "closes acme/platform/other#7, see #8, fixes https://gitlab.example.com/acme/app/-/issues/9",
                project
            )
            .is_empty()
        );
        // GitHub's rules stay GitHub's: no `implements`.
        assert!(closing_references("implements #3", "acme/app").is_empty());
    }
}
