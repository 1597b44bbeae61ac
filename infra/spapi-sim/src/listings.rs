//! Listings Items 2021-08-01: patchListingsItem for prices (`/attributes/purchasable_offer`
//! with `our_price`), and getListingsItem to read them back.

use rand::Rng;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::gen::currency_for;
use crate::server::{HResult, Req, Resp};
use crate::state::State;

fn issue(code: &str, message: String, attribute: &str) -> Value {
    json!({"code": code, "message": message, "severity": "ERROR", "attributeNames": [attribute], "categories": ["INVALID_ATTRIBUTE"]})
}

/// The price in `value_with_tax` of a purchasable_offer entry, as written.
fn price_of(entry: &Value) -> Option<&Value> {
    entry["our_price"].as_array()?.first()?["schedule"]
        .as_array()?
        .first()?
        .get("value_with_tax")
}

pub fn patch_listings_item(st: &mut State, req: &Req) -> HResult {
    let seller = req.p("sellerId").to_string();
    let sku = req.p("sku").to_string();
    let marketplaces: Vec<String> = req
        .q("marketplaceIds")
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let preview = req.q("mode") == Some("VALIDATION_PREVIEW");
    let body = req.body.clone().unwrap_or(Value::Null);
    let product_type = body["productType"].as_str().unwrap_or("").to_string();
    let mut issues = Vec::new();
    if !st.product_types.contains(&product_type) {
        issues.push(issue(
            "4000001",
            format!("The product type '{product_type}' is not recognized."),
            "productType",
        ));
    }
    let mut prices: Vec<(String, Option<String>)> = Vec::new();
    let patches = body["patches"].as_array().cloned().unwrap_or_default();
    for p in &patches {
        let path = p["path"].as_str().unwrap_or("");
        let op = p["op"].as_str().unwrap_or("");
        let Some(attr) = path
            .strip_prefix("/attributes/")
            .filter(|a| !a.is_empty() && !a.contains('/'))
        else {
            issues.push(issue(
                "4000002",
                format!(
                    "'{path}' is not a top-level listings item attribute (/attributes/<name>)."
                ),
                path,
            ));
            continue;
        };
        if op != "delete" && p["value"].as_array().is_none_or(|v| v.is_empty()) {
            issues.push(issue(
                "4000003",
                format!("The '{op}' patch of '{attr}' needs a non-empty value."),
                attr,
            ));
            continue;
        }
        if attr != "purchasable_offer" {
            continue;
        }
        for entry in p["value"].as_array().into_iter().flatten() {
            let mp = entry["marketplace_id"].as_str().unwrap_or("").to_string();
            if !marketplaces.contains(&mp) {
                issues.push(issue(
                    "4000004",
                    format!("marketplace_id '{mp}' is not among the request's marketplaceIds."),
                    attr,
                ));
                continue;
            }
            if op == "delete" {
                prices.push((mp, None));
                continue;
            }
            if let Some(cur) = entry["currency"].as_str() {
                if cur != currency_for(&mp) {
                    issues.push(issue(
                        "4000005",
                        format!(
                            "currency '{cur}' is not the currency of marketplace '{mp}' ({}).",
                            currency_for(&mp)
                        ),
                        attr,
                    ));
                    continue;
                }
            }
            let price = match price_of(entry) {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => s.parse::<f64>().ok(),
                _ => None,
            };
            match price {
                Some(v) if v >= 0.0 && v.is_finite() => prices.push((mp, Some(format!("{v:.2}")))),
                Some(v) => issues.push(issue(
                    "4000006",
                    format!("our_price value_with_tax {v} must not be negative."),
                    attr,
                )),
                None => issues.push(issue(
                    "4000007",
                    "purchasable_offer needs our_price[0].schedule[0].value_with_tax.".into(),
                    attr,
                )),
            }
        }
    }
    let submission_id = format!("{:032x}", st.rng.random::<u128>());
    let status = if !issues.is_empty() {
        "INVALID"
    } else if preview {
        "VALID"
    } else {
        "ACCEPTED"
    };
    if status == "ACCEPTED" {
        let rec = st.listings.entry(sku.clone()).or_default();
        rec.seller_id = seller;
        rec.product_type = product_type;
        for m in &marketplaces {
            if !rec.marketplace_ids.contains(m) {
                rec.marketplace_ids.push(m.clone());
            }
        }
        for p in &patches {
            if let Some(attr) = p["path"]
                .as_str()
                .and_then(|x| x.strip_prefix("/attributes/"))
            {
                if p["op"] == "delete" {
                    rec.attributes.remove(attr);
                } else {
                    rec.attributes.insert(attr.to_string(), p["value"].clone());
                }
            }
        }
        for (mp, price) in prices {
            match price {
                Some(v) => rec.prices.insert(mp, v),
                None => rec.prices.remove(&mp),
            };
        }
        rec.submissions.push(submission_id.clone());
    }
    Ok(Resp::ok(
        json!({"sku": sku, "status": status, "submissionId": submission_id, "issues": issues}),
    ))
}

pub fn get_listings_item(st: &mut State, req: &Req) -> HResult {
    let sku = req.p("sku");
    let rec = st.listings.get(sku).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("SKU '{sku}' not found in marketplace"),
        )
    })?;
    Ok(Resp::ok(
        json!({"sku": sku, "attributes": rec.attributes, "issues": []}),
    ))
}
