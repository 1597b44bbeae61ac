//! Finds a stack's resources from its name, the way CloudFormation names them: a resource
//! without an explicit name is `<stack>-<LogicalId>-<random suffix>` (tables, queues; moto's
//! CloudFormation does the same), the bucket is `<stack>-uploads-<account>` and the bus
//! `<stack>-events` (template.yaml names them), and a secret carries CloudFormation's
//! `aws:cloudformation:stack-name` / `logical-id` tags (the local stack names it
//! `<stack>-<LogicalId>`). Only list calls are needed, in the region the SDK is configured for.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context, Result};
use flexbridge::config::keys;
use flexbridge::Env;

/// Tables by logical ID, and the variable the template passes each one in.
pub const TABLES: [(&str, &str); 7] = [
    ("CatalogTable", keys::CATALOG_TABLE),
    ("LocationsTable", keys::LOCATIONS_TABLE),
    ("SettingsTable", keys::SETTINGS_TABLE),
    ("ShipmentsTable", keys::SHIPMENTS_TABLE),
    ("InventoryTable", keys::INVENTORY_TABLE),
    ("IdempotencyTable", keys::IDEMPOTENCY_TABLE),
    ("CursorsTable", keys::CURSORS_TABLE),
];

/// Queues flexbridge's code sends to, by logical ID (the others are found all the same).
pub const QUEUE_KEYS: [(&str, &str); 7] = [
    ("UploadsQueue", keys::UPLOADS_QUEUE_URL),
    ("LabelsQueue", keys::LABELS_QUEUE_URL),
    ("CancellationsQueue", keys::CANCELLATIONS_QUEUE_URL),
    ("PriceUpdatesQueue", keys::PRICE_UPDATES_QUEUE_URL),
    ("NotificationsQueue", keys::NOTIFICATIONS_QUEUE_URL),
    ("OutboundQueue", keys::OUTBOUND_QUEUE_URL),
    ("InventoryPushQueue", keys::INVENTORY_PUSH_QUEUE_URL),
];

/// The stack's one secret (SP-API credentials and the HMAC keys' `signing_key`).
pub const SECRET: &str = "FlexbridgeSecret";

/// Secrets by logical ID, and the variable the template passes each one in.
pub const SECRETS: [(&str, &str); 1] = [(SECRET, keys::FLEXBRIDGE_SECRET_ARN)];

/// Variables taken over from the operator's environment (AWS and SP-API endpoints, the
/// SP-API region and marketplace, which are stack parameters the stack does not list).
pub const PASSED_THROUGH: [&str; 9] = [
    keys::AWS_ENDPOINT_URL,
    keys::AWS_REGION,
    keys::AWS_ACCESS_KEY_ID,
    keys::AWS_SECRET_ACCESS_KEY,
    keys::SPAPI_ENDPOINT,
    keys::LWA_ENDPOINT,
    keys::SPAPI_REGION,
    keys::MARKETPLACE_ID,
    keys::SELLER_ID,
];

#[derive(Debug, Clone)]
pub struct Queue {
    pub logical_id: String,
    pub url: String,
    pub arn: String,
    /// Logical ID of its dead-letter queue.
    pub dlq: Option<String>,
}

/// A stack's resources by logical ID.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub stack: String,
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, Queue>,
    pub bucket: Option<String>,
    pub event_bus: String,
    pub secrets: BTreeMap<String, String>,
}

impl Resources {
    pub fn table(&self, logical_id: &str) -> Result<&str> {
        self.tables
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| {
                anyhow!(
                    "stack {}: no DynamoDB table {0}-{logical_id}-… in this account and region \
                 (is --stack right? is AWS_REGION the stack's region?)",
                    self.stack
                )
            })
    }

    pub fn queue(&self, logical_id: &str) -> Result<&Queue> {
        self.queues.get(logical_id).ok_or_else(|| {
            let known: Vec<&str> = self.queues.keys().map(String::as_str).collect();
            anyhow!(
                "stack {}: no queue {logical_id} (queues: {})",
                self.stack,
                known.join(", ")
            )
        })
    }

    pub fn bucket(&self) -> Result<&str> {
        self.bucket.as_deref().ok_or_else(|| {
            anyhow!(
                "stack {}: no bucket {0}-uploads-<account> in this account",
                self.stack
            )
        })
    }

    /// Queues that have a DLQ (the ones work arrives on), by logical ID.
    pub fn work_queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values().filter(|q| q.dlq.is_some())
    }

    /// The work queue `name` names, itself or through its DLQ (`UploadsQueue` or `UploadsDLQ`).
    pub fn work_queue(&self, name: &str) -> Result<&Queue> {
        if let Some(q) = self
            .work_queues()
            .find(|q| q.logical_id == name || q.dlq.as_deref() == Some(name))
        {
            return Ok(q);
        }
        let known: Vec<&str> = self.work_queues().map(|q| q.logical_id.as_str()).collect();
        bail!(
            "no queue or DLQ named {name:?} in stack {}; queues with a DLQ: {}",
            self.stack,
            known.join(", ")
        )
    }

    /// The environment a function of this stack would get (the template's variable names),
    /// plus what `vars` passes through (endpoints, credentials, SP-API region).
    pub fn env(&self, vars: &HashMap<String, String>) -> Env {
        let mut m: HashMap<String, String> = PASSED_THROUGH
            .iter()
            .filter_map(|k| vars.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        for (lid, key) in TABLES {
            if let Some(t) = self.tables.get(lid) {
                m.insert(key.into(), t.clone());
            }
        }
        for (lid, key) in QUEUE_KEYS {
            if let Some(q) = self.queues.get(lid) {
                m.insert(key.into(), q.url.clone());
            }
        }
        for (lid, key) in SECRETS {
            if let Some(s) = self.secrets.get(lid) {
                m.insert(key.into(), s.clone());
            }
        }
        if let Some(b) = &self.bucket {
            m.insert(keys::BUCKET_NAME.into(), b.clone());
        }
        m.insert(keys::EVENT_BUS_NAME.into(), self.event_bus.clone());
        m.insert(keys::STACK_NAME.into(), self.stack.clone());
        Env::from_map(m)
    }
}

fn sdk_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("{what}: {}", flexbridge_err_text(&e))
}

fn flexbridge_err_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The logical ID in a generated name `<stack>-<LogicalId>-<suffix>`.
fn logical_of<'a>(stack: &str, name: &'a str) -> Option<&'a str> {
    let rest = name.strip_prefix(stack)?.strip_prefix('-')?;
    let (lid, suffix) = rest.split_once('-')?;
    // The suffix is one token: `<other-stack>-<LogicalId>-<suffix>` of a stack whose name
    // starts like this one's is not ours.
    (!suffix.is_empty() && !lid.is_empty() && !suffix.contains('-')).then_some(lid)
}

pub async fn resolve(sdk: &aws_config::SdkConfig, stack: &str) -> Result<Resources> {
    if stack.is_empty() {
        bail!("the stack name is empty");
    }
    let ddb = flexbridge::aws::dynamodb_client(sdk);
    let sqs = flexbridge::aws::sqs_client(sdk);
    let s3 = flexbridge::aws::s3_client(sdk);
    let sm = flexbridge::aws::secrets_client(sdk);
    let mut res = Resources {
        stack: stack.to_string(),
        event_bus: format!("{stack}-events"),
        ..Default::default()
    };

    let mut start: Option<String> = None;
    loop {
        let out = ddb
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(sdk_err("listing DynamoDB tables"))?;
        for name in out.table_names() {
            if let Some(lid) = logical_of(stack, name) {
                res.tables.insert(lid.to_string(), name.clone());
            }
        }
        match out.last_evaluated_table_name {
            Some(n) => start = Some(n),
            None => break,
        }
    }
    if !res.tables.contains_key("SettingsTable") {
        bail!(
            "no flexbridge stack named {stack:?} here: no table {stack}-SettingsTable-… \
             (check --stack / FLEXBRIDGE_STACK, AWS_REGION and your credentials)"
        );
    }

    let urls = sqs
        .list_queues()
        .queue_name_prefix(format!("{stack}-"))
        .max_results(1000)
        .send()
        .await
        .map_err(sdk_err("listing SQS queues"))?;
    let mut by_arn = HashMap::new();
    let mut redrive = HashMap::new();
    for url in urls.queue_urls() {
        let name = url.rsplit('/').next().unwrap_or(url);
        let Some(lid) = logical_of(stack, name) else {
            continue;
        };
        let a = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .map_err(sdk_err("reading queue attributes"))?;
        let attrs = a.attributes().cloned().unwrap_or_default();
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let arn = attrs.get(&A::QueueArn).cloned().unwrap_or_default();
        if let Some(p) = attrs.get(&A::RedrivePolicy) {
            let v: serde_json::Value = serde_json::from_str(p).unwrap_or_default();
            if let Some(target) = v["deadLetterTargetArn"].as_str() {
                redrive.insert(lid.to_string(), target.to_string());
            }
        }
        by_arn.insert(arn.clone(), lid.to_string());
        res.queues.insert(
            lid.to_string(),
            Queue {
                logical_id: lid.to_string(),
                url: url.clone(),
                arn,
                dlq: None,
            },
        );
    }
    for (lid, target) in redrive {
        let dlq = by_arn.get(&target).cloned();
        if let Some(q) = res.queues.get_mut(&lid) {
            q.dlq = dlq;
        }
    }

    let buckets = s3
        .list_buckets()
        .send()
        .await
        .map_err(sdk_err("listing S3 buckets"))?;
    let prefix = format!("{stack}-uploads-");
    res.bucket = buckets
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .find(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|acct| acct.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string);

    let mut token: Option<String> = None;
    loop {
        let out = sm
            .list_secrets()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(sdk_err("listing secrets"))?;
        for entry in out.secret_list() {
            let (Some(name), Some(arn)) = (entry.name(), entry.arn()) else {
                continue;
            };
            let tag = |k: &str| {
                entry
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
            };
            for (lid, _) in SECRETS {
                let local = name == format!("{stack}-{lid}");
                let cfn = tag("aws:cloudformation:stack-name") == Some(stack)
                    && tag("aws:cloudformation:logical-id") == Some(lid);
                if local || cfn {
                    res.secrets.insert(lid.to_string(), arn.to_string());
                }
            }
        }
        match out.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    Ok(res)
}

/// Context for an error: the stack and what was being done.
pub fn context<T>(r: Result<T>, stack: &str) -> Result<T> {
    r.with_context(|| format!("stack {stack}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_come_from_generated_names() {
        assert_eq!(
            logical_of("fb-1", "fb-1-SettingsTable-ABC123"),
            Some("SettingsTable")
        );
        assert_eq!(logical_of("fb", "fb-1-SettingsTable-ABC123"), None);
        assert_eq!(logical_of("fb-1", "fb-10-SettingsTable-ABC"), None);
        assert_eq!(logical_of("fb-1", "fb-1-SettingsTable"), None);
    }
}
