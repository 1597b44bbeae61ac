//! The inventory pusher: sends Amazon what differs from its last accepted quantity.
//!
//! Per location (inventory sync on), for the SKUs marked pending:
//! 1. what to advertise ([`super::advertised`]) from the hub's on-hand figure, the units
//!    reserved by open shipments at every location of the hub, and the catalog entry (a SKU not
//!    in the catalog, or without an on-hand figure, is skipped with the reason; a disabled one is
//!    pushed as 0);
//! 2. only values that differ from the ledger (Amazon's last accepted quantity) go out;
//! 3. the safety breaker looks at the whole push before anything is sent;
//! 4. calls of 10 updates, each with `clientSequenceNumber = max(now in µs, last + 1)`, so it
//!    grows strictly per (location, SKU) and an older request can never overwrite a newer one;
//! 5. each item of the 207 on its own: success moves the ledger; a stale sequence number is
//!    read again and resent; throttled and 5xx items are retried; an actionable error
//!    (`INVALID_SKU`, ...) is stored against the SKU, reported and alerted, and not retried
//!    until the SKU changes again.
//!
//! A pending mark is cleared only once its push is recorded (and only if no newer change came
//! meanwhile), so a crash anywhere leaves it for the next run: never lost, and never stale
//! because the next run computes the quantity afresh with a newer sequence number.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;

use super::{
    advertised, settings as names, BreakerLimits, InventoryApi, LowStock, PushImpact,
    QuantityReading, SkuRules,
};
use crate::error::{Error, Result};
use crate::events::{self, EventName, EventSink, OutboundEvent};
use crate::retry::Deadline;
use crate::spapi::models::inventory::{InventoryItemResult, InventoryRequest};
use crate::store::catalog::CatalogStore;
use crate::store::inventory::{PushHalt, PushLedger, PushPosition};
use crate::store::locations::{Location, LocationStore};
use crate::store::settings::{get_or, SettingsStore};

/// batchInventory's batch size.
pub const BATCH: usize = 10;
/// Rounds of resending stale or throttled items within one run (then the sweep takes over).
const ROUNDS: u32 = 4;
/// At most this many entries per list in a report (the counts are always complete).
const REPORT_LIST_MAX: usize = 100;

/// Test hook: `true` stops the run right after Amazon answered a call, before the ledger is
/// written (a crash between pushing and recording).
pub type CrashAfterSend = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Pusher {
    pub ledger: Arc<dyn PushLedger>,
    pub locations: Arc<dyn LocationStore>,
    pub catalog: Arc<dyn CatalogStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub amazon: Arc<dyn InventoryApi>,
    pub events: Arc<dyn EventSink>,
    /// batchInventory calls in flight at once (the rate limiter paces them).
    pub concurrency: usize,
    pub crash_after_send: Option<CrashAfterSend>,
    pub metrics: crate::metrics::Metrics,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuNote {
    pub sku: String,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WouldPush {
    pub sku: String,
    pub quantity: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amazon_has: Option<i64>,
}

/// What one run did at one location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationReport {
    pub location_id: String,
    pub hub: String,
    /// `pushed`, `nothing_pending`, `sync_off`, `halted`, `released`, `discarded`, `dry_run`.
    pub status: String,
    pub pending: u64,
    pub unchanged: u64,
    pub sent: u64,
    pub accepted: u64,
    pub stale_resent: u64,
    /// Accepted, then sent again to allow for Amazon's reservation of orders not stored yet.
    pub unseen_resent: u64,
    pub retried: u64,
    /// Still pending after this run (Amazon throttled or failed; the next run sends them).
    pub deferred: u64,
    pub skipped_count: u64,
    pub skipped: Vec<SkuNote>,
    pub errors_count: u64,
    pub errors: Vec<SkuNote>,
    pub low_stock: u64,
    pub calls: u64,
    pub failed_calls: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_push: Vec<WouldPush>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt: Option<PushHalt>,
}

impl LocationReport {
    fn skip(&mut self, sku: &str, note: impl Into<String>) {
        self.skipped_count += 1;
        if self.skipped.len() < REPORT_LIST_MAX {
            self.skipped.push(SkuNote {
                sku: sku.to_string(),
                note: note.into(),
            });
        }
    }

    fn error(&mut self, sku: &str, note: impl Into<String>) {
        self.errors_count += 1;
        if self.errors.len() < REPORT_LIST_MAX {
            self.errors.push(SkuNote {
                sku: sku.to_string(),
                note: note.into(),
            });
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// `false` when the kill switch (`inventory_push_enabled`) is off: nothing was touched.
    pub enabled: bool,
    pub dry_run: bool,
    pub locations: Vec<LocationReport>,
}

impl PushReport {
    pub fn failed_calls(&self) -> u64 {
        self.locations.iter().map(|l| l.failed_calls).sum()
    }
    pub fn deferred(&self) -> u64 {
        self.locations.iter().map(|l| l.deferred).sum()
    }
}

/// The run's settings, read once.
#[derive(Debug, Clone)]
struct RunSettings {
    reading: QuantityReading,
    limits: BreakerLimits,
    low_stock: LowStock,
}

/// One update to send.
#[derive(Debug, Clone)]
struct Update {
    sku: String,
    qty: i64,
    old: Option<i64>,
    gen: i64,
    seq: i64,
    /// Units reserved at this location by our count, and those `qty` allows for (more when
    /// Amazon's answer to the last send reserved more).
    reserved_ours: i64,
    reserved_here: i64,
}

/// Why an item goes round again.
enum Again {
    Stale(i64),
    Retry,
    /// Accepted, but Amazon's reservation at this location (its `reservedQuantity`, this
    /// figure) is not what the quantity allowed for: it took orders we have not stored yet, or
    /// gave units of such an order back since our last send.
    Unseen(i64),
}

/// What the next round knows about a SKU it sends again.
#[derive(Debug, Clone, Copy, Default)]
struct Resend {
    /// Above the sequence number Amazon holds (0: none).
    seq_floor: i64,
    /// Amazon's reservation at this location, counted when it is more than ours.
    amazon_reserved: i64,
}

impl Pusher {
    async fn run_settings(&self) -> Result<RunSettings> {
        let s = self.settings.as_ref();
        let d = BreakerLimits::default();
        Ok(RunSettings {
            reading: get_or(s, names::QUANTITY_READING, QuantityReading::default()).await?,
            limits: BreakerLimits {
                zero_share: get_or(s, names::BREAKER_ZERO_SHARE, d.zero_share).await?,
                units_cut_share: get_or(s, names::BREAKER_UNITS_CUT_SHARE, d.units_cut_share)
                    .await?,
                min_skus: get_or(s, names::BREAKER_MIN_SKUS, d.min_skus).await?,
            },
            low_stock: match s.get(names::LOW_STOCK_THRESHOLD).await? {
                None => LowStock::Off,
                Some(v) => serde_json::from_value(v.value).map_err(|e| {
                    Error::InvalidInput(format!(
                        "setting {} has an unexpected value: {e}",
                        names::LOW_STOCK_THRESHOLD
                    ))
                })?,
            },
        })
    }

    /// Pushes what is pending at these locations (`None`: every location). Amazon's failures
    /// leave the marks for the next run and are counted in the report (`failed_calls`,
    /// `deferred`); store failures are returned.
    pub async fn push(
        &self,
        location_ids: Option<&[String]>,
        deadline: Option<Deadline>,
    ) -> Result<PushReport> {
        let enabled: bool = get_or(self.settings.as_ref(), names::PUSH_ENABLED, false).await?;
        let dry_run: bool = get_or(self.settings.as_ref(), names::DRY_RUN, false).await?;
        let mut report = PushReport {
            enabled,
            dry_run,
            locations: Vec::new(),
        };
        if !enabled {
            tracing::warn!("inventory push is switched off (inventory_push_enabled); nothing sent");
            return Ok(report);
        }
        let run = self.run_settings().await?;
        let all = self.locations.list().await?;
        let chosen: Vec<&Location> = match location_ids {
            None => all.iter().collect(),
            Some(ids) => all
                .iter()
                .filter(|l| ids.contains(&l.location_id))
                .collect(),
        };
        for loc in chosen {
            let r = self
                .push_location(loc, &all, &run, dry_run, deadline)
                .await?;
            let at = [("LocationId", r.location_id.as_str())];
            use crate::metrics::{names as m, Unit};
            if r.accepted > 0 {
                self.metrics.put(
                    m::INVENTORY_SKUS_PUSHED,
                    r.accepted as f64,
                    Unit::Count,
                    &at,
                );
            }
            if r.skipped_count > 0 {
                let skipped = r.skipped_count as f64;
                self.metrics
                    .put(m::INVENTORY_SKUS_SKIPPED, skipped, Unit::Count, &at);
            }
            report.locations.push(r);
        }
        Ok(report)
    }

    async fn push_location(
        &self,
        loc: &Location,
        all: &[Location],
        run: &RunSettings,
        dry_run: bool,
        deadline: Option<Deadline>,
    ) -> Result<LocationReport> {
        let id = loc.location_id.as_str();
        let mut r = LocationReport {
            location_id: id.to_string(),
            hub: loc.hub_id.clone(),
            ..Default::default()
        };
        let pending = self.ledger.pending(id).await?;
        r.pending = pending.len() as u64;
        if !loc.inventory_enabled {
            r.status = "sync_off".into();
            for p in self.ledger.positions(id, &pending).await? {
                self.ledger.finish(id, &p.sku, p.pending_gen, None).await?;
                r.skip(&p.sku, "inventory sync is off for this location");
            }
            return Ok(r);
        }
        let halt = self.ledger.halt(id).await?;
        let mut bypass_breaker = false;
        match halt.as_ref().map(|h| h.status.as_str()) {
            Some("halted") => {
                r.status = "halted".into();
                r.halt = halt;
                return Ok(r);
            }
            Some("discarded") => {
                for p in self.ledger.positions(id, &pending).await? {
                    self.ledger.finish(id, &p.sku, p.pending_gen, None).await?;
                }
                self.ledger.delete_halt(id).await?;
                tracing::warn!(
                    location = id,
                    skus = pending.len(),
                    "halted inventory push discarded; Amazon keeps its quantities"
                );
                r.status = "discarded".into();
                r.halt = halt;
                return Ok(r);
            }
            Some(_) => bypass_breaker = true,
            None => {}
        }
        if pending.is_empty() {
            r.status = "nothing_pending".into();
            if bypass_breaker {
                self.ledger.delete_halt(id).await?;
            }
            return Ok(r);
        }
        let siblings: Vec<String> = all
            .iter()
            .filter(|l| l.hub_id == loc.hub_id && l.location_id != id)
            .map(|l| l.location_id.clone())
            .collect();

        let mut updates = self
            .compute(loc, &siblings, &pending, run, &mut r, &HashMap::new())
            .await?;

        if !bypass_breaker && updates.iter().any(|u| u.qty < u.old.unwrap_or(0)) {
            if let Some(h) = self.breaker(loc, &updates, &run.limits).await? {
                r.status = "halted".into();
                r.halt = Some(h);
                return Ok(r);
            }
        }
        if dry_run {
            r.status = "dry_run".into();
            for u in &updates {
                tracing::info!(location = id, sku = %u.sku, quantity = u.qty, amazon_has = ?u.old, "dry run: would push");
                if r.would_push.len() < REPORT_LIST_MAX {
                    r.would_push.push(WouldPush {
                        sku: u.sku.clone(),
                        quantity: u.qty,
                        amazon_has: u.old,
                    });
                }
            }
            r.deferred = updates.len() as u64;
            return Ok(r);
        }
        r.status = if bypass_breaker { "released" } else { "pushed" }.into();

        for round in 0..ROUNDS {
            if updates.is_empty() {
                break;
            }
            if deadline.is_some_and(|d| d.remaining() < Duration::from_secs(2)) {
                break;
            }
            let again = self.send(loc, &updates, run, &mut r, deadline).await?;
            if again.is_empty() {
                updates.clear();
                break;
            }
            if round + 1 == ROUNDS {
                updates.retain(|u| again.contains_key(&u.sku));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 << round)).await;
            let mut resend: HashMap<String, Resend> = HashMap::new();
            for (sku, a) in &again {
                let entry = resend.entry(sku.clone()).or_default();
                match a {
                    Again::Stale(held) => {
                        entry.seq_floor = held + 1;
                        r.stale_resent += 1;
                    }
                    Again::Retry => r.retried += 1,
                    Again::Unseen(reserved) => {
                        entry.amazon_reserved = *reserved;
                        r.unseen_resent += 1;
                    }
                }
            }
            let skus: Vec<String> = again.into_keys().collect();
            updates = self
                .compute(loc, &siblings, &skus, run, &mut r, &resend)
                .await?;
        }
        r.deferred += updates.len() as u64;
        if bypass_breaker {
            self.ledger.delete_halt(id).await?;
        }
        Ok(r)
    }

    /// What to send for these SKUs now (reads everything afresh); clears the marks of SKUs
    /// that need nothing sent and notes the skipped ones.
    async fn compute(
        &self,
        loc: &Location,
        siblings: &[String],
        skus: &[String],
        run: &RunSettings,
        r: &mut LocationReport,
        resend: &HashMap<String, Resend>,
    ) -> Result<Vec<Update>> {
        let id = loc.location_id.as_str();
        let mut out = Vec::new();
        for chunk in skus.chunks(500) {
            let positions = self.ledger.positions(id, chunk).await?;
            let mut reserved_elsewhere: HashMap<String, i64> = HashMap::new();
            for s in siblings {
                for p in self.ledger.positions(s, chunk).await? {
                    *reserved_elsewhere.entry(p.sku.clone()).or_default() += p.reserved;
                }
            }
            let on_hand = self.ledger.on_hand_many(&loc.hub_id, chunk).await?;
            let catalog: HashMap<String, _> = self
                .catalog
                .get_items(chunk)
                .await?
                .into_iter()
                .map(|i| (i.sku.clone(), i))
                .collect();
            let now_us = Utc::now().timestamp_micros();
            for p in positions {
                let Some(item) = catalog.get(&p.sku) else {
                    self.ledger.finish(id, &p.sku, p.pending_gen, None).await?;
                    r.skip(&p.sku, "not in the catalog");
                    continue;
                };
                let Some(on_hand) = on_hand.get(&p.sku).copied() else {
                    self.ledger.finish(id, &p.sku, p.pending_gen, None).await?;
                    r.skip(&p.sku, "no on-hand figure from the warehouse yet");
                    continue;
                };
                let rules = SkuRules {
                    enabled: item.enabled,
                    safety_stock: item.safety_stock.unwrap_or(0),
                    max_quantity: item.max_quantity,
                };
                let again = resend.get(&p.sku).copied().unwrap_or_default();
                let reserved_here = p.reserved.max(again.amazon_reserved);
                let reserved = reserved_here + reserved_elsewhere.get(&p.sku).copied().unwrap_or(0);
                let qty = advertised(on_hand, reserved, rules, run.reading);
                if p.pushed_qty == Some(qty) && again.seq_floor == 0 {
                    self.ledger.finish(id, &p.sku, p.pending_gen, None).await?;
                    r.unchanged += 1;
                    continue;
                }
                let seq = now_us
                    .max(p.pushed_seq.map_or(0, |s| s + 1))
                    .max(again.seq_floor);
                out.push(Update {
                    old: p.pushed_qty,
                    sku: p.sku,
                    qty,
                    gen: p.pending_gen,
                    seq,
                    reserved_ours: p.reserved,
                    reserved_here,
                });
            }
        }
        Ok(out)
    }

    /// The safety breaker: stops the push (and records why) when it would zero or cut too much.
    async fn breaker(
        &self,
        loc: &Location,
        updates: &[Update],
        limits: &BreakerLimits,
    ) -> Result<Option<PushHalt>> {
        if (updates.len() as u64) < limits.min_skus {
            return Ok(None);
        }
        let ledger: Vec<PushPosition> = self.ledger.ledger(&loc.location_id).await?;
        let mut impact = PushImpact::default();
        for p in &ledger {
            let q = p.pushed_qty.unwrap_or(0);
            if q > 0 {
                impact.skus_advertised_before += 1;
                impact.units_before += q;
            }
        }
        impact.units_after = impact.units_before;
        for u in updates {
            impact.add(u.old, u.qty);
        }
        let Some(reason) = impact.trips(limits) else {
            return Ok(None);
        };
        let halt = PushHalt {
            location_id: loc.location_id.clone(),
            hub: loc.hub_id.clone(),
            status: "halted".into(),
            reason: reason.clone(),
            skus_in_push: impact.skus_in_push,
            skus_zeroed: impact.skus_zeroed,
            skus_advertised_before: impact.skus_advertised_before,
            units_before: impact.units_before,
            units_after: impact.units_after,
            halted_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            decided_by: None,
            decided_at: None,
        };
        self.ledger.put_halt(&halt).await?;
        tracing::error!(
            alert = %crate::metrics::Alert::InventoryPushHalted,
            location = %loc.location_id,
            hub = %loc.hub_id,
            reason = %reason,
            "inventory push halted by the safety breaker; release or discard it"
        );
        self.metrics.alert(
            crate::metrics::Alert::InventoryPushHalted,
            &[("LocationId", &loc.location_id)],
        );
        let event = OutboundEvent::new(
            EventName::InventoryPushHalted,
            &format!("{}#{}", loc.location_id, halt.halted_at),
            Utc::now(),
            events::InventoryPushHalted {
                hub: loc.hub_id.clone(),
                sku: None,
                reason,
                location_id: Some(loc.location_id.clone()),
                skus_in_push: Some(impact.skus_in_push),
                skus_zeroed: Some(impact.skus_zeroed),
                skus_advertised_before: Some(impact.skus_advertised_before),
                units_before: Some(impact.units_before),
                units_after: Some(impact.units_after),
            },
        )?;
        self.events.publish(&[event]).await?;
        Ok(Some(halt))
    }

    /// Sends `updates` in calls of 10 and handles each item; returns the SKUs to send again.
    async fn send(
        &self,
        loc: &Location,
        updates: &[Update],
        run: &RunSettings,
        r: &mut LocationReport,
        deadline: Option<Deadline>,
    ) -> Result<BTreeMap<String, Again>> {
        let id = loc.location_id.as_str();
        let calls: Vec<_> = updates
            .chunks(BATCH)
            .map(|chunk| {
                let requests: Vec<InventoryRequest> = chunk
                    .iter()
                    .map(|u| InventoryRequest::update(id, &u.sku, u.qty, u.seq, None))
                    .collect();
                let amazon = Arc::clone(&self.amazon);
                async move {
                    if deadline.is_some_and(|d| d.remaining() < Duration::from_secs(2)) {
                        return (chunk, None);
                    }
                    (chunk, Some(amazon.batch_inventory(&requests).await))
                }
            })
            .collect();
        let mut answers = futures::stream::iter(calls).buffer_unordered(self.concurrency.max(1));
        let mut again = BTreeMap::new();
        let mut events_out = Vec::new();
        while let Some((chunk, answer)) = answers.next().await {
            let Some(answer) = answer else {
                continue; // no time left: stays pending
            };
            r.calls += 1;
            let results = match answer {
                Ok(results) => results,
                Err(e) => {
                    r.failed_calls += 1;
                    tracing::warn!(location = id, error = %e, skus = chunk.len(), "batchInventory failed; the SKUs stay pending");
                    continue;
                }
            };
            if let Some(crash) = &self.crash_after_send {
                if crash(id) {
                    return Err(Error::Transient {
                        message: "injected crash after batchInventory, before the ledger".into(),
                        after: None,
                    });
                }
            }
            r.sent += chunk.len() as u64;
            for (i, u) in chunk.iter().enumerate() {
                let Some(item) = results.get(i) else {
                    again.insert(u.sku.clone(), Again::Retry);
                    continue;
                };
                match classify(item, u.seq) {
                    Outcome::Accepted => {
                        self.ledger
                            .record_accepted(id, &u.sku, u.qty, u.seq, u.gen)
                            .await?;
                        r.accepted += 1;
                        // An update sets the absolute sellable quantity, so one computed before
                        // we stored an order Amazon already took offers that order's units
                        // again (oversold if stock is short). Amazon's answer says how many it
                        // reserves: send again without them, at once; and if such an order was
                        // cancelled since (Amazon gave its units back), send again with them.
                        // Under the on-hand reading Amazon subtracts its reservations itself.
                        if let (QuantityReading::Sellable, Some(amazon_reserved)) =
                            (run.reading, item.body.reserved_quantity)
                        {
                            let want = u.reserved_ours.max(amazon_reserved);
                            if want < u.reserved_here || (want > u.reserved_here && u.qty > 0) {
                                again.insert(u.sku.clone(), Again::Unseen(amazon_reserved));
                            }
                        }
                        if let Some(t) = run.low_stock.threshold(id, &u.sku) {
                            if u.qty <= t && u.old.is_none_or(|o| o > t) {
                                r.low_stock += 1;
                                self.metrics.count(
                                    crate::metrics::names::INVENTORY_LOW_STOCK,
                                    &[("LocationId", id)],
                                );
                                events_out.push(low_stock_event(loc, &u.sku, u.qty, t)?);
                            }
                        }
                    }
                    Outcome::Stale(held) => {
                        again.insert(u.sku.clone(), Again::Stale(held));
                    }
                    Outcome::Retry => {
                        again.insert(u.sku.clone(), Again::Retry);
                    }
                    Outcome::Actionable(error) => {
                        tracing::error!(
                            alert = %crate::metrics::Alert::InventoryItemError,
                            location = id,
                            sku = %u.sku,
                            error = %error,
                            "Amazon refused the stock update of a SKU; fix it (not retried until it changes)"
                        );
                        self.metrics.alert(
                            crate::metrics::Alert::InventoryItemError,
                            &[("LocationId", id)],
                        );
                        self.ledger.finish(id, &u.sku, u.gen, Some(&error)).await?;
                        r.error(&u.sku, error);
                    }
                }
            }
        }
        if !events_out.is_empty() {
            self.events.publish(&events_out).await?;
        }
        Ok(again)
    }
}

fn low_stock_event(loc: &Location, sku: &str, qty: i64, threshold: i64) -> Result<OutboundEvent> {
    OutboundEvent::new(
        EventName::InventoryLowStock,
        &format!(
            "{}#{sku}#{}",
            loc.location_id,
            Utc::now().timestamp_millis()
        ),
        Utc::now(),
        events::InventoryLowStock {
            hub: loc.hub_id.clone(),
            location_id: loc.location_id.clone(),
            sku: sku.to_string(),
            advertised: qty,
            threshold,
        },
    )
}

/// How one item of the 207 went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Amazon holds this update (a resend of an applied update refused as stale counts too).
    Accepted,
    /// Amazon holds a newer sequence number (this one): read again and resend above it.
    Stale(i64),
    /// Throttled or failed on Amazon's side: send again.
    Retry,
    /// Amazon refused it for a reason a person must fix.
    Actionable(String),
}

pub fn classify(item: &InventoryItemResult, seq: i64) -> Outcome {
    if item.is_success() {
        return Outcome::Accepted;
    }
    let stale = item
        .body
        .actionable_errors
        .iter()
        .any(|e| e.error_type.as_deref() == Some("STALE_CLIENT_SEQUENCE_NUMBER"));
    if stale || item.status.status_code == Some(409) {
        return match item.body.client_sequence_number {
            Some(held) if held == seq => Outcome::Accepted,
            Some(held) => Outcome::Stale(held),
            None => Outcome::Retry,
        };
    }
    if item.is_retryable() {
        return Outcome::Retry;
    }
    let errors: Vec<String> = item
        .body
        .actionable_errors
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.error_type.as_deref().unwrap_or("ERROR"),
                e.error_sub_type.as_deref().unwrap_or("")
            )
        })
        .collect();
    Outcome::Actionable(if errors.is_empty() {
        format!(
            "HTTP {} {}",
            item.status.status_code.unwrap_or(0),
            item.status.reason_phrase.as_deref().unwrap_or("")
        )
    } else {
        errors.join("; ")
    })
}

/// SKUs seen in a set of reports (tests and tools).
pub fn skus_with_errors(report: &PushReport) -> HashSet<String> {
    report
        .locations
        .iter()
        .flat_map(|l| l.errors.iter().map(|e| e.sku.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
