//! The Notifications API (v1): destinations (grantless) and subscriptions, as bookkeeping.
//! Deliveries still go where the admin API's notification destinations say (see `notify`);
//! an SQS ARN registered here names a queue in the seller's account, which we cannot reach.

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::server::{HResult, Req, Resp};
use crate::state::State;

/// Operations Amazon serves only with a grantless token (LWA `client_credentials`, scope
/// `sellingpartnerapi::notifications`); the other Notifications operations need the seller's.
pub const GRANTLESS: [&str; 5] = [
    "getDestinations",
    "createDestination",
    "getDestination",
    "deleteDestination",
    "deleteSubscriptionById",
];

/// Every Notifications operation the simulator serves.
pub const OPERATIONS: [&str; 8] = [
    "getDestinations",
    "createDestination",
    "getDestination",
    "deleteDestination",
    "getSubscription",
    "createSubscription",
    "getSubscriptionById",
    "deleteSubscriptionById",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "Conflict", message)
}

/// A UUID-shaped ID from the seeded generator, so runs with one seed repeat.
fn new_id(st: &mut State) -> String {
    let b: [u8; 16] = st.rng.random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn notification_type(req: &Req) -> Result<String, ApiError> {
    let t = req.p("notificationType");
    let ok = t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(invalid(format!(
            "Invalid input '{t}' for parameter 'notificationType': not a notification type"
        )));
    }
    Ok(t.to_string())
}

pub fn get_destinations(st: &mut State, _req: &Req) -> HResult {
    Ok(Resp::ok(json!({
        "payload": st.destinations.values().cloned().collect::<Vec<_>>()
    })))
}

pub fn create_destination(st: &mut State, req: &Req) -> HResult {
    let body = req.body.clone().unwrap_or(Value::Null);
    let name = body["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(invalid("name must not be empty"));
    }
    let spec = &body["resourceSpecification"];
    let resource = match (spec.get("sqs"), spec.get("eventBridge")) {
        (Some(sqs), None) => {
            let arn = sqs["arn"].as_str().unwrap_or("");
            if st
                .destinations
                .values()
                .any(|d| d["resource"]["sqs"]["arn"].as_str() == Some(arn))
            {
                return Err(conflict(format!(
                    "A destination for the SQS queue {arn} already exists."
                )));
            }
            json!({ "sqs": { "arn": arn } })
        }
        (None, Some(eb)) => {
            let (account, region) = (
                eb["accountId"].as_str().unwrap_or(""),
                eb["region"].as_str().unwrap_or(""),
            );
            if st.destinations.values().any(|d| {
                d["resource"]["eventBridge"]["accountId"].as_str() == Some(account)
                    && d["resource"]["eventBridge"]["region"].as_str() == Some(region)
            }) {
                return Err(conflict(format!(
                    "A destination for EventBridge in account {account}, region {region} already exists."
                )));
            }
            let source = format!("aws.partner/sellingpartnerapi.amazon/{}", &new_id(st)[..8]);
            json!({ "eventBridge": { "name": source, "region": region, "accountId": account } })
        }
        _ => {
            return Err(invalid(
                "resourceSpecification must name exactly one resource: sqs or eventBridge",
            ))
        }
    };
    let destination = json!({
        "name": name,
        "destinationId": new_id(st),
        "resource": resource,
    });
    let id = destination["destinationId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    st.destinations.insert(id, destination.clone());
    Ok(Resp::ok(json!({ "payload": destination })))
}

pub fn get_destination(st: &mut State, req: &Req) -> HResult {
    let id = req.p("destinationId");
    match st.destinations.get(id) {
        Some(d) => Ok(Resp::ok(json!({ "payload": d }))),
        None => Err(not_found(format!("Destination {id} was not found."))),
    }
}

pub fn delete_destination(st: &mut State, req: &Req) -> HResult {
    let id = req.p("destinationId");
    if !st.destinations.contains_key(id) {
        return Err(not_found(format!("Destination {id} was not found.")));
    }
    if let Some(s) = st
        .subscriptions
        .values()
        .find(|s| s["destinationId"].as_str() == Some(id))
    {
        return Err(conflict(format!(
            "Destination {id} has subscription {}; delete the subscription first.",
            s["subscriptionId"].as_str().unwrap_or("")
        )));
    }
    st.destinations.remove(id);
    Ok(Resp::ok(json!({})))
}

pub fn get_subscription(st: &mut State, req: &Req) -> HResult {
    let t = notification_type(req)?;
    let found = st.subscriptions.get(&t).filter(|s| {
        req.q("payloadVersion")
            .is_none_or(|v| s["payloadVersion"] == v)
    });
    match found {
        Some(s) => Ok(Resp::ok(json!({ "payload": s }))),
        None => Err(not_found(format!(
            "No subscription for notification type {t} was found."
        ))),
    }
}

pub fn create_subscription(st: &mut State, req: &Req) -> HResult {
    let t = notification_type(req)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    let destination_id = body["destinationId"].as_str().unwrap_or("").to_string();
    let payload_version = body["payloadVersion"].as_str().unwrap_or("").to_string();
    if payload_version.is_empty() {
        return Err(invalid("payloadVersion must not be empty"));
    }
    if !st.destinations.contains_key(&destination_id) {
        return Err(invalid(format!(
            "Invalid input '{destination_id}' for parameter 'destinationId': no such destination"
        )));
    }
    if let Some(existing) = st.subscriptions.get(&t) {
        return Err(conflict(format!(
            "Subscription {} for notification type {t} already exists.",
            existing["subscriptionId"].as_str().unwrap_or("")
        )));
    }
    let mut subscription = json!({
        "subscriptionId": new_id(st),
        "payloadVersion": payload_version,
        "destinationId": destination_id,
    });
    if let Some(d) = body.get("processingDirective") {
        subscription["processingDirective"] = d.clone();
    }
    st.subscriptions.insert(t, subscription.clone());
    Ok(Resp::ok(json!({ "payload": subscription })))
}

fn by_id<'a>(st: &'a State, req: &Req) -> Result<(String, &'a Value), ApiError> {
    let t = notification_type(req)?;
    let id = req.p("subscriptionId");
    match st.subscriptions.get(&t) {
        Some(s) if s["subscriptionId"] == id => Ok((t, s)),
        _ => Err(not_found(format!(
            "Subscription {id} for notification type {t} was not found."
        ))),
    }
}

pub fn get_subscription_by_id(st: &mut State, req: &Req) -> HResult {
    let (_, s) = by_id(st, req)?;
    Ok(Resp::ok(json!({ "payload": s })))
}

pub fn delete_subscription_by_id(st: &mut State, req: &Req) -> HResult {
    let (t, _) = by_id(st, req)?;
    st.subscriptions.remove(&t);
    Ok(Resp::ok(json!({})))
}
