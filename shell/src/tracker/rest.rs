//! The request plumbing of the REST adapters that came after Gitea (Jira, GitLab): one way to
//! send a request, turn a failed status into a typed [`TrackerError`], read a capped JSON
//! body and keep the rate-limit headroom the provider reports.

use std::sync::Mutex;

use serde_json::Value;
use symphony_core::{TrackerError, TrackerErrorCategory};

use super::{RateLimit, error};

/// A provider's REST API as an adapter talks to it.
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    /// The provider's name in messages ("Jira").
    pub(crate) what: &'static str,
    /// Appended to 401 and 403 errors: where the credential comes from.
    pub(crate) auth_hint: String,
    /// Appended to 404 errors that are not an expected absence: which settings name the scope.
    pub(crate) scope_hint: String,
    /// The headroom the last answer reported.
    rate: Mutex<Option<RateLimit>>,
}

impl Api {
    pub(crate) fn new(
        timeout: std::time::Duration,
        what: &'static str,
        auth_hint: String,
        scope_hint: String,
    ) -> Result<Self, String> {
        Ok(Self {
            client: super::http_client(timeout)?,
            what,
            auth_hint,
            scope_hint,
            rate: Mutex::new(None),
        })
    }

    /// Sends `request`. A failed status is a typed error, except 404 when `missing_ok`
    /// (`Ok(None)`: the thing asked for is not there).
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        missing_ok: bool,
    ) -> Result<Option<reqwest::Response>, TrackerError> {
        let response = request.send().await.map_err(|e| {
            error(
                TrackerErrorCategory::TrackerRequest,
                format!("{} request failed: {e}", self.what),
            )
        })?;
        if let Some(rate) = RateLimit::from_headers(response.headers())
            && let Ok(mut kept) = self.rate.lock()
        {
            *kept = Some(rate);
        }
        let status = response.status();
        if status.is_success() {
            return Ok(Some(response));
        }
        if missing_ok && status.as_u16() == 404 {
            return Ok(None);
        }
        Err(self.failure(response).await)
    }

    /// [`Self::send`], then the body as JSON (capped; an empty body is `Null`).
    pub(crate) async fn json(
        &self,
        request: reqwest::RequestBuilder,
        missing_ok: bool,
    ) -> Result<Option<Value>, TrackerError> {
        let Some(response) = self.send(request, missing_ok).await? else {
            return Ok(None);
        };
        self.body(response).await.map(Some)
    }

    /// A successful answer's body as JSON (capped; an empty body is `Null`).
    pub(crate) async fn body(&self, response: reqwest::Response) -> Result<Value, TrackerError> {
        let bytes = super::body_capped(response, super::MAX_RESPONSE_BYTES, self.what).await?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                error(
                    TrackerErrorCategory::TrackerResponse,
                    format!("{} sent a body that is not JSON: {e}", self.what),
                )
            })?
        };
        Ok(body)
    }

    /// Sends an agent tool's request: the answer's text (at most
    /// [`super::MAX_TOOL_RESPONSE_BYTES`]), or the error's message.
    pub(crate) async fn tool_answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<String, String> {
        let Some(response) = (self.send(request, false).await).map_err(|e| e.message)? else {
            return Err(format!("{} answered 404", self.what));
        };
        let body = super::body_capped(response, super::MAX_TOOL_RESPONSE_BYTES, self.what)
            .await
            .map_err(|e| e.message)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// The typed error for a failed answer. A 400's own explanation is kept (a query the
    /// provider refused says why), shortened; other bodies are not read.
    async fn failure(&self, response: reqwest::Response) -> TrackerError {
        let status = response.status();
        let header = |name: &str| {
            let value = response.headers().get(name)?;
            value.to_str().ok().map(str::to_owned)
        };
        let (category, detail) = match status.as_u16() {
            401 | 403 => (TrackerErrorCategory::TrackerAuth, self.auth_hint.clone()),
            404 => (TrackerErrorCategory::TrackerStatus, self.scope_hint.clone()),
            429 => (
                TrackerErrorCategory::TrackerRateLimited,
                match header("retry-after") {
                    Some(seconds) => format!(": retry after {seconds} s"),
                    None => ": retry later".to_owned(),
                },
            ),
            400 | 422 => {
                let body = super::body_capped(response, 64 * 1024, self.what).await;
                let said = body.ok().and_then(|b| explanation(&b)).unwrap_or_default();
                (TrackerErrorCategory::TrackerStatus, said)
            }
            _ => (TrackerErrorCategory::TrackerStatus, String::new()),
        };
        error(
            category,
            format!("{} answered HTTP {status}{detail}", self.what),
        )
    }

    /// The rate-limit headroom the last answer reported.
    pub(crate) fn rate_limit(&self) -> Option<RateLimit> {
        self.rate.lock().ok().and_then(|r| *r)
    }
}

/// An agent tool's `method` argument (`GET` when absent, any case), when it is one of
/// `allowed`.
pub(crate) fn tool_method(arguments: &Value, allowed: &[&str]) -> Result<reqwest::Method, String> {
    let method = arguments["method"].as_str().unwrap_or("GET").to_uppercase();
    if !allowed.contains(&method.as_str()) {
        return Err(format!(
            "method {method} is not allowed (one of: {})",
            allowed.join(", ")
        ));
    }
    reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())
}

/// What a refusal body says, as `: <text>` (at most 300 characters, one line): Jira's
/// `errorMessages` and `errors`, GitLab's `message` and `error`.
fn explanation(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut parts: Vec<String> = Vec::new();
    for message in value["errorMessages"].as_array().into_iter().flatten() {
        parts.extend(message.as_str().map(str::to_owned));
    }
    for (field, message) in value["errors"].as_object().into_iter().flatten() {
        parts.extend(message.as_str().map(|m| format!("{field}: {m}")));
    }
    for key in ["message", "error"] {
        match &value[key] {
            Value::String(text) => parts.push(text.clone()),
            Value::Null => {}
            other => parts.push(other.to_string()),
        }
    }
    let text: String = parts.join("; ").chars().take(300).collect();
    let text = text.replace(['\n', '\r'], " ");
    (!text.trim().is_empty()).then(|| format!(": {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_methods_are_checked_against_the_allowed_list() {
        let allowed = ["GET", "POST"];
        let method = |v: Value| tool_method(&serde_json::json!({"method": v}), &allowed);
        assert_eq!(method("post".into()).unwrap(), reqwest::Method::POST);
        assert_eq!(
            tool_method(&serde_json::json!({}), &allowed).unwrap(),
            reqwest::Method::GET
        );
        assert!(
            method("DELETE".into())
                .unwrap_err()
                .contains("one of: GET, POST")
        );
        assert!(method("G\u{0}ET".into()).is_err());
    }

    #[test]
    fn refusal_bodies_are_explained_in_one_short_line() {
        let jira = br#"{"errorMessages":["The value 'Nope' does not exist for the field 'status'."],"errors":{"jql":"bad\nquery"}}"#;
        assert_eq!(
            explanation(jira).unwrap(),
            ": The value 'Nope' does not exist for the field 'status'.; jql: bad query"
        );
        let gitlab = br#"{"message":{"labels":["is invalid"]}}"#;
        assert_eq!(
            explanation(gitlab).unwrap(),
            r#": {"labels":["is invalid"]}"#
        );
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(1000));
        assert_eq!(explanation(long.as_bytes()).unwrap().len(), 302);
        assert_eq!(explanation(b"not json"), None);
        assert_eq!(explanation(br#"{"errorMessages":[]}"#), None);
    }
}
