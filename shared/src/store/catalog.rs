//! CatalogTable: the seller's SKU ↔ ASIN mapping with product attributes, and per SKU and
//! marketplace the last price we sent Amazon and Amazon's answer.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | catalog item | `SKU#<sku>` | `ITEM` | `sku`, `asin`, `title`?, `product_type`?, `enabled` (BOOL), `safety_stock`? (N), `max_quantity`? (N), `updated_at`, `source` (upload key @ version), `gsi1pk` = `ASIN#<asin>`, `gsi1sk` = `SKU#<sku>` |
//! | price state | `SKU#<sku>` | `PRICE#<marketplace>` | `price` (N, hundredths), `currency`, `status` (`ACCEPTED`, `INVALID`, ...), `issues` (JSON text), `submission_id`?, `upload`, `order` (the upload's [`UploadOrder`](crate::upload::order::UploadOrder)), `updated_at`; while a price is on its way to Amazon also `pending_order`, `lease_until` (N, epoch ms) |
//!
//! Access patterns: one or many SKUs' items (GetItem / BatchGetItem on `SKU#`/`ITEM`); the SKUs
//! of an ASIN (Query `gsi1` on `ASIN#<asin>`); every item (Scan filtered on `sk = ITEM`, for a
//! full catalog upload); the last price sent for a SKU in a marketplace (GetItem `PRICE#`).
//!
//! Prices are applied in upload order: a price is sent only after a conditional claim on its
//! `PRICE#` item proves no newer upload's price was applied or is in flight, and its answer is
//! stored only under the same condition (see [`CatalogStore::claim_price`]).
//! Items are never deleted: a SKU leaves the catalog by `enabled = false`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use serde::{Deserialize, Serialize};

use super::dynamo::{self, b, get_bool, get_n, get_s, is_condition_failed, n, s, Batching, Item};
use crate::error::{Error, Result};

/// One SKU of the seller's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub sku: String,
    pub asin: String,
    pub title: Option<String>,
    /// Amazon's product type; price patches need it.
    pub product_type: Option<String>,
    pub enabled: bool,
    /// Units held back from Amazon.
    pub safety_stock: Option<u32>,
    /// Cap on the quantity advertised to Amazon.
    pub max_quantity: Option<u32>,
    pub updated_at: String,
    /// The upload that last changed it (`key@version`).
    pub source: String,
}

impl CatalogItem {
    /// Whether `other` says the same about the SKU (when and where from do not count).
    pub fn same_content(&self, other: &CatalogItem) -> bool {
        self.sku == other.sku
            && self.asin == other.asin
            && self.title == other.title
            && self.product_type == other.product_type
            && self.enabled == other.enabled
            && self.safety_stock == other.safety_stock
            && self.max_quantity == other.max_quantity
    }
}

/// One catalog row as a file states it. `None` means the file says nothing about that value
/// (its column is absent, or the cell is empty): the stored value stays as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogUpdate {
    pub sku: String,
    pub asin: String,
    pub title: Option<String>,
    pub product_type: Option<String>,
    pub enabled: Option<bool>,
    pub safety_stock: Option<u32>,
    pub max_quantity: Option<u32>,
    pub updated_at: String,
    pub source: String,
}

impl CatalogUpdate {
    /// The item after this update: what the file says, the stored values for what it does not.
    /// A new SKU is enabled unless the file says otherwise.
    pub fn apply_to(self, stored: Option<&CatalogItem>) -> CatalogItem {
        let keep = |new: Option<String>, old: Option<&String>| new.or_else(|| old.cloned());
        CatalogItem {
            title: keep(self.title, stored.and_then(|s| s.title.as_ref())),
            product_type: keep(
                self.product_type,
                stored.and_then(|s| s.product_type.as_ref()),
            ),
            enabled: self
                .enabled
                .or_else(|| stored.map(|s| s.enabled))
                .unwrap_or(true),
            safety_stock: self
                .safety_stock
                .or_else(|| stored.and_then(|s| s.safety_stock)),
            max_quantity: self
                .max_quantity
                .or_else(|| stored.and_then(|s| s.max_quantity)),
            sku: self.sku,
            asin: self.asin,
            updated_at: self.updated_at,
            source: self.source,
        }
    }
}

/// What we last sent Amazon as the price of a SKU in one marketplace, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceState {
    pub sku: String,
    pub marketplace_id: String,
    /// Hundredths of the currency unit.
    pub price: i64,
    pub currency: String,
    /// `SENT` before Amazon answered, then Amazon's status (`ACCEPTED`, `INVALID`, `VALID`).
    pub status: String,
    /// Amazon's issues, as JSON.
    pub issues: String,
    pub submission_id: Option<String>,
    /// `key@version#line` of the price row.
    pub upload: String,
    /// The upload's order ([`crate::upload::order::UploadOrder`]); a price from an older
    /// upload never replaces this one.
    #[serde(default)]
    pub order: String,
    pub updated_at: String,
}

/// What [`CatalogStore::claim_price`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceClaim {
    /// The price may be sent: nothing newer was applied and nothing else is in flight.
    Claimed,
    /// A price of this upload or a newer one was applied or is being sent (its order).
    Superseded { by: String },
    /// An older upload's price is on its way to Amazon right now; try again after it.
    Busy { retry_after: Duration },
}

/// A page of a scan; pass `next` back to continue.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// The items of these SKUs that exist (any order).
    async fn get_items(&self, skus: &[String]) -> Result<Vec<CatalogItem>>;
    /// Writes these items whole (insert or replace).
    async fn put_items(&self, items: &[CatalogItem]) -> Result<()>;
    /// Every catalog item, page by page (`None` to start).
    async fn scan_items(&self, start: Option<String>) -> Result<Page<CatalogItem>>;
    async fn get_prices(&self, keys: &[(String, String)]) -> Result<Vec<PriceState>>;
    /// Takes (SKU, marketplace) for the price of the upload `order` until `lease_until_ms`
    /// (epoch ms), if no price of this or a newer upload was applied and no other price is in
    /// flight (an expired lease does not count). Atomic (one conditional update).
    async fn claim_price(
        &self,
        sku: &str,
        marketplace_id: &str,
        order: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<PriceClaim>;
    /// Gives a claim back after a failed send (only if it is still ours).
    async fn release_price(&self, sku: &str, marketplace_id: &str, order: &str) -> Result<()>;
    /// Stores Amazon's answer unless a newer upload's price was applied or claimed meanwhile
    /// (then nothing is written and it returns false). Ends the claim.
    async fn put_price(&self, state: &PriceState) -> Result<bool>;
}

/// How an upsert went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub written: u64,
    pub unchanged: u64,
}

/// Applies file rows over the stored items (values the file does not state are kept), writing
/// only the items that differ from what is stored: a re-uploaded row that changed nothing
/// writes nothing.
pub async fn upsert(store: &dyn CatalogStore, updates: Vec<CatalogUpdate>) -> Result<UpsertCounts> {
    let skus: Vec<String> = updates.iter().map(|i| i.sku.clone()).collect();
    let stored: BTreeMap<String, CatalogItem> = store
        .get_items(&skus)
        .await?
        .into_iter()
        .map(|i| (i.sku.clone(), i))
        .collect();
    let total = updates.len() as u64;
    let changed: Vec<CatalogItem> = updates
        .into_iter()
        .map(|u| {
            let old = stored.get(&u.sku);
            (u.apply_to(old), old)
        })
        .filter(|(new, old)| !old.is_some_and(|old| old.same_content(new)))
        .map(|(new, _)| new)
        .collect();
    let written = changed.len() as u64;
    if !changed.is_empty() {
        store.put_items(&changed).await?;
    }
    Ok(UpsertCounts {
        written,
        unchanged: total - written,
    })
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

const ITEM: &str = "ITEM";

fn sku_pk(sku: &str) -> String {
    format!("SKU#{sku}")
}

fn key(pk: String, sk: String) -> Item {
    [("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))].into()
}

fn item_to_ddb(i: &CatalogItem) -> Item {
    let mut m: Item = [
        ("pk".to_string(), s(sku_pk(&i.sku))),
        ("sk".to_string(), s(ITEM)),
        ("sku".to_string(), s(&i.sku)),
        ("asin".to_string(), s(&i.asin)),
        ("enabled".to_string(), b(i.enabled)),
        ("updated_at".to_string(), s(&i.updated_at)),
        ("source".to_string(), s(&i.source)),
        ("gsi1pk".to_string(), s(format!("ASIN#{}", i.asin))),
        ("gsi1sk".to_string(), s(sku_pk(&i.sku))),
    ]
    .into();
    if let Some(t) = &i.title {
        m.insert("title".into(), s(t));
    }
    if let Some(t) = &i.product_type {
        m.insert("product_type".into(), s(t));
    }
    if let Some(v) = i.safety_stock {
        m.insert("safety_stock".into(), n(v));
    }
    if let Some(v) = i.max_quantity {
        m.insert("max_quantity".into(), n(v));
    }
    m
}

fn item_from_ddb(m: &Item) -> Option<CatalogItem> {
    Some(CatalogItem {
        sku: get_s(m, "sku")?.to_string(),
        asin: get_s(m, "asin")?.to_string(),
        title: get_s(m, "title").map(str::to_string),
        product_type: get_s(m, "product_type").map(str::to_string),
        enabled: get_bool(m, "enabled").unwrap_or(true),
        safety_stock: get_n(m, "safety_stock"),
        max_quantity: get_n(m, "max_quantity"),
        updated_at: get_s(m, "updated_at").unwrap_or_default().to_string(),
        source: get_s(m, "source").unwrap_or_default().to_string(),
    })
}

fn price_to_ddb(p: &PriceState) -> Item {
    let mut m: Item = [
        ("pk".to_string(), s(sku_pk(&p.sku))),
        ("sk".to_string(), s(format!("PRICE#{}", p.marketplace_id))),
        ("sku".to_string(), s(&p.sku)),
        ("marketplace_id".to_string(), s(&p.marketplace_id)),
        ("price".to_string(), n(p.price)),
        ("currency".to_string(), s(&p.currency)),
        ("status".to_string(), s(&p.status)),
        ("issues".to_string(), s(&p.issues)),
        ("upload".to_string(), s(&p.upload)),
        ("order".to_string(), s(&p.order)),
        ("updated_at".to_string(), s(&p.updated_at)),
    ]
    .into();
    if let Some(id) = &p.submission_id {
        m.insert("submission_id".into(), s(id));
    }
    m
}

fn price_from_ddb(m: &Item) -> Option<PriceState> {
    Some(PriceState {
        sku: get_s(m, "sku")?.to_string(),
        marketplace_id: get_s(m, "marketplace_id")?.to_string(),
        price: get_n(m, "price")?,
        currency: get_s(m, "currency").unwrap_or_default().to_string(),
        status: get_s(m, "status").unwrap_or_default().to_string(),
        issues: get_s(m, "issues").unwrap_or("[]").to_string(),
        submission_id: get_s(m, "submission_id").map(str::to_string),
        upload: get_s(m, "upload").unwrap_or_default().to_string(),
        order: get_s(m, "order").unwrap_or_default().to_string(),
        updated_at: get_s(m, "updated_at").unwrap_or_default().to_string(),
    })
}

/// Why a price claim was refused, from the stored item.
fn refused_claim(order: &str, now_ms: i64, stored: Option<&Item>) -> PriceClaim {
    let applied = stored.and_then(|m| get_s(m, "order")).unwrap_or_default();
    let pending = stored.and_then(|m| get_s(m, "pending_order"));
    let lease: i64 = stored.and_then(|m| get_n(m, "lease_until")).unwrap_or(0);
    if applied >= order {
        return PriceClaim::Superseded { by: applied.into() };
    }
    match pending {
        Some(p) if p > order && lease >= now_ms => PriceClaim::Superseded { by: p.into() },
        _ => PriceClaim::Busy {
            retry_after: Duration::from_millis((lease - now_ms).max(1000) as u64),
        },
    }
}

/// The catalog in the table named by `CATALOG_TABLE`.
#[derive(Debug, Clone)]
pub struct DynamoCatalogStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    batching: Batching,
}

impl DynamoCatalogStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            batching: Batching::default(),
        }
    }

    pub fn with_batching(mut self, batching: Batching) -> Self {
        self.batching = batching;
        self
    }
}

#[async_trait]
impl CatalogStore for DynamoCatalogStore {
    async fn get_items(&self, skus: &[String]) -> Result<Vec<CatalogItem>> {
        let keys = skus
            .iter()
            .map(|sku| key(sku_pk(sku), ITEM.into()))
            .collect();
        let found = dynamo::batch_get(&self.client, &self.table, keys, None, self.batching).await?;
        Ok(found.iter().filter_map(item_from_ddb).collect())
    }

    async fn put_items(&self, items: &[CatalogItem]) -> Result<()> {
        let requests = items
            .iter()
            .map(|i| {
                PutRequest::builder()
                    .set_item(Some(item_to_ddb(i)))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(|e| Error::Internal(format!("catalog put request: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        dynamo::batch_write(&self.client, &self.table, requests, self.batching).await
    }

    async fn scan_items(&self, start: Option<String>) -> Result<Page<CatalogItem>> {
        let start_key = match start {
            Some(token) => {
                let (pk, sk): (String, String) = serde_json::from_str(&token)
                    .map_err(|e| Error::Internal(format!("catalog scan token: {e}")))?;
                Some(key(pk, sk))
            }
            None => None,
        };
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :item")
            .expression_attribute_values(":item", s(ITEM))
            .set_exclusive_start_key(start_key)
            .limit(1000)
            .send()
            .await
            .map_err(|e| dynamo::ddb_error("Scan", e))?;
        let items = out.items().iter().filter_map(item_from_ddb).collect();
        let next = match out.last_evaluated_key() {
            Some(k) => {
                let part = |name: &str| {
                    k.get(name)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                Some(serde_json::to_string(&(part("pk"), part("sk")))?)
            }
            None => None,
        };
        Ok(Page { items, next })
    }

    async fn get_prices(&self, keys: &[(String, String)]) -> Result<Vec<PriceState>> {
        let keys = keys
            .iter()
            .map(|(sku, m)| key(sku_pk(sku), format!("PRICE#{m}")))
            .collect();
        let found = dynamo::batch_get(&self.client, &self.table, keys, None, self.batching).await?;
        Ok(found.iter().filter_map(price_from_ddb).collect())
    }

    async fn claim_price(
        &self,
        sku: &str,
        marketplace_id: &str,
        order: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<PriceClaim> {
        let pk = sku_pk(sku);
        let sk = format!("PRICE#{marketplace_id}");
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), sk.clone())))
            .update_expression("SET pending_order = :o, lease_until = :lease")
            .condition_expression(
                "(attribute_not_exists(#order) OR #order < :o) AND \
                 (attribute_not_exists(pending_order) OR pending_order = :o OR lease_until < :now)",
            )
            .expression_attribute_names("#order", "order")
            .expression_attribute_values(":o", s(order))
            .expression_attribute_values(":lease", n(lease_until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok(PriceClaim::Claimed),
            Err(e) if is_condition_failed(&e) => {
                let returned = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => c.item.clone(),
                    _ => None,
                };
                let stored = match returned {
                    Some(item) => Some(item),
                    None => {
                        self.client
                            .get_item()
                            .table_name(&self.table)
                            .set_key(Some(key(pk, sk)))
                            .consistent_read(true)
                            .send()
                            .await
                            .map_err(|e| dynamo::ddb_error("GetItem", e))?
                            .item
                    }
                };
                Ok(refused_claim(order, now_ms, stored.as_ref()))
            }
            Err(e) => Err(dynamo::ddb_error("UpdateItem", e)),
        }
    }

    async fn release_price(&self, sku: &str, marketplace_id: &str, order: &str) -> Result<()> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sku_pk(sku), format!("PRICE#{marketplace_id}"))))
            .update_expression("REMOVE pending_order, lease_until")
            .condition_expression("pending_order = :o")
            .expression_attribute_values(":o", s(order))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(dynamo::ddb_error("UpdateItem", e)),
        }
    }

    async fn put_price(&self, state: &PriceState) -> Result<bool> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(price_to_ddb(state)))
            .condition_expression(
                "(attribute_not_exists(#order) OR #order <= :o) AND \
                 (attribute_not_exists(pending_order) OR pending_order = :o)",
            )
            .expression_attribute_names("#order", "order")
            .expression_attribute_values(":o", s(&state.order))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo::ddb_error("PutItem", e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In memory

/// The catalog in a map (unit tests); counts writes so tests can see "writes nothing".
#[derive(Debug, Default)]
pub struct MemoryCatalogStore {
    items: Mutex<BTreeMap<String, CatalogItem>>,
    prices: Mutex<BTreeMap<(String, String), PriceState>>,
    /// In-flight claims: (order, lease until ms).
    pending: Mutex<BTreeMap<(String, String), (String, i64)>>,
    writes: Mutex<u64>,
}

impl MemoryCatalogStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn item(&self, sku: &str) -> Option<CatalogItem> {
        self.items.lock().expect("lock").get(sku).cloned()
    }

    pub fn items(&self) -> Vec<CatalogItem> {
        self.items.lock().expect("lock").values().cloned().collect()
    }

    pub fn price(&self, sku: &str, marketplace_id: &str) -> Option<PriceState> {
        self.prices
            .lock()
            .expect("lock")
            .get(&(sku.to_string(), marketplace_id.to_string()))
            .cloned()
    }

    /// Items written so far.
    pub fn writes(&self) -> u64 {
        *self.writes.lock().expect("lock")
    }
}

#[async_trait]
impl CatalogStore for MemoryCatalogStore {
    async fn get_items(&self, skus: &[String]) -> Result<Vec<CatalogItem>> {
        let items = self.items.lock().expect("lock");
        Ok(skus.iter().filter_map(|s| items.get(s).cloned()).collect())
    }

    async fn put_items(&self, new: &[CatalogItem]) -> Result<()> {
        let mut items = self.items.lock().expect("lock");
        for i in new {
            items.insert(i.sku.clone(), i.clone());
        }
        *self.writes.lock().expect("lock") += new.len() as u64;
        Ok(())
    }

    async fn scan_items(&self, start: Option<String>) -> Result<Page<CatalogItem>> {
        const PAGE: usize = 2;
        let items = self.items.lock().expect("lock");
        let page: Vec<CatalogItem> = match &start {
            Some(after) => items
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(PAGE)
                .map(|(_, v)| v.clone())
                .collect(),
            None => items.values().take(PAGE).cloned().collect(),
        };
        let next = (page.len() == PAGE).then(|| page[PAGE - 1].sku.clone());
        Ok(Page { items: page, next })
    }

    async fn get_prices(&self, keys: &[(String, String)]) -> Result<Vec<PriceState>> {
        let prices = self.prices.lock().expect("lock");
        Ok(keys.iter().filter_map(|k| prices.get(k).cloned()).collect())
    }

    async fn claim_price(
        &self,
        sku: &str,
        marketplace_id: &str,
        order: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<PriceClaim> {
        let k = (sku.to_string(), marketplace_id.to_string());
        let prices = self.prices.lock().expect("lock");
        let mut pending = self.pending.lock().expect("lock");
        let applied = prices.get(&k).map(|p| p.order.as_str());
        let in_flight = pending.get(&k);
        let newer_applied = applied.is_some_and(|a| a >= order);
        let blocked = in_flight.is_some_and(|(o, lease)| o != order && *lease >= now_ms);
        if !newer_applied && !blocked {
            pending.insert(k, (order.to_string(), lease_until_ms));
            return Ok(PriceClaim::Claimed);
        }
        let mut stored: Item = Item::new();
        if let Some(a) = applied {
            stored.insert("order".into(), s(a));
        }
        if let Some((o, lease)) = in_flight {
            stored.insert("pending_order".into(), s(o));
            stored.insert("lease_until".into(), n(lease));
        }
        Ok(refused_claim(order, now_ms, Some(&stored)))
    }

    async fn release_price(&self, sku: &str, marketplace_id: &str, order: &str) -> Result<()> {
        let k = (sku.to_string(), marketplace_id.to_string());
        let mut pending = self.pending.lock().expect("lock");
        if pending.get(&k).is_some_and(|(o, _)| o == order) {
            pending.remove(&k);
        }
        Ok(())
    }

    async fn put_price(&self, state: &PriceState) -> Result<bool> {
        let k = (state.sku.clone(), state.marketplace_id.clone());
        let mut prices = self.prices.lock().expect("lock");
        let mut pending = self.pending.lock().expect("lock");
        let newer = prices.get(&k).is_some_and(|p| p.order > state.order);
        let other = pending.get(&k).is_some_and(|(o, _)| *o != state.order);
        if newer || other {
            return Ok(false);
        }
        pending.remove(&k);
        prices.insert(k, state.clone());
        Ok(true)
    }
}

/// For callers that only hold an attribute map (e.g. a stream record).
pub fn catalog_item_from_attributes(
    m: &std::collections::HashMap<String, AttributeValue>,
) -> Option<CatalogItem> {
    item_from_ddb(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, asin: &str) -> CatalogItem {
        CatalogItem {
            sku: sku.into(),
            asin: asin.into(),
            title: None,
            product_type: Some("LUGGAGE".into()),
            enabled: true,
            safety_stock: Some(1),
            max_quantity: None,
            updated_at: "t1".into(),
            source: "catalog/a.csv@v1".into(),
        }
    }

    fn update(i: CatalogItem) -> CatalogUpdate {
        CatalogUpdate {
            sku: i.sku,
            asin: i.asin,
            title: i.title,
            product_type: i.product_type,
            enabled: Some(i.enabled),
            safety_stock: i.safety_stock,
            max_quantity: i.max_quantity,
            updated_at: i.updated_at,
            source: i.source,
        }
    }

    #[tokio::test]
    async fn values_a_row_does_not_state_are_kept() {
        let store = MemoryCatalogStore::new();
        let mut full = item("A", "B000000001");
        full.max_quantity = Some(7);
        upsert(&store, vec![update(full)]).await.unwrap();
        // A title-only correction: no product_type, enabled, safety_stock or max_quantity.
        let c = upsert(
            &store,
            vec![CatalogUpdate {
                sku: "A".into(),
                asin: "B000000001".into(),
                title: Some("Mug".into()),
                product_type: None,
                enabled: None,
                safety_stock: None,
                max_quantity: None,
                updated_at: "t2".into(),
                source: "catalog/delta/t.csv@v1".into(),
            }],
        )
        .await
        .unwrap();
        assert_eq!(c.written, 1);
        let a = store.item("A").unwrap();
        assert_eq!(a.title.as_deref(), Some("Mug"));
        assert_eq!(a.product_type.as_deref(), Some("LUGGAGE"));
        assert_eq!(
            (a.enabled, a.safety_stock, a.max_quantity),
            (true, Some(1), Some(7))
        );
    }

    fn price(order: &str, cents: i64) -> PriceState {
        PriceState {
            sku: "A".into(),
            marketplace_id: "M".into(),
            price: cents,
            currency: "USD".into(),
            status: "ACCEPTED".into(),
            issues: "[]".into(),
            submission_id: None,
            upload: format!("prices/{order}.csv@v#2"),
            order: order.into(),
            updated_at: "t".into(),
        }
    }

    #[tokio::test]
    async fn an_older_uploads_price_never_replaces_a_newer_one() {
        let store = MemoryCatalogStore::new();
        assert_eq!(
            store.claim_price("A", "M", "2", 0, 100).await.unwrap(),
            PriceClaim::Claimed
        );
        // An older price while the newer one is in flight: superseded, never claimed.
        assert_eq!(
            store.claim_price("A", "M", "1", 10, 200).await.unwrap(),
            PriceClaim::Superseded { by: "2".into() }
        );
        assert!(store.put_price(&price("2", 2000)).await.unwrap());
        assert_eq!(
            store.claim_price("A", "M", "1", 20, 200).await.unwrap(),
            PriceClaim::Superseded { by: "2".into() }
        );
        assert!(!store.put_price(&price("1", 1000)).await.unwrap());
        assert_eq!(store.price("A", "M").unwrap().price, 2000);
        // A newer one waits while an older one is in flight, and goes once it is answered.
        assert_eq!(
            store.claim_price("A", "M", "3", 30, 1030).await.unwrap(),
            PriceClaim::Claimed
        );
        assert!(matches!(
            store.claim_price("A", "M", "4", 40, 1040).await.unwrap(),
            PriceClaim::Busy { .. }
        ));
        store.release_price("A", "M", "3").await.unwrap();
        assert_eq!(
            store.claim_price("A", "M", "4", 50, 1050).await.unwrap(),
            PriceClaim::Claimed
        );
    }

    #[tokio::test]
    async fn upsert_writes_only_what_changed() {
        let store = MemoryCatalogStore::new();
        let c = upsert(
            &store,
            vec![
                update(item("A", "B000000001")),
                update(item("B", "B000000002")),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            c,
            UpsertCounts {
                written: 2,
                unchanged: 0
            }
        );
        let mut again = vec![item("A", "B000000001"), item("B", "B000000009")];
        again[0].updated_at = "t2".into();
        again[0].source = "catalog/b.csv@v1".into();
        let c = upsert(&store, again.into_iter().map(update).collect())
            .await
            .unwrap();
        assert_eq!(
            c,
            UpsertCounts {
                written: 1,
                unchanged: 1
            }
        );
        assert_eq!(store.writes(), 3);
        assert_eq!(
            store.item("A").unwrap().updated_at,
            "t1",
            "unchanged row not rewritten"
        );
        assert_eq!(store.item("B").unwrap().asin, "B000000009");
    }

    #[test]
    fn dynamo_mapping_round_trips() {
        let mut i = item("Sku 1", "B000000001");
        i.title = Some("Mug".into());
        i.max_quantity = Some(5);
        let m = item_to_ddb(&i);
        assert_eq!(get_s(&m, "pk"), Some("SKU#Sku 1"));
        assert_eq!(get_s(&m, "gsi1pk"), Some("ASIN#B000000001"));
        assert_eq!(item_from_ddb(&m).unwrap(), i);
        let p = PriceState {
            sku: "A".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
            price: 1999,
            currency: "USD".into(),
            status: "ACCEPTED".into(),
            issues: "[]".into(),
            submission_id: Some("s1".into()),
            upload: "prices/p.csv@v1#2".into(),
            order: "2026-11-21T08:21:13.408Z|0|prices/p.csv@v1".into(),
            updated_at: "t".into(),
        };
        assert_eq!(price_from_ddb(&price_to_ddb(&p)).unwrap(), p);
    }
}
