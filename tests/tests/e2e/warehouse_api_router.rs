//! The router with in-memory stores: every refusal has its code and writes nothing; a signed
//! request is served; a repeat replays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Json;
use flexbridge::events::{EventName, MemoryEventSink};
use flexbridge::idempotency::{Claim, Record, Status};
use flexbridge::idempotency::{Idempotency, MemoryIdempotencyStore};
use flexbridge::inventory::changes::StockChanges;
use flexbridge::runtime::Invocation;
use flexbridge::secrets::SecretCache;
use flexbridge::store::inventory::{MemoryOnHandStore, OnHandStore};
use flexbridge::warehouse::signing::{self, Signed};
use serde_json::{json, Value};
use tower::ServiceExt;
use warehouse_api::guard::Effect;
use warehouse_api::{guarded, routes, AppState};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:warehouse";
const SECRET: &str = "whsec_unit";

struct Fixture {
    app: axum::Router,
    idem: Arc<MemoryIdempotencyStore>,
    events: Arc<MemoryEventSink>,
    on_hand: Arc<MemoryOnHandStore>,
}

fn fixture() -> Fixture {
    fixture_with(false)
}

fn fixture_with(accept_v1_signatures: bool) -> Fixture {
    let idem = Arc::new(MemoryIdempotencyStore::new());
    let events = Arc::new(MemoryEventSink::new());
    let on_hand = Arc::new(MemoryOnHandStore::new());
    let state = AppState {
        secrets: SecretCache::from_static(HashMap::from([(
            ARN.to_string(),
            json!({"warehouse_key": SECRET}).to_string(),
        )])),
        secret_arn: ARN.into(),
        idempotency: Idempotency::new(idem.clone(), Duration::from_secs(3600)),
        events: events.clone(),
        on_hand: on_hand.clone(),
        stock: Arc::new(StockChanges::in_memory(on_hand.clone(), &["BER1"])),
        env: flexbridge::Env::default(),
        accept_v1_signatures,
        orders: Default::default(),
        fulfilment: Default::default(),
        report_links: Default::default(),
    };
    Fixture {
        app: guarded(routes::v1().merge(probe_routes()), state),
        idem,
        events,
        on_hand,
    }
}

fn signed(method: &str, path: &str, body: &str, key: Option<&str>, ts: i64) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    let mut what = Signed::new(method, path, body.as_bytes());
    what.idempotency_key = key;
    for (name, value) in signing::signed_headers(SECRET.as_bytes(), ts, &what) {
        req = req.header(name, value);
    }
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value, bool) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, replayed)
}

/// A timestamp no earlier call returned: every request is signed afresh (a signature is good
/// once), as a warehouse signs each attempt.
fn now() -> i64 {
    static SENT: AtomicI64 = AtomicI64::new(0);
    signing::now_unix() - SENT.fetch_add(1, Ordering::SeqCst) % 200
}

const REPORT: &str = r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":12}]}"#;

#[tokio::test]
async fn health_needs_a_signature() {
    let f = fixture();
    let (status, body, _) = send(&f.app, signed("GET", "/v1/health", "", None, now())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    let unsigned = Request::get("/v1/health").body(Body::empty()).unwrap();
    let (status, body, _) = send(&f.app, unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "missing_timestamp");
}

#[tokio::test]
async fn inventory_report_is_stored_and_replayed() {
    let f = fixture();
    let (status, body, replayed) = send(
        &f.app,
        signed("POST", "/v1/inventory", REPORT, Some("k1"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 1, "stored": 1, "skippedAsOlder": 0, "refused": []})
    );
    assert!(!replayed);
    assert_eq!(
        f.on_hand
            .on_hand("BER1", "MUG-01")
            .await
            .unwrap()
            .unwrap()
            .on_hand,
        12
    );

    // Same key, same request: the saved response, not a second run.
    let (status, body2, replayed) = send(
        &f.app,
        signed("POST", "/v1/inventory", REPORT, Some("k1"), now()),
    )
    .await;
    assert_eq!((status, &body2, replayed), (StatusCode::OK, &body, true));

    // Same key, another request: refused.
    let other = r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":3}]}"#;
    let (status, body, _) = send(
        &f.app,
        signed("POST", "/v1/inventory", other, Some("k1"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(
        f.on_hand
            .on_hand("BER1", "MUG-01")
            .await
            .unwrap()
            .unwrap()
            .on_hand,
        12
    );
}

#[tokio::test]
async fn every_bad_request_is_refused_with_its_code_and_writes_nothing() {
    let f = fixture();
    let t = now();
    let good_sig = |body: &str| {
        signing::sign(
            SECRET.as_bytes(),
            t,
            &Signed::new("POST", "/v1/inventory", body.as_bytes()).idempotency_key("a"),
        )
    };

    let mut cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "wrong signature",
            Request::post("/v1/inventory")
                .header("x-flexbridge-timestamp", t.to_string())
                .header("x-flexbridge-signature", format!("v2={}", "0".repeat(64)))
                .header("Idempotency-Key", "a")
                .body(Body::from(REPORT))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "signed with another secret",
            {
                let what =
                    Signed::new("POST", "/v1/inventory", REPORT.as_bytes()).idempotency_key("a");
                let sig = signing::sign(b"other", t, &what);
                Request::post("/v1/inventory")
                    .header("x-flexbridge-timestamp", t.to_string())
                    .header("x-flexbridge-signature", sig)
                    .header("Idempotency-Key", "a")
                    .body(Body::from(REPORT))
                    .unwrap()
            },
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "no signature",
            Request::post("/v1/inventory")
                .header("x-flexbridge-timestamp", t.to_string())
                .header("Idempotency-Key", "a")
                .body(Body::from(REPORT))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "missing_signature",
        ),
        (
            "body changed after signing",
            Request::post("/v1/inventory")
                .header("x-flexbridge-timestamp", t.to_string())
                .header("x-flexbridge-signature", good_sig(REPORT))
                .header("Idempotency-Key", "a")
                .body(Body::from(REPORT.replace("12", "13")))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "stale timestamp",
            signed("POST", "/v1/inventory", REPORT, Some("a"), t - 301),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "timestamp from the future",
            signed("POST", "/v1/inventory", REPORT, Some("a"), t + 400),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
        ),
        (
            "no idempotency key",
            signed("POST", "/v1/inventory", REPORT, None, t),
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
        ),
        (
            "idempotency key with spaces",
            signed("POST", "/v1/inventory", REPORT, Some("a b"), t),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
        (
            "malformed json",
            signed("POST", "/v1/inventory", r#"{"items": [}"#, Some("a"), t),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "empty body",
            signed("POST", "/v1/inventory", "", Some("a"), t),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "wrong shape",
            signed(
                "POST",
                "/v1/inventory",
                r#"{"items":[{"hub":"BER1","sku":"X","onHand":-1}]}"#,
                Some("a"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "unknown field",
            signed(
                "POST",
                "/v1/inventory",
                r#"{"items":[{"hub":"BER1","sku":"X","on_hand":1}]}"#,
                Some("a"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "empty sku",
            signed(
                "POST",
                "/v1/inventory",
                r#"{"items":[{"hub":"BER1","sku":"","onHand":1}]}"#,
                Some("a"),
                t,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_item",
        ),
        (
            "duplicate pair",
            signed(
                "POST",
                "/v1/inventory",
                r#"{"items":[{"hub":"B","sku":"X","onHand":1},{"hub":"B","sku":"X","onHand":2}]}"#,
                Some("a"),
                t,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_item",
        ),
        (
            "no items",
            signed("POST", "/v1/inventory", r#"{"items":[]}"#, Some("a"), t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_items",
        ),
        (
            "unknown route",
            signed("POST", "/v1/nope", "{}", Some("a"), t),
            StatusCode::NOT_FOUND,
            "route_not_found",
        ),
        (
            "wrong method",
            signed("PUT", "/v1/inventory", REPORT, Some("a"), t),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "DELETE needs a key too",
            signed("DELETE", "/v1/inventory", "", None, t),
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
        ),
    ];
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300 * 1024));
    cases.push((
        "oversized body",
        signed("POST", "/v1/inventory", &big, Some("a"), t),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    ));

    for (name, req, want_status, want_code) in cases {
        let (status, body, _) = send(&f.app, req).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert!(
            f.idem.record("warehouse#a").is_none(),
            "{name}: idempotency claim left behind"
        );
        assert!(
            f.on_hand.on_hand("BER1", "MUG-01").await.unwrap().is_none(),
            "{name}"
        );
        assert!(
            f.on_hand.on_hand("BER1", "X").await.unwrap().is_none(),
            "{name}"
        );
    }
    assert!(f.events.events().is_empty());

    // The refused key is still usable once the request is right.
    let (status, body, _) = send(
        &f.app,
        signed("POST", "/v1/inventory", REPORT, Some("a"), t),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn older_report_does_not_roll_stock_back() {
    let f = fixture();
    let newer =
        r#"{"asOf":"2026-01-02T00:00:00Z","items":[{"hub":"BER1","sku":"MUG-01","onHand":5}]}"#;
    let older =
        r#"{"asOf":"2026-01-01T00:00:00Z","items":[{"hub":"BER1","sku":"MUG-01","onHand":9}]}"#;
    send(
        &f.app,
        signed("POST", "/v1/inventory", newer, Some("n"), now()),
    )
    .await;
    let (status, body, _) = send(
        &f.app,
        signed("POST", "/v1/inventory", older, Some("o"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["skippedAsOlder"], 1);
    assert_eq!(
        f.on_hand
            .on_hand("BER1", "MUG-01")
            .await
            .unwrap()
            .unwrap()
            .on_hand,
        5
    );
}

#[tokio::test]
async fn test_event_is_published_once_per_key() {
    let f = fixture();
    let body = r#"{"message":"hello"}"#;
    let (status, first, _) = send(
        &f.app,
        signed("POST", "/v1/events/test", body, Some("t1"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (_, second, replayed) = send(
        &f.app,
        signed("POST", "/v1/events/test", body, Some("t1"), now()),
    )
    .await;
    assert!(replayed);
    assert_eq!(first["eventId"], second["eventId"]);
    let events = f.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, EventName::WebhookTest);
    assert_eq!(events[0].detail()["message"], "hello");
}

fn in_flight_record(body: &str, until_ms: i64) -> flexbridge::idempotency::Record {
    let fingerprint = format!("POST\n/v1/inventory\n{body}");
    flexbridge::idempotency::Record {
        id: "warehouse#busy".into(),
        status: flexbridge::idempotency::Status::InProgress,
        expiration: signing::now_unix() + 3600,
        in_progress_expiration: Some(until_ms),
        data: None,
        validation: Some(flexbridge::idempotency::hash_bytes(fingerprint.as_bytes())),
        writer: None,
    }
}

#[tokio::test]
async fn a_repeat_while_the_first_still_runs_is_409_and_runs_after_it_died() {
    let f = fixture();
    // Another invocation holds the key for 20 more seconds.
    f.idem.insert(in_flight_record(
        REPORT,
        signing::now_unix() * 1000 + 20_000,
    ));
    let resp = f
        .app
        .clone()
        .oneshot(signed("POST", "/v1/inventory", REPORT, Some("busy"), now()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((19..=20).contains(&retry_after), "{retry_after}");
    assert!(f.on_hand.on_hand("BER1", "MUG-01").await.unwrap().is_none());

    // That invocation died (its deadline passed): the repeat runs and completes the key.
    f.idem
        .insert(in_flight_record(REPORT, signing::now_unix() * 1000 - 1));
    let (status, body, replayed) = send(
        &f.app,
        signed("POST", "/v1/inventory", REPORT, Some("busy"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!replayed);
    let rec = f.idem.record("warehouse#busy").unwrap();
    assert_eq!(rec.status, flexbridge::idempotency::Status::Completed);
}

// ---------------------------------------------------------------------------------------------
// Probe routes: what a route gets from the guard, and how its response is kept.

static RAW_RUNS: AtomicI64 = AtomicI64::new(0);
static BIG_RUNS: AtomicI64 = AtomicI64::new(0);
const RAW_BODY: &[u8] = b"sku;qty\nMUG-01;3\n\xff\xfe not UTF-8";
const BIG_BYTES: usize = 300 * 1024;

fn probe_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/v1/probe/invocation",
            post(|effect: Effect| async move {
                Json(json!({
                    "requestId": effect.invocation.request_id,
                    "remainingMs": effect.invocation.remaining().as_millis() as u64,
                    "retaken": effect.claim == Claim::Retaken,
                    "key": effect.key,
                }))
            }),
        )
        .route(
            "/v1/probe/raw",
            post(|| async {
                RAW_RUNS.fetch_add(1, Ordering::SeqCst);
                let mut resp = (
                    StatusCode::CREATED,
                    [
                        ("content-type", "text/csv; charset=utf-8"),
                        ("location", "/v1/probe/raw/1"),
                    ],
                    RAW_BODY,
                )
                    .into_response();
                // A header given twice is kept twice.
                for v in ["a", "b"] {
                    resp.headers_mut().append("x-probe", v.parse().unwrap());
                }
                resp
            }),
        )
        .route(
            "/v1/probe/big",
            post(|| async {
                BIG_RUNS.fetch_add(1, Ordering::SeqCst);
                "x".repeat(BIG_BYTES)
            }),
        )
}

async fn send_raw(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 22).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

/// `req` with the headers replaced as someone who captured it would.
fn with_header(mut req: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    req.headers_mut().insert(name, value.parse().unwrap());
    req
}

/// The same request again: same method, path, headers and body.
fn copy(method: &str, path: &str, body: &str, headers: &HeaderMap) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_string()))
        .unwrap();
    *req.headers_mut() = headers.clone();
    req
}

#[tokio::test]
async fn a_captured_request_sent_again_with_a_fresh_key_is_refused() {
    let f = fixture();
    let body = r#"{"message":"once"}"#;
    let original = signed("POST", "/v1/events/test", body, Some("k1"), now());
    let headers = original.headers().clone();
    let (status, reply, _) = send(&f.app, original).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");

    let replay = with_header(
        copy("POST", "/v1/events/test", body, &headers),
        "idempotency-key",
        "k2",
    );
    let (status, reply, _) = send(&f.app, replay).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_signature");
    assert_eq!(f.events.events().len(), 1, "the captured request ran again");
    assert!(f.idem.record("warehouse#k2").is_none());
}

#[tokio::test]
async fn a_second_use_of_one_signature_is_refused_but_reads_may_repeat() {
    let f = fixture();
    let body = r#"{"message":"once"}"#;
    let original = signed("POST", "/v1/events/test", body, Some("k1"), now());
    let headers = original.headers().clone();
    assert_eq!(send(&f.app, original).await.0, StatusCode::ACCEPTED);
    let (status, reply, replayed) =
        send(&f.app, copy("POST", "/v1/events/test", body, &headers)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert_eq!(reply["error"]["code"], "signature_reused");
    assert!(!replayed);
    assert_eq!(f.events.events().len(), 1);
    // The hex's case does not make it another signature.
    let sig = headers["x-flexbridge-signature"]
        .to_str()
        .unwrap()
        .to_uppercase()
        .replace("V2=", "v2=");
    let upper = with_header(
        copy("POST", "/v1/events/test", body, &headers),
        "x-flexbridge-signature",
        &sig,
    );
    assert_eq!(
        send(&f.app, upper).await.1["error"]["code"],
        "signature_reused"
    );
    // Signed afresh, the retry (same key) is answered from the saved response.
    let (status, _, replayed) = send(
        &f.app,
        signed("POST", "/v1/events/test", body, Some("k1"), now()),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, true));

    // A read changes nothing: the same signed GET twice (a poll within one second) is served.
    let t = now();
    for _ in 0..2 {
        let (status, body, _) = send(&f.app, signed("GET", "/v1/health", "", None, t)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn signed_v1(path: &str, body: &str, key: &str, ts: i64) -> Request<Body> {
    let sig = signing::sign_v1(
        SECRET.as_bytes(),
        ts,
        &Signed::new("POST", path, body.as_bytes()),
    );
    Request::post(path)
        .header("x-flexbridge-timestamp", ts.to_string())
        .header("x-flexbridge-signature", sig)
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn v1_signatures_only_while_the_setting_accepts_them() {
    let body = r#"{"message":"legacy"}"#;
    let refused = fixture_with(false);
    let (status, reply, _) = send(
        &refused.app,
        signed_v1("/v1/events/test", body, "k1", now()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert_eq!(reply["error"]["code"], "signature_v1_refused");
    assert!(refused.events.events().is_empty());

    let migrating = fixture_with(true);
    let t = now();
    let (status, reply, _) =
        send(&migrating.app, signed_v1("/v1/events/test", body, "k1", t)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    // v1 does not cover the key; the one-use rule still stops a replay with a fresh key.
    let (status, reply, _) =
        send(&migrating.app, signed_v1("/v1/events/test", body, "k2", t)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert_eq!(reply["error"]["code"], "signature_reused");
    assert_eq!(migrating.events.events().len(), 1);
    // v2 keeps working while v1 is accepted.
    let (status, _, _) = send(
        &migrating.app,
        signed("POST", "/v1/events/test", body, Some("k3"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_replay_repeats_status_headers_and_raw_body_exactly() {
    let f = fixture();
    let (status, headers, body) = send_raw(
        &f.app,
        signed("POST", "/v1/probe/raw", "{}", Some("r1"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, RAW_BODY);
    let (status2, headers2, body2) = send_raw(
        &f.app,
        signed("POST", "/v1/probe/raw", "{}", Some("r1"), now()),
    )
    .await;
    assert_eq!(RAW_RUNS.load(Ordering::SeqCst), 1, "the route ran again");
    assert_eq!(status2, status);
    assert_eq!(body2, body, "raw body");
    assert_eq!(headers2["idempotent-replayed"], "true");
    for name in ["content-type", "location"] {
        assert_eq!(headers2[name], headers[name], "{name}");
    }
    let probes = |h: &HeaderMap| {
        h.get_all("x-probe")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(probes(&headers2), vec!["a", "b"]);
    assert_eq!(probes(&headers2), probes(&headers));
}

#[tokio::test]
async fn a_response_too_large_to_keep_is_answered_and_its_claim_completed() {
    let f = fixture();
    let (status, _, body) = send_raw(
        &f.app,
        signed("POST", "/v1/probe/big", "{}", Some("b1"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.len(),
        BIG_BYTES,
        "the first caller gets the whole answer"
    );
    let rec = f.idem.record("warehouse#b1").expect("claim kept");
    assert_eq!(rec.status, Status::Completed, "the claim must not dangle");

    let (status, reply, _) = send(
        &f.app,
        signed("POST", "/v1/probe/big", "{}", Some("b1"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{reply}");
    assert_eq!(reply["error"]["code"], "response_not_replayable");
    assert_eq!(BIG_RUNS.load(Ordering::SeqCst), 1, "the route ran again");
}

#[tokio::test]
async fn the_route_gets_the_request_id_deadline_and_claim() {
    let f = fixture();
    let mut req = signed("POST", "/v1/probe/invocation", "{}", Some("i1"), now());
    req.extensions_mut()
        .insert(Invocation::new("lambda-req-42", Duration::from_secs(7)));
    let (status, reply, _) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["requestId"], "lambda-req-42");
    assert!(reply["remainingMs"].as_u64().unwrap() <= 7000, "{reply}");
    assert_eq!(reply["retaken"], false);
    assert_eq!(reply["key"], "i1");

    // An earlier attempt with this key died mid-way: the route is told so it can reconcile.
    f.idem.insert(Record {
        id: "warehouse#i2".into(),
        status: Status::InProgress,
        expiration: signing::now_unix() + 3600,
        in_progress_expiration: Some(signing::now_unix() * 1000 - 5_000),
        data: None,
        validation: Some(flexbridge::idempotency::hash_bytes(
            b"POST\n/v1/probe/invocation\n{}",
        )),
        writer: None,
    });
    let (status, reply, _) = send(
        &f.app,
        signed("POST", "/v1/probe/invocation", "{}", Some("i2"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["retaken"], true);
}

/// Hostile values (issue 12, "Inputs under attack"): wrongly typed fields, numbers too large for
/// their field, negative quantities, on the inventory report and the fulfilment bodies, and
/// paths with encoded traversal. Each is refused with its code before any route runs; nothing
/// is written or claimed.
#[tokio::test]
async fn hostile_values_are_refused_with_their_code_and_write_nothing() {
    let f = fixture();
    let t = now();
    let inventory = |body: &str| signed("POST", "/v1/inventory", body, Some("h"), t);
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "onHand as a string",
            inventory(r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":"12"}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "onHand beyond u32",
            inventory(r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":4294967296}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "onHand with 30 digits",
            inventory(
                r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":123456789012345678901234567890}]}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "onHand as a fraction",
            inventory(r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":1.5}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "onHand negative",
            inventory(r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":-3}]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "items not a list",
            inventory(r#"{"items":{"hub":"BER1"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "packed: a negative quantity",
            signed(
                "POST",
                "/v1/shipments/S1/packed",
                r#"{"packages":[{"id":"P1","dimensions":{"length":{"value":"1","dimensionUnit":"CM"},"width":{"value":"1","dimensionUnit":"CM"},"height":{"value":"1","dimensionUnit":"CM"}},"weight":{"value":"10","weightUnit":"G"},"packageLineItems":[{"packageLineItemId":"1","quantity":-1e30}]}]}"#,
                Some("h"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "packed: packages not a list",
            signed(
                "POST",
                "/v1/shipments/S1/packed",
                r#"{"packages":"all of them"}"#,
                Some("h"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "cancel: an unknown reason",
            signed(
                "POST",
                "/v1/shipments/S1/cancel",
                r#"{"reason":"BORED"}"#,
                Some("h"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "encoded traversal in the shipment id",
            signed(
                "POST",
                "/v1/shipments/..%2F..%2Finventory/cancel",
                r#"{"reason":"OUT_OF_STOCK"}"#,
                Some("h"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "encoded dot segment",
            signed("GET", "/v1/shipments/%2E%2E/labels", "", None, t),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "raw dot segment",
            signed(
                "POST",
                "/v1/shipments/S1/../../inventory",
                "{}",
                Some("h"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "encoded backslash",
            signed("GET", "/v1/returns/R1%5C..%5Cx", "", None, t),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "cancel: a quantity beyond u32",
            signed(
                "POST",
                "/v1/shipments/S1/cancel",
                r#"{"reason":"OUT_OF_STOCK","lines":[{"lineId":"1","quantity":99999999999}]}"#,
                Some("h"),
                t,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (name, req, want_status, want_code) in cases {
        let (status, body, _) = send(&f.app, req).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{name}: {body}");
        assert!(
            f.idem.record("warehouse#h").is_none(),
            "{name}: idempotency claim left behind"
        );
        assert!(
            f.on_hand.on_hand("BER1", "MUG-01").await.unwrap().is_none(),
            "{name}"
        );
    }
    assert!(f.events.events().is_empty());
}

/// Counts every call of the stores a request can reach (the idempotency table, where the
/// guard records signatures and claims, and the on-hand figures).
#[derive(Default)]
struct Calls(std::sync::atomic::AtomicUsize);

impl Calls {
    fn one(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct CountingIdempotency(MemoryIdempotencyStore, Arc<Calls>);

#[async_trait::async_trait]
impl flexbridge::idempotency::IdempotencyStore for CountingIdempotency {
    async fn put_in_progress(
        &self,
        record: &Record,
        now: flexbridge::idempotency::Now,
    ) -> flexbridge::Result<flexbridge::idempotency::PutOutcome> {
        self.1.one();
        self.0.put_in_progress(record, now).await
    }
    async fn get(&self, id: &str) -> flexbridge::Result<Option<Record>> {
        self.1.one();
        self.0.get(id).await
    }
    async fn complete(&self, record: &Record, claimed_until_ms: i64) -> flexbridge::Result<bool> {
        self.1.one();
        self.0.complete(record, claimed_until_ms).await
    }
    async fn release(&self, id: &str, claimed_until_ms: i64) -> flexbridge::Result<()> {
        self.1.one();
        self.0.release(id, claimed_until_ms).await
    }
}

struct CountingOnHand(MemoryOnHandStore, Arc<Calls>);

#[async_trait::async_trait]
impl OnHandStore for CountingOnHand {
    async fn record_each(
        &self,
        figures: &[flexbridge::store::inventory::OnHand],
    ) -> flexbridge::Result<Vec<bool>> {
        self.1.one();
        self.0.record_each(figures).await
    }
    async fn on_hand(
        &self,
        hub: &str,
        sku: &str,
    ) -> flexbridge::Result<Option<flexbridge::store::inventory::OnHand>> {
        self.1.one();
        self.0.on_hand(hub, sku).await
    }
    async fn hub_stock(&self, hub: &str) -> flexbridge::Result<Vec<(String, i64)>> {
        self.1.one();
        self.0.hub_stock(hub).await
    }
}

/// The Function URL is public (AuthType NONE) and its concurrency reserved (template.yaml
/// `ApiReservedConcurrency`): what a flood of unsigned or badly signed requests costs is the
/// invocations, never a store call. Nothing is read or written, no capability over the tables
/// is even built, and nothing is published.
#[tokio::test]
async fn refused_requests_are_cheap_they_call_no_store() {
    let calls = Arc::new(Calls::default());
    let on_hand = Arc::new(CountingOnHand(MemoryOnHandStore::new(), calls.clone()));
    let events = Arc::new(MemoryEventSink::new());
    let state = AppState {
        secrets: SecretCache::from_static(HashMap::from([(
            ARN.to_string(),
            json!({"warehouse_key": SECRET}).to_string(),
        )])),
        secret_arn: ARN.into(),
        idempotency: Idempotency::new(
            Arc::new(CountingIdempotency(
                MemoryIdempotencyStore::new(),
                calls.clone(),
            )),
            Duration::from_secs(3600),
        ),
        events: events.clone(),
        on_hand: on_hand.clone(),
        stock: Arc::new(StockChanges::in_memory(on_hand, &["BER1"])),
        env: flexbridge::Env::default(),
        accept_v1_signatures: false,
        orders: Default::default(),
        fulfilment: Default::default(),
        report_links: Default::default(),
    };
    let app = warehouse_api::router(state.clone());
    let t = now();
    let other_key = |method: &str, path: &str, body: &str, key: Option<&str>| {
        let mut what = Signed::new(method, path, body.as_bytes());
        what.idempotency_key = key;
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in signing::signed_headers(b"not-the-key", t, &what) {
            req = req.header(name, value);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.body(Body::from(body.to_string())).unwrap()
    };
    let refused: Vec<(&str, Request<Body>)> = vec![
        (
            "unsigned GET",
            Request::get("/v1/health").body(Body::empty()).unwrap(),
        ),
        (
            "unsigned POST",
            Request::post("/v1/inventory")
                .header("Idempotency-Key", "k")
                .body(Body::from(REPORT))
                .unwrap(),
        ),
        (
            "unsigned report link",
            Request::get("/v1/reports/health/latest")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "garbage signature",
            Request::post("/v1/inventory")
                .header("x-flexbridge-timestamp", t.to_string())
                .header("x-flexbridge-signature", format!("v2={}", "0".repeat(64)))
                .header("Idempotency-Key", "k")
                .body(Body::from(REPORT))
                .unwrap(),
        ),
        (
            "POST signed with another key",
            other_key("POST", "/v1/inventory", REPORT, Some("k")),
        ),
        (
            "label links signed with another key",
            other_key("GET", "/v1/shipments/S1/labels", "", None),
        ),
        (
            "stale timestamp",
            signed("POST", "/v1/inventory", REPORT, Some("k"), t - 3600),
        ),
    ];
    for (what, req) in refused {
        let (status, body, _) = send(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(calls.get(), 0, "{what}: a refused request called a store");
    }
    assert!(events.events().is_empty());
    assert!(
        state.orders.get().is_none()
            && state.fulfilment.get().is_none()
            && state.report_links.get().is_none(),
        "a refused request built a capability over the tables"
    );
    // The counters count: a signed request does reach the stores.
    let (status, body, _) = send(
        &app,
        signed("POST", "/v1/inventory", REPORT, Some("k2"), now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(calls.get() > 0);
}
