//! The shipment: what flexbridge stores about one of Amazon's shipments (and its returns), its
//! stages, Amazon's lifecycle and the time helpers. `orders` and `fulfilment` both build on it;
//! it imports neither of them, nor the stores.
//!
//! - `record`: `ShipmentRecord`, `LineItem`, `Compliance`, and the conversion from Amazon's view.
//! - `fulfilment`: the packing, labels and cancellation data the record carries.
//! - `stage`: our progress (`Stage`); `lifecycle`: Amazon's (`ShipmentStatus` in order).
//! - `returns`: `ReturnRecord` and its stages.
//! - `time`: how times are stored and how Amazon's are read.

pub mod fulfilment;
pub mod lifecycle;
pub mod record;
pub mod returns;
pub mod stage;
pub mod time;

pub use fulfilment::{
    CancellationState, ChosenOption, Fulfilment, JobState, Reprint, SellerCancellation, StepRecord,
    StoredDocument, StoredLabel,
};
pub use lifecycle::{
    is_confirmed_or_beyond, is_new_status, is_shipped, join_statuses, lifecycle_rank, LIFECYCLE,
};
pub use record::{decode_shipment, AmazonShipment, Compliance, LineItem, ShipmentRecord};
pub use returns::{ReturnReceipt, ReturnRecord, ReturnStage};
pub use stage::Stage;
pub use time::{parse_amazon_time, sort_time};

// Amazon's typed fields of the record, named where the record is.
pub use crate::spapi::{ShipmentChannel, ShipmentStatus, ShipmentSubStatus, ShippingType};

#[cfg(test)]
pub(crate) use record::fixtures;
