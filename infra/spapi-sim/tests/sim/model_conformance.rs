//! The simulator's own answers against the official models' response schemas: a workload
//! through every operation (successes and errors), then no recorded violations; plus direct
//! checks of generated documents against the model definitions.
use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use spapi_sim::validation::{schema_errors, Models};

#[tokio::test]
async fn every_answer_matches_the_model() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    a.add_skus(&["SKU-1"]).await.unwrap();
    a.set_inventory("MFN1", "SKU-1", 50).await.unwrap();
    for loc in ["FLEX", "MFN1"] {
        let s = sim.shipment(json!({"locationId": loc, "lineItems": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}], "invoiceRequired": true, "gift": true})).await;
        let id = s["id"].as_str().unwrap();
        sim.get(&format!("{SHIPMENTS}?status=ACCEPTED&maxResults=1"))
            .await;
        sim.get(&format!("{SHIPMENTS}/{id}")).await;
        sim.get(&format!("{SHIPMENTS}/{id}/invoice")).await; // 404
        sim.create_packages(&s, "P1").await; // 422
        sim.confirm(id).await;
        sim.confirm(id).await; // 409
        sim.create_packages(&s, "P1").await;
        sim.get(&format!("{SHIPMENTS}/{id}/shippingOptions?packageId=P1"))
            .await;
        sim.call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
            Some(json!({"packageIds": ["P1"]})),
        )
        .await; // 422 invoice first
        sim.call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
            .await;
        sim.get(&format!("{SHIPMENTS}/{id}/invoice")).await;
        sim.call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
            Some(json!({"packageIds": ["P1", "P2"]})),
        )
        .await;
        sim.call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(Sim::one_package(&s, "P1")),
        )
        .await;
        sim.get(&format!("{SHIPMENTS}/{id}/shippingOptions?packageId=P1"))
            .await;
        sim.call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
            .await;
        sim.call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
            Some(json!({"packageIds": ["P1"]})),
        )
        .await;
        sim.call(
            Method::PATCH,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(json!({"status": "SHIPPED"})),
        )
        .await;
        sim.call(
            Method::PATCH,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(json!({"status": "DELIVERED", "subStatus": "DELIVERED"})),
        )
        .await;
        sim.get(&format!("{SHIPMENTS}/{id}")).await;
        sim.get(&format!("{SHIPMENTS}?status=DELIVERED")).await;
        sim.get(&format!("{SHIPMENTS}?status=NOPE")).await; // 400
    }
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let lines: Vec<Value> = s["lineItems"].as_array().unwrap().iter().map(|l| json!({"lineItem": {"id": l["shipmentLineItemId"]}, "reason": "CUSTOMER_REQUESTED"})).collect();
    sim.call(
        Method::POST,
        &format!("{SHIPMENTS}/{}?operation=REJECT", s["id"].as_str().unwrap()),
        Some(json!({"referenceId": "r1", "lineItems": lines})),
    )
    .await;
    sim.get(&format!("{SHIPMENTS}?status=CANCELLED")).await;
    sim.call(Method::POST, INVENTORY, Some(json!({"requests": [
        {"method": "POST", "uri": "/inventory/update?locationId=FLEX&skuId=SKU-1", "body": {"quantity": 3, "clientSequenceNumber": 2}},
        {"method": "POST", "uri": "/inventory/update?locationId=FLEX&skuId=SKU-1", "body": {"quantity": 3, "clientSequenceNumber": 1}},
        {"method": "POST", "uri": "/inventory/fetch?locationId=FLEX&skuId=NOPE"},
        {"method": "GET", "uri": "/inventory/fetch?locationId=NOWHERE&skuId=SKU-1"},
    ]}))).await;
    a.create_return(json!({"shipmentId": s["id"]}))
        .await
        .unwrap();
    let r = sim.get(&format!("{RETURNS}?maxResults=1")).await;
    sim.get(&format!(
        "{RETURNS}/{}",
        r.body["returns"][0]["id"].as_str().unwrap()
    ))
    .await;
    sim.get(&format!("{RETURNS}/NOPE")).await;
    let lp = format!("/listings/2021-08-01/items/S1/SKU-1?marketplaceIds={MP}");
    sim.call(Method::PATCH, &lp, Some(json!({"productType": "PRODUCT", "patches": [{"op": "replace", "path": "/attributes/purchasable_offer", "value": [{"marketplace_id": MP, "currency": "EUR", "our_price": [{"schedule": [{"value_with_tax": 9.5}]}]}]}]}))).await;
    sim.call(Method::PATCH, &lp, Some(json!({"productType": "NOPE", "patches": [{"op": "delete", "path": "/attributes/purchasable_offer"}]}))).await;
    sim.get(&lp).await;

    let state = a.state().await.unwrap();
    assert_eq!(
        state["responseViolations"],
        json!([]),
        "{:#}",
        state["responseViolations"]
    );
    let calls = a.calls(None).await.unwrap();
    let statuses: std::collections::BTreeSet<u64> = calls
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    for s in [200, 204, 207, 400, 404, 409, 422] {
        assert!(
            statuses.contains(&s),
            "the workload covers {s}: {statuses:?}"
        );
    }
    let ops: std::collections::BTreeSet<&str> = calls
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops.len(),
        16,
        "every simulated operation (and lwaToken) ran: {ops:?}"
    );
}

#[tokio::test]
async fn a_bad_answer_would_be_caught() {
    // The checker itself: a shipment missing a required field fails the model's Shipment schema.
    let m = Models::load(&spapi_sim::models::locate().unwrap()).unwrap();
    let v = m
        .definition("externalFulfillmentShipments_2024-09-11.json", "Shipment")
        .unwrap();
    let sim = start().await;
    sim.setup_locations().await;
    let ids = sim
        .handle
        .admin()
        .create_random_shipments("MFN1", 25)
        .await
        .unwrap();
    for id in &ids {
        let mut doc = sim.get(&format!("{SHIPMENTS}/{id}")).await.body;
        assert_eq!(schema_errors(&v, &doc), Vec::<String>::new());
        doc.as_object_mut().unwrap().remove("shippingInfo");
        assert!(!schema_errors(&v, &doc).is_empty());
    }
    let r = m
        .definition("externalFulfillmentReturns_2024-09-11.json", "Return")
        .unwrap();
    let ret = sim
        .handle
        .admin()
        .create_return(json!({"locationId": "MFN1", "sku": "X"}))
        .await
        .unwrap();
    assert_eq!(schema_errors(&r, &ret), Vec::<String>::new());
}
