//! `POST /v1/events/test`: publishes a `WebhookTest` event, which travels the same way as every
//! other event (bus → outbound queue → webhook), so a seller can check their webhook end to end.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use flexbridge::events::{EventName, OutboundEvent, WebhookTest};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::guard::Effect;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/events/test", post(test_event))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestEventRequest {
    #[serde(default)]
    message: Option<String>,
}

async fn test_event(
    State(state): State<AppState>,
    effect: Effect,
    JsonBody(req): JsonBody<TestEventRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let message = req
        .message
        .unwrap_or_else(|| "test event from flexbridge".into());
    if message.chars().count() > 500 {
        return Err(ApiError::unprocessable(
            "invalid_message",
            "message must be at most 500 characters",
        ));
    }
    // Keyed on the request's Idempotency-Key: a retried request (and a retaken claim, whose
    // earlier attempt may have published) re-publishes the same event ID, which receivers drop.
    if effect.claim.is_retaken() {
        tracing::info!(
            key = effect.key,
            "retaken claim: publishing the same test event again"
        );
    }
    let event = OutboundEvent::new(
        EventName::WebhookTest,
        &effect.key,
        chrono::Utc::now(),
        WebhookTest { message },
    )?;
    state.events.publish(std::slice::from_ref(&event)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"eventId": event.event_id, "event": EventName::WebhookTest.as_str()})),
    ))
}
