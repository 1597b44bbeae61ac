//! Reconciliation: reads back what Amazon holds for every SKU we pushed (batchInventory fetch,
//! 10 per call), corrects drift, and tells which quantity reading the account follows.
//!
//! For each SKU in the ledger (`P` = the quantity Amazon last accepted from us), Amazon answers
//! sellable `S` and reserved `R`:
//! - sellable reading: Amazon should hold `S = P` (it lowers `S` when an order comes in, and
//!   our next push, after the reservation, says the same);
//! - on-hand reading: Amazon subtracts its reservations itself, so `S = P − R`.
//!
//! Units Amazon reserves that we have not reserved yet (orders not polled yet) are expected to be
//! missing from `S` under the sellable reading, so they are never mistaken for drift.
//!
//! Where `R > 0` the two readings predict different numbers, so each such SKU is a vote
//! (SKUs still pending are left out: our push may simply not have gone out yet). Whatever does
//! not match the configured reading is drift: the ledger takes what Amazon really holds, the
//! SKU is marked pending, and the pusher sends the right quantity (through the breaker).

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;

use super::pusher::{PushReport, Pusher};
use super::{settings as names, QuantityReading};
use crate::error::Result;
use crate::retry::Deadline;
use crate::spapi::models::inventory::InventoryRequest;
use crate::store::settings::get_or;

/// The status record (SettingsTable `STATUS`) holding when reconciliation last ran.
pub const STATUS: &str = "inventory_reconcile";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub sku: String,
    pub expected: i64,
    pub amazon_sellable: i64,
    pub amazon_reserved: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationReconcile {
    pub location_id: String,
    pub checked: u64,
    pub drift_count: u64,
    pub drift: Vec<Drift>,
    pub failed_calls: u64,
    pub item_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub configured_reading: Option<QuantityReading>,
    pub votes_sellable: u64,
    pub votes_on_hand: u64,
    /// What the numbers say the account follows (`None`: no SKU with reservations to tell).
    pub detected_reading: Option<QuantityReading>,
    pub locations: Vec<LocationReconcile>,
    /// The push that corrected the drift.
    pub push: Option<PushReport>,
}

/// Whether reconciliation is due (`inventory_reconcile_minutes`, default 60).
pub async fn due(p: &Pusher) -> Result<bool> {
    let minutes: i64 = get_or(p.settings.as_ref(), names::RECONCILE_MINUTES, 60).await?;
    let last = p.settings.status(STATUS).await?;
    Ok(
        match last.and_then(|(_, at)| {
            chrono::DateTime::parse_from_rfc3339(&at)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }) {
            None => true,
            Some(at) => Utc::now() - at >= chrono::Duration::minutes(minutes),
        },
    )
}

pub async fn reconcile(p: &Pusher, deadline: Option<Deadline>) -> Result<ReconcileReport> {
    let reading: QuantityReading = get_or(
        p.settings.as_ref(),
        names::QUANTITY_READING,
        QuantityReading::default(),
    )
    .await?;
    let mut report = ReconcileReport {
        configured_reading: Some(reading),
        ..Default::default()
    };
    let mut corrected: Vec<String> = Vec::new();
    for loc in p.locations.list().await? {
        if !loc.inventory_enabled {
            continue;
        }
        let id = loc.location_id.clone();
        let mut lr = LocationReconcile {
            location_id: id.clone(),
            ..Default::default()
        };
        let ledger: BTreeMap<String, _> = p
            .ledger
            .ledger(&id)
            .await?
            .into_iter()
            .map(|pos| (pos.sku.clone(), pos))
            .collect();
        let skus: Vec<&String> = ledger.keys().collect();
        let mut drifted = Vec::new();
        for chunk in skus.chunks(super::pusher::BATCH) {
            if deadline.is_some_and(|d| d.is_past()) {
                break;
            }
            let requests: Vec<InventoryRequest> = chunk
                .iter()
                .map(|sku| InventoryRequest::fetch(&id, sku, None))
                .collect();
            let results = match p.amazon.batch_inventory(&requests).await {
                Ok(r) => r,
                Err(e) => {
                    lr.failed_calls += 1;
                    tracing::warn!(location = %id, error = %e, "reconciliation fetch failed");
                    continue;
                }
            };
            for (sku, item) in chunk.iter().zip(results) {
                let pos = &ledger[*sku];
                if !item.is_success() {
                    lr.item_errors += 1;
                    continue;
                }
                lr.checked += 1;
                let s = item.body.sellable_quantity.unwrap_or(0);
                let r = item.body.reserved_quantity.unwrap_or(0);
                let pushed = pos.pushed_qty.unwrap_or(0);
                let settled = pos.pending_gen <= pos.done_gen;
                if r > 0 && settled && r == pos.reserved {
                    if s == pushed {
                        report.votes_sellable += 1;
                    } else if s + r == pushed {
                        report.votes_on_hand += 1;
                    }
                }
                // Orders Amazon has and we have not reserved yet (not polled yet) already
                // lowered Amazon's sellable when they came after our push, or our push
                // already left them out when it came after them (the pusher reads Amazon's
                // reservation in its answer): neither is drift.
                let unseen = (r - pos.reserved).max(0);
                let expected = match reading {
                    QuantityReading::Sellable => (pushed - unseen).max(0),
                    QuantityReading::OnHand => (pushed - r).max(0),
                };
                let pushed_after_them = reading == QuantityReading::Sellable && s == pushed;
                if settled && s != expected && !pushed_after_them {
                    let amazon_as_pushed = match reading {
                        QuantityReading::Sellable => s,
                        QuantityReading::OnHand => s + r,
                    };
                    drifted.push(((*sku).clone(), amazon_as_pushed));
                    lr.drift_count += 1;
                    if lr.drift.len() < 100 {
                        lr.drift.push(Drift {
                            sku: (*sku).clone(),
                            expected,
                            amazon_sellable: s,
                            amazon_reserved: r,
                        });
                    }
                }
            }
        }
        for (sku, amazon_has) in &drifted {
            p.ledger.correct(&id, sku, *amazon_has).await?;
        }
        if !drifted.is_empty() {
            tracing::warn!(location = %id, drift = drifted.len(), "Amazon's stock drifted from what we pushed; correcting");
            corrected.push(id.clone());
        }
        report.locations.push(lr);
    }
    report.detected_reading = match (report.votes_sellable, report.votes_on_hand) {
        (0, 0) => None,
        (s, o) if s >= o => Some(QuantityReading::Sellable),
        _ => Some(QuantityReading::OnHand),
    };
    if report.detected_reading.is_some_and(|d| d != reading) {
        tracing::error!(
            alert = "inventory_quantity_reading",
            configured = ?reading,
            detected = ?report.detected_reading,
            votes_sellable = report.votes_sellable,
            votes_on_hand = report.votes_on_hand,
            "Amazon reads the pushed quantity differently from the setting inventory_quantity_reading; change the setting"
        );
    }
    p.settings
        .record_status(STATUS, serde_json::to_value(&report.locations)?)
        .await?;
    if !corrected.is_empty() {
        report.push = Some(p.push(Some(&corrected), deadline).await?);
    }
    Ok(report)
}
