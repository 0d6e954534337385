//! What leaves the process as text passes through here: every known secret is masked, and
//! control characters from outside (tracker text, hook output, agent messages) are escaped so
//! they can neither forge a log line nor drive the reader's terminal.
//!
//! Secrets are registered process-wide ([`register`]): the configured ones (tracker key, server
//! token) and the values of the environment variables adapters read by default, whether or not
//! the workflow uses them. Sinks: the log writers (stderr and `--logs-root`, human and JSON,
//! through [`RedactingWriter`]), the event log, the HTTP API and dashboard, and the output of
//! every subcommand.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

/// The dashboard's token variable by convention (`symphony status` reads it).
pub const SERVER_TOKEN_VAR: &str = "SYMPHONY_TOKEN";

/// Environment variables holding credentials by convention (every tracker kind's fallback
/// variables, and [`SERVER_TOKEN_VAR`]); their values are masked wherever they appear, even
/// when the workflow names its secrets differently.
pub fn secret_env_names() -> impl Iterator<Item = &'static str> {
    crate::tracker::kinds::secret_vars().chain([SERVER_TOKEN_VAR])
}

/// Shortest value treated as a secret: masking shorter strings would mangle ordinary text.
const MIN_SECRET_CHARS: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `values` (and the values of [`secret_env_names`] in this process's environment) to
/// the masked set. Values already known, blank or shorter than 4 characters are skipped.
pub fn register(values: impl IntoIterator<Item = String>) {
    let from_env = secret_env_names().filter_map(|name| std::env::var(name).ok());
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    for value in values.into_iter().chain(from_env) {
        let value = value.trim().to_owned();
        if value.chars().count() >= MIN_SECRET_CHARS && !secrets.contains(&value) {
            secrets.push(value);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `****`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.read() else {
        return Cow::Borrowed(text);
    };
    mask_with(text, &secrets)
}

/// `text` with each of `secrets` replaced by `****`.
pub fn mask_with<'t>(text: &'t str, secrets: &[String]) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        if secret.len() >= MIN_SECRET_CHARS && out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), "****"));
        }
    }
    out
}

/// Whether any secret is registered.
pub fn any() -> bool {
    SECRETS.read().is_ok_and(|secrets| !secrets.is_empty())
}

/// Whether any registered secret occurs in `text`.
pub fn contains_secret(text: &str) -> bool {
    SECRETS
        .read()
        .is_ok_and(|secrets| secrets.iter().any(|s| text.contains(s.as_str())))
}

/// `text` with control characters written as escapes (`\n`, `\r`, `\t` by name, others as
/// `\u{1b}`), except the ones in `keep`. Safe to print on a terminal and to append to a log.
pub fn escape_controls<'t>(text: &'t str, keep: &[char]) -> Cow<'t, str> {
    if !text.chars().any(|c| is_escaped(c) && !keep.contains(&c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_escaped(c) || keep.contains(&c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push_str(&format!("\\u{{{:x}}}", u32::from(other))),
        }
    }
    Cow::Owned(out)
}

/// C0 and C1 controls, DEL, and the Unicode line and paragraph separators and bidi overrides
/// (which can make a terminal show text in another order than it is).
fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// How a [`RedactingWriter`] treats control characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controls {
    /// Escape every control character but the record's final newline (plain-text logs).
    Escape,
    /// Keep SGR colour sequences (`ESC [ ... m`, written by the formatter itself on a
    /// terminal) and escape every other control character but the final newline.
    KeepColours,
    /// Leave them (JSON logs: the encoder escapes them already).
    Keep,
}

/// A log writer: each formatted record is masked and, for human logs, escaped, then written
/// whole to `inner`.
pub struct RedactingWriter<W> {
    inner: W,
    controls: Controls,
}

impl<W> RedactingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, controls: Controls) -> Self {
        Self { inner, controls }
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole record per call; it is consumed whole, so a
        // record is never cut between two calls.
        let text = String::from_utf8_lossy(buf);
        let masked = mask(&text);
        let cleaned: Cow<'_, str> = match self.controls {
            Controls::Keep => masked,
            Controls::Escape | Controls::KeepColours => {
                let (body, newline) = match masked.strip_suffix('\n') {
                    Some(body) => (body, "\n"),
                    None => (&*masked, ""),
                };
                let escaped = if self.controls == Controls::KeepColours {
                    escape_keeping_sgr(body)
                } else {
                    escape_controls(body, &[]).into_owned()
                };
                Cow::Owned(escaped + newline)
            }
        };
        self.inner.write_all(cleaned.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// [`escape_controls`], but `ESC [ <digits and ;> m` sequences pass unchanged.
fn escape_keeping_sgr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&escape_controls(&rest[..at], &[]));
        let tail = &rest[at + 1..];
        let sgr_len = tail.strip_prefix('[').and_then(|params| {
            let end = params.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            (params[end..].starts_with('m')).then_some(end + 2)
        });
        match sgr_len {
            Some(len) => {
                out.push('\u{1b}');
                out.push_str(&tail[..len]);
                rest = &tail[len..];
            }
            None => {
                out.push_str("\\u{1b}");
                rest = tail;
            }
        }
    }
    out.push_str(&escape_controls(rest, &[]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_longest_first() {
        let secrets = vec!["abcd-efgh-1234".to_owned(), "abcd".to_owned()];
        assert_eq!(
            mask_with("key abcd-efgh-1234 and abcd", &secrets),
            "key **** and ****"
        );
        assert_eq!(mask_with("nothing here", &secrets), "nothing here");
        assert_eq!(
            mask_with("ab", &["ab".to_owned()]),
            "ab",
            "too short to mask"
        );
    }

    #[test]
    fn controls_are_escaped_so_a_line_cannot_be_forged() {
        assert_eq!(
            escape_controls(
                "GH-1\n2026-01-01T00:00:00Z INFO forged\u{1b}]0;title\u{7}",
                &[]
            ),
            "GH-1\\n2026-01-01T00:00:00Z INFO forged\\u{1b}]0;title\\u{7}"
        );
        assert_eq!(escape_controls("a\tb\nc", &['\n', '\t']), "a\tb\nc");
        assert_eq!(escape_controls("rtl\u{202e}txt", &[]), "rtl\\u{202e}txt");
    }

    #[test]
    fn colour_sequences_survive_and_others_do_not() {
        assert_eq!(
            escape_keeping_sgr("\u{1b}[2mtime\u{1b}[0m \u{1b}[32mINFO\u{1b}[0m x\u{1b}[2Jy\u{1b}"),
            "\u{1b}[2mtime\u{1b}[0m \u{1b}[32mINFO\u{1b}[0m x\\u{1b}[2Jy\\u{1b}"
        );
    }

    #[test]
    fn the_writer_masks_and_escapes_one_record_at_a_time() {
        let mut out = Vec::new();
        {
            let mut writer = RedactingWriter::new(&mut out, Controls::Escape);
            let secrets = ["s3cr3t-token-value".to_owned()];
            let line = format!(
                "WARN fetch failed: {}\nFAKE LINE\n",
                mask_with("bad key s3cr3t-token-value", &secrets)
            );
            writer.write_all(line.as_bytes()).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "WARN fetch failed: bad key ****\\nFAKE LINE\n"
        );
    }
}
