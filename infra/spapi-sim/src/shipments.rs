//! External Fulfillment Shipments 2024-09-11: the shipment state machine.
//!
//! Lifecycle: CREATED (MFN without stock) | ACCEPTED -> CONFIRMED -> PACKAGE_CREATED ->
//! PICKUP_SLOT_RETRIEVED -> INVOICE_GENERATED -> SHIPLABEL_GENERATED -> SHIPPED -> DELIVERED;
//! CANCELLED by REJECT or by the marketplace. Status conflicts answer 409 SC_00004 when the
//! step was already applied and 422 SC_00002 when it cannot be applied (yet) — see README.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use axum::http::StatusCode;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::DateTime;
use rand::Rng;
use serde_json::{json, Value};

use crate::docs;
use crate::errors::ApiError;
use crate::gen::{self, rank};
use crate::notify;
use crate::server::{HResult, Req, Resp};
use crate::state::{fmt_time, Document, Location, ShipmentRec, State};

const TERMINAL: [&str; 3] = ["CANCELLED", "SHIPPED", "DELIVERED"];

fn r(status: &str) -> usize {
    rank(status).unwrap_or(usize::MAX)
}

fn status_of(rec: &ShipmentRec) -> String {
    rec.doc["status"].as_str().unwrap_or("").to_string()
}

fn find<'a>(st: &'a mut State, id: &str) -> Result<&'a mut ShipmentRec, ApiError> {
    st.shipments
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found("shipmentId", id))
}

/// Moves `lastUpdatedDateTime` (and the status when given), records history, releases
/// reservations when the units leave or will never leave, and notifies.
pub fn change(st: &mut State, id: &str, status: Option<&str>, what: &str) {
    let now = fmt_time(st.now());
    let Some(rec) = st.shipments.get_mut(id) else {
        return;
    };
    if let Some(s) = status {
        rec.doc["status"] = json!(s);
    }
    rec.doc["lastUpdatedDateTime"] = json!(now);
    let cur = status_of(rec);
    rec.history
        .push(json!({"at": now, "status": cur, "what": what}));
    let mut give_back = Vec::new();
    if TERMINAL.contains(&cur.as_str()) {
        let reserved = std::mem::take(&mut rec.reserved);
        if cur == "CANCELLED" {
            give_back = reserved.into_iter().collect();
        }
    }
    let loc = rec.doc["locationId"].as_str().unwrap_or("").to_string();
    let doc = rec.doc.clone();
    // Cancelled units go back to what Amazon can sell (our assumption, see README).
    for (sku, units) in give_back {
        if let Some(have) = st.truth.get_mut(&(loc.clone(), sku.clone())) {
            *have += units;
        }
        if let Some(inv) = st.inventory.get_mut(&(loc.clone(), sku)) {
            inv.sellable_quantity += units;
        }
    }
    notify::shipment_changed(st, &doc);
}

/// Error code of an order refused because nothing (or not enough) is sellable.
pub const NOTHING_SELLABLE: &str = "NOTHING_SELLABLE";

/// Takes a new shipment's units from the warehouse truth (when one is set) and records every
/// unit beyond it as oversold.
fn take_from_truth(st: &mut State, id: &str, doc: &Value) {
    let loc = doc["locationId"].as_str().unwrap_or("").to_string();
    for l in doc["lineItems"].as_array().into_iter().flatten() {
        let sku = l["merchantSku"].as_str().unwrap_or("").to_string();
        let units = open_units(l);
        let Some(have) = st.truth.get_mut(&(loc.clone(), sku.clone())) else {
            continue;
        };
        let before = *have;
        *have -= units;
        let beyond = units - before.max(0);
        if beyond > 0 {
            st.oversold.push(json!({
                "shipmentId": id, "locationId": loc, "sku": sku,
                "units": units, "truthBefore": before, "oversoldUnits": beyond.min(units),
            }));
        }
    }
}

/// Reserves a shipment's open units and takes them off sellable.
pub fn reserve(st: &mut State, id: &str) {
    let Some(rec) = st.shipments.get_mut(id) else {
        return;
    };
    if !rec.reserved.is_empty() {
        return;
    }
    let loc = rec.doc["locationId"].as_str().unwrap_or("").to_string();
    let mut per_sku: BTreeMap<String, i64> = BTreeMap::new();
    for l in rec.doc["lineItems"].as_array().into_iter().flatten() {
        let sku = l["merchantSku"].as_str().unwrap_or("").to_string();
        *per_sku.entry(sku).or_default() += open_units(l);
    }
    per_sku.retain(|_, u| *u > 0);
    rec.reserved = per_sku.clone();
    // Only stock on record moves (a pair nobody ever pushed stays untracked).
    for (sku, units) in per_sku {
        if let Some(inv) = st.inventory.get_mut(&(loc.clone(), sku)) {
            inv.sellable_quantity = (inv.sellable_quantity - units).max(0);
        }
    }
}

/// Units of a line not cancelled.
pub fn open_units(line: &Value) -> i64 {
    let cancelled: i64 = line["cancellations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cancelledQuantity"].as_i64())
        .sum();
    line["numberOfUnits"].as_i64().unwrap_or(0) - cancelled
}

/// Admin: creates a shipment at a location from a spec; status from the spec or the stock.
pub fn create(st: &mut State, spec: &Value) -> Result<Value, ApiError> {
    let loc_id = spec["locationId"]
        .as_str()
        .ok_or_else(|| ApiError::invalid_input("locationId is required"))?;
    let loc: Location = st
        .locations
        .get(loc_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("locationId", loc_id))?;
    if let Some(id) = spec["id"].as_str() {
        if st.shipments.contains_key(id) {
            return Err(ApiError::duplicate(format!("shipment {id} already exists")));
        }
    }
    let mut doc = gen::shipment(st, &loc, spec)?;
    // Amazon's side of stock: a buyer cannot order what is not offered. Only (location, sku)
    // pairs with stock on record are checked (an update or `/_sim/inventory` made them known);
    // Seller Flex (FBA) needs every unit sellable, MFN at least one (short MFN orders are
    // CREATED, below).
    if spec["status"].is_null() {
        for l in doc["lineItems"].as_array().into_iter().flatten() {
            let sku = l["merchantSku"].as_str().unwrap_or("");
            let units = l["numberOfUnits"].as_i64().unwrap_or(0);
            if let Some(inv) = st.inventory.get(&(loc_id.to_string(), sku.to_string())) {
                let short = if loc.channel_name == "MFN" {
                    inv.sellable_quantity <= 0
                } else {
                    inv.sellable_quantity < units
                };
                if short {
                    return Err(ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        NOTHING_SELLABLE,
                        format!(
                            "SKU {sku} has {} sellable at {loc_id}; a buyer cannot order {units}",
                            inv.sellable_quantity
                        ),
                    ));
                }
            }
        }
    }
    let status = match spec["status"].as_str() {
        Some(s) if rank(s).is_some() || s == "CANCELLED" => s.to_string(),
        Some(s) => return Err(ApiError::invalid_input(format!("unknown status {s}"))),
        None => {
            let short = doc["lineItems"].as_array().into_iter().flatten().any(|l| {
                let sku = l["merchantSku"].as_str().unwrap_or("");
                let have = st
                    .inventory
                    .get(&(loc_id.to_string(), sku.to_string()))
                    .map(|i| i.sellable_quantity)
                    .unwrap_or(0);
                have < l["numberOfUnits"].as_i64().unwrap_or(0)
            });
            if loc.channel_name == "MFN" && short {
                "CREATED"
            } else {
                "ACCEPTED"
            }
            .to_string()
        }
    };
    doc["status"] = json!(status);
    let id = doc["id"].as_str().unwrap_or_default().to_string();
    for l in doc["lineItems"].as_array().into_iter().flatten() {
        if let Some(s) = l["merchantSku"].as_str() {
            st.skus.insert(s.to_string());
        }
    }
    let now = doc["lastUpdatedDateTime"].clone();
    st.shipments.insert(
        id.clone(),
        ShipmentRec {
            doc: doc.clone(),
            confirm_requests: 0,
            confirm_applied: 0,
            reject_applied: 0,
            invoice: None,
            labels: BTreeMap::new(),
            label_generations: 0,
            history: vec![json!({"at": now, "status": status, "what": "created"})],
            shipping_options: BTreeMap::new(),
            reserved: BTreeMap::new(),
        },
    );
    if rank(&status).is_some_and(|k| k >= 1 && k < r("SHIPPED")) {
        reserve(st, &id);
    }
    take_from_truth(st, &id, &doc);
    if status != "CREATED" {
        notify::shipment_changed(st, &doc);
    }
    Ok(doc)
}

// ---------------- pagination shared with returns ----------------

/// Opaque token: the last key served plus a fingerprint of the filters.
pub fn encode_token(key: &(String, String), fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({"k": [key.0, key.1], "f": fingerprint}).to_string())
}

pub fn decode_token(
    token: &str,
    fingerprint: &str,
    param: &str,
) -> Result<(String, String), ApiError> {
    let bad =
        || ApiError::invalid_input(format!("Invalid input '{token}' for parameter '{param}'"));
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["f"].as_str() != Some(fingerprint) {
        return Err(bad().with_details(
            "the token was issued for different arguments; repeat the same arguments",
        ));
    }
    match (v["k"][0].as_str(), v["k"][1].as_str()) {
        (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
        _ => Err(bad()),
    }
}

/// Keyset pagination over items sorted by key; sometimes (seeded) an empty page with a token.
pub fn paginate(
    st: &mut State,
    mut items: Vec<((String, String), Value)>,
    after: Option<(String, String)>,
    max: usize,
) -> (Vec<Value>, Option<(String, String)>) {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let rest: Vec<((String, String), Value)> = match &after {
        Some(k) => items.into_iter().filter(|(key, _)| key > k).collect(),
        None => items,
    };
    if rest.is_empty() {
        return (vec![], None);
    }
    if st.empty_page_rate > 0.0 && st.rng.random::<f64>() < st.empty_page_rate {
        let k = after.unwrap_or_else(|| (String::new(), String::new()));
        return (vec![], Some(k));
    }
    let more = rest.len() > max;
    let page: Vec<((String, String), Value)> = rest.into_iter().take(max).collect();
    let next = if more {
        page.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    (page.into_iter().map(|(_, v)| v).collect(), next)
}

fn parse_time(s: &str) -> Option<DateTime<chrono::FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

// ---------------- operations ----------------

pub fn get_shipments(st: &mut State, req: &Req) -> HResult {
    let status = req.q("status").unwrap_or_default().to_string();
    let after = req.q("lastUpdatedAfter").and_then(parse_time);
    let before = req.q("lastUpdatedBefore").and_then(parse_time);
    if let (Some(a), Some(b)) = (after, before) {
        if a > b {
            return Err(ApiError::invalid_input(format!(
                "Invalid input, 'lastUpdatedAfter': '{}' can't be higher than '{}'",
                req.q("lastUpdatedAfter").unwrap_or(""),
                req.q("lastUpdatedBefore").unwrap_or("")
            )));
        }
    }
    let max = req
        .q("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(10);
    let fingerprint: String = [
        "status",
        "locationId",
        "marketplaceId",
        "channelName",
        "lastUpdatedAfter",
        "lastUpdatedBefore",
    ]
    .iter()
    .map(|k| format!("{k}={}", req.q(k).unwrap_or("")))
    .collect::<Vec<_>>()
    .join("&");
    let after_key = match req.q("paginationToken") {
        Some(t) => Some(decode_token(t, &fingerprint, "paginationToken")?),
        None => None,
    };
    let items: Vec<((String, String), Value)> = st
        .shipments
        .values()
        .filter(|s| s.doc["status"] == status)
        .filter(|s| req.q("locationId").is_none_or(|l| s.doc["locationId"] == l))
        .filter(|s| {
            req.q("marketplaceId")
                .is_none_or(|m| s.doc["marketplaceAttributes"]["marketplaceId"] == m)
        })
        .filter(|s| {
            req.q("channelName")
                .is_none_or(|c| s.doc["marketplaceAttributes"]["channelName"] == c)
        })
        .filter(|s| {
            let t = s.doc["lastUpdatedDateTime"].as_str().and_then(parse_time);
            after.is_none_or(|a| t.is_some_and(|t| t > a))
                && before.is_none_or(|b| t.is_some_and(|t| t < b))
        })
        .map(|s| {
            let key = (
                s.doc["lastUpdatedDateTime"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                s.doc["id"].as_str().unwrap_or("").to_string(),
            );
            (key, s.doc.clone())
        })
        .collect();
    let (page, next) = paginate(st, items, after_key, max);
    let mut body = json!({ "shipments": page });
    if let Some(k) = next {
        body["pagination"] = json!({ "nextToken": encode_token(&k, &fingerprint) });
    }
    Ok(Resp::ok(body))
}

pub fn get_shipment(st: &mut State, req: &Req) -> HResult {
    Ok(Resp::ok(find(st, req.p("shipmentId"))?.doc.clone()))
}

pub fn process_shipment(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let operation = req.q("operation").unwrap_or_default();
    let rec = find(st, &id)?;
    let status = status_of(rec);
    if operation == "CONFIRM" {
        rec.confirm_requests += 1;
        match status.as_str() {
            "CREATED" | "ACCEPTED" => {
                rec.confirm_applied += 1;
                change(st, &id, Some("CONFIRMED"), "processShipment CONFIRM");
                reserve(st, &id);
                Ok(Resp::no_content())
            }
            "CANCELLED" => Err(ApiError::unprocessable(format!(
                "Invalid input, 'operation': 'CONFIRM' can't be applied to shipment '{id}' in status 'CANCELLED'"
            ))),
            _ => Err(ApiError::duplicate(format!(
                "Requested operation CONFIRM was already applied to shipment '{id}' (status '{status}')"
            ))),
        }
    } else {
        reject(st, &id, &status, req.body.as_ref())
    }
}

fn reject(st: &mut State, id: &str, status: &str, body: Option<&Value>) -> HResult {
    let Some(body) = body else {
        return Err(ApiError::invalid_input(
            "At least one field is mandatory in the input payload",
        )
        .with_details("REJECT needs referenceId and lineItems with a reason"));
    };
    let reference = body["referenceId"].as_str().unwrap_or("");
    if reference.is_empty() {
        return Err(ApiError::invalid_input(
            "Invalid input 'null' for parameter 'referenceId'",
        ));
    }
    let rec = find(st, id)?;
    if status == "CANCELLED" {
        return Err(ApiError::duplicate(format!(
            "shipment '{id}' is already CANCELLED"
        )));
    }
    let eligible: Vec<&str> = rec.doc["shipmentInfo"]["orderStatesEligibleForRejection"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !eligible.contains(&status) {
        return Err(ApiError::unprocessable(format!(
            "Invalid input, 'operation': 'REJECT' can't be applied to shipment '{id}' in status '{status}' (eligible: {})",
            eligible.join(", ")
        )));
    }
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    for (i, li) in body["lineItems"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let lid = li["lineItem"]["id"].as_str().unwrap_or("").to_string();
        if !rec.doc["lineItems"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["shipmentLineItemId"] == lid.as_str())
        {
            return Err(ApiError::invalid_input(format!(
                "Invalid input '{lid}' for parameter 'lineItems[{i}].lineItem.id'"
            )));
        }
        let Some(reason) = li["reason"].as_str() else {
            return Err(ApiError::invalid_input(format!(
                "Invalid input 'null' for parameter 'lineItems[{i}].reason'"
            )));
        };
        reasons.insert(lid, reason.to_string());
    }
    let all: HashSet<String> = rec.doc["lineItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["shipmentLineItemId"].as_str().map(str::to_string))
        .collect();
    if reasons.len() != all.len() {
        return Err(ApiError::unprocessable(
            "Partial rejection is not supported: list every line item of the shipment",
        ));
    }
    let ts = fmt_time(chrono::Utc::now());
    for l in rec.doc["lineItems"].as_array_mut().into_iter().flatten() {
        let lid = l["shipmentLineItemId"].as_str().unwrap_or("").to_string();
        let open = open_units(l);
        let mut c = l["cancellations"].as_array().cloned().unwrap_or_default();
        if open > 0 {
            c.push(json!({
                "cancelledQuantity": open,
                "cancelledTimestamp": ts,
                "cancellationType": "SELLER_REJECTED",
                "cancellationReason": reasons.get(&lid).cloned().unwrap_or_default(),
            }));
        }
        l["cancellations"] = json!(c);
    }
    rec.doc["reason"] = json!(reasons.values().next().cloned().unwrap_or_default());
    rec.reject_applied += 1;
    change(
        st,
        id,
        Some("CANCELLED"),
        &format!("processShipment REJECT {reference}"),
    );
    Ok(Resp::no_content())
}

/// Checks packages against the shipment: known lines, all open units packed exactly once,
/// weight of at least 5 g, unique package IDs.
fn check_packages(rec: &ShipmentRec, packages: &[Value]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    let mut packed: BTreeMap<String, i64> = BTreeMap::new();
    for p in packages {
        let pid = p["id"].as_str().unwrap_or("");
        if !seen.insert(pid.to_string()) {
            return Err(ApiError::invalid_input(format!(
                "Invalid input '{pid}' for parameter 'packages[].id': duplicate package ID"
            )));
        }
        let w: f64 = p["weight"]["value"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let grams = match p["weight"]["weightUnit"].as_str() {
            Some("KG") => w * 1000.0,
            Some("LB") => w * 453.592,
            Some("OZ") => w * 28.3495,
            _ => w,
        };
        if grams < 5.0 {
            return Err(ApiError::invalid_input(format!(
                "Invalid input '{}' for parameter 'weight' of package '{pid}': at least 5 grams",
                p["weight"]["value"].as_str().unwrap_or("")
            )));
        }
        for dim in ["length", "width", "height"] {
            let v: f64 = p["dimensions"][dim]["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if v <= 0.0 {
                return Err(ApiError::invalid_input(format!("Invalid input for parameter 'dimensions.{dim}' of package '{pid}': must be positive")));
            }
        }
        let has_hazmat = p["hazmatLabels"].as_array().is_some_and(|h| !h.is_empty());
        for pl in p["packageLineItems"].as_array().into_iter().flatten() {
            let lid = pl["packageLineItemId"].as_str().unwrap_or("");
            let q = pl["quantity"].as_i64().unwrap_or(0);
            if q < 1 {
                return Err(ApiError::invalid_input(format!(
                    "Invalid input '{q}' for parameter 'quantity' of line '{lid}'"
                )));
            }
            let line = rec.doc["lineItems"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["shipmentLineItemId"] == lid);
            if let Some(line) = line {
                check_compliance(line, pl, q, has_hazmat, pid)?;
            }
            *packed.entry(lid.to_string()).or_default() += q;
        }
    }
    let lines: BTreeMap<String, i64> = rec.doc["lineItems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["shipmentLineItemId"].as_str().unwrap_or("").to_string(),
                open_units(l),
            )
        })
        .collect();
    for (lid, q) in &packed {
        match lines.get(lid) {
            None => {
                return Err(ApiError::invalid_input(format!(
                    "Invalid input '{lid}' for parameter 'packageLineItemId': not a line item of the shipment"
                )))
            }
            Some(open) if q != open => {
                return Err(ApiError::invalid_input(format!(
                    "Invalid input '{q}' for parameter 'quantity' of line '{lid}': the packages must hold the line's {open} open units"
                )))
            }
            _ => {}
        }
    }
    for (lid, open) in &lines {
        if *open > 0 && !packed.contains_key(lid) {
            return Err(ApiError::invalid_input(format!(
                "line item '{lid}' is in no package"
            )));
        }
    }
    Ok(())
}

/// Package line items follow the line's complianceAttributes: REQUIRED must be given
/// (one serial number per unit), DISALLOWED must not be.
fn check_compliance(
    line: &Value,
    pl: &Value,
    quantity: i64,
    has_hazmat: bool,
    pid: &str,
) -> Result<(), ApiError> {
    let ca = &line["complianceAttributes"];
    let lid = pl["packageLineItemId"].as_str().unwrap_or("");
    let serials = pl["serialNumbers"]
        .as_array()
        .map(|s| s.len() as i64)
        .unwrap_or(0);
    let fail = |what: &str, why: &str| {
        Err(ApiError::invalid_input(format!(
            "Invalid input for parameter '{what}' of line '{lid}' in package '{pid}': {why}"
        )))
    };
    match ca["serialNumberRequirement"].as_str() {
        Some("REQUIRED") if serials != quantity => {
            return fail(
                "serialNumbers",
                &format!("REQUIRED: {quantity} expected, {serials} given"),
            )
        }
        Some("DISALLOWED") if serials > 0 => {
            return fail("serialNumbers", "DISALLOWED for this line")
        }
        _ => {}
    }
    for (req, field) in [
        ("countryOfOriginRequirement", "countryOfOrigin"),
        ("itemValueRequirement", "itemValue"),
    ] {
        let given = !pl[field].is_null();
        match ca[req].as_str() {
            Some("REQUIRED") if !given => return fail(field, "REQUIRED for this line"),
            Some("DISALLOWED") if given => return fail(field, "DISALLOWED for this line"),
            _ => {}
        }
    }
    if ca["hazmatLabelsRequirement"] == "REQUIRED" && !has_hazmat {
        return fail(
            "hazmatLabels",
            "REQUIRED for this line: set the package's hazmatLabels",
        );
    }
    Ok(())
}

fn with_status(p: &Value, status: &str) -> Value {
    let mut p = p.clone();
    p["status"] = json!(status);
    p
}

pub fn create_packages(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let rec = find(st, &id)?;
    let status = status_of(rec);
    match status.as_str() {
        "CONFIRMED" => {}
        "CANCELLED" | "CREATED" | "ACCEPTED" => {
            return Err(ApiError::unprocessable(format!(
                "Invalid input, 'shipment': createPackages can't be applied to shipment '{id}' in status '{status}' (CONFIRM it first)"
            )))
        }
        _ => {
            return Err(ApiError::duplicate(format!(
                "Packages already exist for shipment '{id}' (status '{status}'); use updatePackage to change them"
            )))
        }
    }
    let packages: Vec<Value> = req
        .body
        .as_ref()
        .and_then(|b| b["packages"].as_array())
        .cloned()
        .unwrap_or_default();
    if packages.is_empty() {
        return Err(ApiError::invalid_input(
            "Invalid input '[]' for parameter 'packages'",
        ));
    }
    check_packages(rec, &packages)?;
    rec.doc["packages"] = json!(packages
        .iter()
        .map(|p| with_status(p, "CREATED"))
        .collect::<Vec<_>>());
    change(st, &id, Some("PACKAGE_CREATED"), "createPackages");
    Ok(Resp::no_content())
}

fn package_index(rec: &ShipmentRec, id: &str, package_id: &str) -> Result<usize, ApiError> {
    rec.doc["packages"]
        .as_array()
        .and_then(|ps| ps.iter().position(|p| p["id"] == package_id))
        .ok_or_else(|| {
            ApiError::not_found("packageId", package_id).with_details(format!("shipment '{id}'"))
        })
}

pub fn update_package(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let pid = req.p("packageId").to_string();
    let rec = find(st, &id)?;
    let status = status_of(rec);
    if rec.doc["packages"].as_array().is_none_or(|p| p.is_empty()) {
        return Err(ApiError::unprocessable(format!(
            "Invalid input, 'shipment': updatePackage can't be applied to shipment '{id}' in status '{status}' (no packages yet)"
        )));
    }
    if TERMINAL.contains(&status.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "Invalid input, 'shipment': updatePackage can't be applied to shipment '{id}' in status '{status}'"
        )));
    }
    let idx = package_index(rec, &id, &pid)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    if body["id"] != pid.as_str() {
        return Err(ApiError::invalid_input(format!(
            "Invalid input '{}' for parameter 'id': must equal the packageId in the path '{pid}'",
            body["id"].as_str().unwrap_or("")
        )));
    }
    let mut packages = rec.doc["packages"].as_array().cloned().unwrap_or_default();
    packages[idx] = body;
    check_packages(rec, &packages)?;
    // A package change voids slots, invoice and labels: back to PACKAGE_CREATED.
    rec.doc["packages"] = json!(packages
        .iter()
        .map(|p| with_status(p, "CREATED"))
        .collect::<Vec<_>>());
    rec.labels.clear();
    rec.shipping_options.clear();
    rec.invoice = None;
    if let Some(o) = rec.doc.as_object_mut() {
        o.remove("invoiceInfo");
    }
    rec.doc["shipmentRequirements"]["invoice"]["status"] = json!("PENDING");
    change(
        st,
        &id,
        Some("PACKAGE_CREATED"),
        &format!("updatePackage {pid}"),
    );
    Ok(Resp::no_content())
}

pub fn update_package_status(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let pid = req.p("packageId").to_string();
    let body = req.body.clone().unwrap_or(Value::Null);
    let target = body["status"]
        .as_str()
        .or(req.q("status"))
        .map(str::to_string);
    let Some(target) = target else {
        return Err(ApiError::invalid_input(
            "Invalid input 'null' for parameter 'status'",
        ));
    };
    if target != "SHIPPED" && target != "DELIVERED" {
        return Err(ApiError::invalid_input(format!(
            "Invalid input '{target}' for parameter 'status': only SHIPPED or DELIVERED can be set by the seller"
        )));
    }
    let rec = find(st, &id)?;
    let status = status_of(rec);
    let idx = package_index(rec, &id, &pid)?;
    if status == "CANCELLED" {
        return Err(ApiError::unprocessable(format!(
            "shipment '{id}' is CANCELLED"
        )));
    }
    let self_ship = rec.doc["shippingInfo"]["shippingType"] == "SELF";
    let pkg_status = rec.doc["packages"][idx]["status"]
        .as_str()
        .unwrap_or("CREATED")
        .to_string();
    let pr = r(&pkg_status);
    let already = if target == "SHIPPED" {
        pr >= r("SHIPPED")
    } else {
        pkg_status == "DELIVERED"
    };
    if already {
        return Err(ApiError::duplicate(format!(
            "package '{pid}' is already {pkg_status}"
        )));
    }
    let ready = if target == "SHIPPED" {
        pkg_status == "SHIPLABEL_GENERATED" || (self_ship && pr < r("SHIPPED"))
    } else {
        pkg_status == "SHIPPED" || (self_ship && pr < r("SHIPPED"))
    };
    if !ready {
        return Err(ApiError::unprocessable(format!(
            "Invalid input, 'status': '{target}' can't be applied to package '{pid}' in status '{pkg_status}'"
        )));
    }
    rec.doc["packages"][idx]["status"] = json!(target);
    let pkgs = rec.doc["packages"].as_array().cloned().unwrap_or_default();
    let all = |s: &str| {
        pkgs.iter()
            .all(|p| r(p["status"].as_str().unwrap_or("")) >= r(s) && p["status"] != "CANCELLED")
    };
    let new_status = if all("DELIVERED") {
        Some("DELIVERED")
    } else if all("SHIPPED") && r(&status) < r("SHIPPED") {
        Some("SHIPPED")
    } else {
        None
    };
    if let Some(sub) = body["subStatus"].as_str() {
        rec.doc["subStatus"] = json!(sub);
    } else if new_status == Some("SHIPPED") {
        rec.doc["subStatus"] = json!(if self_ship {
            "DROPPED_OFF"
        } else {
            "PICKED_UP"
        });
    } else if new_status == Some("DELIVERED") {
        rec.doc["subStatus"] = json!("DELIVERED");
    }
    if let Some(reason) = body["reason"].as_str() {
        rec.doc["reason"] = json!(reason);
    }
    change(
        st,
        &id,
        new_status,
        &format!("updatePackageStatus {pid} {target}"),
    );
    Ok(Resp::no_content())
}

fn ensure_packaged(rec: &ShipmentRec, id: &str, what: &str) -> Result<String, ApiError> {
    let status = status_of(rec);
    if status == "CANCELLED" || r(&status) < r("PACKAGE_CREATED") || r(&status) >= r("SHIPPED") {
        return Err(ApiError::unprocessable(format!(
            "Invalid input, 'shipment': {what} can't be applied to shipment '{id}' in status '{status}'"
        )));
    }
    Ok(status)
}

pub fn retrieve_shipping_options(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let pid = req.q("packageId").unwrap_or("").to_string();
    let rec = find(st, &id)?;
    let status = ensure_packaged(rec, &id, "retrieveShippingOptions")?;
    let idx = package_index(rec, &id, &pid)?;
    let mfn = rec.doc["marketplaceAttributes"]["channelName"] == "MFN";
    let body = if mfn {
        let now = chrono::Utc::now().timestamp();
        let ship_by_self = rec.doc["shippingInfo"]["shippingType"] == "SELF";
        let day = 86_400;
        let start = now - now % day + day + 9 * 3600;
        let opts: Vec<Value> = (0..2)
            .map(|i| {
                json!({
                    "shippingOptionId": format!("{id}-{pid}-OPT{}", i + 1),
                    "shipBy": if ship_by_self { "SELLER" } else { "MARKETPLACE" },
                    "carrierName": if i == 0 { "SIMCARRIER" } else { "SIMEXPRESS" },
                    "pickupWindow": {"startTime": start + i * day, "endTime": start + i * day + 8 * 3600, "handoverMethod": "PICKUP"},
                    "timeSlot": {"startTime": start + i * day, "endTime": start + i * day + 4 * 3600, "handoverMethod": "PICKUP"},
                })
            })
            .collect();
        rec.shipping_options.insert(pid.clone(), opts.clone());
        json!({ "shippingOptions": opts, "recommendedShippingOption": opts[0] })
    } else {
        // Seller Flex: "null for the Seller Flex channel".
        rec.shipping_options.insert(pid.clone(), vec![]);
        json!({})
    };
    if r(rec.doc["packages"][idx]["status"]
        .as_str()
        .unwrap_or("CREATED"))
        < r("PICKUP_SLOT_RETRIEVED")
    {
        rec.doc["packages"][idx]["status"] = json!("PICKUP_SLOT_RETRIEVED");
    }
    if status == "PACKAGE_CREATED" {
        change(
            st,
            &id,
            Some("PICKUP_SLOT_RETRIEVED"),
            &format!("retrieveShippingOptions {pid}"),
        );
    }
    Ok(Resp::ok(body))
}

fn invoice_pdf(rec: &ShipmentRec, invoice_id: &str) -> Vec<u8> {
    let d = &rec.doc;
    let mut lines = vec![
        format!("Invoice {invoice_id}"),
        format!(
            "Shipment {}  Order {}",
            d["id"].as_str().unwrap_or(""),
            d["shipmentInfo"]["buyerOrderId"].as_str().unwrap_or("")
        ),
        format!(
            "Seller {}  Marketplace {}",
            d["marketplaceAttributes"]["merchantId"]
                .as_str()
                .unwrap_or(""),
            d["marketplaceAttributes"]["marketplaceId"]
                .as_str()
                .unwrap_or("")
        ),
    ];
    for l in d["lineItems"].as_array().into_iter().flatten() {
        let c = &l["charges"][0]["totalCharge"]["netAmount"];
        lines.push(format!(
            "{} x {}  {} {}",
            l["numberOfUnits"],
            l["merchantSku"].as_str().unwrap_or(""),
            c["value"].as_str().unwrap_or(""),
            c["currencyCode"].as_str().unwrap_or("")
        ));
    }
    for c in d["charges"].as_array().into_iter().flatten() {
        let a = &c["totalCharge"]["netAmount"];
        lines.push(format!(
            "{} {} {}",
            c["chargeType"].as_str().unwrap_or(""),
            a["value"].as_str().unwrap_or(""),
            a["currencyCode"].as_str().unwrap_or("")
        ));
    }
    docs::pdf("INVOICE", &lines)
}

pub fn generate_invoice(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let rec = find(st, &id)?;
    let status = ensure_packaged(rec, &id, "generateInvoice")?;
    if rec.invoice.is_some() {
        return Err(ApiError::duplicate(format!(
            "The invoice of shipment '{id}' was already generated; use retrieveInvoice"
        )));
    }
    let invoice_id = format!("INV-{id}");
    let content = STANDARD.encode(invoice_pdf(rec, &invoice_id));
    let document = json!({"document": {"format": "PDF", "content": content}});
    rec.invoice = Some(document.clone());
    rec.doc["invoiceInfo"] =
        json!({"invoiceId": invoice_id, "creationDateTime": fmt_time(chrono::Utc::now())});
    rec.doc["shipmentRequirements"]["invoice"]["status"] = json!("AVAILABLE");
    for p in rec.doc["packages"].as_array_mut().into_iter().flatten() {
        if r(p["status"].as_str().unwrap_or("CREATED")) < r("INVOICE_GENERATED") {
            p["status"] = json!("INVOICE_GENERATED");
        }
    }
    let to = (r(&status) < r("INVOICE_GENERATED")).then_some("INVOICE_GENERATED");
    change(st, &id, to, "generateInvoice");
    Ok(Resp::ok(document))
}

pub fn retrieve_invoice(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let rec = find(st, &id)?;
    match &rec.invoice {
        Some(d) => Ok(Resp::ok(d.clone())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SC_00003",
            "Requested artifact of type 'INVOICE' not found",
        )
        .with_details(format!("shipment '{id}'"))),
    }
}

pub fn generate_ship_labels(st: &mut State, req: &Req) -> HResult {
    let id = req.p("shipmentId").to_string();
    let operation = req.q("operation").unwrap_or("GENERATE").to_string();
    let body = req.body.clone().ok_or_else(|| {
        ApiError::invalid_input("At least one field is mandatory in the input payload")
            .with_details("packageIds is required")
    })?;
    let package_ids: Vec<String> = body["packageIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    if package_ids.is_empty() {
        return Err(ApiError::invalid_input(
            "Invalid input '[]' for parameter 'packageIds'",
        ));
    }
    let base = st.base_url.clone();
    let mut tracking_numbers: Vec<u64> = (0..package_ids.len())
        .map(|_| st.rng.random_range(0..1_000_000_000_000u64))
        .collect();
    let rec = find(st, &id)?;
    let status = ensure_packaged(rec, &id, "generateShipLabels")?;
    let mfn = rec.doc["marketplaceAttributes"]["channelName"] == "MFN";
    if rec.doc["shipmentRequirements"]["invoice"]["requirement"] == "REQUIRED"
        && rec.invoice.is_none()
    {
        return Err(ApiError::unprocessable(format!(
            "shipment '{id}' requires an invoice: call generateInvoice first"
        )));
    }
    let known: Vec<String> = rec.doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(str::to_string))
        .collect();
    for pid in &package_ids {
        if !known.contains(pid) {
            continue;
        }
        let has = rec.labels.contains_key(pid);
        if operation == "GENERATE" && has {
            return Err(ApiError::duplicate(format!(
                "A label for package '{pid}' of shipment '{id}' was already generated; use operation=REGENERATE"
            )));
        }
        if operation == "REGENERATE" && !has {
            return Err(ApiError::unprocessable(format!(
                "Invalid input, 'operation': 'REGENERATE' needs an existing label for package '{pid}'"
            )));
        }
        if mfn && !rec.shipping_options.contains_key(pid) {
            return Err(ApiError::unprocessable(format!(
                "Invalid input, 'shipment': call retrieveShippingOptions for package '{pid}' first"
            )));
        }
    }
    let courier = &body["courierSupportedAttributes"];
    let city = rec.doc["shippingInfo"]["shipToAddress"]["city"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut results = Vec::new();
    let mut new_docs = Vec::new();
    for pid in &package_ids {
        if !known.contains(pid) {
            results.push(json!({
                "packageId": pid,
                "status": "FAILURE",
                "errorDetails": {"code": "SC_00003", "message": format!("Requested Entity with 'packageId' '{pid}' is not found.")},
            }));
            continue;
        }
        let opts = rec.shipping_options.get(pid).cloned().unwrap_or_default();
        let option = match req.q("shippingOptionId") {
            Some(o) => match opts.iter().find(|x| x["shippingOptionId"] == o) {
                Some(x) => Some(x.clone()),
                None if mfn => {
                    return Err(ApiError::invalid_input(format!(
                        "Invalid input '{o}' for parameter 'shippingOptionId'"
                    )))
                }
                None => None,
            },
            None => opts.first().cloned(),
        };
        let (carrier, tracking) = match (
            courier["carrierName"].as_str(),
            courier["trackingId"].as_str(),
        ) {
            (Some(c), Some(t)) => (c.to_string(), t.to_string()),
            _ => {
                let carrier = option
                    .as_ref()
                    .and_then(|o| o["carrierName"].as_str())
                    .unwrap_or("SIMCARRIER")
                    .to_string();
                let n = tracking_numbers.pop().unwrap_or_default();
                (carrier, format!("SIM{n:012}"))
            }
        };
        let (ct, bytes) = if mfn {
            (
                "application/pdf",
                docs::pdf(
                    "SHIPPING LABEL",
                    &[
                        format!("Carrier {carrier}"),
                        format!("Tracking {tracking}"),
                        format!("Shipment {id} package {pid}"),
                        format!("To {city}"),
                    ],
                ),
            )
        } else {
            (
                "x.application/zpl",
                docs::zpl(&carrier, &tracking, &id, pid, &city),
            )
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let signature = uuid::Uuid::new_v4().simple().to_string();
        let url = format!(
            "{base}/_sim/documents/{token}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature={signature}"
        );
        new_docs.push((
            token,
            Document {
                content_type: ct.to_string(),
                bytes,
                signature,
                created: Instant::now(),
            },
        ));
        let mut meta = json!({"carrierName": carrier, "trackingId": tracking});
        if let Some(o) = &option {
            meta["shippingOptionId"] = o["shippingOptionId"].clone();
            meta["pickupWindow"] = o["pickupWindow"].clone();
            meta["timeSlot"] = o["timeSlot"].clone();
        }
        let label = json!({"packageId": pid, "shipLabelMetadata": meta, "fileData": {"url": url}, "status": "SUCCESS"});
        rec.labels.insert(pid.clone(), label.clone());
        if let Some(p) = rec.doc["packages"]
            .as_array_mut()
            .and_then(|ps| ps.iter_mut().find(|p| p["id"] == pid.as_str()))
        {
            p["status"] = json!("SHIPLABEL_GENERATED");
        }
        results.push(label);
    }
    let labelled = results.iter().any(|x| x["status"] == "SUCCESS");
    if labelled {
        rec.label_generations += 1;
    }
    let all_labelled = known.iter().all(|p| rec.labels.contains_key(p));
    for (t, d) in new_docs {
        st.documents.insert(t, d);
    }
    if labelled {
        let to = (all_labelled && r(&status) < r("SHIPLABEL_GENERATED"))
            .then_some("SHIPLABEL_GENERATED");
        if to.is_some() {
            if let Some(rec) = st.shipments.get_mut(&id) {
                let handover = if rec.doc["shippingInfo"]["shippingType"] == "SELF" {
                    "PENDING_DROP_OFF"
                } else {
                    "PENDING_PICKUP"
                };
                rec.doc["subStatus"] = json!(handover);
            }
        }
        change(st, &id, to, &format!("generateShipLabels {operation}"));
    }
    Ok(Resp::ok(json!({ "packageShipLabelList": results })))
}

/// Admin: cancel as the marketplace would — whole shipment, or some units of some lines.
pub fn cancel(st: &mut State, id: &str, spec: &Value) -> Result<Value, ApiError> {
    let ctype = spec["cancellationType"]
        .as_str()
        .unwrap_or("MARKETPLACE_CANCELLED")
        .to_string();
    if ![
        "SELLER_REJECTED",
        "MARKETPLACE_CANCELLED",
        "SYSTEM_CANCELLED",
    ]
    .contains(&ctype.as_str())
    {
        return Err(ApiError::invalid_input(format!(
            "unknown cancellationType {ctype}"
        )));
    }
    let reason = spec["reason"]
        .as_str()
        .unwrap_or("BUYER_CANCELLED")
        .to_string();
    let ts = fmt_time(chrono::Utc::now());
    let rec = find(st, id)?;
    let status = status_of(rec);
    if TERMINAL.contains(&status.as_str()) {
        return Err(ApiError::duplicate(format!(
            "shipment '{id}' is {status}; it can no longer be cancelled"
        )));
    }
    let partial: Vec<(String, i64)> = spec["lineItems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["id"].as_str().unwrap_or("").to_string(),
                l["quantity"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    if partial.is_empty() {
        for l in rec.doc["lineItems"].as_array_mut().into_iter().flatten() {
            let open = open_units(l);
            if open > 0 {
                let mut c = l["cancellations"].as_array().cloned().unwrap_or_default();
                c.push(json!({"cancelledQuantity": open, "cancelledTimestamp": ts, "cancellationType": ctype, "cancellationReason": reason}));
                l["cancellations"] = json!(c);
            }
        }
        rec.doc["reason"] = json!(reason);
        change(st, id, Some("CANCELLED"), &format!("cancelled ({ctype})"));
    } else {
        if r(&status) >= r("PACKAGE_CREATED") {
            return Err(ApiError::duplicate(format!(
                "shipment '{id}' is {status}: lines can only be cancelled before packages exist (cancel the whole shipment)"
            )));
        }
        let loc = rec.doc["locationId"].as_str().unwrap_or("").to_string();
        let mut released: Vec<(String, i64)> = Vec::new();
        for (lid, q) in &partial {
            let Some(l) = rec.doc["lineItems"].as_array_mut().and_then(|ls| {
                ls.iter_mut()
                    .find(|l| l["shipmentLineItemId"] == lid.as_str())
            }) else {
                return Err(ApiError::not_found("shipmentLineItemId", lid));
            };
            let open = open_units(l);
            if *q < 1 || *q > open {
                return Err(ApiError::invalid_input(format!(
                    "line '{lid}' has {open} open units; cannot cancel {q}"
                )));
            }
            let mut c = l["cancellations"].as_array().cloned().unwrap_or_default();
            c.push(json!({"cancelledQuantity": q, "cancelledTimestamp": ts, "cancellationType": ctype, "cancellationReason": reason}));
            l["cancellations"] = json!(c);
            released.push((l["merchantSku"].as_str().unwrap_or("").to_string(), *q));
        }
        let mut give_back = Vec::new();
        for (sku, q) in &released {
            if let Some(u) = rec.reserved.get_mut(sku) {
                let take = (*q).min(*u);
                *u -= take;
                give_back.push((sku.clone(), take));
            }
        }
        rec.reserved.retain(|_, u| *u > 0);
        for (sku, take) in give_back {
            if let Some(inv) = st.inventory.get_mut(&(loc.clone(), sku)) {
                inv.sellable_quantity += take;
            }
        }
        let rec = find(st, id)?;
        let all_gone = rec.doc["lineItems"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| open_units(l) == 0);
        change(
            st,
            id,
            all_gone.then_some("CANCELLED"),
            &format!("lines cancelled ({ctype})"),
        );
    }
    Ok(find(st, id)?.doc.clone())
}

/// Admin: move a shipment as Amazon or the carrier would (e.g. SHIPPED, DELIVERED).
pub fn advance(st: &mut State, id: &str, spec: &Value) -> Result<Value, ApiError> {
    let to = spec["status"]
        .as_str()
        .ok_or_else(|| ApiError::invalid_input("status is required"))?
        .to_string();
    if to == "CANCELLED" {
        return cancel(st, id, &json!({}));
    }
    if rank(&to).is_none() {
        return Err(ApiError::invalid_input(format!("unknown status {to}")));
    }
    let rec = find(st, id)?;
    let status = status_of(rec);
    if status == "CANCELLED" {
        return Err(ApiError::duplicate(format!("shipment '{id}' is CANCELLED")));
    }
    if r(&to) < r(&status) {
        return Err(ApiError::unprocessable(format!(
            "shipment '{id}' is {status}; it cannot go back to {to}"
        )));
    }
    if r(&to) >= r("SHIPPED") {
        let pkg_status = if to == "DELIVERED" {
            "DELIVERED"
        } else {
            "SHIPPED"
        };
        for p in rec.doc["packages"].as_array_mut().into_iter().flatten() {
            p["status"] = json!(pkg_status);
        }
    }
    if let Some(sub) = spec["subStatus"].as_str() {
        rec.doc["subStatus"] = json!(sub);
    } else if to == "DELIVERED" {
        rec.doc["subStatus"] = json!("DELIVERED");
    } else if to == "SHIPPED" {
        rec.doc["subStatus"] = json!("PICKED_UP");
    }
    let was_created = status == "CREATED";
    change(st, id, Some(&to), &format!("advanced to {to}"));
    if was_created && r(&to) < r("SHIPPED") {
        reserve(st, id);
    }
    Ok(find(st, id)?.doc.clone())
}
