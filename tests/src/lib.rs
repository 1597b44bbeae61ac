//! Support for the end-to-end suites: moto (one per test binary, never reset), the SP-API
//! simulator (one per test, in process), and a freshly provisioned stack from template.yaml
//! (unique name per test) with SDK clients pointed at moto.
//!
//! ```ignore
//! # async fn t() -> anyhow::Result<()> {
//! let t = flexbridge_e2e::TestStack::start("confirm_orders").await?;
//! let env = t.env_for("HeartbeatFunction")?;           // the template's variables + local endpoints
//! let runner = t.runner(Default::default()).await?;      // Lambda's event plumbing, in process
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use flexbridge::Env;
use flexbridge_local::registry::Handler;
use flexbridge_local::seed::{self, Seller};
use flexbridge_local::stack::{self, Overrides, Stack};
use flexbridge_local::{Moto, Runner, RunnerOptions};

pub mod access;

/// template.yaml as JSON, SAM's view of it (`provision.py sam-json`), for the foundation tests.
pub fn sam_json() -> serde_json::Value {
    use flexbridge_local::paths;
    paths::ensure_venv().expect("venv");
    let out = std::process::Command::new(paths::python())
        .arg(paths::repo_root().join("infra/local/provision.py"))
        .arg("sam-json")
        .arg(paths::template())
        .output()
        .expect("run provision.py sam-json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub use flexbridge_local;
pub use spapi_sim;

/// The moto endpoint of this test binary (started on first use; the venv is created on the
/// very first run, which takes about a minute).
pub fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        init_logging();
        Moto::start().unwrap_or_else(|e| panic!("cannot start moto: {e:#}"))
    })
    .endpoint()
}

/// Logs go to the test's captured output (shown for failing tests); `RUST_LOG` sets the
/// level (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Options for [`TestStack::start_with`].
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Start an in-process simulator (and point SPAPI_ENDPOINT / LWA_ENDPOINT at it).
    pub simulator: bool,
    pub sim_options: spapi_sim::SimOptions,
    /// Seed the seller's secrets, locations and settings.
    pub seed_seller: bool,
    pub seller: Seller,
    /// Template parameter overrides.
    pub parameters: Vec<(String, String)>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            simulator: true,
            sim_options: spapi_sim::SimOptions {
                seed: 7,
                ..Default::default()
            },
            seed_seller: true,
            seller: Seller::default(),
            parameters: Vec::new(),
        }
    }
}

/// One test's world: its own stack in the shared moto, its own simulator.
pub struct TestStack {
    pub stack: Stack,
    pub sim: Option<spapi_sim::SimHandle>,
    pub seller: Seller,
    pub overrides: Overrides,
    pub sdk: aws_config::SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl TestStack {
    /// moto (shared), a simulator, a fresh stack named after `test_name`, and a seeded seller.
    pub async fn start(test_name: &str) -> Result<TestStack> {
        Self::start_with(test_name, TestOptions::default()).await
    }

    pub async fn start_with(test_name: &str, options: TestOptions) -> Result<TestStack> {
        let endpoint = tokio::task::spawn_blocking(moto_endpoint).await?;
        let sim = if options.simulator {
            Some(spapi_sim::Simulator::start(options.sim_options.clone()).await?)
        } else {
            None
        };
        let mut params: Vec<(&str, &str)> = vec![("SellerId", options.seller.seller_id.as_str())];
        params.extend(
            options
                .parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let stack =
            stack::provision(endpoint, &stack::unique_stack_name(test_name), &params).await?;
        if options.seed_seller {
            seed::seed_secrets(&stack, &options.seller).await?;
            seed::seed_seller(&stack, &options.seller).await?;
        }
        let overrides = Overrides {
            spapi_endpoint: sim.as_ref().map(|s| s.base_url.clone()),
            lwa_endpoint: sim.as_ref().map(|s| s.lwa_url()),
            extra: BTreeMap::new(),
        };
        let sdk = flexbridge::aws::load_with_endpoint(endpoint).await;
        Ok(TestStack {
            dynamodb: flexbridge::aws::dynamodb_client(&sdk),
            sqs: flexbridge::aws::sqs_client(&sdk),
            s3: flexbridge::aws::s3_client(&sdk),
            events: flexbridge::aws::eventbridge_client(&sdk),
            secrets: flexbridge::aws::secrets_client(&sdk),
            sdk,
            stack,
            sim,
            seller: options.seller,
            overrides,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.stack.endpoint
    }

    /// The simulator (panics if the test started without one).
    pub fn sim(&self) -> &spapi_sim::SimHandle {
        self.sim
            .as_ref()
            .expect("this TestStack was started without a simulator")
    }

    /// The `Env` the template gives `function_logical_id`, with AWS_ENDPOINT_URL (moto),
    /// SPAPI_ENDPOINT and LWA_ENDPOINT (simulator) overlaid. Nothing else: a function reading
    /// a variable its template entry does not declare fails here as it would in AWS.
    pub fn env_for(&self, function_logical_id: &str) -> Result<Env> {
        self.stack.env_for(function_logical_id, &self.overrides)
    }

    /// Sets an extra variable for every function (e.g. `WEBHOOK_URL` at a local receiver).
    pub fn set_override(&mut self, key: &str, value: impl Into<String>) {
        self.overrides.extra.insert(key.to_string(), value.into());
    }

    /// A runner for this stack's functions (every registered one unless `options.only`).
    pub async fn runner(&self, options: RunnerOptions) -> Result<Runner> {
        Runner::start(&self.stack, &self.overrides, options).await
    }

    /// A runner with some functions replaced by test doubles.
    pub async fn runner_with(
        &self,
        options: RunnerOptions,
        substitutes: BTreeMap<String, Handler>,
    ) -> Result<Runner> {
        Runner::start_with(&self.stack, &self.overrides, options, substitutes).await
    }

    /// Visible (not in flight) messages in a queue, by logical ID.
    pub async fn queue_depth(&self, queue_logical_id: &str) -> Result<i64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.stack.queue_url(queue_logical_id))
            .attribute_names(A::ApproximateNumberOfMessages)
            .send()
            .await?;
        out.attributes()
            .and_then(|a| a.get(&A::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no ApproximateNumberOfMessages for {queue_logical_id}"))
    }

    /// Waits until `check` returns `Some`, polling every 100 ms, for at most `timeout`.
    pub async fn eventually<T, F, Fut>(
        &self,
        timeout: std::time::Duration,
        what: &str,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        eventually(timeout, what, &mut check).await
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(
    timeout: std::time::Duration,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// One signed warehouse API request (v2 signature; a fresh `Idempotency-Key` on anything but
/// GET), answered as (status, JSON body, or the text as a JSON string).
pub async fn warehouse_call(
    api: &str,
    key: &[u8],
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    use flexbridge::warehouse::signing;
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let mut req = reqwest::Client::new()
        .request(method.parse()?, format!("{api}{path}"))
        .header("content-type", "application/json")
        .body(body.clone());
    let mut signed =
        signing::Signed::new(method, path, body.as_bytes()).content_type("application/json");
    if method != "GET" {
        req = req.header("Idempotency-Key", &idempotency_key);
        signed = signed.idempotency_key(&idempotency_key);
    }
    for (k, v) in signing::signed_headers(key, chrono::Utc::now().timestamp(), &signed) {
        req = req.header(k, v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}
