//! The one request loop every operation goes through: rate limit (`crate::ratelimit`), access
//! token (`auth`), send, classify the answer into [`SpApiError`], retry with the one
//! [`RetryPolicy`](crate::retry::RetryPolicy) (see the module docs of `spapi` for what is
//! retried), and read the body. The `api/` modules only build a [`Request`] and pick a reader.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::transport_message;
use super::client::SpApiClient;
use super::error::{SpApiError, SpApiErrorKind};
use super::models::ErrorList;
use super::operation::Operation;
use crate::ratelimit::TokenBucket;
use crate::retry::RetryDecision;
use crate::secrets::SecretString;

/// Percent-encode everything but RFC 3986 unreserved characters (path segments, query values).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or query value, percent-encoded.
pub(super) fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A raw answer: status, body and request id.
struct Answer {
    status: u16,
    body: Bytes,
    request_id: Option<String>,
}

/// One operation's call, before the host and the token are added.
pub(super) struct Request {
    op: Operation,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Request {
    pub(super) fn new(op: Operation, method: Method, path: String) -> Self {
        Self {
            op,
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    pub(super) fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.query.push((name, v.to_string()));
        }
        self
    }

    pub(super) fn json<T: Serialize>(mut self, body: &T) -> Result<Self, SpApiError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            SpApiError::invalid_input(self.op.id(), format!("cannot serialize the body: {e}"))
        })?;
        self.body = Some(bytes);
        Ok(self)
    }
}

impl SpApiClient {
    pub(super) async fn call_json<T: DeserializeOwned>(
        &self,
        req: Request,
    ) -> Result<T, SpApiError> {
        self.call_with(req, |body| serde_json::from_slice(body))
            .await
    }

    /// Sends `req` and reads a success body with `read`.
    pub(super) async fn call_with<T>(
        &self,
        req: Request,
        read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, SpApiError> {
        let op = req.op;
        let answer = self.execute(req).await?;
        let body: &[u8] = if answer.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &answer.body
        };
        read(body).map_err(|e| {
            let mut err = SpApiError::new(SpApiErrorKind::Decode, op.id(), decode_message(&e));
            err.status = Some(answer.status);
            err.request_id = answer.request_id.clone();
            // A write that succeeded but whose answer we cannot read: the caller must read the
            // resource back, exactly as after a timeout.
            err.outcome_unknown = !op.is_idempotent();
            tracing::error!(operation = op.id(), request_id = ?answer.request_id, error = %err, "unreadable SP-API answer");
            err
        })
    }

    pub(super) async fn call_empty(&self, req: Request) -> Result<(), SpApiError> {
        self.execute(req).await.map(|_| ())
    }

    fn url(&self, req: &Request) -> String {
        let mut url = format!("{}{}", self.inner.base_url, req.path);
        for (i, (k, v)) in req.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            // Lists (marketplaceIds) are comma-separated; the commas stay literal.
            let parts: Vec<String> = v.split(',').map(enc).collect();
            url.push_str(&parts.join(","));
        }
        url
    }

    /// Counts a metric of this operation (dimension `Operation`).
    fn count(&self, name: &str, op: Operation) {
        if let Some(m) = &self.inner.metrics {
            m.count(name, &[("Operation", op.id())]);
        }
    }

    /// [`Self::attempts`], counting a call that failed after its retries in `SpApiErrors`.
    async fn execute(&self, req: Request) -> Result<Answer, SpApiError> {
        let op = req.op;
        let answer = self.attempts(req).await;
        if answer.is_err() {
            self.count(crate::metrics::names::SPAPI_ERRORS, op);
        }
        answer
    }

    /// Rate limit, token, send, classify, retry: the one loop every operation goes through.
    async fn attempts(&self, req: Request) -> Result<Answer, SpApiError> {
        let op = req.op;
        let bucket = self.rate_limiter(op);
        let url = self.url(&req);
        let policy = self.inner.retry;
        let mut refreshed_token = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut err = match self.attempt(&req, &url, &bucket).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(mut e)) => {
                    e.attempts = attempt;
                    return Err(e);
                }
                Err(Failure::TokenRejected(e, token)) if !refreshed_token => {
                    // An expired or revoked token: refresh once and try again at once.
                    refreshed_token = true;
                    self.token_cache(op).invalidate(&token).await;
                    tracing::warn!(operation = op.id(), status = ?e.status, "access token rejected; refreshing");
                    continue;
                }
                Err(Failure::TokenRejected(e, _)) => e,
                Err(Failure::Attempt(e)) => e,
            };
            err.attempts = attempt;
            let decision = self.decide(op, &mut err);
            if decision == RetryDecision::Stop {
                return Err(err);
            }
            match policy.next_wait(attempt, decision, self.deadline) {
                Some(wait) => {
                    tracing::warn!(
                        operation = op.id(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %err,
                        "SP-API call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                None => {
                    if !op.is_idempotent() && might_have_applied(&err) {
                        err.outcome_unknown = true;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Whether to retry `err`; marks non-idempotent writes that may have been applied.
    fn decide(&self, op: Operation, err: &mut SpApiError) -> RetryDecision {
        use SpApiErrorKind as K;
        match err.kind {
            K::Status if err.status == Some(429) => RetryDecision::Retry,
            K::Connect => RetryDecision::Retry,
            K::Auth if err.is_retryable() => RetryDecision::Retry,
            K::Status | K::Timeout | K::Transport if might_have_applied(err) => {
                if op.is_idempotent() {
                    RetryDecision::Retry
                } else {
                    err.outcome_unknown = true;
                    RetryDecision::Stop
                }
            }
            _ => RetryDecision::Stop,
        }
    }

    /// One try: wait for the bucket, get a token, send, read the answer.
    async fn attempt(
        &self,
        req: &Request,
        url: &str,
        bucket: &TokenBucket,
    ) -> Result<Answer, Failure> {
        let op = req.op;
        let (token, timeout) = self.ready(op, bucket).await?;
        let builder = self.http_request(req, url, timeout, &token);
        let started = tokio::time::Instant::now();
        self.count(crate::metrics::names::SPAPI_CALLS, op);
        let resp = builder
            .send()
            .await
            .map_err(|e| Failure::Attempt(transport_error(op, &e)))?;
        let status = resp.status().as_u16();
        let request_id = header(&resp, "x-amzn-requestid");
        if self.inner.adapt_rate_limits {
            follow_announced_rate(op, bucket, &resp);
        }
        let body = resp.bytes().await.map_err(|e| {
            let mut err = transport_error(op, &e);
            err.status = Some(status);
            err.request_id = request_id.clone();
            Failure::Attempt(err)
        })?;
        tracing::info!(
            operation = op.id(),
            status,
            request_id = request_id.as_deref().unwrap_or("-"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sp-api response"
        );
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                body,
                request_id,
            });
        }
        let err = status_error(op, status, &body, request_id);
        if status == 429 {
            self.count(crate::metrics::names::SPAPI_THROTTLES, op);
            // Amazon's bucket is emptier than ours: stop using our spare tokens.
            bucket.drain();
        }
        if matches!(status, 401 | 403) {
            return Err(Failure::TokenRejected(err, token));
        }
        Err(Failure::Attempt(err))
    }
    /// Waits for the operation's slot and its access token; the time left for the request.
    async fn ready(
        &self,
        op: Operation,
        bucket: &TokenBucket,
    ) -> Result<(SecretString, Duration), Failure> {
        let deadline_err = |what: &str| {
            Failure::Final(SpApiError::new(
                SpApiErrorKind::DeadlineExceeded,
                op.id(),
                format!("no time left before the deadline {what}"),
            ))
        };
        if self.deadline.is_some_and(|d| d.is_past()) {
            return Err(deadline_err("to send"));
        }
        match self.inner.limiters.shared(op.id()) {
            Some(shared) => shared.acquire_before(self.deadline).await,
            None => bucket.acquire_before(self.deadline).await,
        }
        .map_err(|e| deadline_err(&format!("(rate limit: next slot in {:?})", e.wait)))?;
        let token = self
            .token_cache(op)
            .token()
            .await
            .map_err(Failure::Attempt)?;
        let timeout = match self.deadline {
            Some(d) => self.inner.request_timeout.min(d.remaining()),
            None => self.inner.request_timeout,
        };
        if timeout.is_zero() {
            return Err(deadline_err("to send"));
        }
        Ok((token, timeout))
    }

    /// The HTTP request of one attempt: the token, JSON in and out.
    fn http_request(
        &self,
        req: &Request,
        url: &str,
        timeout: Duration,
        token: &SecretString,
    ) -> reqwest::RequestBuilder {
        let builder = self
            .inner
            .http
            .request(req.method.clone(), url)
            .timeout(timeout)
            .header("x-amz-access-token", token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &req.body {
            builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        } else if req.method != Method::GET {
            builder.header(reqwest::header::CONTENT_TYPE, "application/json")
        } else {
            builder
        }
    }
}

/// Follows `x-amzn-RateLimit-Limit` when Amazon announces another rate than the bucket's.
fn follow_announced_rate(op: Operation, bucket: &TokenBucket, resp: &reqwest::Response) {
    let Some(rate) =
        header(resp, "x-amzn-ratelimit-limit").and_then(|v| v.trim().parse::<f64>().ok())
    else {
        return;
    };
    let current = bucket.limit().rate;
    if rate > 0.0 && (rate - current).abs() > 1e-6 {
        tracing::info!(
            operation = op.id(),
            from = current,
            to = rate,
            "rate limit adjusted from x-amzn-RateLimit-Limit"
        );
        bucket.set_rate(rate);
    }
}

/// A non-2xx answer as an error: the status, Amazon's `errors[]` (if readable), the request id.
fn status_error(op: Operation, status: u16, body: &[u8], request_id: Option<String>) -> SpApiError {
    let errors = serde_json::from_slice::<ErrorList>(body)
        .map(|l| l.errors)
        .unwrap_or_default();
    let mut err = SpApiError::new(SpApiErrorKind::Status, op.id(), http_reason(status));
    err.status = Some(status);
    err.errors = errors;
    err.request_id = request_id;
    err
}

enum Failure {
    /// Counts as an attempt; the retry policy decides.
    Attempt(SpApiError),
    /// 401/403: refresh the token once, then treat as `Attempt`.
    TokenRejected(SpApiError, SecretString),
    /// No further attempt possible (deadline).
    Final(SpApiError),
}

/// 5xx, a timeout or a connection lost after sending: Amazon may have processed the request.
fn might_have_applied(err: &SpApiError) -> bool {
    match err.kind {
        SpApiErrorKind::Status => matches!(err.status, Some(500..=599)),
        SpApiErrorKind::Timeout | SpApiErrorKind::Transport => true,
        _ => false,
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn transport_error(op: Operation, e: &reqwest::Error) -> SpApiError {
    let kind = if e.is_connect() {
        // Includes a connect timeout: nothing was sent.
        SpApiErrorKind::Connect
    } else if e.is_timeout() {
        SpApiErrorKind::Timeout
    } else {
        SpApiErrorKind::Transport
    };
    SpApiError::new(kind, op.id(), transport_message(e))
}

fn http_reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_string()
}

/// A serde error without quoting values from the document (which may hold buyer data).
fn decode_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field")
        || text.starts_with("unknown variant")
        || text.starts_with("EOF")
    {
        text
    } else {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spapi::config::test_credentials;
    use crate::spapi::{Region, SpApiConfig};

    #[tokio::test]
    async fn urls_encode_ids_and_queries() {
        let c = SpApiClient::new(SpApiConfig {
            endpoint: Some("http://sim".into()),
            ..SpApiConfig::new(Region::Na, test_credentials())
        })
        .unwrap();
        let req = Request::new(
            Operation::PatchListingsItem,
            Method::PATCH,
            format!(
                "/listings/2021-08-01/items/{}/{}",
                enc("A1"),
                enc("sku/1 2")
            ),
        )
        .query("marketplaceIds", Some("ATVPDKIKX0DER,A2EUQ1WTGCTBG2"));
        assert_eq!(
            c.url(&req),
            "http://sim/listings/2021-08-01/items/A1/sku%2F1%202?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2"
        );
    }
}
