//! Our progress with a shipment (as opposed to Amazon's status, `ShipmentStatus`).

use serde::{Deserialize, Serialize};

use super::lifecycle::{is_confirmed_or_beyond, is_shipped};
use crate::error::{Error, Result};
use crate::spapi::ShipmentStatus;

/// Our progress with a shipment. Stored as the `by_stage` index's partition so the warehouse can list by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Stored; rules not yet applied (or their outcome not yet acted on).
    Received,
    /// A rule asked a person to decide (release or reject through the warehouse API).
    Held,
    /// CONFIRM done at Amazon; reservation and hand-over pending.
    Confirmed,
    /// The warehouse has the shipment (`ShipmentAccepted` published, units reserved).
    HandedOver,
    /// We rejected it at Amazon.
    Rejected,
    /// Amazon cancelled the whole shipment.
    Cancelled,
    /// The warehouse reported it packed; the label job (LabelsQueue) is queued or running.
    Packed,
    /// Labels (and the invoice, where required) are stored and `LabelReady` was sent.
    Labelled,
    /// Shipped or delivered; reservation released.
    Shipped,
    /// Amazon's data for it could not be read, not even alone with getShipment: nothing is done
    /// with it until a readable view arrives (then it goes back to where it was). Listed so a
    /// person can check it in Seller Central.
    Unreadable,
    /// Another connector had confirmed it before flexbridge first saw it, and the setting
    /// `orders_adopt_existing` says to leave such shipments alone: stored and kept current,
    /// never acted on or handed to the warehouse.
    LeftAlone,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::Received,
        Stage::Held,
        Stage::Confirmed,
        Stage::HandedOver,
        Stage::Packed,
        Stage::Labelled,
        Stage::Rejected,
        Stage::Cancelled,
        Stage::Shipped,
        Stage::Unreadable,
        Stage::LeftAlone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Held => "held",
            Stage::Confirmed => "confirmed",
            Stage::HandedOver => "handed_over",
            Stage::Packed => "packed",
            Stage::Labelled => "labelled",
            Stage::Rejected => "rejected",
            Stage::Cancelled => "cancelled",
            Stage::Shipped => "shipped",
            Stage::Unreadable => "unreadable",
            Stage::LeftAlone => "left_alone",
        }
    }

    pub fn parse(s: &str) -> Result<Stage> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown shipment stage {s:?}; expected one of {}",
                    Stage::ALL.map(|s| s.as_str()).join(", ")
                ))
            })
    }

    /// Stages where work is still owed (the sweep drives them again).
    pub fn is_unsettled(self) -> bool {
        matches!(self, Stage::Received | Stage::Confirmed)
    }

    /// Where a shipment we have never handled starts, by Amazon's status.
    pub fn first_for(status: &ShipmentStatus) -> Stage {
        if *status == ShipmentStatus::Cancelled {
            Stage::Cancelled
        } else if is_shipped(status) {
            Stage::Shipped
        } else if is_confirmed_or_beyond(status) {
            Stage::Confirmed
        } else {
            Stage::Received
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_by_name_and_first_stage_follows_amazon() {
        assert_eq!(Stage::parse("HELD").unwrap(), Stage::Held);
        assert!(Stage::parse("x").is_err());
        assert_eq!(
            Stage::first_for(&ShipmentStatus::Cancelled),
            Stage::Cancelled
        );
        assert_eq!(Stage::first_for(&ShipmentStatus::Delivered), Stage::Shipped);
        assert_eq!(
            Stage::first_for(&ShipmentStatus::PackageCreated),
            Stage::Confirmed
        );
        assert_eq!(Stage::first_for(&ShipmentStatus::Accepted), Stage::Received);
        assert_eq!(Stage::first_for(&"SOMETHING_NEW".into()), Stage::Received);
    }
}
