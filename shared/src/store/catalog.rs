//! CatalogTable: the seller's SKU ↔ ASIN mapping with product attributes, and per SKU and
//! marketplace the last price we sent Amazon and Amazon's answer.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | catalog item | `SKU#<sku>` | `ITEM` | `sku`, `asin`, `title`?, `product_type`?, `enabled` (BOOL), `safety_stock`? (N), `max_quantity`? (N), `updated_at`, `source` (upload key @ version), `gsi1pk` = `ASIN#<asin>`, `gsi1sk` = `SKU#<sku>` |
//! | price state | `SKU#<sku>` | `PRICE#<marketplace>` | `price` (N, hundredths), `currency`, `status` (`SENT`, `ACCEPTED`, `INVALID`, ...), `issues` (JSON text), `submission_id`?, `upload`, `updated_at` |
//!
//! Access patterns: one or many SKUs' items (GetItem / BatchGetItem on `SKU#`/`ITEM`); the SKUs
//! of an ASIN (Query `gsi1` on `ASIN#<asin>`); every item (Scan filtered on `sk = ITEM`, for a
//! full catalog upload); the last price sent for a SKU in a marketplace (GetItem `PRICE#`).
//! Items are never deleted: a SKU leaves the catalog by `enabled = false`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use super::dynamo::{self, b, get_bool, get_n, get_s, n, s, Batching, Item};
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
    pub updated_at: String,
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
    async fn put_price(&self, state: &PriceState) -> Result<()>;
}

/// How an upsert went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub written: u64,
    pub unchanged: u64,
}

/// Inserts or replaces items, writing only those that differ from what is stored: a
/// re-uploaded row that changed nothing writes nothing.
pub async fn upsert(store: &dyn CatalogStore, items: Vec<CatalogItem>) -> Result<UpsertCounts> {
    let skus: Vec<String> = items.iter().map(|i| i.sku.clone()).collect();
    let stored: BTreeMap<String, CatalogItem> = store
        .get_items(&skus)
        .await?
        .into_iter()
        .map(|i| (i.sku.clone(), i))
        .collect();
    let total = items.len() as u64;
    let changed: Vec<CatalogItem> = items
        .into_iter()
        .filter(|i| !stored.get(&i.sku).is_some_and(|old| old.same_content(i)))
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
        updated_at: get_s(m, "updated_at").unwrap_or_default().to_string(),
    })
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

    async fn put_price(&self, state: &PriceState) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(price_to_ddb(state)))
            .send()
            .await
            .map_err(|e| dynamo::ddb_error("PutItem", e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// In memory

/// The catalog in a map (unit tests); counts writes so tests can see "writes nothing".
#[derive(Debug, Default)]
pub struct MemoryCatalogStore {
    items: Mutex<BTreeMap<String, CatalogItem>>,
    prices: Mutex<BTreeMap<(String, String), PriceState>>,
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

    async fn put_price(&self, state: &PriceState) -> Result<()> {
        self.prices.lock().expect("lock").insert(
            (state.sku.clone(), state.marketplace_id.clone()),
            state.clone(),
        );
        Ok(())
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

    #[tokio::test]
    async fn upsert_writes_only_what_changed() {
        let store = MemoryCatalogStore::new();
        let c = upsert(
            &store,
            vec![item("A", "B000000001"), item("B", "B000000002")],
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
        let c = upsert(&store, again).await.unwrap();
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
            updated_at: "t".into(),
        };
        assert_eq!(price_from_ddb(&price_to_ddb(&p)).unwrap(), p);
    }
}
