//! `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` notifications (SQS, or relayed over HTTPS):
//! de-duplicated on the notification ID through the idempotency helper, then treated as a
//! signal only: the shipment is read with getShipment and ingested, so a stale or reordered
//! notification cannot roll anything back (the store keeps the newest `lastUpdatedDateTime`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::idempotency::Idempotency;
use crate::orders::model::Stage;
use crate::orders::processor::OrderProcessor;
use crate::runtime::Invocation;
use crate::spapi::{Notification, NotificationError};

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
}

pub struct NotificationHandler<'a> {
    pub processor: &'a OrderProcessor,
    pub idempotency: &'a Idempotency,
}

impl NotificationHandler<'_> {
    /// Handles one message body. `Error::InvalidInput` = the body can never be handled (not an
    /// envelope, or no shipment ID): not retryable.
    pub async fn handle(&self, body: &str, inv: &Invocation) -> Result<NotificationOutcome> {
        let n = Notification::from_json(body).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let change = match n.shipment_status_change() {
            Ok(c) => c,
            Err(NotificationError::OtherType(t)) => {
                return Ok(NotificationOutcome::Ignored {
                    reason: format!("notification type {t}"),
                })
            }
            Err(e) => return Err(Error::InvalidInput(e.to_string())),
        };
        let shipment_id = change.shipment_id.clone();
        if shipment_id.is_empty() {
            return Err(Error::InvalidInput("notification names no shipment".into()));
        }
        // Without an ID (never seen from Amazon) the body itself is the identity.
        let id = n
            .id()
            .map(str::to_string)
            .unwrap_or_else(|| crate::idempotency::hash_bytes(body.as_bytes()));
        // A status the stored record already has changes nothing (reading Amazon back would
        // store the same); most notifications are the echo of our own calls. A record still
        // to be confirmed or handed over, or unreadable, is read back and driven as always.
        if let Some(status) = &change.shipment_status {
            if let Some(r) = self.processor.shipments.get(&shipment_id).await? {
                let settled = !matches!(
                    r.stage,
                    Stage::Received | Stage::Confirmed | Stage::Unreadable
                );
                if settled && r.status == status.as_str() {
                    return Ok(NotificationOutcome::Known {
                        shipment_id,
                        stage: r.stage.as_str().to_string(),
                    });
                }
            }
        }
        let key = format!("notification#{id}");
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::idempotency::MemoryIdempotencyStore;
    use crate::orders::model::{fixtures, Stage};
    use crate::orders::ports::UnmappedSkuAction;
    use crate::orders::tests::{harness, inv};
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

    #[tokio::test]
    async fn both_casings_dedupe_and_stale_signals() {
        let h = harness(&["A", "B"], UnmappedSkuAction::Hold);
        let idem = Idempotency::new(
            Arc::new(MemoryIdempotencyStore::new()),
            Duration::from_secs(3600),
        );
        h.amazon.put(fixtures::shipment(
            "S1",
            "ACCEPTED",
            "2026-11-21T08:00:00Z",
            &[("A", 1)],
        ));
        h.amazon.put(fixtures::shipment(
            "S2",
            "ACCEPTED",
            "2026-11-21T08:00:00Z",
            &[("B", 1)],
        ));
        let handler = NotificationHandler {
            processor: &h.p,
            idempotency: &idem,
        };
        let out = handler.handle(&camel("n1", "S1"), &inv()).await.unwrap();
        assert_eq!(
            out,
            NotificationOutcome::Processed {
                shipment_id: "S1".into(),
                stage: "handed_over".into()
            }
        );
        assert!(matches!(
            handler.handle(&camel("n1", "S1"), &inv()).await.unwrap(),
            NotificationOutcome::Duplicate { .. }
        ));
        // A second, different notification for the same change (out of order): nothing new.
        handler.handle(&pascal("n0", "S1"), &inv()).await.unwrap();
        handler.handle(&pascal("n2", "S2"), &inv()).await.unwrap();
        assert_eq!(h.amazon.confirms.lock().unwrap().len(), 2);
        assert_eq!(
            h.store.get("S2").await.unwrap().unwrap().stage,
            Stage::HandedOver
        );

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
    async fn the_echo_of_a_status_we_hold_reads_nothing_back_and_a_new_one_does() {
        let h = harness(&["A"], UnmappedSkuAction::Hold);
        let idem = Idempotency::new(
            Arc::new(MemoryIdempotencyStore::new()),
            Duration::from_secs(3600),
        );
        h.amazon.put(fixtures::shipment(
            "S1",
            "ACCEPTED",
            "2026-11-21T08:00:00Z",
            &[("A", 1)],
        ));
        let handler = NotificationHandler {
            processor: &h.p,
            idempotency: &idem,
        };
        // ACCEPTED: read back, confirmed, handed over.
        handler
            .handle(&with_status("n1", "S1", "ACCEPTED"), &inv())
            .await
            .unwrap();
        let stored = h.store.get("S1").await.unwrap().unwrap();
        assert_eq!(stored.stage, Stage::HandedOver);
        let reads = h.amazon.reads_alone.lock().unwrap().len();
        // The echo of our CONFIRM: the stored record says so already; Amazon is not read.
        let out = handler
            .handle(&with_status("n2", "S1", &stored.status), &inv())
            .await
            .unwrap();
        assert_eq!(
            out,
            NotificationOutcome::Known {
                shipment_id: "S1".into(),
                stage: "handed_over".into()
            }
        );
        assert_eq!(h.amazon.reads_alone.lock().unwrap().len(), reads);
        // A status we do not hold (Amazon cancelled it) is read back and acted on.
        let mut cancelled =
            fixtures::shipment("S1", "CANCELLED", "2026-11-21T09:00:00Z", &[("A", 1)]);
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
    }
}
