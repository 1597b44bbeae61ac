//! LWA, the gateway checks (token, User-Agent, headers) and validation against the models.
use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use spapi_sim::{LwaCredentials, SimOptions, Simulator};

async fn lwa(base: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/o2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(f.finish())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn lwa_token_exchange_and_errors() {
    let sim = start().await;
    let base = sim.handle.base_url.clone();
    let ok = [
        ("grant_type", "refresh_token"),
        ("refresh_token", spapi_sim::DEFAULT_REFRESH_TOKEN),
        ("client_id", spapi_sim::DEFAULT_CLIENT_ID),
        ("client_secret", spapi_sim::DEFAULT_CLIENT_SECRET),
    ];
    let (s, v) = lwa(&base, &ok).await;
    assert_eq!(s, 200);
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["token_type"], "bearer");
    let (s, v) = lwa(&base, &ok[1..]).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (s, v) = lwa(
        &base,
        &[("grant_type", "authorization_code"), ok[1], ok[2], ok[3]],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    // client_credentials (grantless) needs a scope.
    let (s, v) = lwa(&base, &[("grant_type", "client_credentials"), ok[2], ok[3]]).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (s, v) = lwa(&base, &[ok[0], ok[1], ok[2], ("client_secret", "wrong")]).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")));
    assert!(v["error_description"].is_string());
    let (s, v) = lwa(
        &base,
        &[ok[0], ("refresh_token", "Atzr|other"), ok[2], ok[3]],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    // replaced credentials
    let creds = LwaCredentials {
        client_id: "cid".into(),
        client_secret: "sec".into(),
        refresh_token: "rt".into(),
    };
    sim.handle
        .admin()
        .set_lwa_credentials(&[creds])
        .await
        .unwrap();
    assert_eq!(lwa(&base, &ok).await.0, 401);
    assert_eq!(
        lwa(
            &base,
            &[
                ok[0],
                ("refresh_token", "rt"),
                ("client_id", "cid"),
                ("client_secret", "sec")
            ]
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn every_route_needs_a_live_token_and_a_user_agent() {
    let sim = start().await;
    sim.setup_locations().await;
    let url = format!("{}{SHIPMENTS}?status=ACCEPTED", sim.handle.base_url);
    let r = sim
        .http
        .get(&url)
        .header("user-agent", "t/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().contains_key("x-amzn-requestid"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "Unauthorized");
    let r = sim
        .http
        .get(&url)
        .header("user-agent", "t/1")
        .header("x-amz-access-token", "Atza|forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = sim
        .http
        .get(&url)
        .header("x-amz-access-token", &sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no User-Agent");
    let ok = sim.get(&format!("{SHIPMENTS}?status=ACCEPTED")).await;
    assert_eq!(ok.status, 200);
    assert!(ok.headers.contains_key("x-amzn-requestid"));
    assert_eq!(ok.headers["x-amzn-ratelimit-limit"], "1.0");
    sim.handle.admin().expire_tokens().await.unwrap();
    let r = sim.get(&format!("{SHIPMENTS}?status=ACCEPTED")).await;
    assert_eq!(r.status, 403);
    assert!(r.body["errors"][0]["details"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn short_lived_tokens_expire() {
    let sim = start_with(SimOptions {
        token_ttl_secs: 1,
        rate_limits: false,
        ..Default::default()
    })
    .await;
    assert_eq!(
        sim.get(&format!("{SHIPMENTS}?status=ACCEPTED"))
            .await
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        sim.get(&format!("{SHIPMENTS}?status=ACCEPTED"))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn requests_are_checked_against_the_model() {
    let sim = start().await;
    sim.setup_locations().await;
    let cases = [
        SHIPMENTS.to_string(),                                 // status required
        format!("{SHIPMENTS}?status=NEW"),                     // not in enum
        format!("{SHIPMENTS}?status=ACCEPTED&status=CREATED"), // exactly one status
        format!("{SHIPMENTS}?status=ACCEPTED&maxResults=101"), // maximum 100
        format!("{SHIPMENTS}?status=ACCEPTED&maxResults=0"),   // minimum 1
        format!("{SHIPMENTS}?status=ACCEPTED&maxResults=ten"), // integer
        format!("{SHIPMENTS}?status=ACCEPTED&locationId={}", "L".repeat(37)), // maxLength 36
        format!("{SHIPMENTS}?status=ACCEPTED&lastUpdatedAfter=yesterday"), // date-time
        format!("{SHIPMENTS}?status=ACCEPTED&channelName=MARKETPLACE1"), // maxLength 10
        format!("{RETURNS}?maxResults=500"),
        format!("{RETURNS}?status=LOST"),
    ];
    for c in &cases {
        let r = sim.get(c).await;
        assert_eq!(r.status, 400, "{c}: {:?}", r.body);
        assert_eq!(r.code(), "SC_00002", "{c}");
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid input"),
            "{c}: {:?}",
            r.body
        );
    }
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    let r = sim
        .call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}?operation=ACCEPT"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    sim.confirm(id).await;
    // body: missing weight, wrong enum, not JSON, none at all
    let mut p = Sim::one_package(&s, "P1");
    p.as_object_mut().unwrap().remove("weight");
    let r = sim
        .call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}/packages"),
            Some(json!({"packages": [p]})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["errors"][0]["details"]
            .as_str()
            .unwrap()
            .contains("weight"),
        "{:?}",
        r.body
    );
    let mut p = Sim::one_package(&s, "P1");
    p["weight"]["weightUnit"] = json!("STONE");
    assert_eq!(
        sim.call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}/packages"),
            Some(json!({"packages": [p]}))
        )
        .await
        .status,
        400
    );
    let r = sim
        .http
        .post(format!("{}{SHIPMENTS}/{id}/packages", sim.handle.base_url))
        .header("x-amz-access-token", &sim.token)
        .header("user-agent", "t/1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = sim
        .call(Method::POST, &format!("{SHIPMENTS}/{id}/packages"), None)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("mandatory"));
    // listings use the generic code
    let r = sim
        .call(
            Method::PATCH,
            "/listings/2021-08-01/items/SELLER/SKU1",
            Some(json!({"productType": "PRODUCT", "patches": []})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "InvalidInput"));
    // unknown path / wrong method
    assert_eq!(
        sim.get("/externalFulfillment/2024-09-11/nothing")
            .await
            .status,
        404
    );
    assert_eq!(
        sim.call(Method::DELETE, &format!("{SHIPMENTS}/{id}"), None)
            .await
            .status,
        405
    );
    // nothing above changed the shipment
    assert_eq!(sim.status_of(id).await, "CONFIRMED");
}

#[tokio::test]
async fn missing_models_are_reported_plainly() {
    let err = Simulator::start(SimOptions {
        models_dir: Some("/nonexistent/models".into()),
        ..Default::default()
    })
    .await
    .err()
    .expect("must fail without models");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/models") && msg.contains("SPAPI_MODELS_DIR"),
        "{msg}"
    );
}

#[tokio::test]
async fn call_log_records_every_request() {
    let sim = start().await;
    sim.get(&format!("{SHIPMENTS}?status=ACCEPTED")).await;
    sim.get(&format!("{SHIPMENTS}?status=BAD")).await;
    let calls = sim
        .handle
        .admin()
        .calls(Some("getShipments"))
        .await
        .unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["status"], 200);
    assert_eq!(calls[1]["status"], 400);
    assert!(calls[1]["requestId"].is_string() && calls[1]["time"].is_string());
    let st = sim.handle.admin().state().await.unwrap();
    assert_eq!(st["callCounts"]["getShipments"], 2);
}

#[tokio::test]
async fn shutdown_is_prompt_and_frees_the_port() {
    let sim = start().await;
    sim.setup_locations().await;
    assert_eq!(
        sim.get(&format!("{SHIPMENTS}?status=ACCEPTED"))
            .await
            .status,
        200
    );
    let addr = sim.handle.addr;
    let t0 = std::time::Instant::now();
    sim.handle.shutdown().await;
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert!(sim
        .http
        .get(format!("http://{addr}/_sim/state"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn lwa_faults_only_when_asked_for_by_name() {
    let sim = start_with(SimOptions {
        rate_limits: false,
        faults: spapi_sim::FaultConfig {
            global: spapi_sim::FaultRule {
                error500_rate: 1.0,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    })
    .await; // a global rule does not touch LWA: start_with fetched a token
    let base = sim.handle.base_url.clone();
    let ok = [
        ("grant_type", "refresh_token"),
        ("refresh_token", spapi_sim::DEFAULT_REFRESH_TOKEN),
        ("client_id", spapi_sim::DEFAULT_CLIENT_ID),
        ("client_secret", spapi_sim::DEFAULT_CLIENT_SECRET),
    ];
    let a = sim.handle.admin();
    a.clear_faults().await.unwrap();
    a.script_faults(
        "lwaToken",
        &[
            spapi_sim::FaultKind::Error503,
            spapi_sim::FaultKind::Drop,
            spapi_sim::FaultKind::ApplyThenFail,
        ],
    )
    .await
    .unwrap();
    let (s, v) = lwa(&base, &ok).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    let dropped = reqwest::Client::new()
        .post(format!("{base}/auth/o2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token")
        .send()
        .await;
    assert!(dropped.is_err());
    let issued = a.state().await.unwrap()["tokensIssued"].as_u64().unwrap();
    assert_eq!(lwa(&base, &ok).await.0, 500);
    assert_eq!(
        a.state().await.unwrap()["tokensIssued"].as_u64().unwrap(),
        issued + 1,
        "applied, then failed"
    );
    assert_eq!(lwa(&base, &ok).await.0, 200);
    let calls = a.calls(Some("lwaToken")).await.unwrap();
    let statuses: Vec<u64> = calls
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 503, 599, 500, 200]);
}
