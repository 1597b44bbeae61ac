//! The narrow views the orders capability needs of other parts: Amazon's shipments and returns,
//! the seller's locations and the catalog. Production implementations wrap the SP-API client,
//! the locations/settings stores and the catalog store (see `adapters`); unit tests use the
//! in-memory twins below.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::spapi::{Shipment, ShipmentStatus};

/// One getShipments call (one status, as Amazon requires).
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentsQuery {
    pub location_id: String,
    pub status: String,
    pub last_updated_after: DateTime<Utc>,
    /// The window's end (polls ask for bounded windows, so a long outage is read in parts).
    pub last_updated_before: Option<DateTime<Utc>>,
    pub pagination_token: Option<String>,
}

/// One listReturns call.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnsQuery {
    pub return_location_id: String,
    pub status: String,
    pub last_updated_since: DateTime<Utc>,
    pub last_updated_until: Option<DateTime<Utc>>,
    pub next_token: Option<String>,
}

/// A page of Amazon objects: typed shipments (decoded once, by the SP-API client) or returns in
/// the model's JSON shape (read by `orders::model`).
#[derive(Debug, Clone)]
pub struct AmazonPage<T = Value> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
    /// Records of the page whose shape is broken, by id: never to be dropped silently (the
    /// poller reads each back alone, and quarantines what still cannot be read).
    pub unreadable: Vec<Unreadable>,
}

pub use crate::spapi::Unreadable;

/// Whether an error reading one record back means "its data cannot be read" (quarantine it)
/// rather than "Amazon could not answer now" (try again later, the cursor stays).
pub fn is_unreadable(e: &Error) -> bool {
    match e {
        Error::InvalidInput(_) | Error::NotFound(_) => true,
        Error::SpApi(e) => e.kind == crate::spapi::SpApiErrorKind::Decode || e.is_not_found(),
        _ => false,
    }
}

/// Why a shipment is rejected (the model's `reason` enum, as the SP-API client sends it).
pub use crate::spapi::RejectReason;

pub fn reject_reason_str(r: RejectReason) -> &'static str {
    match r {
        RejectReason::OutOfStock => "OUT_OF_STOCK",
        RejectReason::CustomerRequested => "CUSTOMER_REQUESTED",
    }
}

#[async_trait]
pub trait ShipmentsApi: Send + Sync {
    async fn get_shipments(&self, query: &ShipmentsQuery) -> Result<AmazonPage<Shipment>>;
    async fn get_shipment(&self, shipment_id: &str) -> Result<Shipment>;
    /// processShipment CONFIRM.
    async fn confirm(&self, shipment_id: &str) -> Result<()>;
    /// processShipment REJECT of the whole shipment: every line with its quantity.
    async fn reject(
        &self,
        shipment_id: &str,
        reference_id: &str,
        lines: &[(String, u32)],
        reason: RejectReason,
    ) -> Result<()>;
    async fn list_returns(&self, query: &ReturnsQuery) -> Result<AmazonPage>;
    async fn get_return(&self, return_id: &str) -> Result<Value>;
}

/// What to do with a line whose SKU has no catalog mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmappedSkuAction {
    /// Hold for a person to release or reject (the default).
    #[default]
    Hold,
    /// REJECT with OUT_OF_STOCK when the status allows; hold otherwise.
    Reject,
}

/// What to do with a shipment another connector had already confirmed when flexbridge first
/// saw it (a seller moving from another connector). Never confirmed or packed again either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptExisting {
    /// Hand it to the warehouse (`ShipmentAccepted` with `handledElsewhere`); one that was
    /// packed there is not packable here.
    Hand,
    /// Store it and keep it current, stage `left_alone`: the old connector finishes it (the
    /// default, as the migration guide has open orders finish where they started, and a
    /// second pick of the same order is worse than a listed one left for a person).
    #[default]
    Ignore,
}

/// A location as the orders capability sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLocation {
    /// Amazon's location ID (`locationId` of shipments).
    pub location_id: String,
    /// The seller's warehouse hub code, named in events.
    pub hub: String,
    pub order_sync: bool,
    /// Where returns to this location arrive (`returnLocationId`), when returns are synced.
    pub return_location_id: Option<String>,
    pub unmapped_sku: UnmappedSkuAction,
    pub adopt_existing: AdoptExisting,
}

#[async_trait]
pub trait LocationDirectory: Send + Sync {
    /// Enabled locations (order sync on or off; callers filter).
    async fn locations(&self) -> Result<Vec<OrderLocation>>;

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

    async fn by_return_location(&self, return_location_id: &str) -> Result<Option<OrderLocation>> {
        Ok(self
            .locations()
            .await?
            .into_iter()
            .find(|l| l.return_location_id.as_deref() == Some(return_location_id)))
    }
}

#[async_trait]
pub trait SkuCatalog: Send + Sync {
    /// The SKUs among `skus` that have no (enabled) catalog mapping.
    async fn unmapped(&self, skus: &[String]) -> Result<Vec<String>>;
}

// ---------------------------------------------------------------------------------------------
// In-memory twins

#[derive(Default)]
pub struct MemoryLocations {
    pub list: Mutex<Vec<OrderLocation>>,
}

impl MemoryLocations {
    pub fn new(list: Vec<OrderLocation>) -> Self {
        Self {
            list: Mutex::new(list),
        }
    }
}

#[async_trait]
impl LocationDirectory for MemoryLocations {
    async fn locations(&self) -> Result<Vec<OrderLocation>> {
        Ok(self.list.lock().expect("lock").clone())
    }
}

#[derive(Default)]
pub struct MemoryCatalog {
    pub mapped: Mutex<HashSet<String>>,
}

impl MemoryCatalog {
    pub fn with(skus: &[&str]) -> Self {
        Self {
            mapped: Mutex::new(skus.iter().map(|s| s.to_string()).collect()),
        }
    }
}

#[async_trait]
impl SkuCatalog for MemoryCatalog {
    async fn unmapped(&self, skus: &[String]) -> Result<Vec<String>> {
        let mapped = self.mapped.lock().expect("lock");
        Ok(skus
            .iter()
            .filter(|s| !mapped.contains(*s))
            .cloned()
            .collect())
    }
}

/// A tiny Amazon for unit tests: shipments by ID, pages of `page_size`, call counts.
#[derive(Default)]
pub struct MemoryAmazon {
    pub shipments: Mutex<BTreeMap<String, Value>>,
    pub returns: Mutex<BTreeMap<String, Value>>,
    pub confirms: Mutex<Vec<String>>,
    pub rejects: Mutex<Vec<String>>,
    /// When set, the next CONFIRM is applied and then answered with a 500.
    pub apply_then_fail: Mutex<bool>,
    pub page_size: usize,
    /// Listed in pages as unreadable (by id) instead of as items.
    pub unreadable_in_pages: Mutex<HashSet<String>>,
    /// Also unreadable when read alone (getShipment / getReturn).
    pub unreadable_alone: Mutex<HashSet<String>>,
    /// Every getShipment / getReturn call, by id.
    pub reads_alone: Mutex<Vec<String>>,
    /// A page token Amazon refuses (400, as for an expired token).
    pub refused_token: Mutex<Option<String>>,
    /// Locations (or return locations) whose listing Amazon answers with a 500.
    pub failing_locations: Mutex<HashSet<String>>,
}

impl MemoryAmazon {
    pub fn new() -> Self {
        Self {
            page_size: 2,
            ..Default::default()
        }
    }

    pub fn put(&self, v: Value) {
        let id = v["id"].as_str().expect("id").to_string();
        self.shipments.lock().expect("lock").insert(id, v);
    }

    pub fn put_return(&self, v: Value) {
        let id = v["id"].as_str().expect("id").to_string();
        self.returns.lock().expect("lock").insert(id, v);
    }

    /// Amazon's JSON for one shipment, as stored (tests edit it and `put` it back).
    pub fn shipment_json(&self, id: &str) -> Result<Value> {
        self.shipments
            .lock()
            .expect("lock")
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("shipment {id}")))
    }

    fn set_status(&self, id: &str, status: &str) -> Result<()> {
        let mut map = self.shipments.lock().expect("lock");
        let s = map
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("shipment {id}")))?;
        s["status"] = status.into();
        let now = crate::shipment::sort_time(Utc::now());
        s["lastUpdatedDateTime"] = now.into();
        Ok(())
    }

    /// Pages by key, as Amazon's tokens (a last evaluated key) and the simulator's do: items in
    /// `(lastUpdatedDateTime, id)` order, the token naming the last key served, so records
    /// that leave the listing between pages (a CONFIRM moves a shipment out of ACCEPTED) make
    /// no other record skip a page.
    fn page(&self, all: Vec<Value>, token: Option<&str>) -> AmazonPage {
        let key = |v: &Value| {
            format!(
                "{}|{}",
                v["lastUpdatedDateTime"].as_str().unwrap_or(""),
                v["id"].as_str().unwrap_or("")
            )
        };
        let mut all: Vec<(String, Value)> = all.into_iter().map(|v| (key(&v), v)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.retain(|(k, _)| token.is_none_or(|t| k.as_str() > t));
        let more = all.len() > self.page_size.max(1);
        all.truncate(self.page_size.max(1));
        let next_token = more.then(|| all.last().map(|(k, _)| k.clone())).flatten();
        let broken = self.unreadable_in_pages.lock().expect("lock");
        let (unreadable, items): (Vec<Value>, Vec<Value>) = all
            .into_iter()
            .map(|(_, v)| v)
            .partition(|v| v["id"].as_str().is_some_and(|id| broken.contains(id)));
        AmazonPage {
            items,
            next_token,
            unreadable: unreadable
                .iter()
                .map(|v| Unreadable {
                    id: v["id"]
                        .as_str()
                        .filter(|id| !id.is_empty())
                        .map(str::to_string),
                    error: "missing field `lineItems`".into(),
                })
                .collect(),
        }
    }

    fn listing(&self, location: &str) -> Result<()> {
        if self
            .failing_locations
            .lock()
            .expect("lock")
            .contains(location)
        {
            return Err(Error::Transient {
                message: format!("listing {location}: Amazon answered 500"),
                after: None,
            });
        }
        Ok(())
    }

    fn read_alone(&self, id: &str) -> Result<()> {
        self.reads_alone.lock().expect("lock").push(id.to_string());
        if self.unreadable_alone.lock().expect("lock").contains(id) {
            return Err(Error::InvalidInput(format!(
                "{id}: missing field `lineItems`"
            )));
        }
        Ok(())
    }
}

fn updated(v: &Value) -> DateTime<Utc> {
    v["lastUpdatedDateTime"]
        .as_str()
        .and_then(crate::shipment::parse_amazon_time)
        .unwrap_or_default()
}

#[async_trait]
impl ShipmentsApi for MemoryAmazon {
    async fn get_shipments(&self, q: &ShipmentsQuery) -> Result<AmazonPage<Shipment>> {
        self.listing(&q.location_id)?;
        if q.pagination_token.is_some()
            && q.pagination_token == *self.refused_token.lock().expect("lock")
        {
            return Err(Error::InvalidInput(
                "Invalid input for paginationToken".into(),
            ));
        }
        let all: Vec<Value> = self
            .shipments
            .lock()
            .expect("lock")
            .values()
            .filter(|s| {
                s["status"] == q.status.as_str()
                    && s["locationId"] == q.location_id.as_str()
                    && updated(s) > q.last_updated_after
                    && q.last_updated_before.is_none_or(|b| updated(s) < b)
            })
            .cloned()
            .collect();
        // Decoded as the SP-API client decodes a page: one record at a time.
        let page = self.page(all, q.pagination_token.as_deref());
        let (items, mut unreadable) = crate::spapi::models::common::read_each(page.items);
        unreadable.extend(page.unreadable);
        Ok(AmazonPage {
            items,
            next_token: page.next_token,
            unreadable,
        })
    }

    async fn get_shipment(&self, id: &str) -> Result<Shipment> {
        self.read_alone(id)?;
        crate::shipment::decode_shipment(self.shipment_json(id)?)
    }

    async fn confirm(&self, id: &str) -> Result<()> {
        let status = self.get_shipment(id).await?.status;
        if !crate::shipment::is_new_status(&status) {
            return Err(Error::Conflict(format!("shipment {id} is {status}")));
        }
        self.confirms.lock().expect("lock").push(id.to_string());
        self.set_status(id, ShipmentStatus::Confirmed.as_str())?;
        let mut fail = self.apply_then_fail.lock().expect("lock");
        if *fail {
            *fail = false;
            return Err(Error::Transient {
                message: "500 after applying".into(),
                after: None,
            });
        }
        Ok(())
    }

    async fn reject(
        &self,
        id: &str,
        _reference_id: &str,
        _lines: &[(String, u32)],
        _reason: RejectReason,
    ) -> Result<()> {
        self.rejects.lock().expect("lock").push(id.to_string());
        self.set_status(id, ShipmentStatus::Cancelled.as_str())
    }

    async fn list_returns(&self, q: &ReturnsQuery) -> Result<AmazonPage> {
        self.listing(&q.return_location_id)?;
        let all: Vec<Value> = self
            .returns
            .lock()
            .expect("lock")
            .values()
            .filter(|r| {
                r["status"] == q.status.as_str()
                    && r["returnLocationId"] == q.return_location_id.as_str()
                    && updated(r) > q.last_updated_since
                    && q.last_updated_until.is_none_or(|b| updated(r) < b)
            })
            .cloned()
            .collect();
        Ok(self.page(all, q.next_token.as_deref()))
    }

    async fn get_return(&self, id: &str) -> Result<Value> {
        self.read_alone(id)?;
        self.returns
            .lock()
            .expect("lock")
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("return {id}")))
    }
}
