//! Builds the orders capability from a function's `Env` (the tables, bus and secret the
//! template gives it), so the order poller, the notification consumer, the returns poller and
//! the warehouse API routes assemble it the same way.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{keys, Env};
use crate::error::Result;
use crate::events::{EventBridgeSink, EventSink};
use crate::idempotency::Idempotency;
use crate::orders::adapters::{CatalogSkus, StoredLocations};
use crate::orders::notifications::NotificationClock;
use crate::orders::poller::PollSettings;
use crate::orders::ports::{LocationDirectory, ShipmentsApi};
use crate::orders::processor::{CrashPoints, OrderProcessor};
use crate::orders::returns::ReturnsService;
use crate::orders::rules::{AutoConfirmRule, OrderRule, UnmappedSkuRule};
use crate::runtime::Invocation;
use crate::secrets::SecretCache;
use crate::spapi::SpApiClient;
use crate::store::catalog::DynamoCatalogStore;
use crate::store::cursors::{CursorStore, DynamoCursorStore};
use crate::store::inventory::{DynamoInventoryStore, InventoryStore};
use crate::store::locations::DynamoLocationStore;
use crate::store::settings::{get_or, DynamoSettingsStore, SettingsStore};
use crate::store::shipments::{DynamoShipmentStore, ShipmentStore};

/// Settings (SettingsTable) the orders capability reads, with their defaults.
pub mod settings {
    /// Seconds re-read before each poll cursor (clock skew, late writes). Default 300.
    pub const POLL_OVERLAP_SECONDS: &str = "orders_poll_overlap_seconds";
    /// Hours a location without a cursor looks back on its first poll. Default 24.
    pub const FIRST_LOOKBACK_HOURS: &str = "orders_first_lookback_hours";
    /// Seconds between passes over new work within one scheduled poll run; 0 = one pass. Default 15.
    pub const POLL_PASS_SECONDS: &str = "orders_poll_pass_seconds";
    /// Minutes since the last notification handled within which the poller trusts notifications
    /// and makes one pass per run; 0 = always make the passes. Default 10.
    pub const NOTIFICATIONS_QUIET_MINUTES: &str = "orders_notifications_quiet_minutes";
}

/// How long CONFIRM/REJECT claims and notification IDs are remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone)]
pub struct Orders {
    pub shipments: Arc<dyn ShipmentStore>,
    pub inventory: Arc<dyn InventoryStore>,
    pub cursors: Arc<dyn CursorStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub locations: Arc<dyn LocationDirectory>,
    pub rules: Vec<Arc<dyn OrderRule>>,
    pub idempotency: Idempotency,
    /// When a notification was last handled (kept across a container's invocations).
    pub notification_clock: Arc<NotificationClock>,
    bus: EventBridgeSink,
    client: SpApiClient,
    /// Tests only: where to stop as if the invocation crashed.
    pub crash_points: Option<Arc<dyn CrashPoints>>,
    pub metrics: crate::metrics::Metrics,
}

impl Orders {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = crate::aws::config(env).await;
        let ddb = crate::aws::dynamodb_client(&sdk);
        let settings: Arc<dyn SettingsStore> = Arc::new(DynamoSettingsStore::new(
            ddb.clone(),
            env.require(keys::SETTINGS_TABLE)?,
        ));
        let client = SpApiClient::from_env(env, &SecretCache::from_sdk_config(&sdk)).await?;
        let cursors: Arc<dyn CursorStore> = Arc::new(DynamoCursorStore::new(
            ddb.clone(),
            env.require(keys::CURSORS_TABLE)?,
        ));
        Ok(Self {
            shipments: Arc::new(DynamoShipmentStore::new(
                ddb.clone(),
                env.require(keys::SHIPMENTS_TABLE)?,
            )),
            inventory: Arc::new(
                DynamoInventoryStore::new(ddb.clone(), env.require(keys::INVENTORY_TABLE)?)
                    .with_nudge(crate::inventory::wiring::nudge_from_env(
                        env,
                        crate::aws::sqs_client(&sdk),
                    )),
            ),
            notification_clock: Arc::new(NotificationClock::new(cursors.clone())),
            cursors,
            locations: Arc::new(StoredLocations::new(
                Arc::new(DynamoLocationStore::new(
                    ddb.clone(),
                    env.require(keys::LOCATIONS_TABLE)?,
                )),
                settings.clone(),
            )),
            rules: vec![
                Arc::new(AutoConfirmRule {
                    settings: settings.clone(),
                }),
                Arc::new(UnmappedSkuRule {
                    catalog: Arc::new(CatalogSkus(Arc::new(DynamoCatalogStore::new(
                        ddb.clone(),
                        env.require(keys::CATALOG_TABLE)?,
                    )))),
                }),
            ],
            idempotency: Idempotency::dynamodb(
                ddb,
                env.require(keys::IDEMPOTENCY_TABLE)?,
                IDEMPOTENCY_TTL,
            ),
            bus: EventBridgeSink::new(
                crate::aws::eventbridge_client(&sdk),
                env.require(keys::EVENT_BUS_NAME)?,
            ),
            settings,
            client,
            crash_points: None,
            metrics: crate::metrics::Metrics::from_env(env),
        })
    }

    /// The SP-API client this capability uses (bound it with `with_deadline`).
    pub fn client(&self) -> &SpApiClient {
        &self.client
    }

    /// Amazon, bounded by this invocation's deadline.
    pub fn amazon(&self, inv: &Invocation) -> Arc<dyn ShipmentsApi> {
        Arc::new(self.client.with_deadline(inv))
    }

    pub fn events(&self, inv: &Invocation) -> Arc<dyn EventSink> {
        Arc::new(self.bus.clone().with_deadline(inv.into()))
    }

    /// What a notification must name to be this stack's (the SP-API secret's `application_id`
    /// and the seller), read through the secret cache.
    pub async fn ours(&self) -> Result<crate::orders::notifications::Ours> {
        Ok(crate::orders::notifications::Ours {
            application_id: self.client.application_id().await?,
            merchant_id: self.client.seller_id().await?,
        })
    }

    pub fn processor(&self, inv: &Invocation) -> OrderProcessor {
        OrderProcessor {
            shipments: self.shipments.clone(),
            inventory: self.inventory.clone(),
            amazon: self.amazon(inv),
            events: self.events(inv),
            idempotency: self.idempotency.clone(),
            locations: self.locations.clone(),
            rules: self.rules.clone(),
            crash_points: self.crash_points.clone(),
            metrics: self.metrics.clone(),
        }
    }

    pub async fn poll_settings(&self) -> Result<PollSettings> {
        let d = PollSettings::default();
        Ok(PollSettings {
            overlap: Duration::from_secs(
                get_or(
                    self.settings.as_ref(),
                    settings::POLL_OVERLAP_SECONDS,
                    d.overlap.as_secs(),
                )
                .await?,
            ),
            first_lookback: Duration::from_secs(
                3600 * get_or(
                    self.settings.as_ref(),
                    settings::FIRST_LOOKBACK_HOURS,
                    d.first_lookback.as_secs() / 3600,
                )
                .await?,
            ),
            pass_interval: Duration::from_secs(
                get_or(
                    self.settings.as_ref(),
                    settings::POLL_PASS_SECONDS,
                    d.pass_interval.as_secs(),
                )
                .await?,
            ),
            notifications_quiet: Duration::from_secs(
                60 * get_or(
                    self.settings.as_ref(),
                    settings::NOTIFICATIONS_QUIET_MINUTES,
                    d.notifications_quiet.as_secs() / 60,
                )
                .await?,
            ),
            ..d
        })
    }

    pub async fn returns(&self, inv: &Invocation) -> Result<ReturnsService> {
        let poll = self.poll_settings().await?;
        Ok(ReturnsService {
            amazon: self.amazon(inv),
            store: self.shipments.clone(),
            cursors: self.cursors.clone(),
            events: self.events(inv),
            inventory: self.inventory.clone(),
            locations: self.locations.clone(),
            overlap: poll.overlap,
            first_lookback: poll.first_lookback,
            max_window: poll.max_window,
            max_pages: poll.max_pages,
            metrics: self.metrics.clone(),
        })
    }
}
