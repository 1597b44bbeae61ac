//! Typed request and response bodies of the SP-API operations flexbridge uses, one module per
//! official model file. Reading is tolerant (unknown enum values and fields, lenient dates);
//! writing is strict (exact field names, `None` omitted). `tests/tests/model_conformance.rs`
//! checks both against the models.

pub mod common;
pub mod inventory;
pub mod listings;
pub mod notifications;
pub mod returns;
pub mod shipments;

pub use common::{ApiError, Decimal, ErrorList, Timestamp, Unreadable};
pub use inventory::*;
pub use listings::*;
pub use notifications::*;
pub use returns::*;
pub use shipments::*;
