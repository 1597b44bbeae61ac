//! The built artifacts, not the source: each function's packaged `bootstrap` (what `sam build`
//! put in `.aws-sam/build/<LogicalId>/`, x86_64) is started as Lambda starts it, against a local
//! Lambda Runtime API (`flexbridge_local::lambda_api`), with its template environment pointed at
//! moto and the simulator through counting proxies, and answers one representative event.
//! Each function also must not connect to AWS or Amazon before its first request for work
//! (secrets and settings are loaded lazily).
//!
//! Needs `sam build --parameter-overrides Architecture=x86_64` first, so it is ignored in a plain
//! `cargo test`; `.ci/run` runs it right after the build:
//! `cargo test -p flexbridge-e2e --test packaged -- --ignored` (`FLEXBRIDGE_BUILD_DIR` overrides
//! `.aws-sam/build`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use flexbridge::orders::wiring::settings::POLL_PASS_SECONDS;
use flexbridge::shipment::Stage;
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::store::shipments::{DynamoShipmentStore, ShipmentStore};
use flexbridge::upload::ingest::PriceUpdate;
use flexbridge::warehouse::signing;
use flexbridge_e2e::flexbridge_local::lambda_api::{Bootstrap, CountingProxy, Outcome, RuntimeApi};
use flexbridge_e2e::flexbridge_local::paths;
use flexbridge_e2e::spapi_sim::AdminClient;
use flexbridge_e2e::TestStack;
use serde_json::{json, Value};

const LOC: &str = "SIMLOC-EAST-1";
const MARKETPLACE: &str = "ATVPDKIKX0DER";

fn build_dir() -> PathBuf {
    std::env::var_os("FLEXBRIDGE_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::repo_root().join(".aws-sam/build"))
}

/// One stack, the proxies, the Runtime API and a webhook receiver, shared by every function.
struct World {
    t: TestStack,
    aws: CountingProxy,
    amazon: CountingProxy,
    webhook_url: String,
    webhook_hits: std::sync::Arc<std::sync::Mutex<Vec<HashMap<String, String>>>>,
}

impl World {
    async fn start() -> Result<Self> {
        flexbridge_e2e::init_logging();
        let t = TestStack::start("packaged").await?;
        let aws = CountingProxy::start(t.endpoint()).await?;
        let amazon = CountingProxy::start(&t.sim().base_url).await?;
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = hits.clone();
        let receiver = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(
                        headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                    );
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let webhook_url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, receiver).await;
        });
        Ok(Self {
            t,
            aws,
            amazon,
            webhook_url,
            webhook_hits: hits,
        })
    }

    /// The template environment of `logical_id`, with AWS and Amazon behind the proxies.
    fn env(&self, logical_id: &str) -> Result<HashMap<String, String>> {
        let mut vars = self.t.env_for(logical_id)?.vars().clone();
        let sim = self.t.sim().base_url.clone();
        for v in vars.values_mut() {
            if *v == self.t.stack.endpoint {
                *v = self.aws.url();
            } else if v.starts_with(&sim) {
                *v = v.replacen(&sim, &self.amazon.url(), 1);
            }
        }
        if vars.contains_key("WEBHOOK_URL") {
            vars.insert("WEBHOOK_URL".into(), self.webhook_url.clone());
        }
        Ok(vars)
    }

    /// Starts the function's bootstrap, checks its init made no AWS or Amazon connection,
    /// hands it `event` and returns its answer.
    async fn run(&self, logical_id: &str, event: Value) -> Result<Value> {
        let bootstrap = build_dir().join(logical_id).join("bootstrap");
        ensure!(
            bootstrap.is_file(),
            "{} is missing: run `sam build --parameter-overrides Architecture=x86_64` first",
            bootstrap.display()
        );
        let spec = self
            .t
            .stack
            .function(logical_id)
            .ok_or_else(|| anyhow!("template.yaml has no {logical_id}"))?;
        // A Runtime API per process: a killed process's pending request for work dies with it.
        let api = RuntimeApi::start().await?;
        let (aws_before, amazon_before) = (self.aws.connections(), self.amazon.connections());
        let process = Bootstrap::spawn(
            &bootstrap,
            logical_id,
            &self.env(logical_id)?,
            spec.memory_mb,
            &api,
        )?;
        let result = async {
            api.wait_for_init(Duration::from_secs(20))
                .await
                .with_context(|| format!("{logical_id} init"))?;
            let first = api.first_next_at().expect("init seen");
            let during_init = (
                self.aws.connections_before(first) - aws_before,
                self.amazon.connections_before(first) - amazon_before,
            );
            ensure!(
                during_init == (0, 0),
                "{logical_id} connected to AWS {} and Amazon {} time(s) during init",
                during_init.0,
                during_init.1
            );
            match api.invoke(event, spec.timeout()).await? {
                Outcome::Response(v) => Ok(v),
                Outcome::Error(e) => bail!("{logical_id} answered with an error: {e}"),
            }
        }
        .await;
        let output = process.output();
        process.stop().await;
        result.with_context(|| format!("{logical_id} output:\n{output}"))
    }

    async fn queue_messages(&self, queue: &str) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        let url = self.t.stack.queue_url(queue).to_string();
        let out = self
            .t
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?;
        Ok(out.messages.unwrap_or_default())
    }

    fn sqs_event(&self, queue: &str, messages: &[aws_sdk_sqs::types::Message]) -> Value {
        let q = &self.t.stack.queues[queue];
        flexbridge_e2e::flexbridge_local::runner::sqs_event(messages, &q.arn, &self.t.stack.region)
    }

    /// An SQS event of hand-made message bodies.
    fn sqs_bodies(&self, queue: &str, bodies: &[String]) -> Value {
        let messages: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                aws_sdk_sqs::types::Message::builder()
                    .message_id(format!("m{i}"))
                    .receipt_handle(format!("r{i}"))
                    .body(b)
                    .build()
            })
            .collect();
        self.sqs_event(queue, &messages)
    }
}

fn no_batch_failures(logical_id: &str, answer: &Value) -> Result<()> {
    ensure!(
        answer["batchItemFailures"] == json!([]),
        "{logical_id} answered {answer}, expected a batch response without failures"
    );
    Ok(())
}

fn scheduled_event() -> Value {
    json!({"version": "0", "id": "0d5f5ab2-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
        "time": "2026-12-01T08:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/local"], "detail": {}})
}

/// A Function URL request (payload format 2.0), as Lambda delivers it.
fn function_url_event(method: &str, path: &str, headers: Value) -> Value {
    json!({"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws", "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7", "userAgent": "wms/1.0"},
            "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:08:00:00 +0000", "timeEpoch": 1_796_112_000_000u64},
        "isBase64Encoded": false})
}

#[tokio::test]
#[ignore = "needs `sam build` (x86_64) first; .ci/run runs it after the build"]
async fn every_packaged_function_starts_without_calls_and_answers_its_event() -> Result<()> {
    let w = World::start().await?;
    let admin = AdminClient::new(&w.t.sim().base_url);
    admin.create_location(LOC, MARKETPLACE, "FBA").await?;
    let catalog = DynamoCatalogStore::new(w.t.dynamodb.clone(), w.t.stack.table("CatalogTable"));
    catalog
        .put_items(&[CatalogItem {
            sku: "MUG-01".into(),
            asin: "B000000001".into(),
            title: Some("Mug".into()),
            product_type: Some("HOME".into()),
            enabled: true,
            safety_stock: None,
            max_quantity: None,
            updated_at: "2026-12-01T08:00:00.000Z".into(),
            source: "test".into(),
        }])
        .await?;
    let mut checked = Vec::new();

    // Heartbeat: the scheduled event writes its status item.
    let beat = w.run("HeartbeatFunction", scheduled_event()).await?;
    let settings = DynamoSettingsStore::new(w.t.dynamodb.clone(), w.t.stack.table("SettingsTable"));
    let (stored, _) = settings
        .status("heartbeat")
        .await?
        .ok_or_else(|| anyhow!("no heartbeat item in moto"))?;
    ensure!(stored["scheduledFor"] == "2026-12-01T08:00:00Z", "{stored}");
    ensure!(
        stored["requestId"] == beat["requestId"],
        "{stored} vs {beat}"
    );
    checked.push("HeartbeatFunction");

    // Warehouse API: a signed GET /v1/health through the Function URL event shape.
    let key = w.t.seller.warehouse_key.clone();
    let now = signing::now_unix();
    let mut headers = serde_json::Map::new();
    for (k, v) in signing::signed_headers(
        key.as_bytes(),
        now,
        &signing::Signed::new("GET", "/v1/health", b""),
    ) {
        headers.insert(k.to_ascii_lowercase(), json!(v));
    }
    let answer = w
        .run(
            "WarehouseApiFunction",
            function_url_event("GET", "/v1/health", Value::Object(headers)),
        )
        .await?;
    ensure!(answer["statusCode"] == 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap_or_default())?;
    ensure!(body["status"] == "ok", "{body}");
    checked.push("WarehouseApiFunction");

    // Outbound webhook: a bus event from OutboundQueue is delivered, signed, to WEBHOOK_URL.
    let event = json!({"version": "0", "id": "eb-1", "detail-type": "WebhookTest",
        "source": "flexbridge", "account": "123456789012", "time": "2026-12-01T08:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"eventId": "evt-packaged-1", "version": "1",
            "occurredAt": "2026-12-01T08:00:00Z", "message": "packaged"}});
    let answer = w
        .run(
            "OutboundWebhookFunction",
            w.sqs_bodies("OutboundQueue", &[event.to_string()]),
        )
        .await?;
    no_batch_failures("OutboundWebhookFunction", &answer)?;
    let hits = w.webhook_hits.lock().unwrap().clone();
    ensure!(
        hits.len() == 1 && hits[0].contains_key("x-flexbridge-signature"),
        "webhook got {hits:?}"
    );
    checked.push("OutboundWebhookFunction");

    // Upload ingest: a catalog file's S3 notification from UploadsQueue becomes a report.
    let bucket = w.t.stack.bucket("UploadsBucket").to_string();
    w.t.s3
        .put_object()
        .bucket(&bucket)
        .key("catalog/delta/packaged.csv")
        .body(ByteStream::from_static(
            b"sku,asin,title,product_type\nTEE-02,B000000002,Tee,SHIRT\n",
        ))
        .send()
        .await?;
    let messages: Vec<_> = w
        .queue_messages("UploadsQueue")
        .await?
        .into_iter()
        .filter(|m| !m.body().unwrap_or_default().contains("s3:TestEvent"))
        .collect();
    ensure!(!messages.is_empty(), "no S3 notification on UploadsQueue");
    let answer = w
        .run(
            "UploadIngestFunction",
            w.sqs_event("UploadsQueue", &messages),
        )
        .await?;
    no_batch_failures("UploadIngestFunction", &answer)?;
    let report =
        w.t.s3
            .get_object()
            .bucket(&bucket)
            .key("reports/catalog/delta/packaged.csv.summary.json")
            .send()
            .await
            .context("the upload's summary report")?;
    let summary: Value = serde_json::from_slice(&report.body.collect().await?.to_vec())?;
    ensure!(summary["accepted"] == 1, "{summary}");
    checked.push("UploadIngestFunction");

    // Price pusher: one price update reaches Amazon and Amazon's answer is stored.
    let update = PriceUpdate {
        upload: "prices/packaged.csv@v1".into(),
        key: "prices/packaged.csv".into(),
        version_id: "v1".into(),
        order: "2026-12-01T08:00:00.000Z|0|prices/packaged.csv@v1".into(),
        line: 2,
        sku: "MUG-01".into(),
        asin: "B000000001".into(),
        product_type: "HOME".into(),
        marketplace_id: MARKETPLACE.into(),
        currency: "USD".into(),
        price: 1299,
    };
    let answer = w
        .run(
            "PricePusherFunction",
            w.sqs_bodies("PriceUpdatesQueue", &[serde_json::to_string(&update)?]),
        )
        .await?;
    no_batch_failures("PricePusherFunction", &answer)?;
    let prices = catalog
        .get_prices(&[("MUG-01".into(), MARKETPLACE.into())])
        .await?;
    ensure!(
        prices.len() == 1 && prices[0].price == 1299 && !prices[0].status.is_empty(),
        "{prices:?}"
    );
    checked.push("PricePusherFunction");

    // Order poller: a new shipment at the simulator is stored, confirmed and handed over.
    let shipments =
        DynamoShipmentStore::new(w.t.dynamodb.clone(), w.t.stack.table("ShipmentsTable"));
    let created = admin
        .create_shipment(
            json!({"locationId": LOC, "lineItems": [{"sku": "MUG-01", "quantity": 1}]}),
        )
        .await?;
    let polled_id = created["id"].as_str().unwrap_or_default().to_string();
    // One pass per run (by default a run polls again every 15 s while it has time).
    settings
        .put(POLL_PASS_SECONDS, json!(0), None, "packaged-test")
        .await?;
    let report = w.run("OrderPollerFunction", scheduled_event()).await?;
    let stored = shipments.get(&polled_id).await?;
    ensure!(
        matches!(&stored, Some(s) if s.stage == Stage::HandedOver),
        "shipment {polled_id} after the poll: {stored:?}; report {report}"
    );
    checked.push("OrderPollerFunction");

    // Notification consumer: a status-change notification is a signal; the shipment is read
    // back from Amazon and handed over.
    let created = admin
        .create_shipment(
            json!({"locationId": LOC, "lineItems": [{"sku": "MUG-01", "quantity": 2}]}),
        )
        .await?;
    let notified_id = created["id"].as_str().unwrap_or_default().to_string();
    let envelope = json!({"notificationVersion": "1.0",
        "notificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
        "payload": {"externalFulfillmentShipmentNotification":
            {"shipmentId": notified_id, "shipmentStatus": "ACCEPTED"}},
        "notificationMetadata": {"notificationId": format!("packaged-{notified_id}"),
            "applicationId": flexbridge_e2e::spapi_sim::DEFAULT_APPLICATION_ID}});
    let answer = w
        .run(
            "NotificationConsumerFunction",
            w.sqs_bodies("NotificationsQueue", &[envelope.to_string()]),
        )
        .await?;
    no_batch_failures("NotificationConsumerFunction", &answer)?;
    let stored = shipments.get(&notified_id).await?;
    ensure!(
        matches!(&stored, Some(s) if s.stage == Stage::HandedOver),
        "shipment {notified_id} after the notification: {stored:?}"
    );
    checked.push("NotificationConsumerFunction");

    // Returns poller: the scheduled run reads every return location and reports.
    let report = w.run("ReturnsPollerFunction", scheduled_event()).await?;
    ensure!(report.is_object(), "returns poller answered {report}");
    checked.push("ReturnsPollerFunction");

    // Inventory pusher: the scheduled sweep (nothing pending) reads its settings and locations
    // and reports; no failure.
    let report = w.run("InventoryPusherFunction", scheduled_event()).await?;
    ensure!(report.is_object(), "inventory pusher answered {report}");
    checked.push("InventoryPusherFunction");

    // Label worker: a job for a packing the shipment never had is stale; the right answer is
    // to drop it (no Amazon call, no failure).
    let calls_before = admin.calls(None).await?.len();
    let job = json!({"shipmentId": notified_id, "packVersion": 7});
    let answer = w
        .run(
            "LabelWorkerFunction",
            w.sqs_bodies("LabelsQueue", &[job.to_string()]),
        )
        .await?;
    no_batch_failures("LabelWorkerFunction", &answer)?;
    checked.push("LabelWorkerFunction");

    // Cancellation worker: a cancellation the shipment does not carry is skipped, never sent.
    let job = json!({"shipmentId": notified_id, "referenceId": "not-requested"});
    let answer = w
        .run(
            "CancellationWorkerFunction",
            w.sqs_bodies("CancellationsQueue", &[job.to_string()]),
        )
        .await?;
    no_batch_failures("CancellationWorkerFunction", &answer)?;
    let amazon_calls = admin.calls(None).await?;
    ensure!(
        amazon_calls.len() == calls_before,
        "stale label and cancellation jobs reached Amazon: {:?}",
        &amazon_calls[calls_before..]
    );
    let stored = shipments.get(&notified_id).await?;
    ensure!(
        matches!(&stored, Some(s) if s.stage == Stage::HandedOver),
        "shipment {notified_id} after the stale jobs: {stored:?}"
    );
    checked.push("CancellationWorkerFunction");

    // Health report: the schedule's event reports yesterday; the page is in the bucket.
    let written = w.run("HealthReportFunction", scheduled_event()).await?;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let key = written["reportKey"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        key == format!("reports/health/{yesterday}.html"),
        "health report answered {written}"
    );
    let page =
        w.t.s3
            .get_object()
            .bucket(w.t.stack.bucket("UploadsBucket"))
            .key(&key)
            .send()
            .await?;
    ensure!(
        page.content_type() == Some("text/html; charset=utf-8"),
        "{key}: {:?}",
        page.content_type()
    );
    let html = String::from_utf8(page.body.collect().await?.into_bytes().to_vec())?;
    ensure!(
        html.contains("What Amazon judges you by"),
        "{key} is not the health page"
    );
    checked.push("HealthReportFunction");

    // Every function the template declares has been run from its package.
    let declared: Vec<&str> = w.t.stack.functions.keys().map(String::as_str).collect();
    let missing: Vec<&&str> = declared.iter().filter(|f| !checked.contains(f)).collect();
    ensure!(
        missing.is_empty(),
        "packaged functions without a representative event here: {missing:?}"
    );
    Ok(())
}
