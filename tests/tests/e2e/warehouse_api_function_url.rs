//! The router under lambda_http, fed a Lambda Function URL event (payload format 2.0) as AWS
//! delivers it: the path, raw query string and body the warehouse signed reach the guard intact.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flexbridge::events::MemoryEventSink;
use flexbridge::idempotency::{Idempotency, MemoryIdempotencyStore};
use flexbridge::inventory::changes::StockChanges;
use flexbridge::secrets::SecretCache;
use flexbridge::store::inventory::MemoryOnHandStore;
use flexbridge::warehouse::signing;
use serde_json::{json, Value};
use tower::ServiceExt;
use warehouse_api::guard::Effect;
use warehouse_api::{guarded, lambda_invocation, routes, AppState};

const ARN: &str = "arn:warehouse";
const SECRET: &str = "whsec_lambda";

fn app() -> axum::Router {
    let probe = axum::Router::new().route(
        "/v1/probe/invocation",
        axum::routing::post(|effect: Effect| async move {
            axum::Json(json!({
                "requestId": effect.invocation.request_id,
                "remainingMs": effect.invocation.remaining().as_millis() as u64,
            }))
        }),
    );
    guarded(
        routes::v1().merge(probe),
        AppState {
            secrets: SecretCache::from_static(HashMap::from([(
                ARN.to_string(),
                json!({ "warehouse_key": SECRET }).to_string(),
            )])),
            secret_arn: ARN.into(),
            idempotency: Idempotency::new(
                Arc::new(MemoryIdempotencyStore::new()),
                Duration::from_secs(60),
            ),
            events: Arc::new(MemoryEventSink::new()),
            on_hand: Arc::new(MemoryOnHandStore::new()),
            stock: Arc::new(StockChanges::in_memory(
                Arc::new(MemoryOnHandStore::new()),
                &["BER1"],
            )),
            env: flexbridge::Env::default(),
            accept_v1_signatures: false,
            orders: Default::default(),
            fulfilment: Default::default(),
            report_links: Default::default(),
        },
    )
}

fn function_url_event(method: &str, path: &str, query: &str, body: &str, key: &str) -> String {
    let pq = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let ts = signing::now_unix();
    let signed = signing::Signed::new(method, &pq, body.as_bytes())
        .content_type("application/json")
        .idempotency_key(key);
    let sig = signing::sign(SECRET.as_bytes(), ts, &signed);
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abc123.lambda-url.eu-west-1.on.aws",
            "content-type": "application/json",
            "x-flexbridge-timestamp": ts.to_string(),
            "x-flexbridge-signature": sig,
            "idempotency-key": key,
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "wms/1.0"},
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

async fn call(event: &str) -> (u16, Value) {
    call_with(lambda_http::request::from_str(event).expect("a Function URL event")).await
}

async fn call_with(req: lambda_http::Request) -> (u16, Value) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_signed_function_url_request_is_served() {
    let body = r#"{"items":[{"hub":"BER1","sku":"MUG-01","onHand":3}]}"#;
    let (status, reply) = call(&function_url_event("POST", "/v1/inventory", "", body, "k1")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 1);

    let (status, reply) = call(&function_url_event(
        "GET",
        "/v1/health",
        "probe=1&x=a%20b",
        "",
        "k2",
    ))
    .await;
    assert_eq!(
        status, 200,
        "the raw query string is part of what was signed: {reply}"
    );
}

#[tokio::test]
async fn a_query_changed_in_transit_is_refused() {
    let event = function_url_event("GET", "/v1/health", "probe=1", "", "k");
    let (status, reply) = call(&event.replace("probe=1", "probe=2")).await;
    assert_eq!(status, 401);
    assert_eq!(reply["error"]["code"], "invalid_signature");
}

#[tokio::test]
async fn the_lambda_request_id_and_deadline_reach_the_route() {
    use lambda_http::RequestExt;
    let event = function_url_event("POST", "/v1/probe/invocation", "", "{}", "k-inv");
    let mut ctx = lambda_http::Context::default();
    ctx.request_id = "8f5e2c1a-lambda".into();
    ctx.deadline = (chrono::Utc::now().timestamp_millis() + 9_000) as u64;
    let req = lambda_http::request::from_str(&event)
        .unwrap()
        .with_lambda_context(ctx);
    // What main.rs does to every request.
    let (status, reply) = call_with(lambda_invocation(req)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["requestId"], "8f5e2c1a-lambda");
    let left = reply["remainingMs"].as_u64().unwrap();
    assert!(
        (1..=9_000).contains(&left),
        "the real deadline, not a fixed budget: {left}"
    );
}
