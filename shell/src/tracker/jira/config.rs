//! `tracker.provider` for `kind: jira`, and its row in the kinds table.

use serde::Serialize;

use super::JiraTracker;
use crate::tracker::Tracker;
use crate::tracker::kinds::{Kind, ProviderSettings, Settings};
use crate::workflow::{ErrorClass, Secret, SectionKeys, TrackerConfig, WorkflowError};

/// The kinds-table row.
pub(crate) static KIND: Kind = Kind {
    name: "jira",
    provider_keys: &[
        "base_url",
        "email",
        "api_token",
        "project_key",
        "page_size",
        "pagination_max_pages",
        "timeout_ms",
    ],
    legacy_aliases: &[],
    // Only statuses every Jira site has: a JQL naming a status the site does not know is
    // refused whole (the adapter also leaves out names the project does not use).
    default_terminal_states: &["Done"],
    secret_vars: &[TOKEN_VAR],
    remote: true,
    read,
};

/// Where the API token is read when the workflow names no variable.
pub(crate) const TOKEN_VAR: &str = "JIRA_API_TOKEN";
/// Where the site URL is read when the workflow names none.
const URL_VAR: &str = "JIRA_BASE_URL";
/// Where the account's email is read when the workflow names none.
const EMAIL_VAR: &str = "JIRA_EMAIL";

/// `tracker.provider` for `kind: jira`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JiraSettings {
    /// The site, `https://your-domain.atlassian.net`; the API is under `/rest/api/3`.
    /// Fallback: `$JIRA_BASE_URL`.
    pub base_url: String,
    /// The account the token belongs to. Fallback: `$JIRA_EMAIL`.
    pub email: String,
    /// API token, sent with the email as HTTP Basic credentials. Fallback: `$JIRA_API_TOKEN`.
    pub api_token: Secret,
    /// The project's key (`ENG`), uppercase.
    pub project_key: String,
    /// Issues per search page (`maxResults`).
    pub page_size: u32,
    /// Search pages read per listing at most; more fails the listing.
    pub pagination_max_pages: u32,
    /// Per-request timeout.
    pub timeout_ms: u64,
}

impl JiraSettings {
    /// The `Authorization` header value: `Basic base64(email:token)`.
    pub(crate) fn authorization(&self) -> String {
        let pair = format!("{}:{}", self.email, self.api_token.expose());
        format!("Basic {}", base64(pair.as_bytes()))
    }
}

/// Whether `key` is a Jira project key: an ASCII letter, then letters, digits or `_`.
pub(crate) fn is_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 255
}

fn read(keys: &mut SectionKeys<'_, '_>) -> Result<ProviderSettings, WorkflowError> {
    let base_url = match keys.string("base_url", None)? {
        Some(url) => url,
        None => keys.from_env("base_url", URL_VAR).ok_or_else(|| {
            keys.missing(
                ErrorClass::MissingTrackerProject,
                format!(
                    "tracker.provider.base_url is required for kind jira (the site, \
                     https://your-domain.atlassian.net), or export {URL_VAR}"
                ),
            )
        })?,
    };
    let base_url = base_url.trim().trim_end_matches('/').to_owned();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(keys.invalid("base_url", "an http:// or https:// URL", &base_url));
    }
    let email = match keys.string("email", None)? {
        Some(email) => email,
        None => keys.from_env("email", EMAIL_VAR).ok_or_else(|| {
            keys.missing(
                ErrorClass::MissingTrackerApiKey,
                format!(
                    "tracker.provider.email is required for kind jira (the account the API \
                     token belongs to), or export {EMAIL_VAR}"
                ),
            )
        })?,
    };
    let email = email.trim().to_owned();
    if email.is_empty() || email.contains(':') || email.chars().any(char::is_control) {
        return Err(keys.invalid("email", "an email address without `:`", &email));
    }
    let api_token = keys.secret("api_token", TOKEN_VAR)?;
    let Some(project_key) = keys.string("project_key", None)? else {
        return Err(keys.missing(
            ErrorClass::MissingTrackerProject,
            "tracker.provider.project_key is required for kind jira (the project's key, \
             such as ENG)",
        ));
    };
    let project_key = project_key.trim().to_ascii_uppercase();
    if !is_project_key(&project_key) {
        return Err(keys.invalid(
            "project_key",
            "a Jira project key (a letter, then letters, digits or _)",
            &project_key,
        ));
    }
    let page_size = keys.int("page_size", 50, 1..=100)? as u32;
    let pagination_max_pages = keys.int("pagination_max_pages", 100, 1..=10_000)? as u32;
    let timeout_ms = keys.int("timeout_ms", 30_000, 1..=600_000)? as u64;
    Ok(ProviderSettings::new(JiraSettings {
        base_url,
        email,
        api_token,
        project_key,
        page_size,
        pagination_max_pages,
        timeout_ms,
    }))
}

impl Settings for JiraSettings {
    fn target(&self) -> String {
        format!("project {} on {}", self.project_key, self.base_url)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.api_token]
    }

    /// The Basic credentials as sent: a server that echoes the header would otherwise show
    /// the token, base64-encoded.
    fn derived_secrets(&self) -> Vec<String> {
        let header = self.authorization();
        let encoded = header.trim_start_matches("Basic ").to_owned();
        vec![encoded]
    }

    fn build(&self, tracker: &TrackerConfig) -> Result<Box<dyn Tracker>, String> {
        Ok(Box::new(JiraTracker::new(self, &tracker.terminal_states)?))
    }
}

/// Standard base64 with padding (RFC 4648 section 4), for the Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn project_keys_are_a_letter_then_letters_digits_or_underscores() {
        for good in ["ENG", "A", "AB_12"] {
            assert!(is_project_key(good), "{good}");
        }
        for bad in ["", "1AB", "EN G", "EN-G", "ÉNG", "ENG\"", "ENG)"] {
            assert!(!is_project_key(bad), "{bad}");
        }
    }
}
