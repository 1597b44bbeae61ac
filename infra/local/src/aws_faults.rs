//! AWS's own faults for chaos runs: an HTTP proxy in front of moto that the functions reach
//! through `AWS_ENDPOINT_URL`, and that, drawn from a seeded generator, answers a share of
//! calls with a throttle, a share with a 500, and applies a share at moto then drops the
//! connection unanswered (an unknown outcome: the SDK sees an IO error after sending, and
//! retries it as it would a timeout).
//!
//! Each fault is answered in its service's own protocol, so the SDK classifies it as it would
//! in AWS: DynamoDB and SQS (JSON 1.0), EventBridge and Secrets Manager (JSON 1.1) by
//! `__type` (SQS also by `x-amzn-query-error`, its query-compatible code), S3 (REST XML) by
//! `<Code>`. The service is read from the request's SigV4 credential scope. Calls to other
//! services pass untouched. The harness's own setup and checks talk to moto directly, so the
//! invariants are checked against the truth.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws_usage::{self, Indexes, Usage};

/// What share of the calls to each service gets which fault (each 0..=1, drawn per call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsFaults {
    pub seed: u64,
    /// Answered with the service's throttling error (`ProvisionedThroughputExceededException`,
    /// `RequestThrottled`, `ThrottlingException`, S3 `SlowDown`), not applied.
    pub throttle_rate: f64,
    /// Answered 500 with the service's internal error, not applied.
    pub error500_rate: f64,
    /// Applied by moto, then the connection dropped without an answer.
    pub lost_answer_rate: f64,
}

impl AwsFaults {
    /// The same `rate` of each kind.
    pub fn each(seed: u64, rate: f64) -> Self {
        Self {
            seed,
            throttle_rate: rate,
            error500_rate: rate,
            lost_answer_rate: rate,
        }
    }
}

/// The services whose calls get faults, by the name in their SigV4 credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Service {
    DynamoDb,
    Sqs,
    S3,
    EventBridge,
    SecretsManager,
}

impl Service {
    fn from_scope(name: &str) -> Option<Self> {
        Some(match name {
            "dynamodb" => Self::DynamoDb,
            "sqs" => Self::Sqs,
            "s3" => Self::S3,
            "events" => Self::EventBridge,
            "secretsmanager" => Self::SecretsManager,
            _ => return None,
        })
    }

    /// The service of a SigV4-signed request: `Credential=AKID/date/region/<service>/aws4_request`.
    fn of(req: &Request<Incoming>) -> Option<Self> {
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let credential = auth.split("Credential=").nth(1)?;
        let scope = credential.split([',', ' ']).next()?;
        Self::from_scope(scope.split('/').nth(3)?)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DynamoDb => "dynamodb",
            Self::Sqs => "sqs",
            Self::S3 => "s3",
            Self::EventBridge => "events",
            Self::SecretsManager => "secretsmanager",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum FaultKind {
    Throttle,
    Error500,
    LostAnswer,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttle => "throttle",
            Self::Error500 => "500",
            Self::LostAnswer => "lost_answer",
        }
    }
}

/// The error answer of `service` for `kind` (not for `LostAnswer`, which has none): status,
/// content type, extra headers, body.
fn error_answer(
    service: Service,
    kind: FaultKind,
) -> (
    StatusCode,
    &'static str,
    Vec<(&'static str, &'static str)>,
    String,
) {
    let throttle = kind == FaultKind::Throttle;
    let json = |status: u16, content_type, type_: &str, message: &str| {
        (
            StatusCode::from_u16(status).expect("status"),
            content_type,
            Vec::new(),
            serde_json::json!({"__type": type_, "message": message}).to_string(),
        )
    };
    match service {
        Service::DynamoDb if throttle => json(
            400,
            "application/x-amz-json-1.0",
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded (injected)",
        ),
        Service::DynamoDb => json(
            500,
            "application/x-amz-json-1.0",
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error (injected)",
        ),
        // SQS speaks JSON 1.0 and, being query-compatible, names its query error code in a
        // header the SDK prefers to `__type`.
        Service::Sqs => {
            let (status, code, header) = if throttle {
                (400, "RequestThrottled", "RequestThrottled;Sender")
            } else {
                (500, "InternalError", "InternalError;Receiver")
            };
            let mut answer = json(
                status,
                "application/x-amz-json-1.0",
                &format!("com.amazonaws.sqs#{code}"),
                "(injected)",
            );
            answer.2.push(("x-amzn-query-error", header));
            answer
        }
        Service::EventBridge | Service::SecretsManager => {
            let (status, type_) = match (service, throttle) {
                (_, true) => (400, "ThrottlingException"),
                (Service::EventBridge, false) => (500, "InternalException"),
                _ => (500, "InternalServiceError"),
            };
            json(
                status,
                "application/x-amz-json-1.1",
                type_,
                "Rate exceeded or internal error (injected)",
            )
        }
        Service::S3 => {
            let (status, code) = if throttle {
                (503, "SlowDown")
            } else {
                (500, "InternalError")
            };
            (
                StatusCode::from_u16(status).expect("status"),
                "application/xml",
                Vec::new(),
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>(injected)</Message><RequestId>FAULT</RequestId></Error>"
                ),
            )
        }
    }
}

/// Injected faults by (service, kind).
pub type FaultCounts = BTreeMap<(Service, FaultKind), u64>;

struct State {
    upstream: String,
    faults: AwsFaults,
    enabled: AtomicBool,
    rng: Mutex<StdRng>,
    counts: Mutex<FaultCounts>,
    http: reqwest::Client,
    /// Operations (`X-Amz-Target` after the dot) whose next call loses its answer (tests).
    lose_next: Mutex<Vec<String>>,
    /// What the calls that reached moto would be billed for (`crate::aws_usage`).
    usage: Mutex<Usage>,
    indexes: Mutex<Indexes>,
}

impl State {
    fn draw(&self) -> Option<FaultKind> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let r: f64 = self.rng.lock().expect("rng").random();
        let f = &self.faults;
        if r < f.throttle_rate {
            Some(FaultKind::Throttle)
        } else if r < f.throttle_rate + f.error500_rate {
            Some(FaultKind::Error500)
        } else if r < f.throttle_rate + f.error500_rate + f.lost_answer_rate {
            Some(FaultKind::LostAnswer)
        } else {
            None
        }
    }
}

/// Why a connection was dropped unanswered (hyper closes a connection whose service fails).
#[derive(Debug)]
struct Dropped(String);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Dropped {}

/// A running proxy; stopped when dropped.
pub struct AwsFaultProxy {
    url: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AwsFaultProxy {
    /// Listens on 127.0.0.1 (a free port), forwarding to `upstream` (moto's endpoint).
    pub async fn start(upstream: &str, faults: AwsFaults) -> Result<AwsFaultProxy> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            faults,
            enabled: AtomicBool::new(true),
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            counts: Mutex::default(),
            http: reqwest::Client::builder().http1_only().build()?,
            lose_next: Mutex::default(),
            usage: Mutex::default(),
            indexes: Mutex::default(),
        });
        let (stop, mut stop_rx) = watch::channel(false);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = stop_rx.changed() => return,
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    // An error here is a dropped answer (or the client going away): nothing to do.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(AwsFaultProxy {
            url,
            state,
            stop,
            task,
        })
    }

    /// The endpoint to hand the functions as `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Turns injection on or off (calls pass untouched while off).
    pub fn set_enabled(&self, on: bool) {
        self.state.enabled.store(on, Ordering::Relaxed);
    }

    /// Loses the answer of the next call of `operation` (a JSON protocol's `X-Amz-Target`
    /// after the dot, e.g. `TransactWriteItems`), whatever the rates: a test's one unknown outcome.
    pub fn lose_next(&self, operation: &str) {
        self.state
            .lose_next
            .lock()
            .expect("lose_next")
            .push(operation.to_string());
    }

    /// Faults injected so far, by service and kind.
    pub fn counts(&self) -> FaultCounts {
        self.state.counts.lock().expect("counts").clone()
    }

    /// Faults injected so far, every kind and service.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    /// The tables' global secondary indexes, so that a write is also counted on each index.
    pub fn set_indexes(&self, indexes: Indexes) {
        *self.state.indexes.lock().expect("indexes") = indexes;
    }

    /// What the calls that reached moto so far would be billed for.
    pub fn usage(&self) -> Usage {
        self.state.usage.lock().expect("usage").clone()
    }
}

impl Drop for AwsFaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// `service=kind:n ...`, for a report line.
pub fn describe(counts: &FaultCounts) -> String {
    counts
        .iter()
        .map(|((s, k), n)| format!("{}:{}={n}", s.as_str(), k.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let forced = req
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .is_some_and(|op| {
            let mut next = state.lose_next.lock().expect("lose_next");
            let at = next.iter().position(|o| o == op);
            at.map(|i| next.remove(i)).is_some()
        });
    let fault = Service::of(&req).and_then(|s| {
        if forced {
            Some((s, FaultKind::LostAnswer))
        } else {
            state.draw().map(|k| (s, k))
        }
    });
    if let Some((service, kind)) = fault {
        *state
            .counts
            .lock()
            .expect("counts")
            .entry((service, kind))
            .or_default() += 1;
        if kind != FaultKind::LostAnswer {
            let (status, content_type, headers, body) = error_answer(service, kind);
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = status;
            let h = resp.headers_mut();
            h.insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            h.insert("x-amzn-requestid", HeaderValue::from_static("FAULT"));
            for (name, value) in headers {
                h.insert(name, HeaderValue::from_static(value));
            }
            return Ok(resp);
        }
    }
    let answer = forward(&state, Service::of(&req), req).await;
    if matches!(fault, Some((_, FaultKind::LostAnswer))) {
        // Applied (or at least sent) upstream; the caller never hears.
        return Err(Dropped("answer lost (injected)".into()));
    }
    match answer {
        Ok(resp) => Ok(resp),
        // moto unreachable: drop the connection, as a broken network would.
        Err(e) => Err(Dropped(format!("upstream: {e}"))),
    }
}

/// Hop-by-hop and framing headers, set again by each side.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "expect" | "te"
    )
}

/// The operation of a call: a JSON protocol's `X-Amz-Target` after the dot; S3's method, with
/// a GET of a bucket (no key) as `LIST`.
fn operation(parts: &hyper::http::request::Parts) -> String {
    if let Some(t) = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
    {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let path = parts.uri.path().trim_matches('/');
    if parts.method == hyper::Method::GET && !path.contains('/') {
        return "LIST".into();
    }
    parts.method.as_str().to_string()
}

async fn forward(
    state: &State,
    service: Option<Service>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let mut body = body.collect().await?.to_bytes();
    let op = operation(&parts);
    if let Some(rewritten) = service.and_then(|s| aws_usage::rewrite_request(s, &op, &body)) {
        body = Bytes::from(rewritten);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let sent = body.clone();
    let mut out = state
        .http
        .request(parts.method.clone(), format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if passes(name) {
            out = out.header(name, value);
        }
    }
    let answer = out.send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await?;
    if let Some(service) = service {
        let indexes = state.indexes.lock().expect("indexes").clone();
        let tallies = aws_usage::tally_call(service, &op, path, &sent, &bytes, &indexes);
        aws_usage::record(&mut state.usage.lock().expect("usage"), tallies);
    }
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    for (name, value) in &headers {
        if passes(name) {
            resp.headers_mut().append(name, value.clone());
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use std::sync::atomic::AtomicU64;

    /// A stand-in for moto that counts the calls it applies and answers each service's success.
    async fn upstream() -> (String, Arc<AtomicU64>) {
        let applied = Arc::new(AtomicU64::new(0));
        let seen = applied.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if target.starts_with("AmazonSQS.") {
                    ([("content-type", "application/x-amz-json-1.0")], r#"{"MessageId":"m-1","MD5OfMessageBody":"acbd18db4cc2f85cedef654fccc4a4d8"}"#)
                } else if target.starts_with("DynamoDB_") {
                    ([("content-type", "application/x-amz-json-1.0")], "{}")
                } else {
                    ([("content-type", "application/xml")], "")
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, applied)
    }

    async fn sdk(url: &str, attempts: u32) -> aws_config::SdkConfig {
        let base = flexbridge::aws::load_with_endpoint(url).await;
        base.into_builder()
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_initial_backoff(std::time::Duration::from_millis(1)),
            )
            .build()
    }

    fn only(kind: FaultKind) -> AwsFaults {
        let mut f = AwsFaults::each(7, 0.0);
        match kind {
            FaultKind::Throttle => f.throttle_rate = 1.0,
            FaultKind::Error500 => f.error500_rate = 1.0,
            FaultKind::LostAnswer => f.lost_answer_rate = 1.0,
        }
        f
    }

    async fn put_item(config: &aws_config::SdkConfig) -> Result<(), String> {
        flexbridge::aws::dynamodb_client(config)
            .put_item()
            .table_name("t")
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                e.code()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{:?}", e))
            })
    }

    #[tokio::test]
    async fn each_service_gets_its_own_throttle_and_the_sdk_retries_it() {
        let (moto, applied) = upstream().await;
        let proxy = AwsFaultProxy::start(&moto, only(FaultKind::Throttle))
            .await
            .unwrap();
        let config = sdk(proxy.url(), 2).await;
        assert_eq!(
            put_item(&config).await,
            Err("ProvisionedThroughputExceededException".into())
        );
        let s3 = flexbridge::aws::s3_client(&config)
            .put_object()
            .bucket("b")
            .key("k")
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap_err();
        assert_eq!(s3.code(), Some("SlowDown"));
        let sqs = flexbridge::aws::sqs_client(&config)
            .send_message()
            .queue_url(format!("{moto}/123456789012/q"))
            .message_body("foo")
            .send()
            .await
            .unwrap_err();
        assert_eq!(sqs.code(), Some("RequestThrottled"));
        let events = flexbridge::aws::eventbridge_client(&config)
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("s")
                    .detail_type("d")
                    .detail("{}")
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(events.code(), Some("ThrottlingException"));
        let secret = flexbridge::aws::secrets_client(&config)
            .get_secret_value()
            .secret_id("s")
            .send()
            .await
            .unwrap_err();
        assert_eq!(secret.code(), Some("ThrottlingException"));
        // Nothing applied; each call tried twice (the SDK classified every one as retryable).
        assert_eq!(applied.load(Ordering::SeqCst), 0);
        let counts = proxy.counts();
        for s in [
            Service::DynamoDb,
            Service::S3,
            Service::Sqs,
            Service::EventBridge,
            Service::SecretsManager,
        ] {
            assert_eq!(counts.get(&(s, FaultKind::Throttle)), Some(&2), "{s:?}");
        }
        assert_eq!(proxy.total(), 10);
    }

    #[tokio::test]
    async fn a_500_is_the_services_internal_error_and_retried() {
        let (moto, applied) = upstream().await;
        let proxy = AwsFaultProxy::start(&moto, only(FaultKind::Error500))
            .await
            .unwrap();
        let config = sdk(proxy.url(), 3).await;
        assert_eq!(put_item(&config).await, Err("InternalServerError".into()));
        let s3 = flexbridge::aws::s3_client(&config)
            .get_object()
            .bucket("b")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(s3.code(), Some("InternalError"));
        assert_eq!(applied.load(Ordering::SeqCst), 0);
        assert_eq!(proxy.total(), 6, "{}", describe(&proxy.counts()));
    }

    #[tokio::test]
    async fn a_lost_answer_is_applied_upstream_and_the_caller_sees_a_dispatch_failure() {
        let (moto, applied) = upstream().await;
        let proxy = AwsFaultProxy::start(&moto, only(FaultKind::LostAnswer))
            .await
            .unwrap();
        let config = sdk(proxy.url(), 3).await;
        let err = put_item(&config).await.unwrap_err();
        assert!(err.contains("DispatchFailure"), "{err}");
        // Applied each time, answered never: the SDK retried an unknown outcome.
        assert_eq!(applied.load(Ordering::SeqCst), 3);
        assert_eq!(
            proxy
                .counts()
                .get(&(Service::DynamoDb, FaultKind::LostAnswer)),
            Some(&3)
        );
    }

    #[tokio::test]
    async fn off_or_at_zero_every_call_passes_and_the_draws_follow_the_seed() {
        let (moto, applied) = upstream().await;
        let proxy = AwsFaultProxy::start(&moto, only(FaultKind::Throttle))
            .await
            .unwrap();
        proxy.set_enabled(false);
        let config = sdk(proxy.url(), 1).await;
        put_item(&config).await.unwrap();
        assert_eq!((applied.load(Ordering::SeqCst), proxy.total()), (1, 0));

        let draws = |seed| {
            let state = State {
                upstream: String::new(),
                faults: AwsFaults::each(seed, 0.1),
                enabled: AtomicBool::new(true),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                counts: Mutex::default(),
                http: reqwest::Client::new(),
                lose_next: Mutex::default(),
                usage: Mutex::default(),
                indexes: Mutex::default(),
            };
            (0..2000).map(|_| state.draw()).collect::<Vec<_>>()
        };
        let a = draws(3);
        assert_eq!(a, draws(3));
        let faults = a.iter().filter(|d| d.is_some()).count();
        // 30% in all, about a third of it each kind.
        assert!((500..700).contains(&faults), "{faults}");
        for kind in [
            FaultKind::Throttle,
            FaultKind::Error500,
            FaultKind::LostAnswer,
        ] {
            let n = a.iter().filter(|d| **d == Some(kind)).count();
            assert!((130..270).contains(&n), "{kind:?}: {n}");
        }
    }
}
