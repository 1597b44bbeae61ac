//! The foundation scenario: resources from the template, schedules firing (heartbeat), and an
//! event travelling bus → rule → outbound queue → webhook (signed) to a local receiver that
//! stands in for the seller's warehouse.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use flexbridge::events::{EventBridgeSink, EventName, EventSink, OutboundEvent, WebhookTest};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::warehouse::signing;

use super::{Ctx, Progress, Scenario, Summary, SummaryLine};
use crate::runner::Runner;

/// One delivery the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub body: String,
    /// Whether the signature verified with the seeded webhook key.
    pub signed_ok: bool,
}

/// A local HTTP endpoint recording what flexbridge's webhook sends (`WEBHOOK_URL`).
pub struct WebhookReceiver {
    pub url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl WebhookReceiver {
    /// Starts on 127.0.0.1:0; every POST is recorded and answered 200.
    pub async fn start(webhook_key: &str) -> Result<WebhookReceiver> {
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let key = webhook_key.as_bytes().to_vec();
        let store = deliveries.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            let key = key.clone();
            async move {
                let path = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                let mut signed = signing::Signed::new("POST", &path, &body);
                signed.content_type = h("content-type");
                signed.idempotency_key = h(signing::IDEMPOTENCY_KEY_HEADER);
                let signed_ok = signing::verify(
                    &key,
                    h(signing::TIMESTAMP_HEADER),
                    h(signing::SIGNATURE_HEADER),
                    &signed,
                    signing::now_unix(),
                    false,
                )
                .is_ok();
                store.lock().expect("deliveries").push(Delivery {
                    path,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    signed_ok,
                });
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/webhook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookReceiver { url, deliveries })
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("deliveries").clone()
    }
}

/// What the signed-request checks against the warehouse API gave.
#[derive(Debug, Clone, Default)]
struct ApiChecks {
    accepted: Vec<String>,
    refused: Vec<String>,
    /// Answers that were not what a correct API gives.
    wrong: Vec<String>,
}

#[derive(Default)]
pub struct Foundation {
    checks: Mutex<Option<ApiChecks>>,
}

const TEST_MESSAGE: &str = "flexbridge local run: the event bus reaches your webhook";

impl Foundation {
    fn delivery_registered(runner: &Runner) -> bool {
        runner.stack().function("OutboundWebhookFunction").is_some()
            && !runner
                .unregistered()
                .iter()
                .any(|f| f == "OutboundWebhookFunction")
    }

    /// Sends the warehouse API one correctly signed request (a test event, which then travels
    /// bus → outbound queue → webhook) and three it must refuse; without the API running,
    /// publishes the test event on the bus directly.
    async fn check_api(&self, ctx: &Ctx, runner: &Runner) -> Result<ApiChecks> {
        let mut checks = ApiChecks::default();
        let Some(url) = runner.function_url("WarehouseApiFunction") else {
            let sink = EventBridgeSink::new(
                flexbridge::aws::eventbridge_client(&ctx.sdk),
                ctx.stack.event_bus("EventBus"),
            );
            let event = OutboundEvent::new(
                EventName::WebhookTest,
                &format!("local-run#{}", ctx.stack.name),
                chrono::Utc::now(),
                WebhookTest {
                    message: TEST_MESSAGE.into(),
                },
            )?;
            sink.publish(&[event]).await?;
            return Ok(checks);
        };
        let http = reqwest::Client::new();
        let key = ctx.seller.warehouse_key.as_bytes();
        let path = "/v1/events/test";
        let body = serde_json::json!({ "message": TEST_MESSAGE }).to_string();
        let now = signing::now_unix();
        let cases: [(&str, i64, &[u8], bool); 4] = [
            ("signed test event", now, key, true),
            ("wrong key", now, b"not-the-warehouse-key", false),
            ("timestamp 10 minutes old", now - 600, key, false),
            ("no signature", now, b"", false),
        ];
        for (what, ts, secret, should_pass) in cases {
            let idempotency_key =
                format!("local-run-{}-{}", ctx.stack.name, what.replace(' ', "-"));
            let mut req = http
                .post(format!("{url}{path}"))
                .header("content-type", "application/json")
                .header(signing::IDEMPOTENCY_KEY_HEADER, &idempotency_key)
                .body(body.clone());
            if !secret.is_empty() {
                let signed = signing::Signed::new("POST", path, body.as_bytes())
                    .content_type("application/json")
                    .idempotency_key(&idempotency_key);
                for (h, v) in signing::signed_headers(secret, ts, &signed) {
                    req = req.header(h, v);
                }
            }
            let status = req.send().await?.status();
            let line = format!("{what}: HTTP {}", status.as_u16());
            match (should_pass, status.is_success(), status.is_client_error()) {
                (true, true, _) => checks.accepted.push(line),
                (false, _, true) => checks.refused.push(line),
                _ => checks.wrong.push(line),
            }
        }
        Ok(checks)
    }
}

#[async_trait]
impl Scenario for Foundation {
    fn name(&self) -> &'static str {
        "foundation"
    }

    async fn seed(&self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }

    async fn progress(&self, ctx: &Ctx, runner: &Runner) -> Result<Progress> {
        if self.checks.lock().expect("checks").is_none() {
            let checks = self.check_api(ctx, runner).await?;
            *self.checks.lock().expect("checks") = Some(checks);
        }
        let beats = runner.function_stats("HeartbeatFunction").invocations;
        let delivered = ctx
            .webhook
            .deliveries()
            .iter()
            .filter(|d| d.body.contains(TEST_MESSAGE))
            .count();
        let delivery_done = delivered > 0 || !Self::delivery_registered(runner);
        Ok(Progress {
            line: format!("heartbeats {beats}, test event at the webhook {delivered}"),
            done: beats > 0 && delivery_done,
        })
    }

    async fn summary(&self, ctx: &Ctx, runner: &Runner) -> Result<Summary> {
        let mut s = Summary::default();
        let st = &ctx.stack;
        s.lines.push(SummaryLine::new(
            "Resources created from template.yaml",
            format!(
                "{} tables, {} queues, {} bucket, {} event bus, {} secrets, {} functions",
                st.tables.len(),
                st.queues.len(),
                st.buckets.len(),
                st.event_buses.len(),
                st.secrets.len(),
                st.functions.len(),
            ),
        ));
        let settings = DynamoSettingsStore::new(
            flexbridge::aws::dynamodb_client(&ctx.sdk),
            st.table("SettingsTable"),
        );
        let beat = settings.status(heartbeat::STATUS_NAME).await?;
        s.lines.push(SummaryLine::new(
            "Heartbeat (schedule)",
            match beat {
                Some((_, at)) => format!(
                    "fired {} times, last recorded {at}",
                    runner.function_stats("HeartbeatFunction").invocations
                ),
                None => "never recorded".into(),
            },
        ));
        let checks = self
            .checks
            .lock()
            .expect("checks")
            .clone()
            .unwrap_or_default();
        if runner.function_url("WarehouseApiFunction").is_some() {
            s.lines.push(SummaryLine::new(
                "Signed warehouse requests",
                format!(
                    "{} accepted, {} refused as they should be ({})",
                    checks.accepted.len(),
                    checks.refused.len(),
                    checks.refused.join("; ")
                ),
            ));
        }
        for w in &checks.wrong {
            s.errors
                .push(format!("warehouse API answered wrongly: {w}"));
        }
        let deliveries = ctx.webhook.deliveries();
        let signed = deliveries.iter().filter(|d| d.signed_ok).count();
        s.lines.push(SummaryLine::new(
            "Events to the warehouse webhook",
            if Self::delivery_registered(runner) {
                format!(
                    "{} delivered ({} with a valid signature)",
                    deliveries.len(),
                    signed
                )
            } else {
                "on the bus; OutboundWebhookFunction is not registered, so they wait in the outbound queue"
                    .to_string()
            },
        ));
        if deliveries.len() > signed {
            s.errors.push(format!(
                "{} webhook deliveries had a bad signature (check the webhook key, `flexbridge secret show-key webhook`)",
                deliveries.len() - signed
            ));
        }
        if !runner.unregistered().is_empty() {
            s.errors.push(format!(
                "not run locally (no entry in infra/local/src/registry.rs): {}",
                runner.unregistered().join(", ")
            ));
        }
        Ok(s)
    }
}
