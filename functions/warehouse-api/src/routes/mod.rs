//! Versioned routes. Each module exposes `routes() -> Router<AppState>` with its `/v1/...`
//! paths; add a module here (one line in `v1`) to add routes. The guard in `crate::guard` has
//! already checked the signature, size, JSON and idempotency before a handler runs.

pub mod events;
pub mod fulfilment;
pub mod health;
pub mod inventory;
pub mod orders;
pub mod returns;

use axum::Router;

use crate::AppState;

pub fn v1() -> Router<AppState> {
    Router::new()
        .merge(health::routes())
        .merge(inventory::routes())
        .merge(events::routes())
        .merge(orders::routes())
        .merge(fulfilment::routes())
        .merge(returns::routes())
}
