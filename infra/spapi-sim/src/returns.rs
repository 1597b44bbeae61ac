//! External Fulfillment Returns 2024-09-11: listReturns (filters, nextToken, empty pages) and getReturn.

use chrono::DateTime;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::server::{HResult, Req, Resp};
use crate::shipments::{decode_token, encode_token, paginate};
use crate::state::{fmt_time, State};

pub const STATUSES: [&str; 15] = [
    "CREATED",
    "CARRIER_NOTIFIED_TO_PICK_UP_FROM_CUSTOMER",
    "CARRIER_OUT_FOR_PICK_UP_FROM_CUSTOMER",
    "CUSTOMER_CANCELLED_PICK_UP",
    "CUSTOMER_RESCHEDULED_PICK_UP",
    "PICKED_FROM_CUSTOMER",
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
    "REPLANNED",
    "CUSTOMER_DROPPED_OFF",
    "PARTIALLY_PROCESSED",
    "PROCESSED",
    "REJECTED",
    "CANCELLED",
];

fn t(v: &Value) -> Option<DateTime<chrono::FixedOffset>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

pub fn list_returns(st: &mut State, req: &Req) -> HResult {
    let q = |k: &str| req.q(k).and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    if (req.q("lastUpdatedSince").is_some() || req.q("lastUpdatedUntil").is_some())
        && (req.q("returnLocationId").is_none() || req.q("status").is_none())
    {
        return Err(ApiError::invalid_input(
            "Invalid input: lastUpdatedSince/lastUpdatedUntil need returnLocationId and status",
        ));
    }
    // Deprecated aliases of createdSince/createdUntil.
    let created_since = q("createdSince").or(q("lastUpdatedAfter"));
    let created_until = q("createdUntil").or(q("lastUpdatedBefore"));
    let (upd_since, upd_until) = (q("lastUpdatedSince"), q("lastUpdatedUntil"));
    for (a, b, n) in [
        (created_since, created_until, "createdSince"),
        (upd_since, upd_until, "lastUpdatedSince"),
    ] {
        if let (Some(a), Some(b)) = (a, b) {
            if a > b {
                return Err(ApiError::invalid_input(format!(
                    "Invalid input, '{n}': '{a}' can't be higher than '{b}'"
                )));
            }
        }
    }
    let max = req
        .q("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(10)
        .max(1);
    let keys = [
        "returnLocationId",
        "rmaId",
        "status",
        "reverseTrackingId",
        "createdSince",
        "createdUntil",
        "lastUpdatedSince",
        "lastUpdatedUntil",
        "lastUpdatedAfter",
        "lastUpdatedBefore",
    ];
    let fingerprint = keys
        .iter()
        .map(|k| format!("{k}={}", req.q(k).unwrap_or("")))
        .collect::<Vec<_>>()
        .join("&");
    let after = match req.q("nextToken") {
        Some(tok) => Some(decode_token(tok, &fingerprint, "nextToken")?),
        None => None,
    };
    let items: Vec<((String, String), Value)> = st
        .returns
        .values()
        .filter(|r| {
            req.q("returnLocationId")
                .is_none_or(|l| r["returnLocationId"] == l)
        })
        .filter(|r| {
            req.q("rmaId")
                .is_none_or(|m| r["returnMetadata"]["rmaId"] == m)
        })
        .filter(|r| req.q("status").is_none_or(|s| r["status"] == s))
        .filter(|r| {
            req.q("reverseTrackingId")
                .is_none_or(|x| r["returnShippingInfo"]["reverseTrackingInfo"]["trackingId"] == x)
        })
        .filter(|r| {
            let c = t(&r["creationDateTime"]);
            let u = t(&r["lastUpdatedDateTime"]);
            created_since.is_none_or(|a| c.is_some_and(|c| c >= a))
                && created_until.is_none_or(|b| c.is_some_and(|c| c <= b))
                && upd_since.is_none_or(|a| u.is_some_and(|u| u >= a))
                && upd_until.is_none_or(|b| u.is_some_and(|u| u <= b))
        })
        .map(|r| {
            let key = (
                r["creationDateTime"].as_str().unwrap_or("").to_string(),
                r["id"].as_str().unwrap_or("").to_string(),
            );
            (key, r.clone())
        })
        .collect();
    let (page, next) = paginate(st, items, after, max);
    let mut body = json!({ "returns": page });
    if let Some(k) = next {
        body["nextToken"] = json!(encode_token(&k, &fingerprint));
    }
    Ok(Resp::ok(body))
}

pub fn get_return(st: &mut State, req: &Req) -> HResult {
    let id = req.p("returnId");
    st.returns
        .get(id)
        .cloned()
        .map(Resp::ok)
        .ok_or_else(|| ApiError::not_found("returnId", id))
}

/// Admin: move a return to any status of the model's enum.
pub fn set_status(st: &mut State, id: &str, status: &str) -> Result<Value, ApiError> {
    if !STATUSES.contains(&status) {
        return Err(ApiError::invalid_input(format!(
            "unknown return status {status}"
        )));
    }
    let now = fmt_time(st.now());
    let r = st
        .returns
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found("returnId", id))?;
    r["status"] = json!(status);
    r["lastUpdatedDateTime"] = json!(now);
    match status {
        "PICKED_FROM_CUSTOMER" | "CUSTOMER_DROPPED_OFF" => {
            r["returnShippingInfo"]["pickupDateTime"] = json!(now)
        }
        "DELIVERED" => r["returnShippingInfo"]["deliveryDateTime"] = json!(now),
        _ => {}
    }
    Ok(r.clone())
}
