//! The router with in-memory stores: every refusal has its code and writes nothing; a signed
//! request is served; a repeat replays.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flexbridge::events::{EventName, MemoryEventSink};
use flexbridge::idempotency::{Idempotency, MemoryIdempotencyStore};
use flexbridge::inventory::changes::StockChanges;
use flexbridge::secrets::SecretCache;
use flexbridge::store::inventory::{MemoryOnHandStore, OnHandStore};
use flexbridge::warehouse::signing;
use serde_json::{json, Value};
use tower::ServiceExt;
use warehouse_api::{router, AppState};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:warehouse";
const SECRET: &str = "whsec_unit";

struct Fixture {
    app: axum::Router,
    idem: Arc<MemoryIdempotencyStore>,
    events: Arc<MemoryEventSink>,
    on_hand: Arc<MemoryOnHandStore>,
}

fn fixture() -> Fixture {
    let idem = Arc::new(MemoryIdempotencyStore::new());
    let events = Arc::new(MemoryEventSink::new());
    let on_hand = Arc::new(MemoryOnHandStore::new());
    let state = AppState {
        secrets: SecretCache::from_static(HashMap::from([(ARN.to_string(), SECRET.to_string())])),
        warehouse_secret_arn: ARN.into(),
        idempotency: Idempotency::new(idem.clone(), Duration::from_secs(3600)),
        events: events.clone(),
        on_hand: on_hand.clone(),
        stock: Arc::new(StockChanges::in_memory(on_hand.clone(), &["BER1"])),
        env: flexbridge::Env::default(),
    };
    Fixture {
        app: router(state),
        idem,
        events,
        on_hand,
    }
}

fn signed(method: &str, path: &str, body: &str, key: Option<&str>, ts: i64) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in
        signing::signed_headers(SECRET.as_bytes(), ts, method, path, body.as_bytes())
    {
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

fn now() -> i64 {
    signing::now_unix()
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
        json!({"accepted": 1, "stored": 1, "skippedAsOlder": 0})
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
            "POST",
            "/v1/inventory",
            body.as_bytes(),
        )
    };

    let mut cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "wrong signature",
            Request::post("/v1/inventory")
                .header("x-flexbridge-timestamp", t.to_string())
                .header("x-flexbridge-signature", "0".repeat(64))
                .header("Idempotency-Key", "a")
                .body(Body::from(REPORT))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "signed with another secret",
            {
                let sig = signing::sign(b"other", t, "POST", "/v1/inventory", REPORT.as_bytes());
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
        assert!(f.idem.is_empty(), "{name}: idempotency record left behind");
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
        expiration: now() + 3600,
        in_progress_expiration: Some(until_ms),
        data: None,
        validation: Some(flexbridge::idempotency::hash_bytes(fingerprint.as_bytes())),
    }
}

#[tokio::test]
async fn a_repeat_while_the_first_still_runs_is_409_and_runs_after_it_died() {
    let f = fixture();
    // Another invocation holds the key for 20 more seconds.
    f.idem
        .insert(in_flight_record(REPORT, now() * 1000 + 20_000));
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
    f.idem.insert(in_flight_record(REPORT, now() * 1000 - 1));
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
