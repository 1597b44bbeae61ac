//! Prices: what happens to a price once an upload's row is accepted. The price queue's message
//! ([`PriceUpdate`]), the pusher that sends it to Amazon in upload order ([`push`]), and
//! Amazon's answers and the report they end in ([`answers`]). Price files coming in (reading,
//! the guardrails, queueing) are [`crate::upload`]'s.

pub mod answers;
pub mod push;

use serde::{Deserialize, Serialize};

use crate::upload::UploadRef;

/// One accepted price row on its way to Amazon (the price queue's message body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceUpdate {
    /// `key@version` of the price file.
    pub upload: String,
    /// The price file's key and version (where its answers are counted).
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub version_id: String,
    /// The price file's [`UploadOrder`]: sent and stored only if newer than the last price
    /// applied for the SKU and marketplace. (A message without one is older than any.)
    #[serde(default)]
    pub order: String,
    pub line: u64,
    pub sku: String,
    pub asin: String,
    pub product_type: String,
    pub marketplace_id: String,
    pub currency: String,
    /// Hundredths of the currency unit.
    pub price: i64,
}

impl PriceUpdate {
    /// The business key that makes a redelivered message harmless.
    pub fn idempotency_key(&self) -> String {
        crate::idempotency::ActionKey::Price {
            upload: &self.upload,
            sku: &self.sku,
            marketplace_id: &self.marketplace_id,
        }
        .to_string()
    }

    /// The price file this row came from.
    pub fn upload_ref(&self) -> UploadRef {
        UploadRef::new(self.key.clone(), self.version_id.clone())
    }
}
