//! Listings Items 2021-08-01 (`listingsItems_2021-08-01.json`): price updates through
//! `patchListingsItem` on `/attributes/purchasable_offer`, and the read types of the model.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    lenient_opt_i64, lenient_timestamp, null_as_empty, string_enum, Decimal, Timestamp,
};

/// JSON Patch operation (sent only, so strict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchOp {
    Add,
    Replace,
    Merge,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchOperation {
    pub op: PatchOp,
    /// Only top-level attributes can be patched, e.g. `/attributes/purchasable_offer`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Vec<serde_json::Map<String, Value>>>,
}

/// patchListingsItem's body (`ListingsItemPatchRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingsPatch {
    pub product_type: String,
    pub patches: Vec<PatchOperation>,
}

/// One marketplace's price for [`ListingsPatch::prices`].
#[derive(Debug, Clone, PartialEq)]
pub struct MarketplacePrice {
    pub marketplace_id: String,
    pub currency: String,
    /// The price including tax (`our_price[].schedule[].value_with_tax`).
    pub value_with_tax: f64,
}

impl ListingsPatch {
    /// Replaces the offer price in each given marketplace (one patch, several marketplaces of a
    /// region in one call, as Amazon's "update prices for multiple marketplaces" shows).
    pub fn prices(product_type: impl Into<String>, prices: &[MarketplacePrice]) -> Self {
        let value = prices
            .iter()
            .map(|p| {
                let v = json!({
                    "marketplace_id": p.marketplace_id,
                    "currency": p.currency,
                    "our_price": [{"schedule": [{"value_with_tax": p.value_with_tax}]}],
                });
                match v {
                    Value::Object(m) => m,
                    _ => unreachable!("json! object literal"),
                }
            })
            .collect();
        Self {
            product_type: product_type.into(),
            patches: vec![PatchOperation {
                op: PatchOp::Replace,
                path: "/attributes/purchasable_offer".to_string(),
                value: Some(value),
            }],
        }
    }

    /// A single-marketplace price update.
    pub fn price(
        product_type: impl Into<String>,
        marketplace_id: impl Into<String>,
        currency: impl Into<String>,
        value_with_tax: f64,
    ) -> Self {
        Self::prices(
            product_type,
            &[MarketplacePrice {
                marketplace_id: marketplace_id.into(),
                currency: currency.into(),
                value_with_tax,
            }],
        )
    }
}

string_enum!(SubmissionStatus { Accepted = "ACCEPTED", Invalid = "INVALID", Valid = "VALID" });
string_enum!(IssueSeverity { Error = "ERROR", Warning = "WARNING", Info = "INFO" });

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub severity: IssueSeverity,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub attribute_names: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcements: Option<Value>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub marketplace_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemIdentifiersByMarketplace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asin: Option<String>,
}

/// patchListingsItem's answer. `ACCEPTED` means Amazon will still process it asynchronously.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingsItemSubmissionResponse {
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub status: SubmissionStatus,
    #[serde(default)]
    pub submission_id: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub issues: Vec<Issue>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub identifiers: Vec<ItemIdentifiersByMarketplace>,
}

impl ListingsItemSubmissionResponse {
    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues
            .iter()
            .filter(|i| i.severity == IssueSeverity::Error)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSummary {
    #[serde(default)]
    pub marketplace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub status: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fn_sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_date: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated_date: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    #[serde(default)]
    pub currency_code: String,
    #[serde(default)]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemOffer {
    #[serde(default)]
    pub marketplace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentAvailability {
    #[serde(default)]
    pub fulfillment_channel_code: String,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub quantity: Option<i64>,
}

/// A listings item (getListingsItem, searchListingsItems); attributes stay raw JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingsItem {
    pub sku: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub summaries: Vec<ItemSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub issues: Vec<Issue>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub offers: Vec<ItemOffer>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fulfillment_availability: Vec<FulfillmentAvailability>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingsPagination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<String>,
}

/// searchListingsItems' answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSearchResults {
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<ListingsPagination>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub items: Vec<ListingsItem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_patch_has_amazons_shape() {
        let p = ListingsPatch::price("PRODUCT", "ATVPDKIKX0DER", "USD", 19.99);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"productType":"PRODUCT","patches":[{"op":"replace","path":"/attributes/purchasable_offer",
              "value":[{"marketplace_id":"ATVPDKIKX0DER","currency":"USD",
                        "our_price":[{"schedule":[{"value_with_tax":19.99}]}]}]}]})
        );
    }
}
