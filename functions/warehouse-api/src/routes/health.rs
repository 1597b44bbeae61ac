//! `GET /v1/health`: the warehouse checks it reaches flexbridge and signs correctly.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/health", get(health))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "apiVersion": "v1", "version": env!("CARGO_PKG_VERSION")}))
}
