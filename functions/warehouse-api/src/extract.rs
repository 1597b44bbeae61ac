//! `JsonBody<T>`: like axum's `Json`, but a body that does not fit `T` is refused with our error
//! shape (400 `invalid_body`) naming the field and position.

use axum::extract::{FromRequest, Request};

use crate::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("request body does not match the schema: {e}"),
            )
        })
    }
}
