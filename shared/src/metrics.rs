//! The one way to publish a metric: CloudWatch's embedded metric format (EMF). A metric is one
//! JSON line on stdout, which CloudWatch Logs turns into a metric in Lambda; no API call, no
//! extra permission, nothing to batch or flush.
//!
//! Every metric lands in namespace [`NAMESPACE`] with two dimension sets: `Stack` (what the
//! template's alarms watch, one per deployment) and `Stack` + `Function` (+ the caller's own
//! dimensions), so a person can see which function it was. Alarms: template.yaml,
//! "Alarms on flexbridge metrics".
//!
//! Outside Lambda (tests, the local runner) the same document is written as a log line
//! (`target = "flexbridge::metrics"`), and [`Metrics::memory`] records documents for tests.

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::config::{keys, Env};

/// The CloudWatch namespace of every flexbridge metric.
pub const NAMESPACE: &str = "flexbridge";

/// Metric names in use (template.yaml alarms name the same strings).
pub mod names {
    /// A message moved to its queue's DLQ because it can never succeed as it is.
    pub const MESSAGES_PARKED: &str = "MessagesParked";
    /// A message (or a run) failed because of the environment: configuration, credentials,
    /// permissions. The message was kept for a retry.
    pub const ENVIRONMENT_FAILURES: &str = "EnvironmentFailures";
    /// A scheduled run (order poller, returns poller) that failed anywhere.
    pub const RUNS_FAILED: &str = "RunsFailed";
    /// A shipment not labelled close to its ship-by time (dimension `Location`).
    pub const SHIP_BY_AT_RISK: &str = "ShipByAtRisk";
    /// The inventory safety breaker stopped a push (a person must release or discard it).
    pub const INVENTORY_PUSH_HALTED: &str = "InventoryPushHalted";
    /// Amazon refused a SKU's stock update for a reason a person must fix (`INVALID_SKU`...).
    pub const INVENTORY_ITEM_ERRORS: &str = "InventoryItemErrors";
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

    /// Every name above: docs/metrics.md lists each, and the template's alarms may only watch
    /// these (tests/tests/foundation_template.rs).
    pub const ALL: [&str; 27] = [
        MESSAGES_PARKED,
        ENVIRONMENT_FAILURES,
        RUNS_FAILED,
        SHIP_BY_AT_RISK,
        INVENTORY_PUSH_HALTED,
        INVENTORY_ITEM_ERRORS,
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
    sink: Sink,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("stack", &self.stack)
            .field("function", &self.function)
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
                sink: Sink::Memory(recorded.0.clone()),
            },
            recorded,
        )
    }

    pub fn function(&self) -> &str {
        &self.function
    }

    /// Adds 1 to a count metric.
    pub fn count(&self, name: &str, dimensions: &[(&str, &str)]) {
        self.put(name, 1.0, Unit::Count, dimensions);
    }

    /// Publishes one value of `name`, with `dimensions` added to the per-function set.
    pub fn put(&self, name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)]) {
        let doc = self.document(name, value, unit, dimensions);
        match &self.sink {
            Sink::Stdout => println!("{doc}"),
            Sink::Log => tracing::info!(target: "flexbridge::metrics", "{doc}"),
            Sink::Memory(docs) => docs.lock().expect("metrics").push(doc),
        }
    }

    /// The EMF document for one value (public so that its shape can be tested).
    pub fn document(
        &self,
        name: &str,
        value: f64,
        unit: Unit,
        dimensions: &[(&str, &str)],
    ) -> Value {
        let mut detailed = vec!["Stack".to_string(), "Function".to_string()];
        detailed.extend(dimensions.iter().map(|(k, _)| k.to_string()));
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": chrono::Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Stack"], detailed],
                    "Metrics": [{"Name": name, "Unit": unit.as_str()}],
                }],
            }),
        );
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
    fn a_document_is_valid_emf_with_a_stack_wide_and_a_per_function_dimension_set() {
        let (m, recorded) = Metrics::memory("prod", "prod-PricePusher");
        m.count(names::MESSAGES_PARKED, &[("Queue", "prices")]);
        m.put("Latency", 12.5, Unit::Milliseconds, &[]);
        let docs = recorded.documents();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([["Stack"], ["Stack", "Function", "Queue"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "MessagesParked", "Unit": "Count"}])
        );
        assert!(d["_aws"]["Timestamp"].as_i64().unwrap() > 0);
        // Every dimension and the metric are members of the root (EMF's "target members").
        assert_eq!(d["Stack"], "prod");
        assert_eq!(d["Function"], "prod-PricePusher");
        assert_eq!(d["Queue"], "prices");
        assert_eq!(d["MessagesParked"], 1.0);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(recorded.sum(names::MESSAGES_PARKED), 1.0);
        assert_eq!(recorded.sum("Latency"), 12.5);
    }

    #[test]
    fn every_name_is_listed_once_and_is_a_valid_cloudwatch_name() {
        let mut seen = std::collections::BTreeSet::new();
        for n in names::ALL {
            assert!(seen.insert(n), "{n} listed twice");
            assert!(
                !n.is_empty() && n.len() <= 255 && n.chars().all(|c| c.is_ascii_alphanumeric())
            );
            let (m, recorded) = Metrics::memory("s", "f");
            m.count(n, &[]);
            assert_eq!(
                recorded.documents()[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
                n
            );
        }
    }

    #[test]
    fn from_env_names_the_stack_and_the_function() {
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
    }
}
