//! What an operator looks at first: per location, whether orders are being polled and acted
//! on and whether stock reaches Amazon; per queue, what waits and what is parked; and how
//! busy Amazon's rate limits are. Read from the stores only (nothing is asked of Amazon).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::orders::poller::POLLED_STATUSES;
use crate::shipment::{ShipmentRecord, Stage};
use crate::store::cursors::{CursorKind, CursorStore};
use crate::store::inventory::{PushHalt, PushLedger};
use crate::store::locations::LocationStore;
use crate::store::shipments::ShipmentStore;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationStatus {
    pub location_id: String,
    pub hub_id: String,
    pub orders_enabled: bool,
    pub inventory_enabled: bool,
    /// When the last order poll that read every status of this location started (the
    /// oldest of its cursors; a poll only moves them when it succeeded).
    pub last_successful_poll: Option<DateTime<Utc>>,
    /// Shipments stored but not yet confirmed and handed to the warehouse.
    pub orders_waiting: u64,
    /// Age of the oldest of them, seconds (order lag).
    pub order_lag_s: Option<i64>,
    /// Shipments held for a person.
    pub orders_held: u64,
    /// SKUs whose stock has changed and is not yet at Amazon.
    pub pending_skus: u64,
    /// When Amazon last accepted a stock update here (from its `clientSequenceNumber`).
    pub last_push: Option<DateTime<Utc>>,
    /// Seconds since that push while SKUs are pending (push lag); 0 when nothing waits.
    pub push_lag_s: Option<i64>,
    /// SKUs Amazon refused (`push_error`), waiting for a fix.
    pub sku_errors: u64,
    /// A push the safety breaker stopped (status `halted`: waiting for release or discard).
    pub halt: Option<PushHalt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Logical ID in template.yaml.
    pub queue: String,
    pub visible: i64,
    pub in_flight: i64,
    /// Its dead-letter queue and what is parked there.
    pub dlq: Option<String>,
    pub dlq_visible: i64,
}

/// A shared rate-limit bucket (CursorsTable `RATELIMIT#<operation>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    pub operation: String,
    /// How far ahead of now the bucket is booked: callers wait this long for a token now.
    pub booked_ahead_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub stack: String,
    pub at: DateTime<Utc>,
    pub heartbeat: Option<String>,
    pub locations: Vec<LocationStatus>,
    pub queues: Vec<QueueStatus>,
    pub throttling: Vec<Throttling>,
}

impl Status {
    /// Problems worth a look, one line each (empty: healthy as far as the stores tell).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for l in &self.locations {
            if let Some(h) = l.halt.as_ref().filter(|h| h.status == "halted") {
                out.push(format!(
                    "{}: inventory push halted ({}); `inventory release|discard {}`",
                    l.location_id, h.reason, l.location_id
                ));
            }
            // The inventory_item_error alert: refused SKUs wait until their stock changes.
            if l.sku_errors > 0 {
                out.push(format!(
                    "{}: {} SKU(s) Amazon refused (push_error in the InventoryTable; the alerts query names them); fix the SKU, then its next stock change goes out",
                    l.location_id, l.sku_errors
                ));
            }
            if l.orders_enabled && l.last_successful_poll.is_none() {
                out.push(format!("{}: no successful order poll yet", l.location_id));
            }
        }
        for q in &self.queues {
            if q.dlq_visible > 0 {
                out.push(format!(
                    "{}: {} message(s) parked in {}; `dlq list {}`",
                    q.queue,
                    q.dlq_visible,
                    q.dlq.as_deref().unwrap_or("its DLQ"),
                    q.queue
                ));
            }
        }
        out
    }
}

/// Per-location status from the stores.
pub async fn locations(
    locations: &dyn LocationStore,
    cursors: &dyn CursorStore,
    shipments: &dyn ShipmentStore,
    ledger: &dyn PushLedger,
    now: DateTime<Utc>,
) -> Result<Vec<LocationStatus>> {
    let waiting = shipments_in(shipments, &[Stage::Received, Stage::Confirmed]).await?;
    let held = shipments_in(shipments, &[Stage::Held]).await?;
    let mut out = Vec::new();
    for l in locations.list().await? {
        let mut polls = Vec::new();
        for status in POLLED_STATUSES {
            polls.push(
                cursors
                    .get(CursorKind::Shipments, &l.location_id, status.as_str())
                    .await?,
            );
        }
        let last_successful_poll = if polls.iter().all(Option::is_some) {
            polls.into_iter().flatten().min()
        } else {
            None
        };
        let here: Vec<&ShipmentRecord> = waiting
            .iter()
            .filter(|s| s.location_id == l.location_id)
            .collect();
        let oldest = here.iter().map(|s| s.first_seen_at).min();
        let pending = ledger.pending(&l.location_id).await?.len() as u64;
        let positions = ledger.ledger(&l.location_id).await?;
        // The sequence number is the push time in microseconds (or one more than the last).
        let last_push = positions
            .iter()
            .filter_map(|p| p.pushed_seq)
            .max()
            .and_then(DateTime::<Utc>::from_timestamp_micros);
        out.push(LocationStatus {
            orders_waiting: here.len() as u64,
            order_lag_s: oldest.map(|t| (now - t).num_seconds().max(0)),
            orders_held: held
                .iter()
                .filter(|s| s.location_id == l.location_id)
                .count() as u64,
            pending_skus: pending,
            push_lag_s: match (pending, last_push) {
                (0, _) => Some(0),
                (_, Some(t)) => Some((now - t).num_seconds().max(0)),
                (_, None) => None,
            },
            last_push,
            sku_errors: positions.iter().filter(|p| p.push_error.is_some()).count() as u64,
            halt: ledger.halt(&l.location_id).await?,
            last_successful_poll,
            location_id: l.location_id,
            hub_id: l.hub_id,
            orders_enabled: l.orders_enabled,
            inventory_enabled: l.inventory_enabled,
        });
    }
    Ok(out)
}

async fn shipments_in(store: &dyn ShipmentStore, stages: &[Stage]) -> Result<Vec<ShipmentRecord>> {
    let mut out = Vec::new();
    for stage in stages {
        let mut token: Option<String> = None;
        loop {
            let page = store.list(*stage, None, 100, token.as_deref()).await?;
            out.extend(page.items);
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    Ok(out)
}

/// One line of a shipment's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub what: String,
}

/// A shipment's history as its record tells it, oldest first (no buyer data).
pub fn history(s: &ShipmentRecord) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    let mut add = |at: DateTime<Utc>, what: String| out.push(HistoryEntry { at, what });
    if let Some(t) = s.created_at_amazon {
        add(t, "created at Amazon".into());
    }
    add(s.first_seen_at, "seen by flexbridge".into());
    if let Some(t) = s.handed_over_at {
        add(t, "handed over to the warehouse".into());
    }
    if let Some(f) = &s.fulfilment {
        for step in &f.steps {
            add(
                step.at,
                match &step.note {
                    Some(n) => format!("{}: {n}", step.step),
                    None => step.step.clone(),
                },
            );
        }
        if let Some(c) = &f.cancellation {
            add(
                c.requested_at,
                format!("cancellation requested ({})", c.reason),
            );
        }
        if let Some(t) = f
            .shipped_at
            .filter(|_| !f.steps.iter().any(|s| s.step == "shipped"))
        {
            add(t, "shipped".into());
        }
    }
    let mut now = format!("stage {} (Amazon: {}", s.stage.as_str(), s.status);
    if let Some(sub) = &s.sub_status {
        now.push_str(&format!(" / {sub}"));
    }
    now.push(')');
    if !s.hold_reasons.is_empty() {
        now.push_str(&format!(", held: {}", s.hold_reasons.join("; ")));
    }
    if let Some(r) = &s.rejection_reason {
        now.push_str(&format!(", rejected: {r}"));
    }
    add(s.changed_at, now);
    out.sort_by_key(|e| e.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cursors::MemoryCursorStore;
    use crate::store::inventory::MemoryInventoryStore;
    use crate::store::locations::{Location, MemoryLocationStore};
    use crate::store::shipments::MemoryShipmentStore;

    fn loc(id: &str) -> Location {
        Location {
            location_id: id.into(),
            hub_id: format!("HUB-{id}"),
            name: id.into(),
            marketplace_id: "M".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        }
    }

    #[tokio::test]
    async fn a_location_shows_its_poll_lag_pending_stock_and_halt() {
        let now = Utc::now();
        let locations = MemoryLocationStore::with(vec![loc("EAST"), loc("WEST")]);
        let cursors = MemoryCursorStore::new();
        for (i, status) in POLLED_STATUSES.iter().enumerate() {
            let at = now - chrono::Duration::seconds(60 + i as i64);
            cursors
                .advance(CursorKind::Shipments, "EAST", status.as_str(), at)
                .await
                .unwrap();
        }
        // WEST polled only in part: not a successful poll yet.
        cursors
            .advance(CursorKind::Shipments, "WEST", "ACCEPTED", now)
            .await
            .unwrap();
        let shipments = MemoryShipmentStore::new();
        for (id, stage, age) in [("S1", Stage::Received, 300), ("S2", Stage::Held, 10)] {
            let mut r = ShipmentRecord::unreadable_placeholder(
                id,
                "EAST",
                &crate::spapi::ShipmentStatus::Accepted,
                "",
            );
            r.unreadable = None;
            r.stage = stage;
            r.first_seen_at = now - chrono::Duration::seconds(age);
            shipments.save(&mut r).await.unwrap();
        }
        let ledger = MemoryInventoryStore::new();
        ledger.mark_pending("EAST", &["A".into()]).await.unwrap();
        ledger
            .put_halt(&PushHalt {
                location_id: "EAST".into(),
                hub: "HUB-EAST".into(),
                status: "halted".into(),
                reason: "would zero 10 SKUs".into(),
                skus_in_push: 10,
                skus_zeroed: 10,
                skus_advertised_before: 10,
                units_before: 50,
                units_after: 0,
                halted_at: now.to_rfc3339(),
                decided_by: None,
                decided_at: None,
            })
            .await
            .unwrap();

        let all = locations_status(&locations, &cursors, &shipments, &ledger, now).await;
        let east = &all[0];
        assert_eq!(
            east.last_successful_poll,
            Some(now - chrono::Duration::seconds(64))
        );
        assert_eq!((east.orders_waiting, east.orders_held), (1, 1));
        assert!(east.order_lag_s.unwrap() >= 300);
        assert_eq!((east.pending_skus, east.push_lag_s), (1, None));
        assert_eq!(all[1].last_successful_poll, None);
        assert_eq!((all[1].pending_skus, all[1].push_lag_s), (0, Some(0)));
        let mut all = all;
        all[1].sku_errors = 3;
        let status = Status {
            stack: "s".into(),
            at: now,
            heartbeat: None,
            locations: all,
            queues: vec![QueueStatus {
                queue: "UploadsQueue".into(),
                visible: 0,
                in_flight: 0,
                dlq: Some("UploadsDLQ".into()),
                dlq_visible: 2,
            }],
            throttling: vec![],
        };
        let problems = status.problems().join("\n");
        assert!(problems.contains("EAST: inventory push halted (would zero 10 SKUs)"));
        assert!(problems.contains("WEST: no successful order poll yet"));
        assert!(problems.contains("2 message(s) parked in UploadsDLQ"));
        assert!(problems.contains("WEST: 3 SKU(s) Amazon refused"));

        let mut r = shipments.get("S1").await.unwrap().unwrap();
        r.handed_over_at = Some(now);
        let h = history(&r);
        assert_eq!(h.first().unwrap().what, "seen by flexbridge");
        assert!(h.iter().any(|e| e.what == "handed over to the warehouse"));
        assert!(h.last().unwrap().what.starts_with("stage received"));
    }

    async fn locations_status(
        l: &MemoryLocationStore,
        c: &MemoryCursorStore,
        s: &MemoryShipmentStore,
        i: &MemoryInventoryStore,
        now: DateTime<Utc>,
    ) -> Vec<LocationStatus> {
        locations(l, c, s, i, now).await.unwrap()
    }
}
