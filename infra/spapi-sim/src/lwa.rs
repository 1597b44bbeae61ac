//! Login with Amazon: `POST /auth/o2/token` with `grant_type=refresh_token` (a seller's token)
//! or `grant_type=client_credentials` with a scope (a grantless token, e.g. for notifications).

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;

use crate::errors::lwa_error;
use crate::faults::FaultKind;
use crate::server::ConnInfo;
use crate::state::{fmt_time, CallRecord, Shared};

/// The token endpoint. Faults apply only when the fault configuration has a rule for the
/// operation `lwaToken` (a global rule does not touch LWA). Every call is logged as `lwaToken`.
pub async fn token(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let decision = {
        let mut st = shared.lock();
        st.faults
            .has_rule(OPERATION)
            .then(|| st.faults.decide(OPERATION))
    };
    let log = |status: u16, note: Option<String>| {
        let mut st = shared.lock();
        st.calls.push(CallRecord {
            operation: OPERATION.into(),
            method: "POST".into(),
            path: "/auth/o2/token".into(),
            query: String::new(),
            status,
            time: fmt_time(Utc::now()),
            request_id: request_id.clone(),
            note,
        });
    };
    let kind = match decision {
        Some(d) => {
            if !d.latency.is_zero() {
                tokio::time::sleep(d.latency).await;
            }
            let pre = match d.kind {
                FaultKind::Throttle => Some((StatusCode::TOO_MANY_REQUESTS, "slow_down")),
                FaultKind::Error500 => Some((StatusCode::INTERNAL_SERVER_ERROR, "server_error")),
                FaultKind::Error503 => {
                    Some((StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"))
                }
                _ => None,
            };
            if let Some((status, error)) = pre {
                log(status.as_u16(), Some(format!("fault:{:?}", d.kind)));
                return bad(status, error, "Injected fault");
            }
            if d.kind == FaultKind::Drop {
                log(599, Some("fault:Drop".into()));
                conn.kill();
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            Some(d)
        }
        None => None,
    };
    let resp = issue(&shared, &headers, &body);
    match kind {
        Some(d) if d.kind == FaultKind::ApplyThenFail => {
            log(500, Some("fault:ApplyThenFail".into()));
            bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "Injected fault",
            )
        }
        Some(d) if d.kind == FaultKind::ApplyThenHang => {
            log(599, Some("fault:ApplyThenHang".into()));
            tokio::time::sleep(d.hang).await;
            conn.kill();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        _ => {
            log(resp.status().as_u16(), None);
            resp
        }
    }
}

const OPERATION: &str = "lwaToken";

fn issue(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(grant) = get("grant_type") else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is missing a required parameter : grant_type",
        );
    };
    if grant == "client_credentials" {
        return grantless(shared, get("client_id"), get("client_secret"), get("scope"));
    }
    if grant != "refresh_token" {
        return bad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server",
        );
    }
    for k in ["refresh_token", "client_id", "client_secret"] {
        if get(k).unwrap_or("").is_empty() {
            return bad(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("The request is missing a required parameter : {k}"),
            );
        }
    }
    let (rt, cid, cs) = (
        get("refresh_token").unwrap_or(""),
        get("client_id").unwrap_or(""),
        get("client_secret").unwrap_or(""),
    );
    let mut st = shared.lock();
    let Some(c) = st.credentials.iter().find(|c| c.client_id == cid) else {
        return bad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    };
    if c.client_secret != cs {
        return bad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if c.refresh_token != rt {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The request has an invalid grant parameter : refresh_token",
        );
    }
    let bytes: [u8; 24] = st.rng.random();
    let token = format!("Atza|sim{}", hex_encode(&bytes));
    let ttl = st.token_ttl;
    st.tokens.insert(token.clone(), Utc::now() + ttl);
    st.tokens_issued += 1;
    let expires_in = ttl.num_seconds();
    drop(st);
    (
        StatusCode::OK,
        [("cache-control", "no-store")],
        Json(json!({
            "access_token": token,
            "refresh_token": rt,
            "token_type": "bearer",
            "expires_in": expires_in,
        })),
    )
        .into_response()
}

/// Scopes a grantless (`client_credentials`) token may be issued for.
pub const GRANTLESS_SCOPES: [&str; 2] = [
    "sellingpartnerapi::notifications",
    "sellingpartnerapi::client_credential:rotation",
];

/// `grant_type=client_credentials`: a token for the app itself, without a seller.
fn grantless(
    shared: &Shared,
    client_id: Option<&str>,
    client_secret: Option<&str>,
    scope: Option<&str>,
) -> Response {
    for (k, v) in [
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("scope", scope),
    ] {
        if v.unwrap_or("").is_empty() {
            return bad(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("The request is missing a required parameter : {k}"),
            );
        }
    }
    let scope = scope.unwrap_or("");
    if !GRANTLESS_SCOPES.contains(&scope) {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The request has an invalid parameter : scope",
        );
    }
    let mut st = shared.lock();
    let known = st.credentials.iter().any(|c| {
        Some(c.client_id.as_str()) == client_id && Some(c.client_secret.as_str()) == client_secret
    });
    if !known {
        return bad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let bytes: [u8; 24] = st.rng.random();
    let token = format!("Atc|sim{}", hex_encode(&bytes));
    let ttl = st.token_ttl;
    st.tokens.insert(token.clone(), Utc::now() + ttl);
    st.grantless_tokens.insert(token.clone());
    st.tokens_issued += 1;
    let expires_in = ttl.num_seconds();
    drop(st);
    (
        StatusCode::OK,
        [("cache-control", "no-store")],
        Json(json!({
            "access_token": token,
            "scope": scope,
            "token_type": "bearer",
            "expires_in": expires_in,
        })),
    )
        .into_response()
}

fn bad(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(lwa_error(error, description))).into_response()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
