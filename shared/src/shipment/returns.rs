//! What flexbridge keeps about a return: Amazon's view plus our progress markers. A return is
//! the after-life of a shipment (it names the shipment it came from, is stored beside it and
//! shares its time helpers), so it lives here rather than in a module of its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::parse_amazon_time;
use crate::error::{Error, Result};

/// Our progress with a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStage {
    /// Known from Amazon; the warehouse has been told (or will be).
    Open,
    /// The warehouse reported it received; sellable units credited back.
    Closed,
    /// Amazon's data for it could not be read, not even alone with getReturn: listed for a
    /// person; it goes back to where it was once a readable view arrives.
    Unreadable,
}

impl ReturnStage {
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStage::Open => "open",
            ReturnStage::Closed => "closed",
            ReturnStage::Unreadable => "unreadable",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "open" => Ok(ReturnStage::Open),
            "closed" => Ok(ReturnStage::Closed),
            "unreadable" => Ok(ReturnStage::Unreadable),
            other => Err(Error::InvalidInput(format!(
                "unknown return stage {other:?}; expected open, closed or unreadable"
            ))),
        }
    }
}

/// Units the warehouse found when the return arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnReceipt {
    pub sellable: u32,
    pub unsellable: u32,
}

/// A return as flexbridge stores it (one SKU per return, as Amazon models it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnRecord {
    pub id: String,
    pub return_location_id: String,
    pub fulfillment_location_id: Option<String>,
    pub sku: Option<String>,
    pub units: u32,
    /// Amazon's status.
    pub status: String,
    pub return_type: Option<String>,
    pub return_reason: Option<String>,
    pub rma_id: Option<String>,
    pub shipment_id: Option<String>,
    pub amazon_updated_at: DateTime<Utc>,
    // Progress markers.
    pub stage: ReturnStage,
    /// The last status the warehouse was told about.
    pub announced_status: Option<String>,
    pub receipt: Option<ReturnReceipt>,
    pub first_seen_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    #[serde(default)]
    pub version: u64,
    /// Stage `unreadable`: why Amazon's data could not be read (field names only, no values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Stage `unreadable`: the stage to go back to once readable (`None`: never handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_from: Option<ReturnStage>,
}

impl ReturnRecord {
    /// A return known only by its id (seen in a page but unreadable): stage `unreadable`,
    /// Amazon's time at the epoch so that any readable view replaces it.
    pub fn unreadable_placeholder(
        id: &str,
        return_location_id: &str,
        status: &str,
        error: &str,
    ) -> Self {
        let now = Utc::now();
        ReturnRecord {
            id: id.to_string(),
            return_location_id: return_location_id.to_string(),
            fulfillment_location_id: None,
            sku: None,
            units: 0,
            status: status.to_string(),
            return_type: None,
            return_reason: None,
            rma_id: None,
            shipment_id: None,
            amazon_updated_at: DateTime::<Utc>::UNIX_EPOCH,
            stage: ReturnStage::Unreadable,
            announced_status: None,
            receipt: None,
            first_seen_at: now,
            changed_at: now,
            version: 0,
            unreadable: Some(error.to_string()),
            quarantined_from: None,
        }
    }

    pub fn from_json(v: &Value) -> Result<Self> {
        let id = s(v, &["id"]).ok_or_else(|| Error::InvalidInput("return without id".into()))?;
        let bad = |what: &str| Error::InvalidInput(format!("return {id}: {what}"));
        let return_location_id = s(v, &["returnLocationId"])
            .or_else(|| s(v, &["marketplaceChannelDetails", "returnLocationId"]))
            .ok_or_else(|| bad("no returnLocationId"))?;
        let status = s(v, &["status"]).ok_or_else(|| bad("no status"))?;
        let raw = s(v, &["lastUpdatedDateTime"]).ok_or_else(|| bad("no lastUpdatedDateTime"))?;
        let amazon_updated_at = parse_amazon_time(&raw)
            .ok_or_else(|| bad(&format!("unreadable lastUpdatedDateTime {raw:?}")))?;
        let now = Utc::now();
        Ok(Self {
            return_location_id,
            fulfillment_location_id: s(v, &["fulfillmentLocationId"]),
            sku: s(v, &["merchantSku"]),
            units: u(v, &["numberOfUnits"]).unwrap_or(1),
            status,
            return_type: s(v, &["returnType"]),
            return_reason: s(v, &["returnMetadata", "returnReason"]),
            rma_id: s(v, &["returnMetadata", "rmaId"]),
            shipment_id: s(v, &["marketplaceChannelDetails", "shipmentId"]),
            amazon_updated_at,
            stage: ReturnStage::Open,
            announced_status: None,
            receipt: None,
            first_seen_at: now,
            changed_at: now,
            version: 0,
            unreadable: None,
            quarantined_from: None,
            id,
        })
    }

    /// Takes Amazon's newer view, keeping our progress markers.
    pub fn absorb(&mut self, newer: &ReturnRecord) {
        let keep = self.clone();
        *self = newer.clone();
        self.stage = keep.stage;
        self.announced_status = keep.announced_status;
        self.receipt = keep.receipt;
        self.first_seen_at = keep.first_seen_at;
        self.changed_at = keep.changed_at;
        self.version = keep.version;
    }
}

fn s(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn u(v: &Value, path: &[&str]) -> Option<u32> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_u64()
        .or_else(|| cur.as_str().and_then(|s| s.parse().ok()))
        .map(|n| n as u32)
}
