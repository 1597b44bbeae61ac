//! batchInventory, Returns and Listings Items prices.
use crate::common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn update(loc: &str, sku: &str, q: i64, csn: i64) -> Value {
    let sku =
        percent_encoding::utf8_percent_encode(sku, percent_encoding::NON_ALPHANUMERIC).to_string();
    json!({"method": "POST", "uri": format!("/inventory/update?locationId={loc}&skuId={sku}"),
           "body": {"quantity": q, "clientSequenceNumber": csn, "marketplaceAttributes": {"marketplaceId": MP, "channelName": "FBA"}}})
}

fn fetch(loc: &str, sku: &str) -> Value {
    let sku =
        percent_encoding::utf8_percent_encode(sku, percent_encoding::NON_ALPHANUMERIC).to_string();
    json!({"method": "POST", "uri": format!("/inventory/fetch?locationId={loc}&skuId={sku}")})
}

#[tokio::test]
async fn batch_inventory_absolute_quantities_and_per_item_errors() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    a.add_skus(&["MUG 1/red", "TEA"]).await.unwrap();
    let r = sim
        .call(
            Method::POST,
            INVENTORY,
            Some(json!({"requests": [
                update("FLEX", "MUG 1/red", 15, 100),
                update("FLEX", "TEA", 4, 100),
                update("FLEX", "UNKNOWN", 1, 1),
                update("NOWHERE", "TEA", 1, 1),
                fetch("FLEX", "TEA"),
            ]})),
        )
        .await;
    assert_eq!(r.status, 207, "{:?}", r.body);
    let res = r.body["responses"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    assert_eq!(res[0]["status"]["statusCode"], 200);
    assert_eq!(res[0]["body"]["skuId"], "MUG 1/red");
    assert_eq!(res[0]["body"]["sellableQuantity"], 15);
    assert_eq!(res[0]["body"]["clientSequenceNumber"], 100);
    assert_eq!(res[2]["status"]["statusCode"], 400);
    assert_eq!(
        res[2]["body"]["actionableErrors"][0]["errorType"],
        "INVALID_SKU"
    );
    assert_eq!(
        res[3]["body"]["actionableErrors"][0]["errorType"],
        "INVALID_LOCATION"
    );
    assert_eq!(res[4]["body"]["sellableQuantity"], 4);
    // stale and equal sequence numbers are rejected for that item only
    let r = sim
        .call(Method::POST, INVENTORY, Some(json!({"requests": [update("FLEX", "MUG 1/red", 3, 99), update("FLEX", "TEA", 9, 100), update("FLEX", "TEA", 7, 101)]})))
        .await;
    let res = r.body["responses"].as_array().unwrap();
    assert_eq!(res[0]["status"]["statusCode"], 409);
    assert_eq!(
        res[0]["body"]["sellableQuantity"], 15,
        "the newer quantity stays"
    );
    assert_eq!(
        res[0]["body"]["actionableErrors"][0]["errorType"],
        "STALE_CLIENT_SEQUENCE_NUMBER"
    );
    assert_eq!(res[1]["status"]["statusCode"], 409);
    assert_eq!(res[2]["status"]["statusCode"], 200);
    let inv = a.inventory("FLEX", "TEA").await.unwrap();
    assert_eq!(
        (
            inv["sellableQuantity"].as_i64(),
            inv["updatesRejected"].as_i64()
        ),
        (Some(7), Some(1))
    );
    // reservedQuantity follows open shipments
    let s = sim
        .shipment(json!({"locationId": "FLEX", "lineItems": [{"sku": "TEA", "quantity": 2}]}))
        .await;
    let r = sim
        .call(
            Method::POST,
            INVENTORY,
            Some(json!({"requests": [fetch("FLEX", "TEA")]})),
        )
        .await;
    assert_eq!(r.body["responses"][0]["body"]["reservedQuantity"], 2);
    assert_eq!(r.body["responses"][0]["body"]["sellableQuantity"], 5);
    a.cancel_shipment(s["id"].as_str().unwrap()).await.unwrap();
    let r = sim
        .call(
            Method::POST,
            INVENTORY,
            Some(json!({"requests": [fetch("FLEX", "TEA")]})),
        )
        .await;
    assert_eq!(r.body["responses"][0]["body"]["reservedQuantity"], 0);
    // wrong channel for the location
    let mut u = update("MFN1", "TEA", 1, 5);
    u["body"]["marketplaceAttributes"]["channelName"] = json!("FBA");
    let r = sim
        .call(Method::POST, INVENTORY, Some(json!({"requests": [u]})))
        .await;
    assert_eq!(r.body["responses"][0]["status"]["statusCode"], 400);
}

#[tokio::test]
async fn batch_size_is_one_to_ten() {
    let sim = start().await;
    sim.setup_locations().await;
    let eleven: Vec<Value> = (0..11).map(|_| fetch("FLEX", "X")).collect();
    let r = sim
        .call(Method::POST, INVENTORY, Some(json!({ "requests": eleven })))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "BATCH_SIZE_EXCEED"));
    let r = sim
        .call(Method::POST, INVENTORY, Some(json!({ "requests": [] })))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "SC_00002"));
    let r = sim
        .call(
            Method::POST,
            INVENTORY,
            Some(json!({ "requests": [{"method": "PUT", "uri": "/inventory/fetch"}] })),
        )
        .await;
    assert_eq!(r.status, 400, "PUT is not in the model's HttpMethod enum");
}

#[tokio::test]
async fn returns_filter_paginate_and_move() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    let s = sim
        .shipment(json!({"locationId": "FLEX", "lineItems": [{"sku": "RET-1", "quantity": 1}]}))
        .await;
    let first = a
        .create_return(json!({"shipmentId": s["id"]}))
        .await
        .unwrap();
    assert_eq!(first["merchantSku"], "RET-1");
    assert_eq!(first["marketplaceChannelDetails"]["shipmentId"], s["id"]);
    for i in 0..14 {
        a.create_return(
            json!({"locationId": if i % 2 == 0 { "FLEX" } else { "MFN1" }, "sku": format!("R{i}")}),
        )
        .await
        .unwrap();
    }
    let id = first["id"].as_str().unwrap();
    let r = sim.get(&format!("{RETURNS}/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "CREATED");
    assert_eq!(sim.get(&format!("{RETURNS}/NOPE")).await.status, 404);
    let moved = a
        .set_return_status(id, "PICKED_FROM_CUSTOMER")
        .await
        .unwrap();
    assert!(
        moved["lastUpdatedDateTime"].as_str().unwrap()
            > first["lastUpdatedDateTime"].as_str().unwrap()
    );
    assert!(a.set_return_status(id, "LOST").await.is_err());
    // pages of 4 over the 8 FLEX returns
    let (mut all, mut tok) = (Vec::new(), None::<String>);
    loop {
        let mut q = format!("{RETURNS}?returnLocationId=FLEX&maxResults=4");
        if let Some(t) = &tok {
            q.push_str(&format!("&nextToken={t}"));
        }
        let r = sim.get(&q).await;
        assert_eq!(r.status, 200);
        all.extend(
            r.body["returns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].clone()),
        );
        match r.body["nextToken"].as_str() {
            Some(t) => tok = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(all.len(), 8);
    let r = sim
        .get(&format!("{RETURNS}?status=PICKED_FROM_CUSTOMER"))
        .await;
    assert_eq!(r.body["returns"].as_array().unwrap().len(), 1);
    let rma = first["returnMetadata"]["rmaId"].as_str().unwrap();
    assert_eq!(
        sim.get(&format!("{RETURNS}?rmaId={rma}")).await.body["returns"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // lastUpdatedSince needs returnLocationId and status
    assert_eq!(
        sim.get(&format!("{RETURNS}?lastUpdatedSince=2020-01-01T00:00:00Z"))
            .await
            .status,
        400
    );
    let r = sim.get(&format!("{RETURNS}?lastUpdatedSince=2020-01-01T00:00:00Z&returnLocationId=FLEX&status=PICKED_FROM_CUSTOMER")).await;
    assert_eq!(r.body["returns"].as_array().unwrap().len(), 1);
    assert_eq!(
        sim.get(&format!("{RETURNS}?createdSince=2099-01-01T00:00:00Z"))
            .await
            .body["returns"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

fn price_patch(mp: &str, currency: &str, price: Value) -> Value {
    json!({"productType": "PRODUCT", "patches": [{"op": "replace", "path": "/attributes/purchasable_offer",
        "value": [{"marketplace_id": mp, "currency": currency, "our_price": [{"schedule": [{"value_with_tax": price}]}]}]}]})
}

#[tokio::test]
async fn listings_prices_accepted_or_invalid() {
    let sim = start().await;
    let url = format!(
        "/listings/2021-08-01/items/A1SELLER/{}?marketplaceIds={MP}",
        "MUG%201%2Fred"
    );
    let r = sim
        .call(
            Method::PATCH,
            &url,
            Some(price_patch(MP, "EUR", json!(19.99))),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "ACCEPTED");
    assert_eq!(r.body["sku"], "MUG 1/red");
    assert!(r.body["submissionId"].is_string());
    let l = sim.handle.admin().listings().await.unwrap();
    assert_eq!(l["MUG 1/red"]["prices"][MP], "19.99");
    for (body, why) in [
        (price_patch(MP, "EUR", json!(-1)), "negative"),
        (price_patch(MP, "USD", json!(5)), "currency"),
        (
            price_patch("ATVPDKIKX0DER", "USD", json!(5)),
            "marketplace not requested",
        ),
        (
            {
                let mut b = price_patch(MP, "EUR", json!(5));
                b["productType"] = json!("SPACESHIP");
                b
            },
            "product type",
        ),
        (
            {
                let mut b = price_patch(MP, "EUR", json!(5));
                b["patches"][0]["path"] = json!("/attributes/purchasable_offer/0/our_price");
                b
            },
            "not top-level",
        ),
    ] {
        let r = sim.call(Method::PATCH, &url, Some(body)).await;
        assert_eq!(r.status, 200, "{why}");
        assert_eq!(r.body["status"], "INVALID", "{why}");
        assert_eq!(r.body["issues"][0]["severity"], "ERROR", "{why}");
    }
    let l = sim.handle.admin().listings().await.unwrap();
    assert_eq!(
        l["MUG 1/red"]["prices"][MP], "19.99",
        "invalid patches change nothing"
    );
    let r = sim
        .call(
            Method::PATCH,
            &format!("{url}&mode=VALIDATION_PREVIEW"),
            Some(price_patch(MP, "EUR", json!(1))),
        )
        .await;
    assert_eq!(r.body["status"], "VALID");
    assert_eq!(
        sim.handle.admin().listings().await.unwrap()["MUG 1/red"]["prices"][MP],
        "19.99"
    );
    // invalid op is a schema error
    let mut b = price_patch(MP, "EUR", json!(1));
    b["patches"][0]["op"] = json!("upsert");
    assert_eq!(sim.call(Method::PATCH, &url, Some(b)).await.status, 400);
    // missing marketplaceIds
    assert_eq!(
        sim.call(
            Method::PATCH,
            "/listings/2021-08-01/items/A1SELLER/X",
            Some(price_patch(MP, "EUR", json!(1)))
        )
        .await
        .status,
        400
    );
    let g = sim
        .get(&format!(
            "/listings/2021-08-01/items/A1SELLER/MUG%201%2Fred?marketplaceIds={MP}"
        ))
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(
        g.body["attributes"]["purchasable_offer"][0]["currency"],
        "EUR"
    );
}

#[tokio::test]
async fn orders_take_sellable_stock_and_orders_beyond_the_truth_count_as_oversold() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    a.add_skus(&["LAMP"]).await.unwrap();
    a.set_inventory("FLEX", "LAMP", 3).await.unwrap();
    a.set_truth("FLEX", "LAMP", 2).await.unwrap();
    let line = |q: i64| json!({"locationId": "FLEX", "lineItems": [{"sku": "LAMP", "quantity": q, "unitPrice": "5.00"}]});
    // More than sellable: a buyer cannot order it.
    let err = a.create_shipment(line(4)).await.unwrap_err().to_string();
    assert!(err.contains("NOTHING_SELLABLE"), "{err}");
    // Amazon offered 3 while the warehouse had 2: the third unit is oversold.
    a.create_shipment(line(2)).await.unwrap();
    let v = a.inventory("FLEX", "LAMP").await.unwrap();
    assert_eq!(
        (
            v["sellableQuantity"].as_i64(),
            v["reservedQuantity"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(a.oversold().await.unwrap()["oversoldUnits"], 0);
    let id = a.create_shipment(line(1)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = a.oversold().await.unwrap();
    assert_eq!(
        (o["oversoldOrders"].as_i64(), o["oversoldUnits"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(o["lines"][0]["shipmentId"], id.as_str());
    // Nothing sellable left: refused; an untracked SKU is not checked.
    assert!(a.create_shipment(line(1)).await.is_err());
    a.create_shipment(json!({"locationId": "FLEX", "lineItems": [{"sku": "OTHER", "quantity": 1, "unitPrice": "5.00"}]}))
        .await
        .unwrap();
}
