//! The local runner: Lambda's event plumbing for the functions of one [`Stack`], driven by
//! the template (moto stores schedules and event source mappings but never fires them).
//!
//! - Schedule events: the function is invoked with an EventBridge "Scheduled Event" at the
//!   times its `rate(...)`/`cron(...)` names, on a clock that runs `speedup` times faster.
//! - SQS events: the queue is polled and batches are handed over exactly like the SQS event
//!   source mapping does it: up to `BatchSize` records with `messageId`, `receiptHandle`,
//!   `body`, `attributes` (incl. `ApproximateReceiveCount`), `messageAttributes` and
//!   `eventSourceARN`; on success the batch is deleted, except the `batchItemFailures` a
//!   function with `ReportBatchItemFailures` names; on error nothing is deleted. What is
//!   not deleted reappears after the queue's visibility timeout (divided by `speedup`, but
//!   after a failed run not before the function's timeout: its claims are held until then), or
//!   after the delay our functions set themselves on the items they report (ChangeMessageVisibility
//!   by receive count, divided by `speedup` through `LOCAL_CLOCK_SPEEDUP`), and moto's redrive
//!   policy moves it to the DLQ after `maxReceiveCount` receives.
//! - Function URLs: the function's axum router is served on a local port.
//! - An invocation that runs past its template timeout is stopped where it is (as Lambda
//!   stops it), not left running. `RunnerOptions::chaos` adds seeded platform faults: kills at a
//!   random point of an invocation, and handled messages delivered again.
//!
//! Simplifications: at most `sqs_instances` batches at a time per event source (Lambda may
//! run more, up to the source's `MaximumConcurrency`), batches
//! of at most 10 records (one ReceiveMessage; `MaximumBatchingWindowInSeconds` is ignored),
//! and moto's own event source mappings are disabled by the provisioner so only the runner
//! receives from the queues.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use flexbridge::runtime::{Function, Invocation};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry::{self, Handler};
use crate::schedule::Schedule;
use crate::stack::{FunctionEvent, FunctionSpec, Overrides, Queue, Stack};

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// How much faster than real time schedules run and visibility timeouts pass
    /// (1.0 = as in AWS; 600.0 = `rate(5 minutes)` every 0.5 s).
    pub speedup: f64,
    pub run_schedules: bool,
    /// Fire every schedule once right away (the demo does not wait for the first period).
    pub fire_schedules_at_start: bool,
    pub poll_queues: bool,
    pub serve_urls: bool,
    /// SQS long-poll wait, in whole seconds (at least 1: a message that arrives ends the wait
    /// at once, and `stop` ends it too, while a short poll would spin on an empty queue).
    pub receive_wait: Duration,
    /// Batches of one SQS source handled at once (each its own invocation), at most the
    /// source's `ScalingConfig.MaximumConcurrency`; Lambda scales further, this machine not.
    pub sqs_instances: usize,
    /// Run only these functions (logical IDs); `None` = every registered one.
    pub only: Option<BTreeSet<String>>,
    /// Faults the runner injects itself (chaos runs); `None` = none.
    pub chaos: Option<Chaos>,
    /// Function timeouts run on the sped-up clock too: `Timeout / speedup`, never below
    /// [`MIN_SCALED_TIMEOUT`] (a batch needs real seconds) nor above the template's. A run
    /// killed part-way then holds its claims, and so its message, for scaled time, not for the
    /// upload function's real 300 s (chaos runs).
    pub scale_timeouts: bool,
    /// Environment variables set for one function only (the cost benchmark gives each its own
    /// counting proxy as `AWS_ENDPOINT_URL`), by logical ID.
    pub function_env: BTreeMap<String, BTreeMap<String, String>>,
}

/// The shortest timeout [`RunnerOptions::scale_timeouts`] gives a function.
pub const MIN_SCALED_TIMEOUT: Duration = Duration::from_secs(30);

impl RunnerOptions {
    /// The timeout `spec`'s invocations get from this runner.
    pub fn timeout_of(&self, spec: &FunctionSpec) -> Duration {
        let template = spec.timeout();
        if !self.scale_timeouts || self.speedup <= 1.0 {
            return template;
        }
        template
            .div_f64(self.speedup)
            .max(MIN_SCALED_TIMEOUT)
            .min(template)
    }
}

/// Faults of the Lambda platform, drawn from a seeded generator: an invocation killed at a
/// random point (as a crash or timeout would: the task is dropped at whatever await it reached,
/// and the batch is retried), and handled SQS messages delivered again (SQS is at-least-once).
#[derive(Debug, Clone)]
pub struct Chaos {
    pub seed: u64,
    /// Share of invocations killed.
    pub kill_rate: f64,
    /// A killed invocation runs a random time up to this before it is killed.
    pub max_kill_after: Duration,
    /// Share of handled SQS messages left on the queue to be delivered again.
    pub redeliver_rate: f64,
}

/// The counters and generator of a [`Chaos`] configuration, shared by every event source.
#[derive(Debug)]
struct ChaosState {
    config: Chaos,
    rng: Mutex<rand::rngs::StdRng>,
    kills: std::sync::atomic::AtomicU64,
    redeliveries: std::sync::atomic::AtomicU64,
    /// Every killed invocation: (function, its payload), so a run can tell which work a kill
    /// cut short (an answer from Amazon the function never saved).
    killed: Mutex<Vec<Killed>>,
}

/// An invocation the chaos killed part-way.
#[derive(Debug, Clone)]
pub struct Killed {
    pub function: String,
    pub at: DateTime<Utc>,
    pub payload: String,
}

impl ChaosState {
    fn new(config: Chaos) -> Self {
        use rand::SeedableRng;
        Self {
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(config.seed)),
            config,
            kills: Default::default(),
            redeliveries: Default::default(),
            killed: Default::default(),
        }
    }

    fn roll(&self, rate: f64) -> bool {
        use rand::Rng;
        rate > 0.0 && self.rng.lock().expect("rng").random_bool(rate.min(1.0))
    }

    /// When to kill this invocation, if it is to be killed.
    fn kill_after(&self) -> Option<Duration> {
        use rand::Rng;
        if !self.roll(self.config.kill_rate) {
            return None;
        }
        let max = self.config.max_kill_after.as_millis().max(1) as u64;
        self.kills
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Duration::from_millis(
            self.rng.lock().expect("rng").random_range(0..max),
        ))
    }
}

/// What the runner's own faults did (chaos runs).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ChaosStats {
    pub kills: u64,
    pub redeliveries: u64,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            speedup: 1.0,
            run_schedules: true,
            fire_schedules_at_start: false,
            poll_queues: true,
            serve_urls: true,
            receive_wait: Duration::from_secs(1),
            sqs_instances: 1,
            only: None,
            chaos: None,
            scale_timeouts: false,
            function_env: BTreeMap::new(),
        }
    }
}

/// Counters per function, for progress lines, summaries and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FunctionStats {
    pub invocations: u64,
    pub errors: u64,
    /// SQS messages the function handled (deleted from the queue).
    pub messages_ok: u64,
    /// SQS messages left on the queue to be retried (failed items, or failed batches).
    pub messages_failed: u64,
    pub last_error: Option<String>,
    /// Handler time summed over the invocations (wall time of the handler, as Lambda measures
    /// it; Function URL requests included).
    pub handler_ms: f64,
    /// Billed duration summed: each invocation's handler time rounded up to 1 ms, as Lambda does.
    pub billed_ms: u64,
    /// Schedule firings skipped because the previous run was still going (on a sped-up clock
    /// a run can outlast the period; EventBridge would have fired them).
    pub missed_firings: u64,
}

impl FunctionStats {
    fn timed(&mut self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        self.handler_ms += ms;
        self.billed_ms += ms.ceil().max(1.0) as u64;
    }
}

tokio::task_local! {
    /// The logical ID of the function whose invocation the current task runs.
    static FUNCTION: String;
}

/// The function (logical ID) whose invocation is running on this task, if any: lets a log
/// writer tell which function wrote a line (the cost benchmark's log ingestion).
pub fn current_function() -> Option<String> {
    FUNCTION.try_with(|f| f.clone()).ok()
}

type StatsMap = Arc<Mutex<BTreeMap<String, FunctionStats>>>;

pub struct Runner {
    stack: Arc<Stack>,
    handlers: BTreeMap<String, Handler>,
    urls: BTreeMap<String, String>,
    unregistered: Vec<String>,
    stats: StatsMap,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    chaos: Option<Arc<ChaosState>>,
}

impl Runner {
    /// Builds every function the registry knows with its template environment, and starts
    /// delivering its events.
    pub async fn start(
        stack: &Stack,
        overrides: &Overrides,
        options: RunnerOptions,
    ) -> Result<Runner> {
        Self::start_with(stack, overrides, options, BTreeMap::new()).await
    }

    /// Like [`Runner::start`], with some functions replaced (tests: a scripted consumer on
    /// a real template queue). Substitutes need not be in the registry.
    pub async fn start_with(
        stack: &Stack,
        overrides: &Overrides,
        options: RunnerOptions,
        mut substitutes: BTreeMap<String, Handler>,
    ) -> Result<Runner> {
        if options.speedup.is_nan() || options.speedup <= 0.0 {
            bail!("speedup must be > 0");
        }
        let stack = Arc::new(stack.clone());
        let constructors = registry::constructors();
        let mut handlers = BTreeMap::new();
        let mut substituted = BTreeSet::new();
        let mut unregistered = Vec::new();
        for (id, _spec) in stack.functions.iter() {
            if let Some(only) = &options.only {
                if !only.contains(id) {
                    continue;
                }
            }
            if let Some(h) = substitutes.remove(id) {
                handlers.insert(id.clone(), h);
                substituted.insert(id.clone());
                continue;
            }
            let Some(ctor) = constructors.get(id.as_str()) else {
                unregistered.push(id.clone());
                continue;
            };
            let mut env = stack.env_for(id, overrides)?;
            for (k, v) in options.function_env.get(id).into_iter().flatten() {
                env = env.with(k, v.clone());
            }
            if options.speedup != 1.0 {
                // The consumers' retry delays run on the sped-up clock too.
                env = env.with(
                    flexbridge::config::keys::LOCAL_CLOCK_SPEEDUP,
                    options.speedup.to_string(),
                );
            }
            let h = ctor(env).await.map_err(|e| {
                anyhow!("{id}: constructing the function from its template environment failed: {e}")
            })?;
            handlers.insert(id.clone(), h);
        }
        if let Some(extra) = substitutes.keys().next() {
            bail!("substitute for {extra}, which template.yaml does not declare as a function");
        }
        if !unregistered.is_empty() {
            tracing::warn!(
                "not registered in infra/local/src/registry.rs, their events are not delivered: {}",
                unregistered.join(", ")
            );
        }

        let sdk = flexbridge::aws::load_with_endpoint(&stack.endpoint).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let (stop, stop_rx) = watch::channel(false);
        let stats: StatsMap = Arc::default();
        let chaos = options.chaos.clone().map(|c| Arc::new(ChaosState::new(c)));
        let mut tasks = Vec::new();
        let mut urls = BTreeMap::new();

        for (id, handler) in &handlers {
            let spec = stack.functions[id].clone();
            stats.lock().expect("stats").entry(id.clone()).or_default();
            for event in &spec.events {
                match (event, handler) {
                    (FunctionEvent::Schedule { expression, enabled, input, id: rule }, Handler::Function(f)) => {
                        if !options.run_schedules || !enabled {
                            continue;
                        }
                        let schedule = Schedule::parse(expression).with_context(|| format!("{id}: schedule {rule}"))?;
                        let rule_arn = format!(
                            "arn:aws:events:{}:{}:rule/{}",
                            stack.region,
                            stack.account_id,
                            stack.resources.get(rule).map(|r| r.physical_id.as_str()).unwrap_or(rule)
                        );
                        tasks.push(tokio::spawn(run_schedule(
                            Target::new(&spec, options.timeout_of(&spec), f.clone(), stats.clone(), chaos.clone()),
                            schedule,
                            ScheduledPayload {
                                input: input.clone(),
                                rule_arn,
                                region: stack.region.clone(),
                                account: stack.account_id.clone(),
                            },
                            options.clone(),
                            stop_rx.clone(),
                        )));
                    }
                    (
                        FunctionEvent::Sqs {
                            queue,
                            batch_size,
                            report_batch_item_failures,
                            enabled,
                            maximum_concurrency,
                            ..
                        },
                        Handler::Function(f),
                    ) => {
                        if !options.poll_queues || !enabled {
                            continue;
                        }
                        // Lambda runs several batches of one source at once, up to the
                        // source's MaximumConcurrency.
                        let instances = maximum_concurrency
                            .map_or(options.sqs_instances, |m| m as usize)
                            .min(options.sqs_instances)
                            .max(1);
                        for _ in 0..instances {
                            let mut target = Target::new(&spec, options.timeout_of(&spec), f.clone(), stats.clone(), chaos.clone());
                            // Ours settle through flexbridge::runtime::handle_sqs_batch, which
                            // puts off each failed item itself (on this clock: LOCAL_CLOCK_SPEEDUP).
                            target.puts_off_failures = !substituted.contains(id);
                            tasks.push(tokio::spawn(run_queue(
                                target,
                                sqs.clone(),
                                SqsSource {
                                    queue: stack.queue(queue).clone(),
                                    batch_size: *batch_size,
                                    report_batch_item_failures: *report_batch_item_failures,
                                    region: stack.region.clone(),
                                },
                                options.clone(),
                                stop_rx.clone(),
                            )));
                        }
                    }
                    (FunctionEvent::FunctionUrl { .. }, Handler::Http(router)) => {
                        if !options.serve_urls {
                            continue;
                        }
                        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                        let addr = listener.local_addr()?;
                        urls.insert(id.clone(), format!("http://{addr}"));
                        let router = timed(
                            with_invocation(router.clone(), options.timeout_of(&spec)),
                            id.clone(),
                            stats.clone(),
                        );
                        let mut stop_rx = stop_rx.clone();
                        tasks.push(tokio::spawn(async move {
                            let shutdown = async move {
                                let _ = stop_rx.wait_for(|s| *s).await;
                            };
                            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                                tracing::error!("function URL server stopped: {e}");
                            }
                        }));
                    }
                    (event, _) => bail!(
                        "{id}: the registry gives a handler of the wrong kind for its event {event:?} \
                         (Function URLs need Handler::Http, schedules and queues Handler::Function)"
                    ),
                }
            }
        }
        Ok(Runner {
            stack,
            handlers,
            urls,
            unregistered,
            stats,
            stop,
            tasks,
            chaos,
        })
    }

    /// The invocations the chaos killed part-way.
    pub fn killed(&self) -> Vec<Killed> {
        self.chaos
            .as_ref()
            .map(|c| c.killed.lock().expect("killed").clone())
            .unwrap_or_default()
    }

    /// What the runner's own faults did so far (zero without [`RunnerOptions::chaos`]).
    pub fn chaos_stats(&self) -> ChaosStats {
        self.chaos
            .as_ref()
            .map_or_else(ChaosStats::default, |c| ChaosStats {
                kills: c.kills.load(std::sync::atomic::Ordering::Relaxed),
                redeliveries: c.redeliveries.load(std::sync::atomic::Ordering::Relaxed),
            })
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The local URL a Function URL function is served on (`http://127.0.0.1:PORT`).
    pub fn function_url(&self, logical_id: &str) -> Option<&str> {
        self.urls.get(logical_id).map(String::as_str)
    }

    /// Functions in the template without a registry entry (their events are not delivered).
    pub fn unregistered(&self) -> &[String] {
        &self.unregistered
    }

    pub fn stats(&self) -> BTreeMap<String, FunctionStats> {
        self.stats.lock().expect("stats").clone()
    }

    pub fn function_stats(&self, logical_id: &str) -> FunctionStats {
        self.stats().get(logical_id).cloned().unwrap_or_default()
    }

    /// Invokes a function directly (as `aws lambda invoke` would), with its template timeout.
    pub async fn invoke(&self, logical_id: &str, payload: Value) -> Result<Value> {
        let spec = self
            .stack
            .function(logical_id)
            .ok_or_else(|| anyhow!("template.yaml declares no function {logical_id}"))?;
        let Some(Handler::Function(f)) = self.handlers.get(logical_id) else {
            bail!(
                "{logical_id} is not running in this runner (unregistered, filtered out, or HTTP)"
            );
        };
        Target::new(spec, spec.timeout(), f.clone(), self.stats.clone(), None)
            .invoke(payload)
            .await
            .map_err(|e| anyhow!("{logical_id}: {e}"))
    }

    /// Runs one of `logical_id`'s schedules now, with the payload EventBridge would send.
    pub async fn fire_schedule(&self, logical_id: &str) -> Result<Value> {
        let spec = self
            .stack
            .function(logical_id)
            .ok_or_else(|| anyhow!("template.yaml declares no function {logical_id}"))?;
        let (rule, input) = spec
            .events
            .iter()
            .find_map(|e| match e {
                FunctionEvent::Schedule { id, input, .. } => Some((id.clone(), input.clone())),
                _ => None,
            })
            .ok_or_else(|| anyhow!("{logical_id} has no Schedule event in template.yaml"))?;
        let payload = ScheduledPayload {
            input,
            rule_arn: format!(
                "arn:aws:events:{}:{}:rule/{rule}",
                self.stack.region, self.stack.account_id
            ),
            region: self.stack.region.clone(),
            account: self.stack.account_id.clone(),
        }
        .at(Utc::now());
        self.invoke(logical_id, payload).await
    }

    /// Stops every schedule, poller and server, and waits for in-flight invocations.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What Lambda gives a Function URL request: a request ID and the deadline of the function's
/// template timeout, as an [`Invocation`] in the request's extensions (lambda_http's context in
/// AWS, turned into an `Invocation` by the function's `main.rs`); the answer carries the ID in
/// `x-amzn-RequestId`, as a Function URL's does.
pub fn with_invocation(router: axum::Router, timeout: Duration) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            let request_id = uuid::Uuid::new_v4().to_string();
            req.extensions_mut()
                .insert(Invocation::new(request_id.clone(), timeout));
            let mut resp = next.run(req).await;
            if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert("x-amzn-requestid", v);
            }
            resp
        },
    ))
}

/// Counts and times each request of a Function URL function (each one a Lambda invocation),
/// and runs it as that function ([`current_function`]).
fn timed(router: axum::Router, id: String, stats: StatsMap) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let (id, stats) = (id.clone(), stats.clone());
            async move {
                let started = Instant::now();
                let resp = FUNCTION.scope(id.clone(), next.run(req)).await;
                let mut stats = stats.lock().expect("stats");
                let s = stats.entry(id).or_default();
                s.invocations += 1;
                if resp.status().is_server_error() {
                    s.errors += 1;
                }
                s.timed(started.elapsed());
                resp
            }
        },
    ))
}

/// One function as the runner invokes it.
#[derive(Clone)]
struct Target {
    id: String,
    /// The function sets its failed items' visibility itself (ChangeMessageVisibility by
    /// receive count), so the runner leaves the batch item failures it reports alone.
    puts_off_failures: bool,
    timeout: Duration,
    function: Arc<dyn Function>,
    stats: StatsMap,
    chaos: Option<Arc<ChaosState>>,
}

impl Target {
    fn new(
        spec: &FunctionSpec,
        timeout: Duration,
        function: Arc<dyn Function>,
        stats: StatsMap,
        chaos: Option<Arc<ChaosState>>,
    ) -> Self {
        Self {
            id: spec.logical_id.clone(),
            puts_off_failures: false,
            timeout,
            function,
            stats,
            chaos,
        }
    }

    /// One invocation with Lambda's limits: the template's timeout, and a panic is an error.
    /// A run stopped part-way answers with one of `KILLED`, `TIMED_OUT` or `PANICKED`.
    async fn invoke(&self, payload: Value) -> Result<Value, String> {
        let invocation = Invocation::new(uuid::Uuid::new_v4().to_string(), self.timeout);
        let f = self.function.clone();
        let kill = self.chaos.as_ref().and_then(|c| c.kill_after());
        let copy = kill.map(|_| payload.to_string());
        let started = Instant::now();
        let task = tokio::spawn(FUNCTION.scope(self.id.clone(), async move {
            f.invoke(payload, invocation).await
        }));
        // Lambda stops a run at its timeout (or a crash stops it anywhere): nothing after that
        // point happens, so the task is aborted, not left running.
        let abort = task.abort_handle();
        let result = match tokio::time::timeout(kill.unwrap_or(self.timeout), task).await {
            Err(_) if kill.is_some() => {
                abort.abort();
                if let (Some(c), Some(copy)) = (&self.chaos, copy) {
                    c.killed.lock().expect("killed").push(Killed {
                        function: self.id.clone(),
                        at: Utc::now(),
                        payload: copy,
                    });
                }
                Err(format!("{KILLED} (chaos)"))
            }
            Err(_) => {
                abort.abort();
                Err(format!("{TIMED_OUT} {} seconds", self.timeout.as_secs()))
            }
            Ok(Err(join)) => Err(format!("{PANICKED}: {join}")),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Ok(Ok(v))) => Ok(v),
        };
        let mut stats = self.stats.lock().expect("stats");
        let s = stats.entry(self.id.clone()).or_default();
        s.invocations += 1;
        s.timed(started.elapsed());
        if let Err(e) = &result {
            s.errors += 1;
            s.last_error = Some(e.clone());
            tracing::warn!(function = %self.id, "invocation failed: {e}");
        }
        result
    }

    fn count_messages(&self, ok: u64, failed: u64) {
        let mut stats = self.stats.lock().expect("stats");
        let s = stats.entry(self.id.clone()).or_default();
        s.messages_ok += ok;
        s.messages_failed += failed;
    }
}

struct ScheduledPayload {
    input: Option<String>,
    rule_arn: String,
    region: String,
    account: String,
}

impl ScheduledPayload {
    fn at(&self, time: DateTime<Utc>) -> Value {
        if let Some(input) = &self.input {
            if let Ok(v) = serde_json::from_str(input) {
                return v;
            }
        }
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
            "region": self.region,
            "resources": [self.rule_arn],
            "detail": {}
        })
    }
}

async fn run_schedule(
    target: Target,
    schedule: Schedule,
    payload: ScheduledPayload,
    options: RunnerOptions,
    mut stop: watch::Receiver<bool>,
) {
    // A virtual clock: `speedup` virtual seconds pass per real second.
    let real_start = Instant::now();
    let virtual_start = Utc::now();
    let virtual_now = || {
        let elapsed = real_start.elapsed().mul_f64(options.speedup);
        virtual_start + chrono::Duration::from_std(elapsed).unwrap_or_default()
    };
    let mut next = if options.fire_schedules_at_start {
        Some(virtual_start)
    } else {
        schedule.next_after(virtual_start)
    };
    while let Some(at) = next {
        let wait = (at - virtual_now())
            .to_std()
            .unwrap_or_default()
            .div_f64(options.speedup);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let _ = target.invoke(payload.at(at)).await;
        // Like EventBridge, a slow run does not queue up the firings it missed.
        let now = virtual_now();
        next = schedule.next_after(at);
        let mut missed = 0;
        while let Some(n) = next.filter(|n| *n <= now) {
            next = schedule.next_after(n);
            missed += 1;
        }
        if missed > 0 {
            let mut stats = target.stats.lock().expect("stats");
            stats.entry(target.id.clone()).or_default().missed_firings += missed;
        }
        if *stop.borrow() {
            return;
        }
    }
}

struct SqsSource {
    queue: Queue,
    batch_size: u32,
    report_batch_item_failures: bool,
    region: String,
}

async fn run_queue(
    target: Target,
    sqs: aws_sdk_sqs::Client,
    source: SqsSource,
    options: RunnerOptions,
    mut stop: watch::Receiver<bool>,
) {
    // Never a short poll: an empty queue answered at once is asked again at once, and ~15
    // queues doing that kept moto (one Python process) busy answering nothing.
    let wait = options.receive_wait.as_secs_f64().ceil().clamp(1.0, 20.0) as i32;
    loop {
        if *stop.borrow() {
            return;
        }
        let received = tokio::select! {
            r = sqs
                .receive_message()
                .queue_url(&source.queue.url)
                .max_number_of_messages(source.batch_size.clamp(1, 10) as i32)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(queue = %source.queue.name, "receive failed: {}", aws_sdk_sqs::error::DisplayErrorContext(e));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        if let Err(e) = deliver(&target, &sqs, &source, &options, messages).await {
            tracing::warn!(queue = %source.queue.name, "{e:#}");
        }
    }
}

/// Hands one batch to the function and settles it like the SQS event source mapping.
/// How `Target::invoke` says a run was stopped part-way (as Lambda would stop it).
const KILLED: &str = "killed by the runner";
const TIMED_OUT: &str = "Task timed out after";
const PANICKED: &str = "the function panicked";

fn stopped_part_way(error: &str) -> bool {
    [KILLED, TIMED_OUT, PANICKED]
        .iter()
        .any(|p| error.starts_with(p))
}

async fn deliver(
    target: &Target,
    sqs: &aws_sdk_sqs::Client,
    source: &SqsSource,
    options: &RunnerOptions,
    messages: Vec<Message>,
) -> Result<()> {
    let event = sqs_event(&messages, &source.queue.arn, &source.region);
    let ids: BTreeSet<String> = messages
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    let outcome = target.invoke(event).await;
    // A killed, timed-out or crashed run may leave claims (idempotency) held until its deadline;
    // a run that returned an error has given its claims back.
    let run_failed = matches!(&outcome, Err(e) if stopped_part_way(e));
    // Failed items of a run that answered were put off by the function itself, if it does.
    let put_off = outcome.is_ok() && target.puts_off_failures;
    let failed: BTreeSet<String> = match outcome {
        Err(_) => ids.clone(),
        Ok(response) if source.report_batch_item_failures => {
            match batch_item_failures(&response, &ids) {
                Some(f) => f,
                None => {
                    tracing::warn!(
                        function = %target.id,
                        "invalid batchItemFailures response, the whole batch is retried: {response}"
                    );
                    ids.clone()
                }
            }
        }
        Ok(_) => BTreeSet::new(),
    };
    let (done, retry): (Vec<&Message>, Vec<&Message>) = messages
        .iter()
        .partition(|m| !failed.contains(m.message_id.as_deref().unwrap_or_default()));
    target.count_messages(done.len() as u64, retry.len() as u64);
    // Chaos: some handled messages stay on the queue and come again right away.
    let (done, again): (Vec<&Message>, Vec<&Message>) = match &target.chaos {
        Some(c) => done
            .into_iter()
            .partition(|_| !c.roll(c.config.redeliver_rate)),
        None => (done, Vec::new()),
    };
    if let Some(c) = &target.chaos {
        c.redeliveries
            .fetch_add(again.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    for m in again {
        sqs.change_message_visibility()
            .queue_url(&source.queue.url)
            .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "redelivering: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
    }
    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        sqs.delete_message_batch()
            .queue_url(&source.queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "deleting handled messages: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
    }
    // Failed messages reappear after the visibility timeout; on a sped-up clock, sooner, but
    // after a failed run never before its deadline: what it claimed stays claimed until then
    // (in AWS the visibility timeout is at least 6 times the function's timeout).
    if options.speedup != 1.0 && !put_off {
        let mut secs = (source.queue.visibility_timeout_s as f64 / options.speedup).ceil() as i32;
        if run_failed {
            secs = secs.max(target.timeout.as_secs() as i32 + 1);
        }
        for m in retry {
            sqs.change_message_visibility()
                .queue_url(&source.queue.url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .visibility_timeout(secs.clamp(0, 43_200))
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "shortening visibility: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
        }
    }
    Ok(())
}

/// The failed message IDs a `ReportBatchItemFailures` response names; `None` when the
/// response is malformed or names a message not in the batch (Lambda then fails the batch).
fn batch_item_failures(response: &Value, batch: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    let items = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(BTreeSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    let mut out = BTreeSet::new();
    for item in items {
        let id = item.get("itemIdentifier")?.as_str()?;
        if !batch.contains(id) {
            return None;
        }
        out.insert(id.to_string());
    }
    Some(out)
}

/// The `SQSEvent` Lambda builds from received messages (`aws_lambda_events::sqs::SqsEvent`).
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: BTreeMap<String, String> = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect();
            let message_attributes: BTreeMap<String, Value> = m
                .message_attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        json!({
                            "stringValue": v.string_value,
                            "binaryValue": v.binary_value.as_ref().map(|b| b64.encode(b.as_ref())),
                            "stringListValues": v.string_list_values.unwrap_or_default(),
                            "binaryListValues": v.binary_list_values.unwrap_or_default()
                                .iter().map(|b| b64.encode(b.as_ref())).collect::<Vec<_>>(),
                            "dataType": v.data_type,
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "md5OfBody": m.md5_of_body,
                "md5OfMessageAttributes": m.md5_of_message_attributes,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failures_follow_lambdas_rules() {
        let batch: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            batch_item_failures(&json!({}), &batch),
            Some(BTreeSet::new())
        );
        assert_eq!(
            batch_item_failures(&Value::Null, &batch),
            Some(BTreeSet::new())
        );
        assert_eq!(
            batch_item_failures(
                &json!({"batchItemFailures": [{"itemIdentifier": "b"}]}),
                &batch
            ),
            Some(["b".to_string()].into())
        );
        assert_eq!(
            batch_item_failures(
                &json!({"batchItemFailures": [{"itemIdentifier": "zz"}]}),
                &batch
            ),
            None
        );
        assert_eq!(
            batch_item_failures(&json!({"batchItemFailures": [{}]}), &batch),
            None
        );
    }

    #[test]
    fn the_event_deserialises_as_aws_lambda_events_sqs_event() {
        let m = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("{\"x\":1}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                "kind",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("k")
                    .build()
                    .unwrap(),
            )
            .build();
        let v = sqs_event(&[m], "arn:aws:sqs:us-east-1:1:q", "us-east-1");
        let e: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(v).unwrap();
        let r = &e.records[0];
        assert_eq!(r.message_id.as_deref(), Some("m1"));
        assert_eq!(
            r.attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(
            r.message_attributes["kind"].string_value.as_deref(),
            Some("k")
        );
        assert_eq!(
            r.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:1:q")
        );
    }
}
