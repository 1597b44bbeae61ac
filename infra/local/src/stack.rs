//! Resources created FROM template.yaml in moto, and their description.
//!
//! `provision` runs `infra/local/provision.py` (SAM → CloudFormation with aws-sam-translator,
//! moto's CloudFormation, then by hand what moto skips) and reads back a [`Stack`]: physical
//! names by logical ID and, for every function, its resolved environment, timeout and events.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use flexbridge::config::keys;
use flexbridge::Env;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::paths;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stack {
    pub name: String,
    /// The moto endpoint the stack lives in.
    pub endpoint: String,
    pub region: String,
    pub account_id: String,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    /// Table name by logical ID.
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, Queue>,
    /// Bucket name by logical ID.
    pub buckets: BTreeMap<String, String>,
    /// Bus name by logical ID.
    pub event_buses: BTreeMap<String, String>,
    /// Secret ARN by logical ID.
    pub secrets: BTreeMap<String, String>,
    pub functions: BTreeMap<String, FunctionSpec>,
    /// Every resource: logical ID → type and physical ID.
    pub resources: BTreeMap<String, Resource>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    pub url: String,
    pub arn: String,
    pub name: String,
    pub visibility_timeout_s: u64,
    pub max_receive_count: Option<u32>,
    /// Logical ID of the dead-letter queue.
    pub dead_letter_queue: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub physical_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The function's name in moto.
    pub name: String,
    pub arn: String,
    pub timeout_s: u64,
    pub memory_mb: u64,
    /// `Environment.Variables` as moto's Lambda reports them (template refs resolved).
    pub env: BTreeMap<String, String>,
    pub events: Vec<FunctionEvent>,
}

impl FunctionSpec {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FunctionEvent {
    Schedule {
        id: String,
        expression: String,
        enabled: bool,
        input: Option<String>,
    },
    Sqs {
        id: String,
        /// Logical ID of the queue.
        queue: String,
        queue_url: String,
        queue_arn: String,
        batch_size: u32,
        maximum_batching_window_s: u32,
        /// `ScalingConfig.MaximumConcurrency`: at most this many batches at once.
        #[serde(default)]
        maximum_concurrency: Option<u32>,
        report_batch_item_failures: bool,
        enabled: bool,
    },
    FunctionUrl {
        id: String,
        auth_type: String,
    },
}

/// Endpoints that replace Amazon's and AWS's in a function's environment, locally.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// SP-API (the simulator), e.g. `http://127.0.0.1:PORT`.
    pub spapi_endpoint: Option<String>,
    /// Login with Amazon token endpoint (the simulator's `/auth/o2/token`).
    pub lwa_endpoint: Option<String>,
    /// Anything else to set (e.g. `WEBHOOK_URL` pointed at a local receiver).
    pub extra: BTreeMap<String, String>,
}

impl Stack {
    pub fn table(&self, logical_id: &str) -> &str {
        lookup(&self.tables, logical_id, "table")
    }

    pub fn queue(&self, logical_id: &str) -> &Queue {
        self.queues
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares no queue {logical_id}"))
    }

    pub fn queue_url(&self, logical_id: &str) -> &str {
        &self.queue(logical_id).url
    }

    pub fn bucket(&self, logical_id: &str) -> &str {
        lookup(&self.buckets, logical_id, "bucket")
    }

    pub fn event_bus(&self, logical_id: &str) -> &str {
        lookup(&self.event_buses, logical_id, "event bus")
    }

    pub fn secret_arn(&self, logical_id: &str) -> &str {
        lookup(&self.secrets, logical_id, "secret")
    }

    pub fn function(&self, logical_id: &str) -> Option<&FunctionSpec> {
        self.functions.get(logical_id)
    }

    /// The logical ID of the function that consumes `queue` (an SQS event source), if any.
    pub fn consumer_of(&self, queue: &str) -> Option<&FunctionSpec> {
        self.functions.values().find(|f| {
            f.events
                .iter()
                .any(|e| matches!(e, FunctionEvent::Sqs { queue: q, .. } if q == queue))
        })
    }

    /// The environment `function` gets: exactly the template's variables, plus the local
    /// endpoints (moto, static credentials, and the simulator when given) and what Lambda itself
    /// sets (`AWS_LAMBDA_FUNCTION_NAME`). A function that
    /// reads a name its template entry does not declare fails, as it would in AWS.
    pub fn env_for(&self, logical_id: &str, overrides: &Overrides) -> Result<Env> {
        let f = self
            .function(logical_id)
            .ok_or_else(|| anyhow!("template.yaml declares no function {logical_id}"))?;
        let mut vars: std::collections::HashMap<String, String> =
            f.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.insert(keys::AWS_ENDPOINT_URL.into(), self.endpoint.clone());
        vars.insert(keys::AWS_REGION.into(), self.region.clone());
        // Lambda sets this for every function (metrics and parked messages name it).
        vars.insert(keys::AWS_LAMBDA_FUNCTION_NAME.into(), f.name.clone());
        vars.insert(keys::AWS_ACCESS_KEY_ID.into(), "testing".into());
        vars.insert(keys::AWS_SECRET_ACCESS_KEY.into(), "testing".into());
        if let Some(e) = &overrides.spapi_endpoint {
            vars.insert(keys::SPAPI_ENDPOINT.into(), e.clone());
        }
        if let Some(e) = &overrides.lwa_endpoint {
            vars.insert(keys::LWA_ENDPOINT.into(), e.clone());
        }
        for (k, v) in &overrides.extra {
            vars.insert(k.clone(), v.clone());
        }
        Ok(Env::from_map(vars))
    }
}

fn lookup<'a>(map: &'a BTreeMap<String, String>, logical_id: &str, what: &str) -> &'a str {
    map.get(logical_id)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("template.yaml declares no {what} {logical_id}"))
}

/// A stack name moto and S3 accept: lowercase letters, digits and `-`, starting with a letter,
/// short enough for `<stack>-uploads-<account>` to be a valid bucket name; unique per call.
pub fn unique_stack_name(label: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = label
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean.truncate(20);
    let clean = clean.trim_matches('-');
    let n = N.fetch_add(1, Ordering::Relaxed);
    let salt: u32 = rand::random::<u32>() % 100_000;
    format!("fb-{clean}-{}-{n}-{salt}", std::process::id() % 100_000)
}

/// Creates the template's resources in moto at `endpoint` as stack `stack_name`.
/// `parameters` override the template's parameter defaults.
pub async fn provision(
    endpoint: &str,
    stack_name: &str,
    parameters: &[(&str, &str)],
) -> Result<Stack> {
    match provision_once(endpoint, stack_name, parameters).await {
        // moto's own crash (its server answers an HTML 500 page), seen once in a few hundred
        // stacks created while other tests' traffic ran in the same moto: a race inside moto,
        // not a property of the template. One more try under a fresh name; the half-made stack
        // is left behind (nothing reads it).
        Err(e) if format!("{e:#}").contains("500 Internal Server Error") => {
            tracing::warn!("moto failed creating {stack_name}; trying once more: {e:#}");
            provision_once(endpoint, &format!("{stack_name}-2"), parameters).await
        }
        other => other,
    }
}

async fn provision_once(
    endpoint: &str,
    stack_name: &str,
    parameters: &[(&str, &str)],
) -> Result<Stack> {
    paths::ensure_venv()?;
    let script = paths::repo_root().join("infra/local/provision.py");
    let mut cmd = Command::new(paths::python());
    cmd.arg(&script)
        .arg("create")
        .arg(paths::template())
        .arg("--endpoint")
        .arg(endpoint)
        .arg("--stack")
        .arg(stack_name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in parameters {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .context("provisioning took over 120 s")?
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "creating stack {stack_name} from template.yaml failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "reading the stack description from provision.py: {}",
            String::from_utf8_lossy(&out.stdout)
                .chars()
                .take(500)
                .collect::<String>()
        )
    })
}

/// The CloudFormation translation of template.yaml (what cfn-lint checks for cycles).
pub async fn transform() -> Result<serde_json::Value> {
    paths::ensure_venv()?;
    let out = Command::new(paths::python())
        .arg(paths::repo_root().join("infra/local/provision.py"))
        .arg("transform")
        .arg(paths::template())
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "SAM transform failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
