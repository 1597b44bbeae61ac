//! Amazon's shipment statuses in the order a shipment moves through them, and the questions the
//! domain asks of a status. Statuses are `ShipmentStatus` (the SP-API model's enum): a value the
//! model does not list is `Unknown` and has no place in the lifecycle.

use crate::spapi::ShipmentStatus;

/// Amazon's shipment statuses in lifecycle order ([M-S] `status`).
pub const LIFECYCLE: [ShipmentStatus; 10] = [
    ShipmentStatus::Created,
    ShipmentStatus::Accepted,
    ShipmentStatus::Confirmed,
    ShipmentStatus::PackageCreated,
    ShipmentStatus::PickupSlotRetrieved,
    ShipmentStatus::InvoiceGenerated,
    ShipmentStatus::ShiplabelGenerated,
    ShipmentStatus::Shipped,
    ShipmentStatus::Delivered,
    ShipmentStatus::Cancelled,
];

/// The place of a status in `LIFECYCLE` (`None` for a status the model does not list).
pub fn lifecycle_rank(status: &ShipmentStatus) -> Option<usize> {
    LIFECYCLE.iter().position(|s| s == status)
}

/// New work for the seller: not yet confirmed or rejected.
pub fn is_new_status(status: &ShipmentStatus) -> bool {
    matches!(status, ShipmentStatus::Accepted | ShipmentStatus::Created)
}

/// CONFIRMED or any later step (including CANCELLED: there is nothing left to confirm).
pub fn is_confirmed_or_beyond(status: &ShipmentStatus) -> bool {
    !is_new_status(status) && lifecycle_rank(status).is_some()
}

pub fn is_shipped(status: &ShipmentStatus) -> bool {
    matches!(status, ShipmentStatus::Shipped | ShipmentStatus::Delivered)
}

/// Statuses as a person reads them in a message: `ACCEPTED, CONFIRMED`.
pub fn join_statuses(statuses: &[ShipmentStatus]) -> String {
    statuses
        .iter()
        .map(ShipmentStatus::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: &str) -> ShipmentStatus {
        ShipmentStatus::from(s)
    }

    #[test]
    fn status_order() {
        assert!(is_new_status(&st("CREATED")));
        assert!(!is_confirmed_or_beyond(&st("ACCEPTED")));
        assert!(is_confirmed_or_beyond(&st("PACKAGE_CREATED")));
        assert!(is_confirmed_or_beyond(&st("CANCELLED")));
        assert!(!is_confirmed_or_beyond(&st("SOMETHING_NEW")));
        assert!(lifecycle_rank(&ShipmentStatus::Confirmed) > lifecycle_rank(&st("ACCEPTED")));
        assert_eq!(lifecycle_rank(&st("SOMETHING_NEW")), None);
    }

    #[test]
    fn the_lifecycle_lists_every_status_the_model_knows() {
        assert_eq!(LIFECYCLE.len(), ShipmentStatus::KNOWN.len());
        for raw in ShipmentStatus::KNOWN {
            assert!(lifecycle_rank(&st(raw)).is_some(), "{raw}");
        }
    }
}
