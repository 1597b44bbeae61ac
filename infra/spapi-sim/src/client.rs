//! `AdminClient`: a thin HTTP client over the simulator's `/_sim/` admin API, for tests and
//! the local runner. Every method maps to one route documented in the README.

use anyhow::{anyhow, Context};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::{FaultConfig, FaultKind};
use crate::ratelimit::RateLimit;
use crate::state::LwaCredentials;

#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

/// CONFIRM bookkeeping of one shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmCounts {
    /// processShipment CONFIRM requests that reached the state machine (any answer, incl. 409).
    pub requests: u32,
    /// CONFIRMs that changed the shipment's state (0 or 1).
    pub applied: u32,
}

impl AdminClient {
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Any admin call: `path` is under `/_sim/` (e.g. `"state"`). Non-2xx becomes an error
    /// carrying the simulator's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/_sim/{}", self.base, path.trim_start_matches('/'));
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(anyhow!("{method} {url}: {status}: {text}"));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {url}: not JSON: {text}"))
    }

    /// Everything: locations, skus, shipments (+ confirm counts, labels, history), inventory,
    /// returns, listings, call counts per operation, notifications sent.
    pub async fn state(&self) -> anyhow::Result<Value> {
        self.call(Method::GET, "state", None).await
    }

    /// Forgets every shipment, return, inventory, listing, call and token (credentials,
    /// locations, skus, faults and limits stay).
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.call(Method::POST, "reset", None).await.map(|_| ())
    }

    /// Replaces the accepted LWA credentials with exactly these.
    pub async fn set_lwa_credentials(&self, creds: &[LwaCredentials]) -> anyhow::Result<()> {
        self.call(Method::PUT, "lwa/credentials", Some(json!(creds)))
            .await
            .map(|_| ())
    }

    /// Refuses every operation of these model files (`externalFulfillmentShipments`,
    /// `listingsItems`, ...) with 403, as Amazon does for a role the application lacks.
    pub async fn refuse_roles(&self, models: &[&str]) -> anyhow::Result<()> {
        self.call(Method::PUT, "roles", Some(json!({ "refused": models })))
            .await
            .map(|_| ())
    }

    /// Expires every access token issued so far (the next SP-API call gets 403).
    pub async fn expire_tokens(&self) -> anyhow::Result<()> {
        self.call(Method::POST, "lwa/expire", None)
            .await
            .map(|_| ())
    }

    /// Creates (or replaces) a location; `channel_name` is FBA (Seller Flex) or MFN.
    pub async fn create_location(
        &self,
        location_id: &str,
        marketplace_id: &str,
        channel_name: &str,
    ) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            "locations",
            Some(json!({"locationId": location_id, "marketplaceId": marketplace_id, "channelName": channel_name})),
        )
        .await
    }

    /// Registers SKUs Amazon knows (batchInventory answers INVALID_SKU for others).
    pub async fn add_skus(&self, skus: &[&str]) -> anyhow::Result<()> {
        self.call(Method::POST, "skus", Some(json!({ "skus": skus })))
            .await
            .map(|_| ())
    }

    /// Sets what Amazon holds as sellable for (location, sku), as if pushed earlier.
    pub async fn set_inventory(
        &self,
        location_id: &str,
        sku: &str,
        sellable: i64,
    ) -> anyhow::Result<()> {
        self.call(
            Method::PUT,
            "inventory",
            Some(json!({"locationId": location_id, "skuId": sku, "sellableQuantity": sellable})),
        )
        .await
        .map(|_| ())
    }

    /// Sets what the warehouse really has (`PUT /_sim/truth`): orders beyond it count as oversold.
    pub async fn set_truth(&self, location_id: &str, sku: &str, units: i64) -> anyhow::Result<()> {
        self.call(
            Method::PUT,
            "truth",
            Some(json!({"locationId": location_id, "skuId": sku, "units": units})),
        )
        .await
        .map(|_| ())
    }

    /// `{oversoldOrders, oversoldUnits, lines}` (`GET /_sim/oversold`).
    pub async fn oversold(&self) -> anyhow::Result<Value> {
        self.call(Method::GET, "oversold", None).await
    }

    /// `{locationId, skuId, sellableQuantity, reservedQuantity, clientSequenceNumber, updatesApplied, updatesRejected}`.
    pub async fn inventory(&self, location_id: &str, sku: &str) -> anyhow::Result<Value> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("locationId", location_id)
            .append_pair("skuId", sku)
            .finish();
        self.call(Method::GET, &format!("inventory?{q}"), None)
            .await
    }

    /// Creates one shipment from a spec (see README: `locationId` required; `id`, `status`,
    /// `lineItems:[{sku, quantity, unitPrice}]`, `prime`, `shipByHours`, ... optional).
    /// Returns the model-shaped shipment.
    pub async fn create_shipment(&self, spec: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, "shipments", Some(spec)).await
    }

    /// Creates `count` random (seeded) shipments at a location; returns their IDs.
    pub async fn create_random_shipments(
        &self,
        location_id: &str,
        count: usize,
    ) -> anyhow::Result<Vec<String>> {
        let v = self
            .call(
                Method::POST,
                "shipments/random",
                Some(json!({"locationId": location_id, "count": count})),
            )
            .await?;
        Ok(serde_json::from_value(v["shipmentIds"].clone())?)
    }

    /// `{shipment, confirmRequests, confirmApplied, rejectApplied, invoice, labels, labelGenerations, history}`.
    pub async fn shipment(&self, id: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, &format!("shipments/{}", enc(id)), None)
            .await
    }

    pub async fn confirm_counts(&self, id: &str) -> anyhow::Result<ConfirmCounts> {
        let v = self.shipment(id).await?;
        Ok(ConfirmCounts {
            requests: v["confirmRequests"].as_u64().unwrap_or(0) as u32,
            applied: v["confirmApplied"].as_u64().unwrap_or(0) as u32,
        })
    }

    /// Cancels the whole shipment as the marketplace would (MARKETPLACE_CANCELLED).
    pub async fn cancel_shipment(&self, id: &str) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            &format!("shipments/{}/cancel", enc(id)),
            Some(json!({})),
        )
        .await
    }

    /// Cancels some units of some lines: `(shipmentLineItemId, quantity)`. Custom type/reason
    /// via [`AdminClient::call`] with `{lineItems, cancellationType, reason}`.
    pub async fn cancel_lines(&self, id: &str, lines: &[(&str, u32)]) -> anyhow::Result<Value> {
        let items: Vec<Value> = lines
            .iter()
            .map(|(l, q)| json!({"id": l, "quantity": q}))
            .collect();
        self.call(
            Method::POST,
            &format!("shipments/{}/cancel", enc(id)),
            Some(json!({ "lineItems": items })),
        )
        .await
    }

    /// Moves a shipment to a status as Amazon would (e.g. SHIPPED, DELIVERED).
    pub async fn advance_shipment(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            &format!("shipments/{}/advance", enc(id)),
            Some(json!({ "status": status })),
        )
        .await
    }

    /// The call log (optionally one operation): `[{operation, method, path, query, status, time, requestId, note}]`.
    pub async fn calls(&self, operation: Option<&str>) -> anyhow::Result<Vec<Value>> {
        let p = match operation {
            Some(op) => format!("calls?operation={}", enc(op)),
            None => "calls".to_string(),
        };
        Ok(serde_json::from_value(
            self.call(Method::GET, &p, None).await?,
        )?)
    }

    /// Creates a return (spec: `shipmentId` or `locationId`+`sku`; optional `status`, `returnType`, ...).
    pub async fn create_return(&self, spec: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, "returns", Some(spec)).await
    }

    pub async fn set_return_status(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            &format!("returns/{}/status", enc(id)),
            Some(json!({ "status": status })),
        )
        .await
    }

    /// Listings by sku: `{sellerId, productType, prices:{marketplaceId: "19.99"}, attributes, submissions}`.
    pub async fn listings(&self) -> anyhow::Result<Value> {
        self.call(Method::GET, "listings", None).await
    }

    /// Replaces the whole fault configuration.
    pub async fn set_faults(&self, cfg: &FaultConfig) -> anyhow::Result<()> {
        self.call(Method::PUT, "faults", Some(json!(cfg)))
            .await
            .map(|_| ())
    }

    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.set_faults(&FaultConfig::default()).await
    }

    /// The next requests to `operation` get these faults, in order (other settings kept).
    pub async fn script_faults(&self, operation: &str, kinds: &[FaultKind]) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            "faults/script",
            Some(json!({"operation": operation, "script": kinds})),
        )
        .await
        .map(|_| ())
    }

    /// Sets one operation's token bucket.
    pub async fn set_rate_limit(&self, operation: &str, limit: RateLimit) -> anyhow::Result<()> {
        self.call(
            Method::PUT,
            "rate-limits",
            Some(json!({"operation": operation, "rate": limit.rate, "burst": limit.burst})),
        )
        .await
        .map(|_| ())
    }

    /// Turns rate limiting on or off.
    pub async fn set_rate_limits_enabled(&self, enabled: bool) -> anyhow::Result<()> {
        self.call(
            Method::PUT,
            "rate-limits",
            Some(json!({ "enabled": enabled })),
        )
        .await
        .map(|_| ())
    }

    /// Registers where shipment-status notifications go: `{"sqsQueueUrl": ...}` or `{"url": "https://..."}`.
    pub async fn add_notification_destination(&self, spec: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, "notifications/destinations", Some(spec))
            .await
    }

    /// Delivery options: `{duplicateRate, reorder, enabled}`.
    pub async fn set_notification_options(&self, opts: Value) -> anyhow::Result<()> {
        self.call(Method::PUT, "notifications/options", Some(opts))
            .await
            .map(|_| ())
    }

    /// Every notification the simulator attempted, with its delivery outcome.
    pub async fn notifications(&self) -> anyhow::Result<Vec<Value>> {
        Ok(serde_json::from_value(
            self.call(Method::GET, "notifications", None).await?,
        )?)
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
