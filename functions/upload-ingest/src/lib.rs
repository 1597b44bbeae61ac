//! Applies the seller's catalog (`catalog/delta/…`, `catalog/full/…`) and price (`prices/…`)
//! CSV uploads. Consumes `UploadsQueue`, which S3 fills with `ObjectCreated` notifications.
//!
//! Per upload (object key + version): claimed once through `flexbridge::idempotency`
//! (`upload#<key>#<version>`), so S3's and SQS's duplicate deliveries are processed once and
//! a new version of the same key is a new upload. The work is `flexbridge::upload::ingest::run`.
//! A file that does not fit in one invocation stops before the deadline with a checkpoint; the
//! handler then sends a resume message (`{"flexbridgeResume": {key, versionId}}`) to the same
//! queue and the next invocation continues where it stopped.
//!
//! Outcomes per message: done or already done → acknowledged; retryable failure (AWS
//! throttling, another invocation holding the upload) → batch item failure, SQS redelivers and
//! parks it in `UploadsDLQ` after `maxReceiveCount`; permanent failure (object gone, not an
//! S3 notification) → logged and dropped. `inventory/` keys are not ours and are acknowledged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use flexbridge::config::keys;
use flexbridge::events::EventBridgeSink;
use flexbridge::idempotency::{payload_hash, Begin, Idempotency};
use flexbridge::retry::Deadline;
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::store::catalog::DynamoCatalogStore;
use flexbridge::store::settings::DynamoSettingsStore;
use flexbridge::upload::aws::{DynamoCheckpoints, S3Uploads, SqsPriceQueue};
use flexbridge::upload::ingest::{self, IngestConfig, Ports, RunResult, UploadRef};
use flexbridge::upload::UploadKey;
use flexbridge::{Env, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a processed upload version is remembered.
const REMEMBER: Duration = Duration::from_secs(30 * 24 * 3600);

/// The message a paused upload sends itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resume {
    flexbridge_resume: ResumeRef,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResumeRef {
    key: String,
    version_id: String,
}

pub struct UploadIngest {
    ports: Ports,
    config: IngestConfig,
    s3: S3Uploads,
    idempotency: Idempotency,
    sqs: aws_sdk_sqs::Client,
    uploads_queue_url: String,
    consumer: SqsConsumer,
}

impl UploadIngest {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let sdk = flexbridge::aws::config(env).await;
        let dynamodb = flexbridge::aws::dynamodb_client(&sdk);
        let sqs = flexbridge::aws::sqs_client(&sdk);
        let s3 = S3Uploads::new(
            flexbridge::aws::s3_client(&sdk),
            env.require(keys::BUCKET_NAME)?,
        );
        let ports = Ports {
            source: Arc::new(s3.clone()),
            catalog: Arc::new(DynamoCatalogStore::new(
                dynamodb.clone(),
                env.require(keys::CATALOG_TABLE)?,
            )),
            prices: Arc::new(SqsPriceQueue::new(
                sqs.clone(),
                env.require(keys::PRICE_UPDATES_QUEUE_URL)?,
            )),
            reports: Arc::new(s3.clone()),
            checkpoints: Arc::new(DynamoCheckpoints::new(
                dynamodb.clone(),
                env.require(keys::CURSORS_TABLE)?,
            )),
            settings: Arc::new(DynamoSettingsStore::new(
                dynamodb.clone(),
                env.require(keys::SETTINGS_TABLE)?,
            )),
            events: Arc::new(EventBridgeSink::new(
                flexbridge::aws::eventbridge_client(&sdk),
                env.require(keys::EVENT_BUS_NAME)?,
            )),
        };
        let config = IngestConfig {
            default_marketplace: env
                .optional(keys::MARKETPLACE_ID)
                .unwrap_or("ATVPDKIKX0DER")
                .to_string(),
            ..IngestConfig::default()
        };
        Ok(Self {
            ports,
            config,
            s3,
            idempotency: Idempotency::dynamodb(
                dynamodb,
                env.require(keys::IDEMPOTENCY_TABLE)?,
                REMEMBER,
            ),
            sqs,
            uploads_queue_url: env.require(keys::UPLOADS_QUEUE_URL)?.to_string(),
            consumer: SqsConsumer::from_env(env).await?,
        })
    }

    /// Replaces the ingest settings (tests, the benchmark).
    pub fn with_config(mut self, config: IngestConfig) -> Self {
        self.config = config;
        self
    }

    pub async fn handle(&self, event: SqsEvent, inv: &Invocation) -> SqsBatchResponse {
        // One message at a time: an upload already uses the bounded DynamoDB concurrency.
        handle_sqs_batch(&self.consumer, event, "upload message", 1, |m| async move {
            self.handle_message(&m, inv).await
        })
        .await
    }

    async fn handle_message(&self, message: &SqsMessage, inv: &Invocation) -> Result<()> {
        let body = message.body.as_deref().unwrap_or_default();
        for upload in self.uploads_in(body).await? {
            self.process(upload, inv).await?;
        }
        Ok(())
    }

    /// The catalog/price uploads a message names (other prefixes are skipped).
    async fn uploads_in(&self, body: &str) -> Result<Vec<UploadRef>> {
        if let Ok(r) = serde_json::from_str::<Resume>(body) {
            return Ok(vec![UploadRef {
                key: r.flexbridge_resume.key,
                version_id: r.flexbridge_resume.version_id,
            }]);
        }
        let objects = flexbridge::aws::parse_s3_notification(body)?;
        let versions = notification_versions(body);
        let mut uploads = Vec::new();
        for (i, object) in objects.into_iter().enumerate() {
            if UploadKey::classify(&object.key).is_none() {
                tracing::info!(key = object.key, "not a catalog or price upload; skipped");
                continue;
            }
            let version_id = match versions.get(i).cloned().flatten() {
                Some(v) => v,
                None => self.s3.current_version(&object.key).await?,
            };
            uploads.push(UploadRef {
                key: object.key,
                version_id,
            });
        }
        Ok(uploads)
    }

    async fn process(&self, upload: UploadRef, inv: &Invocation) -> Result<()> {
        let key = format!("upload#{}#{}", upload.key, upload.version_id);
        let token = match self
            .idempotency
            .begin(&key, &payload_hash(&upload)?, inv)
            .await?
        {
            Begin::Claimed(token) => token,
            Begin::Replay(_) => {
                tracing::info!(
                    upload = upload.label(),
                    "already processed; duplicate delivery ignored"
                );
                return Ok(());
            }
            Begin::InProgress { retry_after } => {
                return Err(Error::Transient {
                    message: format!(
                        "{} is being processed by another invocation",
                        upload.label()
                    ),
                    after: Some(retry_after),
                })
            }
            Begin::PayloadMismatch => {
                return Err(Error::Internal(format!(
                    "idempotency key {key} reused for another upload"
                )))
            }
        };
        match ingest::run(&self.ports, &self.config, &upload, Deadline::from(inv)).await {
            Ok(RunResult::Done(summary)) => {
                tracing::info!(
                    upload = upload.label(),
                    status = summary.status,
                    accepted = summary.accepted,
                    rejected = summary.rejected,
                    "upload processed"
                );
                self.idempotency
                    .complete(&token, &serde_json::to_value(&summary)?)
                    .await
            }
            Ok(RunResult::Paused {
                applied_through_line,
            }) => {
                tracing::info!(
                    upload = upload.label(),
                    applied_through_line,
                    "paused before the deadline; resuming"
                );
                self.idempotency.release(&token).await?;
                self.resume_later(&upload).await
            }
            Err(e) => {
                if let Err(release) = self.idempotency.release(&token).await {
                    tracing::warn!(error = %release, "could not release the upload claim; it expires with this invocation");
                }
                Err(e)
            }
        }
    }

    async fn resume_later(&self, upload: &UploadRef) -> Result<()> {
        let body = serde_json::to_string(&Resume {
            flexbridge_resume: ResumeRef {
                key: upload.key.clone(),
                version_id: upload.version_id.clone(),
            },
        })?;
        self.sqs
            .send_message()
            .queue_url(&self.uploads_queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| Error::aws("sqs", aws_sdk_sqs::error::DisplayErrorContext(e), true))?;
        Ok(())
    }
}

/// `versionId` of each `ObjectCreated` record, in the order `parse_s3_notification` returns them
/// (real S3 sends it for versioned buckets; moto does not).
fn notification_versions(body: &str) -> Vec<Option<String>> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v.get("Records")
        .and_then(Value::as_array)
        .map(|records| {
            records
                .iter()
                .filter(|r| {
                    r.get("eventName")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with("ObjectCreated:"))
                })
                .map(|r| {
                    r.pointer("/s3/object/versionId")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Function for UploadIngest {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value> {
        let batch: SqsEvent = serde_json::from_value(payload)?;
        let response = self.handle(batch, &invocation).await;
        serde_json::to_value(response).map_err(|e| Error::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_object_created_records() {
        let body = r#"{"Records":[
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"x"}}},
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"catalog%2Fa.csv","versionId":"v7"}}},
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"prices%2Fp.csv"}}}]}"#;
        assert_eq!(notification_versions(body), [Some("v7".to_string()), None]);
        let parsed = flexbridge::aws::parse_s3_notification(body).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].key, "catalog/a.csv");
    }

    #[test]
    fn resume_messages_round_trip() {
        let body = serde_json::to_string(&Resume {
            flexbridge_resume: ResumeRef {
                key: "catalog/full/a.csv".into(),
                version_id: "v1".into(),
            },
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"flexbridgeResume":{"key":"catalog/full/a.csv","versionId":"v1"}}"#
        );
    }
}
