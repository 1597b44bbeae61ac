//! Inventory sync: the warehouse is the master, and Amazon never offers a unit the warehouse
//! does not have.
//!
//! - [`changes`]: where stock changes come in (warehouse API, CSV snapshots): on-hand figures
//!   are stored and every affected (location, SKU) is marked pending, then the pusher is nudged.
//! - [`pusher`]: sends what differs from Amazon's last accepted quantity, 10 per batchInventory
//!   call, with a strictly increasing `clientSequenceNumber`, behind the safety breaker.
//! - [`reconcile`]: reads Amazon's quantities back and corrects drift.
//!
//! What we advertise per (location, SKU): `max(0, on_hand − reserved − safety_stock)`, capped
//! by `max_quantity` ([`advertised`]).

pub mod changes;
pub mod pusher;
pub mod reconcile;
pub mod wiring;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spapi::models::inventory::{InventoryItemResult, InventoryRequest};
use crate::spapi::{SpApiClient, SpApiError};

/// Settings (SettingsTable) the inventory sync reads.
pub mod settings {
    /// Master switch (the kill switch): `false` stops every push. Default `false`.
    pub const PUSH_ENABLED: &str = crate::store::settings::names::INVENTORY_PUSH_ENABLED;
    /// `true`: compute and report what would be pushed, call nothing. Default `false`.
    pub const DRY_RUN: &str = "inventory_push_dry_run";
    /// How Amazon reads the pushed `quantity`: `"sellable"` (default) or `"on_hand"`.
    pub const QUANTITY_READING: &str = "inventory_quantity_reading";
    /// Breaker: the share of a location's advertised SKUs one push may set to zero (0.10).
    pub const BREAKER_ZERO_SHARE: &str = "inventory_breaker_zero_share";
    /// Breaker: the share of a location's advertised units one push may cut (0.50).
    pub const BREAKER_UNITS_CUT_SHARE: &str = "inventory_breaker_units_cut_share";
    /// Breaker: pushes changing fewer SKUs than this are never stopped (5): a sell-out of one
    /// SKU is business as usual, a broken export touches many.
    pub const BREAKER_MIN_SKUS: &str = "inventory_breaker_min_skus";
    /// Low stock: a number, or `{"default": n, "skus": {"<sku>": n}, "locations": {"<loc>": n}}`.
    pub const LOW_STOCK_THRESHOLD: &str = "inventory_low_stock_threshold";
    /// Minutes between reconciliations (60).
    pub const RECONCILE_MINUTES: &str = "inventory_reconcile_minutes";
}

/// How Amazon takes the `quantity` we push (undocumented; see infra/spapi-sim/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QuantityReading {
    /// `quantity` is what can be sold now: we subtract our open reservations.
    #[default]
    Sellable,
    /// `quantity` is what is on hand: Amazon subtracts its own reservations.
    OnHand,
}

/// What a SKU's catalog entry says about advertising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkuRules {
    pub enabled: bool,
    pub safety_stock: u32,
    pub max_quantity: Option<u32>,
}

/// The quantity to push for one (location, SKU).
///
/// Sellable reading: `max(0, on_hand − reserved − safety_stock)` capped by `max_quantity`.
/// On-hand reading: Amazon subtracts the reservations itself, so they are added back on top of
/// the same figure (the advertised units stay the same). A disabled SKU is 0.
pub fn advertised(on_hand: i64, reserved: i64, rules: SkuRules, reading: QuantityReading) -> i64 {
    if !rules.enabled {
        return 0;
    }
    let mut sellable = (on_hand - reserved - i64::from(rules.safety_stock)).max(0);
    if let Some(cap) = rules.max_quantity {
        sellable = sellable.min(i64::from(cap));
    }
    match reading {
        QuantityReading::Sellable => sellable,
        QuantityReading::OnHand => sellable + reserved.max(0),
    }
}

/// The safety breaker's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerLimits {
    pub zero_share: f64,
    pub units_cut_share: f64,
    pub min_skus: u64,
}

impl Default for BreakerLimits {
    fn default() -> Self {
        Self {
            zero_share: 0.10,
            units_cut_share: 0.50,
            min_skus: 5,
        }
    }
}

/// One push seen by the breaker: what Amazon holds now (the ledger) and what would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushImpact {
    pub skus_in_push: u64,
    pub skus_advertised_before: u64,
    pub skus_zeroed: u64,
    pub units_before: i64,
    pub units_after: i64,
}

impl PushImpact {
    /// Adds one (old, new) change; `old` is Amazon's last accepted quantity.
    pub fn add(&mut self, old: Option<i64>, new: i64) {
        self.skus_in_push += 1;
        let old = old.unwrap_or(0);
        if old > 0 && new == 0 {
            self.skus_zeroed += 1;
        }
        self.units_after += new - old;
    }

    /// Why this push must stop, or `None`.
    pub fn trips(&self, limits: &BreakerLimits) -> Option<String> {
        if self.skus_in_push < limits.min_skus {
            return None;
        }
        if self.skus_advertised_before > 0 {
            let share = self.skus_zeroed as f64 / self.skus_advertised_before as f64;
            if share > limits.zero_share {
                return Some(format!(
                    "would set {} of {} advertised SKUs to zero ({:.0}% > {:.0}%)",
                    self.skus_zeroed,
                    self.skus_advertised_before,
                    share * 100.0,
                    limits.zero_share * 100.0
                ));
            }
        }
        if self.units_before > 0 {
            let cut = (self.units_before - self.units_after) as f64 / self.units_before as f64;
            if cut > limits.units_cut_share {
                return Some(format!(
                    "would cut advertised units from {} to {} ({:.0}% > {:.0}%)",
                    self.units_before,
                    self.units_after,
                    cut * 100.0,
                    limits.units_cut_share * 100.0
                ));
            }
        }
        None
    }
}

/// Low-stock thresholds: per SKU, else per location, else the default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(untagged)]
pub enum LowStock {
    #[default]
    #[serde(skip)]
    Off,
    One(i64),
    Rules {
        #[serde(default)]
        default: Option<i64>,
        #[serde(default)]
        skus: std::collections::HashMap<String, i64>,
        #[serde(default)]
        locations: std::collections::HashMap<String, i64>,
    },
}

impl LowStock {
    pub fn threshold(&self, location_id: &str, sku: &str) -> Option<i64> {
        match self {
            LowStock::Off => None,
            LowStock::One(n) => Some(*n),
            LowStock::Rules {
                default,
                skus,
                locations,
            } => skus
                .get(sku)
                .or_else(|| locations.get(location_id))
                .copied()
                .or(*default),
        }
    }
}

/// batchInventory, as the pusher needs it (the SP-API client in Lambda, a fake in unit tests).
#[async_trait]
pub trait InventoryApi: Send + Sync {
    async fn batch_inventory(
        &self,
        requests: &[InventoryRequest],
    ) -> Result<Vec<InventoryItemResult>, SpApiError>;
}

#[async_trait]
impl InventoryApi for SpApiClient {
    async fn batch_inventory(
        &self,
        requests: &[InventoryRequest],
    ) -> Result<Vec<InventoryItemResult>, SpApiError> {
        SpApiClient::batch_inventory(self, requests).await
    }
}

/// Wakes the pusher for a location (the fast path). The pending marks are the truth; a lost
/// nudge only delays the push until the next sweep.
#[async_trait]
pub trait PushNudge: Send + Sync {
    async fn nudge(&self, location_ids: &[String]) -> Result<()>;
}

/// Nudges through `InventoryPushQueue` (one message per location).
pub struct SqsNudge {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsNudge {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// The body of a nudge message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nudge {
    pub location_id: String,
}

#[async_trait]
impl PushNudge for SqsNudge {
    async fn nudge(&self, location_ids: &[String]) -> Result<()> {
        for location_id in location_ids {
            let body = serde_json::to_string(&Nudge {
                location_id: location_id.clone(),
            })
            .map_err(|e| Error::Internal(e.to_string()))?;
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| {
                    Error::aws(
                        "sqs",
                        format!(
                            "SendMessage: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        ),
                        true,
                    )
                })?;
        }
        Ok(())
    }
}

/// Records nudges (tests) or does nothing.
#[derive(Debug, Default)]
pub struct MemoryNudge {
    pub nudged: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl PushNudge for MemoryNudge {
    async fn nudge(&self, location_ids: &[String]) -> Result<()> {
        self.nudged
            .lock()
            .expect("lock")
            .extend(location_ids.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: SkuRules = SkuRules {
        enabled: true,
        safety_stock: 0,
        max_quantity: None,
    };

    #[test]
    fn advertised_subtracts_reserved_and_safety_and_caps() {
        let r = QuantityReading::Sellable;
        assert_eq!(advertised(10, 3, ON, r), 7);
        let safety = SkuRules {
            safety_stock: 2,
            ..ON
        };
        assert_eq!(advertised(10, 3, safety, r), 5);
        assert_eq!(advertised(4, 3, safety, r), 0, "never negative");
        let capped = SkuRules {
            max_quantity: Some(4),
            ..ON
        };
        assert_eq!(advertised(10, 3, capped, r), 4);
        let off = SkuRules {
            enabled: false,
            ..ON
        };
        assert_eq!(
            advertised(10, 0, off, r),
            0,
            "a disabled SKU is pushed as 0"
        );
        assert_eq!(advertised(10, 3, ON, QuantityReading::OnHand), 10);
        assert_eq!(advertised(10, 3, capped, QuantityReading::OnHand), 7);
    }

    #[test]
    fn breaker_trips_on_many_zeros_or_a_deep_cut_not_on_small_pushes() {
        let limits = BreakerLimits::default();
        let mut small = PushImpact {
            skus_advertised_before: 10,
            units_before: 100,
            ..Default::default()
        };
        small.units_after = small.units_before;
        small.add(Some(10), 0);
        assert_eq!(small.trips(&limits), None, "one sell-out is normal");

        let mut wipe = PushImpact {
            skus_advertised_before: 20,
            units_before: 200,
            units_after: 200,
            ..Default::default()
        };
        for _ in 0..6 {
            wipe.add(Some(10), 0);
        }
        assert!(wipe.trips(&limits).unwrap().contains("6 of 20"));

        let mut cut = PushImpact {
            skus_advertised_before: 100,
            units_before: 1000,
            units_after: 1000,
            ..Default::default()
        };
        for _ in 0..10 {
            cut.add(Some(60), 1);
        }
        assert!(cut.trips(&limits).unwrap().contains("from 1000 to 410"));

        let mut up = PushImpact {
            skus_advertised_before: 10,
            units_before: 10,
            units_after: 10,
            ..Default::default()
        };
        for _ in 0..10 {
            up.add(Some(1), 5);
        }
        assert_eq!(up.trips(&limits), None);
    }

    #[test]
    fn low_stock_thresholds_by_sku_then_location_then_default() {
        let l: LowStock = serde_json::from_value(
            serde_json::json!({"default": 2, "skus": {"A": 5}, "locations": {"L2": 3}}),
        )
        .unwrap();
        assert_eq!(l.threshold("L1", "A"), Some(5));
        assert_eq!(l.threshold("L2", "B"), Some(3));
        assert_eq!(l.threshold("L1", "B"), Some(2));
        let one: LowStock = serde_json::from_value(serde_json::json!(4)).unwrap();
        assert_eq!(one.threshold("L", "X"), Some(4));
        assert_eq!(LowStock::Off.threshold("L", "X"), None);
    }
}
