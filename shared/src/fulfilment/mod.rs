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

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::events::{EventName, OutboundEvent};
use crate::shipment::{is_shipped, ShipmentRecord};
use crate::spapi::ShipmentStatus;

pub use wiring::FulfilmentService;

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
    pub status: ShipmentStatus,
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
        status: if is_shipped(&r.status) {
            r.status.clone()
        } else {
            ShipmentStatus::Shipped
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
