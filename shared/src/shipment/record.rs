//! What flexbridge keeps about a shipment: Amazon's view (converted from the SP-API client's
//! typed `Shipment`) plus our own progress markers.
//!
//! The processor works by convergence: Amazon's fields say what is true, the progress markers say
//! what we have already done about it (confirmed, reserved, told the warehouse). Every step moves
//! one marker towards the truth and is safe to repeat, so a crash anywhere is healed by the next
//! poll, notification or sweep.
//!
//! Buyer addresses are never read into these types, so they cannot reach the store, events or logs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fulfilment::Fulfilment;
use super::lifecycle::lifecycle_rank;
use super::stage::Stage;
use crate::error::{Error, Result};
use crate::spapi::{
    Charge, DocumentRequirement, PresenceStatus, RequirementLevel, Shipment, ShipmentChannel,
    ShipmentStatus, ShipmentSubStatus, ShippingType, Timestamp,
};

/// One line of a shipment, as the warehouse needs it to pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub id: String,
    pub sku: String,
    pub units: u32,
    /// Units Amazon cancelled (sum of the line's `cancellations[].cancelledQuantity`).
    pub cancelled_units: u32,
    pub gift_wrap: bool,
    pub gift_message: bool,
    pub serial_numbers_required: bool,
    /// `complianceAttributes`: what each packed unit of this line must (or must not) carry.
    #[serde(default)]
    pub compliance: Compliance,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hazmat_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charges: Vec<Charge>,
    /// Amazon's `cancellationType` (and `cancellationReason`) of the line's latest cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// Units the warehouse has been told are cancelled (progress marker).
    #[serde(default)]
    pub announced_cancelled_units: u32,
}

/// A line's `complianceAttributes` (REQUIRED → `Some(true)`, DISALLOWED → `Some(false)`,
/// absent → `None`: either is accepted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compliance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_numbers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_of_origin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_value: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazmat_labels: Option<bool>,
}

impl LineItem {
    /// Units still to pick.
    pub fn open_units(&self) -> u32 {
        self.units.saturating_sub(self.cancelled_units)
    }
}

/// A shipment as flexbridge stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentRecord {
    pub id: String,
    pub location_id: String,
    pub marketplace_id: String,
    pub channel: ShipmentChannel,
    pub shipping_type: Option<ShippingType>,
    /// Amazon's status.
    pub status: ShipmentStatus,
    pub sub_status: Option<ShipmentSubStatus>,
    pub priority: Option<String>,
    pub prime: bool,
    #[serde(default)]
    pub custom_attributes: Vec<String>,
    pub shipment_type: Option<String>,
    pub buyer_order_id: Option<String>,
    #[serde(default)]
    pub eligible_for_rejection: Vec<ShipmentStatus>,
    /// `shippingInfo.expectedShippingDateTimeInUTC`: the ship-by deadline.
    pub ship_by: Option<String>,
    pub earliest_pack_at: Option<String>,
    pub number_of_units: u32,
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub charges: Vec<Charge>,
    pub created_at_amazon: Option<DateTime<Utc>>,
    /// Amazon's `lastUpdatedDateTime`: a notification or page older than this changes nothing.
    pub amazon_updated_at: DateTime<Utc>,

    // Progress markers (ours).
    pub stage: Stage,
    #[serde(default)]
    pub hold_reasons: Vec<String>,
    /// A person released the hold: confirm without applying hold rules again.
    #[serde(default)]
    pub released: bool,
    pub rejection_reason: Option<String>,
    pub handed_over_at: Option<DateTime<Utc>>,
    /// Set once the reservation matches the open units of a settled shipment.
    #[serde(default)]
    pub reservation_released: bool,
    pub first_seen_at: DateTime<Utc>,
    /// When we last changed this record (the `by_stage` sort key, "list by stage and time").
    pub changed_at: DateTime<Utc>,
    /// Optimistic-concurrency version; 0 = never stored.
    #[serde(default)]
    pub version: u64,
    /// Stage `unreadable`: why Amazon's data could not be read (field names only, no values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Stage `unreadable`: the stage to go back to once readable (`None`: never handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_from: Option<Stage>,
    /// `shipmentRequirements.invoice.requirement` is REQUIRED.
    #[serde(default)]
    pub invoice_required: bool,
    /// Packing, labels, invoice, shipping and seller cancellation (ours; see `fulfilment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilment: Option<Fulfilment>,
    /// Follows the shipment through every log line about it, from the poll that first stored
    /// it to its labels (`crate::telemetry::correlation_id`). Set once, when first stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Amazon's status when flexbridge first saw the shipment, if another connector had already
    /// confirmed it (a seller moving to flexbridge): we never confirm it, and if it was packed
    /// there we never pack it (`Self::packed_elsewhere`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_elsewhere: Option<ShipmentStatus>,
}

/// Amazon's view of a shipment, taken from the SP-API client's typed `Shipment`: the one tolerant
/// decode (unknown enum values kept, lenient dates and numbers, unknown fields ignored) happens in
/// the client; this is a plain conversion that checks what flexbridge cannot do without. The
/// ship-to address is deliberately not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct AmazonShipment {
    pub record: ShipmentRecord,
}

/// An enum value as a string, `None` when Amazon sent nothing.
fn named(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn units(n: Option<i64>) -> u32 {
    n.unwrap_or(0).clamp(0, u32::MAX as i64) as u32
}

impl AmazonShipment {
    pub fn from_shipment(v: &Shipment) -> Result<Self> {
        let id = named(&v.id).ok_or_else(|| Error::InvalidInput("shipment without id".into()))?;
        let bad = |what: &str| Error::InvalidInput(format!("shipment {id}: {what}"));
        let location_id = named(&v.location_id).ok_or_else(|| bad("no locationId"))?;
        let status = Some(v.status.clone())
            .filter(|s| !s.as_str().is_empty())
            .ok_or_else(|| bad("no status"))?;
        let amazon_updated_at = v
            .last_updated_date_time
            .as_ref()
            .map(|t| t.0)
            .ok_or_else(|| bad("no readable lastUpdatedDateTime"))?;
        let custom_attributes: Vec<String> = v
            .marketplace_attributes
            .custom_attributes
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        let mut line_items = Vec::with_capacity(v.line_items.len());
        for li in &v.line_items {
            let line_id = named(&li.shipment_line_item_id)
                .ok_or_else(|| bad("line without shipmentLineItemId"))?;
            let sku = named(&li.merchant_sku)
                .ok_or_else(|| bad(&format!("line {line_id} without merchantSku")))?;
            let units_ordered = units(li.number_of_units);
            let cancelled_units: u32 = li
                .cancellations
                .iter()
                .map(|c| units(c.cancelled_quantity))
                .sum();
            let cancellation_reason = li.cancellations.last().and_then(|c| {
                let kind = named(c.cancellation_type.as_str())?;
                Some(match &c.cancellation_reason {
                    Some(why) => format!("{kind}: {why}"),
                    None => kind,
                })
            });
            let gift = li.gift_attributes.as_ref();
            line_items.push(LineItem {
                id: line_id,
                sku,
                units: units_ordered,
                cancelled_units: cancelled_units.min(units_ordered),
                gift_wrap: gift.and_then(|g| g.gift_wrap_requirement.as_ref())
                    == Some(&RequirementLevel::Required),
                gift_message: gift.and_then(|g| g.gift_message_presence.as_ref())
                    == Some(&PresenceStatus::Present),
                serial_numbers_required: li.compliance_attributes.serial_number_requirement
                    == Some(RequirementLevel::Required),
                compliance: {
                    let c = &li.compliance_attributes;
                    let req = |level: &Option<RequirementLevel>| match level {
                        Some(RequirementLevel::Required) => Some(true),
                        Some(RequirementLevel::Disallowed) => Some(false),
                        _ => None,
                    };
                    Compliance {
                        serial_numbers: req(&c.serial_number_requirement),
                        country_of_origin: req(&c.country_of_origin_requirement),
                        item_value: req(&c.item_value_requirement),
                        hazmat_labels: req(&c.hazmat_labels_requirement),
                    }
                },
                hazmat_labels: li.hazmat_labels.clone(),
                charges: li.charges.clone(),
                cancellation_reason,
                announced_cancelled_units: 0,
            });
        }
        let info = &v.shipment_info;
        let now = Utc::now();
        Ok(Self {
            record: ShipmentRecord {
                id,
                location_id,
                marketplace_id: v.marketplace_attributes.marketplace_id.clone(),
                channel: v.marketplace_attributes.channel_name.clone(),
                shipping_type: v
                    .shipping_info
                    .shipping_type
                    .clone()
                    .filter(|t| !t.as_str().is_empty()),
                status,
                sub_status: v.sub_status.clone().filter(|s| !s.as_str().is_empty()),
                priority: named(info.priority.as_str()),
                prime: v.is_prime(),
                custom_attributes,
                shipment_type: named(info.shipment_type.as_str()),
                buyer_order_id: named(&info.buyer_order_id),
                eligible_for_rejection: info.order_states_eligible_for_rejection.clone(),
                ship_by: v
                    .shipping_info
                    .expected_shipping_date_time_in_utc
                    .as_ref()
                    .map(Timestamp::to_rfc3339),
                earliest_pack_at: v
                    .earliest_pack_date_time
                    .as_ref()
                    .map(Timestamp::to_rfc3339),
                number_of_units: info
                    .number_of_units
                    .map(|n| units(Some(n)))
                    .unwrap_or_else(|| line_items.iter().map(|l| l.units).sum()),
                line_items,
                charges: v.charges.clone(),
                created_at_amazon: v.creation_date_time.as_ref().map(|t| t.0),
                amazon_updated_at,
                stage: Stage::Received,
                hold_reasons: Vec::new(),
                released: false,
                rejection_reason: None,
                handed_over_at: None,
                reservation_released: false,
                first_seen_at: now,
                changed_at: now,
                version: 0,
                unreadable: None,
                quarantined_from: None,
                handled_elsewhere: None,
                invoice_required: v.shipment_requirements.invoice.requirement.as_ref()
                    == Some(&DocumentRequirement::Required),
                fulfilment: None,
                correlation_id: None,
            },
        })
    }

    /// Decodes a getShipment(s) JSON object with the client's own decoder, then converts it
    /// (in-memory twins and fixtures hold Amazon's JSON).
    pub fn from_json(v: &Value) -> Result<Self> {
        Self::from_shipment(&decode_shipment(v.clone())?)
    }
}

/// Amazon's JSON for one shipment read exactly as the SP-API client reads it.
pub fn decode_shipment(v: Value) -> Result<Shipment> {
    serde_json::from_value(v).map_err(|e| Error::InvalidInput(format!("shipment: {e}")))
}

impl ShipmentRecord {
    /// Another connector created its packages (it was past CONFIRMED when first seen): packing
    /// it here would create a second set at Amazon.
    pub fn packed_elsewhere(&self) -> bool {
        self.handled_elsewhere
            .as_ref()
            .is_some_and(|s| *s != ShipmentStatus::Confirmed)
    }

    /// A shipment known only by its id (seen in a page but unreadable): stage `unreadable`,
    /// Amazon's time at the epoch so that any readable view replaces it.
    pub fn unreadable_placeholder(
        id: &str,
        location_id: &str,
        status: &ShipmentStatus,
        error: &str,
    ) -> Self {
        let now = Utc::now();
        ShipmentRecord {
            id: id.to_string(),
            location_id: location_id.to_string(),
            marketplace_id: String::new(),
            channel: ShipmentChannel::default(),
            shipping_type: None,
            status: status.clone(),
            sub_status: None,
            priority: None,
            prime: false,
            custom_attributes: Vec::new(),
            shipment_type: None,
            buyer_order_id: None,
            eligible_for_rejection: Vec::new(),
            ship_by: None,
            earliest_pack_at: None,
            number_of_units: 0,
            line_items: Vec::new(),
            charges: Vec::new(),
            created_at_amazon: None,
            amazon_updated_at: DateTime::<Utc>::UNIX_EPOCH,
            stage: Stage::Unreadable,
            hold_reasons: Vec::new(),
            released: false,
            rejection_reason: None,
            handed_over_at: None,
            reservation_released: false,
            first_seen_at: now,
            changed_at: now,
            version: 0,
            unreadable: Some(error.to_string()),
            quarantined_from: None,
            handled_elsewhere: None,
            invoice_required: false,
            fulfilment: None,
            correlation_id: None,
        }
    }

    /// Takes Amazon's newer view, keeping our progress markers.
    pub fn absorb(&mut self, newer: &ShipmentRecord) {
        let markers: Vec<(String, u32)> = self
            .line_items
            .iter()
            .map(|l| (l.id.clone(), l.announced_cancelled_units))
            .collect();
        let keep = self.clone();
        *self = newer.clone();
        self.stage = keep.stage;
        self.hold_reasons = keep.hold_reasons;
        self.released = keep.released;
        self.rejection_reason = keep.rejection_reason;
        self.handed_over_at = keep.handed_over_at;
        self.reservation_released = keep.reservation_released;
        self.first_seen_at = keep.first_seen_at;
        self.changed_at = keep.changed_at;
        self.version = keep.version;
        self.fulfilment = keep.fulfilment;
        self.correlation_id = keep.correlation_id;
        for line in &mut self.line_items {
            if let Some((_, announced)) = markers.iter().find(|(id, _)| *id == line.id) {
                line.announced_cancelled_units = *announced;
            }
        }
    }

    /// Merges a view with the same `lastUpdatedDateTime`: the later lifecycle status and the
    /// larger cancelled quantities win. Returns whether anything changed.
    pub fn absorb_same_time(&mut self, other: &ShipmentRecord) -> bool {
        let mut changed = false;
        if lifecycle_rank(&other.status) > lifecycle_rank(&self.status) {
            self.status = other.status.clone();
            self.sub_status = other.sub_status.clone();
            changed = true;
        }
        for line in &mut self.line_items {
            if let Some(o) = other.line_items.iter().find(|o| o.id == line.id) {
                if o.cancelled_units > line.cancelled_units {
                    line.cancelled_units = o.cancelled_units;
                    line.cancellation_reason = o.cancellation_reason.clone();
                    changed = true;
                }
            }
        }
        changed
    }

    pub fn is_whole_cancelled(&self) -> bool {
        self.status == ShipmentStatus::Cancelled
    }

    /// Lines whose cancellation the warehouse has not been told about yet: (line, newly cancelled units).
    pub fn unannounced_cancellations(&self) -> Vec<(&LineItem, u32)> {
        self.line_items
            .iter()
            .filter(|l| l.cancelled_units > l.announced_cancelled_units)
            .map(|l| (l, l.cancelled_units - l.announced_cancelled_units))
            .collect()
    }

    /// The record's fulfilment (empty until packed).
    pub fn fulfilment(&self) -> Fulfilment {
        self.fulfilment.clone().unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{json, Value};

    /// A shipment in the model's shape, with a buyer address that must never be read.
    pub fn shipment(id: &str, status: &str, updated: &str, skus: &[(&str, u32)]) -> Value {
        let lines: Vec<Value> = skus
            .iter()
            .enumerate()
            .map(|(i, (sku, n))| {
                json!({
                    "shipmentLineItemId": format!("{}", i + 1),
                    "merchantSku": sku,
                    "numberOfUnits": n,
                    "giftAttributes": {"giftWrapRequirement": "REQUIRED", "giftMessagePresence": "ABSENT"},
                    "complianceAttributes": {"serialNumberRequirement": "DISALLOWED", "hazmatLabelsRequirement": "DISALLOWED",
                        "countryOfOriginRequirement": "DISALLOWED", "itemValueRequirement": "DISALLOWED"},
                    "charges": [{"chargeType": "PRODUCT", "totalCharge": {"netAmount": {"value": "10.00", "currencyCode": "EUR"}}}]
                })
            })
            .collect();
        json!({
            "id": id,
            "locationId": "LOC1",
            "marketplaceAttributes": {"marketplaceId": "A1PA6795UKMFR9", "channelName": "FBA", "customAttributes": ["PRIME"]},
            "shipmentInfo": {"shipmentType": "NEW", "numberOfUnits": skus.iter().map(|(_, n)| n).sum::<u32>(), "priority": "HIGH",
                "buyerOrderId": "028-1", "orderStatesEligibleForRejection": ["ACCEPTED", "CONFIRMED"], "orderPlacedTimestamp": "1604923992000"},
            "shipmentRequirements": {},
            "charges": [{"chargeType": "GIFT", "totalCharge": {"netAmount": {"value": "1.00", "currencyCode": "EUR"}}}],
            "status": status,
            "lineItems": lines,
            "shippingInfo": {"expectedShippingDateTimeInUTC": "2026-11-22T10:00:00Z", "shippingType": "MARKETPLACE",
                "shipToAddress": {"name": "Jane Buyer", "addressLine1": "1 Secret Street", "city": "Paris"}},
            "creationDateTime": "2026-11-21 08:00:00Z",
            "lastUpdatedDateTime": updated,
            "someFutureField": {"x": 1}
        })
    }

    pub fn cancel_line(v: &mut Value, line: usize, qty: u32) {
        v["lineItems"][line]["cancellations"] = json!([{
            "cancelledQuantity": qty, "cancelledTimestamp": "2026-11-21T09:00:00Z", "cancellationType": "MARKETPLACE_CANCELLED"
        }]);
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::shipment::parse_amazon_time;

    #[test]
    fn reads_the_model_shape_without_the_address() {
        let v = shipment(
            "S1",
            "ACCEPTED",
            "2026-11-21T08:00:01.500Z",
            &[("SKU-A", 2), ("SKU-B", 1)],
        );
        let r = AmazonShipment::from_json(&v).unwrap().record;
        assert_eq!(r.id, "S1");
        assert_eq!(r.line_items.len(), 2);
        assert_eq!(r.line_items[0].units, 2);
        assert!(r.line_items[0].gift_wrap);
        assert!(r.prime);
        assert_eq!(r.priority.as_deref(), Some("HIGH"));
        assert_eq!(r.ship_by.as_deref(), Some("2026-11-22T10:00:00Z"));
        assert_eq!(r.number_of_units, 3);
        assert!(
            r.created_at_amazon.is_some(),
            "space-separated dates are read"
        );
        let stored = serde_json::to_string(&r).unwrap();
        assert!(
            !stored.contains("Secret Street") && !stored.contains("Jane"),
            "{stored}"
        );
    }

    #[test]
    fn one_tolerant_decode_keeps_gift_charges_and_space_dates() {
        // What getShipment answers: a GIFT charge (not in the model's enum), a space-separated
        // date and a field the model does not know. The client's decode is the only parse; the
        // record is a conversion of its typed `Shipment`.
        let v = shipment("S2", "ACCEPTED", "2026-11-21 08:00:01Z", &[("SKU-A", 1)]);
        let typed = decode_shipment(v).unwrap();
        assert_eq!(
            typed.charges[0].charge_type,
            crate::spapi::ChargeType::Unknown("GIFT".into())
        );
        let r = AmazonShipment::from_shipment(&typed).unwrap().record;
        assert_eq!(r.charges[0].charge_type.as_str(), "GIFT");
        assert_eq!(r.charges[0].total_charge.net_amount.value.0, "1.00");
        assert_eq!(
            r.amazon_updated_at,
            parse_amazon_time("2026-11-21T08:00:01Z").unwrap()
        );
        assert_eq!(
            r.created_at_amazon,
            parse_amazon_time("2026-11-21T08:00:00Z")
        );
        assert_eq!(r.line_items[0].charges[0].charge_type.as_str(), "PRODUCT");
        // Stored and read back through the same typed charges.
        let back: ShipmentRecord =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn missing_required_fields_name_the_shipment() {
        let mut v = shipment("S9", "ACCEPTED", "2026-11-21T08:00:00Z", &[("A", 1)]);
        v.as_object_mut().unwrap().remove("lastUpdatedDateTime");
        let err = AmazonShipment::from_json(&v).unwrap_err().to_string();
        assert!(
            err.contains("S9") && err.contains("lastUpdatedDateTime"),
            "{err}"
        );
    }

    #[test]
    fn cancellations_are_summed_and_markers_survive_absorb() {
        let mut v = shipment(
            "S1",
            "CONFIRMED",
            "2026-11-21T08:00:00Z",
            &[("A", 3), ("B", 1)],
        );
        let mut old = AmazonShipment::from_json(&v).unwrap().record;
        old.stage = Stage::HandedOver;
        cancel_line(&mut v, 0, 2);
        v["lastUpdatedDateTime"] = "2026-11-21T09:00:00Z".into();
        let newer = AmazonShipment::from_json(&v).unwrap().record;
        old.absorb(&newer);
        assert_eq!(old.stage, Stage::HandedOver);
        let pending = old.unannounced_cancellations();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, 2);
        assert_eq!(old.line_items[0].open_units(), 1);
    }

    #[test]
    fn a_same_second_view_only_adds_progress() {
        let v = shipment("S1", "CONFIRMED", "2026-11-21T08:00:00Z", &[("A", 3)]);
        let mut stored = AmazonShipment::from_json(&v).unwrap().record;
        let mut later = v.clone();
        cancel_line(&mut later, 0, 1);
        let later = AmazonShipment::from_json(&later).unwrap().record;
        assert!(stored.absorb_same_time(&later));
        assert_eq!(stored.line_items[0].cancelled_units, 1);
        let earlier = AmazonShipment::from_json(&shipment(
            "S1",
            "ACCEPTED",
            "2026-11-21T08:00:00Z",
            &[("A", 3)],
        ))
        .unwrap()
        .record;
        assert!(
            !stored.absorb_same_time(&earlier),
            "an older view in the same second changes nothing"
        );
        assert_eq!(stored.status, ShipmentStatus::Confirmed);
    }

    /// Stored items stay byte-compatible with the `String` fields they replace: known values are
    /// written as Amazon spells them, and a value Amazon adds later decodes (as `Unknown`) and is
    /// written back unchanged, so a stored record never fails to read.
    #[test]
    fn typed_amazon_fields_store_as_the_same_strings_and_keep_unknown_values() {
        let v = shipment("S1", "CONFIRMED", "2026-11-21T08:00:00Z", &[("A", 1)]);
        let mut r = AmazonShipment::from_json(&v).unwrap().record;
        r.handled_elsewhere = Some(ShipmentStatus::PackageCreated);
        let stored = serde_json::to_value(&r).unwrap();
        assert_eq!(stored["status"], "CONFIRMED");
        assert_eq!(stored["channel"], "FBA");
        assert_eq!(stored["shippingType"], "MARKETPLACE");
        assert_eq!(stored["handledElsewhere"], "PACKAGE_CREATED");
        assert_eq!(
            stored["eligibleForRejection"],
            serde_json::json!(["ACCEPTED", "CONFIRMED"])
        );
        for raw in ShipmentStatus::KNOWN {
            assert_eq!(
                serde_json::to_string(&ShipmentStatus::from(*raw)).unwrap(),
                format!("\"{raw}\"")
            );
        }

        let mut newer = stored.clone();
        newer["status"] = "RETURNED_TO_SENDER".into();
        newer["channel"] = "DF".into();
        newer["shippingType"] = "DRONE".into();
        newer["subStatus"] = "IN_ORBIT".into();
        newer["handledElsewhere"] = "RETURNED_TO_SENDER".into();
        newer["eligibleForRejection"] = serde_json::json!(["RETURNED_TO_SENDER"]);
        let text = serde_json::to_string(&newer).unwrap();
        let read: ShipmentRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(
            read.status,
            ShipmentStatus::Unknown("RETURNED_TO_SENDER".into())
        );
        assert_eq!(read.channel, ShipmentChannel::Unknown("DF".into()));
        assert_eq!(
            read.shipping_type,
            Some(ShippingType::Unknown("DRONE".into()))
        );
        assert_eq!(
            read.sub_status,
            Some(ShipmentSubStatus::Unknown("IN_ORBIT".into()))
        );
        assert!(read.packed_elsewhere());
        assert_eq!(serde_json::to_value(&read).unwrap(), newer);
    }

    #[test]
    fn an_unknown_status_is_no_step_of_the_lifecycle() {
        let v = shipment("S1", "CONFIRMED", "2026-11-21T08:00:00Z", &[("A", 1)]);
        let mut stored = AmazonShipment::from_json(&v).unwrap().record;
        let mut odd = stored.clone();
        odd.status = ShipmentStatus::Unknown("SOMETHING_NEW".into());
        assert!(
            !stored.absorb_same_time(&odd),
            "an unknown status ranks below every known one"
        );
        assert_eq!(stored.status, ShipmentStatus::Confirmed);
    }
}
