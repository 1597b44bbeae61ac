//! External Fulfillment Shipments 2024-09-11 (`externalFulfillmentShipments_2024-09-11.json`).
//!
//! Read types default every field the model marks required but a real answer might still omit,
//! so one odd shipment cannot fail a page; `id` alone is truly required (without it nothing can
//! be done with the record). Types we send serialize exactly the model's names and skip `None`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::common::{
    lenient_opt_i64, lenient_timestamp, null_as_empty, read_each, string_enum, ApiError, Decimal,
    Timestamp, Unreadable,
};

string_enum!(
    /// `Shipment.status`.
    ShipmentStatus {
        Created = "CREATED",
        Accepted = "ACCEPTED",
        Confirmed = "CONFIRMED",
        PackageCreated = "PACKAGE_CREATED",
        PickupSlotRetrieved = "PICKUP_SLOT_RETRIEVED",
        InvoiceGenerated = "INVOICE_GENERATED",
        ShiplabelGenerated = "SHIPLABEL_GENERATED",
        Cancelled = "CANCELLED",
        Shipped = "SHIPPED",
        Delivered = "DELIVERED",
    }
);

string_enum!(
    /// `Shipment.subStatus`.
    ShipmentSubStatus {
        PendingSchedule = "PENDING_SCHEDULE",
        PendingPickup = "PENDING_PICKUP",
        PendingDropOff = "PENDING_DROP_OFF",
        LabelCanceled = "LABEL_CANCELED",
        PickedUp = "PICKED_UP",
        DroppedOff = "DROPPED_OFF",
        AtOriginFc = "AT_ORIGIN_FC",
        AtDestinationFc = "AT_DESTINATION_FC",
        Delivered = "DELIVERED",
        NotDelivered = "NOT_DELIVERED",
        Undeliverable = "UNDELIVERABLE",
        Lost = "LOST",
        OutForDelivery = "OUT_FOR_DELIVERY",
        Damaged = "DAMAGED",
    }
);

string_enum!(
    /// `MarketplaceAttributes.channelName`: Seller Flex (`FBA`) or merchant-fulfilled (`MFN`); a
    /// plain string in the model, these are the values Amazon documents.
    ShipmentChannel { Fba = "FBA", Mfn = "MFN" }
);
string_enum!(ShipmentType { New = "NEW", Exchange = "EXCHANGE", Replacement = "REPLACEMENT" });
string_enum!(Priority { High = "HIGH", Low = "LOW" });
string_enum!(ProcessingSource { ExternalPlatform = "EXTERNAL_PLATFORM", InternalPlatform = "INTERNAL_PLATFORM" });
string_enum!(PaymentMethod { CashOnDelivery = "CASH_ON_DELIVERY", Prepaid = "PREPAID" });
string_enum!(CustomChannelAttribute { Prime = "PRIME", Fasttrack = "FASTTRACK" });
string_enum!(PartyType {
    BillToParty = "BILL_TO_PARTY",
    ShipToParty = "SHIP_TO_PARTY",
    ShipFromParty = "SHIP_FROM_PARTY",
    SellingParty = "SELLING_PARTY",
});
string_enum!(TaxRegistrationType { Vat = "VAT", Gst = "GST" });
string_enum!(
    /// `PackingSlipRequirement.requirement` and `InvoiceRequirement.requirement`.
    DocumentRequirement { Required = "REQUIRED", NotRequired = "NOT_REQUIRED" }
);
string_enum!(PackingSlipStatus { Generated = "GENERATED", NotGenerated = "NOT_GENERATED" });
string_enum!(InvoiceStatus { Pending = "PENDING", Available = "AVAILABLE", NotAvailable = "NOT_AVAILABLE" });
string_enum!(
    /// `Charge.chargeType` (Amazon's own examples also use `GIFT`, kept as `Unknown`).
    ChargeType {
        Product = "PRODUCT",
        Shipping = "SHIPPING",
        GiftWrap = "GIFT_WRAP",
        Total = "TOTAL",
        Other = "OTHER",
    }
);
string_enum!(TaxType {
    Vat = "VAT",
    Cst = "CST",
    Igst = "IGST",
    Sgst = "SGST",
    Cgst = "CGST",
    Utgst = "UTGST",
    Cess = "CESS",
    Other = "OTHER",
    Total = "TOTAL",
});
string_enum!(RequirementLevel { Required = "REQUIRED", Disallowed = "DISALLOWED" });
string_enum!(PieceType { Single = "SINGLE", Multiple = "MULTIPLE" });
string_enum!(PresenceStatus { Absent = "ABSENT", Present = "PRESENT" });
string_enum!(CancellationType {
    SellerRejected = "SELLER_REJECTED",
    MarketplaceCancelled = "MARKETPLACE_CANCELLED",
    SystemCancelled = "SYSTEM_CANCELLED",
});
string_enum!(CustomAttributeType {
    String = "STRING",
    Boolean = "BOOLEAN",
    Integer = "INTEGER",
    Double = "DOUBLE",
    JsonString = "JSON_STRING",
});
string_enum!(ShippingType { Marketplace = "MARKETPLACE", SelfShip = "SELF" });
string_enum!(DistanceUnit { Mi = "MI", Km = "KM" });
string_enum!(
    /// `Package.status` / `PackageStatus` (the package's own `CANCELLED` included).
    PackageStatus {
        Created = "CREATED",
        PickupSlotRetrieved = "PICKUP_SLOT_RETRIEVED",
        InvoiceGenerated = "INVOICE_GENERATED",
        ShiplabelGenerated = "SHIPLABEL_GENERATED",
        Shipped = "SHIPPED",
        Delivered = "DELIVERED",
        Cancelled = "CANCELLED",
    }
);
string_enum!(PackageSubStatus {
    OutForDelivery = "OUT_FOR_DELIVERY",
    Delivered = "DELIVERED",
    NotDelivered = "NOT_DELIVERED",
    Undeliverable = "UNDELIVERABLE",
});
string_enum!(PackageHandlingRequirements { Normal = "NORMAL", Fragile = "FRAGILE" });
string_enum!(DimensionUnit { Cm = "CM", M = "M", In = "IN" });
string_enum!(WeightUnit { G = "G", Kg = "KG", Lb = "LB", Oz = "OZ" });
string_enum!(
    /// `ShippingOptions.shipBy`: who ships, not a date.
    ShipBy {
        Marketplace = "MARKETPLACE",
        Seller = "SELLER",
        ThirdPartyCarrier = "THIRD_PARTY_CARRIER",
        Other = "OTHER",
    }
);
string_enum!(HandoverMethod { Pickup = "PICKUP", Dropoff = "DROPOFF" });
string_enum!(DocumentFormat { Zpl = "ZPL", Pdf = "PDF", Png = "PNG", PlainText = "PLAIN_TEXT" });
string_enum!(LabelStatus { Success = "SUCCESS", Failure = "FAILURE" });

/// Why the seller rejects a line (sent only, so strict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectReason {
    OutOfStock,
    CustomerRequested,
}

/// `processShipment`'s `operation`.
#[derive(Debug, Clone, PartialEq)]
pub enum ShipmentOperation {
    Confirm,
    /// Whole-shipment rejection (Amazon does not support partial cancellation).
    Reject(ShipmentAcknowledgementRequest),
}

impl ShipmentOperation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Confirm => "CONFIRM",
            Self::Reject(_) => "REJECT",
        }
    }
}

/// `generateShipLabels`'s `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperation {
    Generate,
    /// Deliberate only: may void the previous tracking ID.
    Regenerate,
}

impl LabelOperation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Generate => "GENERATE",
            Self::Regenerate => "REGENERATE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Amount {
    #[serde(default)]
    pub value: Decimal,
    #[serde(default)]
    pub currency_code: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargeBreakup {
    #[serde(default)]
    pub base_amount: Amount,
    #[serde(default)]
    pub discount_amount: Amount,
    #[serde(default)]
    pub net_amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tax {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub tax_type: Option<TaxType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Decimal>,
    #[serde(default)]
    pub charge: ChargeBreakup,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    #[serde(default)]
    pub base_charge: ChargeBreakup,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tax_breakup: Vec<Tax>,
    #[serde(default)]
    pub charge_type: ChargeType,
    #[serde(default)]
    pub total_charge: ChargeBreakup,
    #[serde(default)]
    pub total_tax: Tax,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketplaceAttributes {
    #[serde(default)]
    pub marketplace_id: String,
    /// `FBA` or `MFN` (a plain string in this model).
    #[serde(default)]
    pub channel_name: ShipmentChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub custom_attributes: Vec<CustomChannelAttribute>,
}

/// A postal address. Buyer data: its `Debug` shows only the country.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub copy_emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geocodes: Option<Geocodes>,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("country_code", &self.country_code)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Geocodes {
    #[serde(default)]
    pub latitude: Decimal,
    #[serde(default)]
    pub longitude: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<Decimal>,
}

impl fmt::Debug for Geocodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Geocodes { <redacted> }")
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Distance {
    #[serde(default)]
    pub value: Decimal,
    #[serde(default)]
    pub distance_unit: DistanceUnit,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<Distance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Dimension {
    pub value: Decimal,
    pub dimension_unit: DimensionUnit,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Weight {
    pub value: Decimal,
    pub weight_unit: WeightUnit,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PackageDimensions {
    pub length: Dimension,
    pub width: Dimension,
    pub height: Dimension,
}

/// One line of a package: which shipment line and how many units of it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PackageLineItem {
    /// The shipment's `shipmentLineItemId`.
    pub package_line_item_id: String,
    pub quantity: i64,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub serial_numbers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_of_origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_value: Option<Amount>,
}

/// A package: sent by createPackages/updatePackage, read back in `Shipment.packages`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// Chosen by the seller, unique within the shipment.
    pub id: String,
    #[serde(default)]
    pub dimensions: PackageDimensions,
    #[serde(default)]
    pub weight: Weight,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hazmat_labels: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub package_line_items: Vec<PackageLineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PackageStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_handling_requirements: Option<PackageHandlingRequirements>,
}

/// createPackages' body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Packages {
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedPackageLineItem {
    #[serde(default)]
    pub line_item_id: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedPackage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<PackageDimensions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub line_items: Vec<RecommendedPackageLineItem>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazmat_labels_requirement: Option<RequirementLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number_requirement: Option<RequirementLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_of_origin_requirement: Option<RequirementLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_value_requirement: Option<RequirementLevel>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DocumentFormat>,
    /// Base64 content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_wrap_requirement: Option<RequirementLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_wrap_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_message_presence: Option<PresenceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_message: Option<Document>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cancelled_quantity: Option<i64>,
    /// Typed DateTime in the model, described as a UNIX timestamp: both are read.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub cancelled_timestamp: Option<Timestamp>,
    #[serde(default)]
    pub cancellation_type: CancellationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<CustomAttributeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentLineItem {
    #[serde(default)]
    pub shipment_line_item_id: String,
    #[serde(default)]
    pub merchant_sku: String,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_units: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub serial_numbers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piece_type: Option<PieceType>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hazmat_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift_attributes: Option<GiftAttributes>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub charges: Vec<Charge>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cancellations: Vec<Cancellation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsn_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_country_of_origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_of_origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_currency_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_value: Option<Amount>,
    #[serde(default)]
    pub compliance_attributes: ComplianceAttributes,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub custom_attributes: Vec<CustomAttribute>,
}

impl ShipmentLineItem {
    /// Units still to ship: ordered minus cancelled.
    pub fn open_units(&self) -> i64 {
        let cancelled: i64 = self
            .cancellations
            .iter()
            .filter_map(|c| c.cancelled_quantity)
            .sum();
        (self.number_of_units.unwrap_or(0) - cancelled).max(0)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginalLineItem {
    #[serde(default)]
    pub replacing_sku: String,
    #[serde(default)]
    pub original_sku: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub charges: Vec<Charge>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacedShipmentInfo {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub location_id: String,
    #[serde(default)]
    pub marketplace_attributes: MarketplaceAttributes,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub original_line_items: Vec<OriginalLineItem>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentInfo {
    #[serde(default)]
    pub shipment_type: ShipmentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_shipment_info: Option<ReplacedShipmentInfo>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_units: Option<i64>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub buyer_order_id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub order_states_eligible_for_rejection: Vec<ShipmentStatus>,
    /// A string in the model; Amazon's example is epoch milliseconds.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub order_placed_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_source: Option<ProcessingSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<PaymentMethod>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceInfo {
    #[serde(default)]
    pub invoice_id: String,
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_date_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxRegistrationInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub registration_type: Option<TaxRegistrationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyIdentificationInfo {
    #[serde(default)]
    pub party_id: String,
    #[serde(default)]
    pub party_type: PartyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_info: Option<TaxRegistrationInfo>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackingSlipRequirement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<DocumentRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PackingSlipStatus>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceRequirement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<DocumentRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InvoiceStatus>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentRequirements {
    #[serde(rename = "pSlip", default)]
    pub p_slip: PackingSlipRequirement,
    #[serde(default)]
    pub invoice: InvoiceRequirement,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_ship_method: Option<String>,
    /// The ship-by deadline.
    #[serde(
        rename = "expectedShippingDateTimeInUTC",
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_shipping_date_time_in_utc: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_to_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_type: Option<ShippingType>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub recommended_packages: Vec<RecommendedPackage>,
}

/// A shipment as Amazon returns it (getShipment, getShipments).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub id: String,
    #[serde(default)]
    pub location_id: String,
    #[serde(default)]
    pub marketplace_attributes: MarketplaceAttributes,
    #[serde(default)]
    pub shipment_info: ShipmentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_info: Option<InvoiceInfo>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub party_info_list: Vec<PartyIdentificationInfo>,
    #[serde(default)]
    pub shipment_requirements: ShipmentRequirements,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub charges: Vec<Charge>,
    #[serde(default)]
    pub status: ShipmentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<ShipmentSubStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub line_items: Vec<ShipmentLineItem>,
    #[serde(default)]
    pub shipping_info: ShippingInfo,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub packages: Vec<Package>,
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
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub earliest_pack_date_time: Option<Timestamp>,
}

impl Shipment {
    pub fn is_prime(&self) -> bool {
        self.marketplace_attributes
            .custom_attributes
            .contains(&CustomChannelAttribute::Prime)
    }

    /// Whether a seller REJECT is allowed in the current status.
    pub fn can_reject(&self) -> bool {
        self.shipment_info
            .order_states_eligible_for_rejection
            .contains(&self.status)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// getShipments' answer as Amazon sends it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentsResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub shipments: Vec<Shipment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

/// One page of getShipments (may be empty while `next_token` is still set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShipmentsPage {
    pub shipments: Vec<Shipment>,
    pub next_token: Option<String>,
    /// Shipments of this page we could not read (already logged). Never drop them silently:
    /// read each back with getShipment or raise an alert.
    pub unreadable: Vec<Unreadable>,
}

impl ShipmentsPage {
    /// Reads getShipments' body one shipment at a time (one odd record cannot fail the page).
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "null_as_empty")]
            shipments: Vec<serde_json::Value>,
            #[serde(default)]
            pagination: Option<Pagination>,
        }
        let raw: Raw = serde_json::from_slice(body)?;
        let (shipments, unreadable) = read_each(raw.shipments);
        Ok(Self {
            shipments,
            next_token: raw
                .pagination
                .and_then(|p| p.next_token)
                .filter(|t| !t.is_empty()),
            unreadable,
        })
    }
}

/// getShipments' filters. `status` is required (one per call).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetShipmentsQuery {
    pub status: ShipmentStatus,
    pub location_id: Option<String>,
    pub marketplace_id: Option<String>,
    pub channel_name: Option<String>,
    pub last_updated_after: Option<Timestamp>,
    pub last_updated_before: Option<Timestamp>,
    /// 1..=100.
    pub max_results: Option<u32>,
    pub pagination_token: Option<String>,
}

impl GetShipmentsQuery {
    pub fn status(status: ShipmentStatus) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LineItem {
    /// The shipment's `shipmentLineItemId`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItemWithReason {
    pub line_item: LineItem,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
}

/// processShipment's body for REJECT.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentAcknowledgementRequest {
    /// A unique identifier for every rejection (use a deterministic one, e.g. from the business key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    pub line_items: Vec<LineItemWithReason>,
}

impl ShipmentAcknowledgementRequest {
    /// Rejects every line of `shipment` for `reason`.
    pub fn reject_all(
        shipment: &Shipment,
        reference_id: impl Into<String>,
        reason: RejectReason,
    ) -> Self {
        Self {
            reference_id: Some(reference_id.into()),
            line_items: shipment
                .line_items
                .iter()
                .map(|l| LineItemWithReason {
                    line_item: LineItem {
                        id: l.shipment_line_item_id.clone(),
                        quantity: l.number_of_units,
                    },
                    reason: Some(reason),
                })
                .collect(),
        }
    }
}

/// updatePackageStatus' body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageDeliveryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PackageStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<PackageSubStatus>,
    /// At most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeWindow {
    /// Integers in the model; the unit is not documented (examples look like epoch seconds).
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_method: Option<HandoverMethod>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingOptions {
    #[serde(default)]
    pub shipping_option_id: String,
    #[serde(default)]
    pub ship_by: ShipBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_window: Option<TimeWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_slot: Option<TimeWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_location: Option<HandoverLocation>,
}

/// retrieveShippingOptions' answer (empty for Seller Flex).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingOptionsResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub shipping_options: Vec<ShippingOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_shipping_option: Option<ShippingOptions>,
}

/// generateInvoice / retrieveInvoice answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceResponse {
    #[serde(default)]
    pub document: Document,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CourierSupportedAttributes {
    pub carrier_name: String,
    pub tracking_id: String,
}

/// generateShipLabels' body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipLabelsInput {
    /// At most 50.
    pub package_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub courier_supported_attributes: Option<CourierSupportedAttributes>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipLabelMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_option_id: Option<String>,
    #[serde(default)]
    pub carrier_name: String,
    #[serde(default)]
    pub tracking_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_window: Option<TimeWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_slot: Option<TimeWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_location: Option<HandoverLocation>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentV2 {
    /// A presigned URL (expires: download it promptly).
    #[serde(default)]
    pub url: String,
}

/// One package's label (one call can partly fail: check `status`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageShipLabel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_label_metadata: Option<ShipLabelMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<DocumentV2>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LabelStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ApiError>,
}

/// generateShipLabels' answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipLabelsResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub package_ship_label_list: Vec<PackageShipLabel>,
}
