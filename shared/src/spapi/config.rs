//! What the client is built from: the region, endpoints, credentials, per-operation limits,
//! timeouts and the retry policy.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use super::auth::LwaCredentials;
use super::operation::Operation;
use crate::config::{keys, Env};
use crate::error::{Error, Result};
use crate::ratelimit::Limit;
use crate::retry::RetryPolicy;

/// `flexbridge/<version> (Language=Rust)`, as Amazon asks every caller to identify itself.
pub const USER_AGENT: &str = concat!("flexbridge/", env!("CARGO_PKG_VERSION"), " (Language=Rust)");

/// SP-API region of the seller's marketplaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Region {
    #[default]
    Na,
    Eu,
    Fe,
}

impl Region {
    pub fn endpoint(&self) -> &'static str {
        match self {
            Region::Na => "https://sellingpartnerapi-na.amazon.com",
            Region::Eu => "https://sellingpartnerapi-eu.amazon.com",
            Region::Fe => "https://sellingpartnerapi-fe.amazon.com",
        }
    }
}

impl FromStr for Region {
    type Err = Error;

    /// `NA`/`EU`/`FE` (any case) or the matching AWS region (`us-east-1`, `eu-west-1`, `us-west-2`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "na" | "us-east-1" => Ok(Region::Na),
            "eu" | "eu-west-1" => Ok(Region::Eu),
            "fe" | "us-west-2" => Ok(Region::Fe),
            other => Err(Error::Config(format!(
                "SP-API region {other:?} is not one of NA, EU, FE"
            ))),
        }
    }
}

/// Everything the client needs; [`SpApiConfig::new`] fills sensible defaults.
#[derive(Debug, Clone)]
pub struct SpApiConfig {
    pub region: Region,
    /// Overrides the region's base URL (`SPAPI_ENDPOINT`; tests and the local run use the simulator).
    pub endpoint: Option<String>,
    /// Overrides the LWA token URL (`LWA_ENDPOINT`).
    pub lwa_endpoint: Option<String>,
    pub credentials: LwaCredentials,
    /// The selling partner id (Listings Items needs it in the path).
    pub seller_id: Option<String>,
    /// Per-operation overrides of [`Operation::default_limit`].
    pub rate_limits: HashMap<Operation, Limit>,
    /// Follow `x-amzn-RateLimit-Limit` when Amazon announces a different rate.
    pub adapt_rate_limits: bool,
    /// Per attempt, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts and backoff of every call (the deadline bounds it too).
    pub retry: RetryPolicy,
    /// `SpApiCalls` / `SpApiThrottles` / `SpApiErrors` by operation (none: not published).
    pub metrics: Option<crate::metrics::Metrics>,
}

impl SpApiConfig {
    pub fn new(region: Region, credentials: LwaCredentials) -> Self {
        Self {
            region,
            endpoint: None,
            lwa_endpoint: None,
            credentials,
            seller_id: None,
            rate_limits: HashMap::new(),
            adapt_rate_limits: true,
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(3),
            retry: RetryPolicy::new(6, Duration::from_millis(200), Duration::from_secs(8)),
            metrics: None,
        }
    }

    /// Region and endpoint overrides from the environment (`SPAPI_REGION` defaults to NA).
    pub fn from_env(env: &Env, credentials: LwaCredentials) -> Result<Self> {
        let region = match env.optional(keys::SPAPI_REGION) {
            Some(r) => r.parse()?,
            None => Region::Na,
        };
        let mut cfg = Self::new(region, credentials);
        cfg.endpoint = env.optional(keys::SPAPI_ENDPOINT).map(str::to_string);
        cfg.lwa_endpoint = env.optional(keys::LWA_ENDPOINT).map(str::to_string);
        cfg.seller_id = env.optional(keys::SELLER_ID).map(str::to_string);
        cfg.metrics = Some(crate::metrics::Metrics::from_env(env));
        Ok(cfg)
    }

    pub fn base_url(&self) -> String {
        self.endpoint
            .as_deref()
            .unwrap_or(self.region.endpoint())
            .trim_end_matches('/')
            .to_string()
    }

    pub fn token_url(&self) -> String {
        self.lwa_endpoint
            .clone()
            .unwrap_or_else(|| super::auth::DEFAULT_LWA_ENDPOINT.to_string())
    }

    pub fn limit(&self, op: Operation) -> Limit {
        self.rate_limits
            .get(&op)
            .copied()
            .unwrap_or_else(|| op.default_limit())
    }
}

/// Credentials for tests that never reach LWA.
#[cfg(test)]
pub(super) fn test_credentials() -> LwaCredentials {
    LwaCredentials {
        client_id: "id".into(),
        client_secret: "secret".into(),
        refresh_token: "refresh".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_endpoints_and_env_overrides() {
        assert_eq!(
            "eu".parse::<Region>().unwrap().endpoint(),
            "https://sellingpartnerapi-eu.amazon.com"
        );
        assert_eq!("us-west-2".parse::<Region>().unwrap(), Region::Fe);
        assert!("mars".parse::<Region>().is_err());
        let env = Env::default()
            .with(keys::SPAPI_REGION, "FE")
            .with(keys::SPAPI_ENDPOINT, "http://127.0.0.1:9/")
            .with(keys::LWA_ENDPOINT, "http://127.0.0.1:9/auth/o2/token");
        let cfg = SpApiConfig::from_env(&env, test_credentials()).unwrap();
        assert_eq!(cfg.region, Region::Fe);
        assert_eq!(cfg.base_url(), "http://127.0.0.1:9");
        assert_eq!(cfg.token_url(), "http://127.0.0.1:9/auth/o2/token");
        let cfg = SpApiConfig::from_env(&Env::default(), test_credentials()).unwrap();
        assert_eq!(cfg.base_url(), "https://sellingpartnerapi-na.amazon.com");
        assert_eq!(cfg.token_url(), "https://api.amazon.com/auth/o2/token");
    }

    #[test]
    fn user_agent_names_flexbridge_and_rust() {
        assert!(USER_AGENT.starts_with("flexbridge/"));
        assert!(USER_AGENT.ends_with(" (Language=Rust)"));
    }
}
