//! A stateful simulator of the parts of Amazon's Selling Partner API that flexbridge uses:
//! Login with Amazon, External Fulfillment (Shipments, Inventory, Returns 2024-09-11),
//! Listings Items 2021-08-01 and Notifications v1 (destinations, subscriptions), plus an admin API under `/_sim/` that Amazon does not have.
//!
//! It is written from the official models on its own (JSON values checked against the
//! models' schemas) and shares no types with the flexbridge client, so that a field misread
//! by one cannot be mirrored by the other. See `README.md` for behaviours we had to assume.

pub mod admin;
pub mod client;
pub mod docs;
pub mod errors;
pub mod faults;
pub mod gen;
pub mod inventory;
pub mod listings;
pub mod lwa;
pub mod models;
pub mod notifications_api;
pub mod notify;
pub mod ratelimit;
pub mod returns;
pub mod server;
pub mod shipments;
pub mod state;
pub mod validation;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use client::AdminClient;
pub use faults::{FaultConfig, FaultKind, FaultRule};
pub use ratelimit::RateLimit;
pub use state::{
    LwaCredentials, DEFAULT_APPLICATION_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
};

pub use models::MODELS_DIR_ENV;

/// How a simulator is started. `Default` gives seed 0, the models from [`models::locate`],
/// rate limits on, no faults, 3600 s tokens.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seeds every random choice (generated shipments, fault draws, tracking IDs).
    pub seed: u64,
    /// Folder of the official models; `None` = [`models::locate`].
    pub models_dir: Option<PathBuf>,
    /// Token buckets per operation (Amazon's published defaults); `false` never answers 429
    /// because of rate (injected faults still can).
    pub rate_limits: bool,
    /// Faults active from the start (also settable later via the admin API).
    pub faults: FaultConfig,
    /// Lifetime of issued LWA access tokens, in seconds (Amazon: 3600).
    pub token_ttl_secs: u64,
    /// Merchant ID used in generated shipments and notifications.
    pub merchant_id: String,
    /// Share of getShipments/listReturns pages answered empty (with a nextToken) while more
    /// results remain ("this operation can return empty pages"); default 0.1.
    pub empty_page_rate: f64,
    /// Check every answer against the model's response schema and keep violations in
    /// `GET /_sim/state` (`responseViolations`); default true.
    pub check_responses: bool,
    /// Per-operation limits replacing Amazon's defaults (operationId -> rate/burst).
    pub rate_limit_overrides: BTreeMap<String, RateLimit>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            models_dir: None,
            rate_limits: true,
            faults: FaultConfig::default(),
            token_ttl_secs: 3600,
            merchant_id: "A1SIMMERCHANT01".to_string(),
            rate_limit_overrides: BTreeMap::new(),
            empty_page_rate: 0.1,
            check_responses: true,
        }
    }
}

impl SimOptions {
    /// The models folder this simulator reads: the option, else [`models::locate`]
    /// (`$SPAPI_MODELS_DIR`, `../shared/spapi-models` beside the checkout, or the project cache).
    pub fn resolved_models_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.models_dir {
            Some(d) => Ok(d.clone()),
            None => models::locate(),
        }
    }
}

/// Entry point: `Simulator::start(opts)` binds 127.0.0.1:0 and serves in a tokio task.
pub struct Simulator;

impl Simulator {
    /// Starts on 127.0.0.1 with an OS-chosen port.
    pub async fn start(opts: SimOptions) -> anyhow::Result<SimHandle> {
        Self::start_on("127.0.0.1:0".parse().expect("static addr"), opts).await
    }

    /// Starts on the given address (the binary's `--listen`).
    pub async fn start_on(addr: SocketAddr, opts: SimOptions) -> anyhow::Result<SimHandle> {
        server::start(addr, opts).await
    }
}

/// A running simulator. Dropping it leaves the server running until the runtime ends;
/// call [`SimHandle::shutdown`] to stop it.
pub struct SimHandle {
    /// e.g. `http://127.0.0.1:PORT`: Amazon paths at the root, LWA at `/auth/o2/token`,
    /// admin API under `/_sim/`.
    pub base_url: String,
    pub addr: SocketAddr,
    pub(crate) shared: Arc<state::Shared>,
    pub(crate) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// A thin HTTP client over the admin API.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.base_url)
    }

    /// The LWA token URL (`LWA_ENDPOINT` for the client).
    pub fn lwa_url(&self) -> String {
        format!("{}/auth/o2/token", self.base_url)
    }

    /// The same JSON as `GET /_sim/state`, read in process.
    pub fn snapshot(&self) -> serde_json::Value {
        self.shared.lock().snapshot()
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut t) = self.task.take() {
            // Graceful first; a connection held by an "apply then hang" fault must not delay us.
            if tokio::time::timeout(std::time::Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}
