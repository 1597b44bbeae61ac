//! The warehouse interface end to end, on a stack provisioned from template.yaml in moto:
//! the warehouse API served by the local runner (as the Function URL), signed requests accepted
//! and bad ones refused with nothing written, idempotent replays, and events travelling
//! bus → OutboundQueue → outbound-webhook → a local webhook, with retries and the DLQ.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flexbridge::store::inventory::{DynamoInventoryStore, OnHandStore};
use flexbridge::warehouse::signing;
use flexbridge_e2e::flexbridge_local::RunnerOptions;
use flexbridge_e2e::{TestOptions, TestStack};
use serde_json::{json, Value};

const API: &str = "WarehouseApiFunction";
const WEBHOOK_FN: &str = "OutboundWebhookFunction";

fn only(ids: &[&str]) -> Option<BTreeSet<String>> {
    Some(ids.iter().map(|s| s.to_string()).collect())
}

async fn stack(name: &str, parameters: Vec<(String, String)>) -> Result<TestStack> {
    flexbridge_e2e::init_logging();
    TestStack::start_with(
        name,
        TestOptions {
            simulator: false,
            parameters,
            ..Default::default()
        },
    )
    .await
}

/// A signed request as the warehouse would send it.
struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
    sent: AtomicI64,
}

struct Reply {
    status: u16,
    body: Value,
    replayed: bool,
}

impl Client {
    fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_string(),
            key: key.to_string(),
            http: reqwest::Client::new(),
            sent: AtomicI64::new(0),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        idempotency_key: Option<&str>,
        timestamp: i64,
    ) -> Result<Reply> {
        let mut req = self
            .http
            .request(method.parse()?, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        let mut signed =
            signing::Signed::new(method, path, body.as_bytes()).content_type("application/json");
        signed.idempotency_key = idempotency_key;
        for (name, value) in signing::signed_headers(self.key.as_bytes(), timestamp, &signed) {
            req = req.header(name, value);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        Self::reply(req.send().await?).await
    }

    /// A timestamp no earlier request of this client used: every request is signed afresh
    /// (a signature is good once), as a warehouse signs each attempt.
    fn fresh_timestamp(&self) -> i64 {
        signing::now_unix() - self.sent.fetch_add(1, Ordering::SeqCst)
    }

    async fn reply(resp: reqwest::Response) -> Result<Reply> {
        let status = resp.status().as_u16();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let text = resp.text().await?;
        Ok(Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            replayed,
        })
    }

    async fn post(&self, path: &str, body: &str, key: &str) -> Result<Reply> {
        self.send("POST", path, body, Some(key), self.fresh_timestamp())
            .await
    }
}

async fn item_count(t: &TestStack, table_logical_id: &str) -> Result<i32> {
    let out = t
        .dynamodb
        .scan()
        .table_name(t.stack.table(table_logical_id))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.count())
}

/// Idempotency claims of warehouse requests (the table also holds used signatures).
async fn claim_count(t: &TestStack) -> Result<usize> {
    let out = t
        .dynamodb
        .scan()
        .table_name(t.stack.table("IdempotencyTable"))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out
        .items()
        .iter()
        .filter(|i| i["id"].as_s().is_ok_and(|id| id.starts_with("warehouse#")))
        .count())
}

const REPORT: &str = r#"{"items":[{"hub":"HUB-NJ","sku":"MUG-01","onHand":12},{"hub":"HUB-NJ","sku":"TEE-M","onHand":0}]}"#;

#[tokio::test]
async fn signed_requests_are_accepted_bad_ones_refused_and_nothing_is_written() -> Result<()> {
    let t = stack("warehouse_api_refusals", vec![]).await?;
    let runner = t
        .runner(RunnerOptions {
            only: only(&[API]),
            run_schedules: false,
            poll_queues: false,
            ..Default::default()
        })
        .await?;
    let base = runner.function_url(API).expect("Function URL served");
    let api = Client::new(base, &t.seller.warehouse_key);
    let now = signing::now_unix();

    let health = api.send("GET", "/v1/health", "", None, now).await?;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["status"], "ok");

    // Every refusal, each with its own status and code.
    let big = format!(r#"{{"items":[],"pad":"{}"}}"#, "x".repeat(300 * 1024));
    let wrong_key = Client::new(base, "not-the-warehouse-key");
    let raw = reqwest::Client::new();
    let unsigned = Client::reply(
        raw.post(format!("{base}/v1/inventory"))
            .header("Idempotency-Key", "k-unsigned")
            .body(REPORT)
            .send()
            .await?,
    )
    .await?;
    let tampered = {
        let signed = signing::Signed::new("POST", "/v1/inventory", REPORT.as_bytes())
            .idempotency_key("k-tampered");
        let [(tn, tv), (sn, sv)] =
            signing::signed_headers(t.seller.warehouse_key.as_bytes(), now, &signed);
        Client::reply(
            raw.post(format!("{base}/v1/inventory"))
                .header(tn, tv)
                .header(sn, sv)
                .header("Idempotency-Key", "k-tampered")
                .body(REPORT.replace("12", "120"))
                .send()
                .await?,
        )
        .await?
    };
    let refusals = vec![
        ("unsigned", unsigned, 401, "missing_timestamp"),
        ("body changed after signing", tampered, 401, "invalid_signature"),
        (
            "wrong key",
            wrong_key.post("/v1/inventory", REPORT, "k-wrong").await?,
            401,
            "invalid_signature",
        ),
        (
            "stale timestamp",
            api.send("POST", "/v1/inventory", REPORT, Some("k-stale"), now - 301)
                .await?,
            401,
            "stale_timestamp",
        ),
        (
            "missing Idempotency-Key",
            api.send("POST", "/v1/inventory", REPORT, None, api.fresh_timestamp())
                .await?,
            400,
            "missing_idempotency_key",
        ),
        (
            "malformed JSON",
            api.post("/v1/inventory", r#"{"items":[{"hub":"HUB-NJ""#, "k-malformed")
                .await?,
            400,
            "malformed_json",
        ),
        (
            "wrong field type",
            api.post(
                "/v1/inventory",
                r#"{"items":[{"hub":"HUB-NJ","sku":"MUG-01","onHand":"twelve"}]}"#,
                "k-type",
            )
            .await?,
            400,
            "invalid_body",
        ),
        (
            "duplicate item",
            api.post(
                "/v1/inventory",
                r#"{"items":[{"hub":"HUB-NJ","sku":"MUG-01","onHand":1},{"hub":"HUB-NJ","sku":"MUG-01","onHand":2}]}"#,
                "k-dup",
            )
            .await?,
            422,
            "duplicate_item",
        ),
        (
            "oversized body",
            api.post("/v1/inventory", &big, "k-big").await?,
            413,
            "body_too_large",
        ),
        (
            "unknown route",
            api.post("/v1/nothing-here", "{}", "k-404").await?,
            404,
            "route_not_found",
        ),
    ];
    for (what, reply, status, code) in &refusals {
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], *code, "{what}: {}", reply.body);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: a message says what to fix"
        );
    }
    assert_eq!(
        item_count(&t, "InventoryTable").await?,
        0,
        "a refusal wrote stock"
    );
    assert_eq!(
        claim_count(&t).await?,
        0,
        "a refusal left an idempotency claim"
    );

    // The good request, then its replay, then the key reused for something else.
    let first = api.post("/v1/inventory", REPORT, "report-0001").await?;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["accepted"], 2);
    assert!(!first.replayed);
    let store = DynamoInventoryStore::new(t.dynamodb.clone(), t.stack.table("InventoryTable"));
    let mug = store.on_hand("HUB-NJ", "MUG-01").await?.expect("stored");
    assert_eq!(mug.on_hand, 12);
    assert_eq!(store.on_hand("HUB-NJ", "TEE-M").await?.unwrap().on_hand, 0);

    // The warehouse changes stock meanwhile; a replay of the old request must not undo it.
    let newer = r#"{"items":[{"hub":"HUB-NJ","sku":"MUG-01","onHand":7}]}"#;
    assert_eq!(
        api.post("/v1/inventory", newer, "report-0002")
            .await?
            .status,
        200
    );
    let again = api.post("/v1/inventory", REPORT, "report-0001").await?;
    assert_eq!(again.status, 200);
    assert!(again.replayed, "the saved response is replayed");
    assert_eq!(again.body, first.body);
    assert_eq!(store.on_hand("HUB-NJ", "MUG-01").await?.unwrap().on_hand, 7);

    let reused = api.post("/v1/inventory", newer, "report-0001").await?;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    assert_eq!(claim_count(&t).await?, 2);

    runner.stop().await;
    Ok(())
}

/// Sends `POST /v1/events/test` exactly as given: the headers of a signed request someone
/// captured, with the `Idempotency-Key` they choose.
async fn resend(base: &str, headers: &[(&str, String)], key: &str, body: &str) -> Result<Reply> {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/events/test"))
        .header("content-type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    Client::reply(req.send().await?).await
}

#[tokio::test]
async fn a_captured_request_runs_once_and_v1_is_refused_by_default() -> Result<()> {
    let t = stack("warehouse_api_replays", vec![]).await?;
    let runner = t
        .runner(RunnerOptions {
            only: only(&[API]),
            run_schedules: false,
            poll_queues: false,
            ..Default::default()
        })
        .await?;
    let base = runner.function_url(API).expect("Function URL served");
    let secret = t.seller.warehouse_key.as_bytes();
    let body = r#"{"message":"once"}"#;
    let now = signing::now_unix();
    let signed = signing::Signed::new("POST", "/v1/events/test", body.as_bytes())
        .content_type("application/json")
        .idempotency_key("capture-1");
    let captured = signing::signed_headers(secret, now, &signed);

    let first = resend(base, &captured, "capture-1", body).await?;
    assert_eq!(first.status, 202, "{}", first.body);
    // The same signed request with a fresh key: the key is signed, so it no longer matches.
    let fresh_key = resend(base, &captured, "capture-2", body).await?;
    assert_eq!(fresh_key.status, 401, "{}", fresh_key.body);
    assert_eq!(fresh_key.body["error"]["code"], "invalid_signature");
    // The same signed request again, unchanged: a signature is good once.
    let again = resend(base, &captured, "capture-1", body).await?;
    assert_eq!(again.status, 401, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "signature_reused");
    // v1 is refused unless the stack's setting accepts it.
    let v1 = [
        (signing::TIMESTAMP_HEADER, (now - 1).to_string()),
        (
            signing::SIGNATURE_HEADER,
            signing::sign_v1(secret, now - 1, &signed),
        ),
    ];
    let refused = resend(base, &v1, "capture-3", body).await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "signature_v1_refused");
    assert_eq!(claim_count(&t).await?, 1, "the route ran once");
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn v1_is_accepted_while_migrating_but_still_only_once() -> Result<()> {
    let t = stack(
        "warehouse_api_v1",
        vec![("WarehouseAcceptV1Signatures".into(), "true".into())],
    )
    .await?;
    let runner = t
        .runner(RunnerOptions {
            only: only(&[API]),
            run_schedules: false,
            poll_queues: false,
            ..Default::default()
        })
        .await?;
    let base = runner.function_url(API).expect("Function URL served");
    let body = r#"{"message":"legacy"}"#;
    let now = signing::now_unix();
    let signed = signing::Signed::new("POST", "/v1/events/test", body.as_bytes());
    let v1 = [
        (signing::TIMESTAMP_HEADER, now.to_string()),
        (
            signing::SIGNATURE_HEADER,
            signing::sign_v1(t.seller.warehouse_key.as_bytes(), now, &signed),
        ),
    ];
    let first = resend(base, &v1, "legacy-1", body).await?;
    assert_eq!(first.status, 202, "{}", first.body);
    // v1 does not cover the key, so a fresh key keeps the signature valid: the one-use rule is
    // what stops the replay.
    let replay = resend(base, &v1, "legacy-2", body).await?;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert_eq!(replay.body["error"]["code"], "signature_reused");
    assert_eq!(claim_count(&t).await?, 1, "the route ran once");
    runner.stop().await;
    Ok(())
}

/// A local stand-in for the warehouse's webhook: answers with the scripted statuses in turn
/// (the last one repeats) and records what it got.
#[derive(Clone)]
struct Webhook {
    script: Arc<Vec<u16>>,
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receive(State(w): State<Webhook>, headers: HeaderMap, body: String) -> StatusCode {
    let mut got = w.got.lock().unwrap();
    got.push((headers, body));
    let status = w.script[(got.len() - 1).min(w.script.len() - 1)];
    StatusCode::from_u16(status).unwrap()
}

async fn start_webhook(script: Vec<u16>) -> Result<(Webhook, String)> {
    let w = Webhook {
        script: Arc::new(script),
        got: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/flexbridge/events", post(receive))
        .with_state(w.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/flexbridge/events", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((w, url))
}

#[tokio::test]
async fn a_test_event_reaches_the_bus_and_the_webhook_signed() -> Result<()> {
    let (hook, url) = start_webhook(vec![200]).await?;
    let t = stack(
        "warehouse_events_webhook",
        vec![("WebhookUrl".into(), url.clone())],
    )
    .await?;
    let runner = t
        .runner(RunnerOptions {
            only: only(&[API, WEBHOOK_FN]),
            run_schedules: false,
            ..Default::default()
        })
        .await?;
    let api = Client::new(runner.function_url(API).unwrap(), &t.seller.warehouse_key);

    let reply = api
        .post(
            "/v1/events/test",
            r#"{"message":"hello warehouse"}"#,
            "test-event-1",
        )
        .await?;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let event_id = reply.body["eventId"].as_str().unwrap().to_string();

    let (headers, body) = t
        .eventually(Duration::from_secs(30), "the webhook delivery", || {
            let got = hook.got.lock().unwrap().first().cloned();
            async move { Ok(got) }
        })
        .await?;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(h("x-flexbridge-event"), Some("WebhookTest"));
    assert_eq!(h("x-flexbridge-event-id"), Some(event_id.as_str()));
    assert_eq!(h("idempotency-key"), Some(event_id.as_str()));
    let signed = signing::Signed::new("POST", "/flexbridge/events", body.as_bytes())
        .content_type(h("content-type").unwrap_or_default())
        .idempotency_key(h("idempotency-key").unwrap_or_default());
    signing::verify(
        t.seller.webhook_key.as_bytes(),
        h("x-flexbridge-timestamp"),
        h("x-flexbridge-signature"),
        &signed,
        signing::now_unix(),
        false,
    )
    .expect("the delivery is signed (v2) with the webhook secret");
    let body: Value = serde_json::from_str(&body)?;
    assert_eq!(body["event"], "WebhookTest");
    assert_eq!(body["version"], "1");
    assert_eq!(body["eventId"], event_id.as_str());
    assert_eq!(body["message"], "hello warehouse");
    assert!(body["occurredAt"].as_str().is_some());

    // Delivered once, acknowledged, nothing left behind.
    t.eventually(Duration::from_secs(10), "the message deleted", || async {
        Ok((runner.function_stats(WEBHOOK_FN).messages_ok == 1).then_some(()))
    })
    .await?;
    assert_eq!(t.queue_depth("OutboundQueue").await?, 0);
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0);
    assert_eq!(hook.got.lock().unwrap().len(), 1);
    runner.stop().await;
    Ok(())
}

async fn outbound_run(
    name: &str,
    script: Vec<u16>,
) -> Result<(
    TestStack,
    Webhook,
    flexbridge_e2e::flexbridge_local::Runner,
    String,
)> {
    let (hook, url) = start_webhook(script).await?;
    let t = stack(name, vec![("WebhookUrl".into(), url)]).await?;
    // An hour passes in a second: the queue's 180 s visibility timeout, and each retry delay
    // (5 minutes doubling to an hour, over 16 receives: about 12 hours) in a second or so.
    let runner = t
        .runner(RunnerOptions {
            only: only(&[API, WEBHOOK_FN]),
            run_schedules: false,
            speedup: 3600.0,
            ..Default::default()
        })
        .await?;
    let api = Client::new(runner.function_url(API).unwrap(), &t.seller.warehouse_key);
    let reply = api.post("/v1/events/test", "{}", "retry-1").await?;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let event_id = reply.body["eventId"].as_str().unwrap().to_string();
    Ok((t, hook, runner, event_id))
}

#[tokio::test]
async fn a_failing_webhook_is_retried_and_then_recovers() -> Result<()> {
    let (t, hook, runner, event_id) =
        outbound_run("warehouse_webhook_recovers", vec![500, 503, 200]).await?;
    t.eventually(
        Duration::from_secs(60),
        "the third attempt to succeed",
        || async { Ok((runner.function_stats(WEBHOOK_FN).messages_ok == 1).then_some(())) },
    )
    .await?;
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "two failures, then the success");
    for (headers, _) in &got {
        assert_eq!(
            headers.get("x-flexbridge-event-id").unwrap().to_str()?,
            event_id,
            "every attempt carries the same event ID"
        );
    }
    assert_eq!(runner.function_stats(WEBHOOK_FN).messages_failed, 2);
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0);
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_ends_in_the_dlq() -> Result<()> {
    let (t, hook, runner, event_id) = outbound_run("warehouse_webhook_dlq", vec![500]).await?;
    let max_receive = t
        .stack
        .queue("OutboundQueue")
        .max_receive_count
        .expect("OutboundQueue has a redrive policy") as usize;
    t.eventually(
        Duration::from_secs(90),
        "the event in OutboundDLQ",
        || async { Ok((t.queue_depth("OutboundDLQ").await? == 1).then_some(())) },
    )
    .await?;
    // SQS counts receives, not deliveries (a receive lost on the wire counts too), so the
    // webhook sees at most maxReceiveCount attempts, and more than one.
    let got = hook.got.lock().unwrap().clone();
    assert!(
        (2..=max_receive).contains(&got.len()),
        "{} attempts for maxReceiveCount {max_receive}",
        got.len()
    );
    for (headers, _) in &got {
        assert_eq!(
            headers.get("x-flexbridge-event-id").unwrap().to_str()?,
            event_id
        );
    }
    // On its last receive the handler parks the event itself, with why, and so acknowledges
    // that one receive: at most one message "ok", the rest retried.
    let stats = runner.function_stats(WEBHOOK_FN);
    assert!(stats.messages_ok <= 1, "{stats:?}");
    assert!(stats.messages_failed >= 1, "{stats:?}");
    runner.stop().await;

    // The parked message is the original event, ready to redrive once the webhook is fixed.
    let out = t
        .sqs
        .receive_message()
        .queue_url(t.stack.queue_url("OutboundDLQ"))
        .message_attribute_names("All")
        .send()
        .await?;
    let msg = &out.messages()[0];
    let reason = msg
        .message_attributes()
        .and_then(|a| a.get(flexbridge::runtime::parked_attributes::REASON))
        .and_then(|v| v.string_value())
        .unwrap_or_default();
    assert!(
        reason.contains("webhook answered 500"),
        "the DLQ message says why: {reason:?}"
    );
    let bus_event: Value = serde_json::from_str(msg.body().unwrap())?;
    assert_eq!(bus_event["detail-type"], "WebhookTest");
    assert_eq!(bus_event["source"], "flexbridge");
    assert_eq!(bus_event["detail"]["eventId"], json!(event_id));
    assert_eq!(t.queue_depth("OutboundQueue").await?, 0);
    Ok(())
}
