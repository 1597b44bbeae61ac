//! What flexbridge keeps about packing, labels, invoice, shipping and seller cancellation of a
//! shipment: the data part of fulfilment, stored inside the `ShipmentRecord`. The steps that
//! fill it in are `crate::fulfilment`'s.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::spapi::{Package, TimeWindow};

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
