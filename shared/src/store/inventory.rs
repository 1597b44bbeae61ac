//! InventoryTable: what open orders claim and what returns give back, per location and SKU.
//! (The inventory sync adds on-hand and last-pushed figures to the same `SKU#` item.)
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | position | `LOC#<locationId>` | `SKU#<sku>` | `reserved` N (units of open confirmed shipments), `returned_sellable` N (sellable units from returns not yet added back by the inventory sync) |
//! | reservation | `LOC#<locationId>` | `RESERVE#<shipmentId>#<lineId>` | `sku`, `units` N |
//! | return credit | `LOC#<locationId>` | `RETURN#<returnId>` | `sku`, `units` N |
//!
//! Access patterns:
//! - set the units a shipment line reserves (0 releases): one transaction that moves the line's
//!   marker from its old value to the new one (conditional on the old value) and `ADD`s the
//!   difference to the position, so repeating it after a crash changes nothing;
//! - credit a return's sellable units once (conditional on the credit marker not existing);
//! - read a position (the inventory sync subtracts `reserved` before pushing to Amazon).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use crate::error::{Error, Result};
use crate::store::dynamo::{
    ddb_error, get_n, get_s, is_condition_failed, is_transaction_cancelled, n, s,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkuPosition {
    pub reserved: i64,
    pub returned_sellable: i64,
}

#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Makes the line `(shipment_id, line_id)` reserve exactly `units` of `sku` at the location.
    async fn set_reservation(
        &self,
        location_id: &str,
        sku: &str,
        shipment_id: &str,
        line_id: &str,
        units: u32,
    ) -> Result<()>;
    /// Adds a return's sellable units to the stock to add back, once per return.
    async fn credit_return(
        &self,
        location_id: &str,
        sku: &str,
        return_id: &str,
        units: u32,
    ) -> Result<()>;
    async fn position(&self, location_id: &str, sku: &str) -> Result<SkuPosition>;
}

fn loc_pk(location_id: &str) -> AttributeValue {
    s(format!("LOC#{location_id}"))
}

pub struct DynamoInventoryStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoInventoryStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn marker_units(&self, location_id: &str, sk: &str) -> Result<Option<u32>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", loc_pk(location_id))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        Ok(out.item.and_then(|i| get_n(&i, "units")))
    }

    fn add_to_position(
        &self,
        location_id: &str,
        sku: &str,
        attr: &str,
        delta: i64,
    ) -> Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", loc_pk(location_id))
            .key("sk", s(format!("SKU#{sku}")))
            .update_expression("ADD #a :d")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":d", n(delta))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl InventoryStore for DynamoInventoryStore {
    async fn set_reservation(
        &self,
        location_id: &str,
        sku: &str,
        shipment_id: &str,
        line_id: &str,
        units: u32,
    ) -> Result<()> {
        let sk = format!("RESERVE#{shipment_id}#{line_id}");
        // A concurrent writer can only make the condition fail; re-read and try again.
        for _ in 0..5 {
            let old = self.marker_units(location_id, &sk).await?;
            if old.unwrap_or(0) == units {
                return Ok(());
            }
            let marker = match old {
                None => Put::builder()
                    .table_name(&self.table)
                    .item("pk", loc_pk(location_id))
                    .item("sk", s(&sk))
                    .item("sku", s(sku))
                    .item("units", n(units))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map(|p| TransactWriteItem::builder().put(p).build()),
                Some(old) if units == 0 => Delete::builder()
                    .table_name(&self.table)
                    .key("pk", loc_pk(location_id))
                    .key("sk", s(&sk))
                    .condition_expression("units = :old")
                    .expression_attribute_values(":old", n(old))
                    .build()
                    .map(|d| TransactWriteItem::builder().delete(d).build()),
                Some(old) => Put::builder()
                    .table_name(&self.table)
                    .item("pk", loc_pk(location_id))
                    .item("sk", s(&sk))
                    .item("sku", s(sku))
                    .item("units", n(units))
                    .condition_expression("units = :old")
                    .expression_attribute_values(":old", n(old))
                    .build()
                    .map(|p| TransactWriteItem::builder().put(p).build()),
            }
            .map_err(|e| Error::Internal(e.to_string()))?;
            let delta = units as i64 - old.unwrap_or(0) as i64;
            let res = self
                .client
                .transact_write_items()
                .transact_items(marker)
                .transact_items(self.add_to_position(location_id, sku, "reserved", delta)?)
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if is_transaction_cancelled(&e) => continue,
                Err(e) => return Err(ddb_error("TransactWriteItems", e)),
            }
        }
        Err(Error::Transient {
            message: format!("reservation for {shipment_id}/{line_id} kept changing under us"),
            after: None,
        })
    }

    async fn credit_return(
        &self,
        location_id: &str,
        sku: &str,
        return_id: &str,
        units: u32,
    ) -> Result<()> {
        let marker = Put::builder()
            .table_name(&self.table)
            .item("pk", loc_pk(location_id))
            .item("sk", s(format!("RETURN#{return_id}")))
            .item("sku", s(sku))
            .item("units", n(units))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(self.add_to_position(
                location_id,
                sku,
                "returned_sellable",
                units as i64,
            )?)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // The credit marker exists: this return was credited already.
            Err(e) if is_transaction_cancelled(&e) => Ok(()),
            Err(e) => Err(ddb_error("TransactWriteItems", e)),
        }
    }

    async fn position(&self, location_id: &str, sku: &str) -> Result<SkuPosition> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", loc_pk(location_id))
            .key("sk", s(format!("SKU#{sku}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        Ok(out
            .item
            .map(|i| SkuPosition {
                reserved: get_n(&i, "reserved").unwrap_or(0),
                returned_sellable: get_n(&i, "returned_sellable").unwrap_or(0),
            })
            .unwrap_or_default())
    }
}

#[derive(Default)]
pub struct MemoryInventoryStore {
    inner: Mutex<MemoryInventory>,
}

#[derive(Default)]
struct MemoryInventory {
    positions: HashMap<(String, String), SkuPosition>,
    reservations: HashMap<(String, String, String), u32>,
    credits: HashMap<(String, String), u32>,
}

impl MemoryInventoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl InventoryStore for MemoryInventoryStore {
    async fn set_reservation(
        &self,
        location_id: &str,
        sku: &str,
        shipment_id: &str,
        line_id: &str,
        units: u32,
    ) -> Result<()> {
        let mut inv = self.inner.lock().expect("inventory lock");
        let key = (
            location_id.to_string(),
            shipment_id.to_string(),
            line_id.to_string(),
        );
        let old = inv.reservations.get(&key).copied().unwrap_or(0);
        inv.reservations.insert(key, units);
        inv.positions
            .entry((location_id.to_string(), sku.to_string()))
            .or_default()
            .reserved += units as i64 - old as i64;
        Ok(())
    }

    async fn credit_return(
        &self,
        location_id: &str,
        sku: &str,
        return_id: &str,
        units: u32,
    ) -> Result<()> {
        let mut inv = self.inner.lock().expect("inventory lock");
        if inv
            .credits
            .insert((location_id.to_string(), return_id.to_string()), units)
            .is_none()
        {
            inv.positions
                .entry((location_id.to_string(), sku.to_string()))
                .or_default()
                .returned_sellable += units as i64;
        }
        Ok(())
    }

    async fn position(&self, location_id: &str, sku: &str) -> Result<SkuPosition> {
        Ok(self
            .inner
            .lock()
            .expect("inventory lock")
            .positions
            .get(&(location_id.to_string(), sku.to_string()))
            .copied()
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// On hand as the warehouse reports it (written by the warehouse API's `POST /v1/inventory`).
//
// | item | `pk` | `sk` | attributes |
// |---|---|---|---|
// | on hand | `HUB#<hub>` | `SKU#<sku>` | `on_hand` N, `reported_at` S (RFC 3339, UTC, millis) |
//
// Keyed by hub, not by Amazon location: the stock sits in the hub, whichever locations it serves.
// A report older than the stored one is ignored, so late or replayed deliveries cannot roll
// stock back.

/// One on-hand figure from the warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnHand {
    pub hub: String,
    pub sku: String,
    pub on_hand: u32,
    pub reported_at: chrono::DateTime<chrono::Utc>,
}

#[async_trait]
pub trait OnHandStore: Send + Sync {
    /// Stores each figure unless a newer one is stored; returns how many were stored.
    async fn record_on_hand(&self, figures: &[OnHand]) -> Result<usize>;
    async fn on_hand(&self, hub: &str, sku: &str) -> Result<Option<OnHand>>;
}

fn reported_at_text(t: &chrono::DateTime<chrono::Utc>) -> String {
    // Fixed width, so string comparison in the condition orders by time.
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl DynamoInventoryStore {
    /// Stores one figure; false when a newer one is already stored.
    async fn put_on_hand(&self, f: &OnHand) -> Result<bool> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("HUB#{}", f.hub)))
            .key("sk", s(format!("SKU#{}", f.sku)))
            .update_expression("SET on_hand = :n, reported_at = :t")
            .condition_expression("attribute_not_exists(reported_at) OR reported_at <= :t")
            .expression_attribute_values(":n", n(f.on_hand))
            .expression_attribute_values(":t", s(reported_at_text(&f.reported_at)))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(ddb_error("UpdateItem", e)),
        }
    }
}

#[async_trait]
impl OnHandStore for DynamoInventoryStore {
    async fn record_on_hand(&self, figures: &[OnHand]) -> Result<usize> {
        use futures::StreamExt;
        // Collected first: a lazy map closure inside the stream trips async_trait's Send check.
        let puts: Vec<_> = figures.iter().map(|f| self.put_on_hand(f)).collect();
        let mut results = futures::stream::iter(puts).buffer_unordered(8);
        let mut stored = 0;
        while let Some(r) = results.next().await {
            stored += usize::from(r?);
        }
        Ok(stored)
    }

    async fn on_hand(&self, hub: &str, sku: &str) -> Result<Option<OnHand>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("HUB#{hub}")))
            .key("sk", s(format!("SKU#{sku}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let on_hand = get_n(&item, "on_hand")
            .ok_or_else(|| Error::Internal(format!("on-hand item {hub}/{sku} has no on_hand")))?;
        let reported_at = get_s(&item, "reported_at")
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| {
                Error::Internal(format!("on-hand item {hub}/{sku} has no reported_at"))
            })?;
        Ok(Some(OnHand {
            hub: hub.to_string(),
            sku: sku.to_string(),
            on_hand,
            reported_at,
        }))
    }
}

/// In-memory on-hand figures (tests).
#[derive(Debug, Default)]
pub struct MemoryOnHandStore {
    figures: Mutex<HashMap<(String, String), OnHand>>,
}

impl MemoryOnHandStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl OnHandStore for MemoryOnHandStore {
    async fn record_on_hand(&self, figures: &[OnHand]) -> Result<usize> {
        let mut map = self.figures.lock().expect("lock");
        let mut stored = 0;
        for f in figures {
            let key = (f.hub.clone(), f.sku.clone());
            if map
                .get(&key)
                .is_some_and(|old| old.reported_at > f.reported_at)
            {
                continue;
            }
            map.insert(key, f.clone());
            stored += 1;
        }
        Ok(stored)
    }

    async fn on_hand(&self, hub: &str, sku: &str) -> Result<Option<OnHand>> {
        Ok(self
            .figures
            .lock()
            .expect("lock")
            .get(&(hub.to_string(), sku.to_string()))
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_set_not_added() {
        let inv = MemoryInventoryStore::new();
        inv.set_reservation("L", "A", "S1", "1", 3).await.unwrap();
        inv.set_reservation("L", "A", "S1", "1", 3).await.unwrap();
        inv.set_reservation("L", "A", "S2", "1", 2).await.unwrap();
        assert_eq!(inv.position("L", "A").await.unwrap().reserved, 5);
        inv.set_reservation("L", "A", "S1", "1", 1).await.unwrap();
        inv.set_reservation("L", "A", "S2", "1", 0).await.unwrap();
        assert_eq!(inv.position("L", "A").await.unwrap().reserved, 1);
    }

    #[tokio::test]
    async fn a_return_is_credited_once() {
        let inv = MemoryInventoryStore::new();
        inv.credit_return("L", "A", "R1", 2).await.unwrap();
        inv.credit_return("L", "A", "R1", 2).await.unwrap();
        assert_eq!(inv.position("L", "A").await.unwrap().returned_sellable, 2);
    }
}
