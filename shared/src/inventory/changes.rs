//! Stock changes coming in: on-hand figures from the warehouse API and CSV snapshots. Each
//! stored figure marks the (location, SKU) of every location its hub serves pending, and the
//! pusher is nudged, so the change reaches Amazon within seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::PushNudge;
use crate::error::Result;
use crate::store::inventory::{OnHand, OnHandStore, PushHalt, PushLedger};
use crate::store::locations::{Location, LocationStore};

/// What happened to one figure of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    pub index: usize,
    pub hub: String,
    pub sku: String,
    pub reason: String,
}

/// The outcome of a report of on-hand figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnHandOutcome {
    pub accepted: usize,
    pub stored: usize,
    pub skipped_as_older: usize,
    pub refused: Vec<Refused>,
}

pub struct StockChanges {
    pub on_hand: Arc<dyn OnHandStore>,
    pub ledger: Arc<dyn PushLedger>,
    pub locations: Arc<dyn LocationStore>,
    pub nudge: Arc<dyn PushNudge>,
}

impl StockChanges {
    pub fn new(
        on_hand: Arc<dyn OnHandStore>,
        ledger: Arc<dyn PushLedger>,
        locations: Arc<dyn LocationStore>,
        nudge: Arc<dyn PushNudge>,
    ) -> Self {
        Self {
            on_hand,
            ledger,
            locations,
            nudge,
        }
    }

    /// In-memory twin (tests): `hubs` are mapped to one location each (`LOC-<hub>`).
    pub fn in_memory(on_hand: Arc<dyn OnHandStore>, hubs: &[&str]) -> Self {
        let locations = hubs
            .iter()
            .map(|hub| Location {
                location_id: format!("LOC-{hub}"),
                hub_id: hub.to_string(),
                name: hub.to_string(),
                marketplace_id: "ATVPDKIKX0DER".into(),
                channel: "FBA".into(),
                orders_enabled: true,
                inventory_enabled: true,
                returns_enabled: true,
            })
            .collect();
        Self::new(
            on_hand,
            Arc::new(crate::store::inventory::MemoryInventoryStore::new()),
            Arc::new(crate::store::locations::MemoryLocationStore::with(
                locations,
            )),
            Arc::new(super::MemoryNudge::default()),
        )
    }

    /// The locations with inventory sync on that a hub serves.
    pub async fn synced_locations(&self, hub: &str) -> Result<Vec<Location>> {
        Ok(self
            .locations
            .by_hub(hub)
            .await?
            .into_iter()
            .filter(|l| l.inventory_enabled)
            .collect())
    }

    /// Stores the figures whose hub is mapped to an enabled location (the others are refused
    /// one by one with the reason), marks what changed pending and nudges the pusher.
    pub async fn report_on_hand(&self, figures: Vec<OnHand>) -> Result<OnHandOutcome> {
        let mut hubs: BTreeMap<String, Vec<Location>> = BTreeMap::new();
        for f in &figures {
            if !hubs.contains_key(&f.hub) {
                hubs.insert(f.hub.clone(), self.synced_locations(&f.hub).await?);
            }
        }
        let mut outcome = OnHandOutcome {
            accepted: figures.len(),
            ..Default::default()
        };
        let mut kept = Vec::with_capacity(figures.len());
        for (index, f) in figures.into_iter().enumerate() {
            if hubs.get(&f.hub).is_some_and(|l| !l.is_empty()) {
                kept.push(f);
            } else {
                outcome.refused.push(Refused {
                    index,
                    reason: format!(
                        "hub {} is not mapped to an Amazon location with inventory sync on",
                        f.hub
                    ),
                    hub: f.hub,
                    sku: f.sku,
                });
            }
        }
        outcome.accepted -= outcome.refused.len();
        let stored = self.on_hand.record_each(&kept).await?;
        let mut marks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (f, was_stored) in kept.iter().zip(&stored) {
            if !was_stored {
                outcome.skipped_as_older += 1;
                continue;
            }
            outcome.stored += 1;
            for l in &hubs[&f.hub] {
                marks
                    .entry(l.location_id.clone())
                    .or_default()
                    .push(f.sku.clone());
            }
        }
        self.mark_and_nudge(marks).await?;
        Ok(outcome)
    }

    /// Marks these (location → SKUs) pending and nudges the pusher for each location. A failed
    /// nudge is logged, not returned: the marks are stored, and the sweep pushes them.
    pub async fn mark_and_nudge(&self, marks: BTreeMap<String, Vec<String>>) -> Result<()> {
        for (location_id, skus) in &marks {
            self.ledger.mark_pending(location_id, skus).await?;
        }
        let locations: Vec<String> = marks.into_keys().collect();
        if !locations.is_empty() {
            if let Err(e) = self.nudge.nudge(&locations).await {
                tracing::warn!(error = %e, "could not nudge the inventory pusher; the sweep will push");
            }
        }
        Ok(())
    }

    /// Marks SKUs pending at every location with inventory sync on (a catalog change), where
    /// the location's hub has an on-hand figure for them: without one nothing can be pushed
    /// (and nothing ever was), so a large catalog of new SKUs marks nothing it need not.
    pub async fn catalog_changed(&self, skus: &[String]) -> Result<()> {
        if skus.is_empty() {
            return Ok(());
        }
        let mut by_hub: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in self.locations.list().await? {
            if l.inventory_enabled {
                by_hub.entry(l.hub_id).or_default().push(l.location_id);
            }
        }
        let mut marks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (hub, locations) in by_hub {
            let mut stocked = Vec::new();
            for chunk in skus.chunks(500) {
                let known = self.ledger.on_hand_many(&hub, chunk).await?;
                stocked.extend(chunk.iter().filter(|s| known.contains_key(*s)).cloned());
            }
            if stocked.is_empty() {
                continue;
            }
            for l in locations {
                marks.insert(l, stocked.clone());
            }
        }
        self.mark_and_nudge(marks).await
    }

    /// A person's decision on a halted push: `release` (push it anyway, once) or `discard`
    /// (drop the pending changes; Amazon keeps what it has). The pusher carries it out at once.
    pub async fn decide_halt(
        &self,
        location_id: &str,
        release: bool,
        by: &str,
    ) -> Result<Option<PushHalt>> {
        let status = if release { "released" } else { "discarded" };
        let halt = self.ledger.decide_halt(location_id, status, by).await?;
        if halt.is_some() {
            if let Err(e) = self.nudge.nudge(&[location_id.to_string()]).await {
                tracing::warn!(error = %e, "could not nudge the inventory pusher; the sweep will act");
            }
        }
        Ok(halt)
    }

    /// Halted pushes of every location with inventory sync on.
    pub async fn halts(&self) -> Result<Vec<PushHalt>> {
        let mut out = Vec::new();
        let ids: BTreeSet<String> = self
            .locations
            .list()
            .await?
            .into_iter()
            .map(|l| l.location_id)
            .collect();
        for id in ids {
            if let Some(h) = self.ledger.halt(&id).await? {
                out.push(h);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::MemoryNudge;
    use crate::store::inventory::{MemoryInventoryStore, MemoryOnHandStore};
    use crate::store::locations::MemoryLocationStore;

    fn loc(id: &str, hub: &str, enabled: bool) -> Location {
        Location {
            location_id: id.into(),
            hub_id: hub.into(),
            name: id.into(),
            marketplace_id: "M".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: enabled,
            returns_enabled: true,
        }
    }

    #[tokio::test]
    async fn unmapped_hubs_are_refused_per_item_and_stored_ones_marked() {
        let locations = Arc::new(MemoryLocationStore::new());
        locations.put(&loc("L1", "H1", true)).await.unwrap();
        locations.put(&loc("L2", "H2", false)).await.unwrap();
        let ledger = Arc::new(MemoryInventoryStore::new());
        let nudge = Arc::new(MemoryNudge::default());
        let c = StockChanges::new(
            Arc::new(MemoryOnHandStore::new()),
            ledger.clone(),
            locations,
            nudge.clone(),
        );
        let t = chrono::Utc::now();
        let f = |hub: &str, sku: &str, n: u32| OnHand {
            hub: hub.into(),
            sku: sku.into(),
            on_hand: n,
            reported_at: t,
        };
        let out = c
            .report_on_hand(vec![f("H1", "A", 3), f("H2", "B", 1), f("H9", "C", 1)])
            .await
            .unwrap();
        assert_eq!(out.accepted, 1);
        assert_eq!(out.stored, 1);
        assert_eq!(
            out.refused.iter().map(|r| r.index).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(out.refused[0].reason.contains("H2"));
        assert_eq!(ledger.pending("L1").await.unwrap(), ["A"]);
        assert_eq!(*nudge.nudged.lock().unwrap(), ["L1"]);
    }
}
