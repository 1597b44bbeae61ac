//! Both HMAC keys rotated mid-traffic on a stack in moto (`flexbridge secret rotate both`: a
//! new version of the stack secret with a new `signing_key`, and `put-secret-value` moves the old
//! version to `AWSPREVIOUS`): the warehouse keeps signing with the old key for a while, then with
//! the new one (and some requests still with the old one), and the webhook receiver switches
//! from the old key to the new one while events are in flight. No request is refused, every
//! event is delivered once verified, nothing reaches the DLQ (docs/keys.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flexbridge::warehouse::signing;
use flexbridge_e2e::flexbridge_local::RunnerOptions;
use flexbridge_e2e::{TestOptions, TestStack};
use serde_json::Value;

const API: &str = "WarehouseApiFunction";
const WEBHOOK_FN: &str = "OutboundWebhookFunction";

/// A webhook receiver that knows one key at a time, as a seller's would.
#[derive(Clone, Default)]
struct Receiver {
    key: Arc<Mutex<String>>,
    /// Event ID → the key it verified with, for every accepted delivery.
    verified: Arc<Mutex<BTreeMap<String, String>>>,
    refused: Arc<Mutex<usize>>,
    /// Signatures per delivery (two during the rotation window).
    signatures: Arc<Mutex<Vec<usize>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let key = r.key.lock().unwrap().clone();
    let event_id = h("idempotency-key").unwrap_or_default().to_string();
    let signed = signing::Signed::new("POST", "/hook", body.as_bytes())
        .content_type(h("content-type").unwrap_or_default())
        .idempotency_key(&event_id);
    let sig = h(signing::SIGNATURE_HEADER).unwrap_or_default();
    r.signatures.lock().unwrap().push(sig.split(',').count());
    match signing::verify(
        key.as_bytes(),
        h(signing::TIMESTAMP_HEADER),
        Some(sig),
        &signed,
        signing::now_unix(),
        false,
    ) {
        Ok(_) => {
            r.verified.lock().unwrap().insert(event_id, key);
            StatusCode::OK
        }
        Err(_) => {
            *r.refused.lock().unwrap() += 1;
            StatusCode::UNAUTHORIZED
        }
    }
}

/// Posts a test event signed with `key`, as the warehouse does; the event ID from the answer.
async fn send(base: &str, key: &str, n: usize) -> Result<(u16, Value)> {
    let path = "/v1/events/test";
    let body = format!(r#"{{"message":"event {n}"}}"#);
    let idempotency_key = format!("rotation-{n}");
    let signed = signing::Signed::new("POST", path, body.as_bytes())
        .content_type("application/json")
        .idempotency_key(&idempotency_key);
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("idempotency-key", &idempotency_key)
        .body(body.clone());
    for (name, value) in signing::signed_headers(key.as_bytes(), signing::now_unix(), &signed) {
        req = req.header(name, value);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// The operator CLI on this stack, as the seller runs it.
async fn cli(t: &TestStack, args: &[&str]) -> Result<String, flexbridge_cli::CliError> {
    let mut all = vec!["flexbridge", "--stack", t.stack.name.as_str()];
    all.extend_from_slice(args);
    let vars = HashMap::from([("AWS_ENDPOINT_URL".to_string(), t.endpoint().to_string())]);
    flexbridge_cli::run_with(all, vars).await
}

/// The current key of one side (`flexbridge secret show-key`).
async fn show_key(t: &TestStack, which: &str) -> Result<String> {
    let out = cli(t, &["secret", "show-key", which, "--json"]).await?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(v["value"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn both_keys_rotate_mid_traffic_with_no_request_refused_and_no_event_undelivered(
) -> Result<()> {
    flexbridge_e2e::init_logging();
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let t = TestStack::start_with(
        "key_rotation",
        TestOptions {
            simulator: false,
            parameters: vec![("WebhookUrl".into(), url)],
            ..Default::default()
        },
    )
    .await?;
    // The seed's put-secret-value already made the template's random key AWSPREVIOUS, so
    // deliveries carry two signatures from the start; neither is the new key yet.
    let old_warehouse_key = t.seller.warehouse_key.clone();
    assert_eq!(show_key(&t, "warehouse").await?, old_warehouse_key);
    assert_eq!(show_key(&t, "webhook").await?, t.seller.webhook_key);
    *receiver.key.lock().unwrap() = t.seller.webhook_key.clone();
    let runner = t
        .runner(RunnerOptions {
            only: Some([API, WEBHOOK_FN].iter().map(|s| s.to_string()).collect()),
            run_schedules: false,
            ..Default::default()
        })
        .await?;
    let base = runner
        .function_url(API)
        .expect("Function URL served")
        .to_string();

    // One stream of warehouse requests; the rotation happens inside it.
    const REQUESTS: usize = 30;
    let mut accepted = BTreeSet::new();
    let mut refused = Vec::new();
    let mut signed_with = BTreeMap::<&str, usize>::new();
    let (mut new_warehouse_key, mut new_webhook_key) = (String::new(), String::new());
    for n in 0..REQUESTS {
        if n == 8 {
            // The seed's version is less than a day old and its keys differ from the generated
            // one before it: a new version would end that window, so the CLI asks first.
            let refused = cli(&t, &["secret", "rotate", "both"]).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("--end-window")),
                "{refused:?}"
            );
            // The seller rotates both keys: the API's and the webhook function's caches still
            // hold the old ones.
            cli(&t, &["secret", "rotate", "both", "--end-window"]).await?;
            new_warehouse_key = show_key(&t, "warehouse").await?;
            new_webhook_key = show_key(&t, "webhook").await?;
            assert!(
                new_warehouse_key != old_warehouse_key && new_webhook_key != t.seller.webhook_key
            );
            assert_ne!(new_warehouse_key, new_webhook_key);
        }
        if n == 14 {
            // The receiver switches to the new key while events are still on their way.
            *receiver.key.lock().unwrap() = new_webhook_key.clone();
        }
        // Before 14 the warehouse has only the old key; from 14 it signs with the new one,
        // except a straggler every third request (a second warehouse process not yet updated).
        let key = if n < 14 || n % 3 == 0 {
            ("old", old_warehouse_key.as_str())
        } else {
            ("new", new_warehouse_key.as_str())
        };
        *signed_with.entry(key.0).or_default() += 1;
        let (status, body) = send(&base, key.1, n).await?;
        if status == 202 {
            accepted.insert(body["eventId"].as_str().unwrap_or_default().to_string());
        } else {
            refused.push((n, key.0, status, body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused.is_empty(),
        "refused across the rotation: {refused:?}"
    );
    assert_eq!(accepted.len(), REQUESTS);
    assert!(
        signed_with["old"] > 14 && signed_with["new"] > 10,
        "{signed_with:?}"
    );

    t.eventually(
        Duration::from_secs(60),
        "every event delivered and verified",
        || {
            let verified: BTreeSet<String> =
                receiver.verified.lock().unwrap().keys().cloned().collect();
            let done = accepted.is_subset(&verified);
            async move { Ok(done.then_some(())) }
        },
    )
    .await?;
    let verified = receiver.verified.lock().unwrap().clone();
    let with_new = verified.values().filter(|k| **k == new_webhook_key).count();
    assert!(
        with_new > 0,
        "some events verified at the receiver holding only the new key"
    );
    // The receiver held only the new key from request 14 on: every later event verified with it.
    assert_eq!(
        verified.len(),
        REQUESTS,
        "each event once (the receiver keeps the last key that verified it)"
    );
    t.eventually(Duration::from_secs(20), "the queue drained", || async {
        Ok((t.queue_depth("OutboundQueue").await? == 0).then_some(()))
    })
    .await?;
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0);
    let stats = runner.function_stats(WEBHOOK_FN);
    assert_eq!(
        stats.messages_failed, 0,
        "no delivery waited for a retry: {stats:?}"
    );
    let signatures = receiver.signatures.lock().unwrap().clone();
    assert!(
        signatures.iter().all(|n| (1..=2).contains(n)) && signatures.contains(&2),
        "two signatures during the window: {signatures:?}"
    );
    eprintln!(
        "key rotation: {REQUESTS} requests accepted ({signed_with:?}), {} events verified \
         ({with_new} with the new webhook key), {} deliveries refused by the receiver and sent \
         again at once, signatures per delivery {signatures:?}",
        verified.len(),
        receiver.refused.lock().unwrap()
    );
    runner.stop().await;
    Ok(())
}
