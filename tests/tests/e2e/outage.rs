//! Long outages, on the runner's sped-up clock: a warehouse webhook down for 6 hours loses no
//! event and dead-letters none (consumers put failed messages off by receive count), and
//! Amazon down for 6 hours with shipments piling up: the order poller reads the backlog in
//! bounded windows, its cursor moving on every run, and stores and confirms every shipment
//! exactly once. The full-size backlog (3,000 shipments at Amazon's real rate limits) is the
//! `outage_drain` benchmark (`infra/bench`, BENCHMARKS.md "Outage drain").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flexbridge::events::{EventName, OutboundEvent, WebhookTest};
use flexbridge::runtime::{retry_horizon, MAX_RECEIVES};
use flexbridge_e2e::flexbridge_local::RunnerOptions;
use flexbridge_e2e::{eventually, TestOptions, TestStack};
use serde_json::json;

/// A webhook receiver that answers 503 while `down`, and records each event ID it took.
#[derive(Clone, Default)]
struct Receiver {
    down: Arc<AtomicBool>,
    /// event ID → attempts (while down and after).
    attempts: Arc<Mutex<BTreeMap<String, u32>>>,
    delivered: Arc<Mutex<BTreeSet<String>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("x-flexbridge-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    *r.attempts.lock().unwrap().entry(id.clone()).or_default() += 1;
    if r.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.delivered.lock().unwrap().insert(id);
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/hook"))
}

/// 6 hours of webhook outage pass in 30 s: before the retry backoff, the 5th receive (after
/// 5 × OutboundQueue's 180 s) dead-lettered every event of the outage.
#[tokio::test]
async fn a_six_hour_webhook_outage_ends_with_every_event_delivered_and_no_dead_letter() -> Result<()>
{
    flexbridge_e2e::init_logging();
    const SPEEDUP: f64 = 720.0;
    const OUTAGE: Duration = Duration::from_secs(6 * 3600);
    assert!(retry_horizon() > OUTAGE, "{:?}", retry_horizon());
    let mut t = TestStack::start_with(
        "webhook_outage",
        TestOptions {
            simulator: false,
            ..Default::default()
        },
    )
    .await?;
    let (receiver, url) = start_receiver().await;
    receiver.down.store(true, Ordering::SeqCst);
    t.set_override("WEBHOOK_URL", url);
    let runner = t
        .runner(RunnerOptions {
            speedup: SPEEDUP,
            run_schedules: false,
            serve_urls: false,
            only: Some(["OutboundWebhookFunction".to_string()].into()),
            ..Default::default()
        })
        .await?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let event = OutboundEvent::new(
            EventName::WebhookTest,
            &format!("outage-{i}"),
            chrono::Utc::now(),
            WebhookTest {
                message: format!("event {i} of the outage"),
            },
        )?;
        ids.push(event.event_id.clone());
        let body = json!({
            "version": "0", "id": format!("eb-{i}"), "detail-type": event.name.as_str(),
            "source": "flexbridge", "account": "123456789012", "time": "2026-11-21T08:00:00Z",
            "region": "us-east-1", "resources": [], "detail": event.detail(),
        });
        t.sqs
            .send_message()
            .queue_url(t.stack.queue_url("OutboundQueue"))
            .message_body(body.to_string())
            .send()
            .await?;
    }
    let started = Instant::now();
    tokio::time::sleep(OUTAGE.div_f64(SPEEDUP)).await;
    receiver.down.store(false, Ordering::SeqCst);
    let attempts_in_outage = receiver.attempts.lock().unwrap().clone();
    eventually(
        Duration::from_secs(60),
        "every event delivered after the outage",
        || async {
            let got = receiver.delivered.lock().unwrap().clone();
            Ok(ids.iter().all(|id| got.contains(id)).then_some(()))
        },
    )
    .await?;
    let recovered_after = started.elapsed().mul_f64(SPEEDUP);
    // Tried through the outage, but spaced out: a handful of receives, not one per 180 s.
    for id in &ids {
        let n = attempts_in_outage.get(id).copied().unwrap_or(0);
        assert!(
            (4..MAX_RECEIVES).contains(&n),
            "{id}: {n} attempts in 6 hours ({attempts_in_outage:?})"
        );
    }
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0, "no dead letter");
    eventually(Duration::from_secs(10), "OutboundQueue empty", || async {
        Ok((t.queue_depth("OutboundQueue").await? == 0).then_some(()))
    })
    .await?;
    let stats = runner.function_stats("OutboundWebhookFunction");
    assert_eq!(stats.messages_ok, ids.len() as u64, "{stats:?}");
    tracing::info!(
        "webhook outage: delivered {:.1} simulated hours after it began",
        recovered_after.as_secs_f64() / 3600.0
    );
    runner.stop().await;
    Ok(())
}

/// Amazon down for 6 hours while orders keep coming, then back at its real rate limits. A
/// small backlog with a small page budget (one page per location and status per run, windows
/// of at most 2 hours), so that it still takes several runs: each run moves the cursor, and
/// every shipment is stored, handed over and confirmed exactly once. The full size (3,000
/// shipments, the poller's own settings) is `cargo run -p flexbridge-bench --bin outage_drain`.
#[tokio::test]
async fn after_a_six_hour_amazon_outage_the_poller_drains_the_backlog_moving_its_cursor_every_run(
) -> Result<()> {
    use flexbridge_bench::outage::{self, Options};
    flexbridge_e2e::init_logging();
    let report = outage::run(Options {
        shipments: 18,
        outage: Duration::from_secs(6 * 3600),
        max_window: Some(Duration::from_secs(2 * 3600)),
        max_pages: Some(1),
        max_runs: 20,
        ..Default::default()
    })
    .await?;
    println!("{}", report.last_line());
    assert_eq!(report.failed_runs_in_outage, 1, "{report:?}");
    assert_eq!(report.missed, 0, "{report:?}");
    assert_eq!(report.duplicate_confirms, 0, "{report:?}");
    assert_eq!(
        report.runs_without_progress, 0,
        "the cursor moved on every run: {report:?}"
    );
    assert!(
        report.runs >= 3,
        "6 hours in windows of 2, one page a run: {report:?}"
    );
    Ok(())
}
