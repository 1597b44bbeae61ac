//! The world the benchmarks run in: moto with the stack of template.yaml, the simulator
//! with the seller's locations, and the warehouse's side (its signed calls to the warehouse
//! API, its uploads). Used by `outage.rs`, `cost.rs` and `chaos.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use flexbridge::fulfilment::FulfilmentService;
use flexbridge::shipment::Stage;
use flexbridge::warehouse::signing;
use flexbridge_local::seed::{self, Seller};
use flexbridge_local::stack::{self, Overrides, Stack};
use flexbridge_local::{Moto, Runner};
use serde_json::{json, Value};

/// What [`World::start`] sets up.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// Starts the stack's name (`stack::unique_stack_name`).
    pub name: &'static str,
    pub seed: u64,
    /// Stack parameters beyond `SellerId`.
    pub parameters: Vec<(&'static str, String)>,
}

pub struct World {
    pub moto: Moto,
    pub sim: spapi_sim::SimHandle,
    pub admin: spapi_sim::AdminClient,
    pub seller: Seller,
    pub stack: Stack,
    /// The simulator as the functions' SP-API and LWA endpoints.
    pub overrides: Overrides,
}

impl World {
    /// moto, the simulator (no empty pages with a token: they would only add calls), the
    /// stack provisioned with `seller`'s secrets, settings and locations, and each location
    /// created at the simulator.
    pub async fn start(opts: &WorldOptions, seller: Seller) -> Result<World> {
        let moto = tokio::task::spawn_blocking(Moto::start).await??;
        let sim = spapi_sim::Simulator::start(spapi_sim::SimOptions {
            seed: opts.seed,
            empty_page_rate: 0.0,
            ..Default::default()
        })
        .await?;
        let mut parameters: Vec<(&str, &str)> = vec![("SellerId", seller.seller_id.as_str())];
        parameters.extend(opts.parameters.iter().map(|(k, v)| (*k, v.as_str())));
        let stack = stack::provision(
            moto.endpoint(),
            &stack::unique_stack_name(opts.name),
            &parameters,
        )
        .await?;
        seed::seed_secrets(&stack, &seller).await?;
        seed::seed_seller(&stack, &seller).await?;
        let admin = spapi_sim::AdminClient::new(&sim.base_url);
        for l in &seller.locations {
            admin
                .create_location(&l.location_id, &l.marketplace_id, &l.channel)
                .await?;
        }
        let overrides = Overrides {
            spapi_endpoint: Some(sim.base_url.clone()),
            lwa_endpoint: Some(sim.lwa_url()),
            extra: BTreeMap::new(),
        };
        Ok(World {
            moto,
            sim,
            admin,
            seller,
            stack,
            overrides,
        })
    }

    /// An SDK configuration that talks to moto directly (the harness's own reads and checks).
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        flexbridge::aws::load_with_endpoint(self.moto.endpoint()).await
    }
}

/// The warehouse: what it holds per (hub, sku), and its signed calls to the API.
pub struct Warehouse {
    url: String,
    key: String,
    http: reqwest::Client,
    prefix: String,
    /// Requests answered with a final 4xx: `what: status body`.
    pub refused: Vec<String>,
    /// Requests with no final answer after 30 attempts (to be sent again later, same key).
    pub retried_later: Vec<String>,
    /// Answers that made a request wait and go again, by status (0: no answer at all).
    pub waits: BTreeMap<u16, usize>,
}

impl Warehouse {
    /// The warehouse of `seller`, calling the runner's warehouse API; `prefix` starts every
    /// Idempotency-Key (unique per run).
    pub fn new(runner: &Runner, seller: &Seller, prefix: String) -> Result<Self> {
        Ok(Self {
            url: runner
                .function_url("WarehouseApiFunction")
                .ok_or_else(|| anyhow!("the warehouse API is not served"))?
                .trim_end_matches('/')
                .to_string(),
            key: seller.warehouse_key.clone(),
            http: reqwest::Client::new(),
            prefix,
            refused: Vec::new(),
            retried_later: Vec::new(),
            waits: BTreeMap::new(),
        })
    }

    /// Sends one POST until it is answered for good: a 5xx, a 409 in progress, a 429 or a
    /// lost connection is retried with the same Idempotency-Key (signed afresh), as a
    /// warehouse should. Returns the final status, or 0 when none came.
    pub async fn post(&mut self, what: &str, path: &str, body: &Value) -> Result<u16> {
        let body = body.to_string();
        let key = format!("{}-{what}", self.prefix);
        for attempt in 0..30 {
            let signed = signing::Signed::new("POST", path, body.as_bytes())
                .content_type("application/json")
                .idempotency_key(&key);
            let mut req = self
                .http
                .post(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .body(body.clone());
            for (h, v) in signing::signed_headers(self.key.as_bytes(), signing::now_unix(), &signed)
            {
                req = req.header(h, v);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status < 300 {
                        return Ok(status);
                    }
                    let text = resp.text().await.unwrap_or_default();
                    if status >= 500 || status == 409 || status == 429 {
                        *self.waits.entry(status).or_default() += 1;
                        // At least 1 s: the retry's timestamp, so its signature, must differ.
                        tokio::time::sleep(Duration::from_millis(1000 + 100 * attempt)).await;
                        continue;
                    }
                    self.refused.push(format!("{what}: {status} {text}"));
                    return Ok(status);
                }
                Err(_) => {
                    *self.waits.entry(0).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(1000)).await
                }
            }
        }
        // No final answer: 0 tells the caller to try again in a later round, same key.
        self.retried_later.push(what.to_string());
        Ok(0)
    }

    /// One signed GET, answered or not: `None` when it got no 2xx (the caller asks again
    /// later, as a person at a screen would).
    pub async fn get(&mut self, path: &str) -> Option<Value> {
        let signed = signing::Signed::new("GET", path, b"");
        let mut req = self.http.get(format!("{}{path}", self.url));
        for (h, v) in signing::signed_headers(self.key.as_bytes(), signing::now_unix(), &signed) {
            req = req.header(h, v);
        }
        let resp = req.send().await.ok()?;
        if !resp.status().is_success() {
            *self.waits.entry(resp.status().as_u16()).or_default() += 1;
            return None;
        }
        resp.json().await.ok()
    }

    /// What a person does with the safety breaker's halts in a workload where every large cut is
    /// real (goods sold or written off): reads `GET /v1/inventory/halts` and releases each push
    /// still halted. Returns the reasons of the halts released now.
    pub async fn release_halts(&mut self, what: &str) -> Result<Vec<String>> {
        let Some(listed) = self.get("/v1/inventory/halts").await else {
            return Ok(Vec::new());
        };
        let mut released = Vec::new();
        for halt in listed["halts"].as_array().into_iter().flatten() {
            if halt["status"] != "halted" {
                continue;
            }
            let location = halt["locationId"].as_str().unwrap_or_default().to_string();
            let at = halt["haltedAt"].as_str().unwrap_or_default();
            let status = self
                .post(
                    &format!("{what}-release-{location}-{at}"),
                    &format!("/v1/inventory/halts/{location}/release"),
                    &json!({}),
                )
                .await?;
            if status < 300 {
                released.push(format!("{location}: {}", halt["reason"]));
            }
        }
        Ok(released)
    }
}

/// The packing of a whole shipment in one box, as the warehouse reports it.
pub fn packing(record: &flexbridge::shipment::ShipmentRecord) -> Value {
    let lines: Vec<Value> = record
        .line_items
        .iter()
        .filter(|l| l.units > 0)
        .map(|l| json!({"packageLineItemId": l.id, "quantity": l.units}))
        .collect();
    json!({"packages": [{"id": "BOX-1",
        "dimensions": {"length": {"value": "25", "dimensionUnit": "CM"}, "width": {"value": "20", "dimensionUnit": "CM"}, "height": {"value": "12", "dimensionUnit": "CM"}},
        "weight": {"value": "0.6", "weightUnit": "KG"},
        "packageLineItems": lines}]})
}

/// Puts one upload into the bucket and waits for its summary report: "applied …" when every
/// row was applied, "reported …" when rows were refused with reasons, or "no summary …".
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: String,
    wait: Duration,
) -> Result<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into_bytes().into())
        .send()
        .await?;
    let summary_key = flexbridge::upload::UploadKey::classify(key)
        .ok_or_else(|| anyhow!("{key} is not an upload key"))?
        .summary_report_key();
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if let Ok(o) = s3
            .get_object()
            .bucket(bucket)
            .key(&summary_key)
            .send()
            .await
        {
            let bytes = o.body.collect().await?.into_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let rejected = v["rowsRejected"]
                .as_u64()
                .or(v["rejected"].as_u64())
                .unwrap_or(0);
            let what = if rejected == 0 && v["status"] == "processed" {
                "applied"
            } else {
                "reported"
            };
            return Ok(format!(
                "{what} {key}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(format!("no summary for {key} after {} s", wait.as_secs()))
}

/// Every stored shipment in `stage`.
pub async fn list_stage(
    service: &FulfilmentService,
    stage: Stage,
) -> Result<Vec<flexbridge::shipment::ShipmentRecord>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = service
            .orders
            .shipments
            .list(stage, None, 100, token.as_deref())
            .await?;
        out.extend(page.items);
        token = page.next_token;
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Stored shipments by stage (stages with none left out).
pub async fn stage_counts(service: &FulfilmentService) -> Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for stage in Stage::ALL {
        let n = list_stage(service, stage).await?.len();
        if n > 0 {
            out.insert(stage.as_str().to_string(), n);
        }
    }
    Ok(out)
}
