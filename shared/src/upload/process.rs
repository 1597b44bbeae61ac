//! From an UploadsQueue message to runs of [`ingest::run`]: which uploads a message names (an
//! S3 notification, read by the one parser [`crate::aws::parse_s3_notification`], or a resume
//! message), the once-per-upload claim, and the resume message a paused upload sends itself.
//!
//! Per upload (object key + version): claimed through [`Idempotency::execute_resumable`]
//! (`upload#<key>#<version>`), so S3's and SQS's duplicate deliveries are processed once and a
//! new version of the same key is a new upload. A run that pauses before the deadline releases
//! the claim and sends `{"flexbridgeResume": {"key", "versionId", "order"}}` to the same queue;
//! the next invocation continues from the checkpoint. Once the work is done, a failure to save
//! the claim's result is logged, not returned (the helper's rule), and the checkpoint's finished
//! mark makes any later run return the summary without finishing again.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ingest::{self, IngestConfig, Ports, RunResult, UploadRef};
use super::order::UploadOrder;
use super::{UploadKey, UploadSummary};
use crate::aws::parse_s3_notification;
use crate::error::Result;
use crate::idempotency::{ActionKey, Idempotency, Outcome};
use crate::retry::Deadline;
use crate::runtime::Invocation;

/// How long a processed upload version is remembered.
pub const REMEMBER: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The message a paused upload sends itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub flexbridge_resume: UploadRef,
}

impl Resume {
    pub fn body(upload: &UploadRef) -> Result<String> {
        Ok(serde_json::to_string(&Resume {
            flexbridge_resume: upload.clone(),
        })?)
    }
}

/// Sends a message to the uploads queue (SQS in Lambda).
#[async_trait]
pub trait Requeue: Send + Sync {
    async fn send(&self, body: String) -> Result<()>;
}

/// The current version of an object, for notifications that carry none (moto's).
#[async_trait]
pub trait Versions: Send + Sync {
    async fn current_version(&self, key: &str) -> Result<String>;
}

/// What upload-ingest runs per message.
pub struct UploadProcessor {
    pub ports: Ports,
    pub config: IngestConfig,
    pub versions: Arc<dyn Versions>,
    pub requeue: Arc<dyn Requeue>,
    pub idempotency: Idempotency,
}

impl UploadProcessor {
    /// Processes every upload a message names; an error is the message's outcome.
    pub async fn handle_message(&self, body: &str, inv: &Invocation) -> Result<()> {
        for upload in self.uploads_in(body).await? {
            self.process(upload, inv).await?;
        }
        Ok(())
    }

    /// The uploads a message names (keys that are not ours are skipped).
    pub async fn uploads_in(&self, body: &str) -> Result<Vec<UploadRef>> {
        if let Ok(r) = serde_json::from_str::<Resume>(body) {
            return Ok(vec![r.flexbridge_resume]);
        }
        let mut uploads = Vec::new();
        for object in parse_s3_notification(body)? {
            if UploadKey::classify(&object.key).is_none() {
                tracing::info!(
                    key = object.key,
                    "not an upload (catalog/, prices/, inventory/); skipped"
                );
                continue;
            }
            let version_id = match object.version_id {
                Some(v) => v,
                None => self.versions.current_version(&object.key).await?,
            };
            let order = match &object.event_time {
                Some(time) => Some(UploadOrder::new(
                    time,
                    object.sequencer.as_deref(),
                    &object.key,
                    &version_id,
                )?),
                None => None,
            };
            let mut upload = UploadRef::new(object.key, version_id);
            upload.order = order;
            uploads.push(upload);
        }
        Ok(uploads)
    }

    /// One upload, once: done, paused (resume message sent) or an error.
    pub async fn process(&self, upload: UploadRef, inv: &Invocation) -> Result<()> {
        let key = ActionKey::Upload {
            key: &upload.key,
            version_id: &upload.version_id,
        }
        .to_string();
        let done = self
            .idempotency
            .execute_resumable(
                &key,
                &(&upload.key, &upload.version_id),
                inv,
                |_claim| async {
                    // A retaken claim needs no reconciliation: the checkpoint says how far the
                    // upload got, and a finished upload returns its summary.
                    match ingest::run(&self.ports, &self.config, &upload, Deadline::from(inv))
                        .await?
                    {
                        RunResult::Done(summary) => Ok(Some(*summary)),
                        RunResult::Paused { .. } => Ok(None),
                    }
                },
            )
            .await?;
        match done {
            Some(Outcome::Executed { value, .. }) => {
                log_done(&upload, &value);
                Ok(())
            }
            Some(Outcome::Replayed(_)) => {
                tracing::info!(
                    upload = upload.label(),
                    "already processed; duplicate delivery ignored"
                );
                Ok(())
            }
            None => {
                tracing::info!(
                    upload = upload.label(),
                    "paused before the deadline; resuming"
                );
                self.requeue.send(Resume::body(&upload)?).await
            }
        }
    }
}

fn log_done(upload: &UploadRef, summary: &UploadSummary) {
    tracing::info!(
        upload = upload.label(),
        status = summary.status,
        accepted = summary.accepted,
        rejected = summary.rejected,
        "upload processed"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::error::Error;
    use crate::events::MemoryEventSink;
    use crate::idempotency::{IdempotencyStore, MemoryIdempotencyStore, PutOutcome, Record};
    use crate::store::catalog::MemoryCatalogStore;
    use crate::store::settings::{MemorySettingsStore, SettingsStore};
    use crate::upload::answers::memory::MemoryAnswers;
    use crate::upload::ingest::memory::*;

    /// An idempotency store whose result saves fail (DynamoDB throttled at the wrong moment).
    #[derive(Default)]
    struct SaveFails(MemoryIdempotencyStore);

    #[async_trait]
    impl IdempotencyStore for SaveFails {
        async fn put_in_progress(
            &self,
            record: &Record,
            now: crate::idempotency::Now,
        ) -> Result<PutOutcome> {
            self.0.put_in_progress(record, now).await
        }
        async fn get(&self, id: &str) -> Result<Option<Record>> {
            self.0.get(id).await
        }
        async fn complete(&self, _record: &Record, _claimed_until_ms: i64) -> Result<bool> {
            Err(Error::aws("dynamodb", "PutItem: throttled", true))
        }
        async fn release(&self, id: &str, claimed_until_ms: i64) -> Result<()> {
            self.0.release(id, claimed_until_ms).await
        }
    }

    #[derive(Default)]
    struct Sent(Mutex<Vec<String>>);

    #[async_trait]
    impl Requeue for Sent {
        async fn send(&self, body: String) -> Result<()> {
            self.0.lock().expect("lock").push(body);
            Ok(())
        }
    }

    struct NoVersions;

    #[async_trait]
    impl Versions for NoVersions {
        async fn current_version(&self, key: &str) -> Result<String> {
            Ok(format!("etag:{key}"))
        }
    }

    fn processor(
        objects: Arc<MemoryObjects>,
        events: Arc<MemoryEventSink>,
        settings: Arc<MemorySettingsStore>,
        requeue: Arc<Sent>,
    ) -> UploadProcessor {
        UploadProcessor {
            ports: Ports {
                source: objects,
                catalog: Arc::new(MemoryCatalogStore::new()),
                prices: Arc::new(MemoryPriceQueue::default()),
                reports: Arc::new(MemoryReports::default()),
                checkpoints: Arc::new(MemoryCheckpoints::default()),
                settings,
                events,
                answers: Arc::new(MemoryAnswers::default()),
                stock: None,
                metrics: crate::metrics::Metrics::memory("test", "uploads").0,
            },
            config: IngestConfig::new("ATVPDKIKX0DER"),
            versions: Arc::new(NoVersions),
            requeue,
            idempotency: Idempotency::new(Arc::new(SaveFails::default()), REMEMBER),
        }
    }

    #[tokio::test]
    async fn a_failed_save_after_the_work_neither_fails_the_message_nor_finishes_twice() {
        let objects = Arc::new(MemoryObjects::default());
        objects.put(
            "catalog/a.csv",
            "etag:catalog/a.csv",
            "sku,asin\nA-1,B000000001\n",
        );
        let events = Arc::new(MemoryEventSink::new());
        let settings = Arc::new(MemorySettingsStore::new());
        let mut p = processor(
            objects,
            events.clone(),
            settings.clone(),
            Default::default(),
        );
        let (metrics, recorded) = crate::metrics::Metrics::memory("test", "uploads");
        p.ports.metrics = metrics;
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-11-21T08:21:13.408Z",
            "s3":{"bucket":{"name":"b"},"object":{"key":"catalog%2Fa.csv"}}}]}"#;
        let inv = Invocation::new("r1", Duration::from_millis(0));
        // The claim's result cannot be saved: the message still succeeds (the work is done).
        p.handle_message(body, &inv).await.unwrap();
        assert_eq!(events.events().len(), 1);
        // Redelivered after the claim expired: the checkpoint says finished, nothing repeats.
        p.handle_message(body, &Invocation::new("r2", Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(events.events().len(), 1, "UploadProcessed published once");
        // Rows counted once, by kind.
        use crate::metrics::names;
        assert_eq!(recorded.sum(names::UPLOAD_ROWS_ACCEPTED), 1.0);
        assert_eq!(recorded.sum(names::UPLOAD_ROWS_REJECTED), 0.0);
        assert!(recorded.documents().iter().all(|d| d["Kind"] == "catalog"));
        let log = settings.history("upload:catalog/a.csv").await.unwrap();
        assert_eq!(log.len(), 1, "one change-log entry");
    }

    #[tokio::test]
    async fn notifications_and_resume_messages_name_their_uploads() {
        let p = processor(
            Default::default(),
            Arc::new(MemoryEventSink::new()),
            Arc::new(MemorySettingsStore::new()),
            Default::default(),
        );
        let body = r#"{"Records":[
            {"eventName":"ObjectCreated:Put","eventTime":"2026-11-21T08:21:13.408Z","s3":{"bucket":{"name":"b"},
             "object":{"key":"prices%2Fp.csv","versionId":"v7","sequencer":"0A"}}},
            {"eventName":"ObjectCreated:Put","eventTime":"2026-11-21T08:21:13.409Z","s3":{"bucket":{"name":"b"},
             "object":{"key":"reports%2Fcatalog%2Fc.csv.summary.json"}}},
            {"eventName":"ObjectCreated:Put","eventTime":"2026-11-21T08:21:14Z","s3":{"bucket":{"name":"b"},
             "object":{"key":"catalog%2Fc.csv"}}}]}"#;
        let got = p.uploads_in(body).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].label(), "prices/p.csv@v7");
        assert_eq!(
            got[0].order.as_ref().unwrap().as_str(),
            "2026-11-21T08:21:13.408Z|0A000000000000000000000000000000|prices/p.csv@v7"
        );
        assert_eq!(got[1].label(), "catalog/c.csv@etag:catalog/c.csv");
        let resume = Resume::body(&got[0]).unwrap();
        assert!(resume
            .starts_with(r#"{"flexbridgeResume":{"key":"prices/p.csv","versionId":"v7","order":"#));
        assert_eq!(p.uploads_in(&resume).await.unwrap(), vec![got[0].clone()]);
    }
}
