//! The upload ports over AWS: objects and reports in S3, the price queue and resume messages
//! in SQS, checkpoints and Amazon's answers in CursorsTable.
//!
//! CursorsTable items of an upload (`pk` = `UPLOAD#<key>`):
//! - `sk` = `<versionId>`: the checkpoint, `state` (JSON [`Checkpoint`]), `updated_at`.
//! - `sk` = `<versionId>#answers`: `expected` (N, rows queued), `answered` (N), `report_lease`
//!   (N, epoch ms, while the Amazon report is being written), `reported` (when it was).
//! - `sk` = `<versionId>#answer#<line, 12 digits>`: one row's answer, `answer` (JSON
//!   [`PriceAnswer`]).
//!
//! Access patterns: get/put the checkpoint by upload version; count an answer (a transaction:
//! put the row's answer if absent + add 1 to `answered`); query the answers of a version
//! (`begins_with(sk, "<versionId>#answer#")`).

use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{SecondsFormat, Utc};
use tokio_util::io::SyncIoBridge;

use super::ingest::{Checkpoint, CheckpointStore, PriceQueue};
use super::process::{Requeue, Versions};
use super::{ObjectSource, ReportBody, ReportSink, UploadRef};
use crate::error::{Error, Result};
use crate::prices::answers::{AnswerStore, PriceAnswer};
use crate::prices::PriceUpdate;
use crate::retry::{RetryDecision, RetryPolicy};
use crate::store::dynamo;

fn s3_error<E>(operation: &str, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    // A missing object or version, or access denied, will not heal by retrying; S3's own
    // 5xx (SlowDown, InternalError), timeouts and dropped connections may.
    let retryable = match &e {
        SdkError::ServiceError(se) => se.raw().status().is_server_error(),
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    Error::aws(
        "s3",
        format!("{operation}: {}", DisplayErrorContext(&e)),
        retryable,
    )
}

/// Uploads read from, and reports written to, the bucket named by `BUCKET_NAME`.
#[derive(Debug, Clone)]
pub struct S3Uploads {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Uploads {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The current version of `key`, used when a notification does not carry it (moto's never
    /// do). In a bucket without versioning there is no version ID; the ETag stands in for it
    /// (`etag:<etag>`), so the same bytes uploaded again count as the same upload.
    pub async fn current_version(&self, key: &str) -> Result<String> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("HeadObject", e))?;
        Ok(
            match out.version_id().filter(|v| !v.is_empty() && *v != "null") {
                Some(v) => v.to_string(),
                None => format!("etag:{}", out.e_tag().unwrap_or_default().trim_matches('"')),
            },
        )
    }
}

#[async_trait]
impl Versions for S3Uploads {
    async fn current_version(&self, key: &str) -> Result<String> {
        S3Uploads::current_version(self, key).await
    }
}

/// Resume messages to `UPLOADS_QUEUE_URL`.
#[derive(Debug, Clone)]
pub struct SqsRequeue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsRequeue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl Requeue for SqsRequeue {
    async fn send(&self, body: String) -> Result<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "sqs",
                    format!("SendMessage: {}", DisplayErrorContext(&e)),
                    true,
                )
            })?;
        Ok(())
    }
}

/// Whether `version_id` names an S3 version (and not the ETag stand-in).
fn is_s3_version(version_id: &str) -> bool {
    !version_id.is_empty() && version_id != "null" && !version_id.starts_with("etag:")
}

#[async_trait]
impl ObjectSource for S3Uploads {
    async fn open(&self, upload: &UploadRef) -> Result<Box<dyn Read + Send>> {
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&upload.key);
        if is_s3_version(&upload.version_id) {
            request = request.version_id(&upload.version_id);
        } else if let Some(etag) = upload.version_id.strip_prefix("etag:") {
            // Unversioned bucket: read these bytes or fail, never a newer object's.
            request = request.if_match(format!("\"{etag}\""));
        }
        let out = request.send().await.map_err(|e| s3_error("GetObject", e))?;
        // The body streams from S3 as the parser thread reads it; never held whole.
        Ok(Box::new(SyncIoBridge::new(Box::pin(
            out.body.into_async_read(),
        ))))
    }
}

#[async_trait]
impl ReportSink for S3Uploads {
    async fn put(&self, key: &str, body: ReportBody, content_type: &str) -> Result<()> {
        let body = match body {
            ReportBody::Bytes(b) => ByteStream::from(b),
            ReportBody::File(path) => ByteStream::from_path(&path)
                .await
                .map_err(|e| Error::Internal(format!("report file {}: {e}", path.display())))?,
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| s3_error("PutObject", e))?;
        Ok(())
    }
}

/// The price queue (`PRICE_UPDATES_QUEUE_URL`): one message per accepted price row.
#[derive(Debug, Clone)]
pub struct SqsPriceQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    policy: RetryPolicy,
}

impl SqsPriceQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            policy: RetryPolicy::new(6, Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

#[async_trait]
impl PriceQueue for SqsPriceQueue {
    /// SendMessageBatch of 10; entries SQS reports as failed are sent again (only those).
    async fn send(&self, updates: &[PriceUpdate]) -> Result<()> {
        for chunk in updates.chunks(10) {
            let mut pending: Vec<(String, String)> = chunk
                .iter()
                .enumerate()
                .map(|(i, u)| Ok((i.to_string(), serde_json::to_string(u)?)))
                .collect::<Result<_>>()?;
            let mut attempt = 1;
            loop {
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body)
                            .build()
                            .map_err(|e| Error::Internal(format!("SQS entry: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let failed: Vec<String> = match self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => {
                        if let Some(f) = out.failed().iter().find(|f| f.sender_fault()) {
                            return Err(Error::aws(
                                "sqs",
                                format!(
                                    "SendMessageBatch refused an entry: {} {:?}",
                                    f.code(),
                                    f.message()
                                ),
                                false,
                            ));
                        }
                        out.failed().iter().map(|f| f.id().to_string()).collect()
                    }
                    Err(e) => {
                        let err = Error::aws(
                            "sqs",
                            format!("SendMessageBatch: {}", DisplayErrorContext(&e)),
                            true,
                        );
                        match self.policy.next_wait(attempt, RetryDecision::Retry, None) {
                            Some(wait) => {
                                tokio::time::sleep(wait).await;
                                attempt += 1;
                                continue;
                            }
                            None => return Err(err),
                        }
                    }
                };
                if failed.is_empty() {
                    break;
                }
                pending.retain(|(id, _)| failed.contains(id));
                match self.policy.next_wait(attempt, RetryDecision::Retry, None) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => {
                        return Err(Error::Transient {
                            message: format!(
                                "SendMessageBatch: {} entries kept failing",
                                pending.len()
                            ),
                            after: None,
                        })
                    }
                }
                attempt += 1;
            }
        }
        Ok(())
    }
}

/// Upload checkpoints in `CURSORS_TABLE`.
#[derive(Debug, Clone)]
pub struct DynamoCheckpoints {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCheckpoints {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl CheckpointStore for DynamoCheckpoints {
    async fn get(&self, upload: &UploadRef) -> Result<Option<Checkpoint>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("UPLOAD#{}", upload.key)))
            .key("sk", AttributeValue::S(upload.version_id.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo::ddb_error("GetItem", e))?;
        match out.item.as_ref().and_then(|i| dynamo::get_s(i, "state")) {
            Some(state) => Ok(Some(serde_json::from_str(state).map_err(|e| {
                Error::Internal(format!(
                    "checkpoint of {} is unreadable: {e}",
                    upload.label()
                ))
            })?)),
            None => Ok(None),
        }
    }

    async fn put(&self, upload: &UploadRef, checkpoint: &Checkpoint) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("UPLOAD#{}", upload.key)))
            .item("sk", AttributeValue::S(upload.version_id.clone()))
            .item(
                "state",
                AttributeValue::S(serde_json::to_string(checkpoint)?),
            )
            .item(
                "updated_at",
                AttributeValue::S(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
            )
            .send()
            .await
            .map_err(|e| dynamo::ddb_error("PutItem", e))?;
        Ok(())
    }
}

/// Amazon's answers to price rows in `CURSORS_TABLE`.
#[derive(Debug, Clone)]
pub struct DynamoAnswers {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAnswers {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn counter_key(upload: &UploadRef) -> dynamo::Item {
        [
            (
                "pk".to_string(),
                dynamo::s(format!("UPLOAD#{}", upload.key)),
            ),
            (
                "sk".to_string(),
                dynamo::s(format!("{}#answers", upload.version_id)),
            ),
        ]
        .into()
    }

    fn answer_prefix(upload: &UploadRef) -> String {
        format!("{}#answer#", upload.version_id)
    }

    async fn update(
        &self,
        upload: &UploadRef,
        expression: &str,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::counter_key(upload)))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_string));
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if dynamo::is_condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo::ddb_error("UpdateItem", e)),
        }
    }
}

#[async_trait]
impl AnswerStore for DynamoAnswers {
    async fn record(&self, upload: &UploadRef, answer: &PriceAnswer) -> Result<()> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            Error::Internal(format!("answer transaction: {e}"))
        };
        let row = Put::builder()
            .table_name(&self.table)
            .item("pk", dynamo::s(format!("UPLOAD#{}", upload.key)))
            .item(
                "sk",
                dynamo::s(format!(
                    "{}{:012}",
                    Self::answer_prefix(upload),
                    answer.line
                )),
            )
            .item("answer", dynamo::s(serde_json::to_string(answer)?))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::counter_key(upload)))
            .update_expression("ADD answered :one")
            .expression_attribute_values(":one", dynamo::n(1))
            .build()
            .map_err(build)?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(row).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if dynamo::is_transaction_cancelled(&e) => {
                // Refused: the row was answered before (a redelivery), or a conflicting write;
                // the row tells which.
                let exists = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", dynamo::s(format!("UPLOAD#{}", upload.key)))
                    .key(
                        "sk",
                        dynamo::s(format!(
                            "{}{:012}",
                            Self::answer_prefix(upload),
                            answer.line
                        )),
                    )
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| dynamo::ddb_error("GetItem", e))?
                    .item
                    .is_some();
                if exists {
                    Ok(())
                } else {
                    Err(Error::Transient {
                        message: format!(
                            "counting the answer to line {} of {} was refused; retrying",
                            answer.line,
                            upload.label()
                        ),
                        after: None,
                    })
                }
            }
            Err(e) => Err(dynamo::ddb_error("TransactWriteItems", e)),
        }
    }

    async fn expect(&self, upload: &UploadRef, queued: u64) -> Result<()> {
        self.update(
            upload,
            "SET expected = :n, answered = if_not_exists(answered, :zero)",
            None,
            &[(":n", dynamo::n(queued)), (":zero", dynamo::n(0))],
        )
        .await
        .map(|_| ())
    }

    async fn claim_report(
        &self,
        upload: &UploadRef,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool> {
        self.update(
            upload,
            "SET report_lease = :lease",
            Some(
                "answered = expected AND attribute_not_exists(reported) AND \
                 (attribute_not_exists(report_lease) OR report_lease < :now)",
            ),
            &[
                (":lease", dynamo::n(lease_until_ms)),
                (":now", dynamo::n(now_ms)),
            ],
        )
        .await
    }

    async fn reported(&self, upload: &UploadRef) -> Result<()> {
        self.update(
            upload,
            "SET reported = :at REMOVE report_lease",
            None,
            &[(
                ":at",
                dynamo::s(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
            )],
        )
        .await
        .map(|_| ())
    }

    async fn release_report(&self, upload: &UploadRef) -> Result<()> {
        self.update(upload, "REMOVE report_lease", None, &[])
            .await
            .map(|_| ())
    }

    async fn answers(&self, upload: &UploadRef) -> Result<Vec<PriceAnswer>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", dynamo::s(format!("UPLOAD#{}", upload.key)))
            .expression_attribute_values(":prefix", dynamo::s(Self::answer_prefix(upload)))
            .consistent_read(true);
        dynamo::query_all(query, |item| {
            let text = dynamo::get_s(item, "answer").unwrap_or_default();
            serde_json::from_str(text)
                .map_err(|e| Error::Internal(format!("stored answer is unreadable: {e}")))
        })
        .await
    }
}
