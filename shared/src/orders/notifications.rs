//! `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` notifications (SQS, or relayed over HTTPS):
//! de-duplicated on the notification ID through the idempotency helper, then treated as a
//! signal only: the shipment is read with getShipment and ingested, so a stale or reordered
//! notification cannot roll anything back (the store keeps the newest `lastUpdatedDateTime`).
//!
//! Only notifications that are ours are handled: Amazon delivers to a destination by its queue
//! ARN, and any SP-API app may register our queue as its destination, so a notification
//! naming another application (`NotificationMetadata.ApplicationId`) or another merchant
//! (the payload's `merchantId`) is dropped: acknowledged (it is not a failure of ours and a
//! retry cannot change it), logged with its IDs only, and counted (`NotificationsNotOurs`).
//!
//! Each notification of ours that is handled is also noted on the [`NotificationClock`]: the
//! order poller makes one pass per run while notifications flow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::idempotency::{ActionKey, Idempotency};
use crate::orders::processor::OrderProcessor;
use crate::runtime::Invocation;
use crate::shipment::{lifecycle_rank, ShipmentRecord, Stage};
use crate::spapi::{Notification, NotificationError, ShipmentStatus};
use crate::store::cursors::{CursorKind, CursorStore};

/// Where the clock is kept in the CursorsTable (one per stack: Amazon sends a seller's
/// notifications to one destination whatever the location).
const CLOCK_KEY: &str = "seller";
const CLOCK_SORT: &str = "HANDLED";
/// A container writes the clock at most this often: the poller decides in minutes, so a write
/// per notification (several per order) would buy nothing.
const NOTE_EVERY: Duration = Duration::from_secs(60);

/// When a notification of ours was last handled, kept in the CursorsTable (a conditional
/// put that never moves it back: newer wins). Shared by the consumer's invocations in one
/// container, which remember the last time they wrote.
pub struct NotificationClock {
    cursors: Arc<dyn CursorStore>,
    noted: Mutex<Option<DateTime<Utc>>>,
}

impl NotificationClock {
    pub fn new(cursors: Arc<dyn CursorStore>) -> Self {
        Self {
            cursors,
            noted: Mutex::new(None),
        }
    }

    /// Notes a notification published at `published` (Amazon's `publishTime`; never later than
    /// now, so a skewed clock cannot keep the poller trusting notifications that stopped; now
    /// when it has none). A late notification counts as of when it was sent, not received: one
    /// drained from a backlog says nothing about notifications flowing now.
    pub async fn note(&self, published: Option<DateTime<Utc>>) -> Result<()> {
        let now = Utc::now();
        let at = published.map_or(now, |p| p.min(now));
        let step = chrono::Duration::from_std(NOTE_EVERY).unwrap_or_default();
        if self
            .noted
            .lock()
            .expect("clock lock")
            .is_some_and(|t| at < t + step)
        {
            return Ok(());
        }
        self.cursors
            .advance(CursorKind::Notifications, CLOCK_KEY, CLOCK_SORT, at)
            .await?;
        *self.noted.lock().expect("clock lock") = Some(at);
        Ok(())
    }

    /// When the newest notification noted was published (by any container).
    pub async fn last(cursors: &dyn CursorStore) -> Result<Option<DateTime<Utc>>> {
        cursors
            .get(CursorKind::Notifications, CLOCK_KEY, CLOCK_SORT)
            .await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "outcome"
)]
pub enum NotificationOutcome {
    /// The shipment was read back and ingested; its stage afterwards.
    Processed { shipment_id: String, stage: String },
    /// This notification ID was handled before.
    Duplicate { shipment_id: String },
    /// The stored shipment already has the status it announces and needs nothing driven:
    /// mostly the echo of our own confirm, packages, labels or shipped.
    Known { shipment_id: String, stage: String },
    /// Another notification type (not ours to handle).
    Ignored { reason: String },
    /// Sent for another application or merchant: dropped, counted.
    NotOurs { reason: String },
}

impl NotificationOutcome {
    /// A shipment notification of this stack's (whatever was done with it).
    pub fn is_ours(&self) -> bool {
        matches!(
            self,
            Self::Processed { .. } | Self::Duplicate { .. } | Self::Known { .. }
        )
    }
}

/// What a notification must name to be this stack's: its SP-API application (App ID) and its
/// seller. An unknown one (`None`) is not checked: the stack cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ours {
    pub application_id: Option<String>,
    pub merchant_id: Option<String>,
}

impl Ours {
    /// Why `n` is not ours, if it is not. When the application is known, a notification
    /// without one is foreign too (Amazon always names it; a forgery could leave it out).
    fn application_mismatch(&self, n: &Notification) -> Option<String> {
        let ours = self.application_id.as_deref()?;
        match n.notification_metadata.application_id.as_deref() {
            Some(a) if a == ours => None,
            Some(a) => Some(format!("application {a}")),
            None => Some("no application".into()),
        }
    }

    /// A payload without a merchant is accepted: its schema is unpublished, and the shipment is
    /// read back with our own credentials anyway.
    fn merchant_mismatch(&self, merchant: Option<&str>) -> Option<String> {
        let ours = self.merchant_id.as_deref()?;
        match merchant {
            Some(m) if m != ours => Some(format!("merchant {m}")),
            _ => None,
        }
    }
}

pub struct NotificationHandler<'a> {
    pub processor: &'a OrderProcessor,
    pub idempotency: &'a Idempotency,
    pub ours: &'a Ours,
    pub clock: &'a NotificationClock,
}

impl NotificationHandler<'_> {
    /// Handles one message body. `Error::InvalidInput` = the body can never be handled (not an
    /// envelope, or no shipment ID): not retryable. A shipment notification of ours (processed,
    /// a duplicate or already known: each shows notifications reach us) is noted on the clock.
    pub async fn handle(&self, body: &str, inv: &Invocation) -> Result<NotificationOutcome> {
        let n = Notification::from_json(body).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let outcome = self.handle_parsed(&n, body, inv).await?;
        if outcome.is_ours() {
            let published = n.notification_metadata.publish_time.as_ref().map(|t| t.0);
            self.clock.note(published).await?;
        }
        Ok(outcome)
    }

    async fn handle_parsed(
        &self,
        n: &Notification,
        body: &str,
        inv: &Invocation,
    ) -> Result<NotificationOutcome> {
        if let Some(reason) = self.ours.application_mismatch(n) {
            return Ok(self.not_ours(n, reason));
        }
        let change = match n.shipment_status_change() {
            Ok(c) => c,
            Err(NotificationError::OtherType(t)) => {
                return Ok(NotificationOutcome::Ignored {
                    reason: format!("notification type {t}"),
                })
            }
            Err(e) => return Err(Error::InvalidInput(e.to_string())),
        };
        if let Some(reason) = self.ours.merchant_mismatch(change.merchant_id.as_deref()) {
            return Ok(self.not_ours(n, reason));
        }
        let shipment_id = change.shipment_id.clone();
        if shipment_id.is_empty() {
            return Err(Error::InvalidInput("notification names no shipment".into()));
        }
        // Without an ID (never seen from Amazon) the body itself is the identity.
        let id = n
            .id()
            .map(str::to_string)
            .unwrap_or_else(|| crate::idempotency::hash_bytes(body.as_bytes()));
        // A status the stored shipment is already past is old news (newer wins): reading
        // Amazon back would store nothing new. Most notifications are the late echo of our own
        // confirm, packages and labels. The same status can carry news (a line cancelled while
        // CONFIRMED, a label voided while SHIPLABEL_GENERATED), so it is read back, except on a
        // shipment that is finished (shipped, cancelled or rejected).
        if let Some(status) = &change.shipment_status {
            if let Some(r) = self.processor.shipments.get(&shipment_id).await? {
                if already_known(&r, status) {
                    return Ok(NotificationOutcome::Known {
                        shipment_id,
                        stage: r.stage.as_str().to_string(),
                    });
                }
            }
        }
        let key = ActionKey::Notification(&id).to_string();
        let processor = self.processor;
        let sid = shipment_id.clone();
        let out = self
            .idempotency
            .execute(&key, &shipment_id, inv, |_claim| async move {
                // Re-reading Amazon is safe whether or not a previous attempt got this far.
                let r = processor.refresh(&sid, inv).await?;
                Ok(r.stage.as_str().to_string())
            })
            .await?;
        Ok(if out.is_replay() {
            tracing::info!(notification_id = %id, %shipment_id, "duplicate notification ignored");
            NotificationOutcome::Duplicate { shipment_id }
        } else {
            NotificationOutcome::Processed {
                shipment_id,
                stage: out.into_value(),
            }
        })
    }
}

impl NotificationHandler<'_> {
    /// Drops a notification that is not ours: a log line with IDs only (the envelope holds no
    /// buyer data, and none is copied) and one count without a dimension of its own.
    fn not_ours(&self, n: &Notification, reason: String) -> NotificationOutcome {
        tracing::warn!(
            notification_id = n.id().unwrap_or_default(),
            notification_type = %n.notification_type,
            reason,
            "notification not ours: dropped"
        );
        self.processor
            .metrics
            .count(crate::metrics::names::NOTIFICATIONS_NOT_OURS, &[]);
        NotificationOutcome::NotOurs { reason }
    }
}

/// Where a status sits on the way from order to delivery; `None` off that way (CANCELLED).
fn forward_rank(status: &ShipmentStatus) -> Option<usize> {
    match status {
        ShipmentStatus::Cancelled => None,
        other => lifecycle_rank(other),
    }
}

/// Whether the stored shipment already holds what a notification of `status` announces: a
/// status behind the one it has (Amazon's last status as stored, or what our own steps made
/// it: labels stored means SHIPLABEL_GENERATED at least), or, once the shipment is finished,
/// its own. A cancellation is news unless the shipment is cancelled already.
fn already_known(r: &ShipmentRecord, status: &ShipmentStatus) -> bool {
    let (at_stage, finished) = match r.stage {
        Stage::Received | Stage::Confirmed | Stage::Unreadable | Stage::Held => return false,
        Stage::HandedOver | Stage::Packed | Stage::LeftAlone => (ShipmentStatus::Confirmed, false),
        Stage::Labelled => (ShipmentStatus::ShiplabelGenerated, false),
        Stage::Shipped => (ShipmentStatus::Shipped, true),
        Stage::Cancelled | Stage::Rejected => (ShipmentStatus::Cancelled, true),
    };
    if finished && (r.status == *status || at_stage == *status) {
        return true;
    }
    let known = forward_rank(&r.status).max(forward_rank(&at_stage));
    matches!((forward_rank(status), known), (Some(n), Some(k)) if n < k)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::idempotency::MemoryIdempotencyStore;
    use crate::orders::ports::UnmappedSkuAction;
    use crate::orders::tests::{harness, inv};
    use crate::shipment::{fixtures, Stage};
    use crate::store::cursors::MemoryCursorStore;
    use crate::store::shipments::ShipmentStore;

    fn camel(id: &str, shipment: &str) -> String {
        json!({"notificationVersion": "1.0", "notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
            "payloadVersion": "1.0", "eventTime": "2026-11-21T08:00:00Z",
            "payload": {"externalFulfillmentShipmentNotification": {"merchantId": "M", "locationId": "LOC1",
                "channelName": "FBA", "shipmentId": shipment, "shipmentStatus": "ACCEPTED"}},
            "notificationMetadata": {"applicationId": "app", "subscriptionId": "sub",
                "publishTime": "2026-11-21T08:00:01Z", "notificationId": id}})
        .to_string()
    }

    fn pascal(id: &str, shipment: &str) -> String {
        json!({"NotificationVersion": "1.0", "NotificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
            "PayloadVersion": "1.0", "EventTime": "2026-11-21T08:00:00Z",
            "Payload": {"ExternalFulfillmentShipmentNotification": {"ShipmentId": shipment, "ShipmentStatus": "ACCEPTED"}},
            "NotificationMetadata": {"NotificationId": id}})
        .to_string()
    }

    fn clock() -> NotificationClock {
        NotificationClock::new(Arc::new(MemoryCursorStore::new()))
    }

    fn idempotency() -> Idempotency {
        Idempotency::new(
            Arc::new(MemoryIdempotencyStore::new()),
            Duration::from_secs(3600),
        )
    }

    /// A new shipment at Amazon: one unit of `sku`.
    fn accepted(h: &crate::orders::tests::Harness, id: &str, sku: &str) {
        h.amazon.put(fixtures::shipment(
            id,
            "ACCEPTED",
            "2026-11-21T08:00:00Z",
            &[(sku, 1)],
        ));
    }

    #[tokio::test]
    async fn both_casings_dedupe_and_stale_signals() {
        let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
        let idem = idempotency();
        accepted(&h, "S1", "A");
        accepted(&h, "S2", "B");
        let handler = NotificationHandler {
            processor: &h.p,
            idempotency: &idem,
            ours: &Ours::default(),
            clock: &clock(),
        };
        let out = handler.handle(&camel("n1", "S1"), &inv()).await.unwrap();
        assert_eq!(
            out,
            NotificationOutcome::Processed {
                shipment_id: "S1".into(),
                stage: "handed_over".into()
            }
        );
        // The same notification again: the shipment is past ACCEPTED, nothing is read.
        assert!(matches!(
            handler.handle(&camel("n1", "S1"), &inv()).await.unwrap(),
            NotificationOutcome::Known { .. }
        ));
        // A second, different notification for the same change (out of order): nothing new.
        handler.handle(&pascal("n0", "S1"), &inv()).await.unwrap();
        handler.handle(&pascal("n2", "S2"), &inv()).await.unwrap();
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 2);
        assert_eq!(
            h.store.get("S2").await.unwrap().unwrap().stage,
            Stage::HandedOver
        );

        // A held shipment (an SKU outside the catalog) is read back on every new notification;
        // the same notification twice is recognised by its ID.
        accepted(&h, "S3", "Z");
        handler.handle(&camel("n3", "S3"), &inv()).await.unwrap();
        assert_eq!(h.store.get("S3").await.unwrap().unwrap().stage, Stage::Held);
        assert!(matches!(
            handler.handle(&camel("n3", "S3"), &inv()).await.unwrap(),
            NotificationOutcome::Duplicate { .. }
        ));

        let other = json!({"notificationType": "ANY_OFFER_CHANGED", "payload": {}}).to_string();
        assert!(matches!(
            handler.handle(&other, &inv()).await.unwrap(),
            NotificationOutcome::Ignored { .. }
        ));
        let err = handler.handle("not json", &inv()).await.unwrap_err();
        assert!(!err.is_retryable());
    }

    fn with_status(id: &str, shipment: &str, status: &str) -> String {
        json!({"notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
            "payload": {"externalFulfillmentShipmentNotification": {"shipmentId": shipment, "shipmentStatus": status}},
            "notificationMetadata": {"notificationId": id}})
        .to_string()
    }

    #[tokio::test]
    async fn a_status_the_shipment_is_past_reads_nothing_back_and_any_other_does() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let idem = idempotency();
        accepted(&h, "S1", "A");
        let handler = NotificationHandler {
            processor: &h.p,
            idempotency: &idem,
            ours: &Ours::default(),
            clock: &clock(),
        };
        // ACCEPTED: read back, confirmed, handed over.
        handler
            .handle(&with_status("n1", "S1", "ACCEPTED"), &inv())
            .await
            .unwrap();
        let stored = h.store.get("S1").await.unwrap().unwrap();
        assert_eq!(stored.stage, Stage::HandedOver);
        let reads = h.amazon.reads_alone.lock().unwrap().len();
        // The status it has (the echo of our CONFIRM, or a line cancelled while CONFIRMED): read.
        handler
            .handle(&with_status("n2", "S1", stored.status.as_str()), &inv())
            .await
            .unwrap();
        assert_eq!(h.amazon.reads_alone.lock().unwrap().len(), reads + 1);
        let reads = reads + 1;
        // One it is past (a late ACCEPTED) is old news: not read. One ahead of it is read.
        assert!(matches!(
            handler
                .handle(&with_status("n4", "S1", "ACCEPTED"), &inv())
                .await
                .unwrap(),
            NotificationOutcome::Known { .. }
        ));
        assert_eq!(h.amazon.reads_alone.lock().unwrap().len(), reads);
        handler
            .handle(&with_status("n5", "S1", "PACKAGE_CREATED"), &inv())
            .await
            .unwrap();
        assert_eq!(h.amazon.reads_alone.lock().unwrap().len(), reads + 1);
        let reads = reads + 1;
        // A status we do not hold (Amazon cancelled it) is read back and acted on.
        let mut cancelled =
            fixtures::shipment("S1", "CANCELLED", "2030-01-01T00:00:00Z", &[("A", 1)]);
        cancelled["status"] = json!("CANCELLED");
        h.amazon.put(cancelled);
        handler
            .handle(&with_status("n3", "S1", "CANCELLED"), &inv())
            .await
            .unwrap();
        assert_eq!(h.amazon.reads_alone.lock().unwrap().len(), reads + 1);
        assert_eq!(
            h.store.get("S1").await.unwrap().unwrap().stage,
            Stage::Cancelled
        );
        // A finished shipment's own status again (a duplicate under another ID): not read.
        assert!(matches!(
            handler
                .handle(&with_status("n6", "S1", "CANCELLED"), &inv())
                .await
                .unwrap(),
            NotificationOutcome::Known { .. }
        ));
        assert_eq!(h.amazon.reads_alone.lock().unwrap().len(), reads + 1);
    }

    #[tokio::test]
    async fn notifications_for_another_application_or_merchant_are_dropped_and_counted() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let idem = idempotency();
        accepted(&h, "S1", "A");
        accepted(&h, "S2", "A");
        let ours = Ours {
            application_id: Some("app".into()),
            merchant_id: Some("M".into()),
        };
        let handler = NotificationHandler {
            processor: &h.p,
            idempotency: &idem,
            ours: &ours,
            clock: &clock(),
        };
        let with = |id: &str, shipment: &str, app: Option<&str>, merchant: Option<&str>| {
            let mut n: serde_json::Value = serde_json::from_str(&camel(id, shipment)).unwrap();
            match app {
                Some(a) => n["notificationMetadata"]["applicationId"] = json!(a),
                None => {
                    n["notificationMetadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("applicationId");
                }
            }
            let inner = &mut n["payload"]["externalFulfillmentShipmentNotification"];
            match merchant {
                Some(m) => inner["merchantId"] = json!(m),
                None => {
                    inner.as_object_mut().unwrap().remove("merchantId");
                }
            }
            n.to_string()
        };
        let dropped = [
            (
                with("f1", "S1", Some("other-app"), Some("M")),
                "application other-app",
            ),
            (with("f2", "S1", None, Some("M")), "no application"),
            (
                with("f3", "S1", Some("app"), Some("OTHER")),
                "merchant OTHER",
            ),
        ];
        for (body, why) in &dropped {
            assert_eq!(
                handler.handle(body, &inv()).await.unwrap(),
                NotificationOutcome::NotOurs {
                    reason: why.to_string()
                }
            );
        }
        // Another app's notification of another type is dropped too, before its type is read.
        let foreign_other = json!({"notificationType": "ANY_OFFER_CHANGED", "payload": {},
            "notificationMetadata": {"applicationId": "other-app"}})
        .to_string();
        assert!(matches!(
            handler.handle(&foreign_other, &inv()).await.unwrap(),
            NotificationOutcome::NotOurs { .. }
        ));
        assert_eq!(
            h.metrics.sum(crate::metrics::names::NOTIFICATIONS_NOT_OURS),
            4.0
        );
        // Nothing read from Amazon, nothing stored, no notification ID claimed.
        assert!(h.amazon.reads_alone.lock().unwrap().is_empty());
        assert!(h.store.get("S1").await.unwrap().is_none());
        assert!(h.amazon.confirms.lock().unwrap().is_empty());

        // Ours (and one whose payload names no merchant) are processed.
        for (id, shipment, merchant) in [("o1", "S1", Some("M")), ("o2", "S2", None)] {
            assert!(matches!(
                handler
                    .handle(&with(id, shipment, Some("app"), merchant), &inv())
                    .await
                    .unwrap(),
                NotificationOutcome::Processed { .. }
            ));
        }
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 2);
        assert_eq!(
            h.metrics.sum(crate::metrics::names::NOTIFICATIONS_NOT_OURS),
            4.0
        );
        // A foreign notification never claimed its ID: the same ID, ours, is still handled.
        assert!(matches!(
            handler
                .handle(&with("f3", "S1", Some("app"), Some("M")), &inv())
                .await
                .unwrap(),
            NotificationOutcome::Known { .. } | NotificationOutcome::Processed { .. }
        ));
    }

    /// The clock the order poller reads: only a shipment notification of ours moves it, to the
    /// time Amazon published it (never past now), and one container writes it at most once a
    /// minute; it never moves back.
    #[tokio::test]
    async fn a_handled_notification_of_ours_moves_the_clock_and_nothing_else_does() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let idem = idempotency();
        accepted(&h, "S1", "A");
        let cursors = Arc::new(MemoryCursorStore::new());
        let clock = NotificationClock::new(cursors.clone());
        let ours = Ours {
            application_id: Some("app".into()),
            merchant_id: None,
        };
        let handler = NotificationHandler {
            processor: &h.p,
            idempotency: &idem,
            ours: &ours,
            clock: &clock,
        };
        let last = || NotificationClock::last(cursors.as_ref());

        let mut foreign: serde_json::Value = serde_json::from_str(&camel("f1", "S1")).unwrap();
        foreign["notificationMetadata"]["applicationId"] = json!("other-app");
        handler.handle(&foreign.to_string(), &inv()).await.unwrap();
        let other = json!({"notificationType": "ANY_OFFER_CHANGED", "payload": {},
            "notificationMetadata": {"applicationId": "app"}})
        .to_string();
        handler.handle(&other, &inv()).await.unwrap();
        assert!(handler.handle("not json", &inv()).await.is_err());
        assert_eq!(last().await.unwrap(), None, "none of those shows ours flow");

        // `camel` is published at 2026-11-21T08:00:01Z.
        let published = crate::shipment::parse_amazon_time("2026-11-21T08:00:01Z").unwrap();
        assert!(matches!(
            handler.handle(&camel("n1", "S1"), &inv()).await.unwrap(),
            NotificationOutcome::Processed { .. }
        ));
        assert_eq!(last().await.unwrap(), Some(published));
        // Known (the echo of our confirm) counts too, but within a minute of the last write
        // this container does not write again.
        let mut echo: serde_json::Value = serde_json::from_str(&camel("n2", "S1")).unwrap();
        echo["notificationMetadata"]["publishTime"] = json!("2026-11-21T08:00:31Z");
        assert!(matches!(
            handler.handle(&echo.to_string(), &inv()).await.unwrap(),
            NotificationOutcome::Known { .. }
        ));
        assert_eq!(last().await.unwrap(), Some(published));

        // A clock ahead of ours (or no publish time) counts as now; an older one never moves
        // it back.
        let before = Utc::now();
        clock
            .note(Some(before + chrono::Duration::days(1)))
            .await
            .unwrap();
        let noted = last().await.unwrap().unwrap();
        assert!(noted >= before && noted <= Utc::now(), "{noted}");
        NotificationClock::new(cursors.clone())
            .note(Some(published))
            .await
            .unwrap();
        assert_eq!(last().await.unwrap(), Some(noted));
    }
}
