//! Response bodies the read and action routes share, so every route answers the same way.

use axum::Json;
use flexbridge::store::shipments::Page;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// 200 with `value` as the body.
pub(crate) fn body(value: impl Serialize) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(value).map_err(flexbridge::Error::from)?,
    ))
}

/// The stored item, or 404 naming it (`what`, e.g. "shipment S1").
pub(crate) fn found(
    value: Option<impl Serialize>,
    what: impl FnOnce() -> String,
) -> Result<Json<Value>, ApiError> {
    body(value.ok_or_else(|| flexbridge::Error::NotFound(what()))?)
}

/// One page of a listing: the items under `key`, and the token for the next page.
pub(crate) fn page(key: &str, page: Page<impl Serialize>) -> Json<Value> {
    let mut out = serde_json::Map::new();
    out.insert(key.to_string(), json!(page.items));
    out.insert("nextToken".to_string(), json!(page.next_token));
    Json(Value::Object(out))
}
