//! LocationsTable: which of the seller's warehouse hubs is which Amazon location.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | location | `LOC#<locationId>` | `LOC` | the whole [`Location`] |
//! | hub index | `HUB#<hubId>` | `LOC#<locationId>` | the whole [`Location`] (copy) |
//!
//! Access patterns: an Amazon shipment names its `locationId` → the hub that ships it
//! (GetItem `LOC#`); a warehouse stock update names its hub → the Amazon locations (and so
//! marketplaces) to push to (Query `pk = HUB#<hubId>`); list every mapping (Scan; a seller
//! has a handful). Both items are written in one transaction, so they never disagree.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::dynamo::{ddb_error, get_s, query_all, s, scan_all, Item};

/// One mapping between a warehouse hub and an Amazon Seller Flex location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Amazon's location ID (External Fulfillment `locationId`).
    pub location_id: String,
    /// The seller's own code for the warehouse hub.
    pub hub_id: String,
    pub name: String,
    pub marketplace_id: String,
    /// Amazon channel the location serves: `FBA` (Seller Flex) or `MFN`.
    pub channel: String,
    /// Accept and fulfil Amazon shipments for this location.
    pub orders_enabled: bool,
    /// Push this hub's stock to Amazon for this location.
    pub inventory_enabled: bool,
    /// Handle returns to this location.
    pub returns_enabled: bool,
}

impl Location {
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("locationId", &self.location_id),
            ("hubId", &self.hub_id),
            ("marketplaceId", &self.marketplace_id),
        ] {
            if v.trim().is_empty() || v.contains('#') {
                return Err(Error::InvalidInput(format!(
                    "location {}: {field} must be non-empty and contain no '#', got {v:?}",
                    self.location_id
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
pub trait LocationStore: Send + Sync {
    /// Creates or replaces the mapping for `location.location_id` (moving it to another hub
    /// removes it from the old hub).
    async fn put(&self, location: &Location) -> Result<()>;
    async fn get(&self, location_id: &str) -> Result<Option<Location>>;
    async fn by_hub(&self, hub_id: &str) -> Result<Vec<Location>>;
    async fn list(&self) -> Result<Vec<Location>>;
}

fn from_item(item: &Item) -> Result<Location> {
    let raw = get_s(item, "location")
        .ok_or_else(|| Error::Internal("location item without a location attribute".into()))?;
    serde_json::from_str(raw)
        .map_err(|e| Error::Internal(format!("stored location is not valid: {e}")))
}

pub struct DynamoLocationStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLocationStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn put_item(
        &self,
        pk: String,
        sk: String,
        l: &Location,
        json: &str,
    ) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("locationId", s(&l.location_id))
            .item("hubId", s(&l.hub_id))
            .item("location", s(json))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl LocationStore for DynamoLocationStore {
    async fn put(&self, location: &Location) -> Result<()> {
        location.validate()?;
        let old = self.get(&location.location_id).await?;
        let json = serde_json::to_string(location).map_err(|e| Error::Internal(e.to_string()))?;
        let mut tx = self
            .client
            .transact_write_items()
            .transact_items(self.put_item(
                format!("LOC#{}", location.location_id),
                "LOC".into(),
                location,
                &json,
            )?)
            .transact_items(self.put_item(
                format!("HUB#{}", location.hub_id),
                format!("LOC#{}", location.location_id),
                location,
                &json,
            )?);
        if let Some(old) = old.filter(|o| o.hub_id != location.hub_id) {
            let del = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(format!("HUB#{}", old.hub_id)))
                .key("sk", s(format!("LOC#{}", old.location_id)))
                .build()
                .map_err(|e| Error::Internal(e.to_string()))?;
            tx = tx.transact_items(TransactWriteItem::builder().delete(del).build());
        }
        tx.send()
            .await
            .map_err(|e| ddb_error("TransactWriteItems", e))?;
        Ok(())
    }

    async fn get(&self, location_id: &str) -> Result<Option<Location>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("LOC#{location_id}")))
            .key("sk", s("LOC"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn by_hub(&self, hub_id: &str) -> Result<Vec<Location>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("HUB#{hub_id}")))
            .consistent_read(true);
        query_all(query, from_item).await
    }

    async fn list(&self) -> Result<Vec<Location>> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :sk")
            .expression_attribute_values(":sk", s("LOC"))
            .consistent_read(true);
        let mut out = scan_all(scan, from_item).await?;
        out.sort_by(|a, b| a.location_id.cmp(&b.location_id));
        Ok(out)
    }
}

/// The in-memory twin for unit tests.
#[derive(Default)]
pub struct MemoryLocationStore {
    map: Mutex<BTreeMap<String, Location>>,
}

impl MemoryLocationStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding these locations (tests).
    pub fn with(locations: Vec<Location>) -> Self {
        Self {
            map: Mutex::new(
                locations
                    .into_iter()
                    .map(|l| (l.location_id.clone(), l))
                    .collect(),
            ),
        }
    }
}

#[async_trait]
impl LocationStore for MemoryLocationStore {
    async fn put(&self, location: &Location) -> Result<()> {
        location.validate()?;
        self.map
            .lock()
            .expect("locations lock")
            .insert(location.location_id.clone(), location.clone());
        Ok(())
    }

    async fn get(&self, location_id: &str) -> Result<Option<Location>> {
        Ok(self
            .map
            .lock()
            .expect("locations lock")
            .get(location_id)
            .cloned())
    }

    async fn by_hub(&self, hub_id: &str) -> Result<Vec<Location>> {
        Ok(self
            .map
            .lock()
            .expect("locations lock")
            .values()
            .filter(|l| l.hub_id == hub_id)
            .cloned()
            .collect())
    }

    async fn list(&self) -> Result<Vec<Location>> {
        Ok(self
            .map
            .lock()
            .expect("locations lock")
            .values()
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(id: &str, hub: &str) -> Location {
        Location {
            location_id: id.into(),
            hub_id: hub.into(),
            name: format!("{hub} for {id}"),
            marketplace_id: "ATVPDKIKX0DER".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        }
    }

    #[tokio::test]
    async fn finds_locations_by_hub_and_hubs_by_location() {
        let st = MemoryLocationStore::new();
        st.put(&loc("L1", "BER")).await.unwrap();
        st.put(&loc("L2", "BER")).await.unwrap();
        st.put(&loc("L3", "HAM")).await.unwrap();
        assert_eq!(st.by_hub("BER").await.unwrap().len(), 2);
        assert_eq!(st.get("L3").await.unwrap().unwrap().hub_id, "HAM");
        st.put(&loc("L2", "HAM")).await.unwrap();
        assert_eq!(st.by_hub("BER").await.unwrap().len(), 1);
        assert_eq!(st.list().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn refuses_keys_that_would_break_the_item_layout() {
        let st = MemoryLocationStore::new();
        let err = st.put(&loc("L#1", "BER")).await.unwrap_err();
        assert!(err.to_string().contains("locationId"), "{err}");
        assert!(st.put(&loc("L1", " ")).await.is_err());
    }
}
