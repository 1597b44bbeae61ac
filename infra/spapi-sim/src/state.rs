//! The simulator's whole state, behind one mutex that is never held across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::FaultState;
use crate::notify::{Notifier, NotifyConfig};
use crate::ratelimit::Limiter;
use crate::validation::Models;
use crate::SimOptions;

/// Default test credentials: accepted by every simulator unless replaced via the admin API.
pub const DEFAULT_CLIENT_ID: &str = "amzn1.application-oa2-client.simulator";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-client-secret";
pub const DEFAULT_REFRESH_TOKEN: &str = "Atzr|sim-refresh-token";
/// The application every notification names (`notificationMetadata.applicationId`), as
/// Amazon names the app whose destination receives it.
pub const DEFAULT_APPLICATION_ID: &str = "amzn1.sp.solution.simulator";

/// One LWA client + refresh token the token endpoint accepts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LwaCredentials {
    #[serde(alias = "clientId")]
    pub client_id: String,
    #[serde(alias = "clientSecret")]
    pub client_secret: String,
    #[serde(alias = "refreshToken")]
    pub refresh_token: String,
}

impl Default for LwaCredentials {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            refresh_token: DEFAULT_REFRESH_TOKEN.into(),
        }
    }
}

/// A fulfillment location Amazon knows (Seller Flex = FBA channel, MFN otherwise).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub location_id: String,
    pub marketplace_id: String,
    /// FBA | MFN
    pub channel_name: String,
    /// MARKETPLACE | SELF
    #[serde(default = "default_shipping_type")]
    pub shipping_type: String,
}

fn default_shipping_type() -> String {
    "MARKETPLACE".into()
}

/// What Amazon holds for one (location, sku).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRec {
    pub sellable_quantity: i64,
    pub client_sequence_number: Option<i64>,
    pub updates_applied: u64,
    pub updates_rejected: u64,
}

/// A shipment: the model-shaped document plus the simulator's bookkeeping.
#[derive(Debug, Clone)]
pub struct ShipmentRec {
    pub doc: Value,
    /// processShipment CONFIRM requests that reached the state machine (any answer).
    pub confirm_requests: u32,
    /// CONFIRMs that changed the state (at most one).
    pub confirm_applied: u32,
    pub reject_applied: u32,
    pub invoice: Option<Value>,
    pub labels: BTreeMap<String, Value>,
    pub label_generations: u32,
    pub history: Vec<Value>,
    /// Options returned by retrieveShippingOptions, per package.
    pub shipping_options: BTreeMap<String, Vec<Value>>,
    /// Units per sku currently held in reservedQuantity.
    pub reserved: BTreeMap<String, i64>,
}

/// A listing's price state after patchListingsItem.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingRec {
    pub seller_id: String,
    pub product_type: String,
    pub marketplace_ids: Vec<String>,
    pub attributes: serde_json::Map<String, Value>,
    /// marketplace_id -> price (value_with_tax) as a decimal string
    pub prices: BTreeMap<String, String>,
    pub submissions: Vec<String>,
}

/// A label document served under `/_sim/documents/{token}`.
#[derive(Debug, Clone)]
pub struct Document {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub signature: String,
    pub created: std::time::Instant,
}

/// Product types the simulated catalog knows (more via the admin API).
pub const DEFAULT_PRODUCT_TYPES: [&str; 12] = [
    "PRODUCT",
    "SHIRT",
    "SHOES",
    "HOME",
    "KITCHEN",
    "TOYS_AND_GAMES",
    "BEAUTY",
    "LUGGAGE",
    "OFFICE_PRODUCTS",
    "SPORTING_GOODS",
    "PET_SUPPLIES",
    "BOOK",
];

/// One request to an Amazon route, as logged.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub operation: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub time: String,
    pub request_id: String,
    /// What happened besides the status (fault kind, "applied", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub struct State {
    pub rng: StdRng,
    pub credentials: Vec<LwaCredentials>,
    /// access token -> expiry
    pub tokens: HashMap<String, DateTime<Utc>>,
    /// The tokens of `tokens` issued by `client_credentials` (grantless).
    pub grantless_tokens: HashSet<String>,
    pub tokens_issued: u64,
    pub locations: BTreeMap<String, Location>,
    pub skus: BTreeSet<String>,
    pub shipments: BTreeMap<String, ShipmentRec>,
    pub inventory: BTreeMap<(String, String), InventoryRec>,
    /// What the warehouse really has per (location, sku), when a test or the demo says so
    /// (`PUT /_sim/truth`); orders take from it, cancellations give back.
    pub truth: BTreeMap<(String, String), i64>,
    /// Every order line created beyond the warehouse truth.
    pub oversold: Vec<Value>,
    pub returns: BTreeMap<String, Value>,
    pub listings: BTreeMap<String, ListingRec>,
    /// Notifications API: destinationId -> Destination.
    pub destinations: BTreeMap<String, Value>,
    /// Notifications API: notificationType -> Subscription (one per type).
    pub subscriptions: BTreeMap<String, Value>,
    pub calls: Vec<CallRecord>,
    /// Model files (`externalFulfillmentShipments`, `listingsItems`, ...) whose operations the
    /// application's roles do not cover: answered 403 `Unauthorized` (`PUT /_sim/roles`).
    pub refused_models: BTreeSet<String>,
    pub limiter: Limiter,
    pub faults: FaultState,
    pub notify: NotifyConfig,
    /// Documents served under /_sim/documents/{token} (labels): content type + bytes.
    pub documents: HashMap<String, Document>,
    /// Share of getShipments/listReturns pages answered empty (with a nextToken) while more remain.
    pub empty_page_rate: f64,
    /// Product types patchListingsItem accepts.
    pub product_types: BTreeSet<String>,
    pub seq: u64,
    last_time: DateTime<Utc>,
    pub token_ttl: Duration,
    pub merchant_id: String,
    /// `http://ADDR` of this simulator (label URLs point here).
    pub base_url: String,
    /// Our responses that did not match the model's response schema (`check_responses`).
    pub response_violations: Vec<Value>,
}

impl State {
    pub fn new(opts: &SimOptions) -> Self {
        Self {
            rng: StdRng::seed_from_u64(opts.seed),
            credentials: vec![LwaCredentials::default()],
            tokens: HashMap::new(),
            grantless_tokens: HashSet::new(),
            tokens_issued: 0,
            locations: BTreeMap::new(),
            skus: BTreeSet::new(),
            shipments: BTreeMap::new(),
            inventory: BTreeMap::new(),
            truth: BTreeMap::new(),
            oversold: Vec::new(),
            returns: BTreeMap::new(),
            listings: BTreeMap::new(),
            destinations: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            calls: Vec::new(),
            refused_models: BTreeSet::new(),
            limiter: Limiter::new(opts.rate_limits, &opts.rate_limit_overrides),
            faults: FaultState::new(opts.faults.clone(), opts.seed),
            notify: NotifyConfig {
                application_id: DEFAULT_APPLICATION_ID.into(),
                ..Default::default()
            },
            documents: HashMap::new(),
            empty_page_rate: opts.empty_page_rate,
            product_types: DEFAULT_PRODUCT_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            seq: 0,
            last_time: DateTime::<Utc>::MIN_UTC,
            token_ttl: Duration::seconds(opts.token_ttl_secs as i64),
            merchant_id: opts.merchant_id.clone(),
            base_url: String::new(),
            response_violations: Vec::new(),
        }
    }

    /// Wall-clock now at millisecond precision, strictly increasing across calls so that
    /// `lastUpdatedDateTime` always moves on a change.
    pub fn now(&mut self) -> DateTime<Utc> {
        let t = Utc::now();
        let t = DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
        let t = if t <= self.last_time {
            self.last_time + Duration::milliseconds(1)
        } else {
            t
        };
        self.last_time = t;
        t
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Units in open shipments for (location, sku).
    pub fn reserved(&self, location: &str, sku: &str) -> i64 {
        self.shipments
            .values()
            .filter(|s| s.doc["locationId"].as_str() == Some(location))
            .map(|s| s.reserved.get(sku).copied().unwrap_or(0))
            .sum()
    }

    /// `GET /_sim/oversold`: orders created beyond what the warehouse truth allowed.
    pub fn oversold_view(&self) -> Value {
        let orders: BTreeSet<&str> = self
            .oversold
            .iter()
            .filter_map(|o| o["shipmentId"].as_str())
            .collect();
        let units: i64 = self
            .oversold
            .iter()
            .filter_map(|o| o["oversoldUnits"].as_i64())
            .sum();
        json!({"oversoldOrders": orders.len(), "oversoldUnits": units, "lines": self.oversold})
    }

    /// Everything, for GET /_sim/state.
    pub fn snapshot(&self) -> Value {
        let shipments: Vec<Value> = self
            .shipments
            .values()
            .map(|s| {
                json!({
                    "shipment": s.doc,
                    "confirmRequests": s.confirm_requests,
                    "confirmApplied": s.confirm_applied,
                    "rejectApplied": s.reject_applied,
                    "invoice": s.invoice.is_some(),
                    "labels": s.labels,
                    "labelGenerations": s.label_generations,
                    "history": s.history,
                })
            })
            .collect();
        let inventory: Vec<Value> = self
            .inventory
            .iter()
            .map(|((loc, sku), r)| {
                json!({
                    "locationId": loc,
                    "skuId": sku,
                    "sellableQuantity": r.sellable_quantity,
                    "reservedQuantity": self.reserved(loc, sku),
                    "clientSequenceNumber": r.client_sequence_number,
                    "updatesApplied": r.updates_applied,
                    "updatesRejected": r.updates_rejected,
                })
            })
            .collect();
        let mut op_counts: BTreeMap<&str, u64> = BTreeMap::new();
        for c in &self.calls {
            *op_counts.entry(c.operation.as_str()).or_default() += 1;
        }
        json!({
            "locations": self.locations.values().collect::<Vec<_>>(),
            "skus": self.skus,
            "shipments": shipments,
            "inventory": inventory,
            "oversold": self.oversold_view(),
            "returns": self.returns.values().collect::<Vec<_>>(),
            "listings": self.listings,
            "destinations": self.destinations.values().collect::<Vec<_>>(),
            "subscriptions": self.subscriptions,
            "callCounts": op_counts,
            "tokensIssued": self.tokens_issued,
            "responseViolations": self.response_violations,
            "notifications": self.notify.sent.lock().map(|l| l.clone()).unwrap_or_default(),
        })
    }
}

/// What every handler gets: options, the loaded models, the state, the notifier.
pub struct Shared {
    pub opts: SimOptions,
    pub models: Arc<Models>,
    pub state: Mutex<State>,
    pub notifier: Notifier,
}

impl Shared {
    pub fn new(opts: SimOptions, models: Arc<Models>, notifier: Notifier) -> Self {
        let mut state = State::new(&opts);
        state.notify.tx = Some(notifier.tx.clone());
        state.notify.sent = notifier.log.clone();
        Self {
            opts,
            models,
            state: Mutex::new(state),
            notifier,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock must not wedge the simulator for other tests.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// RFC 3339 with milliseconds and `Z`, the form Amazon's examples use.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
