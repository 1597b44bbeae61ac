//! Reading an uploaded CSV file: the streaming reader ([`reader::UploadReader`]: encoding,
//! binary and quoting checks, the header and its dialect, rows validated on bytes), the value
//! rules ([`validate`]), the compact set of SKUs seen ([`skuset`]) and the currency codes
//! ([`currency`]).
//!
//! A crate of its own so that the `lambda` profile, which compiles most of the workspace at
//! opt-level 0 to keep `sam build` short, compiles this one at opt-level 3 (`Cargo.toml`,
//! `[profile.lambda.package.flexbridge-upload-reader]`): it is what parses every row of a
//! seller's file. `flexbridge::upload` re-exports it at its old paths.

pub mod currency;
pub mod reader;
pub mod skuset;
pub mod validate;

use serde::{Deserialize, Serialize};

/// What a file under the bucket is, from its key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Catalog,
    Prices,
    /// On-hand snapshots (`hub,sku,on_hand[,as_of]`) for the inventory sync.
    Inventory,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Catalog => "catalog",
            Kind::Prices => "prices",
            Kind::Inventory => "inventory",
        }
    }
}

/// One reason one row was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub value: String,
    pub reason: String,
}
