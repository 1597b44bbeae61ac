//! Seeded generation of realistic, model-conforming shipments and returns. Buyer data is fake.

use chrono::{DateTime, Duration, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::state::{fmt_time, Location, State};

/// Statuses in lifecycle order (CANCELLED is off the line).
pub const LIFECYCLE: [&str; 9] = [
    "CREATED",
    "ACCEPTED",
    "CONFIRMED",
    "PACKAGE_CREATED",
    "PICKUP_SLOT_RETRIEVED",
    "INVOICE_GENERATED",
    "SHIPLABEL_GENERATED",
    "SHIPPED",
    "DELIVERED",
];

/// Position in the lifecycle (CANCELLED and unknown = None).
pub fn rank(status: &str) -> Option<usize> {
    LIFECYCLE.iter().position(|s| *s == status)
}

pub fn currency_for(marketplace_id: &str) -> &'static str {
    match marketplace_id {
        "ATVPDKIKX0DER" => "USD",
        "A2EUQ1WTGCTBG2" => "CAD",
        "A1AM78C64UM0Y8" => "MXN",
        "A1F83G8C2ARO7P" => "GBP",
        "A21TJRUUN4KGV" => "INR",
        "A1VC38T7YXB528" => "JPY",
        "A39IBJ37TRP1C6" => "AUD",
        "A2NODRKZP88ZB9" => "SEK",
        "A1C3SOZRARQ6R3" => "PLN",
        "A33AVAJ2PDY3EV" => "TRY",
        "A2VIGQ35RCS4UG" => "AED",
        _ => "EUR",
    }
}

fn country_for(marketplace_id: &str) -> &'static str {
    match marketplace_id {
        "ATVPDKIKX0DER" => "US",
        "A2EUQ1WTGCTBG2" => "CA",
        "A1F83G8C2ARO7P" => "GB",
        "A21TJRUUN4KGV" => "IN",
        "A1PA6795UKMFR9" => "DE",
        "A13V1IB3VIYZZH" => "FR",
        "APJ6JRA9NG5V4" => "IT",
        "A1RKKUPIHCS9HS" => "ES",
        _ => "DE",
    }
}

fn tax_rate_for(currency: &str) -> i64 {
    // basis points
    match currency {
        "USD" | "CAD" => 0,
        "GBP" => 2000,
        "INR" => 1800,
        _ => 1900,
    }
}

/// Cents as a decimal string: 1999 -> "19.99".
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

fn amount(cents: i64, cur: &str) -> Value {
    json!({"value": money(cents), "currencyCode": cur})
}

fn breakup(base: i64, discount: i64, cur: &str) -> Value {
    json!({"baseAmount": amount(base, cur), "discountAmount": amount(discount, cur), "netAmount": amount(base - discount, cur)})
}

/// A `Charge` for `net` cents (tax-inclusive prices are split into base + VAT).
pub fn charge(kind: &str, gross: i64, discount: i64, cur: &str) -> Value {
    let bp = tax_rate_for(cur);
    let base = gross * 10_000 / (10_000 + bp);
    let tax = gross - base;
    let tax_disc = discount * bp / (10_000 + bp);
    let tax_type = if cur == "INR" { "IGST" } else { "VAT" };
    let rate = format!("{}.{:02}", bp / 10_000, (bp % 10_000) / 100);
    json!({
        "chargeType": kind,
        "baseCharge": breakup(base, discount - tax_disc, cur),
        "totalCharge": breakup(gross, discount, cur),
        "totalTax": {"type": "TOTAL", "rate": rate, "charge": breakup(tax, tax_disc, cur)},
        "taxBreakup": [{"type": tax_type, "rate": rate, "charge": breakup(tax, tax_disc, cur)}],
    })
}

const FIRST: [&str; 10] = [
    "Alex", "Sam", "Robin", "Kim", "Jordan", "Maria", "Noah", "Lea", "Ravi", "Yuki",
];
const LAST: [&str; 10] = [
    "Example",
    "Sample",
    "Tester",
    "Placeholder",
    "Fictive",
    "Dummy",
    "Mock",
    "Demo",
    "Fake",
    "Stub",
];
const STREETS: [&str; 6] = [
    "Test Street",
    "Sample Road",
    "Example Avenue",
    "Mock Lane",
    "Demo Way",
    "Placeholder Blvd",
];
const CITIES: [&str; 6] = [
    "Springfield",
    "Rivertown",
    "Lakeside",
    "Hillview",
    "Fairview",
    "Maplewood",
];

fn address(st: &mut State, marketplace_id: &str) -> Value {
    let r = &mut st.rng;
    let name = format!(
        "{} {}",
        FIRST.choose(r).unwrap_or(&"Alex"),
        LAST.choose(r).unwrap_or(&"Example")
    );
    json!({
        "name": name,
        "addressLine1": format!("{} {}", r.random_range(1..200), STREETS.choose(r).unwrap_or(&"Test Street")),
        "city": CITIES.choose(r).unwrap_or(&"Springfield"),
        "state": "XX",
        "postalCode": format!("{:05}", r.random_range(10000..99999)),
        "countryCode": country_for(marketplace_id),
        "phoneNumber": format!("+1-555-01{:02}", r.random_range(0..100)),
        "email": format!("buyer-{:06}@marketplace.example", r.random_range(0..1_000_000)),
        "addressType": "RESIDENTIAL",
    })
}

fn level(required: bool) -> &'static str {
    if required {
        "REQUIRED"
    } else {
        "DISALLOWED"
    }
}

/// A line requested in a shipment spec.
pub struct LineSpec {
    pub id: Option<String>,
    pub sku: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    /// serialNumber, countryOfOrigin, itemValue, hazmatLabels requirements (REQUIRED = true).
    pub required: [bool; 4],
}

fn parse_cents(v: &Value) -> Option<i64> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (i, f) = s.split_once('.').unwrap_or((&s, "0"));
    let f = format!("{f:0<2}");
    Some(i.parse::<i64>().ok()? * 100 + f[..2].parse::<i64>().ok()?)
}

/// Builds a shipment document for `spec` (admin `POST /_sim/shipments`); fields the spec leaves
/// out are drawn from the seeded RNG. The status is decided by the caller (stock check).
pub fn shipment(st: &mut State, loc: &Location, spec: &Value) -> Result<Value, ApiError> {
    let now = st.now();
    // `createdAt` (RFC 3339, not later than now): a shipment created while Amazon's API was down
    // for us (an outage test), listed with that creation and update time.
    let created = match spec["createdAt"].as_str() {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc).min(now))
            .map_err(|e| ApiError::invalid_input(format!("createdAt {t:?}: {e}")))?,
        None => now,
    };
    let cur = spec["currency"]
        .as_str()
        .unwrap_or(currency_for(&loc.marketplace_id))
        .to_string();
    let mut lines: Vec<LineSpec> = Vec::new();
    if let Some(arr) = spec["lineItems"].as_array() {
        for (i, l) in arr.iter().enumerate() {
            let sku = l["sku"]
                .as_str()
                .or(l["merchantSku"].as_str())
                .ok_or_else(|| {
                    ApiError::invalid_input(format!("lineItems[{i}].sku is required"))
                })?;
            let quantity = l["quantity"]
                .as_i64()
                .or(l["numberOfUnits"].as_i64())
                .unwrap_or(1);
            if quantity < 1 {
                return Err(ApiError::invalid_input(format!(
                    "lineItems[{i}].quantity must be >= 1"
                )));
            }
            let price =
                parse_cents(&l["unitPrice"]).unwrap_or_else(|| st.rng.random_range(499..9999));
            lines.push(LineSpec {
                id: l["id"].as_str().map(str::to_string),
                sku: sku.to_string(),
                quantity,
                unit_price_cents: price,
                required: [
                    l["serialNumbersRequired"].as_bool().unwrap_or(false),
                    l["countryOfOriginRequired"].as_bool().unwrap_or(false),
                    l["itemValueRequired"].as_bool().unwrap_or(false),
                    l["hazmatLabelsRequired"].as_bool().unwrap_or(false),
                ],
            });
        }
    } else {
        let n = spec["lineCount"]
            .as_u64()
            .unwrap_or_else(|| st.rng.random_range(1..=4)) as usize;
        let catalog: Vec<String> = st.skus.iter().cloned().collect();
        for i in 0..n.max(1) {
            let sku = if catalog.is_empty() {
                format!("SIM-SKU-{:04}", st.rng.random_range(0..40))
            } else {
                catalog[(st.rng.random_range(0..catalog.len()) + i) % catalog.len()].clone()
            };
            if lines.iter().any(|l| l.sku == sku) {
                continue;
            }
            let quantity = *[1, 1, 1, 2, 2, 3, 5].choose(&mut st.rng).unwrap_or(&1);
            let price = st.rng.random_range(499..12999);
            lines.push(LineSpec {
                id: None,
                sku,
                quantity,
                unit_price_cents: price,
                required: [false; 4],
            });
        }
    }
    if lines.is_empty() {
        return Err(ApiError::invalid_input(
            "a shipment needs at least one line item",
        ));
    }
    let prime = spec["prime"]
        .as_bool()
        .unwrap_or_else(|| st.rng.random_bool(0.4));
    let gift_line = spec["gift"]
        .as_bool()
        .unwrap_or_else(|| st.rng.random_bool(0.1));
    let mut units = 0;
    let mut total = 0;
    let mut line_items = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        units += l.quantity;
        let gross = l.unit_price_cents * l.quantity;
        let discount = if st.rng.random_bool(0.2) {
            gross / 10
        } else {
            0
        };
        total += gross - discount;
        let mut charges = vec![charge("PRODUCT", gross, discount, &cur)];
        let mut item = json!({
            "shipmentLineItemId": l.id.clone().unwrap_or_else(|| (i + 1).to_string()),
            "merchantSku": l.sku,
            "numberOfUnits": l.quantity,
            "pieceType": "SINGLE",
            "complianceAttributes": {
                "serialNumberRequirement": level(l.required[0]),
                "countryOfOriginRequirement": level(l.required[1]),
                "itemValueRequirement": level(l.required[2]),
                "hazmatLabelsRequirement": level(l.required[3]),
            },
            "recommendedCurrencyCode": cur,
            "itemValue": amount(l.unit_price_cents, &cur),
        });
        if l.required[1] {
            item["recommendedCountryOfOrigin"] = json!("CN");
        }
        if l.required[3] {
            item["hazmatLabels"] = json!(["UN3481"]);
        }
        if gift_line && i == 0 {
            charges.push(charge("GIFT_WRAP", 299, 0, &cur));
            total += 299;
            item["giftAttributes"] = json!({
                "giftWrapRequirement": "REQUIRED",
                "giftWrapLabel": "Happy birthday",
                "giftMessagePresence": "PRESENT",
                "giftMessage": {"format": "PLAIN_TEXT", "content": "SGFwcHkgYmlydGhkYXkh"},
            });
        }
        item["charges"] = json!(charges);
        line_items.push(item);
    }
    let shipping = if prime {
        0
    } else {
        *[0, 399, 499, 599].choose(&mut st.rng).unwrap_or(&0)
    };
    total += shipping;
    let ship_by_hours = spec["shipByHours"]
        .as_i64()
        .unwrap_or(if prime { 12 } else { 36 });
    let ship_by: DateTime<Utc> = now + Duration::hours(ship_by_hours);
    let seq = st.next_seq();
    let id = match spec["id"].as_str() {
        Some(id) => id.to_string(),
        None => format!("SIM{:06}{:04X}", seq, st.rng.random_range(0..0xFFFFu32)),
    };
    let buyer_order_id = spec["buyerOrderId"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "{:03}-{:07}-{:07}",
                st.rng.random_range(100..999),
                st.rng.random_range(0..9_999_999),
                st.rng.random_range(0..9_999_999)
            )
        });
    let mfn = loc.channel_name == "MFN";
    let mut eligible = vec![
        "ACCEPTED",
        "CONFIRMED",
        "PACKAGE_CREATED",
        "PICKUP_SLOT_RETRIEVED",
    ];
    if mfn {
        eligible.insert(0, "CREATED");
    }
    let eligible: Value = spec
        .get("orderStatesEligibleForRejection")
        .cloned()
        .unwrap_or(json!(eligible));
    let invoice_required = spec["invoiceRequired"].as_bool().unwrap_or(cur == "INR");
    let mut attrs = json!({
        "marketplaceId": loc.marketplace_id,
        "channelName": loc.channel_name,
        "merchantId": st.merchant_id,
    });
    if prime {
        attrs["customAttributes"] = json!(["PRIME"]);
    }
    let placed = now - Duration::minutes(st.rng.random_range(1..90));
    let addr = address(st, &loc.marketplace_id);
    let rec_lines: Vec<Value> = line_items
        .iter()
        .map(|l| json!({"lineItemId": l["shipmentLineItemId"]}))
        .collect();
    let weight_g = 150 * units + st.rng.random_range(50..400);
    let doc = json!({
        "id": id,
        "locationId": loc.location_id,
        "marketplaceAttributes": attrs,
        "shipmentInfo": {
            "shipmentType": spec["shipmentType"].as_str().unwrap_or("NEW"),
            "numberOfUnits": units,
            "priority": spec["priority"].as_str().unwrap_or(if prime { "HIGH" } else { "LOW" }),
            "buyerOrderId": buyer_order_id,
            "orderStatesEligibleForRejection": eligible,
            "orderPlacedTimestamp": placed.timestamp_millis().to_string(),
            "processingSource": "EXTERNAL_PLATFORM",
            "paymentMethod": spec["paymentMethod"].as_str().unwrap_or("PREPAID"),
        },
        "shipmentRequirements": {
            "pSlip": {"requirement": "NOT_REQUIRED", "status": "NOT_GENERATED"},
            "invoice": {"requirement": if invoice_required { "REQUIRED" } else { "NOT_REQUIRED" }, "status": "PENDING"},
        },
        "charges": [charge("SHIPPING", shipping, 0, &cur), charge("TOTAL", total, 0, &cur)],
        "status": "ACCEPTED",
        "lineItems": line_items,
        "shippingInfo": {
            "recommendedShipMethod": if prime { "NextDay" } else { "Standard" },
            "expectedShippingDateTimeInUTC": fmt_time(ship_by),
            "shipToAddress": addr,
            "shippingType": spec["shippingType"].as_str().unwrap_or(&loc.shipping_type),
            "recommendedPackages": [{
                "dimensions": {
                    "length": {"value": "30.0", "dimensionUnit": "CM"},
                    "width": {"value": "20.0", "dimensionUnit": "CM"},
                    "height": {"value": "10.0", "dimensionUnit": "CM"},
                },
                "weight": {"value": weight_g.to_string(), "weightUnit": "G"},
                "lineItems": rec_lines,
            }],
        },
        "creationDateTime": fmt_time(created),
        "lastUpdatedDateTime": fmt_time(created),
        "earliestPackDateTime": fmt_time(created),
    });
    Ok(doc)
}

/// Builds a return for `spec` (admin `POST /_sim/returns`).
pub fn return_doc(st: &mut State, spec: &Value) -> Result<Value, ApiError> {
    let now = fmt_time(st.now());
    let seq = st.next_seq();
    let (location, sku, units, shipment_id, order_id, channel, marketplace) =
        if let Some(sid) = spec["shipmentId"].as_str() {
            let s = st
                .shipments
                .get(sid)
                .ok_or_else(|| ApiError::not_found("shipmentId", sid))?;
            let line = s.doc["lineItems"]
                .as_array()
                .and_then(|l| l.first())
                .cloned()
                .unwrap_or(Value::Null);
            (
                s.doc["locationId"].as_str().unwrap_or("").to_string(),
                spec["sku"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| line["merchantSku"].as_str().unwrap_or("").to_string()),
                spec["numberOfUnits"]
                    .as_i64()
                    .unwrap_or_else(|| line["numberOfUnits"].as_i64().unwrap_or(1)),
                sid.to_string(),
                s.doc["shipmentInfo"]["buyerOrderId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                s.doc["marketplaceAttributes"]["channelName"]
                    .as_str()
                    .unwrap_or("FBA")
                    .to_string(),
                s.doc["marketplaceAttributes"]["marketplaceId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        } else {
            let loc = spec["locationId"]
                .as_str()
                .ok_or_else(|| ApiError::invalid_input("shipmentId or locationId is required"))?;
            let l = st
                .locations
                .get(loc)
                .cloned()
                .ok_or_else(|| ApiError::not_found("locationId", loc))?;
            (
                loc.to_string(),
                spec["sku"].as_str().unwrap_or("SIM-SKU-0001").to_string(),
                spec["numberOfUnits"].as_i64().unwrap_or(1),
                format!("SIMSHIP{seq:06}"),
                format!(
                    "{:03}-{:07}-{:07}",
                    st.rng.random_range(100..999),
                    st.rng.random_range(0..9_999_999),
                    st.rng.random_range(0..9_999_999)
                ),
                l.channel_name,
                l.marketplace_id,
            )
        };
    let id = spec["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("RET{:06}{:04X}", seq, st.rng.random_range(0..0xFFFFu32)));
    let rma = spec["rmaId"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("RMA{:08}", st.rng.random_range(0..99_999_999)));
    let reverse = format!("SIMR{:010}", st.rng.random_range(0..9_999_999_999u64));
    let forward = format!("SIMF{:010}", st.rng.random_range(0..9_999_999_999u64));
    let reasons = [
        "CR-DEFECTIVE",
        "CR-UNWANTED_ITEM",
        "CR-SWITCHEROO",
        "CR-ORDERED_WRONG_ITEM",
        "AMZ-PG-BAD-DESC",
    ];
    let reason = spec["returnReason"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            reasons
                .choose(&mut st.rng)
                .unwrap_or(&"CR-DEFECTIVE")
                .to_string()
        });
    Ok(json!({
        "id": id,
        "returnLocationId": location,
        "merchantSku": sku,
        "returnType": spec["returnType"].as_str().unwrap_or("CUSTOMER"),
        "returnSubType": spec["returnSubType"].as_str().unwrap_or("NORMAL"),
        "numberOfUnits": units,
        "status": spec["status"].as_str().unwrap_or("CREATED"),
        "fulfillmentLocationId": location,
        "creationDateTime": now,
        "lastUpdatedDateTime": now,
        "returnMetadata": {
            "returnReason": reason,
            "rmaId": rma,
            "fulfillmentOrderId": order_id,
            "invoiceInformation": {"id": format!("INV-{shipment_id}")},
        },
        "returnShippingInfo": {
            "forwardTrackingInfo": {"carrierName": "SIMCARRIER", "trackingId": forward},
            "reverseTrackingInfo": {"carrierName": "SIMCARRIER", "trackingId": reverse},
        },
        "marketplaceChannelDetails": {
            "marketplaceChannel": {"marketplaceName": marketplace, "channelName": channel},
            "merchantId": st.merchant_id,
            "shipmentId": shipment_id,
            "customerOrderId": order_id,
            "returnLocationId": location,
            "channelSku": sku,
        },
        "packageDeliveryMode": "WITHOUT_OTP",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_charges() {
        assert_eq!(money(1999), "19.99");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-120), "-1.20");
        let c = charge("PRODUCT", 1190, 0, "EUR");
        assert_eq!(c["totalCharge"]["netAmount"]["value"], "11.90");
        assert_eq!(c["baseCharge"]["netAmount"]["value"], "10.00");
        assert_eq!(c["totalTax"]["charge"]["netAmount"]["value"], "1.90");
        assert_eq!(parse_cents(&json!("19.9")), Some(1990));
        assert_eq!(parse_cents(&json!(7)), Some(700));
    }
}
