//! External Fulfillment Returns 2024-09-11 (`externalFulfillmentReturns_2024-09-11.json`).
//! Read-only API: returns are polled (there is no return notification).

use serde::{Deserialize, Serialize};

use super::common::{
    lenient_opt_i64, lenient_timestamp, read_each, string_enum, Timestamp, Unreadable,
};

string_enum!(ReturnType { Customer = "CUSTOMER", Reject = "REJECT" });
string_enum!(ReturnSubType { Normal = "NORMAL", Replacement = "REPLACEMENT", Exchange = "EXCHANGE" });
string_enum!(PackageDeliveryMode { WithOtp = "WITH_OTP", WithoutOtp = "WITHOUT_OTP" });
string_enum!(
    /// `Return.status`.
    ReturnStatus {
        Created = "CREATED",
        CarrierNotifiedToPickUpFromCustomer = "CARRIER_NOTIFIED_TO_PICK_UP_FROM_CUSTOMER",
        CarrierOutForPickUpFromCustomer = "CARRIER_OUT_FOR_PICK_UP_FROM_CUSTOMER",
        CustomerCancelledPickUp = "CUSTOMER_CANCELLED_PICK_UP",
        CustomerRescheduledPickUp = "CUSTOMER_RESCHEDULED_PICK_UP",
        PickedFromCustomer = "PICKED_FROM_CUSTOMER",
        InTransit = "IN_TRANSIT",
        OutForDelivery = "OUT_FOR_DELIVERY",
        Delivered = "DELIVERED",
        Replanned = "REPLANNED",
        CustomerDroppedOff = "CUSTOMER_DROPPED_OFF",
        PartiallyProcessed = "PARTIALLY_PROCESSED",
        Processed = "PROCESSED",
        Rejected = "REJECTED",
        Cancelled = "CANCELLED",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingInfo {
    #[serde(default)]
    pub carrier_name: String,
    #[serde(default)]
    pub tracking_id: String,
}

/// The OTP the carrier asks for at hand-over. Not for logs.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtpDetails {
    #[serde(default)]
    pub otp: String,
    /// UNIX time.
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_till: Option<i64>,
}

impl std::fmt::Debug for OtpDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpDetails")
            .field("otp", &"<redacted>")
            .field("valid_till", &self.valid_till)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketplaceChannel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketplaceChannelDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_channel: Option<MarketplaceChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_order_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplanningDetails {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_tracking_info: Vec<TrackingInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceInformation {
    #[serde(default)]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnMetadata {
    #[serde(default)]
    pub return_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rma_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_information: Option<InvoiceInformation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnShippingInfo {
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_date_time: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub pickup_date_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_tracking_info: Option<TrackingInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_tracking_info: Option<TrackingInfo>,
}

/// A return (listReturns, getReturn).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Return {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_sku: Option<String>,
    #[serde(default)]
    pub return_type: ReturnType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_sub_type: Option<ReturnSubType>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_units: Option<i64>,
    #[serde(default)]
    pub status: ReturnStatus,
    #[serde(default)]
    pub fulfillment_location_id: String,
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_date_time: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated_date_time: Option<Timestamp>,
    #[serde(default)]
    pub return_metadata: ReturnMetadata,
    #[serde(default)]
    pub return_shipping_info: ReturnShippingInfo,
    #[serde(default)]
    pub marketplace_channel_details: MarketplaceChannelDetails,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_details: Option<OtpDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_delivery_mode: Option<PackageDeliveryMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replanning_details: Option<ReplanningDetails>,
}

/// listReturns' answer as Amazon sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnsResponse {
    #[serde(default, deserialize_with = "super::common::null_as_empty")]
    pub returns: Vec<Return>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One page of listReturns (may be empty while `next_token` is still set).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReturnsPage {
    pub returns: Vec<Return>,
    pub next_token: Option<String>,
    /// Returns of this page we could not read (already logged); read each back or raise it.
    pub unreadable: Vec<Unreadable>,
}

impl ReturnsPage {
    /// Reads listReturns' body one return at a time (one odd record cannot fail the page).
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            #[serde(default, deserialize_with = "super::common::null_as_empty")]
            returns: Vec<serde_json::Value>,
            #[serde(default)]
            next_token: Option<String>,
        }
        let raw: Raw = serde_json::from_slice(body)?;
        let (returns, unreadable) = read_each(raw.returns);
        Ok(Self {
            returns,
            next_token: raw.next_token.filter(|t| !t.is_empty()),
            unreadable,
        })
    }
}

/// listReturns' filters. `lastUpdatedSince/Until` require `returnLocationId` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListReturnsQuery {
    pub return_location_id: Option<String>,
    pub rma_id: Option<String>,
    pub status: Option<ReturnStatus>,
    pub reverse_tracking_id: Option<String>,
    pub created_since: Option<Timestamp>,
    pub created_until: Option<Timestamp>,
    pub last_updated_since: Option<Timestamp>,
    pub last_updated_until: Option<Timestamp>,
    /// 1..=100 (Amazon's default is 10).
    pub max_results: Option<u32>,
    pub next_token: Option<String>,
}
