//! Events flexbridge tells the warehouse about.
//!
//! Each is an EventBridge entry with `Source = "flexbridge"`, `DetailType` = the event name and
//! `Detail` = `{"version": "1", "eventId": ..., "occurredAt": ..., ...fields}`. The `eventId` is
//! derived from the event name and a business key (`ShipmentAccepted` + shipment ID), so the
//! same fact published twice (a retried invocation) carries the same ID and the warehouse can
//! drop the duplicate. Buyer addresses never go into an event.
//!
//! The field list of each event is documented in docs/events.md; the typed
//! detail structs below are that schema.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::retry::{Deadline, RetryPolicy};

pub const SOURCE: &str = "flexbridge";
/// Schema version of every event's detail. Bumped only on a breaking change.
pub const VERSION: &str = "1";
/// PutEvents accepts at most this many entries per call.
const PUT_EVENTS_BATCH: usize = 10;

/// Every event name. The wire name is the variant name (`ShipmentAccepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventName {
    ShipmentAccepted,
    ShipmentCancelled,
    ShipmentHeld,
    LabelReady,
    /// The shipment left the warehouse (reported by the warehouse, or seen at Amazon).
    ShipmentShipped,
    /// A shipment is not labelled within the configured time before its ship-by time.
    ShipByAtRisk,
    ReturnCreated,
    ReturnStatusChanged,
    UploadProcessed,
    InventoryPushHalted,
    /// Advertised stock of a SKU at a location fell to its low-stock threshold.
    InventoryLowStock,
    /// Sent on request (`POST /v1/events/test`) so a seller can check their webhook.
    WebhookTest,
    /// The daily health report is in the bucket (`reports/health/<date>.html`).
    HealthReportReady,
}

impl EventName {
    pub const ALL: [EventName; 13] = [
        EventName::ShipmentAccepted,
        EventName::ShipmentCancelled,
        EventName::ShipmentHeld,
        EventName::LabelReady,
        EventName::ShipmentShipped,
        EventName::ShipByAtRisk,
        EventName::ReturnCreated,
        EventName::ReturnStatusChanged,
        EventName::UploadProcessed,
        EventName::InventoryPushHalted,
        EventName::InventoryLowStock,
        EventName::WebhookTest,
        EventName::HealthReportReady,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EventName::ShipmentAccepted => "ShipmentAccepted",
            EventName::ShipmentCancelled => "ShipmentCancelled",
            EventName::ShipmentHeld => "ShipmentHeld",
            EventName::LabelReady => "LabelReady",
            EventName::ShipmentShipped => "ShipmentShipped",
            EventName::ShipByAtRisk => "ShipByAtRisk",
            EventName::ReturnCreated => "ReturnCreated",
            EventName::ReturnStatusChanged => "ReturnStatusChanged",
            EventName::UploadProcessed => "UploadProcessed",
            EventName::InventoryPushHalted => "InventoryPushHalted",
            EventName::InventoryLowStock => "InventoryLowStock",
            EventName::WebhookTest => "WebhookTest",
            EventName::HealthReportReady => "HealthReportReady",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The deterministic event ID for `name` about `business_key` (hex, 32 chars).
pub fn event_id(name: EventName, business_key: &str) -> String {
    let digest = Sha256::digest(format!("{}#{}", name.as_str(), business_key).as_bytes());
    hex::encode(&digest[..16])
}

/// One event ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundEvent {
    pub name: EventName,
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The event's own fields (without the envelope's).
    pub fields: Map<String, Value>,
}

impl OutboundEvent {
    /// `business_key` names the fact (shipment ID, `returnId#status`, upload key...): the same
    /// fact must give the same key. `fields` must serialize to a JSON object.
    pub fn new(
        name: EventName,
        business_key: &str,
        occurred_at: DateTime<Utc>,
        fields: impl Serialize,
    ) -> Result<Self> {
        let fields = match serde_json::to_value(fields)
            .map_err(|e| Error::Internal(format!("{name} fields: {e}")))?
        {
            Value::Object(map) => map,
            other => {
                return Err(Error::Internal(format!(
                    "{name} fields must be a JSON object, got {other}"
                )))
            }
        };
        Ok(Self {
            name,
            event_id: event_id(name, business_key),
            occurred_at,
            fields,
        })
    }

    /// The EventBridge `Detail`: the versioned envelope with the fields flattened in.
    pub fn detail(&self) -> Value {
        let mut detail = Map::new();
        detail.insert("version".into(), Value::from(VERSION));
        detail.insert("eventId".into(), Value::from(self.event_id.clone()));
        detail.insert(
            "occurredAt".into(),
            Value::from(
                self.occurred_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        );
        for (k, v) in &self.fields {
            if !detail.contains_key(k) {
                detail.insert(k.clone(), v.clone());
            }
        }
        Value::Object(detail)
    }
}

/// An event as the warehouse webhook receives it (the body we POST), also what the
/// outbound-webhook function reads back out of the EventBridge → SQS message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub version: String,
    pub event_id: String,
    pub occurred_at: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// The detail schemas (version 1). camelCase on the wire.

/// A line of a shipment as the warehouse needs it to pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentLine {
    pub sku: String,
    pub quantity: u32,
}

/// Amazon assigned a shipment to one of the seller's hubs and flexbridge confirmed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentAccepted {
    pub shipment_id: String,
    pub hub: String,
    pub location_id: String,
    pub marketplace_id: String,
    pub lines: Vec<ShipmentLine>,
    /// RFC 3339, when Amazon expects the package to be handed over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentCancelled {
    pub shipment_id: String,
    pub hub: String,
    /// `amazon` (buyer or Amazon cancelled) or `seller` (warehouse asked to cancel).
    pub cancelled_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A shipment flexbridge will not confirm on its own (e.g. unknown SKU); the seller must act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentHeld {
    pub shipment_id: String,
    pub hub: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelReady {
    pub shipment_id: String,
    pub package_id: String,
    /// S3 key of the label under `labels/`.
    pub label_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    /// Short-lived presigned GET link to the label file (print it promptly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_url: Option<String>,
    /// `x.application/zpl` (as Amazon names it), `application/pdf`, `image/png` or `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// When `label_url` (and `invoice_url`) stop working (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links_expire_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_url: Option<String>,
    /// The pickup window (epoch seconds) when Amazon gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_window: Option<serde_json::Value>,
    /// 1 for the first label of the package, +1 per reprint.
    #[serde(default)]
    pub generation: u32,
}

/// The daily health report (`shared/src/health`) is in the bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReportReady {
    /// The day the report ends with (`YYYY-MM-DD`, UTC).
    pub date: String,
    /// `reports/health/<date>.html`.
    pub report_key: String,
    /// Presigned GET link to the page.
    pub report_url: String,
    /// When `report_url` stops working (RFC 3339).
    pub link_expires_at: String,
    /// Messages waiting in the dead-letter queues when it was made.
    pub messages_parked: u64,
    /// Shipments held or unreadable, waiting for a person.
    pub waiting_for_a_person: u64,
    /// Seller-caused cancellation rate over the report's days, in percent (absent: no shipments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_cancellation_rate: Option<f64>,
}

/// A shipment not labelled `minutesBefore` its ship-by time (raised once per shipment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipByAtRisk {
    pub shipment_id: String,
    pub hub: String,
    pub ship_by: String,
    pub stage: String,
    pub minutes_before: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnCreated {
    pub return_id: String,
    pub hub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipment_id: Option<String>,
    pub sku: String,
    pub quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnStatusChanged {
    pub return_id: String,
    pub status: String,
}

/// An upload under `catalog/`, `prices/` or `inventory/` was processed; its report is at `reportKey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadProcessed {
    pub upload_key: String,
    /// `catalog`, `prices` or `inventory`.
    pub kind: String,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    pub report_key: String,
}

/// flexbridge stopped pushing inventory for a hub (or one SKU) until the seller intervenes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryPushHalted {
    pub hub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub reason: String,
    /// The Amazon location whose push stopped, and the breaker's numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skus_in_push: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skus_zeroed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skus_advertised_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_after: Option<i64>,
}

/// Advertised stock of a SKU at a location fell to (or below) its low-stock threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryLowStock {
    pub hub: String,
    pub location_id: String,
    pub sku: String,
    pub advertised: i64,
    pub threshold: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTest {
    pub message: String,
}

/// The webhook URL the outbound webhook delivers to: `https://`, or `http://` to a loopback
/// host only (a receiver on the same machine, as in the local run). Events carry shipment
/// details and label links, so nothing else travels in clear text. template.yaml's `WebhookUrl`
/// has the same rule as its `AllowedPattern`.
pub fn webhook_url(raw: &str) -> Result<url::Url> {
    let url = url::Url::parse(raw)
        .map_err(|e| Error::Config(format!("WEBHOOK_URL is not a valid URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(Error::Config(
            "WEBHOOK_URL must be an https:// URL (http:// only to localhost)".into(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Sinks

/// Where events go: EventBridge in Lambda, memory in unit tests.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes all `events` or fails; a failure may leave some published (their deterministic
    /// IDs make the retry's duplicates recognisable).
    async fn publish(&self, events: &[OutboundEvent]) -> Result<()>;
}

/// Collects events (tests).
#[derive(Debug, Default)]
pub struct MemoryEventSink {
    events: Mutex<Vec<OutboundEvent>>,
}

impl MemoryEventSink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn events(&self) -> Vec<OutboundEvent> {
        self.events.lock().expect("lock").clone()
    }
}

#[async_trait]
impl EventSink for MemoryEventSink {
    async fn publish(&self, events: &[OutboundEvent]) -> Result<()> {
        self.events.lock().expect("lock").extend_from_slice(events);
        Ok(())
    }
}

/// PutEvents to the bus named by `EVENT_BUS_NAME`, in batches of 10; entries EventBridge
/// reports as failed are retried (only those) with the project's retry policy.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    policy: RetryPolicy,
    deadline: Option<Deadline>,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            policy: RetryPolicy::default(),
            deadline: None,
        }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Never retry past this point (usually the invocation's deadline).
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn entry(&self, e: &OutboundEvent) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(e.name.as_str())
            .detail(e.detail().to_string())
            .time(aws_smithy_types::DateTime::from_millis(
                e.occurred_at.timestamp_millis(),
            ))
            .build()
    }

    /// One PutEvents call; returns the events that failed (to retry) or a call error.
    async fn put_batch(&self, batch: &[OutboundEvent]) -> Result<Vec<OutboundEvent>> {
        let out = self
            .client
            .put_events()
            .set_entries(Some(batch.iter().map(|e| self.entry(e)).collect()))
            .send()
            .await
            .map_err(|err| {
                use aws_sdk_eventbridge::error::SdkError;
                let retryable = match &err {
                    SdkError::ServiceError(e) => {
                        e.raw().status().is_server_error() || e.raw().status().as_u16() == 429
                    }
                    SdkError::ConstructionFailure(_) => false,
                    _ => true,
                };
                Error::aws(
                    "eventbridge",
                    aws_smithy_types::error::display::DisplayErrorContext(&err),
                    retryable,
                )
            })?;
        if out.failed_entry_count() == 0 {
            return Ok(Vec::new());
        }
        let mut failed = Vec::new();
        for (event, result) in batch.iter().zip(out.entries()) {
            if let Some(code) = result.error_code() {
                tracing::warn!(
                    event = %event.name,
                    event_id = %event.event_id,
                    code,
                    message = result.error_message().unwrap_or_default(),
                    "event entry failed"
                );
                failed.push(event.clone());
            }
        }
        Ok(failed)
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish(&self, events: &[OutboundEvent]) -> Result<()> {
        for chunk in events.chunks(PUT_EVENTS_BATCH) {
            let pending = Mutex::new(chunk.to_vec());
            self.policy
                .run(self.deadline, |_| {
                    let batch = pending.lock().expect("lock").clone();
                    let pending = &pending;
                    async move {
                        let failed = self.put_batch(&batch).await?;
                        if failed.is_empty() {
                            return Ok(());
                        }
                        let n = failed.len();
                        *pending.lock().expect("lock") = failed;
                        Err(Error::Transient {
                            message: format!("{n} event(s) not accepted by EventBridge"),
                            after: None,
                        })
                    }
                })
                .await?;
        }
        tracing::debug!(count = events.len(), bus = %self.bus, "events published");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_is_https_or_loopback_http() {
        for ok in [
            "https://wms.example.com/flexbridge",
            "https://wms.example.com:8443/hook?x=1",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:8080/",
        ] {
            assert!(webhook_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://wms.example.com/flexbridge",
            "http://10.0.0.5/hook",
            "ftp://wms.example.com/",
            "wms.example.com/hook",
            "",
        ] {
            assert!(
                matches!(webhook_url(refused), Err(Error::Config(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn envelope_is_versioned_with_a_deterministic_id() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let fields = ShipmentAccepted {
            shipment_id: "S1".into(),
            hub: "BER1".into(),
            location_id: "LOC1".into(),
            marketplace_id: "A1PA6795UKMFR9".into(),
            lines: vec![ShipmentLine {
                sku: "MUG-01".into(),
                quantity: 2,
            }],
            ship_by: None,
        };
        let a = OutboundEvent::new(EventName::ShipmentAccepted, "S1", at, &fields).unwrap();
        let b = OutboundEvent::new(EventName::ShipmentAccepted, "S1", Utc::now(), &fields).unwrap();
        let c = OutboundEvent::new(EventName::ShipmentCancelled, "S1", at, &fields).unwrap();
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        assert_eq!(a.event_id.len(), 32);
        let detail = a.detail();
        assert_eq!(detail["version"], "1");
        assert_eq!(detail["eventId"], a.event_id.as_str());
        assert_eq!(detail["occurredAt"], "2026-11-21T08:00:00.000Z");
        assert_eq!(detail["shipmentId"], "S1");
        assert_eq!(detail["lines"][0]["sku"], "MUG-01");
        assert!(detail.get("shipBy").is_none());
        let env: Envelope = serde_json::from_value(detail).unwrap();
        assert_eq!(env.version, "1");
        assert_eq!(env.fields["hub"], "BER1");
    }

    #[test]
    fn fields_must_be_an_object_and_cannot_override_the_envelope() {
        assert!(OutboundEvent::new(EventName::WebhookTest, "k", Utc::now(), 5).is_err());
        let e = OutboundEvent::new(
            EventName::WebhookTest,
            "k",
            Utc::now(),
            serde_json::json!({"version": "9", "message": "hi"}),
        )
        .unwrap();
        assert_eq!(e.detail()["version"], "1");
    }

    #[test]
    fn names_round_trip() {
        for n in EventName::ALL {
            assert_eq!(EventName::parse(n.as_str()), Some(n));
            assert_eq!(serde_json::to_value(n).unwrap(), n.as_str());
        }
        assert_eq!(EventName::parse("Nope"), None);
    }

    #[tokio::test]
    async fn memory_sink_collects() {
        let sink = MemoryEventSink::new();
        let e = OutboundEvent::new(
            EventName::WebhookTest,
            "k",
            Utc::now(),
            WebhookTest {
                message: "hi".into(),
            },
        )
        .unwrap();
        sink.publish(&[e.clone(), e.clone()]).await.unwrap();
        assert_eq!(sink.events().len(), 2);
    }
}
