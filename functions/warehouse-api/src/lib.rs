//! The warehouse API: the signed HTTPS API (Lambda Function URL) the seller's warehouse calls.
//!
//! [`router`] builds an axum `Router` that `main.rs` hands to `lambda_http` and the local runner
//! serves on a TCP port. Every request passes [`guard::guard`] (signature, size, JSON,
//! idempotency) before a route in [`routes`] sees it.

pub mod error;
pub mod extract;
pub mod guard;
mod reply;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flexbridge::config::keys;
use flexbridge::events::{EventBridgeSink, EventSink};
use flexbridge::idempotency::Idempotency;
use flexbridge::inventory::changes::StockChanges;
use flexbridge::secrets::{SecretCache, SecretString};
use flexbridge::store::inventory::{DynamoInventoryStore, OnHandStore};
use flexbridge::Env;

/// How long a POST's response is replayed for its Idempotency-Key.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Everything a route needs; cheap to clone (one per request).
#[derive(Clone)]
pub struct AppState {
    pub secrets: SecretCache,
    pub warehouse_secret_arn: String,
    pub idempotency: Idempotency,
    pub events: Arc<dyn EventSink>,
    pub on_hand: Arc<dyn OnHandStore>,
    /// Stock changes and halted pushes (`flexbridge::inventory::changes`).
    pub stock: Arc<StockChanges>,
    pub env: Env,
}

impl AppState {
    /// Clients and stores from the template's environment (`WAREHOUSE_SECRET_ARN`,
    /// `IDEMPOTENCY_TABLE`, `INVENTORY_TABLE`, `EVENT_BUS_NAME`).
    pub async fn from_env(env: &Env) -> flexbridge::Result<Self> {
        let sdk = flexbridge::aws::config(env).await;
        let dynamodb = flexbridge::aws::dynamodb_client(&sdk);
        Ok(Self {
            secrets: SecretCache::from_sdk_config(&sdk),
            warehouse_secret_arn: env.require(keys::WAREHOUSE_SECRET_ARN)?.to_string(),
            idempotency: Idempotency::dynamodb(
                dynamodb.clone(),
                env.require(keys::IDEMPOTENCY_TABLE)?,
                IDEMPOTENCY_TTL,
            ),
            events: Arc::new(EventBridgeSink::new(
                flexbridge::aws::eventbridge_client(&sdk),
                env.require(keys::EVENT_BUS_NAME)?,
            )),
            on_hand: Arc::new(DynamoInventoryStore::new(
                dynamodb,
                env.require(keys::INVENTORY_TABLE)?,
            )),
            stock: Arc::new(StockChanges::from_env(env).await?),
            env: env.clone(),
        })
    }

    /// The HMAC key the warehouse signs with (the secret's whole string), cached by the
    /// [`SecretCache`] so a warm function reads Secrets Manager once per TTL.
    pub async fn warehouse_secret(&self) -> flexbridge::Result<SecretString> {
        self.secrets.get(&self.warehouse_secret_arn).await
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    routes::v1()
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// [`router`] over [`AppState::from_env`].
pub async fn app(env: &Env) -> flexbridge::Result<Router> {
    Ok(router(AppState::from_env(env).await?))
}
