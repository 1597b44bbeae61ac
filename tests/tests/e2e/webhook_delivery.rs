//! Delivery against a tiny local webhook: signed 2xx is done, 5xx is retried, a wrong key or URL
//! (401/403/404) is retried and alarmed, a refused event and garbage go to the DLQ with the
//! reason, no webhook means acknowledge (the bus archive keeps the event).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flexbridge::events::{EventName, OutboundEvent, WebhookTest};
use flexbridge::runtime::{Function, Invocation, SqsConsumer};
use flexbridge::secrets::SecretCache;
use flexbridge::warehouse::signing;
use outbound_webhook::{Delivery, OutboundWebhook, Webhook};
use serde_json::{json, Value};

const ARN: &str = "arn:webhook";
const SECRET: &str = "whsec_out";

#[derive(Clone, Default)]
struct Receiver {
    status: Arc<Mutex<u16>>,
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    r.got.lock().unwrap().push((headers, body));
    StatusCode::from_u16(*r.status.lock().unwrap()).unwrap()
}

async fn start_receiver(status: u16) -> (Receiver, String) {
    let r = Receiver::default();
    *r.status.lock().unwrap() = status;
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/hook?tenant=a"))
}

fn function(url: &str) -> OutboundWebhook {
    OutboundWebhook::new(
        Some(Webhook {
            url: url.parse().unwrap(),
            secrets: SecretCache::from_static(HashMap::from([(
                ARN.into(),
                json!({"webhook_key": SECRET}).to_string(),
            )])),
            secret_arn: ARN.into(),
        }),
        SqsConsumer::in_memory("webhook").0,
    )
}

fn bus_message(id: &str, event: &OutboundEvent) -> SqsMessage {
    let body = json!({
        "version": "0", "id": "eb-1", "detail-type": event.name.as_str(), "source": "flexbridge",
        "account": "123456789012", "time": "2026-11-21T08:00:00Z", "region": "us-east-1",
        "resources": [], "detail": event.detail(),
    });
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(body.to_string());
    m
}

fn test_event() -> OutboundEvent {
    OutboundEvent::new(
        EventName::WebhookTest,
        "k1",
        chrono::Utc::now(),
        WebhookTest {
            message: "hi".into(),
        },
    )
    .unwrap()
}

fn inv() -> Invocation {
    Invocation::new("r", Duration::from_secs(30))
}

#[tokio::test]
async fn delivers_signed_with_event_headers() {
    let (r, url) = start_receiver(204).await;
    let f = function(&url);
    let event = test_event();
    let out = f.deliver(&bus_message("m1", &event), &inv()).await;
    assert_eq!(out, Delivery::Delivered { status: 204 });
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(h("x-flexbridge-event"), Some("WebhookTest"));
    assert_eq!(h("x-flexbridge-event-id"), Some(event.event_id.as_str()));
    // The event ID travels as the Idempotency-Key and is signed (v2) with the content type.
    assert_eq!(h("idempotency-key"), Some(event.event_id.as_str()));
    let signed = signing::Signed::new("POST", "/hook?tenant=a", body.as_bytes())
        .content_type(h("content-type").unwrap())
        .idempotency_key(h("idempotency-key").unwrap());
    let verified = signing::verify(
        SECRET.as_bytes(),
        h("x-flexbridge-timestamp"),
        h("x-flexbridge-signature"),
        &signed,
        signing::now_unix(),
        false,
    )
    .expect("signature verifies with the webhook secret");
    assert_eq!(verified.scheme, signing::Scheme::V2);
    // Another event ID in the key header would not verify.
    assert!(signing::verify(
        SECRET.as_bytes(),
        h("x-flexbridge-timestamp"),
        h("x-flexbridge-signature"),
        &signed.idempotency_key("another-event"),
        signing::now_unix(),
        false,
    )
    .is_err());
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["event"], "WebhookTest");
    assert_eq!(body["version"], "1");
    assert_eq!(body["eventId"], event.event_id.as_str());
    assert_eq!(body["message"], "hi");
}

#[tokio::test]
async fn batch_reports_only_messages_to_retry() {
    let (_r500, url500) = start_receiver(500).await;
    let event = test_event();
    let mut garbage = SqsMessage::default();
    garbage.message_id = Some("bad".into());
    garbage.body = Some("not json".into());
    let mut batch = SqsEvent::default();
    batch.records = vec![
        bus_message("m1", &event),
        garbage,
        bus_message("m2", &event),
    ];
    let payload = serde_json::to_value(&batch).unwrap();

    let out = function(&url500)
        .invoke(payload.clone(), inv())
        .await
        .unwrap();
    let failed: Vec<&str> = out["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        vec!["m1", "m2"],
        "garbage goes to the DLQ, 500s are retried"
    );

    let (_r400, url400) = start_receiver(401).await;
    let out = function(&url400)
        .invoke(payload.clone(), inv())
        .await
        .unwrap();
    assert_eq!(
        out["batchItemFailures"].as_array().unwrap().len(),
        2,
        "a wrong key is not the events' fault: kept and retried"
    );

    let (_r200, url200) = start_receiver(200).await;
    let out = function(&url200)
        .invoke(payload.clone(), inv())
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]));

    let out = OutboundWebhook::new(None, SqsConsumer::in_memory("webhook").0)
        .invoke(payload, inv())
        .await
        .unwrap();
    assert_eq!(
        out["batchItemFailures"],
        json!([]),
        "no webhook: acknowledge"
    );
}

#[tokio::test]
async fn unreachable_webhook_is_retried() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let out = function(&url)
        .deliver(&bus_message("m1", &test_event()), &inv())
        .await;
    assert!(matches!(out, Delivery::Retry { .. }), "{out:?}");
}

#[tokio::test]
async fn a_refused_event_and_garbage_are_parked_with_the_reason_a_wrong_key_never() {
    let (r, url) = start_receiver(422).await;
    let webhook = || Webhook {
        url: url.parse().unwrap(),
        secrets: SecretCache::from_static(HashMap::from([(
            ARN.into(),
            json!({"webhook_key": SECRET}).to_string(),
        )])),
        secret_arn: ARN.into(),
    };
    let (consumer, dlq, metrics) = SqsConsumer::in_memory("webhook");
    let f = OutboundWebhook::new(Some(webhook()), consumer);
    let mut garbage = SqsMessage::default();
    garbage.message_id = Some("bad".into());
    garbage.body = Some("not json".into());
    let mut batch = SqsEvent::default();
    batch.records = vec![bus_message("m1", &test_event()), garbage];
    let out = f.handle(batch.clone(), &inv()).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let parked = dlq.parked();
    let reasons: Vec<&str> = parked.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(parked.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("webhook refused the event with 422"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("not an EventBridge event"),
        "{reasons:?}"
    );
    assert_eq!(parked[1].body, "not json");
    assert_eq!(
        metrics.alerts(flexbridge::metrics::Alert::MessageParked),
        2.0
    );

    // The same event against a wrong key: the configuration's fault, kept and alarmed.
    *r.status.lock().unwrap() = 401;
    let (consumer, dlq, metrics) = SqsConsumer::in_memory("webhook");
    let f = OutboundWebhook::new(Some(webhook()), consumer);
    batch.records.truncate(1);
    let out = f.handle(batch, &inv()).await;
    assert_eq!(out.batch_item_failures.len(), 1);
    assert!(dlq.parked().is_empty());
    assert_eq!(metrics.alerts(flexbridge::metrics::Alert::Environment), 1.0);
}

/// A receiver that verifies with the one key it holds, answering 401 otherwise.
#[derive(Clone, Default)]
struct KeyedReceiver {
    key: Arc<Mutex<String>>,
    /// (signatures in the header, accepted) per request.
    got: Arc<Mutex<Vec<(usize, bool)>>>,
}

async fn receive_keyed(
    State(r): State<KeyedReceiver>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let signed = signing::Signed::new("POST", "/hook", body.as_bytes())
        .content_type(h("content-type").unwrap_or_default())
        .idempotency_key(h("idempotency-key").unwrap_or_default());
    let key = r.key.lock().unwrap().clone();
    let sig = h(signing::SIGNATURE_HEADER).unwrap_or_default();
    let ok = signing::verify(
        key.as_bytes(),
        h(signing::TIMESTAMP_HEADER),
        Some(sig),
        &signed,
        signing::now_unix(),
        false,
    )
    .is_ok();
    r.got.lock().unwrap().push((sig.split(',').count(), ok));
    if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

#[tokio::test]
async fn a_rotated_key_is_reread_on_401_and_both_signatures_sent_at_once() {
    let r = KeyedReceiver::default();
    *r.key.lock().unwrap() = "old".into();
    let app = axum::Router::new()
        .route("/hook", post(receive_keyed))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let secrets = SecretCache::from_static(HashMap::from([(
        ARN.into(),
        json!({"webhook_key": "old"}).to_string(),
    )]));
    let f = OutboundWebhook::new(
        Some(Webhook {
            url: url.parse().unwrap(),
            secrets: secrets.clone(),
            secret_arn: ARN.into(),
        }),
        SqsConsumer::in_memory("webhook").0,
    );
    let (message, invocation) = (bus_message("m1", &test_event()), inv());
    let deliver = || f.deliver(&message, &invocation);
    assert_eq!(deliver().await, Delivery::Delivered { status: 200 });
    assert_eq!(
        *r.got.lock().unwrap(),
        vec![(1, true)],
        "one key, one signature"
    );

    // Rotated (our cache still holds only "old"), and the receiver switches at once: the first
    // attempt is refused, the key is re-read, and the same delivery is sent again with both.
    secrets.put_static(
        ARN,
        &json!({"webhook_key": "new"}).to_string(),
        chrono::Utc::now(),
    );
    *r.key.lock().unwrap() = "new".into();
    assert_eq!(deliver().await, Delivery::Delivered { status: 200 });
    assert_eq!(r.got.lock().unwrap()[1..], [(1, false), (2, true)]);
    // A receiver still on the old key verifies the two-signature delivery too.
    *r.key.lock().unwrap() = "old".into();
    assert_eq!(deliver().await, Delivery::Delivered { status: 200 });
    assert_eq!(r.got.lock().unwrap()[3..], [(2, true)]);

    // A key the receiver has that we never had: refused, nothing newer to read (the re-read
    // is rate-limited; the cache holds what it would find), kept for a retry and alarmed.
    let reads = secrets.fetch_count();
    *r.key.lock().unwrap() = "unknown".into();
    assert!(matches!(deliver().await, Delivery::Misconfigured { .. }));
    assert_eq!(r.got.lock().unwrap()[4..], [(2, false)], "sent once");
    assert_eq!(secrets.fetch_count(), reads, "no Secrets Manager read");
}
