//! Delivers flexbridge events to the warehouse webhook.
//!
//! Consumes `OutboundQueue`, which the `EventBus` rule fills: each SQS message body is an
//! EventBridge event (`detail-type` = event name, `detail` = the versioned envelope). Each is
//! POSTed to `WEBHOOK_URL` as `{"event": "<name>", ...detail}`, signed `v2` like inbound requests
//! (`flexbridge::warehouse::signing`, key: the webhook key of `FLEXBRIDGE_SECRET_ARN`; the event ID is sent and
//! signed as the `Idempotency-Key`), with `X-Flexbridge-Event` and `X-Flexbridge-Event-Id`
//! headers. During a key rotation every delivery carries two signatures, the current key's and
//! the previous one's (`flexbridge::warehouse::keys`); a 401/403 re-reads the key (rate-limited)
//! and, if it changed, sends once more at once. Receivers drop duplicates by event ID: delivery is at
//! least once.
//!
//! Outcomes per message (settled by `flexbridge::runtime::handle_sqs_batch`):
//! - 2xx: delivered.
//! - no `WEBHOOK_URL` configured: acknowledged. Nothing is lost: the bus's `EventArchive` keeps
//!   every flexbridge event for `EventArchiveRetentionDays`, and docs/events.md's replay command
//!   sends them through this function once a webhook is set.
//! - a body that is not a flexbridge event, or a webhook refusing the event itself (400, 409,
//!   413, 422, ...): moved to `OutboundDLQ` at once with the reason attached.
//! - 401, 403, 404, 405, 410, a redirect, an unusable webhook secret: the webhook or our key is
//!   misconfigured, not the event: kept for a retry and alarmed (environment failure).
//! - 5xx, 408, 429, timeout, connection error: a batch item failure; SQS redelivers after the
//!   visibility timeout and, after the queue's `maxReceiveCount`, parks it in `OutboundDLQ`.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use flexbridge::config::keys;
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::secrets::{SecretCache, SecretString};
use flexbridge::warehouse::keys::{KeyRole, SigningKeys};
use flexbridge::warehouse::signing;
use flexbridge::{Env, Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

pub const EVENT_HEADER: &str = "x-flexbridge-event";
pub const EVENT_ID_HEADER: &str = "x-flexbridge-event-id";
/// Every delivery's body is JSON; the content type is signed (`v2`).
pub const CONTENT_TYPE: &str = "application/json";
/// Longest we wait for the webhook to answer one delivery.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const CONCURRENCY: usize = 5;

/// Where and how to deliver.
#[derive(Clone)]
pub struct Webhook {
    pub url: url::Url,
    pub secrets: SecretCache,
    pub secret_arn: String,
}

pub struct OutboundWebhook {
    webhook: Option<Webhook>,
    http: reqwest::Client,
    consumer: SqsConsumer,
}

/// The part of the EventBridge event we read.
#[derive(Debug, Deserialize)]
struct BusEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    detail: Map<String, Value>,
}

/// One delivery's request, before it is signed.
struct Post<'a> {
    url: &'a url::Url,
    path_and_query: &'a str,
    event_name: &'a str,
    event_id: &'a str,
    body: &'a str,
}

enum PostError {
    /// The invocation has no time left to wait for an answer.
    NoTime,
    Http(reqwest::Error),
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered {
        status: u16,
    },
    NoWebhook,
    /// The event cannot be delivered as it is (it goes to the DLQ with the reason).
    Dropped {
        reason: String,
    },
    /// The webhook URL or key is wrong: not the event's fault (retried and alarmed).
    Misconfigured {
        reason: String,
    },
    /// Try again later (the message becomes a batch item failure).
    Retry {
        reason: String,
    },
}

impl OutboundWebhook {
    pub async fn from_env(env: &Env) -> Result<Self> {
        let webhook = match env.optional(keys::WEBHOOK_URL) {
            None => None,
            Some(raw) => {
                let url = flexbridge::events::webhook_url(raw)?;
                let sdk = flexbridge::aws::config(env).await;
                Some(Webhook {
                    url,
                    secrets: SecretCache::from_sdk_config(&sdk),
                    secret_arn: env.require(keys::FLEXBRIDGE_SECRET_ARN)?.to_string(),
                })
            }
        };
        Ok(Self::new(webhook, SqsConsumer::from_env(env).await?))
    }

    pub fn new(webhook: Option<Webhook>, consumer: SqsConsumer) -> Self {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A redirect would turn the POST into a GET; the configured URL must answer itself.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("flexbridge-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static reqwest configuration");
        Self {
            webhook,
            http,
            consumer,
        }
    }

    /// Delivers one SQS message.
    pub async fn deliver(&self, message: &SqsMessage, invocation: &Invocation) -> Delivery {
        let Some(webhook) = &self.webhook else {
            return Delivery::NoWebhook;
        };
        let raw = message.body.as_deref().unwrap_or_default();
        let event: BusEvent = match serde_json::from_str(raw) {
            Ok(e) => e,
            Err(e) => {
                return Delivery::Dropped {
                    reason: format!("message is not an EventBridge event: {e}"),
                }
            }
        };
        if event.source != flexbridge::events::SOURCE {
            return Delivery::Dropped {
                reason: format!("event source {:?} is not flexbridge", event.source),
            };
        }
        let event_id = event
            .detail
            .get("eventId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut body = Map::new();
        body.insert("event".into(), Value::from(event.detail_type.clone()));
        body.extend(event.detail);
        let body = Value::Object(body).to_string();

        let keys = SigningKeys::new(
            webhook.secrets.clone(),
            &webhook.secret_arn,
            KeyRole::Webhook,
        );
        let current = match keys.keys().await {
            Ok(k) => k,
            Err(e) => {
                let reason = format!("webhook secret unavailable: {e}");
                return match e.kind() {
                    flexbridge::error::FailureKind::Transient => Delivery::Retry { reason },
                    _ => Delivery::Misconfigured { reason },
                };
            }
        };
        let path_and_query = match webhook.url.query() {
            Some(q) => format!("{}?{q}", webhook.url.path()),
            None => webhook.url.path().to_string(),
        };
        let post = Post {
            url: &webhook.url,
            path_and_query: &path_and_query,
            event_name: &event.detail_type,
            event_id: &event_id,
            body: &body,
        };
        let mut sent = self.post(&post, &current, invocation).await;
        // Refused as wrongly signed: the receiver may have switched to a key put after our
        // cache was filled. Read the secret again (at most once per interval) and, if it
        // changed, send once more now rather than after the visibility timeout.
        if matches!(&sent, Ok(r) if matches!(r.status().as_u16(), 401 | 403)) {
            match keys.reread(&current).await {
                Ok(Some(fresh)) => {
                    tracing::info!(
                        event_id,
                        "webhook refused the signature; sending again with the re-read key"
                    );
                    sent = self.post(&post, &fresh, invocation).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not re-read the webhook key"),
            }
        }
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200..=299 => Delivery::Delivered { status },
                    408 | 429 | 500..=599 => Delivery::Retry {
                        reason: format!("webhook answered {status}"),
                    },
                    // Wrong key, moved or missing endpoint: the configuration, not the event.
                    300..=399 | 401 | 403 | 404 | 405 | 410 => Delivery::Misconfigured {
                        reason: format!(
                            "webhook answered {status}; check WebhookUrl and the webhook secret"
                        ),
                    },
                    _ => Delivery::Dropped {
                        reason: format!("webhook refused the event with {status}"),
                    },
                }
            }
            Err(PostError::NoTime) => Delivery::Retry {
                reason: "no time left in this invocation".into(),
            },
            Err(PostError::Http(e)) => Delivery::Retry {
                reason: if e.is_timeout() {
                    format!(
                        "webhook did not answer in time (at most {}s)",
                        DELIVERY_TIMEOUT.as_secs()
                    )
                } else {
                    // without_url: the URL may carry a token in its query.
                    format!("webhook unreachable: {}", e.without_url())
                },
            },
        }
    }

    /// POSTs one event signed with `keys` (the current one first; both during a rotation).
    async fn post(
        &self,
        post: &Post<'_>,
        keys: &[SecretString],
        invocation: &Invocation,
    ) -> std::result::Result<reqwest::Response, PostError> {
        // v2, like inbound requests: the event ID travels as the Idempotency-Key, so the key a
        // receiver deduplicates by is signed along with the body.
        let signed = signing::Signed::new("POST", post.path_and_query, post.body.as_bytes())
            .content_type(CONTENT_TYPE)
            .idempotency_key(post.event_id);
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.expose().as_bytes()).collect();
        let headers = signing::signed_headers_all(&keys, signing::now_unix(), &signed);
        // Never wait past the invocation: an unanswered delivery is retried, not lost.
        let timeout = DELIVERY_TIMEOUT.min(
            invocation
                .remaining()
                .saturating_sub(Duration::from_secs(1)),
        );
        if timeout.is_zero() {
            return Err(PostError::NoTime);
        }
        let mut req = self
            .http
            .post(post.url.clone())
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(signing::IDEMPOTENCY_KEY_HEADER, post.event_id)
            .header(EVENT_HEADER, post.event_name)
            .header(EVENT_ID_HEADER, post.event_id);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req.body(post.body.to_string())
            .send()
            .await
            .map_err(PostError::Http)
    }

    /// Handles one SQS batch; only messages to try again are reported as failures.
    pub async fn handle(&self, batch: SqsEvent, invocation: &Invocation) -> SqsBatchResponse {
        handle_sqs_batch(
            &self.consumer,
            batch,
            "webhook event",
            CONCURRENCY,
            |m| async move {
                let message_id = m.message_id.as_deref().unwrap_or_default();
                match self.deliver(&m, invocation).await {
                    Delivery::Delivered { status } => {
                        tracing::info!(message_id, status, "event delivered to webhook");
                        Ok(())
                    }
                    Delivery::NoWebhook => {
                        tracing::debug!(
                            message_id,
                            "no WEBHOOK_URL configured; the event is kept in the bus's archive"
                        );
                        Ok(())
                    }
                    Delivery::Dropped { reason } => Err(Error::InvalidInput(reason)),
                    Delivery::Misconfigured { reason } => Err(Error::Config(reason)),
                    Delivery::Retry { reason } => Err(Error::Transient {
                        message: reason,
                        after: None,
                    }),
                }
            },
        )
        .await
    }
}

#[async_trait]
impl Function for OutboundWebhook {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value> {
        let batch: SqsEvent = serde_json::from_value(payload)?;
        let response = self.handle(batch, &invocation).await;
        serde_json::to_value(response).map_err(|e| Error::Internal(e.to_string()))
    }
}
