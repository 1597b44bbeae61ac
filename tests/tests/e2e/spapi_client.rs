//! The SP-API client against the simulator (`spapi-sim`), through every operation, throttling
//! and every fault kind. The simulator is written from Amazon's models on its own, so these
//! tests catch a client that disagrees with the models, not just with itself.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use flexbridge::ratelimit::Limit;
use flexbridge::retry::{Deadline, RetryPolicy};
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::*;
use serde_json::{json, Value};
use spapi_sim::{
    AdminClient, FaultConfig, FaultKind, FaultRule, RateLimit, SimHandle, SimOptions, Simulator,
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN,
};

const MP: &str = "A1PA6795UKMFR9";
const FLEX: &str = "FLEX";
const MFN: &str = "MFN1";

async fn sim_with(opts: SimOptions) -> SimHandle {
    let sim = Simulator::start(opts).await.expect(
        "simulator starts (are Amazon's models in ../shared/spapi-models or $SPAPI_MODELS_DIR?)",
    );
    let admin = sim.admin();
    admin.create_location(FLEX, MP, "FBA").await.unwrap();
    admin.create_location(MFN, MP, "MFN").await.unwrap();
    sim
}

/// Functional tests: no rate limits, no empty pages, so they run fast and deterministically.
async fn sim() -> SimHandle {
    sim_with(SimOptions {
        rate_limits: false,
        empty_page_rate: 0.0,
        ..Default::default()
    })
    .await
}

fn creds() -> LwaCredentials {
    LwaCredentials {
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
        refresh_token: DEFAULT_REFRESH_TOKEN.into(),
    }
}

fn config(sim: &SimHandle) -> SpApiConfig {
    let mut cfg = SpApiConfig::new(Region::Eu, creds());
    cfg.endpoint = Some(sim.base_url.clone());
    cfg.lwa_endpoint = Some(sim.lwa_url());
    cfg.seller_id = Some("A1SIMSELLER".into());
    cfg.request_timeout = Duration::from_secs(1);
    cfg.retry = RetryPolicy::new(5, Duration::from_millis(20), Duration::from_millis(200));
    // The simulator's limits are off here: do not let its announced rates slow the tests.
    cfg.adapt_rate_limits = false;
    for op in Operation::ALL {
        cfg.rate_limits.insert(op, Limit::new(200.0, 200));
    }
    cfg
}

fn client(sim: &SimHandle) -> SpApiClient {
    SpApiClient::new(config(sim)).unwrap()
}

async fn new_shipment(admin: &AdminClient, location: &str, lines: Value) -> Shipment {
    let v = admin
        .create_shipment(json!({"locationId": location, "lineItems": lines}))
        .await
        .unwrap();
    serde_json::from_value(v).expect("the simulator's shipment reads as our Shipment")
}

fn packages_for(s: &Shipment, id: &str) -> Vec<Package> {
    let dim = |v: &str| Dimension {
        value: v.into(),
        dimension_unit: DimensionUnit::Cm,
    };
    vec![Package {
        id: id.into(),
        dimensions: PackageDimensions {
            length: dim("30"),
            width: dim("20"),
            height: dim("10"),
        },
        weight: Weight {
            value: "1.2".into(),
            weight_unit: WeightUnit::Kg,
        },
        package_line_items: s
            .line_items
            .iter()
            .map(|l| PackageLineItem {
                package_line_item_id: l.shipment_line_item_id.clone(),
                quantity: l.number_of_units.unwrap_or(1),
                ..Default::default()
            })
            .collect(),
        package_handling_requirements: Some(PackageHandlingRequirements::Normal),
        ..Default::default()
    }]
}

async fn status_at_amazon(c: &SpApiClient, id: &str) -> ShipmentStatus {
    c.get_shipment(id).await.unwrap().status
}

#[tokio::test]
async fn seller_flex_shipment_goes_from_accepted_to_shipped() {
    let sim = sim().await;
    let admin = sim.admin();
    // The Lambda path: credentials from the secret, endpoints from the environment.
    let env = flexbridge::Env::default()
        .with(
            "FLEXBRIDGE_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:000000000000:secret:spapi",
        )
        .with("SPAPI_REGION", "EU")
        .with("SPAPI_ENDPOINT", sim.base_url.clone())
        .with("LWA_ENDPOINT", sim.lwa_url());
    let secrets = SecretCache::from_static(HashMap::from([(
        "arn:aws:secretsmanager:eu-west-1:000000000000:secret:spapi".to_string(),
        json!({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
               "refresh_token": DEFAULT_REFRESH_TOKEN, "seller_id": "A1SELLER"})
        .to_string(),
    )]));
    let c = SpApiClient::from_env(&env, &secrets).await.unwrap();
    assert_eq!(c.seller_id().await.unwrap().as_deref(), Some("A1SELLER"));
    assert_eq!(c.base_url(), sim.base_url);

    let created = new_shipment(
        &admin,
        FLEX,
        json!([{"sku": "MUG-1", "quantity": 2, "unitPrice": "12.50"}, {"sku": "TEA 2/x", "quantity": 1}]),
    )
    .await;
    let id = created.id.clone();

    // Find it the way the poller does: one status per call, following nextToken.
    let mut found = None;
    let mut q = GetShipmentsQuery {
        location_id: Some(FLEX.into()),
        max_results: Some(10),
        ..GetShipmentsQuery::status(ShipmentStatus::Accepted)
    };
    loop {
        let page = c.get_shipments(&q).await.unwrap();
        found = found.or(page.shipments.into_iter().find(|s| s.id == id));
        match page.next_token {
            Some(t) => q.pagination_token = Some(t),
            None => break,
        }
    }
    let s = found.expect("the new shipment is listed as ACCEPTED");
    assert_eq!(s.status, ShipmentStatus::Accepted);
    assert_eq!(s.marketplace_attributes.channel_name, ShipmentChannel::Fba);
    assert_eq!(s.line_items.len(), 2);
    assert!(s.shipping_info.expected_shipping_date_time_in_utc.is_some());
    assert!(s.last_updated_date_time.is_some());
    assert!(s.can_reject());

    c.process_shipment(&id, &ShipmentOperation::Confirm)
        .await
        .unwrap();
    assert_eq!(status_at_amazon(&c, &id).await, ShipmentStatus::Confirmed);

    c.create_packages(&id, &packages_for(&s, "PKG-1"))
        .await
        .unwrap();
    let after = c.get_shipment(&id).await.unwrap();
    assert_eq!(after.status, ShipmentStatus::PackageCreated);
    assert_eq!(after.packages[0].id, "PKG-1");

    // Seller Flex: no shipping options.
    let options = c.retrieve_shipping_options(&id, "PKG-1").await.unwrap();
    assert!(options.shipping_options.is_empty());
    assert_eq!(
        status_at_amazon(&c, &id).await,
        ShipmentStatus::PickupSlotRetrieved
    );

    let invoice = c.generate_invoice(&id).await.unwrap();
    assert_eq!(invoice.document.format, Some(DocumentFormat::Pdf));
    assert!(invoice
        .document
        .content
        .as_deref()
        .is_some_and(|b| !b.is_empty()));
    assert_eq!(c.retrieve_invoice(&id).await.unwrap(), invoice);

    let labels = c
        .generate_ship_labels(
            &id,
            LabelOperation::Generate,
            None,
            &ShipLabelsInput {
                package_ids: vec!["PKG-1".into()],
                courier_supported_attributes: None,
            },
        )
        .await
        .unwrap();
    let label = &labels.package_ship_label_list[0];
    assert_eq!(label.status, Some(LabelStatus::Success));
    assert!(!label
        .ship_label_metadata
        .as_ref()
        .unwrap()
        .tracking_id
        .is_empty());
    assert!(label.file_data.as_ref().is_some_and(|f| !f.url.is_empty()));
    assert_eq!(
        status_at_amazon(&c, &id).await,
        ShipmentStatus::ShiplabelGenerated
    );

    c.update_package_status(
        &id,
        "PKG-1",
        &PackageDeliveryStatus {
            status: Some(PackageStatus::Shipped),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(status_at_amazon(&c, &id).await, ShipmentStatus::Shipped);
    assert_eq!(c.tokens_issued(), 1, "one access token for the whole flow");
    let counts = admin.confirm_counts(&id).await.unwrap();
    assert_eq!((counts.requests, counts.applied), (1, 1));
}

#[tokio::test]
async fn from_env_reads_the_seller_secret_from_secrets_manager() {
    // The template's FlexbridgeSecret in moto, seeded as the local run does; the function's Env
    // comes from the template, so this is exactly what a Lambda sees.
    let stack = flexbridge_e2e::TestStack::start("spapi_client_from_env")
        .await
        .unwrap();
    let env = stack.env_for("OrderPollerFunction").unwrap();
    let secrets = SecretCache::from_sdk_config(&stack.sdk);
    let c = SpApiClient::from_env(&env, &secrets).await.unwrap();
    assert_eq!(c.base_url(), stack.sim().base_url);
    assert_eq!(
        c.seller_id().await.unwrap().as_deref(),
        Some(stack.seller.seller_id.as_str())
    );
    let page = c
        .get_shipments(&GetShipmentsQuery::status(ShipmentStatus::Accepted))
        .await
        .unwrap();
    assert!(page
        .shipments
        .iter()
        .all(|s| s.status == ShipmentStatus::Accepted));
    assert_eq!(
        c.tokens_issued(),
        1,
        "the secret's credentials were accepted by LWA"
    );
    // The secret is read on the first call, not at init (a cold start makes no AWS call). A
    // wrong ARN then fails that call with an error naming the ARN, retryable because it is the
    // environment's fault (no message is charged with it), never a panic.
    let env = env.with(
        "FLEXBRIDGE_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
    );
    let c = SpApiClient::from_env(&env, &secrets).await.unwrap();
    let e = c.seller_id().await.unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(c.tokens_issued(), 0);
}

#[tokio::test]
async fn mfn_shipment_uses_shipping_options_and_update_package_goes_back() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    admin.add_skus(&["BOOK-1"]).await.unwrap();
    admin.set_inventory(MFN, "BOOK-1", 50).await.unwrap();
    let s = new_shipment(&admin, MFN, json!([{"sku": "BOOK-1", "quantity": 1}])).await;
    let id = s.id.clone();
    c.process_shipment(&id, &ShipmentOperation::Confirm)
        .await
        .unwrap();
    let mut pkgs = packages_for(&s, "P1");
    c.create_packages(&id, &pkgs).await.unwrap();
    let options = c.retrieve_shipping_options(&id, "P1").await.unwrap();
    assert!(
        !options.shipping_options.is_empty(),
        "MFN gets shipping options"
    );
    let chosen = options
        .recommended_shipping_option
        .clone()
        .unwrap_or_else(|| options.shipping_options[0].clone());

    // A package change after the pickup slot sends the shipment back to PACKAGE_CREATED.
    pkgs[0].weight.value = "2.5".into();
    c.update_package(&id, &pkgs[0]).await.unwrap();
    let back = c.get_shipment(&id).await.unwrap();
    assert_eq!(back.status, ShipmentStatus::PackageCreated);
    assert_eq!(back.packages[0].weight.value.as_str(), "2.5");

    let options = c.retrieve_shipping_options(&id, "P1").await.unwrap();
    let chosen = options
        .shipping_options
        .iter()
        .find(|o| o.shipping_option_id == chosen.shipping_option_id)
        .cloned()
        .unwrap_or_else(|| options.shipping_options[0].clone());
    if back.shipment_requirements.invoice.requirement == Some(DocumentRequirement::Required) {
        c.generate_invoice(&id).await.unwrap();
    }
    let labels = c
        .generate_ship_labels(
            &id,
            LabelOperation::Generate,
            Some(&chosen.shipping_option_id),
            &ShipLabelsInput {
                package_ids: vec!["P1".into()],
                courier_supported_attributes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(labels.package_ship_label_list.len(), 1);
    assert_eq!(
        status_at_amazon(&c, &id).await,
        ShipmentStatus::ShiplabelGenerated
    );
}

#[tokio::test]
async fn reject_cancels_the_shipment() {
    let sim = sim().await;
    let c = client(&sim);
    let s = new_shipment(&sim.admin(), FLEX, json!([{"sku": "MUG-1", "quantity": 3}])).await;
    let body = ShipmentAcknowledgementRequest::reject_all(
        &s,
        format!("reject#{}", s.id),
        RejectReason::OutOfStock,
    );
    c.process_shipment(&s.id, &ShipmentOperation::Reject(body))
        .await
        .unwrap();
    let after = c.get_shipment(&s.id).await.unwrap();
    assert_eq!(after.status, ShipmentStatus::Cancelled);
    assert!(after.line_items[0]
        .cancellations
        .iter()
        .any(|x| x.cancellation_type == CancellationType::SellerRejected));
    assert_eq!(after.line_items[0].open_units(), 0);
}

#[tokio::test]
async fn amazon_errors_come_back_typed() {
    let sim = sim().await;
    let c = client(&sim);
    let e = c.get_shipment("NO-SUCH-SHIPMENT").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.kind, SpApiErrorKind::Status);
    assert_eq!(e.code(), Some("SC_00003"));
    assert!(
        e.request_id.is_some(),
        "the x-amzn-RequestId travels with the error"
    );
    assert!(!e.is_retryable());
    assert_eq!(e.attempts, 1, "a 404 is not retried");

    let s = new_shipment(&sim.admin(), FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    c.process_shipment(&s.id, &ShipmentOperation::Confirm)
        .await
        .unwrap();
    let e = c
        .process_shipment(&s.id, &ShipmentOperation::Confirm)
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "a second CONFIRM conflicts: {e}");
    assert!(!e.outcome_unknown(), "a 409 is a definite answer");
    assert!(!e.errors.is_empty());

    // Out of order: labels before packages.
    let e = c
        .generate_ship_labels(
            &s.id,
            LabelOperation::Generate,
            None,
            &ShipLabelsInput {
                package_ids: vec!["NOPE".into()],
                courier_supported_attributes: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e.status, Some(400 | 404 | 409 | 422)), "{e}");
    assert!(!e.is_retryable());
    let flexbridge_error: flexbridge::Error = e.into();
    assert!(!flexbridge_error.is_retryable());
}

#[tokio::test]
async fn shipments_pages_are_followed_through_empty_pages_and_filters() {
    let sim = sim_with(SimOptions {
        rate_limits: false,
        empty_page_rate: 0.4,
        ..Default::default()
    })
    .await;
    let c = client(&sim);
    let ids: BTreeSet<String> = sim
        .admin()
        .create_random_shipments(FLEX, 7)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    let mut q = GetShipmentsQuery {
        location_id: Some(FLEX.into()),
        max_results: Some(2),
        ..GetShipmentsQuery::status(ShipmentStatus::Accepted)
    };
    loop {
        let page = c.get_shipments(&q).await.unwrap();
        pages += 1;
        assert!(page.shipments.len() <= 2);
        seen.extend(page.shipments.into_iter().map(|s| s.id));
        match page.next_token {
            Some(t) => q.pagination_token = Some(t),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    let accepted: BTreeSet<String> = ids.intersection(&seen).cloned().collect();
    assert!(!accepted.is_empty());
    // Every generated shipment in ACCEPTED was listed (CREATED ones belong to another poll).
    for id in &ids {
        let s = c.get_shipment(id).await.unwrap();
        assert_eq!(
            seen.contains(id),
            s.status == ShipmentStatus::Accepted,
            "{id}"
        );
    }
    // lastUpdatedAfter in the future: nothing.
    let page = c
        .get_shipments(&GetShipmentsQuery {
            location_id: Some(FLEX.into()),
            last_updated_after: Some(Timestamp(chrono::Utc::now() + chrono::Duration::hours(1))),
            ..GetShipmentsQuery::status(ShipmentStatus::Accepted)
        })
        .await
        .unwrap();
    assert!(page.shipments.is_empty());
}

#[tokio::test]
async fn batch_inventory_sets_and_reads_quantities_with_per_item_results() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    admin.add_skus(&["MUG-1", "TEA 2/x&y"]).await.unwrap();
    let results = c
        .batch_inventory(&[
            InventoryRequest::update(FLEX, "TEA 2/x&y", 7, 100, None),
            InventoryRequest::update(FLEX, "MUG-1", 3, 100, None),
            InventoryRequest::update(FLEX, "UNKNOWN-SKU", 1, 100, None),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3, "one result per request");
    assert!(results[0].is_success(), "{:?}", results[0]);
    assert_eq!(results[0].body.sku_id.as_deref(), Some("TEA 2/x&y"));
    assert_eq!(results[0].body.sellable_quantity, Some(7));
    assert!(results[1].is_success());
    assert!(
        !results[2].is_success(),
        "unknown SKU fails alone: {:?}",
        results[2]
    );
    assert!(!results[2].body.actionable_errors.is_empty());
    let held = admin.inventory(FLEX, "TEA 2/x&y").await.unwrap();
    assert_eq!(held["sellableQuantity"], 7);

    // A stale sequence number does not overwrite the newer quantity.
    let stale = c
        .batch_inventory(&[InventoryRequest::update(FLEX, "TEA 2/x&y", 1, 99, None)])
        .await
        .unwrap();
    assert!(!stale[0].is_success(), "{:?}", stale[0]);
    let fetched = c
        .batch_inventory(&[InventoryRequest::fetch(FLEX, "TEA 2/x&y", None)])
        .await
        .unwrap();
    assert_eq!(fetched[0].body.sellable_quantity, Some(7));
}

#[tokio::test]
async fn returns_are_listed_page_by_page_and_read_one_by_one() {
    let sim = sim_with(SimOptions {
        rate_limits: false,
        empty_page_rate: 0.3,
        ..Default::default()
    })
    .await;
    let admin = sim.admin();
    let c = client(&sim);
    let mut ids = BTreeSet::new();
    for i in 0..3 {
        let r = admin
            .create_return(json!({"locationId": FLEX, "sku": format!("MUG-{i}")}))
            .await
            .unwrap();
        ids.insert(r["id"].as_str().unwrap().to_string());
    }
    let mut seen = BTreeSet::new();
    let mut q = ListReturnsQuery {
        return_location_id: Some(FLEX.into()),
        max_results: Some(1),
        ..Default::default()
    };
    for _ in 0..50 {
        let page = c.list_returns(&q).await.unwrap();
        seen.extend(page.returns.into_iter().map(|r| r.id));
        match page.next_token {
            Some(t) => q.next_token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let id = ids.iter().next().unwrap();
    let r = c.get_return(id).await.unwrap();
    assert_eq!(&r.id, id);
    assert_eq!(r.status, ReturnStatus::Created);
    admin.set_return_status(id, "IN_TRANSIT").await.unwrap();
    assert_eq!(
        c.get_return(id).await.unwrap().status,
        ReturnStatus::InTransit
    );
    assert!(c
        .get_return("NO-SUCH-RETURN")
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn price_patch_is_accepted_and_bad_ones_are_reported() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    admin
        .call(
            reqwest::Method::POST,
            "product-types",
            Some(json!({"productTypes": ["MUG"]})),
        )
        .await
        .unwrap();
    let r = c
        .patch_listings_item(
            "A1SIMSELLER",
            "MUG 1/blue",
            &[MP],
            &ListingsPatch::price("MUG", MP, "EUR", 19.99),
        )
        .await
        .unwrap();
    assert_eq!(r.status, SubmissionStatus::Accepted, "{r:?}");
    assert_eq!(r.sku, "MUG 1/blue");
    assert!(!r.submission_id.is_empty());
    let listings = admin.listings().await.unwrap();
    assert_eq!(listings["MUG 1/blue"]["prices"][MP], "19.99", "{listings}");

    let r = c
        .patch_listings_item(
            "A1SIMSELLER",
            "MUG-2",
            &[MP],
            &ListingsPatch::price("MUG", MP, "USD", 5.0),
        )
        .await
        .unwrap();
    assert_eq!(r.status, SubmissionStatus::Invalid);
    assert!(r.errors().next().is_some());
}

#[tokio::test]
async fn notifications_from_the_simulator_parse() {
    let sim = sim().await;
    let admin = sim.admin();
    // A throwaway HTTP destination that answers 200 to everything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    admin
        .add_notification_destination(json!({ "url": url }))
        .await
        .unwrap();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    c.process_shipment(&s.id, &ShipmentOperation::Confirm)
        .await
        .unwrap();
    let mut parsed = Vec::new();
    for _ in 0..50 {
        let sent = admin.notifications().await.unwrap();
        parsed = sent
            .iter()
            .map(|n| {
                let body = match &n["notification"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                Notification::from_json(&body).unwrap()
            })
            .collect::<Vec<_>>();
        if parsed.iter().any(|n| {
            n.shipment_status_change().unwrap().shipment_status == Some(ShipmentStatus::Confirmed)
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let change = parsed
        .iter()
        .map(|n| {
            (
                n.id().map(str::to_string),
                n.shipment_status_change().unwrap(),
            )
        })
        .find(|(_, c)| c.shipment_status == Some(ShipmentStatus::Confirmed))
        .expect("a CONFIRMED notification");
    assert!(change.0.is_some(), "notificationId to deduplicate on");
    assert_eq!(change.1.shipment_id, s.id);
    assert_eq!(change.1.location_id.as_deref(), Some(FLEX));
}

// ------------------------------------------------------------------ throttling

#[tokio::test]
async fn throttling_is_absorbed_and_the_rate_adapts() {
    let mut overrides = std::collections::BTreeMap::new();
    overrides.insert(
        "getShipment".to_string(),
        RateLimit {
            rate: 4.0,
            burst: 2.0,
        },
    );
    let sim = sim_with(SimOptions {
        rate_limits: true,
        rate_limit_overrides: overrides,
        ..Default::default()
    })
    .await;
    let s = new_shipment(&sim.admin(), FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    // The client believes it may go much faster than the simulator allows.
    let mut cfg = config(&sim);
    cfg.adapt_rate_limits = true;
    cfg.rate_limits
        .insert(Operation::GetShipment, Limit::new(100.0, 20));
    cfg.retry = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(1));
    let (metrics, recorded) = flexbridge::metrics::Metrics::memory("test", "client");
    cfg.metrics = Some(metrics);
    let c = SpApiClient::new(cfg).unwrap();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let c = c.clone();
            let id = s.id.clone();
            tokio::spawn(async move { c.get_shipment(&id).await })
        })
        .collect();
    for t in calls {
        t.await
            .unwrap()
            .expect("throttled calls are retried until they pass");
    }
    let log = sim.admin().calls(Some("getShipment")).await.unwrap();
    let throttled = log.iter().filter(|c| c["status"] == 429).count();
    assert!(throttled > 0, "the simulator did throttle: {log:?}");
    // Every attempt and every 429 is a metric with the operation as its dimension.
    use flexbridge::metrics::names;
    assert_eq!(recorded.sum(names::SPAPI_CALLS), log.len() as f64);
    assert_eq!(recorded.sum(names::SPAPI_THROTTLES), throttled as f64);
    assert_eq!(recorded.sum(names::SPAPI_ERRORS), 0.0);
    assert!(recorded
        .documents()
        .iter()
        .all(|d| d["Operation"] == "getShipment"));
    assert_eq!(
        c.rate_limiter(Operation::GetShipment).limit().rate,
        4.0,
        "the client follows x-amzn-RateLimit-Limit"
    );
}

#[tokio::test]
async fn scripted_throttles_on_a_write_are_retried_and_applied_once() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    admin
        .script_faults(
            "processShipment",
            &[FaultKind::Throttle, FaultKind::Throttle],
        )
        .await
        .unwrap();
    c.process_shipment(&s.id, &ShipmentOperation::Confirm)
        .await
        .unwrap();
    assert_eq!(admin.confirm_counts(&s.id).await.unwrap().applied, 1);
    assert_eq!(admin.calls(Some("processShipment")).await.unwrap().len(), 3);
}

// ------------------------------------------------------------------ faults on reads

#[tokio::test]
async fn server_errors_and_dropped_connections_on_reads_are_retried() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    admin
        .script_faults(
            "getShipment",
            &[
                FaultKind::Error500,
                FaultKind::Error503,
                FaultKind::Drop,
                FaultKind::Throttle,
            ],
        )
        .await
        .unwrap();
    let got = c.get_shipment(&s.id).await.unwrap();
    assert_eq!(got.id, s.id);
    assert_eq!(admin.calls(Some("getShipment")).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_hanging_read_times_out_and_is_retried() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    let mut faults = FaultConfig::default();
    faults.operations.insert(
        "getShipment".into(),
        FaultRule {
            hang_ms: 5_000,
            script: vec![FaultKind::ApplyThenHang],
            ..Default::default()
        },
    );
    admin.set_faults(&faults).await.unwrap();
    let started = std::time::Instant::now();
    let got = c.get_shipment(&s.id).await.unwrap();
    assert_eq!(got.id, s.id);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn latency_beyond_the_timeout_fails_within_the_deadline() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    let mut faults = FaultConfig::default();
    faults.operations.insert(
        "getShipment".into(),
        FaultRule {
            latency_ms: 300,
            ..Default::default()
        },
    );
    admin.set_faults(&faults).await.unwrap();
    // Added latency under the timeout: just slower.
    c.get_shipment(&s.id).await.unwrap();

    faults.operations.get_mut("getShipment").unwrap().latency_ms = 3_000;
    admin.set_faults(&faults).await.unwrap();
    let started = std::time::Instant::now();
    let bounded = c.with_deadline(Deadline::after(Duration::from_millis(2_500)));
    let e = bounded.get_shipment(&s.id).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2_800),
        "the deadline bounds the retries: {took:?}"
    );
    assert!(
        matches!(
            e.kind,
            SpApiErrorKind::Timeout | SpApiErrorKind::DeadlineExceeded
        ),
        "{e:?}"
    );
    assert!(e.is_retryable(), "a later invocation may try again");
    assert!(!e.outcome_unknown(), "a read has no outcome to doubt");
}

// ------------------------------------------------------------------ faults on writes

async fn confirm_with_fault(kind: FaultKind) -> (SimHandle, SpApiClient, Shipment, SpApiError) {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    let mut faults = FaultConfig::default();
    faults.operations.insert(
        "processShipment".into(),
        FaultRule {
            hang_ms: 3_000,
            script: vec![kind],
            ..Default::default()
        },
    );
    admin.set_faults(&faults).await.unwrap();
    let e = c
        .process_shipment(&s.id, &ShipmentOperation::Confirm)
        .await
        .expect_err("the fault surfaces");
    (sim, c, s, e)
}

#[tokio::test]
async fn apply_then_fail_on_confirm_is_outcome_unknown_and_not_resent() {
    let (sim, c, s, e) = confirm_with_fault(FaultKind::ApplyThenFail).await;
    assert_eq!(e.status, Some(500));
    assert!(e.outcome_unknown(), "{e}");
    assert!(e.to_string().contains("outcome unknown"));
    let counts = sim.admin().confirm_counts(&s.id).await.unwrap();
    assert_eq!(
        (counts.requests, counts.applied),
        (1, 1),
        "the client did not resend"
    );
    // Reconcile by reading back: it was applied.
    assert_eq!(status_at_amazon(&c, &s.id).await, ShipmentStatus::Confirmed);
}

#[tokio::test]
async fn apply_then_hang_on_confirm_is_outcome_unknown() {
    let (sim, c, s, e) = confirm_with_fault(FaultKind::ApplyThenHang).await;
    assert_eq!(e.kind, SpApiErrorKind::Timeout, "{e:?}");
    assert!(e.outcome_unknown());
    assert_eq!(sim.admin().confirm_counts(&s.id).await.unwrap().applied, 1);
    assert_eq!(status_at_amazon(&c, &s.id).await, ShipmentStatus::Confirmed);
}

#[tokio::test]
async fn a_dropped_connection_on_confirm_is_outcome_unknown_then_safe_to_redo() {
    let (sim, c, s, e) = confirm_with_fault(FaultKind::Drop).await;
    assert_eq!(e.kind, SpApiErrorKind::Transport, "{e:?}");
    assert!(e.outcome_unknown());
    // Reconcile: not applied, so confirming again is the right move.
    assert_eq!(status_at_amazon(&c, &s.id).await, ShipmentStatus::Accepted);
    c.process_shipment(&s.id, &ShipmentOperation::Confirm)
        .await
        .unwrap();
    assert_eq!(sim.admin().confirm_counts(&s.id).await.unwrap().applied, 1);
}

#[tokio::test]
async fn server_errors_on_writes_are_not_resent() {
    for kind in [FaultKind::Error500, FaultKind::Error503] {
        let (sim, c, s, e) = confirm_with_fault(kind).await;
        assert!(matches!(e.status, Some(500 | 503)), "{e}");
        assert!(
            e.outcome_unknown(),
            "{kind:?}: a 5xx on a write may have been applied"
        );
        assert_eq!(e.attempts, 1);
        assert_eq!(
            sim.admin()
                .calls(Some("processShipment"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(status_at_amazon(&c, &s.id).await, ShipmentStatus::Accepted);
    }
}

#[tokio::test]
async fn faults_on_batch_inventory_are_retried_because_it_is_idempotent() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    admin.add_skus(&["MUG-1"]).await.unwrap();
    admin
        .script_faults(
            "batchInventory",
            &[
                FaultKind::ApplyThenFail,
                FaultKind::Error503,
                FaultKind::Drop,
            ],
        )
        .await
        .unwrap();
    let r = c
        .batch_inventory(&[InventoryRequest::update(FLEX, "MUG-1", 11, 5, None)])
        .await
        .unwrap();
    // The first try was applied, so the resend may be refused as stale: Amazon holds our update.
    assert!(r[0].is_up_to_date(5), "{r:?}");
    assert_eq!(r[0].body.sellable_quantity, Some(11));
    let held = admin.inventory(FLEX, "MUG-1").await.unwrap();
    assert_eq!(held["sellableQuantity"], 11);
    assert_eq!(held["updatesApplied"], 1, "{held}");
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let sim = sim().await;
    let admin = sim.admin();
    let c = client(&sim);
    let s = new_shipment(&admin, FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    c.get_shipment(&s.id).await.unwrap();
    admin.expire_tokens().await.unwrap();
    c.get_shipment(&s.id).await.unwrap();
    assert_eq!(c.tokens_issued(), 2);
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_permanent_error() {
    let sim = sim().await;
    let mut cfg = config(&sim);
    cfg.credentials.client_secret = "not-the-secret".into();
    let c = SpApiClient::new(cfg).unwrap();
    let e = c.get_shipment("ANY").await.unwrap_err();
    assert_eq!(e.kind, SpApiErrorKind::Auth, "{e:?}");
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains("not-the-secret"));
    assert!(!format!("{e:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn many_tasks_share_one_token() {
    let sim = sim().await;
    let c = client(&sim);
    let s = new_shipment(&sim.admin(), FLEX, json!([{"sku": "MUG-1", "quantity": 1}])).await;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let c = c.clone();
            let id = s.id.clone();
            tokio::spawn(async move { c.get_shipment(&id).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(c.tokens_issued(), 1);
}

// ------------------------------------------------------------------ what goes on the wire

/// One request as a bare HTTP server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

/// A minimal HTTP/1.1 server that records every request and answers from `reply`.
async fn recording_server(
    reply: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reply = std::sync::Arc::new(reply);
    let log = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (log, reply) = (std::sync::Arc::clone(&log), std::sync::Arc::clone(&reply));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(end) = head_end {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let mut lines = head.split("\r\n");
                        let mut first = lines.next().unwrap_or("").split(' ');
                        let (method, target) = (
                            first.next().unwrap_or("").to_string(),
                            first.next().unwrap_or("").to_string(),
                        );
                        let headers: HashMap<String, String> = lines
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                            .collect();
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = String::from_utf8_lossy(&buf[end + 4..]).to_string();
                        let seen = Seen {
                            method,
                            target,
                            headers,
                            body,
                        };
                        let (status, json) = reply(&seen);
                        log.lock().unwrap().push(seen);
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nx-amzn-RequestId: req-{status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                            json.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        return;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (base, seen)
}

fn notifications_model() -> Value {
    let dir = spapi_sim::models::locate().unwrap_or_else(|e| panic!("{e:#}"));
    let path = dir.join("notifications.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} not found ({e}); set SPAPI_MODELS_DIR to Amazon's models",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn headers_token_form_and_subscription_calls_match_amazons_contract() {
    let model = notifications_model();
    let create_example = model
        .pointer("/paths/~1notifications~1v1~1subscriptions~1{notificationType}/post/responses/200/examples/Successful Response")
        .cloned()
        .expect("the model's createSubscription example");
    let (base, seen) = recording_server(move |req| {
        if req.target == "/auth/o2/token" {
            (
                200,
                json!({"access_token": "Atza|wire", "token_type": "bearer", "expires_in": 3600})
                    .to_string(),
            )
        } else if req.method == "GET" {
            (
                404,
                json!({"errors": [{"code": "NotFound", "message": "no subscription"}]}).to_string(),
            )
        } else {
            (200, create_example.to_string())
        }
    })
    .await;
    let mut cfg = SpApiConfig::new(Region::Na, creds());
    cfg.endpoint = Some(base.clone());
    cfg.lwa_endpoint = Some(format!("{base}/auth/o2/token"));
    let c = SpApiClient::new(cfg).unwrap();

    assert_eq!(
        c.get_subscription(EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE)
            .await
            .unwrap(),
        None
    );
    let body = CreateSubscriptionRequest {
        payload_version: "1.0".into(),
        destination_id: "dest-1".into(),
        processing_directive: None,
    };
    let sub = c
        .create_subscription(EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE, &body)
        .await
        .unwrap();
    assert!(!sub.subscription_id.is_empty());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "one token request, then two calls: {seen:#?}"
    );
    // LWA: a form post with the refresh-token grant.
    let lwa = &seen[0];
    assert_eq!(
        (lwa.method.as_str(), lwa.target.as_str()),
        ("POST", "/auth/o2/token")
    );
    assert!(lwa.headers["content-type"].starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://form/?{}", lwa.body))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], DEFAULT_REFRESH_TOKEN);
    assert_eq!(form["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(form["client_secret"], DEFAULT_CLIENT_SECRET);
    // SP-API calls: the token header, our User-Agent, no SigV4, JSON.
    for call in &seen[1..] {
        assert_eq!(call.headers["x-amz-access-token"], "Atza|wire");
        assert_eq!(
            call.headers["user-agent"],
            format!("flexbridge/{} (Language=Rust)", env!("CARGO_PKG_VERSION"))
        );
        assert!(!call.headers.contains_key("authorization"), "no SigV4");
    }
    assert_eq!(seen[1].method, "GET");
    assert_eq!(
        seen[1].target,
        "/notifications/v1/subscriptions/EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE"
    );
    assert_eq!(seen[2].method, "POST");
    assert_eq!(
        seen[2].target,
        "/notifications/v1/subscriptions/EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE"
    );
    assert_eq!(seen[2].headers["content-type"], "application/json");
    let sent: Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(
        sent,
        json!({"payloadVersion": "1.0", "destinationId": "dest-1"})
    );
}

#[tokio::test]
async fn destinations_use_a_grantless_token() {
    let model = notifications_model();
    let example = |method: &str| {
        model
            .pointer(&format!(
                "/paths/~1notifications~1v1~1destinations/{method}/responses/200/examples/Successful Response"
            ))
            .cloned()
            .expect("the model's destinations examples")
    };
    let (list, created) = (example("get"), example("post"));
    let (base, seen) = recording_server(move |req| {
        if req.target == "/auth/o2/token" {
            let token = if req.body.contains("grant_type=client_credentials") {
                "Atza|grantless"
            } else {
                "Atza|seller"
            };
            (
                200,
                json!({"access_token": token, "expires_in": 3600}).to_string(),
            )
        } else if req.method == "GET" {
            (200, list.to_string())
        } else {
            (200, created.to_string())
        }
    })
    .await;
    let mut cfg = SpApiConfig::new(Region::Na, creds());
    cfg.endpoint = Some(base.clone());
    cfg.lwa_endpoint = Some(format!("{base}/auth/o2/token"));
    let c = SpApiClient::new(cfg).unwrap();

    let existing = c.get_destinations().await.unwrap();
    assert_eq!(existing.len(), 1);
    assert!(existing[0].resource.sqs.is_some());
    let body = CreateDestinationRequest {
        name: "flexbridge".into(),
        resource_specification: DestinationResource {
            sqs: Some(SqsResource {
                arn: "arn:aws:sqs:us-east-1:000000000000:NotificationsQueue".into(),
            }),
            event_bridge: None,
        },
    };
    let d = c.create_destination(&body).await.unwrap();
    assert!(!d.destination_id.is_empty());
    assert_eq!(c.tokens_issued(), 0, "no seller token was needed");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let form: HashMap<String, String> =
        reqwest::Url::parse(&format!("http://form/?{}", seen[0].body))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], NOTIFICATIONS_SCOPE);
    assert!(!form.contains_key("refresh_token"));
    for call in &seen[1..] {
        assert_eq!(call.headers["x-amz-access-token"], "Atza|grantless");
        assert_eq!(call.target, "/notifications/v1/destinations");
    }
    let sent: Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(
        sent,
        json!({"name": "flexbridge", "resourceSpecification": {"sqs": {"arn": "arn:aws:sqs:us-east-1:000000000000:NotificationsQueue"}}})
    );
}

#[tokio::test]
async fn unreadable_answers_are_decode_errors_and_writes_must_be_read_back() {
    let (base, _seen) = recording_server(|req| {
        if req.target == "/auth/o2/token" {
            (
                200,
                json!({"access_token": "Atza|x", "expires_in": 3600}).to_string(),
            )
        } else if req.method == "GET" {
            // A shipment without its id: nothing can be done with it.
            (200, json!({"status": "ACCEPTED"}).to_string())
        } else {
            (200, "<html>gateway page</html>".to_string())
        }
    })
    .await;
    let mut cfg = SpApiConfig::new(Region::Na, creds());
    cfg.endpoint = Some(base.clone());
    cfg.lwa_endpoint = Some(format!("{base}/auth/o2/token"));
    let c = SpApiClient::new(cfg).unwrap();
    let e = c.get_shipment("S1").await.unwrap_err();
    assert_eq!(e.kind, SpApiErrorKind::Decode);
    assert!(e.message.contains("missing field `id`"), "{e}");
    assert!(!e.is_retryable() && !e.outcome_unknown());
    let e = c
        .generate_ship_labels(
            "S1",
            LabelOperation::Generate,
            None,
            &ShipLabelsInput {
                package_ids: vec!["P1".into()],
                courier_supported_attributes: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, SpApiErrorKind::Decode);
    assert!(
        e.outcome_unknown(),
        "labels may exist although the answer was unreadable"
    );
    assert!(
        !e.message.contains("gateway"),
        "the body is not echoed: {e}"
    );
}
