//! - `GET /v1/health`: the warehouse checks it reaches flexbridge and signs correctly.
//! - `GET /v1/reports/health/latest` and `GET /v1/reports/health/{date}` (`YYYY-MM-DD`): a fresh
//!   link to the daily health report (`HealthReportReady`'s link lives only as long as the
//!   credentials that signed it): `{date, reportKey, reportUrl, linkExpiresAt}`; 404 when there
//!   is no such report.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::{reply, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/reports/health/{date}", get(report_link))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "apiVersion": "v1", "version": env!("CARGO_PKG_VERSION")}))
}

async fn report_link(
    State(state): State<AppState>,
    Path(date): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let date = match date.as_str() {
        "latest" => None,
        d => Some(d.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_date",
                format!("{d:?} is neither `latest` nor a date (YYYY-MM-DD)"),
            )
        })?),
    };
    let link = state.report_links().await?.link(date).await?;
    Ok((StatusCode::OK, reply::body(link)?))
}
