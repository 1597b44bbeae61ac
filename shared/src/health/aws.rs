//! Gathering [`HealthData`] from the stack and publishing the report: the stores and the two
//! narrow ports below ([`UploadSummaries`]: the upload reports in the bucket;
//! [`DeadLetters`]: the DLQs), with their AWS implementations. [`HealthReporter::run`] is what
//! the scheduled `health-report` function calls.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use chrono::{DateTime, Utc};

use super::{report_key, DlqState, HealthData, HealthReport, DAYS};
use crate::error::{Error, Result};
use crate::events::{EventName, EventSink, HealthReportReady, OutboundEvent};
use crate::fulfilment::ports::LabelFiles;
use crate::runtime::parked_attributes;
use crate::shipment::{ReturnStage, Stage};
use crate::store::inventory::PushLedger;
use crate::store::locations::LocationStore;
use crate::store::shipments::ShipmentStore;
use crate::upload::UploadSummary;

/// How long the link in `HealthReportReady` is wanted to work: S3's presign maximum, 7 days,
/// which only long-term keys can honour; signed in Lambda, an hour (`ports::link_life`), and a
/// fresh link is a request away (`GET /v1/reports/health/latest`, `flexbridge link report`).
pub const LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Reasons shown per DLQ.
const REASONS_SHOWN: usize = 3;
/// Upload reports read at most (the newest first would need a listing by time; S3 lists by key).
const UPLOADS_READ_MAX: usize = 1000;

/// The upload reports (`reports/**.summary.json`) written since a time.
#[async_trait]
pub trait UploadSummaries: Send + Sync {
    async fn since(&self, since: DateTime<Utc>) -> Result<Vec<UploadSummary>>;
}

/// Every DLQ: how many messages, and why some were parked.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn states(&self) -> Result<Vec<DlqState>>;

    /// Each DLQ and how many messages it holds, without the reasons (the heartbeat's check:
    /// one `GetQueueAttributes` per DLQ).
    async fn depths(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .states()
            .await?
            .into_iter()
            .map(|d| (d.queue, d.messages))
            .collect())
    }
}

/// The in-memory twin of [`SqsDeadLetters`]: DLQs as set.
#[derive(Default)]
pub struct MemoryDeadLetters(std::sync::Mutex<Vec<DlqState>>);

impl MemoryDeadLetters {
    pub fn set(&self, states: Vec<DlqState>) {
        *self.0.lock().expect("dead letters") = states;
    }
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn states(&self) -> Result<Vec<DlqState>> {
        Ok(self.0.lock().expect("dead letters").clone())
    }
}

/// Counts [`Alert::DeadLetters`](crate::metrics::Alert) for every DLQ that holds messages,
/// with the queue and its depth on the line; returns those DLQs. Run on the heartbeat's
/// schedule, so the one alarm stays on while any DLQ is not empty (it replaced an alarm per
/// DLQ; docs/runbook.md).
pub async fn alert_dead_letters(
    dead_letters: &dyn DeadLetters,
    metrics: &crate::metrics::Metrics,
) -> Result<Vec<(String, u64)>> {
    use crate::metrics::Alert;
    let mut waiting = dead_letters.depths().await?;
    waiting.retain(|(_, depth)| *depth > 0);
    for (queue, depth) in &waiting {
        let shown = depth.to_string();
        tracing::error!(
            queue,
            depth,
            alert = %Alert::DeadLetters,
            "messages wait in a dead-letter queue; `flexbridge dlq list` shows why, `dlq redrive` sends them back"
        );
        metrics.alert(Alert::DeadLetters, &[("Queue", queue), ("Depth", &shown)]);
    }
    Ok(waiting)
}

/// Builds and publishes the daily report.
pub struct HealthReporter {
    pub shipments: Arc<dyn ShipmentStore>,
    pub locations: Arc<dyn LocationStore>,
    pub ledger: Arc<dyn PushLedger>,
    pub uploads: Arc<dyn UploadSummaries>,
    pub dead_letters: Arc<dyn DeadLetters>,
    pub files: Arc<dyn LabelFiles>,
    pub events: Arc<dyn EventSink>,
    pub metrics: crate::metrics::Metrics,
}

/// What one run wrote.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    pub report_key: String,
    pub bytes: usize,
    pub shipments: usize,
    pub messages_parked: u64,
}

impl HealthReporter {
    /// Reads the last [`DAYS`] days (and the DLQs and halted pushes as they are now).
    pub async fn gather(&self, now: DateTime<Utc>) -> Result<HealthData> {
        let since = now - chrono::Duration::days(DAYS + 1);
        let mut data = HealthData::default();
        for stage in Stage::ALL {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .shipments
                    .list(stage, Some(since), 500, token.as_deref())
                    .await?;
                data.shipments.extend(page.items);
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
        }
        for stage in [
            ReturnStage::Open,
            ReturnStage::Closed,
            ReturnStage::Unreadable,
        ] {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .shipments
                    .list_returns(stage, Some(since), 500, token.as_deref())
                    .await?;
                data.returns.extend(page.items);
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
        }
        data.uploads = self.uploads.since(since).await?;
        data.dlqs = self.dead_letters.states().await?;
        for l in self.locations.list().await? {
            if let Some(h) = self.ledger.halt(&l.location_id).await? {
                data.halted_pushes.push(h);
            }
        }
        Ok(data)
    }

    /// Gathers, renders, stores `reports/health/<date>.html` (the [`DAYS`] days ending with
    /// `date`; the schedule asks for yesterday, the last whole day), and sends
    /// `HealthReportReady` with a presigned link. Run again for the same day, it replaces the
    /// page and sends the event again under the same event ID.
    pub async fn run(&self, date: chrono::NaiveDate, now: DateTime<Utc>) -> Result<Written> {
        let data = self.gather(now).await?;
        let report = HealthReport::compute(&data, date, now);
        let html = super::render(&report);
        let key = report_key(date);
        self.files
            .put(&key, html.clone().into_bytes(), "text/html; charset=utf-8")
            .await?;
        let link = self.files.link(&key, LINK_TTL).await?;
        let ev = OutboundEvent::new(
            EventName::HealthReportReady,
            &date.to_string(),
            now,
            HealthReportReady {
                date: date.to_string(),
                report_key: key.clone(),
                report_url: link.url,
                link_expires_at: crate::shipment::sort_time(link.expires_at),
                messages_parked: report.parked(),
                waiting_for_a_person: report.waiting_for_a_person,
                seller_cancellation_rate: report.seller_cancellations.percent(),
            },
        )?;
        self.events.publish(&[ev]).await?;
        self.metrics
            .count(crate::metrics::names::HEALTH_REPORTS, &[]);
        tracing::info!(report_key = %key, bytes = html.len(), "health report written");
        Ok(Written {
            report_key: key,
            bytes: html.len(),
            shipments: data.shipments.len(),
            messages_parked: report.parked(),
        })
    }
}

fn s3_error<E>(e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let retryable = !matches!(e, aws_sdk_s3::error::SdkError::ServiceError(ref se) if !se.raw().status().is_server_error());
    Error::aws("s3", DisplayErrorContext(&e), retryable)
}

fn sqs_error<E>(
    e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let retryable = !matches!(e, aws_sdk_sqs::error::SdkError::ServiceError(ref se) if !se.raw().status().is_server_error());
    Error::aws(
        "sqs",
        aws_sdk_sqs::error::DisplayErrorContext(&e),
        retryable,
    )
}

/// The upload reports in the bucket.
pub struct S3UploadSummaries {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

#[async_trait]
impl UploadSummaries for S3UploadSummaries {
    async fn since(&self, since: DateTime<Utc>) -> Result<Vec<UploadSummary>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(crate::config::prefixes::REPORTS)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(s3_error)?;
            for o in page.contents() {
                let (Some(key), Some(modified)) = (o.key(), o.last_modified()) else {
                    continue;
                };
                if key.ends_with(".summary.json") && modified.secs() >= since.timestamp() {
                    keys.push(key.to_string());
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() || keys.len() >= UPLOADS_READ_MAX {
                break;
            }
        }
        let mut out = Vec::new();
        for key in keys.into_iter().take(UPLOADS_READ_MAX) {
            let obj = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(s3_error)?;
            let bytes = obj
                .body
                .collect()
                .await
                .map_err(|e| Error::aws("s3", e, true))?
                .into_bytes();
            match serde_json::from_slice::<UploadSummary>(&bytes) {
                Ok(s) => out.push(s),
                // A report we cannot read is left out of the page, not a failed run.
                Err(e) => tracing::warn!(key, error = %e, "upload summary unreadable; left out"),
            }
        }
        Ok(out)
    }
}

/// The health reports in the bucket, by date.
#[async_trait]
pub trait HealthReports: Send + Sync {
    /// Every date a report was written for.
    async fn dates(&self) -> Result<Vec<chrono::NaiveDate>>;
}

/// The health pages under `reports/health/`.
pub struct S3HealthReports {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

#[async_trait]
impl HealthReports for S3HealthReports {
    async fn dates(&self) -> Result<Vec<chrono::NaiveDate>> {
        let mut dates = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // One key a day: a year of reports is one page.
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(crate::config::prefixes::HEALTH_REPORTS)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(s3_error)?;
            dates.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| super::report_date(o.key()?)),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        dates.sort_unstable();
        Ok(dates)
    }
}

/// A fresh link to one health report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLink {
    pub date: String,
    pub report_key: String,
    pub report_url: String,
    /// When the link stops working (`fulfilment::ports::link_life`).
    pub link_expires_at: String,
}

/// A fresh link to the report of `date`, or of the newest report when `None`; `NotFound` when
/// there is no such report.
pub async fn report_link(
    reports: &dyn HealthReports,
    files: &dyn LabelFiles,
    date: Option<chrono::NaiveDate>,
) -> Result<ReportLink> {
    let dates = reports.dates().await?;
    let date = match date {
        Some(d) if dates.contains(&d) => d,
        Some(d) => return Err(Error::NotFound(format!("no health report for {d}"))),
        None => *dates
            .last()
            .ok_or_else(|| Error::NotFound("no health report has been written yet".into()))?,
    };
    let key = report_key(date);
    let link = files.link(&key, LINK_TTL).await?;
    Ok(ReportLink {
        date: date.to_string(),
        report_key: key,
        report_url: link.url,
        link_expires_at: crate::shipment::sort_time(link.expires_at),
    })
}

/// Fresh links to the stored health reports: what the API's `GET /v1/reports/health/{date}`
/// and the CLI's `flexbridge link report` hand out.
#[derive(Clone)]
pub struct ReportLinks {
    pub reports: Arc<dyn HealthReports>,
    pub files: Arc<dyn LabelFiles>,
}

impl ReportLinks {
    /// Over the bucket `BUCKET_NAME`.
    pub async fn from_env(env: &crate::config::Env) -> Result<Self> {
        let sdk = crate::aws::config(env).await;
        let bucket = env.require(crate::config::keys::BUCKET_NAME)?.to_string();
        Ok(Self {
            reports: Arc::new(S3HealthReports {
                s3: crate::aws::s3_client(&sdk),
                bucket: bucket.clone(),
            }),
            files: Arc::new(crate::fulfilment::ports::S3LabelFiles::new(&sdk, bucket)?),
        })
    }

    /// [`report_link`] for `date`, or the newest report.
    pub async fn link(&self, date: Option<chrono::NaiveDate>) -> Result<ReportLink> {
        report_link(self.reports.as_ref(), self.files.as_ref(), date).await
    }
}

/// The DLQs, by URL (`DEAD_LETTER_QUEUE_URLS`).
pub struct SqsDeadLetters {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_urls: Vec<String>,
}

impl SqsDeadLetters {
    /// Every DLQ of the stack (`DEAD_LETTER_QUEUE_URLS`).
    pub fn from_env(env: &crate::Env, sdk: &aws_config::SdkConfig) -> Result<Self> {
        Ok(Self {
            sqs: crate::aws::sqs_client(sdk),
            queue_urls: env
                .require(crate::config::keys::DEAD_LETTER_QUEUE_URLS)?
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    async fn depth(&self, url: &str) -> Result<u64> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_string()
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn depths(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for url in &self.queue_urls {
            out.push((queue_name(url), self.depth(url).await?));
        }
        Ok(out)
    }

    async fn states(&self) -> Result<Vec<DlqState>> {
        let mut out = Vec::new();
        for url in &self.queue_urls {
            let messages = self.depth(url).await?;
            let mut reasons = Vec::new();
            if messages > 0 {
                // A peek: visibility timeout 0 leaves every message where it was.
                let got = self
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(REASONS_SHOWN as i32)
                    .visibility_timeout(0)
                    .message_attribute_names(parked_attributes::REASON)
                    .send()
                    .await
                    .map_err(sqs_error)?;
                for m in got.messages() {
                    let reason = m
                        .message_attributes()
                        .and_then(|a| a.get(parked_attributes::REASON))
                        .and_then(|v| v.string_value())
                        .unwrap_or(
                            "(no reason attached: it was moved by SQS after too many receives)",
                        );
                    reasons.push(reason.chars().take(300).collect());
                }
            }
            out.push(DlqState {
                queue: queue_name(url),
                messages,
                reasons,
            });
        }
        Ok(out)
    }
}

impl HealthReporter {
    /// The reporter of a deployed stack (function `health-report`).
    pub async fn from_env(env: &crate::Env) -> Result<Self> {
        use crate::config::keys;
        let sdk = crate::aws::config(env).await;
        let ddb = crate::aws::dynamodb_client(&sdk);
        let s3 = crate::aws::s3_client(&sdk);
        let bucket = env.require(keys::BUCKET_NAME)?.to_string();
        Ok(Self {
            shipments: Arc::new(crate::store::shipments::DynamoShipmentStore::new(
                ddb.clone(),
                env.require(keys::SHIPMENTS_TABLE)?,
            )),
            locations: Arc::new(crate::store::locations::DynamoLocationStore::new(
                ddb.clone(),
                env.require(keys::LOCATIONS_TABLE)?,
            )),
            ledger: Arc::new(crate::store::inventory::DynamoInventoryStore::new(
                ddb,
                env.require(keys::INVENTORY_TABLE)?,
            )),
            uploads: Arc::new(S3UploadSummaries {
                s3,
                bucket: bucket.clone(),
            }),
            dead_letters: Arc::new(SqsDeadLetters::from_env(env, &sdk)?),
            files: Arc::new(crate::fulfilment::ports::S3LabelFiles::new(&sdk, bucket)?),
            events: Arc::new(crate::events::EventBridgeSink::new(
                crate::aws::eventbridge_client(&sdk),
                env.require(keys::EVENT_BUS_NAME)?,
            )),
            metrics: crate::metrics::Metrics::from_env(env),
        })
    }
}
