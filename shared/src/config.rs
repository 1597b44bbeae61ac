//! The one configuration loader. Every function reads its settings through [`Env`],
//! built from the process environment in Lambda and from the template's resolved
//! `Environment.Variables` in the local runner, so both see exactly what
//! `template.yaml` declares.

use std::collections::HashMap;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Names of the environment variables the template sets. Code never invents others.
pub mod keys {
    pub const CATALOG_TABLE: &str = "CATALOG_TABLE";
    pub const LOCATIONS_TABLE: &str = "LOCATIONS_TABLE";
    pub const SETTINGS_TABLE: &str = "SETTINGS_TABLE";
    pub const SHIPMENTS_TABLE: &str = "SHIPMENTS_TABLE";
    pub const INVENTORY_TABLE: &str = "INVENTORY_TABLE";
    pub const IDEMPOTENCY_TABLE: &str = "IDEMPOTENCY_TABLE";
    pub const CURSORS_TABLE: &str = "CURSORS_TABLE";
    pub const UPLOADS_QUEUE_URL: &str = "UPLOADS_QUEUE_URL";
    pub const LABELS_QUEUE_URL: &str = "LABELS_QUEUE_URL";
    pub const CANCELLATIONS_QUEUE_URL: &str = "CANCELLATIONS_QUEUE_URL";
    pub const PRICE_UPDATES_QUEUE_URL: &str = "PRICE_UPDATES_QUEUE_URL";
    pub const NOTIFICATIONS_QUEUE_URL: &str = "NOTIFICATIONS_QUEUE_URL";
    pub const OUTBOUND_QUEUE_URL: &str = "OUTBOUND_QUEUE_URL";
    pub const INVENTORY_PUSH_QUEUE_URL: &str = "INVENTORY_PUSH_QUEUE_URL";
    pub const BUCKET_NAME: &str = "BUCKET_NAME";
    pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
    /// The stack's one secret: SP-API credentials and the signing key both HMAC keys are
    /// derived from (`warehouse::keys`).
    pub const FLEXBRIDGE_SECRET_ARN: &str = "FLEXBRIDGE_SECRET_ARN";
    /// `true` while a warehouse still signs with the legacy `v1` scheme (default `false`).
    pub const WAREHOUSE_ACCEPT_V1_SIGNATURES: &str = "WAREHOUSE_ACCEPT_V1_SIGNATURES";
    pub const WEBHOOK_URL: &str = "WEBHOOK_URL";
    pub const SPAPI_REGION: &str = "SPAPI_REGION";
    pub const SPAPI_ENDPOINT: &str = "SPAPI_ENDPOINT";
    pub const LWA_ENDPOINT: &str = "LWA_ENDPOINT";
    pub const MARKETPLACE_ID: &str = "MARKETPLACE_ID";
    pub const SELLER_ID: &str = "SELLER_ID";
    /// The DLQ of the queue an SQS consumer reads (`runtime::SqsConsumer`); each consumer
    /// gets its own queue's DLQ and `sqs:SendMessage` on exactly that queue.
    pub const DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
    /// Every DLQ, comma-separated: the health report shows their depth and parked reasons.
    pub const DEAD_LETTER_QUEUE_URLS: &str = "DEAD_LETTER_QUEUE_URLS";
    /// The CloudFormation stack name (template Globals), the `Stack` dimension of metrics.
    pub const STACK_NAME: &str = "STACK_NAME";
    /// `on` when the template's `CloudWatchDashboard` parameter is on (template Globals): the
    /// functions then also publish the metrics the dashboard reads (`metrics::Extract`).
    pub const METRICS_DASHBOARD: &str = "METRICS_DASHBOARD";

    /// Set by Lambda itself (the local runner sets it too), never by the template.
    pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

    /// Local/test only (never set by the template): moto and its static credentials.
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";

    /// Local/test only: how much faster than real time the local runner's clock runs (its
    /// `speedup`); a consumer's retry delays are divided by it as the runner divides the
    /// visibility timeouts. Unset (1) in AWS.
    pub const LOCAL_CLOCK_SPEEDUP: &str = "LOCAL_CLOCK_SPEEDUP";

    /// Names set only by tests and the local run, never by template.yaml.
    pub const LOCAL_OVERRIDES: &[&str] = &[
        LOCAL_CLOCK_SPEEDUP,
        SPAPI_ENDPOINT,
        LWA_ENDPOINT,
        AWS_ENDPOINT_URL,
        AWS_REGION,
        AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY,
    ];
}

/// S3 key prefixes of the uploads bucket. Inbound ones are the template's notification
/// filters (a file there is processed on arrival); outbound ones are where flexbridge writes.
/// foundation_template checks both lists against template.yaml.
pub mod prefixes {
    pub const CATALOG: &str = "catalog/";
    pub const PRICES: &str = "prices/";
    pub const INVENTORY: &str = "inventory/";
    pub const REPORTS: &str = "reports/";
    pub const LABELS: &str = "labels/";
    /// The daily health pages, under REPORTS (`health::report_key`).
    pub const HEALTH_REPORTS: &str = "reports/health/";

    pub const INBOUND: &[&str] = &[CATALOG, PRICES, INVENTORY];
    pub const OUTBOUND: &[&str] = &[REPORTS, LABELS];
}

/// A snapshot of settings; cheap to clone, never read from the process twice.
///
/// `Debug` prints the names only: in Lambda the environment holds the function's AWS
/// credentials (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), which must never reach a log.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env")
            .field("vars", &names)
            .field("values", &"<redacted>")
            .finish()
    }
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }

    /// A copy with one value set (tests and the local runner use this for overrides).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_string(), value.into());
        self
    }

    pub fn optional(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, key: &str) -> Result<&str> {
        self.optional(key).ok_or_else(|| {
            Error::Config(format!(
                "environment variable {key} is not set; template.yaml must declare it for this function"
            ))
        })
    }

    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| Error::Config(format!("{key}={raw:?} is not valid: {e}"))),
        }
    }

    pub fn vars(&self) -> &HashMap<String, String> {
        &self.vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_names_the_missing_variable() {
        let env = Env::default();
        let err = env.require(keys::CATALOG_TABLE).unwrap_err().to_string();
        assert!(err.contains("CATALOG_TABLE"), "{err}");
    }

    #[test]
    fn debug_never_prints_a_value() {
        let env = Env::default()
            .with(keys::AWS_SECRET_ACCESS_KEY, "wJalrXUtnFEMI/K7MDENG")
            .with("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE")
            .with(keys::CATALOG_TABLE, "catalog-table-name");
        let printed = format!("{env:?} {env:#?}");
        for secret in ["wJalrXUtnFEMI", "IQoJb3JpZ2luX2VjE", "catalog-table-name"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        // The names stay, so a log still shows what was set.
        assert!(printed.contains("AWS_SECRET_ACCESS_KEY"), "{printed}");
        assert!(printed.contains("CATALOG_TABLE"), "{printed}");
    }

    #[test]
    fn parse_or_reports_bad_values_and_defaults_missing_ones() {
        let env = Env::default().with("N", "x");
        assert!(env.parse_or::<u32>("N", 3).is_err());
        assert_eq!(env.parse_or::<u32>("M", 3).unwrap(), 3);
        assert_eq!(
            Env::default()
                .with("N", "7")
                .parse_or::<u32>("N", 3)
                .unwrap(),
            7
        );
    }
}
