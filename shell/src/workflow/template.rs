//! The prompt template (SPEC 5.4, 12): Tera, strict, parsed once per workflow load.
//!
//! Strictness comes from the engine: an unknown variable or field in `{{ }}` fails rendering,
//! an unknown filter fails parsing. `{% if x %}` on an absent `x` is false, which is how the
//! first attempt (no `attempt` variable) reads. Liquid-only syntax is refused with a message
//! naming the construct and its Tera spelling (DEVIATIONS.md).

use std::path::{Path, PathBuf};

use symphony_core::{BlockerRef, Issue, IssueId, Timestamp};
use tera::{Context, ErrorKind, Tera};

use super::config::{HandoffConfig, PolicyMode, RepoConfig};
use super::error::{ErrorClass, Position, WorkflowError};

/// Used when the workflow body is empty (SPEC 5.4 fallback).
pub const DEFAULT_PROMPT: &str = "You are working on an issue from the configured tracker.

{{ issue.identifier }}: {{ issue.title }}
{% if issue.url %}{{ issue.url }}
{% endif %}{% if issue.description %}
{{ issue.description }}
{% endif %}";

const NAME: &str = "WORKFLOW.md";

/// A parsed prompt template, or the parse error every render reports (a template error fails
/// the attempt, not the workflow: SPEC 5.5).
#[derive(Debug)]
pub struct PromptTemplate {
    engine: Result<Tera, WorkflowError>,
    file: PathBuf,
    /// Where the body starts in the file, to report positions in file terms.
    body_at: Position,
    /// Whether the body was empty and the default prompt is in use.
    pub is_default: bool,
    /// `repo` in the template (aiops-platform's variables), from the workflow's `repo` block.
    repo: serde_json::Value,
    /// Appended to every render: the `policy` and `verify` directives, or nothing.
    directives: String,
    /// Whether tracker text goes in marked blocks behind the managed preamble.
    bounded: bool,
}

impl PromptTemplate {
    /// Parses `body` (the trimmed Markdown body, starting at `body_at` in `file`).
    pub fn new(body: &str, file: &Path, body_at: Position) -> Self {
        let is_default = body.is_empty();
        let source = if is_default { DEFAULT_PROMPT } else { body };
        let at = if is_default {
            Position { line: 1, col: 1 }
        } else {
            body_at
        };
        let engine = liquid_check(source, file, at).and_then(|()| {
            let mut tera = Tera::new();
            tera.autoescape_on(Vec::<&str>::new());
            tera.add_raw_template(NAME, source)
                .map(|()| tera)
                .map_err(|e| tera_error(&e, ErrorClass::TemplateParseError, file, at))
        });
        Self {
            engine,
            file: file.to_owned(),
            body_at: at,
            is_default,
            repo: repo_value(&RepoConfig::default()),
            directives: String::new(),
            bounded: true,
        }
    }

    /// The template with the `policy` and `verify` directives appended to what it renders.
    #[must_use]
    pub fn with_handoff(mut self, handoff: &HandoffConfig) -> Self {
        self.directives = directives(handoff);
        self.bounded = handoff.bounded_tracker_text;
        self
    }

    /// The template with `repo` taken from the workflow's `repo` block.
    #[must_use]
    pub fn with_repo(mut self, repo: &RepoConfig) -> Self {
        self.repo = repo_value(repo);
        self
    }

    /// The parse error, if the body is not a valid template.
    pub fn parse_error(&self) -> Option<&WorkflowError> {
        self.engine.as_ref().err()
    }

    /// What `check`, startup and reload all require: the template parses and renders for
    /// [`sample_issue`] as a first run and as a retry (strict variables fail only when
    /// rendering, so parsing alone would let `{{ issue.titel }}` through). The longer of the
    /// two renderings' line counts on success.
    pub fn validate(&self) -> Result<usize, WorkflowError> {
        if let Some(error) = self.parse_error() {
            return Err(error.clone());
        }
        let issue = sample_issue();
        let mut lines = 0;
        for attempt in [None, Some(2)] {
            lines = lines.max(self.render(&issue, attempt)?.lines().count());
        }
        Ok(lines)
    }

    /// Renders for `issue`; `attempt` is absent on the first run and 1-based afterwards.
    pub fn render(&self, issue: &Issue, attempt: Option<u32>) -> Result<String, WorkflowError> {
        let tera = self.engine.as_ref().map_err(Clone::clone)?;
        let mut context = Context::new();
        let bounded;
        let issue = if self.bounded {
            bounded = super::untrusted::bound_issue(issue);
            &bounded
        } else {
            issue
        };
        context.insert("issue", &issue_value(issue));
        // aiops-platform's names for the same facts.
        context.insert("task", &task_value(issue));
        context.insert("repo", &self.repo);
        if let Some(attempt) = attempt {
            context.insert("attempt", &attempt);
        }
        let mut out = Capped(Vec::new());
        match tera.render_to(NAME, &context, &mut out) {
            Ok(()) => {
                let body = String::from_utf8_lossy(&out.0);
                let mut text = String::with_capacity(body.len() + 1024);
                if self.bounded {
                    text.push_str(super::untrusted::PREAMBLE);
                }
                text.push_str(&body);
                text.push_str(&self.directives);
                Ok(text)
            }
            Err(_) if out.0.len() > MAX_PROMPT_BYTES => Err(WorkflowError::new(
                ErrorClass::TemplateRenderError,
                &self.file,
                format!(
                    "the rendered prompt is larger than {MAX_PROMPT_BYTES} bytes; rendering \
                     stopped there"
                ),
            )
            .at(Some(self.body_at))),
            Err(e) => Err(tera_error(
                &e,
                ErrorClass::TemplateRenderError,
                &self.file,
                self.body_at,
            )),
        }
    }
}

/// Largest prompt rendered.
pub(crate) const MAX_PROMPT_BYTES: usize = 1024 * 1024;

/// A render buffer that fails the write that would take it past [`MAX_PROMPT_BYTES`] (keeping
/// one byte more, so the caller can tell this failure from others), which stops rendering.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_PROMPT_BYTES {
            let room = MAX_PROMPT_BYTES + 1 - self.0.len().min(MAX_PROMPT_BYTES);
            self.0.extend_from_slice(&buf[..room.min(buf.len())]);
            return Err(std::io::Error::other("the prompt is too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An issue with every field set, for checking that a template renders (`symphony check`),
/// fuzzing and benches.
pub fn sample_issue() -> Issue {
    Issue {
        id: IssueId("sample-issue-id".into()),
        identifier: "SAMPLE-1".into(),
        title: "Sample issue for `symphony check`".into(),
        description: Some("A description.".into()),
        priority: Some(2),
        state: "Todo".into(),
        branch_name: Some("sample-1".into()),
        url: Some("https://tracker.invalid/SAMPLE-1".into()),
        assignee_id: Some("sample-user".into()),
        labels: vec!["sample".into(), "backend".into()],
        blocked_by: vec![BlockerRef {
            id: Some("sample-blocker-id".into()),
            identifier: Some("SAMPLE-0".into()),
            state: Some("Done".into()),
        }],
        created_at: Some(Timestamp(1_767_225_600_000)),
        updated_at: Some(Timestamp(1_767_225_600_000)),
        dispatchable: true,
        ..Issue::default()
    }
}

/// The `issue` variable: every normalised field, keys as strings, lists kept as lists
/// (SPEC 12.2). Timestamps are RFC 3339 strings.
fn issue_value(issue: &Issue) -> serde_json::Value {
    serde_json::to_value(issue).unwrap_or(serde_json::Value::Null)
}

/// `task` (aiops-platform): the issue's identifier, title, description and actor (the
/// assignee, when the tracker says; else empty).
fn task_value(issue: &Issue) -> serde_json::Value {
    serde_json::json!({
        "id": issue.identifier,
        "title": issue.title,
        "description": issue.description.clone().unwrap_or_default(),
        "actor": issue.assignee_id.clone().unwrap_or_default(),
    })
}

/// The directives `policy.mode` and `verify.commands` add at the end of the prompt: the
/// agent's own contract before it hands off (aiops-platform's behaviour, our words).
fn directives(handoff: &HandoffConfig) -> String {
    let mut out = String::new();
    if handoff.mode == PolicyMode::AnalysisOnly {
        out.push_str(
            "\n\n**This run is analysis only.** Read, run and investigate as you need, but change \
             no file in the repository, push nothing and open no pull request. Report what you \
             found on the issue.\n",
        );
    }
    if !handoff.verify_commands.is_empty() {
        out.push_str(
            "\n\n**Before you hand off, verify.** Run each of these in the workspace and hand \
             off only when all of them pass; fix what fails first:\n",
        );
        for command in &handoff.verify_commands {
            out.push_str(&format!("- `{command}`\n"));
        }
    }
    out
}

/// `repo` (aiops-platform): owner, name and branch (the default branch); unset ones are empty
/// strings, so a template naming them renders. The clone URL stays out: it may carry a
/// credential.
fn repo_value(repo: &RepoConfig) -> serde_json::Value {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    serde_json::json!({
        "owner": text(&repo.owner),
        "name": text(&repo.name),
        "branch": text(&repo.default_branch),
        "default_branch": text(&repo.default_branch),
    })
}

/// A body position (1-based line and 0-based column from Tera) in file terms.
fn file_position(body_at: Position, line: usize, col0: usize) -> Position {
    if line <= 1 {
        Position {
            line: body_at.line,
            col: body_at.col + col0,
        }
    } else {
        Position {
            line: body_at.line + line - 1,
            col: col0 + 1,
        }
    }
}

fn tera_error(
    error: &tera::Error,
    class: ErrorClass,
    file: &Path,
    body_at: Position,
) -> WorkflowError {
    let (message, at) = match error.kind() {
        ErrorKind::SyntaxError(report) | ErrorKind::RenderingError(report) => {
            let span = report.span();
            (
                report.message().to_owned(),
                Some(file_position(body_at, span.start_line, span.start_col)),
            )
        }
        _ => (error.to_string(), None),
    };
    WorkflowError::new(class, file, message).at(at)
}

/// Liquid constructs Tera does not have, with how to write them in Tera.
fn liquid_tag_hint(tag: &str) -> Option<&'static str> {
    Some(match tag {
        "elsif" => "write `{% elif ... %}`",
        "unless" => "write `{% if not ... %}`",
        "endunless" => "close it with `{% endif %}` after `{% if not ... %}`",
        "assign" => "write `{% set name = value %}`",
        "capture" | "endcapture" => "write `{% set name %}...{% endset %}`",
        "case" | "when" | "endcase" => "write `{% if %}` / `{% elif %}` chains",
        "comment" | "endcomment" => "write a Tera comment `{# ... #}`",
        "increment" | "decrement" | "cycle" | "tablerow" | "endtablerow" | "liquid" | "echo"
        | "render" => "Tera has no such tag",
        _ => return None,
    })
}

/// Liquid filters whose Tera equivalent has another name.
fn liquid_filter_hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "downcase" => "lower",
        "upcase" => "upper",
        "strip" => "trim",
        "lstrip" => "trim_start",
        "rstrip" => "trim_end",
        "size" => "length",
        "escape" => "escape",
        _ => return None,
    })
}

/// Refuses Liquid-only syntax before Tera sees it, so the message says what to write instead
/// of a bare syntax error, and the constructs that let a template's work grow without bound
/// (nested loops, `set` inside a loop, components). Text inside `{% raw %}` blocks is not
/// examined.
fn liquid_check(source: &str, file: &Path, body_at: Position) -> Result<(), WorkflowError> {
    let refuse = |offset: usize, message: String| {
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let col0 = before.rsplit('\n').next().map_or(0, |s| s.chars().count());
        WorkflowError::new(ErrorClass::TemplateParseError, file, message)
            .at(Some(file_position(body_at, line, col0)))
    };
    let mut rest = 0;
    let mut in_raw = false;
    let mut loops = 0usize;
    while let Some(found) = source[rest..].find('{') {
        let start = rest + found;
        let open = source.get(start..start + 2);
        let close = match open {
            Some("{%") => "%}",
            Some("{{") => "}}",
            _ => {
                rest = start + 1;
                continue;
            }
        };
        let Some(len) = source[start + 2..].find(close) else {
            break; // Tera reports the unclosed tag with its position.
        };
        let inner = source[start + 2..start + 2 + len].trim_matches('-').trim();
        rest = start + 2 + len + 2;
        if close == "%}" {
            let tag = inner.split_whitespace().next().unwrap_or("");
            match tag {
                "raw" => in_raw = true,
                "endraw" => in_raw = false,
                _ if in_raw => {}
                // Bounds on the work a template can ask for (issue data sizes the loops).
                "for" if loops > 0 => {
                    return Err(refuse(
                        start,
                        "loops may not nest in a prompt template (a loop inside a loop can \
                         run for hours on a large issue); use one level of `for`"
                            .to_owned(),
                    ));
                }
                "for" => loops += 1,
                "endfor" => loops = loops.saturating_sub(1),
                "set" | "set_global" if loops > 0 => {
                    return Err(refuse(
                        start,
                        format!(
                            "`{{% {tag} %}}` inside a loop is not allowed in a prompt template \
                             (a value rebuilt on every pass can grow without bound)"
                        ),
                    ));
                }
                "component" => {
                    return Err(refuse(
                        start,
                        "components are not supported in prompt templates".to_owned(),
                    ));
                }
                _ => {
                    if let Some(hint) = liquid_tag_hint(tag) {
                        return Err(refuse(
                            start,
                            format!("Liquid tag `{{% {tag} %}}` is not Tera syntax; {hint}"),
                        ));
                    }
                }
            }
            if in_raw {
                continue;
            }
        } else if in_raw {
            continue;
        }
        if inner.contains("forloop.") {
            return Err(refuse(
                start,
                "Liquid's `forloop.` is not Tera syntax; write `loop.index`, `loop.first`, ..."
                    .to_owned(),
            ));
        }
        // Filters: `| name` optionally followed by Liquid's `: args`.
        for segment in inner.split('|').skip(1) {
            let segment = segment.trim_start();
            let name: String = segment
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() {
                continue;
            }
            let after = segment[name.len()..].trim_start();
            if let Some(args) = after.strip_prefix(':') {
                let args = args.trim();
                let example = match name.as_str() {
                    "default" => format!("default(value={args})"),
                    "join" => format!("join(sep={args})"),
                    "split" => format!("split(pat={args})"),
                    "truncate" => format!("truncate(length={args})"),
                    "date" => format!("date(format={args})"),
                    _ => format!("{name}(name=value, ...)"),
                };
                return Err(refuse(
                    start,
                    format!(
                        "Liquid filter arguments `{name}: {args}` are not Tera syntax; \
                         write `{example}`"
                    ),
                ));
            }
            if let Some(tera_name) = liquid_filter_hint(&name).filter(|t| *t != name) {
                return Err(refuse(
                    start,
                    format!("Liquid filter `{name}` is called `{tera_name}` in Tera"),
                ));
            }
        }
    }
    Ok(())
}
