//! Login with Amazon: `POST /auth/o2/token` with `grant_type=refresh_token`.

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum::body::Bytes;
use chrono::Utc;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;

use crate::errors::lwa_error;
use crate::state::Shared;

pub async fn token(AxState(shared): AxState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return bad(StatusCode::BAD_REQUEST, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(grant) = get("grant_type") else {
        return bad(StatusCode::BAD_REQUEST, "invalid_request", "The request is missing a required parameter : grant_type");
    };
    if grant != "refresh_token" {
        return bad(StatusCode::BAD_REQUEST, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server");
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
    let (rt, cid, cs) = (get("refresh_token").unwrap_or(""), get("client_id").unwrap_or(""), get("client_secret").unwrap_or(""));
    let mut st = shared.lock();
    let Some(c) = st.credentials.iter().find(|c| c.client_id == cid) else {
        return bad(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    };
    if c.client_secret != cs {
        return bad(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    }
    if c.refresh_token != rt {
        return bad(StatusCode::BAD_REQUEST, "invalid_grant", "The request has an invalid grant parameter : refresh_token");
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

fn bad(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(lwa_error(error, description))).into_response()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
