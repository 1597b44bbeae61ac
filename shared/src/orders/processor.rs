//! The one path every shipment takes, whoever saw it (poller, notification, warehouse API, sweep):
//! store Amazon's view if it is newer, then converge our progress markers towards it.
//!
//! ```text
//! store ─► rules ─► CONFIRM (once) ─► reserve ─► ShipmentAccepted ─► handed_over ─► (SHIPPED) release
//!            ├─► held (person: release ─► CONFIRM, or reject)
//!            └─► REJECT (once)
//! Amazon cancels (whole or lines) ─► reservation down ─► ShipmentCancelled (if the warehouse has it)
//! ```
//!
//! Every step is safe to repeat: CONFIRM and REJECT go through the idempotency helper (and read
//! the shipment back when a previous attempt may have acted), reservations are set rather than
//! added, events carry deterministic IDs, and the stage is saved with optimistic concurrency.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::{EventName, EventSink, OutboundEvent, ShipmentHeld};
use crate::idempotency::{ActionKey, Idempotency};
use crate::orders::ports::{
    is_unreadable, reject_reason_str, AdoptExisting, LocationDirectory, OrderLocation,
    RejectReason, ShipmentsApi, UnmappedSkuAction,
};
use crate::orders::rules::{decide, OrderRule, Verdict};
use crate::runtime::Invocation;
use crate::shipment::{
    is_confirmed_or_beyond, is_new_status, is_shipped, join_statuses, AmazonShipment, LineItem,
    ShipmentChannel, ShipmentRecord, ShipmentStatus, Stage,
};
use crate::store::inventory::InventoryStore;
use crate::store::shipments::ShipmentStore;

/// Points between two steps where tests inject a crash (the hook never returns, and the test
/// drops the invocation as Lambda would at its deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Pages stored, cursor not yet moved (poller).
    PagesStored,
    /// Shipment stored, rules not yet applied.
    Stored,
    /// Amazon answered CONFIRM, the idempotency record not yet completed.
    ConfirmCalled,
    /// Stage `confirmed` saved, units not yet reserved.
    Confirmed,
    /// Units reserved, `ShipmentAccepted` not yet published.
    Reserved,
    /// `ShipmentAccepted` published, stage `handed_over` not yet saved.
    Published,
    /// Cancellation applied to reservations, event/stage not yet saved.
    CancelReleased,
}

#[async_trait]
pub trait CrashPoints: Send + Sync {
    async fn reached(&self, step: Step, shipment_id: &str);
}

/// What storing Amazon's view did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Updated,
    /// Same or older than what we have (a duplicate or out-of-order delivery): nothing changed.
    Unchanged,
}

/// A line as the warehouse needs it to pick (part of `ShipmentAccepted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PickLine {
    pub line_id: String,
    pub sku: String,
    pub quantity: u32,
    pub gift_wrap: bool,
    pub gift_message: bool,
    pub serial_numbers_required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hazmat_labels: Vec<String>,
}

/// `ShipmentAccepted` detail as orders publishes it: the fields of `events::ShipmentAccepted`
/// (`shipmentId, hub, locationId, marketplaceId, lines[{sku, quantity}], shipBy`) plus what the
/// warehouse needs to pick (line IDs, gift and serial-number requirements, priority, PRIME).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentAcceptedDetail {
    pub shipment_id: String,
    pub hub: String,
    pub location_id: String,
    pub marketplace_id: String,
    pub channel: ShipmentChannel,
    pub lines: Vec<PickLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    pub prime: bool,
    /// Amazon's status when flexbridge first saw it, when another connector had confirmed it;
    /// past `CONFIRMED` that connector packed it too, and it cannot be packed through flexbridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_elsewhere: Option<ShipmentStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledLine {
    pub line_id: String,
    pub sku: String,
    pub cancelled_quantity: u32,
    pub remaining_quantity: u32,
}

/// `ShipmentCancelled` detail: the fields of `events::ShipmentCancelled` (`shipmentId, hub,
/// cancelledBy, reason`) plus whether the whole shipment went and which lines lost how many units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentCancelledDetail {
    pub shipment_id: String,
    pub hub: String,
    pub location_id: String,
    pub cancelled_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub whole_shipment: bool,
    pub lines: Vec<CancelledLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ActOutcome {
    /// Amazon's status after the act (or as read back when reconciling).
    status: ShipmentStatus,
    reconciled: bool,
}

#[derive(Clone)]
pub struct OrderProcessor {
    pub shipments: Arc<dyn ShipmentStore>,
    pub inventory: Arc<dyn InventoryStore>,
    pub amazon: Arc<dyn ShipmentsApi>,
    pub events: Arc<dyn EventSink>,
    pub idempotency: Idempotency,
    pub locations: Arc<dyn LocationDirectory>,
    pub rules: Vec<Arc<dyn OrderRule>>,
    pub crash_points: Option<Arc<dyn CrashPoints>>,
    /// `OrdersSeen` / `Confirmed` / `Rejected` / `Held` and `ConfirmLatency` (dimension `Location`).
    pub metrics: crate::metrics::Metrics,
}

/// Bounded retries when another writer changed the record under us.
const MAX_CONFLICTS: usize = 8;

impl OrderProcessor {
    async fn crash_point(&self, step: Step, id: &str) {
        if let Some(c) = &self.crash_points {
            c.reached(step, id).await;
        }
    }

    async fn location_of(&self, location_id: &str) -> Result<OrderLocation> {
        match self.locations.location(location_id).await {
            Ok(l) => Ok(l),
            // A shipment for a location we no longer sync: still track it, hold by default.
            Err(Error::NotFound(_)) => Ok(OrderLocation {
                location_id: location_id.to_string(),
                hub: location_id.to_string(),
                order_sync: false,
                return_location_id: None,
                unmapped_sku: UnmappedSkuAction::Hold,
                adopt_existing: AdoptExisting::default(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Stores Amazon's view if it is newer than ours (by `lastUpdatedDateTime`).
    pub async fn store(&self, incoming: &AmazonShipment) -> Result<(ShipmentRecord, Stored)> {
        let incoming = &incoming.record;
        for _ in 0..MAX_CONFLICTS {
            let (mut next, outcome) = match self.shipments.get(&incoming.id).await? {
                None => {
                    let mut r = incoming.clone();
                    r.stage = Stage::first_for(&r.status);
                    r.correlation_id = Some(crate::telemetry::new_correlation_id());
                    // Cancellations that happened before we ever saw it concern nobody.
                    for l in &mut r.line_items {
                        l.announced_cancelled_units = l.cancelled_units;
                    }
                    // Confirmed before we ever saw it: another connector served this account.
                    if r.stage == Stage::Confirmed {
                        r.handled_elsewhere = Some(r.status.clone());
                    }
                    (r, Stored::New)
                }
                // Readable again: back to where it was (or, never handled, to its first stage).
                Some(mut old)
                    if old.stage == Stage::Unreadable
                        && incoming.amazon_updated_at >= old.amazon_updated_at =>
                {
                    let back_to = old.quarantined_from;
                    old.absorb(incoming);
                    old.stage = back_to.unwrap_or_else(|| Stage::first_for(&old.status));
                    if back_to.is_none() {
                        for l in &mut old.line_items {
                            l.announced_cancelled_units = l.cancelled_units;
                        }
                    }
                    old.unreadable = None;
                    old.quarantined_from = None;
                    tracing::warn!(shipment_id = %old.id, stage = old.stage.as_str(), "unreadable shipment is readable again");
                    (old, Stored::Updated)
                }
                Some(old) if incoming.amazon_updated_at < old.amazon_updated_at => {
                    return Ok((old, Stored::Unchanged));
                }
                // Amazon's times have whole seconds: two changes in one second look alike, so
                // a same-time view can only add progress, never take it back.
                Some(mut old) if incoming.amazon_updated_at == old.amazon_updated_at => {
                    if !old.absorb_same_time(incoming) {
                        return Ok((old, Stored::Unchanged));
                    }
                    (old, Stored::Updated)
                }
                Some(mut old) => {
                    old.absorb(incoming);
                    (old, Stored::Updated)
                }
            };
            match self.shipments.save(&mut next).await {
                Ok(()) => {
                    if outcome == Stored::New {
                        self.metrics.count(
                            crate::metrics::names::ORDERS_SEEN,
                            &[("Location", &next.location_id)],
                        );
                    }
                    tracing::info!(shipment_id = %next.id, correlation_id = next.correlation_id.as_deref().unwrap_or("-"), status = %next.status, stage = next.stage.as_str(), outcome = ?outcome, "shipment stored");
                    return Ok((next, outcome));
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(conflict_exhausted(&incoming.id))
    }

    /// Stores Amazon's view and moves the shipment as far as it can go.
    pub async fn ingest(
        &self,
        incoming: &AmazonShipment,
        inv: &Invocation,
    ) -> Result<ShipmentRecord> {
        let (r, _) = self.store(incoming).await?;
        self.crash_point(Step::Stored, &r.id).await;
        self.drive_traced(&r, inv).await
    }

    /// Reads one shipment alone (a page reported it unreadable: a single record may parse).
    /// `Ok(Err(why))`: its data cannot be read; `Err`: Amazon could not answer now.
    pub async fn read_back(
        &self,
        shipment_id: &str,
    ) -> Result<std::result::Result<AmazonShipment, String>> {
        let read = match self.amazon.get_shipment(shipment_id).await {
            Ok(v) => AmazonShipment::from_shipment(&v),
            Err(e) => Err(e),
        };
        match read {
            Ok(s) if s.record.id == shipment_id => Ok(Ok(s)),
            Ok(s) => Ok(Err(format!(
                "getShipment answered with shipment {}",
                s.record.id
            ))),
            Err(e) if is_unreadable(&e) => Ok(Err(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Keeps a shipment whose data cannot be read where a person sees it: stage `unreadable`
    /// (listed by the warehouse API), an error log line and a `ShipmentHeld` event. A shipment
    /// we already had keeps its progress and goes back to it once readable. Returns whether it
    /// was newly quarantined.
    pub async fn quarantine(
        &self,
        shipment_id: &str,
        location_id: &str,
        status: &ShipmentStatus,
        error: &str,
    ) -> Result<bool> {
        for _ in 0..MAX_CONFLICTS {
            let mut r = match self.shipments.get(shipment_id).await? {
                Some(old) if old.stage == Stage::Unreadable => return Ok(false),
                Some(mut old) => {
                    old.quarantined_from = Some(old.stage);
                    old.stage = Stage::Unreadable;
                    old.unreadable = Some(error.to_string());
                    old
                }
                None => {
                    ShipmentRecord::unreadable_placeholder(shipment_id, location_id, status, error)
                }
            };
            let loc = self.location_of(&r.location_id).await?;
            // Published before the stage is saved: a repeat carries the same event ID.
            let ev = OutboundEvent::new(
                EventName::ShipmentHeld,
                &format!("{shipment_id}#unreadable"),
                Utc::now(),
                ShipmentHeld {
                    shipment_id: shipment_id.to_string(),
                    hub: loc.hub.clone(),
                    reason: format!(
                        "unreadable: Amazon's data for this shipment cannot be read ({error}); \
                         flexbridge does nothing with it until it can: check it in Seller Central"
                    ),
                },
            )?;
            self.events.publish(&[ev]).await?;
            if self.save(&mut r).await? {
                tracing::error!(
                    shipment_id,
                    location_id = %r.location_id,
                    status = %r.status,
                    error,
                    alert = "shipment_unreadable",
                    "shipment unreadable even alone; quarantined in stage unreadable for a person"
                );
                return Ok(true);
            }
        }
        Err(conflict_exhausted(shipment_id))
    }

    /// Reads the shipment from Amazon (a notification is only a signal) and ingests it.
    pub async fn refresh(&self, shipment_id: &str, inv: &Invocation) -> Result<ShipmentRecord> {
        let v = self.amazon.get_shipment(shipment_id).await?;
        self.ingest(&AmazonShipment::from_shipment(&v)?, inv).await
    }

    async fn save(&self, r: &mut ShipmentRecord) -> Result<bool> {
        match self.shipments.save(r).await {
            Ok(()) => Ok(true),
            Err(Error::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// [`Self::drive`] inside the shipment's log span (`r`: the record as last read or stored),
    /// so every line carries its correlation ID.
    pub async fn drive_traced(
        &self,
        r: &ShipmentRecord,
        inv: &Invocation,
    ) -> Result<ShipmentRecord> {
        use tracing::Instrument;
        let span = crate::telemetry::shipment_span(&r.id, r.correlation_id.as_deref());
        self.drive(&r.id, inv).instrument(span).await
    }

    /// Moves the stored shipment towards Amazon's state; safe to call any number of times.
    pub async fn drive(&self, shipment_id: &str, inv: &Invocation) -> Result<ShipmentRecord> {
        for _ in 0..MAX_CONFLICTS {
            let mut r =
                self.shipments.get(shipment_id).await?.ok_or_else(|| {
                    Error::NotFound(format!("shipment {shipment_id} is not stored"))
                })?;
            if matches!(r.stage, Stage::Unreadable | Stage::LeftAlone) {
                // Unreadable: nothing to act on until Amazon's data can be read; left alone:
                // the connector that confirmed it finishes it.
                return Ok(r);
            }
            let loc = self.location_of(&r.location_id).await?;

            // Amazon-side cancellation, whole or of some lines, comes first: it stops everything else.
            if r.is_whole_cancelled() && !matches!(r.stage, Stage::Cancelled | Stage::Rejected) {
                self.apply_cancellation(&mut r, &loc, true).await?;
                r.stage = Stage::Cancelled;
                if self.save(&mut r).await? {
                    tracing::info!(shipment_id, "shipment cancelled by Amazon");
                }
                continue;
            }
            if !r.unannounced_cancellations().is_empty()
                && !matches!(r.stage, Stage::Rejected | Stage::Cancelled)
            {
                self.apply_cancellation(&mut r, &loc, false).await?;
                self.save(&mut r).await?;
                continue;
            }

            match r.stage {
                Stage::Received => {
                    if is_confirmed_or_beyond(&r.status) {
                        r.stage = Stage::Confirmed;
                        self.save(&mut r).await?;
                        continue;
                    }
                    if !is_new_status(&r.status) {
                        return Ok(r); // a status we do not know: leave it for a person
                    }
                    let verdict = if r.released {
                        Verdict::Confirm
                    } else if !loc.order_sync {
                        // Never confirm for a location the seller does not sync (or no longer maps).
                        Verdict::Hold {
                            reason: format!("order sync is off for location {}", loc.location_id),
                        }
                    } else {
                        decide(&self.rules, &r, &loc).await?
                    };
                    match verdict {
                        Verdict::Confirm => {
                            let out = self.act_once(&r, Act::Confirm, inv).await?;
                            if out.status == ShipmentStatus::Cancelled {
                                // Cancelled before our CONFIRM landed: take Amazon's view.
                                self.refresh_stored(shipment_id).await?;
                                continue;
                            }
                            r.stage = Stage::Confirmed;
                            // What Amazon now says; its own newer view replaces this when read.
                            r.status = ShipmentStatus::Confirmed;
                            if self.save(&mut r).await? {
                                let since = r.created_at_amazon.unwrap_or(r.first_seen_at);
                                let latency = (Utc::now() - since).num_milliseconds() as f64 / 1e3;
                                let at = [("Location", r.location_id.as_str())];
                                self.metrics
                                    .count(crate::metrics::names::ORDERS_CONFIRMED, &at);
                                self.metrics.put(
                                    crate::metrics::names::CONFIRM_LATENCY,
                                    latency.max(0.0),
                                    crate::metrics::Unit::Seconds,
                                    &at,
                                );
                                tracing::info!(
                                    shipment_id,
                                    reconciled = out.reconciled,
                                    latency_s = latency,
                                    "shipment confirmed"
                                );
                                self.crash_point(Step::Confirmed, shipment_id).await;
                            }
                            continue;
                        }
                        Verdict::Hold { reason } => {
                            // Published before the stage is saved: a repeat carries the same event ID.
                            let ev = OutboundEvent::new(
                                EventName::ShipmentHeld,
                                shipment_id,
                                Utc::now(),
                                ShipmentHeld {
                                    shipment_id: r.id.clone(),
                                    hub: loc.hub.clone(),
                                    reason: reason.clone(),
                                },
                            )?;
                            self.events.publish(&[ev]).await?;
                            r.stage = Stage::Held;
                            r.hold_reasons = vec![reason.clone()];
                            if self.save(&mut r).await? {
                                self.metrics.count(
                                    crate::metrics::names::ORDERS_HELD,
                                    &[("Location", &r.location_id)],
                                );
                                tracing::warn!(shipment_id, %reason, "shipment held for a person");
                            }
                            continue;
                        }
                        Verdict::Reject { reason, detail } => {
                            self.act_once(&r, Act::Reject(reason), inv).await?;
                            r.stage = Stage::Rejected;
                            r.status = ShipmentStatus::Cancelled;
                            r.rejection_reason =
                                Some(format!("{}: {detail}", reject_reason_str(reason)));
                            if self.save(&mut r).await? {
                                self.metrics.count(
                                    crate::metrics::names::ORDERS_REJECTED,
                                    &[("Location", &r.location_id)],
                                );
                                tracing::warn!(shipment_id, %detail, "shipment rejected");
                            }
                            continue;
                        }
                    }
                }
                Stage::Confirmed
                    if r.handled_elsewhere.is_some()
                        && loc.adopt_existing == AdoptExisting::Ignore =>
                {
                    r.stage = Stage::LeftAlone;
                    if self.save(&mut r).await? {
                        tracing::info!(shipment_id, status = %r.status, "shipment confirmed by another connector: left alone");
                    }
                    continue;
                }
                Stage::Confirmed => {
                    self.reserve(&r, &loc).await?;
                    self.crash_point(Step::Reserved, shipment_id).await;
                    self.events.publish(&[accepted_event(&r, &loc)?]).await?;
                    self.crash_point(Step::Published, shipment_id).await;
                    r.stage = Stage::HandedOver;
                    r.handed_over_at = Some(Utc::now());
                    if self.save(&mut r).await? {
                        tracing::info!(shipment_id, hub = %loc.hub, "shipment handed over to the warehouse");
                    }
                    continue;
                }
                // Amazon says shipped (its own carrier scan, or our updatePackageStatus): no call.
                Stage::HandedOver | Stage::Packed | Stage::Labelled if is_shipped(&r.status) => {
                    self.release(&r, &loc).await?;
                    self.events
                        .publish(&[crate::fulfilment::shipped_event(&r, &loc.hub)?])
                        .await?;
                    r.stage = Stage::Shipped;
                    r.reservation_released = true;
                    self.save(&mut r).await?;
                    continue;
                }
                Stage::HandedOver
                | Stage::Packed
                | Stage::Labelled
                | Stage::Held
                | Stage::Rejected
                | Stage::Cancelled
                | Stage::Shipped
                | Stage::Unreadable
                | Stage::LeftAlone => return Ok(r),
            }
        }
        Err(conflict_exhausted(shipment_id))
    }

    async fn refresh_stored(&self, shipment_id: &str) -> Result<()> {
        let v = self.amazon.get_shipment(shipment_id).await?;
        self.store(&AmazonShipment::from_shipment(&v)?)
            .await
            .map(|_| ())
    }

    /// Sets each line's reservation to its open units.
    async fn reserve(&self, r: &ShipmentRecord, loc: &OrderLocation) -> Result<()> {
        for l in &r.line_items {
            self.inventory
                .set_reservation(&loc.location_id, &l.sku, &r.id, &l.id, l.open_units())
                .await?;
        }
        Ok(())
    }

    async fn release(&self, r: &ShipmentRecord, loc: &OrderLocation) -> Result<()> {
        for l in &r.line_items {
            self.inventory
                .set_reservation(&loc.location_id, &l.sku, &r.id, &l.id, 0)
                .await?;
        }
        Ok(())
    }

    /// Brings reservations down to what is left, tells the warehouse if it has the shipment, and
    /// marks the cancellation announced (the caller saves).
    async fn apply_cancellation(
        &self,
        r: &mut ShipmentRecord,
        loc: &OrderLocation,
        whole: bool,
    ) -> Result<()> {
        let reserved = matches!(
            r.stage,
            Stage::Confirmed | Stage::HandedOver | Stage::Packed | Stage::Labelled
        );
        if whole {
            self.release(r, loc).await?;
            r.reservation_released = true;
        } else if reserved {
            self.reserve(r, loc).await?;
        }
        self.crash_point(Step::CancelReleased, &r.id).await;
        let lines: Vec<CancelledLine> = if whole {
            r.line_items
                .iter()
                .filter(|l| l.units > l.announced_cancelled_units)
                .map(|l| CancelledLine {
                    line_id: l.id.clone(),
                    sku: l.sku.clone(),
                    cancelled_quantity: l.units - l.announced_cancelled_units,
                    remaining_quantity: 0,
                })
                .collect()
        } else {
            r.unannounced_cancellations()
                .into_iter()
                .map(|(l, n)| CancelledLine {
                    line_id: l.id.clone(),
                    sku: l.sku.clone(),
                    cancelled_quantity: n,
                    remaining_quantity: l.open_units(),
                })
                .collect()
        };
        if r.handed_over_at.is_some() && !lines.is_empty() {
            let key = if whole {
                format!("{}#whole", r.id)
            } else {
                let parts: Vec<String> = r
                    .line_items
                    .iter()
                    .map(|l| format!("{}:{}", l.id, l.cancelled_units))
                    .collect();
                format!("{}#{}", r.id, parts.join(","))
            };
            let detail = ShipmentCancelledDetail {
                shipment_id: r.id.clone(),
                hub: loc.hub.clone(),
                location_id: r.location_id.clone(),
                cancelled_by: "amazon".into(),
                reason: cancellation_reason(r),
                whole_shipment: whole,
                lines,
            };
            let ev = OutboundEvent::new(EventName::ShipmentCancelled, &key, Utc::now(), detail)?;
            self.events.publish(&[ev]).await?;
            tracing::info!(shipment_id = %r.id, whole, "cancellation sent to the warehouse");
        }
        for l in &mut r.line_items {
            l.announced_cancelled_units = if whole { l.units } else { l.cancelled_units };
        }
        Ok(())
    }

    /// CONFIRM or REJECT exactly once. On a retaken claim (a previous attempt died after maybe
    /// acting) or an error whose outcome is unknown, Amazon's state decides.
    async fn act_once(&self, r: &ShipmentRecord, act: Act, inv: &Invocation) -> Result<ActOutcome> {
        let key = match act {
            Act::Confirm => ActionKey::Confirm(&r.id),
            Act::Reject(_) => ActionKey::Reject(&r.id),
        }
        .to_string();
        let id = r.id.clone();
        let lines: Vec<(String, u32)> = r
            .line_items
            .iter()
            .map(|l| (l.id.clone(), l.units))
            .collect();
        let done = |status: &ShipmentStatus| match act {
            Act::Confirm => is_confirmed_or_beyond(status),
            Act::Reject(_) => *status == ShipmentStatus::Cancelled,
        };
        let payload = id.clone();
        self.idempotency
            .run(&key, &payload, inv, |claim| async move {
                if claim.is_retaken() {
                    let status = self.amazon_status(&id).await?;
                    if done(&status) {
                        tracing::warn!(shipment_id = %id, %status, "previous attempt had already acted; not calling again");
                        return Ok(ActOutcome { status, reconciled: true });
                    }
                }
                let res = match act {
                    Act::Confirm => self.amazon.confirm(&id).await,
                    Act::Reject(reason) => {
                        self.amazon
                            .reject(&id, &format!("flexbridge-reject-{id}"), &lines, reason)
                            .await
                    }
                };
                match res {
                    Ok(()) => {
                        self.crash_point(Step::ConfirmCalled, &id).await;
                        Ok(ActOutcome {
                            status: match act {
                                Act::Confirm => ShipmentStatus::Confirmed,
                                Act::Reject(_) => ShipmentStatus::Cancelled,
                            },
                            reconciled: false,
                        })
                    }
                    Err(e) => {
                        // Applied-then-failed, a timeout or a state conflict: read it back.
                        match self.amazon_status(&id).await {
                            Ok(status) if done(&status) => {
                                tracing::warn!(shipment_id = %id, error = %e, %status, "call failed but Amazon shows it done");
                                Ok(ActOutcome { status, reconciled: true })
                            }
                            _ => Err(e),
                        }
                    }
                }
            })
            .await
    }

    async fn amazon_status(&self, id: &str) -> Result<ShipmentStatus> {
        let v = self.amazon.get_shipment(id).await?;
        Ok(AmazonShipment::from_shipment(&v)?.record.status)
    }

    /// A person decided to confirm a held shipment anyway.
    pub async fn release_hold(
        &self,
        shipment_id: &str,
        inv: &Invocation,
    ) -> Result<ShipmentRecord> {
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.get_stored(shipment_id).await?;
            match r.stage {
                Stage::Held => {}
                // Released before: the same request again answers with where it got to.
                Stage::Received | Stage::Confirmed | Stage::HandedOver | Stage::Shipped
                    if r.released =>
                {
                    return Ok(r)
                }
                other => return Err(not_held(shipment_id, other)),
            }
            r.stage = Stage::Received;
            r.released = true;
            if self.save(&mut r).await? {
                return self.drive_traced(&r, inv).await;
            }
        }
        Err(conflict_exhausted(shipment_id))
    }

    /// A person decided to reject a held shipment (OUT_OF_STOCK unless told otherwise).
    pub async fn reject_held(
        &self,
        shipment_id: &str,
        reason: RejectReason,
        inv: &Invocation,
    ) -> Result<ShipmentRecord> {
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.get_stored(shipment_id).await?;
            match r.stage {
                Stage::Held => {}
                Stage::Rejected => return Ok(r),
                other => return Err(not_held(shipment_id, other)),
            }
            if !r.eligible_for_rejection.contains(&r.status) {
                return Err(Error::Conflict(format!(
                    "shipment {shipment_id} is {} at Amazon, which does not allow rejection (allowed: {})",
                    r.status,
                    join_statuses(&r.eligible_for_rejection)
                )));
            }
            self.act_once(&r, Act::Reject(reason), inv).await?;
            if r.handed_over_at.is_some() {
                // Held after hand-over (a warehouse cancellation kept local): units go back.
                let loc = self.location_of(&r.location_id).await?;
                self.release(&r, &loc).await?;
                r.reservation_released = true;
            }
            r.stage = Stage::Rejected;
            r.status = ShipmentStatus::Cancelled;
            r.rejection_reason = Some(format!(
                "{}: decided by a person",
                reject_reason_str(reason)
            ));
            if self.save(&mut r).await? {
                self.metrics.count(
                    crate::metrics::names::ORDERS_REJECTED,
                    &[("Location", &r.location_id)],
                );
                return Ok(r);
            }
        }
        Err(conflict_exhausted(shipment_id))
    }

    async fn get_stored(&self, shipment_id: &str) -> Result<ShipmentRecord> {
        self.shipments
            .get(shipment_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("shipment {shipment_id}")))
    }

    /// Drives every shipment left in a stage that still owes work (after a crash, a throttled
    /// call, a claim held by an invocation that died). Returns how many it moved on.
    pub async fn sweep(&self, inv: &Invocation) -> Result<(usize, Vec<String>)> {
        let mut moved = 0;
        let mut errors = Vec::new();
        for stage in [Stage::Received, Stage::Confirmed] {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .shipments
                    .list(stage, None, 100, token.as_deref())
                    .await?;
                for r in page.items {
                    if inv.remaining() < std::time::Duration::from_secs(2) {
                        return Ok((moved, errors));
                    }
                    match self.drive_traced(&r, inv).await {
                        Ok(after) if after.stage != stage => moved += 1,
                        Ok(_) => {}
                        Err(e) => errors.push(format!("shipment {}: {e}", r.id)),
                    }
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
        }
        // Quarantined shipments: read each alone again (Amazon may have fixed its data, or a
        // newer flexbridge reads it now) and carry on with those that can be read.
        let mut token: Option<String> = None;
        loop {
            let page = self
                .shipments
                .list(Stage::Unreadable, None, 100, token.as_deref())
                .await?;
            for r in page.items {
                if inv.remaining() < std::time::Duration::from_secs(2) {
                    return Ok((moved, errors));
                }
                let healed = match self.read_back(&r.id).await {
                    Ok(Ok(s)) => self.store(&s).await.map(|_| true),
                    Ok(Err(_)) => Ok(false),
                    Err(e) => Err(e),
                };
                match healed {
                    Ok(true) => match self.drive_traced(&r, inv).await {
                        Ok(_) => moved += 1,
                        Err(e) => errors.push(format!("shipment {}: {e}", r.id)),
                    },
                    Ok(false) => {}
                    Err(e) => errors.push(format!("shipment {}: {e}", r.id)),
                }
            }
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        Ok((moved, errors))
    }
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Confirm,
    Reject(RejectReason),
}

fn not_held(id: &str, stage: Stage) -> Error {
    Error::Conflict(format!("shipment {id} is {}, not held", stage.as_str()))
}

fn conflict_exhausted(id: &str) -> Error {
    Error::Transient {
        message: format!("shipment {id} kept changing while being processed"),
        after: None,
    }
}

fn cancellation_reason(r: &ShipmentRecord) -> Option<String> {
    r.line_items
        .iter()
        .find_map(|l| l.cancellation_reason.clone())
}

fn pick_line(l: &LineItem) -> PickLine {
    PickLine {
        line_id: l.id.clone(),
        sku: l.sku.clone(),
        quantity: l.open_units(),
        gift_wrap: l.gift_wrap,
        gift_message: l.gift_message,
        serial_numbers_required: l.serial_numbers_required,
        hazmat_labels: l.hazmat_labels.clone(),
    }
}

fn accepted_event(r: &ShipmentRecord, loc: &OrderLocation) -> Result<OutboundEvent> {
    let detail = ShipmentAcceptedDetail {
        shipment_id: r.id.clone(),
        hub: loc.hub.clone(),
        location_id: r.location_id.clone(),
        marketplace_id: r.marketplace_id.clone(),
        channel: r.channel.clone(),
        lines: r
            .line_items
            .iter()
            .filter(|l| l.open_units() > 0)
            .map(pick_line)
            .collect(),
        ship_by: r.ship_by.clone(),
        priority: r.priority.clone(),
        prime: r.prime,
        handled_elsewhere: r.handled_elsewhere.clone(),
    };
    OutboundEvent::new(EventName::ShipmentAccepted, &r.id, Utc::now(), detail)
}
