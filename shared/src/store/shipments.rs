//! ShipmentsTable: shipments and returns, as the orders capability stores them.
//!
//! | item | `pk` | `sk` | `gsi1pk` | `gsi1sk` |
//! |---|---|---|---|---|
//! | shipment | `SHIPMENT#<shipmentId>` | `DETAIL` | `STAGE#<stage>` | `<changedAt RFC 3339 ms>#<shipmentId>` |
//! | return | `RETURN#<returnId>` | `DETAIL` | `RETURNSTAGE#<stage>` | `<changedAt>#<returnId>` |
//!
//! Access patterns:
//! - get a shipment / return by ID (`GetItem`, consistent read);
//! - save with optimistic concurrency: `version` must equal what was read (0 = must not exist),
//!   so the poller, the notification consumer and the warehouse API never overwrite each other;
//! - list by stage and time (warehouse catch-up; the poller's sweep of unsettled shipments):
//!   `Query by_stage` with `gsi1pk = STAGE#<stage>` and `gsi1sk >= <since>`, paginated by an
//!   opaque token, then the records by `BatchGetItem`.
//!
//! The record is kept whole as JSON in `doc`, deflated (Binary): the JSON is ~5 KB, mostly
//! field names and Amazon's charge breakdowns, and a write is billed per started KB, a strongly
//! consistent read per started 4 KB. Items written before (`doc` a String) read as they are.
//! Only the key and index attributes are separate.
//! The index projects the keys only (`KEYS_ONLY`): every save moves the entry (its sort key is
//! the time of the change), so an index projecting the whole ~5 KB record cost as much again as
//! the table on every write; the keys are ~100 bytes, 1 WRU, and a listing reads the records
//! from the table instead (read units are a fifth of the price of write units, and listings
//! are rarer than saves: docs/data-model.md has the arithmetic).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::shipment::{sort_time, ReturnRecord, ReturnStage, ShipmentRecord, Stage};
use crate::store::dynamo::{self, ddb_error, get_s, Batching, Item};

/// One page of a listing; `next_token` is opaque and `None` at the end.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

#[async_trait]
pub trait ShipmentStore: Send + Sync {
    async fn get(&self, id: &str) -> Result<Option<ShipmentRecord>>;
    /// Writes the record if the stored version still equals `record.version` (0 = absent), then
    /// bumps `record.version` and `record.changed_at`. `Error::Conflict` when someone got there first.
    async fn save(&self, record: &mut ShipmentRecord) -> Result<()>;
    async fn list(
        &self,
        stage: Stage,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<ShipmentRecord>>;

    async fn get_return(&self, id: &str) -> Result<Option<ReturnRecord>>;
    async fn save_return(&self, record: &mut ReturnRecord) -> Result<()>;
    async fn list_returns(
        &self,
        stage: ReturnStage,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<ReturnRecord>>;
}

/// What the table needs to know about a record kind.
trait Doc: Serialize + DeserializeOwned + Clone + Send + Sync {
    const PK: &'static str;
    const GSI: &'static str;
    fn id(&self) -> &str;
    fn stage_str(&self) -> &'static str;
    fn changed_at(&self) -> DateTime<Utc>;
    fn set_changed_at(&mut self, t: DateTime<Utc>);
    fn version(&self) -> u64;
    fn set_version(&mut self, v: u64);
}

impl Doc for ShipmentRecord {
    const PK: &'static str = "SHIPMENT#";
    const GSI: &'static str = "STAGE#";
    fn id(&self) -> &str {
        &self.id
    }
    fn stage_str(&self) -> &'static str {
        self.stage.as_str()
    }
    fn changed_at(&self) -> DateTime<Utc> {
        self.changed_at
    }
    fn set_changed_at(&mut self, t: DateTime<Utc>) {
        self.changed_at = t;
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, v: u64) {
        self.version = v;
    }
}

impl Doc for ReturnRecord {
    const PK: &'static str = "RETURN#";
    const GSI: &'static str = "RETURNSTAGE#";
    fn id(&self) -> &str {
        &self.id
    }
    fn stage_str(&self) -> &'static str {
        self.stage.as_str()
    }
    fn changed_at(&self) -> DateTime<Utc> {
        self.changed_at
    }
    fn set_changed_at(&mut self, t: DateTime<Utc>) {
        self.changed_at = t;
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, v: u64) {
        self.version = v;
    }
}

fn gsi1sk<D: Doc>(d: &D) -> String {
    format!("{}#{}", sort_time(d.changed_at()), d.id())
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

pub struct DynamoShipmentStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoShipmentStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get_doc<D: Doc>(&self, id: &str) -> Result<Option<D>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("{}{id}", D::PK)))
            .key("sk", AttributeValue::S("DETAIL".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        out.item.map(|item| doc_of(&item)).transpose()
    }

    async fn save_doc<D: Doc>(&self, d: &mut D) -> Result<()> {
        let expected = d.version();
        let mut next = d.clone();
        next.set_version(expected + 1);
        next.set_changed_at(Utc::now().max(d.changed_at()));
        let body = encode_doc(&next)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("{}{}", D::PK, d.id())))
            .item("sk", AttributeValue::S("DETAIL".into()))
            .item(
                "gsi1pk",
                AttributeValue::S(format!("{}{}", D::GSI, next.stage_str())),
            )
            .item("gsi1sk", AttributeValue::S(gsi1sk(&next)))
            .item("version", AttributeValue::N((expected + 1).to_string()))
            .item("doc", body);
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        match put.send().await {
            Ok(_) => {
                *d = next;
                Ok(())
            }
            Err(e) => {
                let conditional = e
                    .as_service_error()
                    .map(|s| s.is_conditional_check_failed_exception())
                    .unwrap_or(false);
                if conditional {
                    Err(Error::Conflict(format!(
                        "{}{} changed since version {expected}",
                        D::PK,
                        d.id()
                    )))
                } else {
                    Err(ddb_error("PutItem", e))
                }
            }
        }
    }

    async fn list_docs<D: Doc>(
        &self,
        stage: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<D>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by_stage")
            .expression_attribute_values(":p", AttributeValue::S(format!("{}{stage}", D::GSI)))
            .limit(limit.clamp(1, 1000) as i32);
        q = match since {
            Some(t) => q
                .key_condition_expression("gsi1pk = :p AND gsi1sk >= :s")
                .expression_attribute_values(":s", AttributeValue::S(sort_time(t))),
            None => q.key_condition_expression("gsi1pk = :p"),
        };
        if let Some(t) = token {
            q = q.set_exclusive_start_key(Some(decode_token(t)?));
        }
        let out = q.send().await.map_err(|e| ddb_error("Query", e))?;
        let listed = out.items.unwrap_or_default();
        let keys: Vec<Item> = listed
            .iter()
            .map(|i| {
                ["pk", "sk"]
                    .into_iter()
                    .filter_map(|k| Some((k.to_string(), i.get(k)?.clone())))
                    .collect()
            })
            .collect();
        let mut found: HashMap<String, Item> =
            dynamo::batch_get(&self.client, &self.table, keys, None, Batching::default())
                .await?
                .into_iter()
                .filter_map(|i| Some((get_s(&i, "pk")?.to_string(), i)))
                .collect();
        // In the index's order; a record that moved to another stage since the index was read
        // is listed under that stage, not this one.
        let gsi1pk = format!("{}{stage}", D::GSI);
        let items = listed
            .iter()
            .filter_map(|i| found.remove(get_s(i, "pk")?))
            .filter(|i| get_s(i, "gsi1pk") == Some(gsi1pk.as_str()))
            .map(|i| doc_of(&i))
            .collect::<Result<Vec<D>>>()?;
        Ok(Page {
            items,
            next_token: out.last_evaluated_key.as_ref().map(encode_token),
        })
    }
}

/// The record as stored: its JSON, deflated.
fn encode_doc<D: Serialize>(d: &D) -> Result<AttributeValue> {
    use std::io::Write;
    let json = serde_json::to_vec(d).map_err(|e| Error::Internal(e.to_string()))?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&json)
        .and_then(|_| z.finish())
        .map(|bytes| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes)))
        .map_err(|e| Error::Internal(format!("deflating a shipment: {e}")))
}

fn doc_of<D: DeserializeOwned>(item: &HashMap<String, AttributeValue>) -> Result<D> {
    let unreadable = |e: String| Error::Internal(format!("stored shipment unreadable: {e}"));
    match item.get("doc") {
        // Written before the records were deflated.
        Some(AttributeValue::S(raw)) => {
            serde_json::from_str(raw).map_err(|e| unreadable(e.to_string()))
        }
        Some(AttributeValue::B(z)) => {
            serde_json::from_reader(flate2::read::DeflateDecoder::new(z.as_ref()))
                .map_err(|e| unreadable(e.to_string()))
        }
        _ => Err(Error::Internal("shipments item without doc".into())),
    }
}

fn encode_token(key: &HashMap<String, AttributeValue>) -> String {
    let plain: BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&plain).unwrap_or_default())
}

fn decode_token(token: &str) -> Result<HashMap<String, AttributeValue>> {
    let bad = || Error::InvalidInput(format!("pagination token {token:?} is not one we issued"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let plain: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

#[async_trait]
impl ShipmentStore for DynamoShipmentStore {
    async fn get(&self, id: &str) -> Result<Option<ShipmentRecord>> {
        self.get_doc(id).await
    }
    async fn save(&self, record: &mut ShipmentRecord) -> Result<()> {
        self.save_doc(record).await
    }
    async fn list(
        &self,
        stage: Stage,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<ShipmentRecord>> {
        self.list_docs(stage.as_str(), since, limit, token).await
    }
    async fn get_return(&self, id: &str) -> Result<Option<ReturnRecord>> {
        self.get_doc(id).await
    }
    async fn save_return(&self, record: &mut ReturnRecord) -> Result<()> {
        self.save_doc(record).await
    }
    async fn list_returns(
        &self,
        stage: ReturnStage,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<ReturnRecord>> {
        self.list_docs(stage.as_str(), since, limit, token).await
    }
}

// ---------------------------------------------------------------------------------------------
// In memory (unit tests)

#[derive(Default)]
pub struct MemoryShipmentStore {
    shipments: Mutex<BTreeMap<String, ShipmentRecord>>,
    returns: Mutex<BTreeMap<String, ReturnRecord>>,
}

impl MemoryShipmentStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn mem_save<D: Doc>(map: &Mutex<BTreeMap<String, D>>, d: &mut D) -> Result<()> {
    let mut map = map.lock().expect("store lock");
    let stored = map.get(d.id()).map(|x| x.version()).unwrap_or(0);
    if stored != d.version() {
        return Err(Error::Conflict(format!(
            "{}{} changed since version {}",
            D::PK,
            d.id(),
            d.version()
        )));
    }
    d.set_version(stored + 1);
    d.set_changed_at(Utc::now().max(d.changed_at()));
    map.insert(d.id().to_string(), d.clone());
    Ok(())
}

fn mem_list<D: Doc>(
    map: &Mutex<BTreeMap<String, D>>,
    stage: &str,
    since: Option<DateTime<Utc>>,
    limit: usize,
    token: Option<&str>,
) -> Page<D> {
    let map = map.lock().expect("store lock");
    let since = since.map(sort_time).unwrap_or_default();
    let mut all: Vec<(String, D)> = map
        .values()
        .filter(|d| d.stage_str() == stage)
        .map(|d| (gsi1sk(d), d.clone()))
        .filter(|(k, _)| *k >= since && token.map(|t| k.as_str() > t).unwrap_or(true))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let more = all.len() > limit;
    all.truncate(limit);
    Page {
        next_token: if more {
            all.last().map(|(k, _)| k.clone())
        } else {
            None
        },
        items: all.into_iter().map(|(_, d)| d).collect(),
    }
}

#[async_trait]
impl ShipmentStore for MemoryShipmentStore {
    async fn get(&self, id: &str) -> Result<Option<ShipmentRecord>> {
        Ok(self.shipments.lock().expect("store lock").get(id).cloned())
    }
    async fn save(&self, record: &mut ShipmentRecord) -> Result<()> {
        mem_save(&self.shipments, record)
    }
    async fn list(
        &self,
        stage: Stage,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<ShipmentRecord>> {
        Ok(mem_list(
            &self.shipments,
            stage.as_str(),
            since,
            limit,
            token,
        ))
    }
    async fn get_return(&self, id: &str) -> Result<Option<ReturnRecord>> {
        Ok(self.returns.lock().expect("store lock").get(id).cloned())
    }
    async fn save_return(&self, record: &mut ReturnRecord) -> Result<()> {
        mem_save(&self.returns, record)
    }
    async fn list_returns(
        &self,
        stage: ReturnStage,
        since: Option<DateTime<Utc>>,
        limit: usize,
        token: Option<&str>,
    ) -> Result<Page<ReturnRecord>> {
        Ok(mem_list(&self.returns, stage.as_str(), since, limit, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipment::{fixtures, AmazonShipment};

    fn record(id: &str) -> ShipmentRecord {
        AmazonShipment::from_json(&fixtures::shipment(
            id,
            "ACCEPTED",
            "2026-11-21T08:00:00Z",
            &[("A", 1)],
        ))
        .unwrap()
        .record
    }

    #[tokio::test]
    async fn save_is_optimistic() {
        let store = MemoryShipmentStore::new();
        let mut a = record("S1");
        store.save(&mut a).await.unwrap();
        assert_eq!(a.version, 1);
        let mut stale = record("S1");
        assert!(matches!(
            store.save(&mut stale).await,
            Err(Error::Conflict(_))
        ));
        a.stage = Stage::Held;
        store.save(&mut a).await.unwrap();
        assert_eq!(store.get("S1").await.unwrap().unwrap().stage, Stage::Held);
    }

    #[tokio::test]
    async fn lists_by_stage_in_pages() {
        let store = MemoryShipmentStore::new();
        for i in 0..5 {
            let mut r = record(&format!("S{i}"));
            store.save(&mut r).await.unwrap();
        }
        let p1 = store.list(Stage::Received, None, 3, None).await.unwrap();
        assert_eq!(p1.items.len(), 3);
        let p2 = store
            .list(Stage::Received, None, 3, p1.next_token.as_deref())
            .await
            .unwrap();
        assert_eq!(p2.items.len(), 2);
        assert!(p2.next_token.is_none());
        assert!(store
            .list(Stage::Held, None, 3, None)
            .await
            .unwrap()
            .items
            .is_empty());
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let mut key = HashMap::new();
        key.insert("pk".to_string(), AttributeValue::S("SHIPMENT#1".into()));
        let t = encode_token(&key);
        assert_eq!(decode_token(&t).unwrap(), key);
        assert!(decode_token("!!").is_err());
    }

    /// A labelled shipment as the cost benchmark's day stored it on 2026-12-07 (`doc` a
    /// String then; the simulator's link signature blanked).
    const STORED_2026_12_07: &str = include_str!("testdata/shipment-doc-2026-12-07.json");

    #[test]
    fn items_stored_as_text_still_read_and_deflated_ones_are_a_quarter_the_size() {
        let old = HashMap::from([(
            "doc".to_string(),
            AttributeValue::S(STORED_2026_12_07.into()),
        )]);
        let r: ShipmentRecord = doc_of(&old).unwrap();
        assert_eq!((r.id.as_str(), r.stage), ("SIM000007E65A", Stage::Labelled));
        assert_eq!(r.line_items.len(), 2);
        assert_eq!(r.fulfilment().steps.len(), 5);
        let z = encode_doc(&r).unwrap();
        let deflated = z.as_b().unwrap().as_ref().len();
        // 5,929 bytes of JSON (6 WRU with the keys) deflate to under 1,500 (2 WRU).
        assert_eq!(STORED_2026_12_07.len(), 5929);
        assert!(deflated < 1500, "{deflated} bytes");
        let back: ShipmentRecord = doc_of(&HashMap::from([("doc".to_string(), z)])).unwrap();
        assert_eq!(back, r);
        assert!(doc_of::<ShipmentRecord>(&HashMap::new()).is_err());
    }
}
