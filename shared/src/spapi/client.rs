//! The HTTP side of the client: configuration, one request loop (rate limit, token, retry) and
//! one typed method per operation.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::{
    transport_message, CredentialsSource, Grant, LwaCredentials, LwaTokenSource, TokenCache,
    TokenSource, NOTIFICATIONS_SCOPE,
};
use super::error::{SpApiError, SpApiErrorKind};
use super::models::*;
use crate::config::{keys, Env};
use crate::error::{Error, Result};
use crate::ratelimit::{Limit, RateLimiters, TokenBucket};
use crate::retry::{Deadline, RetryDecision, RetryPolicy};
use crate::secrets::SecretCache;

/// `flexbridge/<version> (Language=Rust)`, as Amazon asks every caller to identify itself.
pub const USER_AGENT: &str = concat!("flexbridge/", env!("CARGO_PKG_VERSION"), " (Language=Rust)");

/// Percent-encode everything but RFC 3986 unreserved characters (path segments, query values).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const SHIPMENTS: &str = "/externalFulfillment/2024-09-11/shipments";
const RETURNS: &str = "/externalFulfillment/2024-09-11/returns";
const INVENTORY: &str = "/externalFulfillment/inventory/2024-09-11/inventories";
const LISTINGS: &str = "/listings/2021-08-01/items";
const SUBSCRIPTIONS: &str = "/notifications/v1/subscriptions";
const DESTINATIONS: &str = "/notifications/v1/destinations";

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

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

/// The operations the client calls; each has its own rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    GetShipments,
    GetShipment,
    ProcessShipment,
    CreatePackages,
    UpdatePackage,
    UpdatePackageStatus,
    RetrieveShippingOptions,
    GenerateInvoice,
    RetrieveInvoice,
    GenerateShipLabels,
    BatchInventory,
    ListReturns,
    GetReturn,
    PatchListingsItem,
    GetSubscription,
    CreateSubscription,
    GetDestinations,
    CreateDestination,
}

impl Operation {
    pub const ALL: [Operation; 18] = [
        Operation::GetShipments,
        Operation::GetShipment,
        Operation::ProcessShipment,
        Operation::CreatePackages,
        Operation::UpdatePackage,
        Operation::UpdatePackageStatus,
        Operation::RetrieveShippingOptions,
        Operation::GenerateInvoice,
        Operation::RetrieveInvoice,
        Operation::GenerateShipLabels,
        Operation::BatchInventory,
        Operation::ListReturns,
        Operation::GetReturn,
        Operation::PatchListingsItem,
        Operation::GetSubscription,
        Operation::CreateSubscription,
        Operation::GetDestinations,
        Operation::CreateDestination,
    ];

    /// The model's operationId.
    pub fn id(&self) -> &'static str {
        match self {
            Operation::GetShipments => "getShipments",
            Operation::GetShipment => "getShipment",
            Operation::ProcessShipment => "processShipment",
            Operation::CreatePackages => "createPackages",
            Operation::UpdatePackage => "updatePackage",
            Operation::UpdatePackageStatus => "updatePackageStatus",
            Operation::RetrieveShippingOptions => "retrieveShippingOptions",
            Operation::GenerateInvoice => "generateInvoice",
            Operation::RetrieveInvoice => "retrieveInvoice",
            Operation::GenerateShipLabels => "generateShipLabels",
            Operation::BatchInventory => "batchInventory",
            Operation::ListReturns => "listReturns",
            Operation::GetReturn => "getReturn",
            Operation::PatchListingsItem => "patchListingsItem",
            Operation::GetSubscription => "getSubscription",
            Operation::CreateSubscription => "createSubscription",
            Operation::GetDestinations => "getDestinations",
            Operation::CreateDestination => "createDestination",
        }
    }

    /// Amazon's published default rate / burst; Shipments' are unpublished (1 / 2 here, tuned
    /// from `x-amzn-RateLimit-Limit` at run time).
    pub fn default_limit(&self) -> Limit {
        match self {
            Operation::BatchInventory => Limit::new(50.0, 100),
            Operation::ListReturns | Operation::GetReturn => Limit::new(10.0, 20),
            Operation::PatchListingsItem => Limit::new(5.0, 5),
            Operation::GetSubscription
            | Operation::CreateSubscription
            | Operation::GetDestinations
            | Operation::CreateDestination => Limit::new(1.0, 5),
            _ => Limit::new(1.0, 2),
        }
    }

    /// Whether sending the same request twice has the effect of sending it once, so a 5xx or
    /// timeout may be retried blindly.
    pub fn is_idempotent(&self) -> bool {
        !matches!(
            self,
            Operation::ProcessShipment
                | Operation::CreatePackages
                | Operation::UpdatePackage
                | Operation::UpdatePackageStatus
                | Operation::GenerateInvoice
                | Operation::GenerateShipLabels
                | Operation::CreateSubscription
                | Operation::CreateDestination
        )
    }

    /// Grantless operations use the application's own token (client-credentials grant).
    pub fn is_grantless(&self) -> bool {
        matches!(
            self,
            Operation::GetDestinations | Operation::CreateDestination
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
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

struct Inner {
    http: reqwest::Client,
    base_url: String,
    tokens: TokenCache,
    grantless_tokens: TokenCache,
    limiters: RateLimiters,
    retry: RetryPolicy,
    request_timeout: Duration,
    adapt_rate_limits: bool,
    seller_id: Option<String>,
    credentials: CredentialsSource,
    metrics: Option<crate::metrics::Metrics>,
}

/// The SP-API client. Cheap to clone; clones share everything but the deadline.
#[derive(Clone)]
pub struct SpApiClient {
    inner: Arc<Inner>,
    deadline: Option<Deadline>,
}

impl fmt::Debug for SpApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpApiClient")
            .field("base_url", &self.inner.base_url)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A raw answer: status, body and request id.
struct Answer {
    status: u16,
    body: Bytes,
    request_id: Option<String>,
}

struct Request {
    op: Operation,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Request {
    fn new(op: Operation, method: Method, path: String) -> Self {
        Self {
            op,
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    fn query(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.query.push((name, v.to_string()));
        }
        self
    }

    fn json<T: Serialize>(mut self, body: &T) -> Result<Self, SpApiError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            SpApiError::invalid_input(self.op.id(), format!("cannot serialize the body: {e}"))
        })?;
        self.body = Some(bytes);
        Ok(self)
    }
}

impl SpApiClient {
    /// Builds the client (no network yet; the first call fetches the access token).
    pub fn new(config: SpApiConfig) -> Result<Self> {
        let credentials = CredentialsSource::Fixed(config.credentials.clone());
        Self::build(config, credentials)
    }

    fn build(config: SpApiConfig, credentials: CredentialsSource) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let lwa = |grant| -> Arc<dyn TokenSource> {
            Arc::new(LwaTokenSource {
                http: http.clone(),
                url: config.token_url(),
                credentials: credentials.clone(),
                grant,
                user_agent: USER_AGENT.to_string(),
                timeout: config.request_timeout,
            })
        };
        let tokens = TokenCache::new(lwa(Grant::RefreshToken));
        let grantless_tokens = TokenCache::new(lwa(Grant::ClientCredentials {
            scope: NOTIFICATIONS_SCOPE,
        }));
        let defaults = Operation::ALL
            .iter()
            .map(|op| (op.id().to_string(), config.limit(*op)))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url(),
                tokens,
                grantless_tokens,
                limiters: RateLimiters::new(defaults, Limit::new(1.0, 2)),
                retry: config.retry,
                request_timeout: config.request_timeout,
                adapt_rate_limits: config.adapt_rate_limits,
                seller_id: config.seller_id,
                credentials,
                metrics: config.metrics,
            }),
            deadline: None,
        })
    }

    /// The client a Lambda uses: credentials from the `SPAPI_SECRET_ARN` secret
    /// (`{client_id, client_secret, refresh_token, seller_id?}`), read on the first call that
    /// needs a token (no AWS call here, so a cold start makes none), region and endpoint
    /// overrides from `env`.
    pub async fn from_env(env: &Env, secrets: &SecretCache) -> Result<Self> {
        let arn = env.require(keys::SPAPI_SECRET_ARN)?;
        let placeholder = LwaCredentials {
            client_id: String::new(),
            client_secret: "".into(),
            refresh_token: "".into(),
        };
        let config = SpApiConfig::from_env(env, placeholder)?;
        Self::build(
            config,
            CredentialsSource::Secret {
                secrets: secrets.clone(),
                arn: arn.to_string(),
            },
        )
    }

    /// A handle whose calls never start an attempt or a wait that would end after `deadline`
    /// (e.g. `client.with_deadline(&invocation)`); it shares everything else with `self`.
    pub fn with_deadline(&self, deadline: impl Into<Deadline>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            deadline: Some(deadline.into()),
        }
    }

    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// The selling partner id: the secret's `seller_id` when it has one, else `SELLER_ID`
    /// (reads the secret, through its cache, when the client was built by [`Self::from_env`]).
    pub async fn seller_id(&self) -> Result<Option<String>> {
        let from_secret = self
            .inner
            .credentials
            .secret()
            .await?
            .and_then(|s| s.seller_id);
        Ok(from_secret.or_else(|| self.inner.seller_id.clone()))
    }

    /// This stack's SP-API application ID: the secret's `application_id`, if set (no
    /// environment fallback: it belongs with the credentials of the same app).
    pub async fn application_id(&self) -> Result<Option<String>> {
        Ok(self
            .inner
            .credentials
            .secret()
            .await?
            .and_then(|s| s.application_id)
            .filter(|a| !a.is_empty()))
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The bucket an operation's calls wait on (to read or tune its limit).
    pub fn rate_limiter(&self, op: Operation) -> Arc<TokenBucket> {
        self.inner.limiters.bucket(op.id())
    }

    /// Makes every call of `op` (by any clone of this client) wait on a bucket shared with
    /// every other process using the same `store`, so Amazon's per-seller limit holds however
    /// many Lambda instances run. `chunk`: tokens reserved per store round trip.
    /// `limit`: the operation's configured limit when `None`.
    pub fn share_rate_limit(
        &self,
        op: Operation,
        store: Arc<dyn crate::ratelimit::SharedBucketStore>,
        limit: Option<Limit>,
        chunk: u32,
    ) {
        let limit = limit.unwrap_or_else(|| self.inner.limiters.default_limit(op.id()));
        self.inner.limiters.share(
            op.id(),
            Arc::new(crate::ratelimit::SharedBucket::new(
                store,
                op.id(),
                limit,
                chunk,
            )),
        );
    }

    /// How many seller access tokens this client obtained from LWA so far.
    pub fn tokens_issued(&self) -> u64 {
        self.inner.tokens.issued()
    }

    // ---------------------------------------------------------------- Shipments

    /// One page of shipments in one status. Pages may be empty while `next_token` is set:
    /// keep following `next_token` until it is `None`.
    pub async fn get_shipments(&self, q: &GetShipmentsQuery) -> Result<ShipmentsPage, SpApiError> {
        let op = Operation::GetShipments;
        if !q.status.is_known() {
            return Err(SpApiError::invalid_input(
                op.id(),
                format!("status {:?} is not a shipment status", q.status.as_str()),
            ));
        }
        if let Some(n) = q.max_results {
            if !(1..=100).contains(&n) {
                return Err(SpApiError::invalid_input(
                    op.id(),
                    format!("maxResults {n} is not within 1..=100"),
                ));
            }
        }
        let req = Request::new(op, Method::GET, SHIPMENTS.to_string())
            .query("locationId", q.location_id.as_ref())
            .query("marketplaceId", q.marketplace_id.as_ref())
            .query("channelName", q.channel_name.as_ref())
            .query("status", Some(q.status.as_str()))
            .query(
                "lastUpdatedAfter",
                q.last_updated_after.map(|t| t.to_rfc3339()),
            )
            .query(
                "lastUpdatedBefore",
                q.last_updated_before.map(|t| t.to_rfc3339()),
            )
            .query("maxResults", q.max_results)
            .query("paginationToken", q.pagination_token.as_ref());
        self.call_with(req, ShipmentsPage::from_json).await
    }

    pub async fn get_shipment(&self, shipment_id: &str) -> Result<Shipment, SpApiError> {
        let req = Request::new(
            Operation::GetShipment,
            Method::GET,
            format!("{SHIPMENTS}/{}", enc(shipment_id)),
        );
        self.call_json(req).await
    }

    /// CONFIRM or REJECT a shipment (204). Not resent on 5xx/timeout: see the module docs.
    pub async fn process_shipment(
        &self,
        shipment_id: &str,
        operation: &ShipmentOperation,
    ) -> Result<(), SpApiError> {
        let op = Operation::ProcessShipment;
        let mut req = Request::new(
            op,
            Method::POST,
            format!("{SHIPMENTS}/{}", enc(shipment_id)),
        )
        .query("operation", Some(operation.as_str()));
        if let ShipmentOperation::Reject(body) = operation {
            if body.line_items.is_empty() {
                return Err(SpApiError::invalid_input(
                    op.id(),
                    "a REJECT needs at least one line item",
                ));
            }
            req = req.json(body)?;
        }
        self.call_empty(req).await
    }

    pub async fn create_packages(
        &self,
        shipment_id: &str,
        packages: &[Package],
    ) -> Result<(), SpApiError> {
        let op = Operation::CreatePackages;
        if packages.is_empty() {
            return Err(SpApiError::invalid_input(
                op.id(),
                "at least one package is required",
            ));
        }
        validate_packages(op, packages)?;
        let body = Packages {
            packages: packages.to_vec(),
        };
        let req = Request::new(
            op,
            Method::POST,
            format!("{SHIPMENTS}/{}/packages", enc(shipment_id)),
        )
        .json(&body)?;
        self.call_empty(req).await
    }

    /// Replaces a package; the shipment goes back to PACKAGE_CREATED (labels and invoice must be
    /// generated again).
    pub async fn update_package(
        &self,
        shipment_id: &str,
        package: &Package,
    ) -> Result<(), SpApiError> {
        let op = Operation::UpdatePackage;
        validate_packages(op, std::slice::from_ref(package))?;
        let req = Request::new(
            op,
            Method::PUT,
            format!(
                "{SHIPMENTS}/{}/packages/{}",
                enc(shipment_id),
                enc(&package.id)
            ),
        )
        .json(package)?;
        self.call_empty(req).await
    }

    /// Sets a package's delivery status (body form; the query form is deprecated).
    pub async fn update_package_status(
        &self,
        shipment_id: &str,
        package_id: &str,
        status: &PackageDeliveryStatus,
    ) -> Result<(), SpApiError> {
        let op = Operation::UpdatePackageStatus;
        if status.status.as_ref().is_some_and(|s| !s.is_known()) {
            return Err(SpApiError::invalid_input(op.id(), "unknown package status"));
        }
        if status
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 128)
        {
            return Err(SpApiError::invalid_input(
                op.id(),
                "reason is longer than 128 characters",
            ));
        }
        let req = Request::new(
            op,
            Method::PATCH,
            format!(
                "{SHIPMENTS}/{}/packages/{}",
                enc(shipment_id),
                enc(package_id)
            ),
        )
        .json(status)?;
        self.call_empty(req).await
    }

    /// Shipping options for one package (none for Seller Flex).
    pub async fn retrieve_shipping_options(
        &self,
        shipment_id: &str,
        package_id: &str,
    ) -> Result<ShippingOptionsResponse, SpApiError> {
        let req = Request::new(
            Operation::RetrieveShippingOptions,
            Method::GET,
            format!("{SHIPMENTS}/{}/shippingOptions", enc(shipment_id)),
        )
        .query("packageId", Some(package_id));
        self.call_json(req).await
    }

    pub async fn generate_invoice(&self, shipment_id: &str) -> Result<InvoiceResponse, SpApiError> {
        let req = Request::new(
            Operation::GenerateInvoice,
            Method::POST,
            format!("{SHIPMENTS}/{}/invoice", enc(shipment_id)),
        );
        self.call_json(req).await
    }

    pub async fn retrieve_invoice(&self, shipment_id: &str) -> Result<InvoiceResponse, SpApiError> {
        let req = Request::new(
            Operation::RetrieveInvoice,
            Method::GET,
            format!("{SHIPMENTS}/{}/invoice", enc(shipment_id)),
        );
        self.call_json(req).await
    }

    /// GENERATE (or deliberately REGENERATE) labels; MFN passes the chosen shipping option.
    /// One call can partly fail: check each label's `status`.
    pub async fn generate_ship_labels(
        &self,
        shipment_id: &str,
        operation: LabelOperation,
        shipping_option_id: Option<&str>,
        input: &ShipLabelsInput,
    ) -> Result<ShipLabelsResponse, SpApiError> {
        let op = Operation::GenerateShipLabels;
        if input.package_ids.is_empty() || input.package_ids.len() > 50 {
            return Err(SpApiError::invalid_input(
                op.id(),
                format!(
                    "{} package ids; 1 to 50 are allowed",
                    input.package_ids.len()
                ),
            ));
        }
        let req = Request::new(
            op,
            Method::PUT,
            format!("{SHIPMENTS}/{}/shipLabels", enc(shipment_id)),
        )
        .query("shippingOptionId", shipping_option_id)
        .query("operation", Some(operation.as_str()))
        .json(input)?;
        self.call_json(req).await
    }

    // ---------------------------------------------------------------- Inventory

    /// 1 to 10 inventory updates/fetches in one call; one result per request (HTTP 207), each to
    /// be checked on its own.
    pub async fn batch_inventory(
        &self,
        requests: &[InventoryRequest],
    ) -> Result<Vec<InventoryItemResult>, SpApiError> {
        let op = Operation::BatchInventory;
        if requests.is_empty() || requests.len() > 10 {
            return Err(SpApiError::invalid_input(
                op.id(),
                format!("{} requests; a batch holds 1 to 10", requests.len()),
            ));
        }
        let body = BatchInventoryRequest {
            requests: requests.to_vec(),
        };
        let req = Request::new(op, Method::POST, INVENTORY.to_string()).json(&body)?;
        let r: BatchInventoryResponse = self.call_json(req).await?;
        Ok(r.responses)
    }

    // ---------------------------------------------------------------- Returns

    /// One page of returns; follow `next_token` until `None` (pages may be empty).
    pub async fn list_returns(&self, q: &ListReturnsQuery) -> Result<ReturnsPage, SpApiError> {
        let op = Operation::ListReturns;
        if let Some(n) = q.max_results {
            if !(1..=100).contains(&n) {
                return Err(SpApiError::invalid_input(
                    op.id(),
                    format!("maxResults {n} is not within 1..=100"),
                ));
            }
        }
        if (q.last_updated_since.is_some() || q.last_updated_until.is_some())
            && (q.return_location_id.is_none() || q.status.is_none())
        {
            return Err(SpApiError::invalid_input(
                op.id(),
                "lastUpdatedSince/Until also need returnLocationId and status",
            ));
        }
        let req = Request::new(op, Method::GET, RETURNS.to_string())
            .query("returnLocationId", q.return_location_id.as_ref())
            .query("rmaId", q.rma_id.as_ref())
            .query("status", q.status.as_ref().map(|s| s.as_str()))
            .query("reverseTrackingId", q.reverse_tracking_id.as_ref())
            .query("createdSince", q.created_since.map(|t| t.to_rfc3339()))
            .query("createdUntil", q.created_until.map(|t| t.to_rfc3339()))
            .query(
                "lastUpdatedSince",
                q.last_updated_since.map(|t| t.to_rfc3339()),
            )
            .query(
                "lastUpdatedUntil",
                q.last_updated_until.map(|t| t.to_rfc3339()),
            )
            .query("maxResults", q.max_results)
            .query("nextToken", q.next_token.as_ref());
        self.call_with(req, ReturnsPage::from_json).await
    }

    pub async fn get_return(&self, return_id: &str) -> Result<Return, SpApiError> {
        let req = Request::new(
            Operation::GetReturn,
            Method::GET,
            format!("{RETURNS}/{}", enc(return_id)),
        );
        self.call_json(req).await
    }

    // ---------------------------------------------------------------- Listings

    /// Patches a listing (prices: [`ListingsPatch::price`]). `ACCEPTED` means queued at Amazon.
    pub async fn patch_listings_item(
        &self,
        seller_id: &str,
        sku: &str,
        marketplace_ids: &[impl AsRef<str>],
        patch: &ListingsPatch,
    ) -> Result<ListingsItemSubmissionResponse, SpApiError> {
        let op = Operation::PatchListingsItem;
        if marketplace_ids.is_empty() {
            return Err(SpApiError::invalid_input(
                op.id(),
                "at least one marketplace id is required",
            ));
        }
        if patch.patches.is_empty() {
            return Err(SpApiError::invalid_input(
                op.id(),
                "at least one patch is required",
            ));
        }
        let ids = marketplace_ids
            .iter()
            .map(|m| m.as_ref().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let req = Request::new(
            op,
            Method::PATCH,
            format!("{LISTINGS}/{}/{}", enc(seller_id), enc(sku)),
        )
        .query("marketplaceIds", Some(ids))
        .json(patch)?;
        self.call_json(req).await
    }

    // ---------------------------------------------------------------- Notifications

    /// The seller's subscription to `notification_type`, if any (404 → `Ok(None)`).
    pub async fn get_subscription(
        &self,
        notification_type: &str,
    ) -> Result<Option<Subscription>, SpApiError> {
        let req = Request::new(
            Operation::GetSubscription,
            Method::GET,
            format!("{SUBSCRIPTIONS}/{}", enc(notification_type)),
        );
        match self.call_json::<GetSubscriptionResponse>(req).await {
            Ok(r) => Ok(r.payload),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Subscribes the seller to `notification_type` at `destination_id` (409 if it exists).
    pub async fn create_subscription(
        &self,
        notification_type: &str,
        body: &CreateSubscriptionRequest,
    ) -> Result<Subscription, SpApiError> {
        let op = Operation::CreateSubscription;
        let req = Request::new(
            op,
            Method::POST,
            format!("{SUBSCRIPTIONS}/{}", enc(notification_type)),
        )
        .json(body)?;
        let r: CreateSubscriptionResponse = self.call_json(req).await?;
        r.payload.ok_or_else(|| {
            SpApiError::new(
                SpApiErrorKind::Decode,
                op.id(),
                "answer has no subscription payload",
            )
        })
    }

    /// The application's notification destinations (grantless).
    pub async fn get_destinations(&self) -> Result<Vec<Destination>, SpApiError> {
        let req = Request::new(
            Operation::GetDestinations,
            Method::GET,
            DESTINATIONS.to_string(),
        );
        let r: GetDestinationsResponse = self.call_json(req).await?;
        Ok(r.payload.unwrap_or_default())
    }

    /// Registers where Amazon sends notifications (grantless; 409 if it exists already).
    pub async fn create_destination(
        &self,
        body: &CreateDestinationRequest,
    ) -> Result<Destination, SpApiError> {
        let op = Operation::CreateDestination;
        if body.resource_specification.sqs.is_none()
            && body.resource_specification.event_bridge.is_none()
        {
            return Err(SpApiError::invalid_input(
                op.id(),
                "a destination needs an SQS queue ARN or an EventBridge account",
            ));
        }
        let req = Request::new(op, Method::POST, DESTINATIONS.to_string()).json(body)?;
        let r: DestinationResponse = self.call_json(req).await?;
        r.payload.ok_or_else(|| {
            SpApiError::new(
                SpApiErrorKind::Decode,
                op.id(),
                "answer has no destination payload",
            )
        })
    }

    // ---------------------------------------------------------------- plumbing

    fn token_cache(&self, op: Operation) -> &TokenCache {
        if op.is_grantless() {
            &self.inner.grantless_tokens
        } else {
            &self.inner.tokens
        }
    }

    async fn call_json<T: DeserializeOwned>(&self, req: Request) -> Result<T, SpApiError> {
        self.call_with(req, |body| serde_json::from_slice(body))
            .await
    }

    /// Sends `req` and reads a success body with `read`.
    async fn call_with<T>(
        &self,
        req: Request,
        read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, SpApiError> {
        let op = req.op;
        let answer = self.execute(req).await?;
        let body: &[u8] = if answer.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &answer.body
        };
        read(body).map_err(|e| {
            let mut err = SpApiError::new(SpApiErrorKind::Decode, op.id(), decode_message(&e));
            err.status = Some(answer.status);
            err.request_id = answer.request_id.clone();
            // A write that succeeded but whose answer we cannot read: the caller must read the
            // resource back, exactly as after a timeout.
            err.outcome_unknown = !op.is_idempotent();
            tracing::error!(operation = op.id(), request_id = ?answer.request_id, error = %err, "unreadable SP-API answer");
            err
        })
    }

    async fn call_empty(&self, req: Request) -> Result<(), SpApiError> {
        self.execute(req).await.map(|_| ())
    }

    fn url(&self, req: &Request) -> String {
        let mut url = format!("{}{}", self.inner.base_url, req.path);
        for (i, (k, v)) in req.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            // Lists (marketplaceIds) are comma-separated; the commas stay literal.
            let parts: Vec<String> = v.split(',').map(enc).collect();
            url.push_str(&parts.join(","));
        }
        url
    }

    /// Counts a metric of this operation (dimension `Operation`).
    fn count(&self, name: &str, op: Operation) {
        if let Some(m) = &self.inner.metrics {
            m.count(name, &[("Operation", op.id())]);
        }
    }

    /// [`Self::attempts`], counting a call that failed after its retries in `SpApiErrors`.
    async fn execute(&self, req: Request) -> Result<Answer, SpApiError> {
        let op = req.op;
        let answer = self.attempts(req).await;
        if answer.is_err() {
            self.count(crate::metrics::names::SPAPI_ERRORS, op);
        }
        answer
    }

    /// Rate limit, token, send, classify, retry: the one loop every operation goes through.
    async fn attempts(&self, req: Request) -> Result<Answer, SpApiError> {
        let op = req.op;
        let bucket = self.rate_limiter(op);
        let url = self.url(&req);
        let policy = self.inner.retry;
        let mut refreshed_token = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut err = match self.attempt(&req, &url, &bucket).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(mut e)) => {
                    e.attempts = attempt;
                    return Err(e);
                }
                Err(Failure::TokenRejected(e, token)) if !refreshed_token => {
                    // An expired or revoked token: refresh once and try again at once.
                    refreshed_token = true;
                    self.token_cache(op).invalidate(&token).await;
                    tracing::warn!(operation = op.id(), status = ?e.status, "access token rejected; refreshing");
                    continue;
                }
                Err(Failure::TokenRejected(e, _)) => e,
                Err(Failure::Attempt(e)) => e,
            };
            err.attempts = attempt;
            let decision = self.decide(op, &mut err);
            if decision == RetryDecision::Stop {
                return Err(err);
            }
            match policy.next_wait(attempt, decision, self.deadline) {
                Some(wait) => {
                    tracing::warn!(
                        operation = op.id(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %err,
                        "SP-API call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                None => {
                    if !op.is_idempotent() && might_have_applied(&err) {
                        err.outcome_unknown = true;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Whether to retry `err`; marks non-idempotent writes that may have been applied.
    fn decide(&self, op: Operation, err: &mut SpApiError) -> RetryDecision {
        use SpApiErrorKind as K;
        match err.kind {
            K::Status if err.status == Some(429) => RetryDecision::Retry,
            K::Connect => RetryDecision::Retry,
            K::Auth if err.is_retryable() => RetryDecision::Retry,
            K::Status | K::Timeout | K::Transport if might_have_applied(err) => {
                if op.is_idempotent() {
                    RetryDecision::Retry
                } else {
                    err.outcome_unknown = true;
                    RetryDecision::Stop
                }
            }
            _ => RetryDecision::Stop,
        }
    }

    /// One try: wait for the bucket, get a token, send, read the answer.
    async fn attempt(
        &self,
        req: &Request,
        url: &str,
        bucket: &TokenBucket,
    ) -> Result<Answer, Failure> {
        let op = req.op;
        let deadline_err = |what: &str| {
            Failure::Final(SpApiError::new(
                SpApiErrorKind::DeadlineExceeded,
                op.id(),
                format!("no time left before the deadline {what}"),
            ))
        };
        if self.deadline.is_some_and(|d| d.is_past()) {
            return Err(deadline_err("to send"));
        }
        match self.inner.limiters.shared(op.id()) {
            Some(shared) => shared.acquire_before(self.deadline).await,
            None => bucket.acquire_before(self.deadline).await,
        }
        .map_err(|e| deadline_err(&format!("(rate limit: next slot in {:?})", e.wait)))?;
        let token = self
            .token_cache(op)
            .token()
            .await
            .map_err(Failure::Attempt)?;
        let timeout = match self.deadline {
            Some(d) => self.inner.request_timeout.min(d.remaining()),
            None => self.inner.request_timeout,
        };
        if timeout.is_zero() {
            return Err(deadline_err("to send"));
        }
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), url)
            .timeout(timeout)
            .header("x-amz-access-token", token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &req.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        } else if req.method != Method::GET {
            builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let started = tokio::time::Instant::now();
        self.count(crate::metrics::names::SPAPI_CALLS, op);
        let resp = builder
            .send()
            .await
            .map_err(|e| Failure::Attempt(transport_error(op, &e)))?;
        let status = resp.status().as_u16();
        let request_id = header(&resp, "x-amzn-requestid");
        if self.inner.adapt_rate_limits {
            if let Some(rate) =
                header(&resp, "x-amzn-ratelimit-limit").and_then(|v| v.trim().parse::<f64>().ok())
            {
                let current = bucket.limit().rate;
                if rate > 0.0 && (rate - current).abs() > 1e-6 {
                    tracing::info!(
                        operation = op.id(),
                        from = current,
                        to = rate,
                        "rate limit adjusted from x-amzn-RateLimit-Limit"
                    );
                    bucket.set_rate(rate);
                }
            }
        }
        let body = resp.bytes().await.map_err(|e| {
            let mut err = transport_error(op, &e);
            err.status = Some(status);
            err.request_id = request_id.clone();
            Failure::Attempt(err)
        })?;
        tracing::info!(
            operation = op.id(),
            status,
            request_id = request_id.as_deref().unwrap_or("-"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sp-api response"
        );
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                body,
                request_id,
            });
        }
        let errors = serde_json::from_slice::<ErrorList>(&body)
            .map(|l| l.errors)
            .unwrap_or_default();
        let mut err = SpApiError::new(SpApiErrorKind::Status, op.id(), http_reason(status));
        err.status = Some(status);
        err.errors = errors;
        err.request_id = request_id;
        if status == 429 {
            self.count(crate::metrics::names::SPAPI_THROTTLES, op);
            // Amazon's bucket is emptier than ours: stop using our spare tokens.
            bucket.drain();
        }
        if matches!(status, 401 | 403) {
            return Err(Failure::TokenRejected(err, token));
        }
        Err(Failure::Attempt(err))
    }
}

enum Failure {
    /// Counts as an attempt; the retry policy decides.
    Attempt(SpApiError),
    /// 401/403: refresh the token once, then treat as `Attempt`.
    TokenRejected(SpApiError, crate::secrets::SecretString),
    /// No further attempt possible (deadline).
    Final(SpApiError),
}

/// 5xx, a timeout or a connection lost after sending: Amazon may have processed the request.
fn might_have_applied(err: &SpApiError) -> bool {
    match err.kind {
        SpApiErrorKind::Status => matches!(err.status, Some(500..=599)),
        SpApiErrorKind::Timeout | SpApiErrorKind::Transport => true,
        _ => false,
    }
}

fn validate_packages(op: Operation, packages: &[Package]) -> Result<(), SpApiError> {
    for p in packages {
        let problem = if p.id.is_empty() {
            Some("a package has no id".to_string())
        } else if p.package_line_items.is_empty() {
            Some(format!("package {} has no line items", p.id))
        } else if !p.weight.weight_unit.is_known()
            || !p.dimensions.length.dimension_unit.is_known()
            || !p.dimensions.width.dimension_unit.is_known()
            || !p.dimensions.height.dimension_unit.is_known()
        {
            Some(format!("package {} has a missing or unknown unit", p.id))
        } else if [
            &p.weight.value,
            &p.dimensions.length.value,
            &p.dimensions.width.value,
            &p.dimensions.height.value,
        ]
        .iter()
        .any(|v| v.to_f64().is_none_or(|x| x <= 0.0))
        {
            Some(format!(
                "package {} has a missing or non-positive weight or dimension",
                p.id
            ))
        } else {
            None
        };
        if let Some(msg) = problem {
            return Err(SpApiError::invalid_input(op.id(), msg));
        }
    }
    Ok(())
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn transport_error(op: Operation, e: &reqwest::Error) -> SpApiError {
    let kind = if e.is_connect() {
        // Includes a connect timeout: nothing was sent.
        SpApiErrorKind::Connect
    } else if e.is_timeout() {
        SpApiErrorKind::Timeout
    } else {
        SpApiErrorKind::Transport
    };
    SpApiError::new(kind, op.id(), transport_message(e))
}

fn http_reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_string()
}

/// A serde error without quoting values from the document (which may hold buyer data).
fn decode_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field")
        || text.starts_with("unknown variant")
        || text.starts_with("EOF")
    {
        text
    } else {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> LwaCredentials {
        LwaCredentials {
            client_id: "id".into(),
            client_secret: "secret".into(),
            refresh_token: "refresh".into(),
        }
    }

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
        let cfg = SpApiConfig::from_env(&env, creds()).unwrap();
        assert_eq!(cfg.region, Region::Fe);
        assert_eq!(cfg.base_url(), "http://127.0.0.1:9");
        assert_eq!(cfg.token_url(), "http://127.0.0.1:9/auth/o2/token");
        let cfg = SpApiConfig::from_env(&Env::default(), creds()).unwrap();
        assert_eq!(cfg.base_url(), "https://sellingpartnerapi-na.amazon.com");
        assert_eq!(cfg.token_url(), "https://api.amazon.com/auth/o2/token");
    }

    #[test]
    fn user_agent_names_flexbridge_and_rust() {
        assert!(USER_AGENT.starts_with("flexbridge/"));
        assert!(USER_AGENT.ends_with(" (Language=Rust)"));
    }

    #[tokio::test]
    async fn urls_encode_ids_and_queries() {
        let c = SpApiClient::new(SpApiConfig {
            endpoint: Some("http://sim".into()),
            ..SpApiConfig::new(Region::Na, creds())
        })
        .unwrap();
        let req = Request::new(
            Operation::PatchListingsItem,
            Method::PATCH,
            format!("{LISTINGS}/{}/{}", enc("A1"), enc("sku/1 2")),
        )
        .query("marketplaceIds", Some("ATVPDKIKX0DER,A2EUQ1WTGCTBG2"));
        assert_eq!(
            c.url(&req),
            "http://sim/listings/2021-08-01/items/A1/sku%2F1%202?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2"
        );
    }

    #[test]
    fn default_limits_follow_amazon() {
        assert_eq!(
            Operation::BatchInventory.default_limit(),
            Limit::new(50.0, 100)
        );
        assert_eq!(Operation::GetReturn.default_limit(), Limit::new(10.0, 20));
        assert_eq!(
            Operation::PatchListingsItem.default_limit(),
            Limit::new(5.0, 5)
        );
        assert_eq!(
            Operation::ProcessShipment.default_limit(),
            Limit::new(1.0, 2)
        );
        assert!(!Operation::ProcessShipment.is_idempotent());
        assert!(Operation::BatchInventory.is_idempotent());
    }

    #[tokio::test]
    async fn invalid_input_is_refused_before_sending() {
        let c = SpApiClient::new(SpApiConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..SpApiConfig::new(Region::Na, creds())
        })
        .unwrap();
        let eleven: Vec<_> = (0..11)
            .map(|i| InventoryRequest::fetch("L", &format!("s{i}"), None))
            .collect();
        let e = c.batch_inventory(&eleven).await.unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        assert!(!e.is_retryable());
        let e = c.batch_inventory(&[]).await.unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        let e = c
            .get_shipments(&GetShipmentsQuery {
                max_results: Some(101),
                ..GetShipmentsQuery::status(ShipmentStatus::Accepted)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        let e = c
            .get_shipments(&GetShipmentsQuery::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        let e = c
            .create_packages("S", &[Package::default()])
            .await
            .unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
    }
}
