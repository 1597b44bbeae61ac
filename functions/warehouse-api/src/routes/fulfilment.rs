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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use flexbridge::fulfilment::api::{CancelRequest, InvoiceUpload, PackedRequest, ReprintRequest};
use flexbridge::runtime::Invocation;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::guard::Effect;
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

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn accepted(v: impl serde::Serialize) -> Answer {
    Ok((StatusCode::ACCEPTED, reply::body(v)?))
}

async fn packed(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PackedRequest>,
) -> Answer {
    let f = state.fulfilment().await?.fulfiller(&effect.invocation);
    accepted(f.packed(&id, req).await?)
}

async fn shipped(State(state): State<AppState>, effect: Effect, Path(id): Path<String>) -> Answer {
    let inv = &effect.invocation;
    let f = state.fulfilment().await?.fulfiller(inv);
    Ok((StatusCode::OK, reply::body(f.shipped(&id, inv).await?)?))
}

async fn cancel(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CancelRequest>,
) -> Answer {
    let f = state.fulfilment().await?.fulfiller(&effect.invocation);
    accepted(f.cancel(&id, req).await?)
}

async fn invoice(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<InvoiceUpload>,
) -> Answer {
    let f = state.fulfilment().await?.fulfiller(&effect.invocation);
    Ok((
        StatusCode::OK,
        reply::body(f.upload_invoice(&id, req).await?)?,
    ))
}

async fn reprint(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReprintRequest>,
) -> Answer {
    let f = state.fulfilment().await?.fulfiller(&effect.invocation);
    accepted(f.reprint(&id, req).await?)
}

async fn labels(
    State(state): State<AppState>,
    Extension(inv): Extension<Invocation>,
    Path(id): Path<String>,
) -> Answer {
    let f = state.fulfilment().await?.fulfiller(&inv);
    Ok((StatusCode::OK, Json(f.links(&id).await?)))
}
