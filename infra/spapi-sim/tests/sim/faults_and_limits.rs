//! Rate limits and injected faults.
use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::json;
use spapi_sim::{FaultConfig, FaultKind, FaultRule, RateLimit, SimOptions};

#[tokio::test]
async fn token_buckets_answer_429_with_amazons_body_and_header() {
    let sim = start_with(SimOptions {
        empty_page_rate: 0.0,
        ..Default::default()
    })
    .await;
    sim.setup_locations().await;
    // Shipments default: 1 rps, burst 2
    let q = format!("{SHIPMENTS}?status=ACCEPTED");
    let codes: Vec<u16> = futures::future::join_all((0..4).map(|_| sim.get(&q)))
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 2, "{codes:?}");
    let r = sim.get(&format!("{SHIPMENTS}?status=ACCEPTED")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "QuotaExceeded");
    assert_eq!(r.headers["x-amzn-ratelimit-limit"], "1.0");
    assert!(r.headers.contains_key("x-amzn-requestid"));
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        sim.get(&format!("{SHIPMENTS}?status=ACCEPTED"))
            .await
            .status,
        200
    );

    // batchInventory: 50 rps, burst 100 -> 150 at once: about 100 pass
    let body = json!({"requests": [{"method": "POST", "uri": "/inventory/fetch?locationId=FLEX&skuId=X"}]});
    let t0 = Instant::now();
    let results = futures::future::join_all(
        (0..150).map(|_| sim.call(Method::POST, INVENTORY, Some(body.clone()))),
    )
    .await;
    let elapsed = t0.elapsed().as_secs_f64();
    let ok = results.iter().filter(|r| r.status == 207).count();
    let throttled = results.iter().filter(|r| r.status == 429).count();
    assert_eq!(ok + throttled, 150);
    // the burst, plus what 50/s refills while the requests are in flight
    let ceiling = 100 + (50.0 * elapsed).ceil() as usize + 1;
    assert!(
        ok >= 100 && ok <= ceiling,
        "ok={ok} elapsed={elapsed:.3}s ceiling={ceiling}"
    );
    assert!(results
        .iter()
        .filter(|r| r.status == 429)
        .all(|r| r.code() == "QuotaExceeded"));
    assert_eq!(results[0].headers["x-amzn-ratelimit-limit"], "50.0");

    // configurable
    sim.handle
        .admin()
        .set_rate_limit(
            "getReturn",
            RateLimit {
                rate: 0.5,
                burst: 1.0,
            },
        )
        .await
        .unwrap();
    assert_eq!(sim.get(&format!("{RETURNS}/X")).await.status, 404);
    let r = sim.get(&format!("{RETURNS}/X")).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.headers["x-amzn-ratelimit-limit"].to_str().unwrap()
        ),
        (429, "0.5")
    );
    let limits = sim
        .handle
        .admin()
        .call(Method::GET, "rate-limits", None)
        .await
        .unwrap();
    assert_eq!(limits["limits"]["listReturns"]["burst"], 20.0);
    assert_eq!(limits["limits"]["patchListingsItem"]["rate"], 5.0);
}

#[tokio::test]
async fn scripted_faults_throttle_fail_and_drop_without_applying() {
    let sim = start().await;
    sim.setup_locations().await;
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    let a = sim.handle.admin();
    a.script_faults(
        "processShipment",
        &[
            FaultKind::Throttle,
            FaultKind::Error500,
            FaultKind::Error503,
            FaultKind::Drop,
        ],
    )
    .await
    .unwrap();
    let r = sim.confirm(id).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "QuotaExceeded"));
    let r = sim.confirm(id).await;
    assert_eq!((r.status.as_u16(), r.code()), (500, "SC_00000"));
    let r = sim.confirm(id).await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "SC_00001"));
    // dropped: no HTTP response at all
    let err = sim
        .http
        .post(format!(
            "{}{SHIPMENTS}/{id}?operation=CONFIRM",
            sim.handle.base_url
        ))
        .header("x-amz-access-token", &sim.token)
        .header("user-agent", "t/1")
        .send()
        .await
        .expect_err("connection must be closed without a response");
    assert!(!err.is_status(), "{err:?}");
    assert_eq!(
        sim.status_of(id).await,
        "ACCEPTED",
        "none of the faults applied the change"
    );
    assert_eq!(a.confirm_counts(id).await.unwrap().applied, 0);
    assert_eq!(sim.confirm(id).await.status, 204, "the script is used up");
    let log = a.calls(Some("processShipment")).await.unwrap();
    let notes: Vec<_> = log
        .iter()
        .map(|c| c["note"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        notes,
        [
            "fault:Throttle",
            "fault:Error500",
            "fault:Error503",
            "fault:Drop",
            ""
        ]
    );
}

#[tokio::test]
async fn apply_then_fail_and_apply_then_hang_change_state() {
    let sim = start().await;
    sim.setup_locations().await;
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    let a = sim.handle.admin();
    a.script_faults("processShipment", &[FaultKind::ApplyThenFail])
        .await
        .unwrap();
    let r = sim.confirm(id).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        sim.status_of(id).await,
        "CONFIRMED",
        "applied before failing"
    );
    let c = a.confirm_counts(id).await.unwrap();
    assert_eq!((c.requests, c.applied), (1, 1));
    // a blind retry is visible: 409 and a second request
    assert_eq!(sim.confirm(id).await.status, 409);
    assert_eq!(a.confirm_counts(id).await.unwrap().requests, 2);

    let mut cfg = FaultConfig::default();
    cfg.operations.insert(
        "createPackages".into(),
        FaultRule {
            hang_ms: 400,
            script: vec![FaultKind::ApplyThenHang],
            ..Default::default()
        },
    );
    a.set_faults(&cfg).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let err = client
        .post(format!("{}{SHIPMENTS}/{id}/packages", sim.handle.base_url))
        .header("x-amz-access-token", &sim.token)
        .header("user-agent", "t/1")
        .header("content-type", "application/json")
        .body(json!({"packages": [Sim::one_package(&s, "P1")]}).to_string())
        .send()
        .await
        .expect_err("hangs past the client's timeout");
    assert!(err.is_timeout(), "{err:?}");
    assert!(t0.elapsed() < Duration::from_millis(400));
    assert_eq!(
        sim.status_of(id).await,
        "PACKAGE_CREATED",
        "applied before hanging"
    );
    // without a client timeout the connection is closed after the hang, with no response
    a.script_faults("createPackages", &[FaultKind::ApplyThenHang])
        .await
        .unwrap();
    let t0 = Instant::now();
    let err = sim
        .http
        .post(format!("{}{SHIPMENTS}/{id}/packages", sim.handle.base_url))
        .header("x-amz-access-token", &sim.token)
        .header("user-agent", "t/1")
        .header("content-type", "application/json")
        .body(json!({"packages": [Sim::one_package(&s, "P1")]}).to_string())
        .send()
        .await
        .expect_err("closed without response");
    assert!(
        t0.elapsed() >= Duration::from_millis(390),
        "{:?}",
        t0.elapsed()
    );
    assert!(!err.is_status());
}

#[tokio::test]
async fn latency_and_seeded_random_faults() {
    let opts = |seed| SimOptions {
        seed,
        rate_limits: false,
        faults: FaultConfig {
            global: FaultRule {
                error503_rate: 0.3,
                throttle_rate: 0.2,
                ..Default::default()
            },
            operations: [(
                "getReturn".to_string(),
                FaultRule {
                    latency_ms: 150,
                    ..Default::default()
                },
            )]
            .into(),
        },
        ..Default::default()
    };
    let run = |seed| async move {
        let sim = start_with(opts(seed)).await;
        let mut codes = Vec::new();
        for _ in 0..60 {
            codes.push(
                sim.get(&format!("{SHIPMENTS}?status=ACCEPTED"))
                    .await
                    .status
                    .as_u16(),
            );
        }
        let t0 = Instant::now();
        assert_eq!(
            sim.get(&format!("{RETURNS}/R1")).await.status,
            404,
            "getReturn has its own rule: only latency"
        );
        assert!(t0.elapsed() >= Duration::from_millis(150));
        codes
    };
    let a = run(9).await;
    assert_eq!(a, run(9).await, "same seed, same faults");
    let n503 = a.iter().filter(|c| **c == 503).count();
    let n429 = a.iter().filter(|c| **c == 429).count();
    assert!(
        (8..=30).contains(&n503) && (4..=24).contains(&n429),
        "503={n503} 429={n429}"
    );
    assert_eq!(n503 + n429 + a.iter().filter(|c| **c == 200).count(), 60);
}
