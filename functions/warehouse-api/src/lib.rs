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
use flexbridge::fulfilment::FulfilmentService;
use flexbridge::health::aws::ReportLinks;
use flexbridge::idempotency::Idempotency;
use flexbridge::inventory::changes::StockChanges;
use flexbridge::orders::Orders;
use flexbridge::secrets::SecretCache;
use flexbridge::store::inventory::{DynamoInventoryStore, OnHandStore};
use flexbridge::warehouse::keys::{KeyRole, SigningKeys};
use flexbridge::Env;

/// How long a POST's response is replayed for its Idempotency-Key.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Everything a route needs; cheap to clone (one per request).
#[derive(Clone)]
pub struct AppState {
    pub secrets: SecretCache,
    /// The stack's secret, whose warehouse key signs every request (`warehouse::keys`).
    pub secret_arn: String,
    pub idempotency: Idempotency,
    pub events: Arc<dyn EventSink>,
    pub on_hand: Arc<dyn OnHandStore>,
    /// Stock changes and halted pushes (`flexbridge::inventory::changes`).
    pub stock: Arc<StockChanges>,
    pub env: Env,
    /// Whether legacy `v1` signatures still count (setting `WAREHOUSE_ACCEPT_V1_SIGNATURES`).
    pub accept_v1_signatures: bool,
    /// The orders capability, built from `env` on first use (shipment and return routes only);
    /// tests may fill it beforehand.
    pub orders: Arc<tokio::sync::OnceCell<Arc<Orders>>>,
    /// The fulfilment capability (packed, shipped, cancel, invoice, reprint routes), built on
    /// first use over the same orders capability.
    pub fulfilment: Arc<tokio::sync::OnceCell<Arc<FulfilmentService>>>,
    /// Fresh links to the health reports (`GET /v1/reports/health/...`), built on first use.
    pub report_links: Arc<tokio::sync::OnceCell<ReportLinks>>,
}

impl AppState {
    /// Clients and stores from the template's environment (`FLEXBRIDGE_SECRET_ARN`,
    /// `IDEMPOTENCY_TABLE`, `INVENTORY_TABLE`, `EVENT_BUS_NAME`).
    pub async fn from_env(env: &Env) -> flexbridge::Result<Self> {
        let sdk = flexbridge::aws::config(env).await;
        let dynamodb = flexbridge::aws::dynamodb_client(&sdk);
        Ok(Self {
            secrets: SecretCache::from_sdk_config(&sdk),
            secret_arn: env.require(keys::FLEXBRIDGE_SECRET_ARN)?.to_string(),
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
            accept_v1_signatures: env.parse_or(keys::WAREHOUSE_ACCEPT_V1_SIGNATURES, false)?,
            orders: Default::default(),
            fulfilment: Default::default(),
            report_links: Default::default(),
        })
    }

    /// The orders capability of this stack (see [`AppState::orders`]).
    pub async fn orders(&self) -> flexbridge::Result<Arc<Orders>> {
        self.orders
            .get_or_try_init(|| async { Orders::from_env(&self.env).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// The fulfilment capability of this stack, sharing [`AppState::orders`].
    pub async fn fulfilment(&self) -> flexbridge::Result<Arc<FulfilmentService>> {
        self.fulfilment
            .get_or_try_init(|| async {
                let orders = self.orders().await?.as_ref().clone();
                FulfilmentService::with_orders(&self.env, orders)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The HMAC keys the warehouse signs with (the stack secret's warehouse key: its current
    /// version's and, during a rotation, its previous one's), cached by the [`SecretCache`] so a warm
    /// function reads Secrets Manager once per TTL, or again for a signature matching neither
    /// (at most every `keys::REREAD_INTERVAL`).
    pub fn warehouse_keys(&self) -> SigningKeys {
        SigningKeys::new(self.secrets.clone(), &self.secret_arn, KeyRole::Warehouse)
    }

    /// The health reports' links of this stack (see [`AppState::report_links`]).
    pub async fn report_links(&self) -> flexbridge::Result<ReportLinks> {
        self.report_links
            .get_or_try_init(|| ReportLinks::from_env(&self.env))
            .await
            .cloned()
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    guarded(routes::v1(), state)
}

/// `routes` behind the guard, with the API's fallbacks: every route of [`router`] is served
/// this way (tests use it to add a probe route).
pub fn guarded(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// Puts Lambda's invocation (its request ID and deadline, from lambda_http's context) into the
/// request as the [`Invocation`](flexbridge::runtime::Invocation) the guard and routes use.
/// The local runner does the same for the router it serves.
pub fn lambda_invocation(mut req: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    if let Some(ctx) = req.lambda_context_ref() {
        let invocation = flexbridge::runtime::Invocation::from(ctx);
        req.extensions_mut().insert(invocation);
    }
    req
}

/// [`router`] over [`AppState::from_env`].
pub async fn app(env: &Env) -> flexbridge::Result<Router> {
    Ok(router(AppState::from_env(env).await?))
}
