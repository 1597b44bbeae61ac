//! The one way to publish a metric: CloudWatch's embedded metric format (EMF). A value is one
//! JSON line on stdout; no API call, no extra permission, nothing to batch or flush.
//!
//! A value becomes a CloudWatch metric (billed $0.30 a series a month) only when something
//! reads it as one: an alarm ([`names::ALARMED`], every deployment) or the optional dashboard
//! ([`names::DASHBOARD`], template parameter `CloudWatchDashboard=on`, env
//! `METRICS_DASHBOARD`). Those lines carry the `_aws` directive with the one dimension set
//! `[Stack]`. Every other value is the same JSON line without `_aws` (fields `Stack`,
//! `Function`, the caller's dimensions and `<Name>: value`): a log line Logs Insights reads
//! for free (docs/metrics.md).
//!
//! Everything a person must act on is one metric, [`names::NEEDS_ATTENTION`], whose line names
//! the [`Alert`] kind (`alert`); one alarm watches it (template.yaml, "Alarms").
//!
//! Outside Lambda (tests, the local runner) the same document is written as a log line
//! (`target = "flexbridge::metrics"`), and [`Metrics::memory`] records documents for tests.

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::config::{keys, Env};

/// The CloudWatch namespace of every flexbridge metric.
pub const NAMESPACE: &str = "flexbridge";

/// Value names in use (template.yaml's alarms and dashboard name the same strings).
pub mod names {
    /// Something a person must look at; the line's `alert` field says what
    /// ([`super::Alert`]). The one alarm on it tells the seller to run `flexbridge status`.
    pub const NEEDS_ATTENTION: &str = "NeedsAttention";
    /// Advertised stock of a SKU fell to its low-stock threshold.
    pub const INVENTORY_LOW_STOCK: &str = "InventoryLowStock";

    /// A notification naming another SP-API application or merchant, dropped (no dimension
    /// of its own: the log line says which).
    pub const NOTIFICATIONS_NOT_OURS: &str = "NotificationsNotOurs";

    // Orders (the order processor; dimension `Location`).
    /// A shipment stored for the first time.
    pub const ORDERS_SEEN: &str = "OrdersSeen";
    /// A shipment confirmed at Amazon.
    pub const ORDERS_CONFIRMED: &str = "OrdersConfirmed";
    /// A shipment rejected at Amazon.
    pub const ORDERS_REJECTED: &str = "OrdersRejected";
    /// A shipment held for a person.
    pub const ORDERS_HELD: &str = "OrdersHeld";
    /// Seconds from Amazon creating a shipment (else from our first sight) to our CONFIRM.
    pub const CONFIRM_LATENCY: &str = "ConfirmLatency";
    /// An order poll run that finished without a failure (the "poll not succeeding" alarm
    /// watches for its absence).
    pub const ORDER_POLLS_SUCCEEDED: &str = "OrderPollsSucceeded";

    // Inventory (the pusher; dimension `Location`).
    /// SKUs whose stock Amazon accepted in a push.
    pub const INVENTORY_SKUS_PUSHED: &str = "InventorySkusPushed";
    /// SKUs a push left out (nothing new to send, or stock sync off for them).
    pub const INVENTORY_SKUS_SKIPPED: &str = "InventorySkusSkipped";
    /// Seconds from a stock change to Amazon accepting it.
    pub const INVENTORY_PUSH_LAG: &str = "InventoryPushLag";

    // Fulfilment (the label worker; dimension `Location`).
    /// A shipment's labels stored and `LabelReady` sent.
    pub const LABELS_MADE: &str = "LabelsMade";
    /// A label job that failed (kept for a retry, or parked).
    pub const LABELS_FAILED: &str = "LabelsFailed";
    /// Seconds left to the ship-by time when a shipment's labels were made (negative: late).
    pub const SHIP_BY_TIME_LEFT: &str = "ShipByTimeLeft";

    // Uploads (upload ingest; dimension `Kind`).
    pub const UPLOAD_ROWS_ACCEPTED: &str = "UploadRowsAccepted";
    pub const UPLOAD_ROWS_REJECTED: &str = "UploadRowsRejected";

    // The SP-API client (dimension `Operation`, the model's operation ID).
    /// An HTTP request sent to Amazon (every attempt).
    pub const SPAPI_CALLS: &str = "SpApiCalls";
    /// Amazon answered 429.
    pub const SPAPI_THROTTLES: &str = "SpApiThrottles";
    /// A call that failed after its retries.
    pub const SPAPI_ERRORS: &str = "SpApiErrors";

    /// Records in Amazon's listings without an ID (getShipments, listReturns): nothing can read
    /// them back or hold them, so they are counted here (and on their cursor) and logged.
    pub const AMAZON_RECORDS_UNREADABLE: &str = "AmazonRecordsUnreadable";

    /// The daily health report was written (`reports/health/<date>.html`).
    pub const HEALTH_REPORTS: &str = "HealthReports";

    /// Every name above: docs/metrics.md lists each (tests/tests/e2e/foundation_docs.rs).
    pub const ALL: [&str; 22] = [
        NEEDS_ATTENTION,
        INVENTORY_LOW_STOCK,
        ORDERS_SEEN,
        ORDERS_CONFIRMED,
        ORDERS_REJECTED,
        ORDERS_HELD,
        CONFIRM_LATENCY,
        ORDER_POLLS_SUCCEEDED,
        INVENTORY_SKUS_PUSHED,
        INVENTORY_SKUS_SKIPPED,
        INVENTORY_PUSH_LAG,
        LABELS_MADE,
        LABELS_FAILED,
        SHIP_BY_TIME_LEFT,
        UPLOAD_ROWS_ACCEPTED,
        UPLOAD_ROWS_REJECTED,
        SPAPI_CALLS,
        AMAZON_RECORDS_UNREADABLE,
        SPAPI_THROTTLES,
        SPAPI_ERRORS,
        HEALTH_REPORTS,
        NOTIFICATIONS_NOT_OURS,
    ];

    /// CloudWatch metrics in every deployment: exactly what template.yaml's alarms read
    /// (foundation_template checks both ways).
    pub const ALARMED: [&str; 3] = [NEEDS_ATTENTION, ORDER_POLLS_SUCCEEDED, SPAPI_THROTTLES];

    /// Also CloudWatch metrics when the dashboard is on: what it reads besides [`ALARMED`].
    pub const DASHBOARD: [&str; 9] = [
        ORDERS_SEEN,
        ORDERS_CONFIRMED,
        ORDERS_HELD,
        ORDERS_REJECTED,
        CONFIRM_LATENCY,
        LABELS_MADE,
        LABELS_FAILED,
        INVENTORY_PUSH_LAG,
        SPAPI_ERRORS,
    ];
}

/// What a person must be told about: the `alert` field of a [`names::NEEDS_ATTENTION`] line
/// (and of the error log line that carries the detail). Where each shows up for the seller:
/// docs/runbook.md, "Alarms".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alert {
    /// A message that can never succeed as it is was moved to its queue's DLQ.
    MessageParked,
    /// Work failed because of the deployment (configuration, credentials, permissions); kept.
    Environment,
    /// A scheduled run (order poller, returns poller) failed for some locations.
    RunFailed,
    /// An invocation returned an error, panicked or was about to time out (`runtime`).
    FunctionError,
    /// A shipment not labelled close to its ship-by time.
    ShipByAtRisk,
    /// The inventory safety breaker stopped a push (release or discard it).
    InventoryPushHalted,
    /// Amazon refused a SKU's stock update for a reason a person must fix (`INVALID_SKU`...).
    InventoryItemError,
    /// A DLQ holds messages (the heartbeat reads every DLQ's depth on its schedule).
    DeadLetters,
}

impl Alert {
    pub const ALL: [Alert; 8] = [
        Alert::MessageParked,
        Alert::Environment,
        Alert::RunFailed,
        Alert::FunctionError,
        Alert::ShipByAtRisk,
        Alert::InventoryPushHalted,
        Alert::InventoryItemError,
        Alert::DeadLetters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Alert::MessageParked => "message_parked",
            Alert::Environment => "environment",
            Alert::RunFailed => "run_failed",
            Alert::FunctionError => "function_error",
            Alert::ShipByAtRisk => "ship_by_at_risk",
            Alert::InventoryPushHalted => "inventory_push_halted",
            Alert::InventoryItemError => "inventory_item_error",
            Alert::DeadLetters => "dead_letters",
        }
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which values become CloudWatch metrics (the rest stay log lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Extract {
    /// [`names::ALARMED`] only (template default `CloudWatchDashboard=off`).
    #[default]
    Alarmed,
    /// Also [`names::DASHBOARD`] (`CloudWatchDashboard=on`).
    WithDashboard,
}

impl Extract {
    /// From `METRICS_DASHBOARD` (`on`/`off`, the template's `CloudWatchDashboard` parameter).
    pub fn from_env(env: &Env) -> Self {
        match env.optional(keys::METRICS_DASHBOARD) {
            Some("on") => Extract::WithDashboard,
            None | Some("off") => Extract::Alarmed,
            Some(other) => {
                // The template allows on/off only; anything else costs nothing (no dashboard).
                tracing::warn!(
                    value = other,
                    "METRICS_DASHBOARD is neither on nor off; extracting the alarmed metrics only"
                );
                Extract::Alarmed
            }
        }
    }

    /// Whether `name` is published as a CloudWatch metric.
    pub fn covers(self, name: &str) -> bool {
        names::ALARMED.contains(&name)
            || (self == Extract::WithDashboard && names::DASHBOARD.contains(&name))
    }

    /// Every name published as a CloudWatch metric.
    pub fn names(self) -> Vec<&'static str> {
        names::ALL.into_iter().filter(|n| self.covers(n)).collect()
    }
}

/// CloudWatch units (the subset flexbridge uses; add more as needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
    Bytes,
    Percent,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

#[derive(Clone)]
enum Sink {
    /// Lambda: stdout, where CloudWatch Logs extracts the metric.
    Stdout,
    /// Elsewhere: a log line.
    Log,
    Memory(Arc<Mutex<Vec<Value>>>),
}

/// A metric publisher for one function; cheap to clone. Build it once in `from_env`.
#[derive(Clone)]
pub struct Metrics {
    stack: String,
    function: String,
    extract: Extract,
    sink: Sink,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("stack", &self.stack)
            .field("function", &self.function)
            .field("extract", &self.extract)
            .finish()
    }
}

/// What [`Metrics::memory`] recorded (tests).
#[derive(Clone, Default)]
pub struct RecordedMetrics(Arc<Mutex<Vec<Value>>>);

impl RecordedMetrics {
    /// Every EMF document written so far.
    pub fn documents(&self) -> Vec<Value> {
        self.0.lock().expect("metrics").clone()
    }

    /// The sum of every value recorded under `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.documents()
            .iter()
            .filter_map(|d| d.get(name).and_then(Value::as_f64))
            .sum()
    }

    /// How many [`names::NEEDS_ATTENTION`] lines named `alert`.
    pub fn alerts(&self, alert: Alert) -> f64 {
        self.documents()
            .iter()
            .filter(|d| d["alert"] == alert.as_str())
            .filter_map(|d| d.get(names::NEEDS_ATTENTION).and_then(Value::as_f64))
            .sum()
    }
}

impl Metrics {
    /// The stack from `STACK_NAME` (the template sets it for every function), the function
    /// from `AWS_LAMBDA_FUNCTION_NAME` (Lambda sets it; the local runner too).
    pub fn from_env(env: &Env) -> Self {
        let in_lambda = std::env::var_os(keys::AWS_LAMBDA_FUNCTION_NAME).is_some();
        Self {
            stack: env.optional(keys::STACK_NAME).unwrap_or("unknown").into(),
            function: env
                .optional(keys::AWS_LAMBDA_FUNCTION_NAME)
                .unwrap_or("unknown")
                .into(),
            extract: Extract::from_env(env),
            sink: if in_lambda { Sink::Stdout } else { Sink::Log },
        }
    }

    /// A publisher that keeps its documents in memory, and the handle to read them.
    pub fn memory(stack: &str, function: &str) -> (Self, RecordedMetrics) {
        let recorded = RecordedMetrics::default();
        (
            Self {
                stack: stack.into(),
                function: function.into(),
                extract: Extract::default(),
                sink: Sink::Memory(recorded.0.clone()),
            },
            recorded,
        )
    }

    pub fn function(&self) -> &str {
        &self.function
    }

    /// The same publisher extracting `extract`'s metrics (tests; `from_env` reads it).
    pub fn extracting(mut self, extract: Extract) -> Self {
        self.extract = extract;
        self
    }

    /// Counts one [`names::NEEDS_ATTENTION`] of kind `alert`; `dimensions` add the detail a
    /// person needs to find it (queue, location...). The caller logs the full story.
    pub fn alert(&self, alert: Alert, dimensions: &[(&str, &str)]) {
        let mut at = vec![("alert", alert.as_str())];
        at.extend_from_slice(dimensions);
        self.count(names::NEEDS_ATTENTION, &at);
    }

    /// Adds 1 to a count metric.
    pub fn count(&self, name: &str, dimensions: &[(&str, &str)]) {
        self.put(name, 1.0, Unit::Count, dimensions);
    }

    /// Publishes one value of `name`, with `dimensions` as fields of its line (never as
    /// CloudWatch dimensions: a metric has only `Stack`).
    pub fn put(&self, name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)]) {
        let doc = self.document(name, value, unit, dimensions);
        match &self.sink {
            Sink::Stdout => println!("{doc}"),
            Sink::Log => tracing::info!(target: "flexbridge::metrics", "{doc}"),
            Sink::Memory(docs) => docs.lock().expect("metrics").push(doc),
        }
    }

    /// The line for one value (public so that its shape can be tested): EMF on `[Stack]` when
    /// [`Extract::covers`] the name, else the same fields without the `_aws` directive.
    pub fn document(
        &self,
        name: &str,
        value: f64,
        unit: Unit,
        dimensions: &[(&str, &str)],
    ) -> Value {
        let mut root = Map::new();
        if self.extract.covers(name) {
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": chrono::Utc::now().timestamp_millis(),
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Stack"]],
                        "Metrics": [{"Name": name, "Unit": unit.as_str()}],
                    }],
                }),
            );
        }
        root.insert("Stack".into(), Value::from(self.stack.clone()));
        root.insert("Function".into(), Value::from(self.function.clone()));
        for (k, v) in dimensions {
            root.insert(k.to_string(), Value::from(*v));
        }
        root.insert(name.into(), json!(value));
        Value::Object(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarmed_value_is_emf_on_the_stack_only_and_the_rest_are_plain_lines() {
        let (m, recorded) = Metrics::memory("prod", "prod-PricePusher");
        m.alert(Alert::MessageParked, &[("Queue", "prices")]);
        m.put(
            names::CONFIRM_LATENCY,
            12.5,
            Unit::Seconds,
            &[("Location", "L1")],
        );
        let docs = recorded.documents();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Stack"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "NeedsAttention", "Unit": "Count"}])
        );
        assert!(d["_aws"]["Timestamp"].as_i64().unwrap() > 0);
        // Every field a person filters on is a member of the root (EMF's "target members").
        assert_eq!(d["Stack"], "prod");
        assert_eq!(d["Function"], "prod-PricePusher");
        assert_eq!(d["Queue"], "prices");
        assert_eq!(d["alert"], "message_parked");
        assert_eq!(d["NeedsAttention"], 1.0);
        // Not alarmed, dashboard off: the same fields, no directive (no metric, no bill).
        let plain = &docs[1];
        assert!(plain.get("_aws").is_none(), "{plain}");
        assert_eq!(
            (plain["Function"].as_str(), plain["Location"].as_str()),
            (Some("prod-PricePusher"), Some("L1"))
        );
        assert_eq!(recorded.sum(names::CONFIRM_LATENCY), 12.5);
        assert_eq!(recorded.alerts(Alert::MessageParked), 1.0);
        assert_eq!(recorded.alerts(Alert::Environment), 0.0);
    }

    #[test]
    fn with_the_dashboard_its_metrics_are_extracted_too_and_nothing_else() {
        let (m, recorded) = Metrics::memory("s", "f");
        let m = m.extracting(Extract::WithDashboard);
        for n in names::ALL {
            m.count(n, &[]);
        }
        let extracted: Vec<&str> = recorded
            .documents()
            .iter()
            .filter_map(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"].as_str())
            .map(|n| *names::ALL.iter().find(|a| **a == n).unwrap())
            .collect();
        let mut want: Vec<&str> = names::ALARMED.into();
        want.extend(names::DASHBOARD);
        want.sort_unstable();
        let mut got = extracted.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(Extract::Alarmed.names().len(), names::ALARMED.len());
    }

    #[test]
    fn every_name_is_listed_once_and_is_a_valid_cloudwatch_name() {
        let mut seen = std::collections::BTreeSet::new();
        for n in names::ALL {
            assert!(seen.insert(n), "{n} listed twice");
            assert!(
                !n.is_empty() && n.len() <= 255 && n.chars().all(|c| c.is_ascii_alphanumeric())
            );
        }
        for n in names::ALARMED.iter().chain(names::DASHBOARD.iter()) {
            assert!(names::ALL.contains(n), "{n} not in ALL");
        }
        let kinds: std::collections::BTreeSet<&str> =
            Alert::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(kinds.len(), Alert::ALL.len());
        for a in Alert::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }

    #[test]
    fn from_env_names_the_stack_and_the_function_and_reads_the_dashboard_switch() {
        let env = Env::default()
            .with(keys::STACK_NAME, "s1")
            .with(keys::AWS_LAMBDA_FUNCTION_NAME, "s1-Fn");
        let m = Metrics::from_env(&env);
        let d = m.document("X", 1.0, Unit::Count, &[]);
        assert_eq!(
            (d["Stack"].as_str(), d["Function"].as_str()),
            (Some("s1"), Some("s1-Fn"))
        );
        assert_eq!(m.function(), "s1-Fn");
        assert_eq!(Extract::from_env(&env), Extract::Alarmed);
        let on = env.clone().with(keys::METRICS_DASHBOARD, "on");
        assert_eq!(Extract::from_env(&on), Extract::WithDashboard);
        let off = env.with(keys::METRICS_DASHBOARD, "off");
        assert_eq!(Extract::from_env(&off), Extract::Alarmed);
    }
}
