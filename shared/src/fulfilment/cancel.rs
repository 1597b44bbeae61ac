//! The cancellation job (CancellationsQueue): the warehouse's cancellation to Amazon as
//! processShipment REJECT with the request's unique `referenceId`, exactly once, then the
//! reservation released and `ShipmentCancelled` (`cancelledBy: seller`) to the warehouse.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::{EventName, OutboundEvent, ShipmentHeld};
use crate::fulfilment::worker::Fulfiller;
use crate::fulfilment::CancelJob;
use crate::idempotency::ActionKey;
use crate::orders::ports::{RejectReason, ShipmentsApi};
use crate::orders::processor::{CancelledLine, ShipmentCancelledDetail};
use crate::runtime::Invocation;
use crate::shipment::{CancellationState, Stage};
use crate::spapi::ShipmentStatus;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum CancelOutcome {
    Rejected,
    /// Amazon's status no longer allowed it; the warehouse was told (ShipmentHeld).
    Refused {
        reason: String,
    },
    /// Nothing to do (already done, or not asked for any more).
    Skipped {
        reason: String,
    },
}

const MAX_CONFLICTS: usize = 8;

impl Fulfiller {
    pub async fn run_cancel_job(
        &self,
        job: &CancelJob,
        orders_api: &dyn ShipmentsApi,
        inv: &Invocation,
    ) -> Result<CancelOutcome> {
        let id = job.shipment_id.as_str();
        let r = self.stored(id).await?;
        let f = r.fulfilment();
        let Some(c) = f
            .cancellation
            .clone()
            .filter(|c| c.reference_id == job.reference_id)
        else {
            return Ok(CancelOutcome::Skipped {
                reason: "no such cancellation request on the shipment".into(),
            });
        };
        if c.state != CancellationState::Queued {
            return Ok(CancelOutcome::Skipped {
                reason: format!("cancellation is {:?}", c.state),
            });
        }
        let reason = match c.reason.as_str() {
            "CUSTOMER_REQUESTED" => RejectReason::CustomerRequested,
            _ => RejectReason::OutOfStock,
        };
        let lines: Vec<(String, u32)> = r
            .line_items
            .iter()
            .map(|l| (l.id.clone(), l.units))
            .collect();
        // Same key as orders' own REJECT: one REJECT per shipment, whoever asks.
        let key = ActionKey::Reject(id).to_string();
        let result = self
            .once(
                &key,
                id,
                inv,
                |s| s.status == ShipmentStatus::Cancelled,
                async { orders_api.reject(id, &c.reference_id, &lines, reason).await },
                async { Ok(()) },
            )
            .await;
        let refused = match result {
            Ok(()) => None,
            Err(Error::SpApi(e)) if e.status() == Some(422) => {
                // Amazon's status changed since the request: read it back and explain.
                let s = self.read_back(id, inv).await?;
                if s.status == ShipmentStatus::Cancelled {
                    None
                } else {
                    Some(format!(
                        "Amazon refused the cancellation: the shipment is {} at Amazon, which does \
                         not allow rejection ({})",
                        s.status.as_str(),
                        e
                    ))
                }
            }
            Err(e) => return Err(e),
        };
        let hub = self.hub(&r.location_id).await?;
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.stored(id).await?;
            let mut f = r.fulfilment();
            let Some(mut c) = f.cancellation.clone() else {
                break;
            };
            if let Some(why) = &refused {
                c.state = CancellationState::Refused;
                c.note = Some(why.clone());
                let ev = OutboundEvent::new(
                    EventName::ShipmentHeld,
                    &format!("{id}#cancel-refused#{}", job.reference_id),
                    Utc::now(),
                    ShipmentHeld {
                        shipment_id: id.to_string(),
                        hub: hub.clone(),
                        reason: why.clone(),
                    },
                )?;
                self.events.publish(&[ev]).await?;
                f.record_step("cancel_refused", Some(why.clone()));
            } else {
                c.state = CancellationState::Rejected;
                for l in &r.line_items {
                    self.inventory
                        .set_reservation(&r.location_id, &l.sku, &r.id, &l.id, 0)
                        .await?;
                }
                let detail = ShipmentCancelledDetail {
                    shipment_id: id.to_string(),
                    hub: hub.clone(),
                    location_id: r.location_id.clone(),
                    cancelled_by: "seller".into(),
                    reason: Some(c.reason.clone()),
                    whole_shipment: true,
                    lines: r
                        .line_items
                        .iter()
                        .filter(|l| l.open_units() > 0)
                        .map(|l| CancelledLine {
                            line_id: l.id.clone(),
                            sku: l.sku.clone(),
                            cancelled_quantity: l.open_units(),
                            remaining_quantity: 0,
                        })
                        .collect(),
                };
                let ev = OutboundEvent::new(
                    EventName::ShipmentCancelled,
                    &format!("{id}#whole"),
                    Utc::now(),
                    detail,
                )?;
                self.events.publish(&[ev]).await?;
                f.record_step("cancelled_at_amazon", Some(job.reference_id.clone()));
                r.stage = Stage::Rejected;
                r.status = ShipmentStatus::Cancelled;
                r.rejection_reason = Some(format!("{}: cancelled by the warehouse", c.reason));
                r.reservation_released = true;
                for l in &mut r.line_items {
                    l.announced_cancelled_units = l.units;
                }
            }
            f.cancellation = Some(c);
            r.fulfilment = Some(f);
            if self.save(&mut r).await? {
                return Ok(match refused {
                    Some(reason) => CancelOutcome::Refused { reason },
                    None => CancelOutcome::Rejected,
                });
            }
        }
        Err(Error::Transient {
            message: format!("shipment {id} kept changing while being cancelled"),
            after: None,
        })
    }
}
