//! Shipments, for a warehouse that missed an event or must decide about a held shipment, and
//! the HTTPS relay for Amazon's notifications.
//!
//! - `GET /v1/shipments/{shipmentId}`: the stored shipment (lines, units, ship-by, priority,
//!   stage, hold reasons; never the buyer's address).
//! - `GET /v1/shipments?stage=<stage>&since=<RFC 3339>&limit=<1..100>&nextToken=<token>`: by
//!   stage (`received`, `held`, `confirmed`, `handed_over`, `packed`, `labelled`, `rejected`, `cancelled`, `shipped`,
//!   `unreadable`: Amazon's data could not be read, the `unreadable` field says why;
//!   `status` is accepted as the parameter name too) and time of our last change, oldest first.
//! - `POST /v1/shipments/{shipmentId}/release`: confirm a held shipment anyway.
//! - `POST /v1/shipments/{shipmentId}/reject` `{"reason": "OUT_OF_STOCK" | "CUSTOMER_REQUESTED"}`:
//!   reject a held shipment at Amazon (only while its status allows rejection).
//! - `POST /v1/notifications`: a relayed `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` envelope
//!   (either casing), signed like every warehouse request; handled like the SQS queue's.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use flexbridge::orders::notifications::NotificationHandler;
use flexbridge::orders::ports::RejectReason;
use flexbridge::shipment::Stage;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::guard::Effect;
use crate::{reply, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/shipments", get(list_shipments))
        .route("/v1/shipments/{shipment_id}", get(get_shipment))
        .route("/v1/shipments/{shipment_id}/release", post(release))
        .route("/v1/shipments/{shipment_id}/reject", post(reject))
        .route("/v1/notifications", post(relay_notification))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub next_token: Option<String>,
}

impl ListQuery {
    pub(crate) fn since(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.since
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ApiError::bad_request(
                            "invalid_since",
                            format!(
                                "since must be an RFC 3339 time such as 2026-11-21T08:00:00Z: {e}"
                            ),
                        )
                    })
            })
            .transpose()
    }

    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.unwrap_or(50) {
            n @ 1..=100 => Ok(n),
            n => Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and 100, got {n}"),
            )),
        }
    }
}

async fn list_shipments(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let raw = q.stage.as_deref().or(q.status.as_deref()).ok_or_else(|| {
        ApiError::bad_request(
            "missing_stage",
            "give stage=received|held|confirmed|handed_over|packed|labelled|rejected|cancelled|shipped|unreadable",
        )
    })?;
    let stage =
        Stage::parse(raw).map_err(|e| ApiError::bad_request("invalid_stage", e.to_string()))?;
    let orders = state.orders().await?;
    let page = orders
        .shipments
        .list(stage, q.since()?, q.limit()?, q.next_token.as_deref())
        .await?;
    Ok(reply::page("shipments", page))
}

async fn get_shipment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().await?;
    let r = orders.shipments.get(&id).await?;
    reply::found(r, || format!("shipment {id}"))
}

async fn release(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().await?;
    if effect.claim.is_retaken() {
        // An earlier attempt may have released it: if so, answer with where it got to.
        if let Some(r) = orders.shipments.get(&id).await? {
            if r.released && r.stage != Stage::Held {
                return reply::body(r);
            }
        }
    }
    let inv = &effect.invocation;
    let r = orders.processor(inv).release_hold(&id, inv).await?;
    reply::body(r)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RejectRequest {
    #[serde(default)]
    reason: Option<RejectReason>,
}

async fn reject(
    State(state): State<AppState>,
    effect: Effect,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RejectRequest>,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().await?;
    if effect.claim.is_retaken() {
        // An earlier attempt may have rejected it: if so, answer with the stored result.
        if let Some(r) = orders.shipments.get(&id).await? {
            if r.stage == Stage::Rejected {
                return reply::body(r);
            }
        }
    }
    let inv = &effect.invocation;
    let r = orders
        .processor(inv)
        .reject_held(&id, req.reason.unwrap_or(RejectReason::OutOfStock), inv)
        .await?;
    reply::body(r)
}

async fn relay_notification(
    State(state): State<AppState>,
    effect: Effect,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let orders = state.orders().await?;
    // A retaken claim needs no read-back here: the handler claims each notification by its
    // own ID and reconciles with Amazon itself.
    let inv = &effect.invocation;
    let processor = orders.processor(inv);
    let ours = orders.ours().await?;
    let handler = NotificationHandler {
        processor: &processor,
        idempotency: &orders.idempotency,
        ours: &ours,
        clock: &orders.notification_clock,
    };
    let outcome = handler.handle(&body, inv).await?;
    reply::body(outcome)
}
