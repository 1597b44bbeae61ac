//! Per-location fulfilment settings (SettingsTable) and the shipping-option choice.
//!
//! Every setting here takes one value for all locations, or
//! `{"default": <value>, "locations": {"<locationId>": <value>}}`.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::spapi::{ShippingOptions, ShippingOptionsResponse};
use crate::store::settings::SettingsStore;

/// How to pick a shipping option (MFN): `"recommended"` (Amazon's, the default),
/// `"earliest_pickup"`, or `{"cheapest": {"<carrierName>": <cost>, ...}}` (Amazon's options
/// carry no price, so the seller's own carrier costs rank them; unknown carriers come last).
pub const SHIPPING_OPTION_POLICY: &str = "fulfilment_shipping_option_policy";
/// Send a warehouse cancellation to Amazon (REJECT) automatically: `true` (default) or `false`
/// (the cancellation stays local and the shipment is held for a person).
pub const AUTO_CANCEL: &str = "fulfilment_auto_cancel";
/// Minutes before the ship-by time at which an unlabelled shipment raises `ShipByAtRisk`
/// (default 120).
pub const SHIP_BY_ALERT_MINUTES: &str = "fulfilment_ship_by_alert_minutes";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionPolicy {
    Recommended,
    EarliestPickup,
    Cheapest(HashMap<String, f64>),
}

impl OptionPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            OptionPolicy::Recommended => "recommended",
            OptionPolicy::EarliestPickup => "earliest_pickup",
            OptionPolicy::Cheapest(_) => "cheapest",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PerLocation<T> {
    Split {
        default: T,
        #[serde(default = "HashMap::new")]
        locations: HashMap<String, T>,
    },
    All(T),
}

/// A per-location setting's value for `location_id`, or `default` when unset.
pub async fn for_location<T: DeserializeOwned + Clone>(
    settings: &dyn SettingsStore,
    name: &str,
    location_id: &str,
    default: T,
) -> Result<T> {
    let Some(s) = settings.get(name).await? else {
        return Ok(default);
    };
    let parsed: PerLocation<T> = serde_json::from_value(s.value.clone()).map_err(|e| {
        Error::Config(format!(
            "setting {name} = {} is neither one value nor {{\"default\", \"locations\"}}: {e}",
            s.value
        ))
    })?;
    Ok(match parsed {
        PerLocation::All(v) => v,
        PerLocation::Split { default, locations } => {
            locations.get(location_id).cloned().unwrap_or(default)
        }
    })
}

/// The option `policy` picks, or `None` when Amazon offers none (Seller Flex, or a channel
/// with a predetermined option).
pub fn choose<'a>(
    policy: &OptionPolicy,
    offered: &'a ShippingOptionsResponse,
) -> Option<&'a ShippingOptions> {
    let all = &offered.shipping_options;
    let recommended = offered
        .recommended_shipping_option
        .as_ref()
        .and_then(|r| {
            all.iter()
                .find(|o| o.shipping_option_id == r.shipping_option_id)
        })
        .or(offered.recommended_shipping_option.as_ref())
        .or(all.first());
    match policy {
        OptionPolicy::Recommended => recommended,
        OptionPolicy::EarliestPickup => all
            .iter()
            .min_by_key(|o| {
                o.pickup_window
                    .as_ref()
                    .or(o.time_slot.as_ref())
                    .and_then(|w| w.start_time)
                    .unwrap_or(i64::MAX)
            })
            .or(recommended),
        OptionPolicy::Cheapest(costs) => all
            .iter()
            .min_by(|a, b| {
                let cost = |o: &ShippingOptions| {
                    o.carrier_name
                        .as_ref()
                        .and_then(|c| costs.get(c))
                        .copied()
                        .unwrap_or(f64::INFINITY)
                };
                cost(a).total_cmp(&cost(b))
            })
            .or(recommended),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::settings::MemorySettingsStore;
    use serde_json::json;

    fn offered() -> ShippingOptionsResponse {
        serde_json::from_value(json!({
            "shippingOptions": [
                {"shippingOptionId": "A", "shipBy": "MARKETPLACE", "carrierName": "FAST", "pickupWindow": {"startTime": 200, "endTime": 300}},
                {"shippingOptionId": "B", "shipBy": "MARKETPLACE", "carrierName": "SLOW", "pickupWindow": {"startTime": 100, "endTime": 300}}
            ],
            "recommendedShippingOption": {"shippingOptionId": "A", "shipBy": "MARKETPLACE"}
        }))
        .unwrap()
    }

    #[test]
    fn each_policy_picks_its_option() {
        let o = offered();
        assert_eq!(
            choose(&OptionPolicy::Recommended, &o)
                .unwrap()
                .shipping_option_id,
            "A"
        );
        assert_eq!(
            choose(&OptionPolicy::EarliestPickup, &o)
                .unwrap()
                .shipping_option_id,
            "B"
        );
        let costs = HashMap::from([("FAST".to_string(), 9.0), ("SLOW".to_string(), 4.0)]);
        assert_eq!(
            choose(&OptionPolicy::Cheapest(costs), &o)
                .unwrap()
                .shipping_option_id,
            "B"
        );
        assert!(choose(
            &OptionPolicy::Recommended,
            &ShippingOptionsResponse::default()
        )
        .is_none());
    }

    #[tokio::test]
    async fn settings_apply_per_location() {
        let s = MemorySettingsStore::new();
        assert!(for_location(&s, AUTO_CANCEL, "L1", true).await.unwrap());
        s.put(
            AUTO_CANCEL,
            json!({"default": true, "locations": {"L2": false}}),
            None,
            "t",
        )
        .await
        .unwrap();
        assert!(for_location(&s, AUTO_CANCEL, "L1", true).await.unwrap());
        assert!(!for_location(&s, AUTO_CANCEL, "L2", true).await.unwrap());
        s.put(
            SHIPPING_OPTION_POLICY,
            json!({"cheapest": {"X": 1.0}}),
            None,
            "t",
        )
        .await
        .unwrap();
        let p: OptionPolicy =
            for_location(&s, SHIPPING_OPTION_POLICY, "L1", OptionPolicy::Recommended)
                .await
                .unwrap();
        assert_eq!(p.name(), "cheapest");
    }
}
