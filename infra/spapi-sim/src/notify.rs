//! EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE notifications to an SQS queue (aws-sdk-sqs, at
//! the queue URL's own host, i.e. moto) or an HTTP(S) URL. At least once: failed deliveries
//! are retried; duplicates and reordering on request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::state::{fmt_time, State};

pub const NOTIFICATION_TYPE: &str = "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE";

/// Where notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    #[serde(default)]
    pub destination_id: String,
    /// An SQS queue URL (sent with SendMessage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs_queue_url: Option<String>,
    /// An HTTP(S) URL (POSTed as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Delivery options (admin `PUT /_sim/notifications/options`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct NotifyOptions {
    pub enabled: bool,
    /// Share of notifications delivered twice.
    pub duplicate_rate: f64,
    /// Deliver after a random delay of up to `reorderWindowMs`, so later changes may arrive first.
    pub reorder: bool,
    pub reorder_window_ms: u64,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            duplicate_rate: 0.0,
            reorder: false,
            reorder_window_ms: 500,
        }
    }
}

/// Destinations, options and the delivery log, kept in the state.
#[derive(Debug, Default)]
pub struct NotifyConfig {
    pub destinations: Vec<Destination>,
    pub options: NotifyOptions,
    pub sent: Arc<Mutex<Vec<Value>>>,
    pub tx: Option<mpsc::UnboundedSender<Job>>,
    pub application_id: String,
}

#[derive(Debug)]
pub struct Job {
    pub destination: Destination,
    pub notification_id: String,
    pub body: String,
    pub delay: Duration,
    pub copy: u32,
}

/// Background delivery task.
pub struct Notifier {
    pub tx: mpsc::UnboundedSender<Job>,
    pub log: Arc<Mutex<Vec<Value>>>,
}

impl Notifier {
    pub fn start() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let log: Arc<Mutex<Vec<Value>>> = Arc::default();
        let log2 = log.clone();
        tokio::spawn(async move {
            let sqs: SqsClients = Arc::default();
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            while let Some(job) = rx.recv().await {
                let (sqs, http, log) = (sqs.clone(), http.clone(), log2.clone());
                if job.delay.is_zero() {
                    // In order unless reordering was asked for.
                    deliver(job, sqs, http, log).await;
                } else {
                    tokio::spawn(async move { deliver(job, sqs, http, log).await });
                }
            }
        });
        Self { tx, log }
    }
}

/// The SQS endpoint: the queue URL's own origin when it is not an amazonaws.com host (moto
/// names its queues by its own address, so each destination reaches the moto that holds it,
/// whatever another test set in the process-wide variables), else `AWS_ENDPOINT_URL_SQS` /
/// `AWS_ENDPOINT_URL`. Never real AWS.
fn sqs_endpoint(queue_url: &str) -> Result<String, String> {
    let u = url_origin(queue_url).ok_or_else(|| format!("not a queue URL: {queue_url}"))?;
    if !u.contains("amazonaws.com") {
        return Ok(u);
    }
    for k in ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"] {
        if let Ok(v) = std::env::var(k) {
            if !v.is_empty() {
                return Ok(v);
            }
        }
    }
    Err(format!(
        "refusing to send to real AWS ({u}): set AWS_ENDPOINT_URL to a local endpoint such as moto"
    ))
}

fn url_origin(u: &str) -> Option<String> {
    let (scheme, rest) = u.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // Only ever pointed at a local endpoint (moto), which accepts any key.
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "simulator",
            "simulator",
            None,
            None,
            "spapi-sim",
        ));
    }
    aws_sdk_sqs::Client::new(&loader.load().await)
}

type SqsClients = Arc<tokio::sync::Mutex<std::collections::HashMap<String, aws_sdk_sqs::Client>>>;

async fn deliver(job: Job, sqs: SqsClients, http: reqwest::Client, log: Arc<Mutex<Vec<Value>>>) {
    tokio::time::sleep(job.delay).await;
    let mut last_err = String::new();
    // At least once: retry a failed delivery a few times with a growing pause.
    for attempt in 1..=6u32 {
        let res: Result<(), String> = if let Some(q) = &job.destination.sqs_queue_url {
            match sqs_endpoint(q) {
                Err(e) => Err(e),
                Ok(ep) => {
                    let c = {
                        let mut m = sqs.lock().await;
                        match m.get(&ep) {
                            Some(c) => c.clone(),
                            None => {
                                let c = sqs_client(&ep).await;
                                m.insert(ep.clone(), c.clone());
                                c
                            }
                        }
                    };
                    c.send_message()
                        .queue_url(q)
                        .message_body(&job.body)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
                }
            }
        } else if let Some(u) = &job.destination.url {
            match http
                .post(u)
                .header("content-type", "application/json")
                .body(job.body.clone())
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err("destination has neither sqsQueueUrl nor url".into())
        };
        match res {
            Ok(()) => {
                push_log(&log, &job, "DELIVERED", attempt, None);
                return;
            }
            Err(e) => last_err = e,
        }
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
    }
    push_log(&log, &job, "FAILED", 6, Some(last_err));
}

fn push_log(
    log: &Mutex<Vec<Value>>,
    job: &Job,
    outcome: &str,
    attempts: u32,
    error: Option<String>,
) {
    let body: Value = serde_json::from_str(&job.body).unwrap_or(Value::Null);
    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
    l.push(json!({
        "notificationId": job.notification_id,
        "destinationId": job.destination.destination_id,
        "copy": job.copy,
        "outcome": outcome,
        "attempts": attempts,
        "error": error,
        "deliveredAt": fmt_time(chrono::Utc::now()),
        "notification": body,
    }));
}

/// Builds the notification for a shipment's new status and queues it for every destination.
pub fn shipment_changed(st: &mut State, shipment: &Value) {
    if !st.notify.options.enabled || st.notify.destinations.is_empty() {
        return;
    }
    let Some(tx) = st.notify.tx.clone() else {
        return;
    };
    let now = st.now();
    let notification_id = uuid::Builder::from_random_bytes(st.rng.random())
        .into_uuid()
        .to_string();
    let subscription_id = uuid::Builder::from_random_bytes(st.rng.random())
        .into_uuid()
        .to_string();
    let body = json!({
        "notificationVersion": "1.0",
        "notificationType": NOTIFICATION_TYPE,
        "payloadVersion": "1.0",
        "eventTime": shipment["lastUpdatedDateTime"],
        "payload": {
            "externalFulfillmentShipmentNotification": {
                "merchantId": shipment["marketplaceAttributes"]["merchantId"],
                "locationId": shipment["locationId"],
                "channelName": shipment["marketplaceAttributes"]["channelName"],
                "shipmentId": shipment["id"],
                "shipmentStatus": shipment["status"],
            }
        },
        "notificationMetadata": {
            "applicationId": st.notify.application_id,
            "subscriptionId": subscription_id,
            "publishTime": fmt_time(now),
            "notificationId": notification_id,
        }
    })
    .to_string();
    let opts = st.notify.options.clone();
    for d in st.notify.destinations.clone() {
        let copies = if opts.duplicate_rate > 0.0 && st.rng.random::<f64>() < opts.duplicate_rate {
            2
        } else {
            1
        };
        for copy in 1..=copies {
            let delay = if opts.reorder && opts.reorder_window_ms > 0 {
                Duration::from_millis(st.rng.random_range(0..=opts.reorder_window_ms))
            } else {
                Duration::ZERO
            };
            let _ = tx.send(Job {
                destination: d.clone(),
                notification_id: notification_id.clone(),
                body: body.clone(),
                delay,
                copy,
            });
        }
    }
}
