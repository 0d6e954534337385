//! The one scope check every provider-native tool goes through before a request leaves with
//! the daemon's credentials (SPEC 11.5, 15.3).
//!
//! An agent names a path; the daemon joins it to the provider's base URL. The check runs on the
//! URL that will actually be sent (parsed and normalised by the same library the HTTP client
//! uses), and compares it segment by segment with the allowed prefix. Before that, anything a
//! URL library might decode or reinterpret into a path separator or a dot segment is refused
//! outright: percent-encoded `.`, `/` and `\`, raw backslashes, `.`/`..` segments, empty
//! segments, fragments and anything that is not an absolute path.

use reqwest::Url;

/// Longest path (with its query) a tool may name.
pub const MAX_TOOL_PATH_BYTES: usize = 2048;

/// Why a tool's path was refused. The message names the path and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError(pub String);

impl std::fmt::Display for ScopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Joins `path` (an absolute path, optionally with a `?query`) to `base` and returns the URL
/// to send, but only when that URL stays on `base`'s origin and its path lies at or under
/// `base`'s path followed by the `scope` segments (for GitHub: `["repos", owner, name]`).
pub fn scoped_url(base: &str, scope: &[&str], path: &str) -> Result<Url, ScopeError> {
    let refuse = |why: &str| {
        let shown: String = path.chars().take(200).collect();
        Err(ScopeError(format!(
            "path {shown:?} refused: {why}; only paths under /{} are allowed",
            scope.join("/")
        )))
    };
    if path.len() > MAX_TOOL_PATH_BYTES {
        return refuse("longer than 2048 bytes");
    }
    if !path.starts_with('/') || path.starts_with("//") {
        return refuse("not an absolute path on the API host");
    }
    if path
        .chars()
        .any(|c| c.is_control() || c == '\\' || c == '#')
    {
        return refuse("control characters, backslashes and fragments are not allowed");
    }
    if let Some(encoded) = encoded_separator(path) {
        return refuse(&format!("percent-encoded {encoded:?} is not allowed"));
    }
    let (raw_path, _query) = path.split_once('?').unwrap_or((path, ""));
    let requested: Vec<&str> = raw_path[1..].split('/').collect();
    if requested
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i + 1 < requested.len()))
    {
        return refuse("dot segments and empty segments are not allowed");
    }

    let Ok(base_url) = Url::parse(base) else {
        return refuse("the provider's base URL does not parse");
    };
    let joined = format!("{}{path}", base.trim_end_matches('/'));
    let Ok(url) = Url::parse(&joined) else {
        return refuse("it does not form a valid URL");
    };
    if url.origin() != base_url.origin() || url.fragment().is_some() {
        return refuse("it leaves the provider's host");
    }
    // What will be sent, segment by segment, against the base path plus the scope.
    let sent: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let mut allowed: Vec<&str> = base_url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    allowed.extend(scope.iter().copied());
    let inside = sent.len() >= allowed.len()
        && sent
            .iter()
            .zip(&allowed)
            .all(|(sent, allowed)| sent.eq_ignore_ascii_case(allowed))
        && sent[allowed.len()..]
            .iter()
            .all(|s| *s != "." && *s != ".." && encoded_separator(s).is_none());
    if !inside {
        return refuse("it does not stay under the allowed prefix");
    }
    Ok(url)
}

/// The first percent-encoded `.`, `/` or `\` in `text` (in any case), or a `%` that does not
/// start a valid escape (which a lenient decoder might read some other way).
fn encoded_separator(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|b| *b == b'%') {
        let at = i + offset;
        let Some(escape) = text.get(at..at + 3) else {
            return Some(&text[at..]);
        };
        let hex = &escape[1..];
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(escape);
        }
        if ["2e", "2f", "5c", "25"].contains(&hex.to_ascii_lowercase().as_str()) {
            return Some(escape);
        }
        i = at + 3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://api.github.com";
    const SCOPE: [&str; 3] = ["repos", "acme", "app"];

    fn allowed(path: &str) -> bool {
        scoped_url(BASE, &SCOPE, path).is_ok()
    }

    #[test]
    fn paths_under_the_repository_pass_and_keep_their_query() {
        let url = scoped_url(BASE, &SCOPE, "/repos/acme/app/issues/1/comments?per_page=5").unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.github.com/repos/acme/app/issues/1/comments?per_page=5"
        );
        assert!(allowed("/repos/acme/app"));
        assert!(allowed("/repos/acme/app/"));
        assert!(allowed("/repos/acme/app/contents/a%20b.txt"));
    }

    #[test]
    fn encoded_dots_slashes_and_traversal_are_refused() {
        for path in [
            "/repos/acme/app/%2e%2e/%2e%2e/%2e%2e/user/repos",
            "/repos/acme/app/%2E%2E/other-repo/contents/secret.txt",
            "/repos/acme/app/..%2fother",
            "/repos/acme/app/%252e%252e/x",
            "/repos/acme/app/../other",
            "/repos/acme/app/./x",
            "/repos/acme/app\\..\\other",
            "/repos/acme/app2",
            "/repos/acme/app-evil/x",
            "/repos/acme",
            "//evil.example/repos/acme/app",
            "repos/acme/app",
            "/repos/acme/app/x#frag",
            "/repos/acme/app/%zz",
            "/repos/acme/app/%",
            "/repos/acme//app/x",
            "/repos/acme/app/\u{0}",
        ] {
            let err = scoped_url(BASE, &SCOPE, path).expect_err(path);
            assert!(err.0.contains("only paths under /repos/acme/app"), "{err}");
        }
    }

    #[test]
    fn a_base_path_is_part_of_the_prefix() {
        let base = "http://127.0.0.1:9/api/v3";
        assert!(scoped_url(base, &SCOPE, "/repos/acme/app/issues").is_ok());
        assert!(scoped_url(base, &SCOPE, "/../repos/acme/app/issues").is_err());
    }

    /// A server that decodes percent escapes again and again and then resolves dot segments:
    /// the most lenient reading any hop between us and the API could make.
    fn lenient_server_path(url: &Url) -> Vec<String> {
        let mut path = url.path().to_owned();
        loop {
            let decoded = percent_decode(&path);
            if decoded == path {
                break;
            }
            path = decoded;
        }
        let mut out: Vec<String> = Vec::new();
        for segment in path.replace('\\', "/").split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s.to_owned()),
            }
        }
        out
    }

    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && let Some(hex) = text.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    proptest::proptest! {
        #[test]
        fn no_accepted_path_leaves_the_repository(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "repos", "acme", "app", "other", "user", "", ".", "..", "%2e", "%2E", "%2e%2e",
                    "%2E%2e", ".%2e", "%2f", "%2F", "%5c", "%5C", "%25", "%252e", "\\", "%",
                    "%2", "a%20b", "?x=..", "#", "..;", "%c0%ae", "\u{ff0e}\u{ff0e}",
                ]),
                0..10,
            ),
            prefix in 0usize..4,
        ) {
            let head = ["", "/repos", "/repos/acme", "/repos/acme/app"][prefix];
            let path = format!("{head}/{}", pieces.join("/"));
            if let Ok(url) = scoped_url(BASE, &SCOPE, &path) {
                proptest::prop_assert_eq!(url.host_str(), Some("api.github.com"));
                let seen = lenient_server_path(&url);
                proptest::prop_assert!(
                    seen.len() >= 3 && seen[..3] == ["repos", "acme", "app"],
                    "{} reached {:?}", path, seen
                );
            }
        }
    }
}
