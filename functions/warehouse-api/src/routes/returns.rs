//! Returns, as the warehouse sees them.
//!
//! - `GET /v1/returns/{returnId}`: the stored return.
//! - `GET /v1/returns?stage=open|closed|unreadable&since=<RFC 3339>&limit=<1..100>&nextToken=<token>`.
//! - `POST /v1/returns/{returnId}/received` `{"sellable": 1, "unsellable": 0}`: the return
//!   arrived; it is closed and the sellable units are recorded as stock to add back at the
//!   location. Repeating the same report is a no-op; a different one for a closed return is 409.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use flexbridge::shipment::{ReturnReceipt, ReturnStage};
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::guard::Effect;
use crate::routes::orders::ListQuery;
use crate::{reply, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/returns", get(list_returns))
        .route("/v1/returns/{return_id}", get(get_return))
        .route("/v1/returns/{return_id}/received", post(received))
}

async fn list_returns(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let stage = match q.stage.as_deref().or(q.status.as_deref()) {
        None => ReturnStage::Open,
        Some(s) => ReturnStage::parse(s)
            .map_err(|e| ApiError::bad_request("invalid_stage", e.to_string()))?,
    };
    let orders = state.orders().await?;
    let page = orders
        .shipments
        .list_returns(stage, q.since()?, q.limit()?, q.next_token.as_deref())
        .await?;
    Ok(reply::page("returns", page))
}

async fn get_return(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().await?;
    let r = orders.shipments.get_return(&id).await?;
    reply::found(r, || format!("return {id}"))
}

async fn received(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
    JsonBody(receipt): JsonBody<ReturnReceipt>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().await?;
    if effect.claim.is_retaken() {
        // An earlier attempt may have closed it with this very receipt: answer with it.
        if let Some(r) = orders.shipments.get_return(&id).await? {
            if r.stage == ReturnStage::Closed && r.receipt == Some(receipt) {
                return reply::body(r);
            }
        }
    }
    let inv = &effect.invocation;
    let r = orders.returns(inv).await?.receive(&id, receipt).await?;
    reply::body(r)
}
