//! External Fulfillment Inventory 2024-09-11 (`externalFulfillmentInventory_2024-09-11.json`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use super::common::{lenient_opt_i64, null_as_empty, string_enum};

/// Everything but RFC 3986 unreserved characters is percent-encoded (a SKU may hold spaces,
/// `&`, `/`, `+`...).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

string_enum!(
    /// `MarketplaceAttributes.channelName` in the inventory model.
    InventoryChannel { Fba = "FBA", Mfn = "MFN", Df = "DF" }
);

/// `method` of one batched request (the docs use POST for both update and fetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// Needed only when several channels (or marketplaces) share the location ID.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryMarketplaceAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<InventoryChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRequestParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_sequence_number: Option<i64>,
    /// Absolute sellable quantity (not a delta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_attributes: Option<InventoryMarketplaceAttributes>,
}

/// One entry of a batchInventory call: build with [`InventoryRequest::update`] or
/// [`InventoryRequest::fetch`] so the URI is right and the SKU encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRequest {
    pub method: HttpMethod,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<InventoryRequestParams>,
}

fn inventory_uri(action: &str, location_id: &str, sku: &str) -> String {
    format!(
        "/inventory/{action}?locationId={}&skuId={}",
        utf8_percent_encode(location_id, QUERY_VALUE),
        utf8_percent_encode(sku, QUERY_VALUE)
    )
}

impl InventoryRequest {
    /// Sets the absolute sellable quantity of `sku` at `location_id`. `client_sequence_number`
    /// must grow per (location, sku) so a stale retry cannot overwrite a newer quantity.
    pub fn update(
        location_id: &str,
        sku: &str,
        quantity: i64,
        client_sequence_number: i64,
        marketplace: Option<InventoryMarketplaceAttributes>,
    ) -> Self {
        Self {
            method: HttpMethod::Post,
            uri: inventory_uri("update", location_id, sku),
            body: Some(InventoryRequestParams {
                client_sequence_number: Some(client_sequence_number),
                quantity: Some(quantity),
                marketplace_attributes: marketplace,
            }),
        }
    }

    /// Reads what Amazon holds for `sku` at `location_id`.
    pub fn fetch(
        location_id: &str,
        sku: &str,
        marketplace: Option<InventoryMarketplaceAttributes>,
    ) -> Self {
        Self {
            method: HttpMethod::Post,
            uri: inventory_uri("fetch", location_id, sku),
            body: marketplace.map(|m| InventoryRequestParams {
                marketplace_attributes: Some(m),
                ..Default::default()
            }),
        }
    }
}

/// batchInventory's body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInventoryRequest {
    pub requests: Vec<InventoryRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpStatusLine {
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub status_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_phrase: Option<String>,
}

/// A per-item problem. Amazon's examples disagree on which field holds what, so both are kept
/// as strings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionableError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_sub_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryResponseBody {
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_sequence_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub sellable_quantity: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub reserved_quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_attributes: Option<InventoryMarketplaceAttributes>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub actionable_errors: Vec<ActionableError>,
}

/// The result of one batched request (`InventoryResponse` in the model).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItemResult {
    #[serde(default)]
    pub status: HttpStatusLine,
    #[serde(default)]
    pub body: InventoryResponseBody,
}

impl InventoryItemResult {
    /// 2xx for this item and no actionable error.
    pub fn is_success(&self) -> bool {
        matches!(self.status.status_code, Some(200..=299)) && self.body.actionable_errors.is_empty()
    }

    /// Whether Amazon now holds the update sent with `client_sequence_number` or a newer one:
    /// true on success, and also when a resend of an update that was already applied (after a
    /// 5xx or timeout) is refused as stale, since Amazon's sequence number is then ours or later.
    pub fn is_up_to_date(&self, client_sequence_number: i64) -> bool {
        self.is_success()
            || self
                .body
                .client_sequence_number
                .is_some_and(|held| held >= client_sequence_number)
    }

    /// Whether sending the same item again later can help (throttled or Amazon-side failure).
    pub fn is_retryable(&self) -> bool {
        matches!(self.status.status_code, Some(429 | 500..=599))
    }
}

/// batchInventory's answer (HTTP 207).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInventoryResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub responses: Vec<InventoryItemResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_is_url_encoded_in_the_uri() {
        let r = InventoryRequest::update("EXSB", "blue shirt/XL&1+2", 5, 7, None);
        assert_eq!(
            r.uri,
            "/inventory/update?locationId=EXSB&skuId=blue%20shirt%2FXL%261%2B2"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"method":"POST","uri":r.uri,"body":{"clientSequenceNumber":7,"quantity":5}})
        );
    }
}
