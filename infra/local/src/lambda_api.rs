//! Runs a packaged function (`.aws-sam/build/<LogicalId>/bootstrap`) the way Lambda does: a
//! local Lambda Runtime API (the 2018-06-01 interface every custom runtime polls), the process
//! started with its template environment, and counting TCP proxies in front of moto and the
//! simulator, so a caller can tell whether the function reached AWS or Amazon during init
//! (before its first request for work).
//!
//! ```ignore
//! # async fn t(stack: &flexbridge_local::Stack, env: flexbridge::Env) -> anyhow::Result<()> {
//! use flexbridge_local::lambda_api::{Bootstrap, RuntimeApi};
//! let api = RuntimeApi::start().await?;
//! let mut f = Bootstrap::spawn(".aws-sam/build/HeartbeatFunction/bootstrap".as_ref(),
//!     "HeartbeatFunction", env.vars(), 10, &api)?;
//! let init = api.wait_for_init(std::time::Duration::from_secs(10)).await?; // process start → first /next
//! let answer = api.invoke(serde_json::json!({"time": "2026-01-01T00:00:00Z"}), std::time::Duration::from_secs(10)).await?;
//! f.stop().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error` (the handler returned an error).
    Error(Value),
}

struct Job {
    request_id: String,
    event: Value,
    deadline_ms: u128,
    answer: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Shared {
    started: Mutex<Option<Instant>>,
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    function_arn: Mutex<String>,
}

/// A local Lambda Runtime API serving one function process at a time.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ApiState {
    shared: Arc<Shared>,
    jobs: Arc<AsyncMutex<mpsc::Receiver<Job>>>,
}

impl RuntimeApi {
    pub async fn start() -> Result<Self> {
        let (tx, rx) = mpsc::channel(16);
        let shared = Arc::new(Shared::default());
        let state = ApiState {
            shared: shared.clone(),
            jobs: Arc::new(AsyncMutex::new(rx)),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            jobs: tx,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Forgets the previous process (call before starting the next one).
    pub fn reset(&self) {
        *self.shared.first_next.lock().unwrap() = None;
        *self.shared.init_error.lock().unwrap() = None;
        *self.shared.started.lock().unwrap() = None;
    }

    fn mark_started(&self, at: Instant) {
        *self.shared.started.lock().unwrap() = Some(at);
    }

    /// Waits for the process's first `GET /runtime/invocation/next` and returns the time from
    /// its start to then (its init). An init error reported to the API fails with its body.
    pub async fn wait_for_init(&self, timeout: Duration) -> Result<Duration> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(e) = self.shared.init_error.lock().unwrap().clone() {
                bail!("the function reported an init error: {e}");
            }
            let first = *self.shared.first_next.lock().unwrap();
            let started = *self.shared.started.lock().unwrap();
            if let (Some(first), Some(started)) = (first, started) {
                return Ok(first.saturating_duration_since(started));
            }
            if Instant::now() > until {
                bail!("no request for work within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The instant of the first request for work (after [`Self::wait_for_init`]).
    pub fn first_next_at(&self) -> Option<Instant> {
        *self.shared.first_next.lock().unwrap()
    }

    /// Hands `event` to the waiting function and waits for its answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome> {
        let (answer, rx) = oneshot::channel();
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)?
            .as_millis();
        self.jobs
            .send(Job {
                request_id: uuid::Uuid::new_v4().to_string(),
                event,
                deadline_ms,
                answer,
            })
            .await
            .map_err(|_| anyhow!("runtime API stopped"))?;
        tokio::time::timeout(timeout + Duration::from_secs(5), rx)
            .await
            .context("the function did not answer in time")?
            .context("the function never answered")
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(s): State<ApiState>) -> Response {
    {
        let mut first = s.shared.first_next.lock().unwrap();
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    // Long poll, as Lambda does: the request stays open until there is work.
    let job = s.jobs.lock().await.recv().await;
    let Some(job) = job else {
        return StatusCode::GONE.into_response();
    };
    s.shared
        .pending
        .lock()
        .unwrap()
        .insert(job.request_id.clone(), job.answer);
    let mut headers = HeaderMap::new();
    let h = |v: &str| HeaderValue::from_str(v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", h(&job.request_id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        h(&job.deadline_ms.to_string()),
    );
    let arn = s.shared.function_arn.lock().unwrap().clone();
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        h(if arn.is_empty() {
            "arn:aws:lambda:us-east-1:123456789012:function:local"
        } else {
            &arn
        }),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        h("Root=1-00000000-000000000000000000000000;Sampled=0"),
    );
    headers.insert("content-type", h("application/json"));
    (StatusCode::OK, headers, job.event.to_string()).into_response()
}

fn settle(s: &ApiState, id: &str, outcome: Outcome) -> StatusCode {
    match s.shared.pending.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(s): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    settle(&s, &id, Outcome::Response(json_or_text(&body)))
}

async fn error(State(s): State<ApiState>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    settle(&s, &id, Outcome::Error(json_or_text(&body)))
}

async fn init_error(State(s): State<ApiState>, body: Bytes) -> StatusCode {
    *s.shared.init_error.lock().unwrap() = Some(json_or_text(&body));
    StatusCode::ACCEPTED
}

/// A function process started from its packaged bootstrap.
pub struct Bootstrap {
    child: tokio::process::Child,
    pub log: std::path::PathBuf,
}

impl Bootstrap {
    /// Starts `bootstrap` with exactly what Lambda gives a function: its environment (`env`,
    /// e.g. the template's variables plus local endpoints) and the reserved `AWS_LAMBDA_*`
    /// variables; stdout and stderr go to `<bootstrap dir>/../<name>.log`.
    pub fn spawn(
        bootstrap: &Path,
        function_name: &str,
        env: &HashMap<String, String>,
        memory_mb: u64,
        api: &RuntimeApi,
    ) -> Result<Self> {
        let log = std::env::temp_dir().join(format!(
            "flexbridge-{function_name}-{}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log)?;
        let region = env
            .get("AWS_REGION")
            .cloned()
            .unwrap_or_else(|| "us-east-1".into());
        let mut cmd = tokio::process::Command::new(bootstrap);
        cmd.env_clear()
            .envs(env)
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_DEFAULT_REGION", &region)
            .env("AWS_REGION", &region)
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env(
                "LAMBDA_TASK_ROOT",
                bootstrap.parent().unwrap_or(Path::new(".")),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        api.reset();
        *api.shared.function_arn.lock().unwrap() =
            format!("arn:aws:lambda:{region}:123456789012:function:{function_name}");
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bootstrap.display()))?;
        api.mark_started(started);
        Ok(Self { child, log })
    }

    /// The process's output so far (for failure messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A TCP proxy that counts the connections it accepts, with their times: put in front of moto
/// or the simulator to see whether (and when) a function process connected.
pub struct CountingProxy {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Proxies to `upstream` (`http://host:port` or `host:port`).
    pub async fn start(upstream: &str) -> Result<Self> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                seen.lock().unwrap().push(Instant::now());
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            accepted,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted before `t`.
    pub fn connections_before(&self, t: Instant) -> usize {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|at| **at < t)
            .count()
    }

    pub fn connections(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
