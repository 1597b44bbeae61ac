//! The local runner plays Lambda's event plumbing from the template: schedules fire, SQS
//! batches are handed over and settled like the event source mapping (partial batch
//! failures, whole-batch errors, redrive to the DLQ), function URLs are served.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use flexbridge::runtime::{Function, Invocation};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge_e2e::flexbridge_local::registry::Handler;
use flexbridge_e2e::flexbridge_local::RunnerOptions;
use flexbridge_e2e::{eventually, TestOptions, TestStack};
use serde_json::{json, Value};

fn no_sim() -> TestOptions {
    TestOptions {
        simulator: false,
        ..Default::default()
    }
}

fn only(ids: &[&str]) -> Option<BTreeSet<String>> {
    Some(ids.iter().map(|s| s.to_string()).collect())
}

/// A consumer that fails every message whose body contains "fail" and records what it saw.
#[derive(Default)]
struct Scripted {
    /// body → ApproximateReceiveCount of each delivery
    seen: Mutex<BTreeMap<String, Vec<u32>>>,
    /// Fail whole batches (return an error) this many times first.
    batch_errors: Mutex<u32>,
    /// The bodies of each batch, in delivery order.
    batches: Mutex<Vec<Vec<String>>>,
}

#[async_trait]
impl Function for Scripted {
    async fn invoke(&self, payload: Value, _inv: Invocation) -> flexbridge::Result<Value> {
        let event: SqsEvent = serde_json::from_value(payload)?;
        let mut failures = Vec::new();
        self.batches.lock().unwrap().push(
            event
                .records
                .iter()
                .map(|r| r.body.clone().unwrap_or_default())
                .collect(),
        );
        for r in &event.records {
            assert!(r
                .event_source_arn
                .as_deref()
                .unwrap()
                .contains("OutboundQueue"));
            let body = r.body.clone().unwrap_or_default();
            let count = r.attributes["ApproximateReceiveCount"].parse().unwrap();
            self.seen
                .lock()
                .unwrap()
                .entry(body.clone())
                .or_default()
                .push(count);
            if body.contains("fail") {
                let mut f = aws_lambda_events::sqs::BatchItemFailure::default();
                f.item_identifier = r.message_id.clone().unwrap();
                failures.push(f);
            }
        }
        {
            let mut left = self.batch_errors.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(flexbridge::Error::Transient {
                    message: "scripted whole-batch failure".into(),
                    after: None,
                });
            }
        }
        let mut resp = SqsBatchResponse::default();
        resp.batch_item_failures = failures;
        Ok(serde_json::to_value(resp)?)
    }
}

async fn send(t: &TestStack, bodies: &[&str]) -> anyhow::Result<()> {
    for b in bodies {
        t.sqs
            .send_message()
            .queue_url(t.stack.queue_url("OutboundQueue"))
            .message_body(*b)
            .send()
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_schedule_fires_the_heartbeat_which_reaches_its_table() -> anyhow::Result<()> {
    let t = TestStack::start_with("schedule_fires", no_sim()).await?;
    // rate(5 minutes) at x600 fires every 0.5 s.
    let runner = t
        .runner(RunnerOptions {
            speedup: 600.0,
            only: only(&["HeartbeatFunction"]),
            ..Default::default()
        })
        .await?;
    let settings = DynamoSettingsStore::new(t.dynamodb.clone(), t.stack.table("SettingsTable"));
    let beats = eventually(Duration::from_secs(10), "two heartbeats", || async {
        let n = runner.function_stats("HeartbeatFunction").invocations;
        Ok((n >= 2).then_some(n))
    })
    .await?;
    let (beat, _) = settings
        .status(heartbeat::STATUS_NAME)
        .await?
        .expect("heartbeat recorded");
    assert!(beat["scheduledFor"].as_str().is_some(), "{beat}");
    assert_eq!(runner.function_stats("HeartbeatFunction").errors, 0);
    runner.stop().await;
    assert!(beats >= 2);
    Ok(())
}

#[tokio::test]
async fn a_partial_batch_failure_deletes_the_rest_and_a_poison_message_ends_in_the_dlq(
) -> anyhow::Result<()> {
    let t = TestStack::start_with("partial_batch", no_sim()).await?;
    let scripted = Arc::new(Scripted::default());
    let runner = t
        .runner_with(
            RunnerOptions {
                // OutboundQueue's 180 s visibility timeout passes in 0.3 s.
                speedup: 600.0,
                run_schedules: false,
                only: only(&["OutboundWebhookFunction"]),
                ..Default::default()
            },
            [(
                "OutboundWebhookFunction".to_string(),
                Handler::Function(scripted.clone()),
            )]
            .into(),
        )
        .await?;
    send(&t, &["ok-1", "please fail", "ok-2"]).await?;

    // After maxReceiveCount (MAX_RECEIVES) receives, the next moves the message to the DLQ.
    let dlq_url = t.stack.queue_url("OutboundDLQ").to_string();
    let in_dlq = eventually(
        Duration::from_secs(90),
        "the poison message in the DLQ",
        || async {
            let out = t
                .sqs
                .receive_message()
                .queue_url(&dlq_url)
                .wait_time_seconds(1)
                .send()
                .await?;
            Ok(out
                .messages()
                .first()
                .and_then(|m| m.body().map(str::to_string)))
        },
    )
    .await?;
    assert_eq!(in_dlq, "please fail");

    let seen = scripted.seen.lock().unwrap().clone();
    assert_eq!(
        seen["ok-1"],
        vec![1],
        "handled messages are deleted after one delivery"
    );
    assert_eq!(seen["ok-2"], vec![1]);
    assert_eq!(
        seen["please fail"],
        (1..=flexbridge::runtime::MAX_RECEIVES).collect::<Vec<_>>(),
        "the failed item came back after the visibility timeout"
    );
    assert_eq!(t.queue_depth("OutboundQueue").await?, 0);
    let stats = runner.function_stats("OutboundWebhookFunction");
    assert_eq!(
        (stats.messages_ok, stats.messages_failed),
        (2, u64::from(flexbridge::runtime::MAX_RECEIVES))
    );
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_whole_batch_error_deletes_nothing_and_the_batch_is_redelivered() -> anyhow::Result<()> {
    let t = TestStack::start_with("batch_error", no_sim()).await?;
    let scripted = Arc::new(Scripted::default());
    *scripted.batch_errors.lock().unwrap() = 1;
    send(&t, &["a", "b"]).await?;
    let runner = t
        .runner_with(
            RunnerOptions {
                speedup: 600.0,
                run_schedules: false,
                only: only(&["OutboundWebhookFunction"]),
                ..Default::default()
            },
            [(
                "OutboundWebhookFunction".to_string(),
                Handler::Function(scripted.clone()),
            )]
            .into(),
        )
        .await?;
    eventually(Duration::from_secs(15), "both messages handled", || async {
        let s = runner.function_stats("OutboundWebhookFunction");
        Ok((s.messages_ok == 2).then_some(()))
    })
    .await?;
    let seen = scripted.seen.lock().unwrap().clone();
    let failed_batch = scripted.batches.lock().unwrap()[0].clone();
    assert!(!failed_batch.is_empty());
    for body in &failed_batch {
        assert_eq!(
            seen[body],
            vec![1, 2],
            "{body} of the failed batch came back once: {seen:?}"
        );
    }
    assert_eq!(runner.function_stats("OutboundWebhookFunction").errors, 1);
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0);
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_function_url_function_is_served_on_a_local_port() -> anyhow::Result<()> {
    let t = TestStack::start_with("function_url", no_sim()).await?;
    let router = axum::Router::new().route("/v1/ping", axum::routing::get(|| async { "pong" }));
    let runner = t
        .runner_with(
            RunnerOptions {
                only: only(&["WarehouseApiFunction"]),
                ..Default::default()
            },
            [("WarehouseApiFunction".to_string(), Handler::Http(router))].into(),
        )
        .await?;
    let url = runner.function_url("WarehouseApiFunction").expect("served");
    let body = reqwest::get(format!("{url}/v1/ping")).await?.text().await?;
    assert_eq!(body, "pong");
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_function_gets_exactly_its_template_environment() -> anyhow::Result<()> {
    let t = TestStack::start("env_for").await?;
    let env = t.env_for("HeartbeatFunction")?;
    assert_eq!(
        env.optional("SETTINGS_TABLE"),
        Some(t.stack.table("SettingsTable"))
    );
    assert_eq!(env.optional("AWS_ENDPOINT_URL"), Some(t.endpoint()));
    assert_eq!(
        env.optional("SPAPI_ENDPOINT"),
        Some(t.sim().base_url.as_str())
    );
    // What Lambda itself sets, as in AWS.
    assert_eq!(
        env.optional("AWS_LAMBDA_FUNCTION_NAME"),
        Some(t.stack.function("HeartbeatFunction").unwrap().name.as_str())
    );
    assert_eq!(env.optional("STACK_NAME"), Some(t.stack.name.as_str()));
    // Not declared for the heartbeat in template.yaml, so not there.
    assert_eq!(env.optional("CATALOG_TABLE"), None);
    let err = env.require("CATALOG_TABLE").unwrap_err().to_string();
    assert!(err.contains("template.yaml"), "{err}");
    let v: Value = json!(env.vars().len());
    assert!(v.as_u64().unwrap() >= 6);
    Ok(())
}

#[tokio::test]
async fn every_function_starts_from_nothing_but_its_template_environment() -> anyhow::Result<()> {
    // Each constructor reads its settings through `Env`, which holds exactly the template's
    // variables: a function (or shared code it calls) needing a table, queue, bucket or secret
    // its template entry does not declare fails here.
    let t = TestStack::start("all_functions_start").await?;
    let runner = t
        .runner(RunnerOptions {
            run_schedules: false,
            poll_queues: false,
            ..Default::default()
        })
        .await?;
    assert!(
        runner.unregistered().is_empty(),
        "template functions without a registry entry: {:?}",
        runner.unregistered()
    );
    for id in flexbridge_e2e::flexbridge_local::registry::constructors().keys() {
        assert!(
            t.stack.function(id).is_some(),
            "registry.rs registers {id}, which template.yaml does not declare"
        );
    }
    runner.stop().await;
    Ok(())
}
