//! The contract between a function crate, Lambda, and the local runner.
//!
//! Each function crate exposes a type implementing [`Function`]; its `main.rs` hands it to
//! [`run_lambda`], and the local runner in `infra/` invokes the very same value with the
//! JSON payload Lambda would have delivered (SQS batch, EventBridge schedule, ...).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use crate::config::{keys, Env};
use crate::error::{Error, FailureKind};
use crate::metrics::{Alert, Metrics, RecordedMetrics};

/// What a handler knows about the invocation it serves.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// When Lambda will stop the function; work that cannot finish by then must not start.
    pub deadline: SystemTime,
}

impl Invocation {
    pub fn new(request_id: impl Into<String>, budget: Duration) -> Self {
        Self {
            request_id: request_id.into(),
            deadline: SystemTime::now() + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

impl From<&lambda_runtime::Context> for Invocation {
    fn from(ctx: &lambda_runtime::Context) -> Self {
        Self {
            request_id: ctx.request_id.clone(),
            deadline: ctx.deadline(),
        }
    }
}

#[async_trait]
pub trait Function: Send + Sync + 'static {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value, Error>;
}

/// Runs a function under the Lambda runtime (the body of every `main.rs`).
pub async fn run_lambda<F: Function>(function: F) -> Result<(), lambda_runtime::Error> {
    run_shared(Arc::new(function)).await
}

/// Not generic, so the Lambda runtime client (hyper, tower and their generics) is compiled once,
/// here, rather than again in every function's binary (BENCHMARKS.md, "Build").
async fn run_shared(function: Arc<dyn Function>) -> Result<(), lambda_runtime::Error> {
    let metrics = Metrics::from_env(&Env::from_process());
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let function = Arc::clone(&function);
            let metrics = metrics.clone();
            async move {
                let invocation = Invocation::from(&event.context);
                invoke_guarded(function.as_ref(), &metrics, event.payload, invocation)
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))
            }
        },
    ))
    .await
}

/// How long before Lambda's deadline an invocation is given up, so that its failure is still
/// logged and counted (Lambda's own kill leaves no line of ours).
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// One invocation as every function runs it: a returned error, a panic, or running into
/// [`DEADLINE_MARGIN`] before the deadline is logged and counted as [`Alert::FunctionError`]
/// (the one alarm, instead of an `Errors` alarm per function) and returned as an error, so
/// Lambda retries or reports it as before. Only a kill from outside (out of memory) escapes.
pub async fn invoke_guarded(
    function: &dyn Function,
    metrics: &Metrics,
    payload: Value,
    invocation: Invocation,
) -> Result<Value, Error> {
    let guard = invocation.clone();
    guarded(metrics, &guard, function.invoke(payload, invocation)).await
}

/// [`invoke_guarded`] for any work of one invocation (the warehouse API's requests too).
pub async fn guarded<T>(
    metrics: &Metrics,
    invocation: &Invocation,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    use futures::FutureExt;
    let budget = invocation.remaining().saturating_sub(DEADLINE_MARGIN);
    let run = std::panic::AssertUnwindSafe(work).catch_unwind();
    let failed = match tokio::time::timeout(budget, run).await {
        Ok(Ok(Ok(value))) => return Ok(value),
        Ok(Ok(Err(e))) => e,
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Error::Internal(format!("the function panicked: {what}"))
        }
        Err(_) => Error::Transient {
            message: format!(
                "gave up {} ms before the deadline: the function did not finish in time",
                DEADLINE_MARGIN.as_millis()
            ),
            after: None,
        },
    };
    tracing::error!(
        request_id = %invocation.request_id,
        function = metrics.function(),
        error = %failed,
        alert = %Alert::FunctionError,
        "the invocation failed"
    );
    metrics.alert(Alert::FunctionError, &[]);
    Err(failed)
}

/// The end of a scheduled run (the order and returns pollers): a run that failed anywhere
/// looks failed to CloudWatch, while what could be done was done.
///
/// - `result` is `Err`: the run could not even start (e.g. the locations are unreadable).
/// - `failures(&report)` is not empty: some locations failed, the others were processed.
///
/// Either way the `run_failed` alert is counted (`NeedsAttention`, alarmed), plus `environment`
/// when the run's error is the environment's; an error log with `alert="run_failed"` carries
/// the report; and the invocation returns an error, so Lambda counts it in `Errors` too.
pub fn finish_run<R: serde::Serialize>(
    metrics: &Metrics,
    what: &str,
    result: Result<R, Error>,
    failures: impl FnOnce(&R) -> Vec<String>,
) -> Result<Value, Error> {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            metrics.alert(Alert::RunFailed, &[]);
            if e.kind() == FailureKind::Environment {
                metrics.alert(Alert::Environment, &[]);
            }
            tracing::error!(error = %e, kind = %e.kind(), alert = %Alert::RunFailed, "{what} failed");
            return Err(e);
        }
    };
    let failed = failures(&report);
    let value = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
    if failed.is_empty() {
        return Ok(value);
    }
    metrics.alert(Alert::RunFailed, &[]);
    tracing::error!(
        failed = failed.len(),
        report = %value,
        alert = %Alert::RunFailed,
        "{what} finished with failures; the other parts were processed"
    );
    let mut listed = failed
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if failed.len() > 5 {
        listed.push_str(&format!("; and {} more", failed.len() - 5));
    }
    Err(Error::Transient {
        message: format!("{what}: {} failed: {listed}", failed.len()),
        after: None,
    })
}

/// Seconds since SQS received `message` (its `SentTimestamp`): the lag of work that started
/// with it (e.g. a stock change to Amazon accepting it, `InventoryPushLag`).
pub fn message_age_seconds(message: &aws_lambda_events::sqs::SqsMessage) -> Option<f64> {
    let sent: i64 = message.attributes.get("SentTimestamp")?.parse().ok()?;
    let now = chrono::Utc::now().timestamp_millis();
    Some(((now - sent) as f64 / 1e3).max(0.0))
}

/// Message attributes a parked message carries in its DLQ (besides its own). Readable in the
/// console or with `aws sqs receive-message --message-attribute-names All`.
pub mod parked_attributes {
    /// Why the message can never succeed as it is (the error, at most 1000 characters).
    pub const REASON: &str = "flexbridge.reason";
    /// The Lambda function that gave up on it.
    pub const FUNCTION: &str = "flexbridge.function";
    /// When (RFC 3339, UTC).
    pub const PARKED_AT: &str = "flexbridge.parkedAt";
    /// The ARN of the queue it came from (where a redrive sends it back).
    pub const SOURCE_QUEUE: &str = "flexbridge.sourceQueue";
    /// Its message ID and receive count in that queue.
    pub const SOURCE_MESSAGE_ID: &str = "flexbridge.sourceMessageId";
    pub const RECEIVE_COUNT: &str = "flexbridge.receiveCount";
    /// Ours; the others are the message's own.
    pub const ALL: [&str; 6] = [
        REASON,
        FUNCTION,
        PARKED_AT,
        SOURCE_QUEUE,
        SOURCE_MESSAGE_ID,
        RECEIVE_COUNT,
    ];
}

/// SQS allows at most 10 message attributes per message.
const MAX_MESSAGE_ATTRIBUTES: usize = 10;
const MAX_REASON_CHARS: usize = 1000;

/// A message on its way to the DLQ: its own body and attributes, and ours.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedMessage {
    pub body: String,
    /// The message's own attributes (ours from an earlier parking are replaced).
    pub attributes: std::collections::HashMap<String, aws_lambda_events::sqs::SqsMessageAttribute>,
    /// [`parked_attributes`] and their values.
    pub reason: String,
    pub function: String,
    pub parked_at: chrono::DateTime<chrono::Utc>,
    pub source_queue: String,
    pub source_message_id: String,
    pub receive_count: String,
}

impl ParkedMessage {
    fn of(message: &aws_lambda_events::sqs::SqsMessage, reason: String, function: &str) -> Self {
        let mut reason = reason;
        if reason.chars().count() > MAX_REASON_CHARS {
            reason = reason.chars().take(MAX_REASON_CHARS).collect::<String>() + "…";
        }
        let mut attributes = message.message_attributes.clone();
        attributes.retain(|k, _| !parked_attributes::ALL.contains(&k.as_str()));
        Self {
            body: message.body.clone().unwrap_or_default(),
            attributes,
            reason,
            function: function.to_string(),
            parked_at: chrono::Utc::now(),
            source_queue: message.event_source_arn.clone().unwrap_or_default(),
            source_message_id: message.message_id.clone().unwrap_or_default(),
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Our attributes, name and value.
    pub fn ours(&self) -> [(&'static str, String); 6] {
        use parked_attributes as a;
        [
            (a::REASON, self.reason.clone()),
            (a::FUNCTION, self.function.clone()),
            (
                a::PARKED_AT,
                self.parked_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            (a::SOURCE_QUEUE, self.source_queue.clone()),
            (a::SOURCE_MESSAGE_ID, self.source_message_id.clone()),
            (a::RECEIVE_COUNT, self.receive_count.clone()),
        ]
    }
}

/// Where a consumer parks a message that can never succeed (its queue's DLQ).
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    async fn send(&self, message: &ParkedMessage) -> Result<(), Error>;
}

/// The DLQ in SQS (`DEAD_LETTER_QUEUE_URL`).
pub struct SqsDeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsDeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn send(&self, message: &ParkedMessage) -> Result<(), Error> {
        use aws_sdk_sqs::types::MessageAttributeValue;
        let text = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                // SQS refuses empty attribute values.
                .string_value(if v.is_empty() { "-" } else { v })
                .build()
                .map_err(|e| Error::Internal(format!("message attribute: {e}")))
        };
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(&message.body);
        let ours = message.ours();
        for (name, value) in &ours {
            request = request.message_attributes(*name, text(value)?);
        }
        let mut own: Vec<_> = message.attributes.iter().collect();
        own.sort_by(|a, b| a.0.cmp(b.0));
        let room = MAX_MESSAGE_ATTRIBUTES - ours.len();
        if own.len() > room {
            tracing::warn!(
                kept = room,
                dropped = own.len() - room,
                "the parked message keeps only the first of its own attributes (SQS allows 10)"
            );
        }
        for (name, attr) in own.into_iter().take(room) {
            let data_type = attr.data_type.clone().unwrap_or_else(|| "String".into());
            let mut value = MessageAttributeValue::builder().data_type(data_type);
            if let Some(s) = &attr.string_value {
                value = value.string_value(s);
            }
            if let Some(b) = &attr.binary_value {
                value = value.binary_value(aws_sdk_sqs::primitives::Blob::new(b.0.clone()));
            }
            match value.build() {
                Ok(v) => request = request.message_attributes(name, v),
                Err(e) => tracing::warn!(attribute = %name, "attribute not copied: {e}"),
            }
        }
        request.send().await.map_err(|e| {
            Error::aws(
                "sqs",
                format!(
                    "SendMessage to the DLQ: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ),
                true,
            )
        })?;
        Ok(())
    }
}

/// The in-memory twin of a DLQ (tests): keeps what it was sent; can be told to fail.
#[derive(Default)]
pub struct MemoryDeadLetterQueue {
    parked: std::sync::Mutex<Vec<ParkedMessage>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryDeadLetterQueue {
    pub fn parked(&self) -> Vec<ParkedMessage> {
        self.parked.lock().expect("dlq").clone()
    }

    /// Every send fails from now on (`true`) or succeeds again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl DeadLetterQueue for MemoryDeadLetterQueue {
    async fn send(&self, message: &ParkedMessage) -> Result<(), Error> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::aws("sqs", "SendMessage: unavailable", true));
        }
        self.parked.lock().expect("dlq").push(message.clone());
        Ok(())
    }
}

/// Puts off a failed message's next receive: ChangeMessageVisibility on its own queue.
#[async_trait]
pub trait RetryDelay: Send + Sync {
    /// Each message with how long SQS is to keep it hidden (at most [`MAX_VISIBILITY`]).
    async fn delay(
        &self,
        messages: &[(&aws_lambda_events::sqs::SqsMessage, std::time::Duration)],
    ) -> Result<(), Error>;
}

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: std::time::Duration = std::time::Duration::from_secs(43_200);

/// The queue URL of a queue ARN (`arn:aws:sqs:<region>:<account>:<name>`): the event source
/// of every record, so a consumer needs no variable naming its own queue.
pub fn queue_url_of(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sqs", region, account, name] => {
            let domain = match *partition {
                "aws-cn" => "amazonaws.com.cn",
                _ => "amazonaws.com",
            };
            Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
        }
        _ => None,
    }
}

/// The consumer's retry delays in SQS.
pub struct SqsRetryDelay {
    client: aws_sdk_sqs::Client,
    /// The local runner's clock speed-up (`LOCAL_CLOCK_SPEEDUP`; 1 in AWS): delays are divided
    /// by it as the runner divides every other timeout.
    speedup: f64,
}

impl SqsRetryDelay {
    pub fn new(client: aws_sdk_sqs::Client, speedup: f64) -> Self {
        Self {
            client,
            speedup: if speedup.is_finite() && speedup > 0.0 {
                speedup
            } else {
                1.0
            },
        }
    }
}

#[async_trait]
impl RetryDelay for SqsRetryDelay {
    async fn delay(
        &self,
        messages: &[(&aws_lambda_events::sqs::SqsMessage, std::time::Duration)],
    ) -> Result<(), Error> {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry as Entry;
        let mut by_queue: std::collections::BTreeMap<String, Vec<Entry>> = Default::default();
        for (i, (m, delay)) in messages.iter().enumerate() {
            let arn = m.event_source_arn.as_deref().unwrap_or_default();
            let (Some(url), Some(handle)) = (queue_url_of(arn), m.receipt_handle.as_deref()) else {
                continue; // not from SQS (a test's record): nothing to put off
            };
            let secs = (delay.min(&MAX_VISIBILITY).as_secs_f64() / self.speedup).ceil() as i32;
            let entry = Entry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .visibility_timeout(secs)
                .build()
                .map_err(|e| Error::Internal(format!("visibility entry: {e}")))?;
            by_queue.entry(url).or_default().push(entry);
        }
        for (url, entries) in by_queue {
            for chunk in entries.chunks(10) {
                let out = self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&url)
                    .set_entries(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| {
                        Error::aws(
                            "sqs",
                            format!(
                                "ChangeMessageVisibilityBatch: {}",
                                aws_sdk_sqs::error::DisplayErrorContext(e)
                            ),
                            true,
                        )
                    })?;
                if let Some(f) = out.failed().first() {
                    return Err(Error::aws(
                        "sqs",
                        format!(
                            "ChangeMessageVisibilityBatch refused {} of {}: {} {}",
                            out.failed().len(),
                            chunk.len(),
                            f.code(),
                            f.message().unwrap_or_default()
                        ),
                        true,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The in-memory twin (tests): records each delay by message ID.
#[derive(Default)]
pub struct MemoryRetryDelay {
    delays: std::sync::Mutex<Vec<(String, std::time::Duration)>>,
}

impl MemoryRetryDelay {
    pub fn delays(&self) -> Vec<(String, std::time::Duration)> {
        self.delays.lock().expect("delays").clone()
    }
}

#[async_trait]
impl RetryDelay for MemoryRetryDelay {
    async fn delay(
        &self,
        messages: &[(&aws_lambda_events::sqs::SqsMessage, std::time::Duration)],
    ) -> Result<(), Error> {
        let mut d = self.delays.lock().expect("delays");
        for (m, delay) in messages {
            d.push((m.message_id.clone().unwrap_or_default(), *delay));
        }
        Ok(())
    }
}

/// What every SQS consumer needs to settle its messages: its queue's DLQ, the retry delays and
/// its metrics. Build it once in the function's `from_env` and hand it to [`handle_sqs_batch`].
#[derive(Clone)]
pub struct SqsConsumer {
    dead_letters: Arc<dyn DeadLetterQueue>,
    retry: Arc<dyn RetryDelay>,
    metrics: Metrics,
}

impl SqsConsumer {
    /// The DLQ from `DEAD_LETTER_QUEUE_URL` (template.yaml gives each consumer its own queue's
    /// DLQ and `sqs:SendMessage` on it), retry delays on the messages' own queue (template.yaml
    /// grants `sqs:ChangeMessageVisibility` on it), metrics from [`Metrics::from_env`].
    pub async fn from_env(env: &Env) -> Result<Self, Error> {
        let url = env.require(keys::DEAD_LETTER_QUEUE_URL)?;
        let speedup = env.parse_or(keys::LOCAL_CLOCK_SPEEDUP, 1.0_f64)?;
        let sdk = crate::aws::config(env).await;
        let sqs = crate::aws::sqs_client(&sdk);
        Ok(Self::new(
            Arc::new(SqsDeadLetterQueue::new(sqs.clone(), url)),
            Arc::new(SqsRetryDelay::new(sqs, speedup)),
            Metrics::from_env(env),
        ))
    }

    pub fn new(
        dead_letters: Arc<dyn DeadLetterQueue>,
        retry: Arc<dyn RetryDelay>,
        metrics: Metrics,
    ) -> Self {
        Self {
            dead_letters,
            retry,
            metrics,
        }
    }

    /// A consumer with an in-memory DLQ and metrics (tests), and the handles to read them.
    pub fn in_memory(function: &str) -> (Self, Arc<MemoryDeadLetterQueue>, RecordedMetrics) {
        let (consumer, dlq, metrics, _) = Self::in_memory_with_delays(function);
        (consumer, dlq, metrics)
    }

    /// [`Self::in_memory`], and the retry delays it asked for.
    pub fn in_memory_with_delays(
        function: &str,
    ) -> (
        Self,
        Arc<MemoryDeadLetterQueue>,
        RecordedMetrics,
        Arc<MemoryRetryDelay>,
    ) {
        let dlq = Arc::new(MemoryDeadLetterQueue::default());
        let delays = Arc::new(MemoryRetryDelay::default());
        let (metrics, recorded) = Metrics::memory("test", function);
        (
            Self::new(dlq.clone(), delays.clone(), metrics),
            dlq,
            recorded,
            delays,
        )
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Every queue's `RedrivePolicy.maxReceiveCount` in template.yaml (a test checks they agree):
/// SQS moves a message to its DLQ, silently, when it would be received once more than this.
/// With [`retry_delay`] between receives, the last receive comes [`retry_horizon`] after the
/// first: an outage of Amazon or of the webhook shorter than that sends nothing to a DLQ.
pub const MAX_RECEIVES: u32 = 16;

/// How long a message that failed for a transient or environment reason waits before its next
/// receive, by how many times it was received: 5 minutes, doubling, at most an hour (an outage
/// that ends is noticed within the hour; a lasting one is still retried for 12 hours).
pub fn retry_delay(receives: u32) -> std::time::Duration {
    let doublings = receives.saturating_sub(1).min(10);
    std::time::Duration::from_secs((300u64 << doublings).min(3600))
}

/// From a message's first receive to its last ([`MAX_RECEIVES`]), failing each time.
pub fn retry_horizon() -> std::time::Duration {
    (1..MAX_RECEIVES).map(retry_delay).sum()
}

/// How many times SQS has handed this message out (`ApproximateReceiveCount`), 1 if unknown.
pub fn receive_count(message: &aws_lambda_events::sqs::SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Handles each message of an SQS batch (at most `concurrency` at a time) and answers with a
/// partial batch response, by the one classification of failures ([`Error::kind`]):
///
/// - **message**: the message can never succeed as it is. It is sent to the queue's DLQ at
///   once with [`parked_attributes`] (reason, function, time, source queue), counted in
///   the `message_parked` alert, and acknowledged. If the DLQ cannot take it, it is reported as a batch
///   item failure instead: never dropped.
/// - **environment** (configuration, credentials, permissions): not the message's fault. A
///   batch item failure (SQS redelivers it after the visibility timeout), an error log with
///   `alert="environment"`, and that alert counted (`NeedsAttention`, alarmed). The
///   invocation itself succeeds so the rest of the batch is not redone; the alarm is what makes
///   the failure visible.
/// - **transient**: a batch item failure; SQS redelivers it after the visibility timeout.
///
/// Each transient or environment failure is put off by [`retry_delay`] of its receive count
/// (ChangeMessageVisibility; a Retry-After hint longer than that is honoured), so the
/// receives are spread over [`retry_horizon`] instead of the queue's visibility timeout ×
/// `maxReceiveCount`: a long outage ends with the message delivered, not dead-lettered early.
/// If the delay cannot be set the message still comes back, after the visibility timeout.
///
/// On a message's last receive ([`MAX_RECEIVES`]) a transient or environment failure is parked
/// like a message failure, its reason saying it failed on every receive and how the last one
/// failed (an environment failure is still alerted): SQS would otherwise move it to the DLQ
/// itself, without any reason. `flexbridge dlq redrive` sends it back once the cause is gone.
///
/// `what` names the message kind in the logs.
pub async fn handle_sqs_batch<F, Fut>(
    consumer: &SqsConsumer,
    event: aws_lambda_events::sqs::SqsEvent,
    what: &'static str,
    concurrency: usize,
    handle: F,
) -> aws_lambda_events::sqs::SqsBatchResponse
where
    F: Fn(aws_lambda_events::sqs::SqsMessage) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    use futures::StreamExt;

    let results: Vec<_> = futures::stream::iter(event.records)
        .map(|message| {
            let copy = message.clone();
            let done = handle(message);
            async move { (copy, done.await) }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let metrics = &consumer.metrics;
    let function = metrics.function().to_string();
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    let mut delays: Vec<(&aws_lambda_events::sqs::SqsMessage, std::time::Duration)> = Vec::new();
    // A batch item failure, and how long SQS is to keep it hidden.
    let mut retry = |message: &aws_lambda_events::sqs::SqsMessage,
                     after: Option<std::time::Duration>| {
        let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
        failure.item_identifier = message.message_id.clone().unwrap_or_default();
        response.batch_item_failures.push(failure);
        retry_delay(receive_count(message)).max(after.unwrap_or_default())
    };
    for (message, result) in &results {
        let Err(e) = result else { continue };
        let message_id = message.message_id.clone().unwrap_or_default();
        let queue = message.event_source_arn.as_deref().unwrap_or_default();
        let receives = receive_count(message);
        let last_receive = receives >= MAX_RECEIVES;
        let kind = e.kind();
        if kind == FailureKind::Environment {
            tracing::error!(
                message_id,
                queue,
                error = %e,
                alert = %Alert::Environment,
                "{what} failed because of the environment (configuration, credentials, permissions); kept for a retry, fix the deployment"
            );
            metrics.alert(Alert::Environment, &[]);
        }
        let reason = match kind {
            FailureKind::Message => e.to_string(),
            _ if last_receive => {
                format!("failed on each of its {receives} receives, the last time ({kind}): {e}")
            }
            FailureKind::Transient => {
                tracing::warn!(message_id, receives, error = %e, "{what} will be retried");
                delays.push((message, retry(message, retry_after(e))));
                continue;
            }
            FailureKind::Environment => {
                delays.push((message, retry(message, None)));
                continue;
            }
        };
        let parked = ParkedMessage::of(message, reason, &function);
        match consumer.dead_letters.send(&parked).await {
            Ok(()) => {
                tracing::error!(
                    message_id,
                    queue,
                    reason = %parked.reason,
                    alert = %Alert::MessageParked,
                    "{what} moved to the DLQ with its reason"
                );
                metrics.alert(Alert::MessageParked, &[]);
            }
            Err(send) => {
                tracing::error!(
                    message_id,
                    queue,
                    reason = %parked.reason,
                    error = %send,
                    alert = "dead_letter_unavailable",
                    "{what} cannot succeed, and the DLQ refused it; kept for a retry"
                );
                delays.push((message, retry(message, None)));
            }
        }
    }
    if !delays.is_empty() {
        if let Err(e) = consumer.retry.delay(&delays).await {
            tracing::warn!(error = %e, "could not put off the retries; they come back after the queue's visibility timeout");
        }
    }
    response
}

fn retry_after(e: &Error) -> Option<std::time::Duration> {
    match e {
        Error::Transient { after, .. } => *after,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
    use std::time::Duration;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:s-PriceUpdatesQueue";

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.event_source_arn = Some(QUEUE.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), "1".into());
        m
    }

    #[test]
    fn a_message_age_is_the_time_since_sqs_received_it() {
        let mut m = message("1", "{}");
        assert_eq!(message_age_seconds(&m), None);
        let sent = chrono::Utc::now().timestamp_millis() - 5_000;
        m.attributes
            .insert("SentTimestamp".into(), sent.to_string());
        let age = message_age_seconds(&m).unwrap();
        assert!((5.0..6.0).contains(&age), "{age}");
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    fn spapi(status: u16, kind: crate::spapi::SpApiErrorKind) -> Error {
        let mut e = crate::spapi::SpApiError::new(kind, "patchListingsItem", "x");
        e.status = Some(status);
        Error::SpApi(e)
    }

    /// The body names the failure the handler returns.
    async fn outcome(m: SqsMessage) -> Result<(), Error> {
        use crate::spapi::SpApiErrorKind as K;
        match m.body.as_deref().unwrap_or_default() {
            "ok" => Ok(()),
            "throttled" => Err(spapi(429, K::Status)),
            "transient" => Err(Error::Transient {
                message: "try later".into(),
                after: None,
            }),
            "garbage" => Err(Error::InvalidInput("not a price update".into())),
            "refused" => Err(spapi(422, K::Status)),
            "forbidden" => Err(spapi(403, K::Status)),
            "invalid_grant" => Err(spapi(400, K::Auth)),
            "bad_setting" => Err(Error::Config("setting x has an unexpected value".into())),
            "access_denied" => Err(Error::aws("dynamodb", "AccessDeniedException", false)),
            other => panic!("unknown test body {other}"),
        }
    }

    fn failed(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[test]
    fn every_failure_is_charged_to_exactly_one_party() {
        use crate::spapi::SpApiErrorKind as K;
        let cases = [
            (Error::InvalidInput("x".into()), FailureKind::Message),
            (Error::NotFound("x".into()), FailureKind::Message),
            (Error::Conflict("x".into()), FailureKind::Message),
            (Error::Internal("x".into()), FailureKind::Message),
            (spapi(400, K::Status), FailureKind::Message),
            (spapi(404, K::Status), FailureKind::Message),
            (spapi(422, K::Status), FailureKind::Message),
            (Error::Config("x".into()), FailureKind::Environment),
            (spapi(401, K::Status), FailureKind::Environment),
            (spapi(403, K::Status), FailureKind::Environment),
            (spapi(400, K::Auth), FailureKind::Environment), // LWA invalid_grant / invalid_client
            (spapi(401, K::Auth), FailureKind::Environment),
            (
                Error::aws("sqs", "AccessDenied", false),
                FailureKind::Environment,
            ),
            (spapi(429, K::Status), FailureKind::Transient),
            (spapi(503, K::Status), FailureKind::Transient),
            (spapi(503, K::Auth), FailureKind::Transient),
            (
                Error::SpApi(crate::spapi::SpApiError::new(
                    K::Timeout,
                    "getShipment",
                    "t",
                )),
                FailureKind::Transient,
            ),
            (
                Error::aws("dynamodb", "throttled", true),
                FailureKind::Transient,
            ),
            (
                Error::Transient {
                    message: "x".into(),
                    after: None,
                },
                FailureKind::Transient,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
        // A body that is not JSON is the message's fault ...
        let json: Error = serde_json::from_str::<u32>("x").unwrap_err().into();
        assert_eq!(json.kind(), FailureKind::Message);
    }

    #[tokio::test]
    async fn a_malformed_setting_is_the_environment_not_the_message() {
        use crate::store::settings::{get_or, MemorySettingsStore, SettingsStore};
        let store = MemorySettingsStore::default();
        store
            .put(
                "catalog_max_disable_share",
                serde_json::json!("lots"),
                None,
                "test",
            )
            .await
            .unwrap();
        let e = get_or(&store, "catalog_max_disable_share", 0.2f64)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), FailureKind::Environment, "{e}");
        assert!(e.to_string().contains("catalog_max_disable_share"), "{e}");
    }

    #[tokio::test]
    async fn a_poison_message_is_parked_with_its_reason_and_acknowledged() {
        let (consumer, dlq, metrics) = SqsConsumer::in_memory("s-PricePusherFunction");
        let mut poison = message("poison", "garbage");
        let mut own = SqsMessageAttribute::default();
        own.data_type = Some("String".into());
        own.string_value = Some("v1".into());
        poison.message_attributes.insert("origin".into(), own);
        let event = batch(vec![
            message("ok", "ok"),
            poison,
            message("refused", "refused"),
        ]);
        let response = handle_sqs_batch(&consumer, event, "price update", 2, outcome).await;
        assert!(failed(&response).is_empty(), "both are acknowledged");
        let parked = dlq.parked();
        assert_eq!(parked.len(), 2);
        let p = &parked[0];
        assert_eq!(p.body, "garbage");
        assert_eq!(p.reason, "invalid input: not a price update");
        assert_eq!(p.function, "s-PricePusherFunction");
        assert_eq!(p.source_queue, QUEUE);
        assert_eq!(p.source_message_id, "poison");
        assert_eq!(p.receive_count, "1");
        assert_eq!(p.attributes["origin"].string_value.as_deref(), Some("v1"));
        assert!((chrono::Utc::now() - p.parked_at).num_seconds() < 60);
        assert!(
            parked[1].reason.contains("HTTP 422"),
            "{}",
            parked[1].reason
        );
        assert_eq!(metrics.alerts(Alert::MessageParked), 2.0);
        assert_eq!(metrics.alerts(Alert::Environment), 0.0);
    }

    #[tokio::test]
    async fn a_message_the_dlq_cannot_take_is_retried_never_dropped() {
        let (consumer, dlq, metrics) = SqsConsumer::in_memory("f");
        dlq.set_failing(true);
        let response = handle_sqs_batch(
            &consumer,
            batch(vec![message("poison", "garbage")]),
            "t",
            1,
            outcome,
        )
        .await;
        assert_eq!(failed(&response), ["poison"]);
        assert!(dlq.parked().is_empty());
        assert_eq!(metrics.alerts(Alert::MessageParked), 0.0);
    }

    #[tokio::test]
    async fn environment_failures_are_retried_alarmed_and_never_parked() {
        let (consumer, dlq, metrics) = SqsConsumer::in_memory("f");
        let event = batch(vec![
            message("a", "forbidden"),
            message("b", "invalid_grant"),
            message("c", "bad_setting"),
            message("d", "access_denied"),
            message("e", "ok"),
        ]);
        let response = handle_sqs_batch(&consumer, event, "t", 3, outcome).await;
        assert_eq!(failed(&response), ["a", "b", "c", "d"]);
        assert!(dlq.parked().is_empty(), "never charged to the message");
        assert_eq!(metrics.alerts(Alert::Environment), 4.0);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_quietly() {
        let (consumer, dlq, metrics) = SqsConsumer::in_memory("f");
        let event = batch(vec![
            message("ok", "ok"),
            message("flaky", "transient"),
            message("slow", "throttled"),
        ]);
        let response = handle_sqs_batch(&consumer, event, "t", 2, outcome).await;
        assert_eq!(failed(&response), ["flaky", "slow"]);
        assert!(dlq.parked().is_empty());
        assert!(metrics.documents().is_empty());
    }

    #[tokio::test]
    async fn on_its_last_receive_a_failing_message_is_parked_with_why_not_left_to_sqs() {
        let (consumer, dlq, metrics) = SqsConsumer::in_memory("f");
        let last = |id: &str, body: &str| {
            let mut m = message(id, body);
            m.attributes
                .insert("ApproximateReceiveCount".into(), MAX_RECEIVES.to_string());
            m
        };
        let event = batch(vec![
            last("slow", "throttled"),
            last("denied", "access_denied"),
            message("flaky", "transient"),
        ]);
        let response = handle_sqs_batch(&consumer, event, "t", 2, outcome).await;
        assert_eq!(failed(&response), ["flaky"], "earlier receives are retried");
        let parked = dlq.parked();
        assert_eq!(parked.len(), 2);
        assert!(
            parked[0]
                .reason
                .starts_with("failed on each of its 16 receives, the last time (transient): "),
            "{}",
            parked[0].reason
        );
        assert!(
            parked[0].reason.contains("HTTP 429"),
            "{}",
            parked[0].reason
        );
        assert!(
            parked[1].reason.contains("the last time (environment)"),
            "{}",
            parked[1].reason
        );
        assert_eq!(parked[1].receive_count, "16");
        assert_eq!(metrics.alerts(Alert::MessageParked), 2.0);
        assert_eq!(
            metrics.alerts(Alert::Environment),
            1.0,
            "still alerted as the environment"
        );
    }

    /// A message failing for the environment or a passing cause is put off by its receive
    /// count (ChangeMessageVisibility), so its receives last [`retry_horizon`], not the
    /// queue's visibility timeout × maxReceiveCount: a 6-hour outage dead-letters nothing.
    #[tokio::test]
    async fn retries_are_put_off_by_receive_count_and_message_failures_never() {
        let (consumer, dlq, _, delays) = SqsConsumer::in_memory_with_delays("f");
        let received = |id: &str, body: &str, n: u32| {
            let mut m = message(id, body);
            m.attributes
                .insert("ApproximateReceiveCount".into(), n.to_string());
            m
        };
        let event = batch(vec![
            received("first", "transient", 1),
            received("third", "throttled", 3),
            received("tenth", "forbidden", 10),
            received("poison", "garbage", 2),
            received("ok", "ok", 4),
        ]);
        let response = handle_sqs_batch(&consumer, event, "t", 2, outcome).await;
        assert_eq!(failed(&response), ["first", "third", "tenth"]);
        let min = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(
            delays.delays(),
            vec![
                ("first".to_string(), min(5)),
                ("third".to_string(), min(20)),
                ("tenth".to_string(), min(60)),
            ]
        );
        assert_eq!(dlq.parked().len(), 1, "the poison is parked, not put off");
    }

    #[test]
    fn the_retry_schedule_outlives_a_long_outage_within_sqs_limits() {
        let schedule: Vec<u64> = (1..MAX_RECEIVES)
            .map(|n| retry_delay(n).as_secs() / 60)
            .collect();
        assert_eq!(&schedule[..6], &[5, 10, 20, 40, 60, 60]);
        assert!((1..=MAX_RECEIVES + 40).all(|n| retry_delay(n) <= MAX_VISIBILITY));
        // Twice the 6-hour outage the e2e test shows, with room to spare.
        assert!(
            retry_horizon() >= Duration::from_secs(12 * 3600),
            "{:?}",
            retry_horizon()
        );
        assert_eq!(retry_horizon(), Duration::from_secs(735 * 60));
    }

    #[test]
    fn a_queue_url_is_read_off_its_arn() {
        assert_eq!(
            queue_url_of(QUEUE).as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/123456789012/s-PriceUpdatesQueue")
        );
        assert_eq!(queue_url_of("not an arn"), None);
    }

    #[test]
    fn every_queue_redrives_after_max_receives() {
        let template = include_str!("../../template.yaml");
        let counts: Vec<&str> = template
            .lines()
            .filter_map(|l| l.trim().strip_prefix("maxReceiveCount:"))
            .map(str::trim)
            .collect();
        assert!(counts.len() >= 7, "{counts:?}");
        assert!(
            counts.iter().all(|c| *c == MAX_RECEIVES.to_string()),
            "template.yaml's maxReceiveCount must all be MAX_RECEIVES ({MAX_RECEIVES}): {counts:?}"
        );
    }

    #[derive(serde::Serialize)]
    struct Report {
        done: Vec<&'static str>,
        failed: Vec<String>,
    }

    #[test]
    fn a_run_that_failed_anywhere_is_an_error_and_counted() {
        let (metrics, recorded) = Metrics::memory("s", "poller");
        let ok = finish_run(
            &metrics,
            "order poll",
            Ok(Report {
                done: vec!["L1", "L2"],
                failed: vec![],
            }),
            |r| r.failed.clone(),
        )
        .unwrap();
        assert_eq!(ok["done"], serde_json::json!(["L1", "L2"]));
        assert_eq!(recorded.alerts(Alert::RunFailed), 0.0);

        let e = finish_run(
            &metrics,
            "order poll",
            Ok(Report {
                done: vec!["L1"],
                failed: vec!["L2/ACCEPTED: sp-api HTTP 500".into()],
            }),
            |r| r.failed.clone(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("1 failed: L2/ACCEPTED"), "{e}");
        assert_eq!(recorded.alerts(Alert::RunFailed), 1.0);

        let e = finish_run::<Report>(
            &metrics,
            "order poll",
            Err(Error::Config("setting x".into())),
            |r| r.failed.clone(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), FailureKind::Environment);
        assert_eq!(recorded.alerts(Alert::RunFailed), 2.0);
        assert_eq!(recorded.alerts(Alert::Environment), 1.0);
    }

    struct Scripted(&'static str);

    #[async_trait]
    impl Function for Scripted {
        async fn invoke(&self, _: Value, _: Invocation) -> Result<Value, Error> {
            match self.0 {
                "ok" => Ok(Value::Null),
                "err" => Err(Error::Internal("broken".into())),
                "panic" => panic!("boom"),
                _ => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(Value::Null)
                }
            }
        }
    }

    async fn guarded(
        how: &'static str,
        budget: Duration,
    ) -> (Result<Value, Error>, RecordedMetrics) {
        let (metrics, recorded) = Metrics::memory("s", "f");
        let out = invoke_guarded(
            &Scripted(how),
            &metrics,
            Value::Null,
            Invocation::new("r", budget),
        )
        .await;
        (out, recorded)
    }

    #[tokio::test]
    async fn a_successful_invocation_counts_no_alert() {
        let (out, recorded) = guarded("ok", Duration::from_secs(5)).await;
        assert!(out.is_ok());
        assert!(recorded.documents().is_empty());
    }

    #[tokio::test]
    async fn a_returned_error_is_counted_and_returned() {
        let (out, recorded) = guarded("err", Duration::from_secs(5)).await;
        assert!(out.unwrap_err().to_string().contains("broken"));
        assert_eq!(recorded.alerts(Alert::FunctionError), 1.0);
    }

    #[tokio::test]
    async fn a_panic_is_caught_counted_and_reported_as_an_error() {
        let (out, recorded) = guarded("panic", Duration::from_secs(5)).await;
        assert!(out.unwrap_err().to_string().contains("boom"));
        assert_eq!(recorded.alerts(Alert::FunctionError), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn running_into_the_deadline_is_counted_before_lambda_kills_it() {
        let (out, recorded) = guarded("sleep", Duration::from_secs(3)).await;
        assert!(out.unwrap_err().to_string().contains("before the deadline"));
        assert_eq!(recorded.alerts(Alert::FunctionError), 1.0);
    }

    #[test]
    fn a_reparked_message_carries_only_the_latest_reason_and_a_bounded_one() {
        let mut m = message("m", "b");
        let mut old = SqsMessageAttribute::default();
        old.data_type = Some("String".into());
        old.string_value = Some("old reason".into());
        m.message_attributes
            .insert(parked_attributes::REASON.into(), old);
        let p = ParkedMessage::of(&m, "y".repeat(5000), "f");
        assert!(p.attributes.is_empty());
        assert!(p.reason.chars().count() <= MAX_REASON_CHARS + 1);
        assert_eq!(p.ours()[0].0, parked_attributes::REASON);
    }
}
