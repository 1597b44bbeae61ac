//! Fulfilment: packed, shipped, cancel, invoice and reprint (logic in `flexbridge::fulfilment`).
//!
//! - `POST /v1/shipments/{id}/packed` `{packages: [Package]}` → 202; the label job is queued.
//!   A packing that does not fit the shipment is a 422 naming each problem (nothing written).
//! - `POST /v1/shipments/{id}/shipped` → 200 once Amazon has every package SHIPPED.
//! - `POST /v1/shipments/{id}/cancel` `{reason: OUT_OF_STOCK|CUSTOMER_REQUESTED, lines?}` → 202
//!   (queued for REJECT, or kept local and held when auto-cancel is off); 409 when Amazon's
//!   status does not allow rejection.
//! - `PUT /v1/shipments/{id}/invoice` `{format?: PDF|PNG, content: base64}` → the seller's invoice.
//! - `POST /v1/shipments/{id}/reprint` `{reason, packageIds?}` → 202; new labels (REGENERATE).
//! - `GET /v1/shipments/{id}/labels` → fresh links to the label and invoice files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use flexbridge::config::keys;
use flexbridge::fulfilment::api::{CancelRequest, InvoiceUpload, PackedRequest, ReprintRequest};
use flexbridge::fulfilment::FulfilmentService;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::orders::{invocation, orders};
use crate::{reply, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/shipments/{shipment_id}/packed", post(packed))
        .route("/v1/shipments/{shipment_id}/shipped", post(shipped))
        .route("/v1/shipments/{shipment_id}/cancel", post(cancel))
        .route("/v1/shipments/{shipment_id}/invoice", put(invoice))
        .route("/v1/shipments/{shipment_id}/reprint", post(reprint))
        .route("/v1/shipments/{shipment_id}/labels", get(labels))
}

async fn service(state: &AppState) -> Result<Arc<FulfilmentService>, ApiError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<FulfilmentService>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = state.env.require(keys::SHIPMENTS_TABLE)?.to_string();
    if let Some(s) = cache.lock().expect("fulfilment cache").get(&key) {
        return Ok(s.clone());
    }
    let orders = orders(state).await?.as_ref().clone();
    let built = Arc::new(FulfilmentService::with_orders(&state.env, orders).await?);
    Ok(cache
        .lock()
        .expect("fulfilment cache")
        .entry(key)
        .or_insert(built)
        .clone())
}

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn accepted(v: impl serde::Serialize) -> Answer {
    Ok((StatusCode::ACCEPTED, reply::body(v)?))
}

async fn packed(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PackedRequest>,
) -> Answer {
    let f = service(&state).await?.fulfiller(&invocation());
    accepted(f.packed(&id, req).await?)
}

async fn shipped(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let inv = invocation();
    let f = service(&state).await?.fulfiller(&inv);
    Ok((StatusCode::OK, reply::body(f.shipped(&id, &inv).await?)?))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CancelRequest>,
) -> Answer {
    let f = service(&state).await?.fulfiller(&invocation());
    accepted(f.cancel(&id, req).await?)
}

async fn invoice(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<InvoiceUpload>,
) -> Answer {
    let f = service(&state).await?.fulfiller(&invocation());
    Ok((
        StatusCode::OK,
        reply::body(f.upload_invoice(&id, req).await?)?,
    ))
}

async fn reprint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReprintRequest>,
) -> Answer {
    let f = service(&state).await?.fulfiller(&invocation());
    accepted(f.reprint(&id, req).await?)
}

async fn labels(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let f = service(&state).await?.fulfiller(&invocation());
    Ok((StatusCode::OK, Json(f.links(&id).await?)))
}
