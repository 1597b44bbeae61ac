//! External Fulfillment Inventory 2024-09-11: batchInventory (absolute quantities per
//! location and sku, per-item results in a 207).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::server::{HResult, Req, Resp};
use crate::state::State;

/// `BATCH_SIZE_EXCEED` for more than 10 requests (checked before the schema so the answer
/// carries Amazon's specific code).
pub fn batch_size_error(body: &[u8]) -> Option<ApiError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let n = v["requests"].as_array()?.len();
    (n > 10).then(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BATCH_SIZE_EXCEED",
            "Maximum number for requests supported in batch is 10.",
        )
        .with_details(format!("the batch has {n} requests"))
    })
}

fn item(status: u16, phrase: &str, body: Value) -> Value {
    json!({"status": {"statusCode": status, "reasonPhrase": phrase}, "body": body})
}

fn error_item(
    status: u16,
    phrase: &str,
    loc: &str,
    sku: &str,
    error_type: &str,
    sub: &str,
) -> Value {
    item(
        status,
        phrase,
        json!({"locationId": loc, "skuId": sku, "actionableErrors": [{"errorType": error_type, "errorSubType": sub}]}),
    )
}

pub fn batch_inventory(st: &mut State, req: &Req) -> HResult {
    let requests = req
        .body
        .as_ref()
        .and_then(|b| b["requests"].as_array())
        .cloned()
        .unwrap_or_default();
    let responses: Vec<Value> = requests.iter().map(|r| one(st, r)).collect();
    Ok(Resp {
        status: StatusCode::MULTI_STATUS,
        body: Some(json!({ "responses": responses })),
    })
}

fn one(st: &mut State, r: &Value) -> Value {
    let method = r["method"].as_str().unwrap_or("");
    let uri = r["uri"].as_str().unwrap_or("");
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (loc, sku) = (get("locationId"), get("skuId"));
    let kind = match path {
        "/inventory/update" => "update",
        "/inventory/fetch" => "fetch",
        _ => {
            return error_item(
                400,
                "Invalid Input",
                &loc,
                &sku,
                "INVALID_REQUEST",
                &format!("Unsupported uri '{path}': use /inventory/update or /inventory/fetch"),
            );
        }
    };
    if kind == "update" && method != "POST" {
        return error_item(
            400,
            "Invalid Input",
            &loc,
            &sku,
            "INVALID_REQUEST",
            "An update must use method POST.",
        );
    }
    if loc.is_empty() {
        return error_item(
            400,
            "Invalid Input",
            &loc,
            &sku,
            "INVALID_LOCATION",
            "The uri has no locationId.",
        );
    }
    let Some(location) = st.locations.get(&loc).cloned() else {
        return error_item(
            404,
            "Not Found",
            &loc,
            &sku,
            "INVALID_LOCATION",
            "The requested location does not exist for the seller.",
        );
    };
    if sku.is_empty() || !st.skus.contains(&sku) {
        return error_item(
            400,
            "Invalid Input",
            &loc,
            &sku,
            "INVALID_SKU",
            "The requested Sku does not exist for the seller in requested marketplace.",
        );
    }
    let ma = &r["body"]["marketplaceAttributes"];
    if ma.is_object() {
        let mismatch = ma["marketplaceId"]
            .as_str()
            .is_some_and(|m| m != location.marketplace_id)
            || ma["channelName"]
                .as_str()
                .is_some_and(|c| c != location.channel_name);
        if mismatch {
            return error_item(
                400,
                "Invalid Input",
                &loc,
                &sku,
                "INVALID_MARKETPLACE_ATTRIBUTES",
                "The marketplaceAttributes do not match the location's marketplace and channel.",
            );
        }
    }
    let key = (loc.clone(), sku.clone());
    let reserved = st.reserved(&loc, &sku);
    let attrs =
        json!({"marketplaceId": location.marketplace_id, "channelName": location.channel_name});
    if kind == "update" {
        let Some(q) = r["body"]["quantity"].as_i64() else {
            return error_item(
                400,
                "Invalid Input",
                &loc,
                &sku,
                "INVALID_QUANTITY",
                "An update needs body.quantity.",
            );
        };
        if q < 0 {
            return error_item(
                400,
                "Invalid Input",
                &loc,
                &sku,
                "INVALID_QUANTITY",
                "quantity must not be negative.",
            );
        }
        let csn = r["body"]["clientSequenceNumber"].as_i64();
        let rec = st.inventory.entry(key).or_default();
        if let (Some(new), Some(last)) = (csn, rec.client_sequence_number) {
            if new <= last {
                rec.updates_rejected += 1;
                return item(
                    409,
                    "Conflict",
                    json!({
                        "locationId": loc, "skuId": sku,
                        "sellableQuantity": rec.sellable_quantity, "reservedQuantity": reserved,
                        "clientSequenceNumber": last, "marketplaceAttributes": attrs,
                        "actionableErrors": [{"errorType": "STALE_CLIENT_SEQUENCE_NUMBER",
                            "errorSubType": format!("clientSequenceNumber {new} is not newer than the last applied {last}.")}],
                    }),
                );
            }
        }
        rec.sellable_quantity = q;
        if csn.is_some() {
            rec.client_sequence_number = csn;
        }
        rec.updates_applied += 1;
    }
    let rec = st
        .inventory
        .get(&(loc.clone(), sku.clone()))
        .cloned()
        .unwrap_or_default();
    let mut body = json!({
        "locationId": loc, "skuId": sku,
        "sellableQuantity": rec.sellable_quantity, "reservedQuantity": reserved,
        "marketplaceAttributes": attrs, "actionableErrors": [],
    });
    if let Some(c) = rec.client_sequence_number {
        body["clientSequenceNumber"] = json!(c);
    }
    item(200, "Success", body)
}
