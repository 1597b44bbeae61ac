//! Fulfilment: from packed to picked up.
//!
//! ```text
//! warehouse: packed ─► validate against the stored shipment (4xx, nothing written) ─► stage packed
//!   ─► LabelsQueue job ─► createPackages | updatePackage ─► retrieveShippingOptions (MFN)
//!   ─► generateInvoice (when REQUIRED; a seller-uploaded invoice instead when allowed)
//!   ─► generateShipLabels GENERATE ─► download each label ─► S3 labels/<location>/<shipment>/
//!   ─► tracking, carrier, pickup window in the record ─► LabelReady (presigned links) ─► labelled
//! warehouse: shipped ─► updatePackageStatus SHIPPED per package ─► reservation released ─► ShipmentShipped
//! warehouse: cancel ─► CancellationsQueue ─► processShipment REJECT (eligible statuses only) ─► ShipmentCancelled (seller)
//! order poller: a label job or cancellation saved as queued but never sent ─► sent again (promises.rs)
//! ```
//!
//! Every step of the label job is recorded in the shipment record (`Fulfilment`), so a
//! redelivered or retried job resumes at the first step not done. Every call with an effect at
//! Amazon goes through the idempotency helper; an unknown outcome (a 5xx after sending, a
//! timeout, a 409 "already done", a retaken claim) is resolved by reading the shipment back.

pub mod api;
pub mod cancel;
pub mod packing;
pub mod policy;
pub mod ports;
pub mod promises;
pub mod shipby;
pub mod wiring;
pub mod worker;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::events::{EventName, OutboundEvent};
use crate::orders::ShipmentRecord;
use crate::spapi::{Package, TimeWindow};

pub use wiring::FulfilmentService;

/// What flexbridge keeps about packing, labels, invoice, shipping and seller cancellation of a
/// shipment (inside its `ShipmentRecord`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fulfilment {
    /// Bumped by each accepted packing that changes the packages; a job for an older one stops.
    pub pack_version: u32,
    /// The packages as the warehouse packed them (validated).
    pub packages: Vec<Package>,
    /// The `pack_version` whose packages Amazon has (createPackages / updatePackage done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_at_amazon: Option<u32>,
    /// Chosen shipping option per package (MFN only).
    #[serde(default)]
    pub shipping_options: BTreeMap<String, ChosenOption>,
    /// The invoice stored for this pack (Amazon's or the seller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<StoredDocument>,
    /// An invoice the seller uploaded (used instead of generating one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_invoice: Option<StoredDocument>,
    /// Label per package id.
    #[serde(default)]
    pub labels: BTreeMap<String, StoredLabel>,
    /// A person asked for new labels (REGENERATE): the packages and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprint: Option<Reprint>,
    /// Every reprint ever asked for (audit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprints: Vec<Reprint>,
    /// `LabelReady` sent for the current labels.
    #[serde(default)]
    pub label_ready_sent: bool,
    #[serde(default)]
    pub job: JobState,
    /// Every step done, in order (the job's record).
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation: Option<SellerCancellation>,
    /// The ship-by alert was raised (it is raised once).
    #[serde(default)]
    pub ship_by_alerted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum JobState {
    /// No label job (not packed yet).
    #[default]
    None,
    /// On the labels queue (or being worked on).
    Queued,
    /// Labels stored and announced.
    Done,
    /// Stopped for good at a step boundary (cancelled, superseded): `reason` says why.
    Stopped { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChosenOption {
    pub shipping_option_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_window: Option<TimeWindow>,
    /// The policy that chose it (`recommended`, `cheapest`, `earliest_pickup`).
    pub policy: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDocument {
    /// S3 key under `labels/`.
    pub key: String,
    pub content_type: String,
    /// `amazon` or `seller`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredLabel {
    pub tracking_id: String,
    pub carrier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_option_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_window: Option<TimeWindow>,
    /// Amazon's presigned URL (expires; downloaded at once).
    pub url: String,
    /// Which label of this package this is (1 = first GENERATE, +1 per REGENERATE).
    pub generation: u32,
    /// Where the file is, once downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reprint {
    pub package_ids: Vec<String>,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    /// Its own number, part of the idempotency key of the REGENERATE.
    pub number: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub step: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The seller's (warehouse's) request to cancel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SellerCancellation {
    /// The REJECT's unique `referenceId`.
    pub reference_id: String,
    /// OUT_OF_STOCK or CUSTOMER_REQUESTED.
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub state: CancellationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationState {
    /// On the cancellations queue.
    Queued,
    /// Amazon accepted the REJECT.
    Rejected,
    /// Auto-cancel is off for the location: kept here, held for a person.
    LocalOnly,
    /// Amazon no longer allowed it (status not eligible by the time it was sent).
    Refused,
}

impl Fulfilment {
    pub fn record_step(&mut self, step: &str, note: Option<String>) {
        self.steps.push(StepRecord {
            step: step.to_string(),
            at: Utc::now(),
            note,
        });
    }
}

impl ShipmentRecord {
    pub fn fulfilment(&self) -> Fulfilment {
        self.fulfilment.clone().unwrap_or_default()
    }
}

/// The label job's message (LabelsQueue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelJob {
    pub shipment_id: String,
    pub pack_version: u32,
    /// The shipment's correlation ID, so the label worker logs under the same ID as the
    /// poller that stored it (absent in jobs queued before it existed: read from the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// The cancellation's message (CancellationsQueue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelJob {
    pub shipment_id: String,
    pub reference_id: String,
}

/// `ShipmentShipped` detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentShippedDetail {
    pub shipment_id: String,
    pub hub: String,
    pub location_id: String,
    /// Amazon's status when we learnt it (SHIPPED or DELIVERED).
    pub status: String,
    pub packages: Vec<ShippedPackage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippedPackage {
    pub package_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
}

/// `ShipmentShipped` for a shipment (one per shipment: the ID is the shipment's).
pub fn shipped_event(r: &ShipmentRecord, hub: &str) -> Result<OutboundEvent> {
    let f = r.fulfilment();
    let detail = ShipmentShippedDetail {
        shipment_id: r.id.clone(),
        hub: hub.to_string(),
        location_id: r.location_id.clone(),
        status: if crate::orders::model::is_shipped(&r.status) {
            r.status.clone()
        } else {
            "SHIPPED".into()
        },
        packages: f
            .packages
            .iter()
            .map(|p| ShippedPackage {
                package_id: p.id.clone(),
                tracking_id: f.labels.get(&p.id).map(|l| l.tracking_id.clone()),
                carrier: f.labels.get(&p.id).map(|l| l.carrier.clone()),
            })
            .collect(),
    };
    OutboundEvent::new(EventName::ShipmentShipped, &r.id, Utc::now(), detail)
}
