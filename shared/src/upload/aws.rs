//! The upload ports over AWS: objects and reports in S3, the price queue in SQS, checkpoints
//! in CursorsTable.
//!
//! CursorsTable item for an upload in progress: `pk` = `UPLOAD#<key>`, `sk` = `<versionId>`,
//! `state` (JSON [`Checkpoint`]), `updated_at`. Access pattern: get/put by upload version.

use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{SecondsFormat, Utc};
use tokio_util::io::SyncIoBridge;

use super::ingest::{
    Checkpoint, CheckpointStore, ObjectSource, PriceQueue, PriceUpdate, ReportBody, ReportSink,
    UploadRef,
};
use crate::error::{Error, Result};
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
