//! Hub mappings as an operator changes them: which warehouse hub ships for which Amazon
//! location, in which marketplace and channel, and what is switched on for it (order sync,
//! inventory sync, returns).
//!
//! A mapping is checked ([`check_mapping`]) and, before anything is switched on for it,
//! Amazon must answer for the location (a batchInventory fetch there, [`LocationProbe`]).
//! Every change is logged like a setting: the mapping is kept as the setting `hub:<locationId>`
//! (versioned, change log `CHANGE#hub:<locationId>` with who, when, old and new), written
//! before the `LocationsTable` item so no change is ever made without its log entry.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::inventory::InventoryApi;
use crate::spapi::models::inventory::{
    InventoryChannel, InventoryMarketplaceAttributes, InventoryRequest,
};
use crate::store::locations::{Location, LocationStore};
use crate::store::settings::SettingsStore;

/// Settings names under which hub mappings are logged (`hub:<locationId>`).
pub const LOG_PREFIX: &str = "hub:";
/// The SKU a location check asks about: Amazon answers for the location whether or not it
/// knows the SKU (an unknown location is a 404 `INVALID_LOCATION` first).
pub const PROBE_SKU: &str = "flexbridge-location-check";

pub fn log_name(location_id: &str) -> String {
    format!("{LOG_PREFIX}{location_id}")
}

/// The rules a mapping must follow before it is stored.
pub fn check_mapping(l: &Location) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidInput(format!("hub mapping: {m}")));
    match l.channel.as_str() {
        "FBA" => {
            // Seller Flex location IDs are 4 characters.
            if l.location_id.chars().count() != 4
                || !l.location_id.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return bad(format!(
                    "a Seller Flex (FBA) location ID is 4 letters or digits, got {:?}",
                    l.location_id
                ));
            }
        }
        "MFN" => {}
        other => return bad(format!("channel must be FBA or MFN, got {other:?}")),
    }
    for (field, v) in [
        ("location ID", &l.location_id),
        ("hub", &l.hub_id),
        ("marketplace", &l.marketplace_id),
    ] {
        if v.trim().is_empty() || v.contains('#') || v.contains(char::is_whitespace) {
            return bad(format!(
                "{field} must be non-empty without spaces or '#', got {v:?}"
            ));
        }
    }
    if !l.marketplace_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return bad(format!(
            "marketplace {:?} is not a marketplace ID (e.g. ATVPDKIKX0DER)",
            l.marketplace_id
        ));
    }
    Ok(())
}

/// Whether Amazon knows a location (for the seller, in that marketplace and channel).
#[async_trait]
pub trait LocationProbe: Send + Sync {
    /// `Ok(Err(why))`: Amazon answered that the location is not valid.
    async fn check(&self, l: &Location) -> Result<std::result::Result<(), String>>;
}

#[async_trait]
impl<T: InventoryApi + ?Sized> LocationProbe for T {
    async fn check(&self, l: &Location) -> Result<std::result::Result<(), String>> {
        let request = InventoryRequest::fetch(
            &l.location_id,
            PROBE_SKU,
            Some(InventoryMarketplaceAttributes {
                channel_name: Some(InventoryChannel::from(l.channel.as_str())),
                marketplace_id: Some(l.marketplace_id.clone()),
            }),
        );
        let items = self.batch_inventory(&[request]).await?;
        let Some(item) = items.first() else {
            return Err(Error::Internal(
                "batchInventory answered without an item".into(),
            ));
        };
        let refusal = item.body.actionable_errors.iter().find_map(|e| {
            let t = e.error_type.as_deref().unwrap_or_default();
            matches!(t, "INVALID_LOCATION" | "INVALID_MARKETPLACE_ATTRIBUTES").then(|| {
                format!(
                    "{t}{}",
                    e.error_sub_type
                        .as_deref()
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                )
            })
        });
        let status = item.status.status_code.unwrap_or(0);
        Ok(match refusal {
            Some(r) => Err(r),
            None if status == 404 || status == 403 => {
                Err(format!("Amazon answered {status} for this location"))
            }
            None => Ok(()),
        })
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubChange {
    pub old: Option<Location>,
    pub new: Location,
    /// Version of the log entry (`settings log hub:<locationId>`).
    pub version: u64,
}

/// Adds or changes a mapping. Anything switched on is checked with Amazon first; a refused
/// change writes nothing.
pub async fn put(
    locations: &dyn LocationStore,
    log: &dyn SettingsStore,
    amazon: &dyn LocationProbe,
    mapping: Location,
    by: &str,
) -> Result<HubChange> {
    check_mapping(&mapping)?;
    if mapping.orders_enabled || mapping.inventory_enabled || mapping.returns_enabled {
        if let Err(why) = amazon.check(&mapping).await? {
            return Err(Error::InvalidInput(format!(
                "Amazon does not accept location {} ({}, {}): {why}; nothing was changed",
                mapping.location_id, mapping.marketplace_id, mapping.channel
            )));
        }
    }
    write(locations, log, mapping, by).await
}

/// Switches everything off for a location (orders, inventory, returns); the mapping stays so
/// shipments already stored still find their hub.
pub async fn disable(
    locations: &dyn LocationStore,
    log: &dyn SettingsStore,
    location_id: &str,
    by: &str,
) -> Result<HubChange> {
    let Some(mut l) = locations.get(location_id).await? else {
        return Err(Error::NotFound(format!(
            "no hub is mapped to location {location_id} (see `hubs list`)"
        )));
    };
    l.orders_enabled = false;
    l.inventory_enabled = false;
    l.returns_enabled = false;
    write(locations, log, l, by).await
}

async fn write(
    locations: &dyn LocationStore,
    log: &dyn SettingsStore,
    mapping: Location,
    by: &str,
) -> Result<HubChange> {
    if by.trim().is_empty() {
        return Err(Error::InvalidInput(
            "a change needs who made it (--by or $USER)".into(),
        ));
    }
    let old = locations.get(&mapping.location_id).await?;
    let name = log_name(&mapping.location_id);
    let logged = log.get(&name).await?;
    let value: Value = serde_json::to_value(&mapping)?;
    let entry = log
        .put(
            &name,
            value,
            Some(logged.map(|l| l.version).unwrap_or(0)),
            by.trim(),
        )
        .await?;
    locations.put(&mapping).await?;
    Ok(HubChange {
        old,
        new: mapping,
        version: entry.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spapi::models::inventory::InventoryItemResult;
    use crate::spapi::SpApiError;
    use crate::store::locations::MemoryLocationStore;
    use crate::store::settings::MemorySettingsStore;
    use serde_json::json;

    /// Amazon knowing these locations.
    struct Amazon(Vec<&'static str>);

    #[async_trait]
    impl InventoryApi for Amazon {
        async fn batch_inventory(
            &self,
            requests: &[InventoryRequest],
        ) -> std::result::Result<Vec<InventoryItemResult>, SpApiError> {
            Ok(requests
                .iter()
                .map(|r| {
                    let known = self.0.iter().any(|l| r.uri.contains(&format!("={l}&")));
                    serde_json::from_value(if known {
                        json!({"status": {"statusCode": 400}, "body": {"actionableErrors": [{"errorType": "INVALID_SKU"}]}})
                    } else {
                        json!({"status": {"statusCode": 404}, "body": {"actionableErrors": [{"errorType": "INVALID_LOCATION"}]}})
                    })
                    .unwrap()
                })
                .collect())
        }
    }

    fn hub(id: &str, channel: &str) -> Location {
        Location {
            location_id: id.into(),
            hub_id: "HUB-1".into(),
            name: "Hub one".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
            channel: channel.into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        }
    }

    #[test]
    fn seller_flex_location_ids_are_four_characters() {
        assert!(check_mapping(&hub("AB12", "FBA")).is_ok());
        assert!(check_mapping(&hub("SIMLOC-EAST-1", "MFN")).is_ok());
        for bad in [
            hub("ABC", "FBA"),
            hub("ABCDE", "FBA"),
            hub("AB-1", "FBA"),
            hub("AB12", "DF"),
        ] {
            assert!(check_mapping(&bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_location_amazon_does_not_know_is_refused_and_nothing_is_written() {
        let (locs, log) = (MemoryLocationStore::new(), MemorySettingsStore::new());
        let amazon = Amazon(vec!["AB12"]);
        let err = put(&locs, &log, &amazon, hub("ZZ99", "FBA"), "ops")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("INVALID_LOCATION"), "{err}");
        assert!(locs.list().await.unwrap().is_empty());
        assert!(log.history("hub:ZZ99").await.unwrap().is_empty());

        let c = put(&locs, &log, &amazon, hub("AB12", "FBA"), "ops")
            .await
            .unwrap();
        assert_eq!((c.old, c.version), (None, 1));
        let d = disable(&locs, &log, "AB12", "ana").await.unwrap();
        assert!(!d.new.orders_enabled && !d.new.inventory_enabled && d.old.is_some());
        let h = log.history("hub:AB12").await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].by, "ana");
        assert_eq!(h[0].new["ordersEnabled"], json!(false));
        assert_eq!(h[0].old.as_ref().unwrap()["ordersEnabled"], json!(true));
        assert!(matches!(
            disable(&locs, &log, "NONE", "ana").await,
            Err(Error::NotFound(_))
        ));
    }
}
