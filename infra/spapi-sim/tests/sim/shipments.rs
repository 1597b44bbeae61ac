//! The shipment state machine through Amazon's paths.
use crate::common;

use base64::Engine;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn seller_flex_happy_path_to_delivered() {
    let sim = start().await;
    sim.setup_locations().await;
    let s = sim
        .shipment(json!({"locationId": "FLEX", "lineItems": [{"sku": "MUG-1", "quantity": 2, "unitPrice": "12.50"}, {"sku": "TEA 2/x", "quantity": 1}]}))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["status"], "ACCEPTED");
    assert_eq!(s["marketplaceAttributes"]["channelName"], "FBA");
    assert_eq!(
        s["lineItems"][0]["charges"][0]["totalCharge"]["netAmount"]["value"],
        "25.00"
    );
    let mut last = s["lastUpdatedDateTime"].as_str().unwrap().to_string();
    let mut moved = |v: &serde_json::Value| {
        let t = v["lastUpdatedDateTime"].as_str().unwrap().to_string();
        assert!(t > last, "lastUpdatedDateTime must move: {t} <= {last}");
        last = t;
    };

    assert_eq!(sim.confirm(&id).await.status, 204);
    let g = sim.get(&format!("{SHIPMENTS}/{id}")).await;
    assert_eq!(g.body["status"], "CONFIRMED");
    moved(&g.body);

    assert_eq!(sim.create_packages(&s, "P1").await.status, 204);
    let g = sim.get(&format!("{SHIPMENTS}/{id}")).await;
    assert_eq!(g.body["status"], "PACKAGE_CREATED");
    assert_eq!(g.body["packages"][0]["status"], "CREATED");
    moved(&g.body);

    // Seller Flex: no shipping options.
    let o = sim
        .get(&format!("{SHIPMENTS}/{id}/shippingOptions?packageId=P1"))
        .await;
    assert_eq!(o.status, 200);
    assert!(o.body.get("shippingOptions").is_none());
    assert_eq!(sim.status_of(&id).await, "PICKUP_SLOT_RETRIEVED");

    // retrieveInvoice before generateInvoice: 404
    let ri = sim.get(&format!("{SHIPMENTS}/{id}/invoice")).await;
    assert_eq!(ri.status, 404);
    assert_eq!(ri.code(), "SC_00003");
    let inv = sim
        .call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
        .await;
    assert_eq!(inv.status, 200);
    assert_eq!(inv.body["document"]["format"], "PDF");
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(inv.body["document"]["content"].as_str().unwrap())
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
    assert_eq!(sim.status_of(&id).await, "INVOICE_GENERATED");
    let again = sim
        .call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
        .await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "SC_00004"));
    assert_eq!(
        sim.get(&format!("{SHIPMENTS}/{id}/invoice")).await.body,
        inv.body
    );

    let lab = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
            Some(json!({"packageIds": ["P1"]})),
        )
        .await;
    assert_eq!(lab.status, 200, "{:?}", lab.body);
    let l = &lab.body["packageShipLabelList"][0];
    assert_eq!(l["status"], "SUCCESS");
    let tracking = l["shipLabelMetadata"]["trackingId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tracking.starts_with("SIM"));
    let url = l["fileData"]["url"].as_str().unwrap();
    let doc = sim.http.get(url).send().await.unwrap();
    assert_eq!(doc.status(), 200);
    assert_eq!(doc.headers()["content-type"], "x.application/zpl");
    let zpl = doc.text().await.unwrap();
    assert!(zpl.starts_with("^XA") && zpl.contains(&tracking));
    // a tampered signature is refused like S3 would
    let bad = sim
        .http
        .get(url.replace("Signature=", "Signature=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    let g = sim.get(&format!("{SHIPMENTS}/{id}")).await.body;
    assert_eq!(
        (g["status"].as_str(), g["subStatus"].as_str()),
        (Some("SHIPLABEL_GENERATED"), Some("PENDING_PICKUP"))
    );

    // GENERATE twice: 409; REGENERATE: new tracking ID
    let twice = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
            Some(json!({"packageIds": ["P1"]})),
        )
        .await;
    assert_eq!((twice.status.as_u16(), twice.code()), (409, "SC_00004"));
    let re = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=REGENERATE"),
            Some(json!({"packageIds": ["P1"]})),
        )
        .await;
    assert_eq!(re.status, 200);
    assert_ne!(
        re.body["packageShipLabelList"][0]["shipLabelMetadata"]["trackingId"],
        tracking.as_str()
    );

    let ship = sim
        .call(
            Method::PATCH,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(json!({"status": "SHIPPED"})),
        )
        .await;
    assert_eq!(ship.status, 204, "{:?}", ship.body);
    let g = sim.get(&format!("{SHIPMENTS}/{id}")).await.body;
    assert_eq!(
        (g["status"].as_str(), g["subStatus"].as_str()),
        (Some("SHIPPED"), Some("PICKED_UP"))
    );
    let ship2 = sim
        .call(
            Method::PATCH,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(json!({"status": "SHIPPED"})),
        )
        .await;
    assert_eq!(ship2.status, 409);
    let a = sim.handle.admin();
    let d = a.advance_shipment(&id, "DELIVERED").await.unwrap();
    assert_eq!(d["status"], "DELIVERED");
    assert_eq!(d["packages"][0]["status"], "DELIVERED");
    let st = a.shipment(&id).await.unwrap();
    let statuses: Vec<&str> = st["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "ACCEPTED",
            "CONFIRMED",
            "PACKAGE_CREATED",
            "PICKUP_SLOT_RETRIEVED",
            "INVOICE_GENERATED",
            "SHIPLABEL_GENERATED",
            "SHIPLABEL_GENERATED",
            "SHIPPED",
            "DELIVERED"
        ]
    );
}

#[tokio::test]
async fn mfn_needs_options_then_pdf_label_and_created_without_stock() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    // no stock: CREATED
    let s0 = sim
        .shipment(json!({"locationId": "MFN1", "lineItems": [{"sku": "LAMP", "quantity": 1}]}))
        .await;
    assert_eq!(s0["status"], "CREATED");
    assert!(s0["shipmentInfo"]["orderStatesEligibleForRejection"]
        .as_array()
        .unwrap()
        .contains(&json!("CREATED")));
    // with stock: ACCEPTED, reserved
    a.set_inventory("MFN1", "LAMP", 5).await.unwrap();
    let s = sim
        .shipment(json!({"locationId": "MFN1", "lineItems": [{"sku": "LAMP", "quantity": 2}]}))
        .await;
    assert_eq!(s["status"], "ACCEPTED");
    let inv = a.inventory("MFN1", "LAMP").await.unwrap();
    assert_eq!(
        (
            inv["sellableQuantity"].as_i64(),
            inv["reservedQuantity"].as_i64()
        ),
        (Some(3), Some(2))
    );
    let id = s["id"].as_str().unwrap();
    assert_eq!(sim.confirm(id).await.status, 204);
    assert_eq!(sim.create_packages(&s, "BOX-1").await.status, 204);
    let early = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
            Some(json!({"packageIds": ["BOX-1"]})),
        )
        .await;
    assert_eq!((early.status.as_u16(), early.code()), (422, "SC_00002"));
    let o = sim
        .get(&format!("{SHIPMENTS}/{id}/shippingOptions?packageId=BOX-1"))
        .await;
    assert_eq!(o.status, 200);
    let opts = o.body["shippingOptions"].as_array().unwrap();
    assert!(opts.len() >= 2);
    let chosen = opts[1]["shippingOptionId"].as_str().unwrap();
    assert_eq!(o.body["recommendedShippingOption"]["shipBy"], "MARKETPLACE");
    let lab = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE&shippingOptionId={chosen}"),
            Some(json!({"packageIds": ["BOX-1", "NOPE"]})),
        )
        .await;
    assert_eq!(lab.status, 200);
    let list = lab.body["packageShipLabelList"].as_array().unwrap();
    assert_eq!(list[0]["shipLabelMetadata"]["shippingOptionId"], chosen);
    assert_eq!(list[1]["status"], "FAILURE");
    assert_eq!(list[1]["errorDetails"]["code"], "SC_00003");
    let pdf = sim
        .http
        .get(list[0]["fileData"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
    // shipped: reservation released, sellable stays
    assert_eq!(
        sim.call(
            Method::PATCH,
            &format!("{SHIPMENTS}/{id}/packages/BOX-1"),
            Some(json!({"status": "SHIPPED"}))
        )
        .await
        .status,
        204
    );
    let inv = a.inventory("MFN1", "LAMP").await.unwrap();
    assert_eq!(
        (
            inv["sellableQuantity"].as_i64(),
            inv["reservedQuantity"].as_i64()
        ),
        (Some(3), Some(0))
    );
}

#[tokio::test]
async fn repeated_and_out_of_order_calls() {
    let sim = start().await;
    sim.setup_locations().await;
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    // packages before CONFIRM: 422
    let r = sim.create_packages(&s, "P1").await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "SC_00002"));
    // invoice before packages: 422
    let r = sim
        .call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(sim.confirm(id).await.status, 204);
    let again = sim.confirm(id).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "SC_00004"));
    let c = sim.handle.admin().confirm_counts(id).await.unwrap();
    assert_eq!((c.requests, c.applied), (2, 1));
    // packages that do not hold every unit: 400
    let mut p = Sim::one_package(&s, "P1");
    p["packageLineItems"][0]["quantity"] = json!(99);
    let r = sim
        .call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}/packages"),
            Some(json!({"packages": [p]})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "SC_00002"));
    assert_eq!(sim.create_packages(&s, "P1").await.status, 204);
    assert_eq!(sim.create_packages(&s, "P1").await.status, 409);
    // unknown package: 404
    let r = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/packages/P9"),
            Some(Sim::one_package(&s, "P9")),
        )
        .await;
    assert_eq!(r.status, 404);
    // updatePackage after labels: back to PACKAGE_CREATED, labels and invoice void
    sim.get(&format!("{SHIPMENTS}/{id}/shippingOptions?packageId=P1"))
        .await;
    sim.call(
        Method::PUT,
        &format!("{SHIPMENTS}/{id}/shipLabels?operation=GENERATE"),
        Some(json!({"packageIds": ["P1"]})),
    )
    .await;
    assert_eq!(sim.status_of(id).await, "SHIPLABEL_GENERATED");
    let mut p = Sim::one_package(&s, "P1");
    p["weight"] = json!({"value": "1.2", "weightUnit": "KG"});
    let r = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(p.clone()),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let g = sim.get(&format!("{SHIPMENTS}/{id}")).await.body;
    assert_eq!(g["status"], "PACKAGE_CREATED");
    assert_eq!(g["packages"][0]["weight"]["value"], "1.2");
    let r = sim
        .call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/shipLabels?operation=REGENERATE"),
            Some(json!({"packageIds": ["P1"]})),
        )
        .await;
    assert_eq!(r.status, 422);
    // id mismatch between path and body
    p["id"] = json!("OTHER");
    assert_eq!(
        sim.call(
            Method::PUT,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(p)
        )
        .await
        .status,
        400
    );
    // SHIPPED before label: 422
    let r = sim
        .call(
            Method::PATCH,
            &format!("{SHIPMENTS}/{id}/packages/P1"),
            Some(json!({"status": "SHIPPED"})),
        )
        .await;
    assert_eq!(r.status, 422);
    // unknown shipment
    assert_eq!(sim.get(&format!("{SHIPMENTS}/NOPE")).await.status, 404);
}

#[tokio::test]
async fn reject_only_when_eligible_and_whole() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    a.set_inventory("FLEX", "SKU-A", 10).await.unwrap();
    let s = sim.shipment(json!({"locationId": "FLEX", "lineItems": [{"sku": "SKU-A", "quantity": 2}, {"sku": "SKU-B", "quantity": 1}]})).await;
    let id = s["id"].as_str().unwrap();
    assert_eq!(
        a.inventory("FLEX", "SKU-A").await.unwrap()["sellableQuantity"],
        8
    );
    let body = |lines: Vec<&str>| json!({"referenceId": "rej-1", "lineItems": lines.iter().map(|l| json!({"lineItem": {"id": l, "quantity": 0}, "reason": "OUT_OF_STOCK"})).collect::<Vec<_>>()});
    let url = format!("{SHIPMENTS}/{id}?operation=REJECT");
    assert_eq!(sim.call(Method::POST, &url, None).await.status, 400);
    assert_eq!(
        sim.call(Method::POST, &url, Some(body(vec!["1"])))
            .await
            .status,
        422
    );
    let r = sim.call(Method::POST, &url, Some(json!({"referenceId": "x", "lineItems": [{"lineItem": {"id": "1"}}, {"lineItem": {"id": "2"}}]}))).await;
    assert_eq!(r.status, 400, "reason is required");
    assert_eq!(
        sim.call(Method::POST, &url, Some(body(vec!["1", "2"])))
            .await
            .status,
        204
    );
    let g = sim.get(&format!("{SHIPMENTS}/{id}")).await.body;
    assert_eq!(g["status"], "CANCELLED");
    let c = &g["lineItems"][0]["cancellations"][0];
    assert_eq!(
        (
            c["cancellationType"].as_str(),
            c["cancelledQuantity"].as_i64()
        ),
        (Some("SELLER_REJECTED"), Some(2))
    );
    assert_eq!(c["cancellationReason"], "OUT_OF_STOCK");
    // units back to sellable
    assert_eq!(
        a.inventory("FLEX", "SKU-A").await.unwrap()["sellableQuantity"],
        10
    );
    assert_eq!(
        sim.call(Method::POST, &url, Some(body(vec!["1", "2"])))
            .await
            .status,
        409
    );
    assert_eq!(sim.confirm(id).await.status, 422);

    // not eligible once labelled
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    sim.confirm(id).await;
    sim.create_packages(&s, "P").await;
    sim.get(&format!("{SHIPMENTS}/{id}/shippingOptions?packageId=P"))
        .await;
    sim.call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
        .await;
    assert_eq!(sim.status_of(id).await, "INVOICE_GENERATED");
    let lines: Vec<String> = s["lineItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["shipmentLineItemId"].as_str().unwrap().to_string())
        .collect();
    let r = sim
        .call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}?operation=REJECT"),
            Some(body(lines.iter().map(String::as_str).collect())),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "SC_00002"));
}

#[tokio::test]
async fn marketplace_cancels_lines_then_whole() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    let s = sim.shipment(json!({"locationId": "FLEX", "lineItems": [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}]})).await;
    let id = s["id"].as_str().unwrap();
    let d = a.cancel_lines(id, &[("1", 2)]).await.unwrap();
    assert_eq!(d["status"], "ACCEPTED");
    assert_eq!(
        d["lineItems"][0]["cancellations"][0]["cancelledQuantity"],
        2
    );
    assert_eq!(
        d["lineItems"][0]["cancellations"][0]["cancellationType"],
        "MARKETPLACE_CANCELLED"
    );
    assert_eq!(
        a.inventory("FLEX", "A").await.unwrap()["reservedQuantity"],
        1
    );
    // packages now must hold the 1 open unit of line 1
    sim.confirm(id).await;
    let p = json!({"packages": [{"id": "P", "dimensions": {"length": {"value": "1", "dimensionUnit": "IN"}, "width": {"value": "1", "dimensionUnit": "IN"}, "height": {"value": "1", "dimensionUnit": "IN"}},
        "weight": {"value": "1", "weightUnit": "LB"}, "packageLineItems": [{"packageLineItemId": "1", "quantity": 1}, {"packageLineItemId": "2", "quantity": 1}]}]});
    assert_eq!(
        sim.call(Method::POST, &format!("{SHIPMENTS}/{id}/packages"), Some(p))
            .await
            .status,
        204
    );
    let d = a.cancel_shipment(id).await.unwrap();
    assert_eq!(d["status"], "CANCELLED");
    assert_eq!(
        d["lineItems"][0]["cancellations"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        d["lineItems"][1]["cancellations"][0]["cancelledQuantity"],
        1
    );
    assert_eq!(
        a.inventory("FLEX", "A").await.unwrap()["reservedQuantity"],
        0
    );
    assert!(a.cancel_shipment(id).await.is_err());
    // the seller's next call on it is refused
    assert_eq!(
        sim.call(Method::POST, &format!("{SHIPMENTS}/{id}/invoice"), None)
            .await
            .status,
        422
    );
}

#[tokio::test]
async fn get_shipments_filters_and_paginates() {
    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    let flex = a.create_random_shipments("FLEX", 23).await.unwrap();
    a.create_location("MFN2", MP, "MFN").await.unwrap();
    let mfn = a.create_random_shipments("MFN2", 4).await.unwrap();
    // MFN without stock = CREATED
    let r = sim
        .get(&format!("{SHIPMENTS}?status=CREATED&locationId=MFN2"))
        .await;
    assert_eq!(r.body["shipments"].as_array().unwrap().len(), mfn.len());
    // confirm three: they leave ACCEPTED
    for id in &flex[..3] {
        assert_eq!(sim.confirm(id).await.status, 204);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = format!("{SHIPMENTS}?status=ACCEPTED&locationId=FLEX&maxResults=7");
        if let Some(t) = &token {
            q.push_str(&format!("&paginationToken={t}"));
        }
        let r = sim.get(&q).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        pages += 1;
        let page = r.body["shipments"].as_array().unwrap();
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|s| s["id"].as_str().unwrap().to_string()));
        match r.body["pagination"]["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = flex[3..].to_vec();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    // the token belongs to its arguments
    let r = sim
        .get(&format!("{SHIPMENTS}?status=ACCEPTED&maxResults=2"))
        .await;
    let t = r.body["pagination"]["nextToken"].as_str().unwrap();
    let other = sim
        .get(&format!("{SHIPMENTS}?status=CONFIRMED&paginationToken={t}"))
        .await;
    assert_eq!((other.status.as_u16(), other.code()), (400, "SC_00002"));
    // lastUpdatedAfter: only the confirmed ones changed since
    let confirmed = sim.get(&format!("{SHIPMENTS}?status=CONFIRMED")).await.body;
    let first = confirmed["shipments"][0]["lastUpdatedDateTime"]
        .as_str()
        .unwrap();
    let after = sim
        .get(&format!(
            "{SHIPMENTS}?status=CONFIRMED&lastUpdatedAfter={first}"
        ))
        .await
        .body;
    assert_eq!(after["shipments"].as_array().unwrap().len(), 2);
    let before = sim
        .get(&format!(
            "{SHIPMENTS}?status=CONFIRMED&lastUpdatedBefore={first}"
        ))
        .await
        .body;
    assert_eq!(before["shipments"].as_array().unwrap().len(), 0);
    let bad = sim.get(&format!("{SHIPMENTS}?status=CONFIRMED&lastUpdatedAfter=2030-01-01T00:00:00Z&lastUpdatedBefore=2020-01-01T00:00:00Z")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("can't be higher than"));
    // channel and marketplace filters
    assert_eq!(
        sim.get(&format!("{SHIPMENTS}?status=CREATED&channelName=FBA"))
            .await
            .body["shipments"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        sim.get(&format!(
            "{SHIPMENTS}?status=CREATED&marketplaceId={MP}&channelName=MFN"
        ))
        .await
        .body["shipments"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn empty_pages_still_reach_every_shipment() {
    let sim = start_with(spapi_sim::SimOptions {
        rate_limits: false,
        empty_page_rate: 0.5,
        seed: 3,
        ..Default::default()
    })
    .await;
    sim.setup_locations().await;
    let ids = sim
        .handle
        .admin()
        .create_random_shipments("FLEX", 12)
        .await
        .unwrap();
    let (mut seen, mut empties, mut token) = (0, 0, None::<String>);
    loop {
        let mut q = format!("{SHIPMENTS}?status=ACCEPTED&maxResults=5");
        if let Some(t) = &token {
            q.push_str(&format!("&paginationToken={t}"));
        }
        let r = sim.get(&q).await;
        let n = r.body["shipments"].as_array().unwrap().len();
        seen += n;
        if n == 0 {
            empties += 1;
        }
        match r.body["pagination"]["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids.len());
    assert!(empties > 0, "seed 3 with rate 0.5 gives empty pages");
}

#[tokio::test]
async fn generated_shipments_are_realistic_and_seeded() {
    let make = |seed| async move {
        let sim = start_with(spapi_sim::SimOptions {
            seed,
            rate_limits: false,
            ..Default::default()
        })
        .await;
        sim.setup_locations().await;
        let ids = sim
            .handle
            .admin()
            .create_random_shipments("FLEX", 30)
            .await
            .unwrap();
        let mut docs = Vec::new();
        for id in &ids {
            docs.push(sim.get(&format!("{SHIPMENTS}/{id}")).await.body);
        }
        docs
    };
    let a = make(42).await;
    let b = make(42).await;
    let strip = |v: &Vec<serde_json::Value>| {
        v.iter()
            .map(|d| {
                (
                    d["id"].clone(),
                    d["lineItems"].clone(),
                    d["shipmentInfo"]["buyerOrderId"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b), "same seed, same shipments");
    assert!(a
        .iter()
        .any(|d| d["lineItems"].as_array().unwrap().len() >= 2));
    assert!(a
        .iter()
        .any(|d| d["marketplaceAttributes"]["customAttributes"] == json!(["PRIME"])));
    assert!(a
        .iter()
        .any(|d| d["lineItems"][0]["numberOfUnits"].as_i64().unwrap() > 1));
    for d in &a {
        assert_eq!(d["charges"][1]["chargeType"], "TOTAL");
        assert_eq!(
            d["charges"][1]["totalCharge"]["netAmount"]["currencyCode"],
            "EUR"
        );
        assert!(
            d["shippingInfo"]["expectedShippingDateTimeInUTC"]
                .as_str()
                .unwrap()
                > d["creationDateTime"].as_str().unwrap()
        );
        assert!(d["shippingInfo"]["shipToAddress"]["postalCode"].is_string());
    }
}

#[tokio::test]
async fn packages_follow_compliance_attributes() {
    let sim = start().await;
    sim.setup_locations().await;
    let s = sim
        .shipment(json!({"locationId": "FLEX", "lineItems": [
            {"sku": "PHONE", "quantity": 2, "serialNumbersRequired": true, "countryOfOriginRequired": true, "itemValueRequired": true},
            {"sku": "CASE", "quantity": 1}
        ]}))
        .await;
    let id = s["id"].as_str().unwrap();
    assert_eq!(
        s["lineItems"][0]["complianceAttributes"]["serialNumberRequirement"],
        "REQUIRED"
    );
    assert_eq!(
        s["lineItems"][1]["complianceAttributes"]["serialNumberRequirement"],
        "DISALLOWED"
    );
    sim.confirm(id).await;
    let url = format!("{SHIPMENTS}/{id}/packages");
    let plain = Sim::one_package(&s, "P1");
    let r = sim
        .call(
            Method::POST,
            &url,
            Some(json!({"packages": [plain.clone()]})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("serialNumbers"),
        "{:?}",
        r.body
    );
    let mut p = plain.clone();
    p["packageLineItems"][0]["serialNumbers"] = json!(["SN1", "SN2"]);
    p["packageLineItems"][0]["countryOfOrigin"] = json!("CN");
    p["packageLineItems"][0]["itemValue"] = json!({"value": "199.00", "currencyCode": "EUR"});
    let mut wrong = p.clone();
    wrong["packageLineItems"][1]["serialNumbers"] = json!(["SN3"]);
    assert_eq!(
        sim.call(Method::POST, &url, Some(json!({"packages": [wrong]})))
            .await
            .status,
        400,
        "DISALLOWED"
    );
    let r = sim
        .call(Method::POST, &url, Some(json!({"packages": [p]})))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}
