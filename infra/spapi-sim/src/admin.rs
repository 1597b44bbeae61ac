//! The admin API under `/_sim/` (JSON), which Amazon's models do not contain. Errors come back
//! as an `ErrorList` with a 4xx status. Every route is documented in the README.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::faults::{FaultConfig, FaultKind};
use crate::notify::{Destination, NotifyOptions};
use crate::ratelimit::RateLimit;
use crate::state::{Location, LwaCredentials, Shared};
use crate::{returns, shipments};

type S = AxState<Arc<Shared>>;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/state", get(state))
        .route("/reset", post(reset))
        .route("/lwa/credentials", put(set_credentials))
        .route("/lwa/expire", post(expire_tokens))
        .route("/roles", put(set_refused_roles))
        .route("/locations", post(create_location).get(list_locations))
        .route("/skus", post(add_skus))
        .route("/product-types", post(add_product_types))
        .route("/inventory", put(set_inventory).get(get_inventory))
        .route("/truth", put(set_truth))
        .route("/oversold", get(oversold))
        .route("/shipments", post(create_shipment))
        .route("/shipments/random", post(random_shipments))
        .route("/shipments/{id}", get(get_shipment))
        .route("/shipments/{id}/cancel", post(cancel_shipment))
        .route("/shipments/{id}/advance", post(advance_shipment))
        .route("/returns", post(create_return))
        .route("/returns/{id}", get(get_return))
        .route("/returns/{id}/status", post(return_status))
        .route("/calls", get(calls))
        .route("/listings", get(listings))
        .route("/faults", get(get_faults).put(set_faults))
        .route("/faults/script", post(script_faults))
        .route("/rate-limits", get(get_limits).put(set_limits))
        .route("/config", put(set_config))
        .route("/notifications", get(notifications))
        .route("/notifications/destinations", post(add_destination))
        .route("/notifications/options", put(notify_options))
        .route("/documents/{token}", get(document))
}

fn reply(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => (e.status, Json(e.body())).into_response(),
    }
}

fn bad(msg: impl Into<String>) -> Response {
    reply(Err(ApiError::invalid_input(msg)))
}

async fn state(AxState(shared): S) -> Json<Value> {
    Json(shared.lock().snapshot())
}

async fn reset(AxState(shared): S) -> Response {
    let mut st = shared.lock();
    st.shipments.clear();
    st.returns.clear();
    st.inventory.clear();
    st.truth.clear();
    st.oversold.clear();
    st.listings.clear();
    st.calls.clear();
    st.tokens.clear();
    st.documents.clear();
    Json(json!({"reset": true})).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<LwaCredentials>),
    One(LwaCredentials),
}

async fn set_credentials(AxState(shared): S, Json(body): Json<OneOrMany>) -> Response {
    let creds = match body {
        OneOrMany::Many(v) => v,
        OneOrMany::One(c) => vec![c],
    };
    if creds
        .iter()
        .any(|c| c.client_id.is_empty() || c.client_secret.is_empty() || c.refresh_token.is_empty())
    {
        return bad("client_id, client_secret and refresh_token must not be empty");
    }
    let n = creds.len();
    shared.lock().credentials = creds;
    Json(json!({"credentials": n})).into_response()
}

/// `{"refused": ["externalFulfillmentShipments", ...]}`: the model files (by name without the
/// date and `.json`) whose operations the application's roles do not cover; `[]` restores all.
async fn set_refused_roles(AxState(shared): S, Json(spec): Json<Value>) -> Response {
    let Some(list) = spec["refused"].as_array() else {
        return bad("refused must be a list of model names");
    };
    let names: BTreeSet<String> = list
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let n = names.len();
    shared.lock().refused_models = names;
    Json(json!({"refused": n})).into_response()
}

async fn expire_tokens(AxState(shared): S) -> Response {
    let mut st = shared.lock();
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let n = st.tokens.len();
    for exp in st.tokens.values_mut() {
        *exp = past;
    }
    Json(json!({"expired": n})).into_response()
}

async fn create_location(AxState(shared): S, Json(loc): Json<Location>) -> Response {
    if loc.location_id.is_empty() || loc.location_id.len() > 36 {
        return bad("locationId must have 1 to 36 characters");
    }
    if !["FBA", "MFN"].contains(&loc.channel_name.as_str()) {
        return bad("channelName must be FBA (Seller Flex) or MFN");
    }
    if !["MARKETPLACE", "SELF"].contains(&loc.shipping_type.as_str()) {
        return bad("shippingType must be MARKETPLACE or SELF");
    }
    shared
        .lock()
        .locations
        .insert(loc.location_id.clone(), loc.clone());
    Json(json!(loc)).into_response()
}

async fn list_locations(AxState(shared): S) -> Json<Value> {
    Json(json!(shared.lock().locations.values().collect::<Vec<_>>()))
}

async fn add_skus(AxState(shared): S, Json(body): Json<Value>) -> Response {
    let Some(skus) = body["skus"].as_array() else {
        return bad("body must be {\"skus\": [..]}");
    };
    let mut st = shared.lock();
    for s in skus.iter().filter_map(Value::as_str) {
        st.skus.insert(s.to_string());
    }
    Json(json!({"skus": st.skus.len()})).into_response()
}

async fn add_product_types(AxState(shared): S, Json(body): Json<Value>) -> Response {
    let Some(list) = body["productTypes"].as_array() else {
        return bad("body must be {\"productTypes\": [..]}");
    };
    let mut st = shared.lock();
    for s in list.iter().filter_map(Value::as_str) {
        st.product_types.insert(s.to_string());
    }
    Json(json!({"productTypes": st.product_types})).into_response()
}

async fn set_inventory(AxState(shared): S, Json(body): Json<Value>) -> Response {
    let (Some(loc), Some(sku), Some(q)) = (
        body["locationId"].as_str(),
        body["skuId"].as_str(),
        body["sellableQuantity"].as_i64(),
    ) else {
        return bad("body must be {locationId, skuId, sellableQuantity}");
    };
    let mut st = shared.lock();
    if !st.locations.contains_key(loc) {
        return reply(Err(ApiError::not_found("locationId", loc)));
    }
    st.skus.insert(sku.to_string());
    st.inventory
        .entry((loc.to_string(), sku.to_string()))
        .or_default()
        .sellable_quantity = q;
    Json(inventory_view(&st, loc, sku)).into_response()
}

async fn set_truth(AxState(shared): S, Json(body): Json<Value>) -> Response {
    let (Some(loc), Some(sku), Some(units)) = (
        body["locationId"].as_str(),
        body["skuId"].as_str(),
        body["units"].as_i64(),
    ) else {
        return bad("body must be {locationId, skuId, units}");
    };
    let mut st = shared.lock();
    st.truth.insert((loc.to_string(), sku.to_string()), units);
    Json(json!({"locationId": loc, "skuId": sku, "units": units})).into_response()
}

async fn oversold(AxState(shared): S) -> Json<Value> {
    Json(shared.lock().oversold_view())
}

fn inventory_view(st: &crate::state::State, loc: &str, sku: &str) -> Value {
    let rec = st
        .inventory
        .get(&(loc.to_string(), sku.to_string()))
        .cloned()
        .unwrap_or_default();
    json!({
        "locationId": loc, "skuId": sku,
        "sellableQuantity": rec.sellable_quantity,
        "reservedQuantity": st.reserved(loc, sku),
        "clientSequenceNumber": rec.client_sequence_number,
        "updatesApplied": rec.updates_applied,
        "updatesRejected": rec.updates_rejected,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvQuery {
    location_id: String,
    sku_id: String,
}

async fn get_inventory(AxState(shared): S, Query(q): Query<InvQuery>) -> Json<Value> {
    Json(inventory_view(&shared.lock(), &q.location_id, &q.sku_id))
}

async fn create_shipment(AxState(shared): S, Json(spec): Json<Value>) -> Response {
    reply(shipments::create(&mut shared.lock(), &spec))
}

async fn random_shipments(AxState(shared): S, Json(spec): Json<Value>) -> Response {
    let count = spec["count"].as_u64().unwrap_or(1);
    if count > 10_000 {
        return bad("count must be at most 10000");
    }
    let mut st = shared.lock();
    let mut ids = Vec::new();
    let mut base = spec.clone();
    if let Some(o) = base.as_object_mut() {
        o.remove("count");
        o.remove("id");
    }
    let mut refused = 0;
    for _ in 0..count {
        match shipments::create(&mut st, &base) {
            Ok(doc) => ids.push(doc["id"].clone()),
            // A buyer could not buy it: nothing sellable. Not an error for a random batch.
            Err(e) if e.code == shipments::NOTHING_SELLABLE => refused += 1,
            Err(e) => return reply(Err(e)),
        }
    }
    Json(json!({"shipmentIds": ids, "refusedNothingSellable": refused})).into_response()
}

async fn get_shipment(AxState(shared): S, Path(id): Path<String>) -> Response {
    let st = shared.lock();
    let Some(s) = st.shipments.get(&id) else {
        return reply(Err(ApiError::not_found("shipmentId", &id)));
    };
    Json(json!({
        "shipment": s.doc,
        "confirmRequests": s.confirm_requests,
        "confirmApplied": s.confirm_applied,
        "rejectApplied": s.reject_applied,
        "invoice": s.invoice.is_some(),
        "labels": s.labels,
        "labelGenerations": s.label_generations,
        "history": s.history,
        "reserved": s.reserved,
    }))
    .into_response()
}

async fn cancel_shipment(
    AxState(shared): S,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let spec = body.map(|b| b.0).unwrap_or(json!({}));
    reply(shipments::cancel(&mut shared.lock(), &id, &spec))
}

async fn advance_shipment(
    AxState(shared): S,
    Path(id): Path<String>,
    Json(spec): Json<Value>,
) -> Response {
    reply(shipments::advance(&mut shared.lock(), &id, &spec))
}

async fn create_return(AxState(shared): S, Json(spec): Json<Value>) -> Response {
    let mut st = shared.lock();
    if let Some(s) = spec["status"].as_str() {
        if !returns::STATUSES.contains(&s) {
            return bad(format!("unknown return status {s}"));
        }
    }
    match crate::gen::return_doc(&mut st, &spec) {
        Ok(doc) => {
            let id = doc["id"].as_str().unwrap_or("").to_string();
            if st.returns.contains_key(&id) {
                return reply(Err(ApiError::duplicate(format!(
                    "return {id} already exists"
                ))));
            }
            st.returns.insert(id, doc.clone());
            Json(doc).into_response()
        }
        Err(e) => reply(Err(e)),
    }
}

async fn get_return(AxState(shared): S, Path(id): Path<String>) -> Response {
    let st = shared.lock();
    reply(
        st.returns
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("returnId", &id)),
    )
}

async fn return_status(
    AxState(shared): S,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(status) = body["status"].as_str() else {
        return bad("body must be {status}");
    };
    reply(returns::set_status(&mut shared.lock(), &id, status))
}

#[derive(Deserialize)]
struct CallsQuery {
    operation: Option<String>,
}

async fn calls(AxState(shared): S, Query(q): Query<CallsQuery>) -> Json<Value> {
    let st = shared.lock();
    let v: Vec<_> = st
        .calls
        .iter()
        .filter(|c| q.operation.as_ref().is_none_or(|o| &c.operation == o))
        .collect();
    Json(json!(v))
}

async fn listings(AxState(shared): S) -> Json<Value> {
    Json(json!(shared.lock().listings))
}

async fn get_faults(AxState(shared): S) -> Json<Value> {
    Json(json!(shared.lock().faults.current()))
}

async fn set_faults(AxState(shared): S, Json(cfg): Json<FaultConfig>) -> Response {
    let mut st = shared.lock();
    st.faults.set(cfg);
    Json(json!(st.faults.current())).into_response()
}

#[derive(Deserialize)]
struct ScriptBody {
    operation: Option<String>,
    script: Vec<FaultKind>,
}

async fn script_faults(AxState(shared): S, Json(b): Json<ScriptBody>) -> Response {
    let mut st = shared.lock();
    let mut cfg = st.faults.current();
    match b.operation {
        Some(op) => cfg
            .operations
            .entry(op)
            .or_default()
            .script
            .extend(b.script),
        None => cfg.global.script.extend(b.script),
    }
    st.faults.set(cfg);
    Json(json!(st.faults.current())).into_response()
}

async fn get_limits(AxState(shared): S) -> Json<Value> {
    Json(limits_view(&shared.lock()))
}

fn limits_view(st: &crate::state::State) -> Value {
    let ops = crate::validation::SERVED;
    let limits: serde_json::Map<String, Value> = ops
        .iter()
        .map(|o| (o.to_string(), json!(st.limiter.limit(o))))
        .collect();
    json!({"enabled": st.limiter.enabled, "limits": limits})
}

async fn set_limits(AxState(shared): S, Json(body): Json<Value>) -> Response {
    let mut st = shared.lock();
    if let Some(e) = body["enabled"].as_bool() {
        st.limiter.enabled = e;
    }
    if let Some(op) = body["operation"].as_str() {
        let (Some(rate), Some(burst)) = (body["rate"].as_f64(), body["burst"].as_f64()) else {
            return bad("body must be {operation, rate, burst}");
        };
        if rate <= 0.0 || burst < 1.0 {
            return bad("rate must be > 0 and burst >= 1");
        }
        st.limiter.set(op, RateLimit { rate, burst });
    }
    Json(limits_view(&st)).into_response()
}

async fn set_config(AxState(shared): S, Json(body): Json<Value>) -> Response {
    let mut st = shared.lock();
    if let Some(r) = body["emptyPageRate"].as_f64() {
        if !(0.0..1.0).contains(&r) {
            return bad("emptyPageRate must be in [0, 1)");
        }
        st.empty_page_rate = r;
    }
    Json(json!({"emptyPageRate": st.empty_page_rate})).into_response()
}

async fn notifications(AxState(shared): S) -> Json<Value> {
    let st = shared.lock();
    let log = st.notify.sent.lock().map(|l| l.clone()).unwrap_or_default();
    Json(json!(log))
}

async fn add_destination(AxState(shared): S, Json(mut d): Json<Destination>) -> Response {
    let ok = match (&d.sqs_queue_url, &d.url) {
        (Some(q), None) => q.starts_with("http"),
        (None, Some(u)) => u.starts_with("http://") || u.starts_with("https://"),
        _ => false,
    };
    if !ok {
        return bad("give exactly one of sqsQueueUrl (a queue URL) or url (http/https)");
    }
    let mut st = shared.lock();
    d.destination_id = format!("dest-{}", st.notify.destinations.len() + 1);
    st.notify.destinations.push(d.clone());
    Json(json!(d)).into_response()
}

async fn notify_options(AxState(shared): S, Json(o): Json<NotifyOptions>) -> Response {
    if !(0.0..=1.0).contains(&o.duplicate_rate) {
        return bad("duplicateRate must be in [0, 1]");
    }
    shared.lock().notify.options = o.clone();
    Json(json!(o)).into_response()
}

#[derive(Deserialize)]
struct DocQuery {
    #[serde(rename = "X-Amz-Signature")]
    signature: Option<String>,
}

async fn document(
    AxState(shared): S,
    Path(token): Path<String>,
    Query(q): Query<DocQuery>,
) -> Response {
    let st = shared.lock();
    let denied = |m: &str| {
        (
            StatusCode::FORBIDDEN,
            [("content-type", "application/xml")],
            format!("<Error><Code>AccessDenied</Code><Message>{m}</Message></Error>"),
        )
            .into_response()
    };
    let Some(d) = st.documents.get(&token) else {
        return denied("Access Denied");
    };
    if q.signature.as_deref() != Some(d.signature.as_str()) {
        return denied(
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    if d.created.elapsed().as_secs() > 900 {
        return denied("Request has expired");
    }
    (
        StatusCode::OK,
        [("content-type", d.content_type.clone())],
        d.bytes.clone(),
    )
        .into_response()
}
