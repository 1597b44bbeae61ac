//! The HTTP server: one pipeline for every Amazon route (request ID, auth, rate limit, faults,
//! model validation, the handler, the call log), LWA, and the admin router.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::IncomingStream;
use axum::Router;
use chrono::Utc;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::errors::ApiError;
use crate::faults::FaultKind;
use crate::notify::Notifier;
use crate::ratelimit;
use crate::state::{fmt_time, CallRecord, Shared, State};
use crate::validation::{self, Models};
use crate::{SimHandle, SimOptions};

/// What a handler gets.
pub struct Req {
    pub operation: String,
    pub path_params: HashMap<String, String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Req {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn p(&self, name: &str) -> &str {
        self.path_params.get(name).map(String::as_str).unwrap_or("")
    }
}

/// What a handler answers (`body: None` = empty, e.g. 204).
pub struct Resp {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Resp {
    pub fn ok(v: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(v),
        }
    }
    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

pub type HResult = Result<Resp, ApiError>;

pub async fn start(addr: SocketAddr, opts: SimOptions) -> anyhow::Result<SimHandle> {
    let models = Models::load(&opts.resolved_models_dir()?)?;
    let notifier = Notifier::start();
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}");
    let shared = Arc::new(Shared::new(opts, models, notifier));
    shared.lock().base_url = base_url.clone();
    let app = router(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            SimListener(listener),
            app.into_make_service_with_connect_info::<ConnInfo>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(SimHandle {
        base_url,
        addr: local,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/auth/o2/token", post(crate::lwa::token))
        .nest("/_sim", crate::admin::router())
        .fallback(amazon)
        .with_state(shared)
}

/// The single pipeline for every Amazon route.
async fn amazon(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or("").to_string();
    let call = Call {
        method: &method,
        path: &path,
        query: &raw_query,
        request_id: &request_id,
    };
    let Some(routed) = shared.models.route(method.as_str(), &path) else {
        let err = if shared.models.path_known(&path) {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not allowed on {path}"),
            )
        } else {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "SC_00003",
                format!("Requested Entity with 'path' '{path}' is not found."),
            )
        };
        let mut st = shared.lock();
        call.log(&mut st, "unknown", err.status, None);
        return finish(err.status, Some(err.body()), &request_id, None);
    };
    let op = routed.op;
    let operation = op.id.clone();
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    // Listings and Notifications answer bad input with `InvalidInput`, External Fulfillment
    // with `SC_00002`.
    let is_listings = op.file.starts_with("listings") || op.file.starts_with("notifications");

    // Gateway: User-Agent, token, throttle; then the fault draw.
    let (limit, decision) = {
        let mut st = shared.lock();
        let limit = st.limiter.limit(&operation);
        let ua = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let gate = if ua.trim().is_empty() || ua.len() > 500 {
            Some(ApiError::new(
                StatusCode::BAD_REQUEST,
                if is_listings {
                    "InvalidInput"
                } else {
                    "SC_00002"
                },
                "Invalid input: a User-Agent header of at most 500 characters is required",
            ))
        } else {
            match headers
                .get("x-amz-access-token")
                .and_then(|v| v.to_str().ok())
            {
                None | Some("") => Some(ApiError::unauthorized(
                    "The request has no x-amz-access-token header.",
                )),
                Some(t) => match st.tokens.get(t) {
                    None => Some(ApiError::unauthorized(
                        "The access token you provided is invalid.",
                    )),
                    Some(exp) if *exp <= Utc::now() => Some(ApiError::unauthorized(
                        "The access token you provided has expired.",
                    )),
                    Some(_) => {
                        let grantless = st.grantless_tokens.contains(t);
                        match (
                            crate::notifications_api::GRANTLESS.contains(&operation.as_str()),
                            grantless,
                        ) {
                            (true, false) => Some(ApiError::unauthorized(
                                "This operation needs a grantless access token (LWA client_credentials, scope sellingpartnerapi::notifications).",
                            )),
                            (false, true) => Some(ApiError::unauthorized(
                                "A grantless access token cannot call this operation; use the seller's (refresh_token) access token.",
                            )),
                            _ => None,
                        }
                    }
                },
            }
        };
        // A role the application lacks: Amazon answers 403 Unauthorized before throttling.
        let model = op.file.split('_').next().unwrap_or("");
        let gate = gate.or_else(|| {
            st.refused_models.contains(model).then(|| {
                ApiError::unauthorized(
                    "The application is not authorized for this operation's role.",
                )
            })
        });
        let gate = gate.or_else(|| {
            (!st.limiter.try_acquire(&operation, Instant::now())).then(ApiError::throttled)
        });
        if let Some(err) = gate {
            call.log(&mut st, &operation, err.status, None);
            return finish(err.status, Some(err.body()), &request_id, Some(limit));
        }
        (limit, st.faults.decide(&operation))
    };

    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let pre_fault = match decision.kind {
        FaultKind::Throttle => Some(ApiError::throttled()),
        FaultKind::Error500 => Some(ApiError::internal()),
        FaultKind::Error503 => Some(ApiError::unavailable()),
        _ => None,
    };
    if let Some(err) = pre_fault {
        let mut st = shared.lock();
        call.log(
            &mut st,
            &operation,
            err.status,
            Some(format!("fault:{:?}", decision.kind)),
        );
        return finish(err.status, Some(err.body()), &request_id, Some(limit));
    }
    if decision.kind == FaultKind::Drop {
        let mut st = shared.lock();
        call.log(
            &mut st,
            &operation,
            StatusCode::from_u16(599).unwrap_or(StatusCode::BAD_GATEWAY),
            Some("fault:Drop".into()),
        );
        drop(st);
        conn.kill();
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }

    // The model: parameters and body.
    if operation == "batchInventory" {
        if let Some(err) = crate::inventory::batch_size_error(&body) {
            let mut st = shared.lock();
            call.log(&mut st, &operation, err.status, None);
            return finish(err.status, Some(err.body()), &request_id, Some(limit));
        }
    }
    let mut problems = validation::check_params(op, &routed.path_params, &query);
    let parsed = match validation::check_body(op, &body) {
        Ok(b) => b,
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let result: HResult = if !problems.is_empty() {
        let code = if is_listings {
            "InvalidInput"
        } else {
            "SC_00002"
        };
        Err(
            ApiError::new(StatusCode::BAD_REQUEST, code, problems[0].clone())
                .with_details(problems.join("; ")),
        )
    } else {
        let req = Req {
            operation: operation.clone(),
            path_params: routed.path_params.clone(),
            query,
            body: parsed,
        };
        let mut st = shared.lock();
        dispatch(&mut st, &req)
    };
    let (status, out_body) = match &result {
        Ok(r) => (r.status, r.body.clone()),
        Err(e) => (e.status, Some(e.body())),
    };
    if shared.opts.check_responses {
        check_response(&shared, op, status, out_body.as_ref());
    }

    match decision.kind {
        FaultKind::ApplyThenFail => {
            let err = ApiError::internal();
            let mut st = shared.lock();
            call.log(
                &mut st,
                &operation,
                err.status,
                Some(format!(
                    "fault:ApplyThenFail (handler answered {})",
                    status.as_u16()
                )),
            );
            finish(err.status, Some(err.body()), &request_id, Some(limit))
        }
        FaultKind::ApplyThenHang => {
            {
                let mut st = shared.lock();
                call.log(
                    &mut st,
                    &operation,
                    StatusCode::from_u16(599).unwrap_or(StatusCode::BAD_GATEWAY),
                    Some(format!(
                        "fault:ApplyThenHang (handler answered {})",
                        status.as_u16()
                    )),
                );
            }
            tokio::time::sleep(decision.hang).await;
            conn.kill();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        _ => {
            let mut st = shared.lock();
            call.log(&mut st, &operation, status, None);
            finish(status, out_body, &request_id, Some(limit))
        }
    }
}

/// Our own answer against the model's response schema; violations are kept for tests.
fn check_response(
    shared: &Shared,
    op: &validation::Operation,
    status: StatusCode,
    body: Option<&Value>,
) {
    let code = status.as_u16();
    let problems = if !op.declared.contains(&code) {
        vec![format!("status {code} is not declared by the model")]
    } else {
        match (op.responses.get(&code), body) {
            (Some(v), Some(b)) => validation::schema_errors(v, b),
            (Some(_), None) => {
                vec!["the model declares a body for this status, none was sent".into()]
            }
            (None, Some(_)) => vec!["the model declares no body for this status".into()],
            (None, None) => vec![],
        }
    };
    if !problems.is_empty() {
        tracing::warn!(operation = %op.id, status = status.as_u16(), ?problems, "simulator response does not match the model");
        shared.lock().response_violations.push(serde_json::json!({
            "operation": op.id, "status": status.as_u16(), "problems": problems,
        }));
    }
}

fn dispatch(st: &mut State, req: &Req) -> HResult {
    match req.operation.as_str() {
        "getShipments" => crate::shipments::get_shipments(st, req),
        "getShipment" => crate::shipments::get_shipment(st, req),
        "processShipment" => crate::shipments::process_shipment(st, req),
        "createPackages" => crate::shipments::create_packages(st, req),
        "updatePackage" => crate::shipments::update_package(st, req),
        "updatePackageStatus" => crate::shipments::update_package_status(st, req),
        "retrieveShippingOptions" => crate::shipments::retrieve_shipping_options(st, req),
        "generateInvoice" => crate::shipments::generate_invoice(st, req),
        "retrieveInvoice" => crate::shipments::retrieve_invoice(st, req),
        "generateShipLabels" => crate::shipments::generate_ship_labels(st, req),
        "batchInventory" => crate::inventory::batch_inventory(st, req),
        "listReturns" => crate::returns::list_returns(st, req),
        "getReturn" => crate::returns::get_return(st, req),
        "patchListingsItem" => crate::listings::patch_listings_item(st, req),
        "getListingsItem" => crate::listings::get_listings_item(st, req),
        "getDestinations" => crate::notifications_api::get_destinations(st, req),
        "createDestination" => crate::notifications_api::create_destination(st, req),
        "getDestination" => crate::notifications_api::get_destination(st, req),
        "deleteDestination" => crate::notifications_api::delete_destination(st, req),
        "getSubscription" => crate::notifications_api::get_subscription(st, req),
        "createSubscription" => crate::notifications_api::create_subscription(st, req),
        "getSubscriptionById" => crate::notifications_api::get_subscription_by_id(st, req),
        "deleteSubscriptionById" => crate::notifications_api::delete_subscription_by_id(st, req),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SC_00003",
            format!("operation {other} is not simulated"),
        )),
    }
}

/// What every call-log entry of one request shares.
struct Call<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    request_id: &'a str,
}

impl Call<'_> {
    fn log(&self, st: &mut State, operation: &str, status: StatusCode, note: Option<String>) {
        st.calls.push(CallRecord {
            operation: operation.to_string(),
            method: self.method.to_string(),
            path: self.path.to_string(),
            query: self.query.to_string(),
            status: status.as_u16(),
            time: fmt_time(Utc::now()),
            request_id: self.request_id.to_string(),
            note,
        });
    }
}

/// Adds `x-amzn-RequestId` (always) and `x-amzn-RateLimit-Limit` (every routed operation).
fn finish(
    status: StatusCode,
    body: Option<Value>,
    request_id: &str,
    limit: Option<ratelimit::RateLimit>,
) -> Response {
    let mut resp = match body {
        Some(b) => (
            status,
            [("content-type", "application/json")],
            b.to_string(),
        )
            .into_response(),
        None => (status, Body::empty()).into_response(),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    if let Some(l) = limit {
        if let Ok(v) = HeaderValue::from_str(&ratelimit::header_value(l)) {
            h.insert("x-amzn-RateLimit-Limit", v);
        }
    }
    resp
}

// ---- a listener whose connections a handler can cut (the "dropped connection" fault) ----

pub struct SimListener(TcpListener);

/// Per-connection info: the peer and a switch that makes the connection fail its next I/O.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl ConnInfo {
    pub fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

pub struct SimStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl axum::serve::Listener for SimListener {
    type Io = SimStream;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    return (
                        SimStream {
                            inner: s,
                            kill: kill.clone(),
                        },
                        ConnInfo { peer, kill },
                    );
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ConnInfo {
            peer: self.0.local_addr()?,
            kill: Arc::default(),
        })
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn killed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "simulated dropped connection",
    )
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
