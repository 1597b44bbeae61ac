//! Stock from the warehouse (logic in `flexbridge::inventory::changes`).
//!
//! - `POST /v1/inventory`: what the warehouse has on hand, per hub and SKU.
//!   Body: `{"items": [{"hub": "BER1", "sku": "MUG-01", "onHand": 12}], "asOf": "<RFC 3339>"?}`.
//!   The whole request is checked before anything is stored; one malformed item refuses the
//!   request with the item's index. A figure for a hub not mapped to a location with inventory
//!   sync on is refused on its own (`refused[]`, with the reason). A figure older than the
//!   stored one (by `asOf`, default: now) is skipped, so a late delivery never rolls stock back.
//!   What is stored goes to Amazon within seconds.
//! - `GET /v1/inventory/halts`: pushes the safety breaker stopped.
//! - `POST /v1/inventory/halts/{locationId}/release` | `/discard`: a person's decision.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use flexbridge::store::inventory::OnHand;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::AppState;

pub const MAX_ITEMS: usize = 1000;
const MAX_SKU_CHARS: usize = 40;
const MAX_HUB_CHARS: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/inventory", post(report_on_hand))
        .route("/v1/inventory/halts", get(halts))
        .route("/v1/inventory/halts/{location_id}/release", post(release))
        .route("/v1/inventory/halts/{location_id}/discard", post(discard))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InventoryReport {
    items: Vec<Item>,
    #[serde(default)]
    as_of: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Item {
    hub: String,
    sku: String,
    on_hand: u32,
}

fn check_text(value: &str, field: &str, index: usize, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.trim() != value {
        return Err(ApiError::unprocessable(
            "invalid_item",
            format!("items[{index}].{field} must be non-empty without surrounding spaces"),
        ));
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_item",
            format!("items[{index}].{field} must be at most {max} printable characters"),
        ));
    }
    Ok(())
}

async fn report_on_hand(
    State(state): State<AppState>,
    JsonBody(report): JsonBody<InventoryReport>,
) -> Result<Json<Value>, ApiError> {
    if report.items.is_empty() {
        return Err(ApiError::unprocessable(
            "no_items",
            "items must contain at least one item",
        ));
    }
    if report.items.len() > MAX_ITEMS {
        return Err(ApiError::unprocessable(
            "too_many_items",
            format!(
                "at most {MAX_ITEMS} items per request; got {}",
                report.items.len()
            ),
        ));
    }
    let now = Utc::now();
    let reported_at = report.as_of.unwrap_or(now);
    if reported_at > now + chrono::Duration::minutes(5) {
        return Err(ApiError::unprocessable(
            "as_of_in_future",
            "asOf is in the future",
        ));
    }
    let mut seen = HashSet::new();
    let mut figures = Vec::with_capacity(report.items.len());
    for (i, item) in report.items.into_iter().enumerate() {
        check_text(&item.hub, "hub", i, MAX_HUB_CHARS)?;
        check_text(&item.sku, "sku", i, MAX_SKU_CHARS)?;
        if !seen.insert((item.hub.clone(), item.sku.clone())) {
            return Err(ApiError::unprocessable(
                "duplicate_item",
                format!(
                    "items[{i}] repeats hub {} sku {}; send each pair once",
                    item.hub, item.sku
                ),
            ));
        }
        figures.push(OnHand {
            hub: item.hub,
            sku: item.sku,
            on_hand: item.on_hand,
            reported_at,
        });
    }
    let outcome = state.stock.report_on_hand(figures).await?;
    tracing::info!(
        accepted = outcome.accepted,
        stored = outcome.stored,
        refused = outcome.refused.len(),
        "warehouse on-hand report stored"
    );
    crate::reply::body(outcome)
}

async fn halts(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "halts": state.stock.halts().await? })))
}

async fn release(
    State(state): State<AppState>,
    Path(location_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(state, location_id, true).await
}

async fn discard(
    State(state): State<AppState>,
    Path(location_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(state, location_id, false).await
}

async fn decide(
    state: AppState,
    location_id: String,
    release: bool,
) -> Result<Json<Value>, ApiError> {
    match state
        .stock
        .decide_halt(&location_id, release, "warehouse-api")
        .await?
    {
        Some(halt) => Ok(Json(json!({ "halt": halt }))),
        None => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "halt_not_found",
            format!("no halted inventory push for location {location_id}"),
        )),
    }
}
