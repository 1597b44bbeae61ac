//! EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE to an HTTP URL.
use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};

async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

async fn wait_for(got: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    got.lock().unwrap().clone()
}

#[tokio::test]
async fn status_changes_are_delivered_to_an_http_destination() {
    let sim = start().await;
    sim.setup_locations().await;
    let (url, got) = receiver().await;
    let a = sim.handle.admin();
    a.add_notification_destination(json!({ "url": url }))
        .await
        .unwrap();
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    sim.confirm(id).await;
    let n = wait_for(&got, 2).await;
    assert_eq!(n.len(), 2);
    let last = &n[1];
    assert_eq!(
        last["notificationType"],
        "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE"
    );
    assert_eq!(last["notificationVersion"], "1.0");
    let p = &last["payload"]["externalFulfillmentShipmentNotification"];
    assert_eq!(p["shipmentId"], id);
    assert_eq!(p["shipmentStatus"], "CONFIRMED");
    assert_eq!(p["locationId"], "FLEX");
    assert_eq!(p["channelName"], "FBA");
    assert_eq!(p["merchantId"], "A1SIMMERCHANT01");
    assert!(last["eventTime"].is_string());
    for k in [
        "applicationId",
        "subscriptionId",
        "publishTime",
        "notificationId",
    ] {
        assert!(last["notificationMetadata"][k].is_string(), "{k}");
    }
    assert_eq!(
        n[0]["payload"]["externalFulfillmentShipmentNotification"]["shipmentStatus"],
        "ACCEPTED"
    );
    let log = a.notifications().await.unwrap();
    assert!(log.iter().all(|l| l["outcome"] == "DELIVERED"));
}

#[tokio::test]
async fn duplicated_and_reordered_on_request() {
    let sim = start().await;
    sim.setup_locations().await;
    let (url, got) = receiver().await;
    let a = sim.handle.admin();
    a.add_notification_destination(json!({ "url": url }))
        .await
        .unwrap();
    a.set_notification_options(
        json!({"duplicateRate": 1.0, "reorder": true, "reorderWindowMs": 500}),
    )
    .await
    .unwrap();
    let ids = a.create_random_shipments("FLEX", 6).await.unwrap();
    let n = wait_for(&got, 12).await;
    assert_eq!(n.len(), 12);
    let mut per_id = std::collections::HashMap::<String, usize>::new();
    for x in &n {
        *per_id
            .entry(
                x["notificationMetadata"]["notificationId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), 6);
    assert!(per_id.values().all(|c| *c == 2), "each notification twice");
    let order: Vec<&str> = n
        .iter()
        .map(|x| {
            x["payload"]["externalFulfillmentShipmentNotification"]["shipmentId"]
                .as_str()
                .unwrap()
        })
        .collect();
    let mut dedup = order.clone();
    dedup.dedup();
    let first_seen: Vec<&str> = order.iter().fold(Vec::new(), |mut v, s| {
        if !v.contains(s) {
            v.push(*s);
        }
        v
    });
    assert_ne!(
        first_seen,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "seeded delays reorder delivery"
    );
}

#[tokio::test]
async fn an_unreachable_destination_is_retried_then_logged() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    // a port nobody listens on, then a receiver that appears a moment later
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    a.add_notification_destination(json!({ "url": format!("http://{addr}/hook") }))
        .await
        .unwrap();
    sim.shipment(json!({"locationId": "FLEX"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let n = wait_for(&got, 1).await;
    assert_eq!(n.len(), 1, "delivered at least once after retries");
    let log = a.notifications().await.unwrap();
    assert_eq!(log[0]["outcome"], "DELIVERED");
    assert!(log[0]["attempts"].as_u64().unwrap() >= 2);
}
