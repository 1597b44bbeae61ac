//! The production side of `ports`: the SP-API client as `ShipmentsApi`. Shipments are handed on
//! as the client decoded them (once, tolerantly); returns as the model's JSON, which
//! `orders::model` reads tolerantly.

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::orders::ports::{AmazonPage, RejectReason, ReturnsQuery, ShipmentsApi, ShipmentsQuery};
use crate::spapi::{
    GetShipmentsQuery, LineItem, LineItemWithReason, ListReturnsQuery, Shipment,
    ShipmentAcknowledgementRequest, ShipmentOperation, SpApiClient, Timestamp,
};

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("return does not serialize: {e}")))
}

#[async_trait]
impl ShipmentsApi for SpApiClient {
    async fn get_shipments(&self, q: &ShipmentsQuery) -> Result<AmazonPage<Shipment>> {
        let page = SpApiClient::get_shipments(
            self,
            &GetShipmentsQuery {
                status: q.status.as_str().into(),
                location_id: Some(q.location_id.clone()),
                last_updated_after: Some(Timestamp(q.last_updated_after)),
                last_updated_before: q.last_updated_before.map(Timestamp),
                max_results: Some(100),
                pagination_token: q.pagination_token.clone(),
                ..Default::default()
            },
        )
        .await?;
        Ok(AmazonPage {
            items: page.shipments,
            next_token: page.next_token,
            unreadable: page.unreadable,
        })
    }

    async fn get_shipment(&self, shipment_id: &str) -> Result<Shipment> {
        Ok(SpApiClient::get_shipment(self, shipment_id).await?)
    }

    async fn confirm(&self, shipment_id: &str) -> Result<()> {
        Ok(self
            .process_shipment(shipment_id, &ShipmentOperation::Confirm)
            .await?)
    }

    async fn reject(
        &self,
        shipment_id: &str,
        reference_id: &str,
        lines: &[(String, u32)],
        reason: RejectReason,
    ) -> Result<()> {
        let body = ShipmentAcknowledgementRequest {
            reference_id: Some(reference_id.to_string()),
            line_items: lines
                .iter()
                .map(|(id, qty)| LineItemWithReason {
                    line_item: LineItem {
                        id: id.clone(),
                        quantity: Some(*qty as i64),
                    },
                    reason: Some(reason),
                })
                .collect(),
        };
        Ok(self
            .process_shipment(shipment_id, &ShipmentOperation::Reject(body))
            .await?)
    }

    async fn list_returns(&self, q: &ReturnsQuery) -> Result<AmazonPage> {
        let page = SpApiClient::list_returns(
            self,
            &ListReturnsQuery {
                return_location_id: Some(q.return_location_id.clone()),
                status: Some(q.status.as_str().into()),
                last_updated_since: Some(Timestamp(q.last_updated_since)),
                last_updated_until: q.last_updated_until.map(Timestamp),
                max_results: Some(100),
                next_token: q.next_token.clone(),
                ..Default::default()
            },
        )
        .await?;
        Ok(AmazonPage {
            items: page.returns.iter().map(to_json).collect::<Result<_>>()?,
            next_token: page.next_token,
            unreadable: page.unreadable,
        })
    }

    async fn get_return(&self, return_id: &str) -> Result<Value> {
        to_json(&SpApiClient::get_return(self, return_id).await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Locations and settings, catalog

use std::sync::Arc;

use crate::orders::ports::{
    AdoptExisting, LocationDirectory, OrderLocation, SkuCatalog, UnmappedSkuAction,
};
use crate::store::catalog::CatalogStore;
use crate::store::locations::LocationStore;
use crate::store::settings::SettingsStore;

/// Setting: what to do with a line whose SKU has no catalog mapping, per location.
/// Value: `"hold"` / `"reject"` for every location, or
/// `{"default": "hold", "locations": {"<locationId>": "reject"}}`.
pub const UNMAPPED_SKU_SETTING: &str = "orders_unmapped_sku";

/// Setting: what to do with shipments another connector had already confirmed when first seen
/// (`"hand"` or `"ignore"`, or per location as above).
pub const ADOPT_EXISTING_SETTING: &str = "orders_adopt_existing";

/// A setting with one value for every location, or a default and exceptions by location ID.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum PerLocation<T> {
    All(T),
    PerLocation {
        #[serde(default)]
        default: T,
        #[serde(default)]
        locations: std::collections::HashMap<String, T>,
    },
}

impl<T: Copy + Default> PerLocation<T> {
    fn for_location(&self, id: &str) -> T {
        match self {
            Self::All(a) => *a,
            Self::PerLocation { default, locations } => {
                locations.get(id).copied().unwrap_or(*default)
            }
        }
    }
}

impl<T: Default> Default for PerLocation<T> {
    fn default() -> Self {
        Self::All(T::default())
    }
}

/// The seller's locations (LocationsTable) with the orders settings (SettingsTable), read at
/// most once per `CACHE_FOR` (every shipment step asks; the answer changes rarely).
pub struct StoredLocations {
    pub locations: Arc<dyn LocationStore>,
    pub settings: Arc<dyn SettingsStore>,
    cache: std::sync::Mutex<Option<(std::time::Instant, Vec<OrderLocation>)>>,
}

const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

impl StoredLocations {
    pub fn new(locations: Arc<dyn LocationStore>, settings: Arc<dyn SettingsStore>) -> Self {
        Self {
            locations,
            settings,
            cache: Default::default(),
        }
    }

    async fn per_location<T>(&self, name: &str, values: &str) -> Result<PerLocation<T>>
    where
        T: Default + serde::de::DeserializeOwned,
    {
        match self.settings.get(name).await? {
            None => Ok(PerLocation::default()),
            Some(s) => serde_json::from_value(s.value.clone()).map_err(|e| {
                Error::Config(format!(
                    "setting {name} = {} is not {values} or {{\"default\", \"locations\"}}: {e}",
                    s.value
                ))
            }),
        }
    }

    async fn read(&self) -> Result<Vec<OrderLocation>> {
        let policy: PerLocation<UnmappedSkuAction> = self
            .per_location(UNMAPPED_SKU_SETTING, "\"hold\", \"reject\"")
            .await?;
        let adopt: PerLocation<AdoptExisting> = self
            .per_location(ADOPT_EXISTING_SETTING, "\"hand\", \"ignore\"")
            .await?;
        Ok(self
            .locations
            .list()
            .await?
            .into_iter()
            .filter(|l| l.orders_enabled || l.returns_enabled)
            .map(|l| OrderLocation {
                unmapped_sku: policy.for_location(&l.location_id),
                adopt_existing: adopt.for_location(&l.location_id),
                // Seller Flex returns come back to the location that shipped them.
                return_location_id: l.returns_enabled.then(|| l.location_id.clone()),
                order_sync: l.orders_enabled,
                hub: l.hub_id,
                location_id: l.location_id,
            })
            .collect())
    }
}

#[async_trait]
impl LocationDirectory for StoredLocations {
    async fn locations(&self) -> Result<Vec<OrderLocation>> {
        if let Some((at, list)) = self.cache.lock().expect("locations cache").as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Ok(list.clone());
            }
        }
        let list = self.read().await?;
        *self.cache.lock().expect("locations cache") =
            Some((std::time::Instant::now(), list.clone()));
        Ok(list)
    }

    async fn location(&self, location_id: &str) -> Result<OrderLocation> {
        self.locations()
            .await?
            .into_iter()
            .find(|l| l.location_id == location_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "location {location_id} is not configured or not enabled"
                ))
            })
    }
}

/// A SKU is mapped when the catalog has it enabled with an ASIN.
pub struct CatalogSkus(pub Arc<dyn CatalogStore>);

#[async_trait]
impl SkuCatalog for CatalogSkus {
    async fn unmapped(&self, skus: &[String]) -> Result<Vec<String>> {
        let found = self.0.get_items(skus).await?;
        Ok(skus
            .iter()
            .filter(|sku| {
                !found
                    .iter()
                    .any(|i| i.sku == **sku && i.enabled && !i.asin.is_empty())
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::locations::{Location, MemoryLocationStore};
    use crate::store::settings::MemorySettingsStore;

    #[tokio::test]
    async fn unmapped_policy_per_location_from_settings() {
        let locations = Arc::new(MemoryLocationStore::new());
        for (id, orders) in [("L1", true), ("L2", true), ("L3", false)] {
            locations
                .put(&Location {
                    location_id: id.into(),
                    hub_id: format!("HUB-{id}"),
                    name: id.into(),
                    marketplace_id: "M".into(),
                    channel: "FBA".into(),
                    orders_enabled: orders,
                    inventory_enabled: true,
                    returns_enabled: false,
                })
                .await
                .unwrap();
        }
        let settings = Arc::new(MemorySettingsStore::new());
        let fresh =
            |l: &Arc<MemoryLocationStore>| StoredLocations::new(l.clone(), settings.clone());
        let dir = fresh(&locations);
        let all = dir.locations().await.unwrap();
        assert_eq!(all.len(), 2, "L3 syncs neither orders nor returns");
        assert!(all
            .iter()
            .all(|l| l.unmapped_sku == UnmappedSkuAction::Hold));
        settings
            .put(
                UNMAPPED_SKU_SETTING,
                serde_json::json!({"default": "hold", "locations": {"L2": "reject"}}),
                None,
                "test",
            )
            .await
            .unwrap();
        let dir = fresh(&locations); // past the cache
        assert_eq!(
            dir.location("L2").await.unwrap().unmapped_sku,
            UnmappedSkuAction::Reject
        );
        assert_eq!(
            dir.location("L1").await.unwrap().unmapped_sku,
            UnmappedSkuAction::Hold
        );
        assert_eq!(dir.location("L1").await.unwrap().hub, "HUB-L1");
        settings
            .put(
                UNMAPPED_SKU_SETTING,
                serde_json::json!("sometimes"),
                None,
                "test",
            )
            .await
            .unwrap();
        assert!(fresh(&locations)
            .locations()
            .await
            .unwrap_err()
            .to_string()
            .contains(UNMAPPED_SKU_SETTING));
    }
}
