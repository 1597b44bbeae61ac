//! The client's types against Amazon's official models (the five files in `$SPAPI_MODELS_DIR`,
//! default `<repo>/../shared/spapi-models`):
//! - every response example (`examples` and `x-amzn-api-sandbox` responses) deserializes into our
//!   type, and what we would write back uses only field names present in the example;
//! - every request body we send validates against the model's schema, made strict (no property
//!   the schema does not name);
//! - the model's own request examples round-trip through our request types unchanged;
//! - our enums list exactly the model's values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use flexbridge::spapi::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

const SHIPMENTS: &str = "externalFulfillmentShipments_2024-09-11.json";
const INVENTORY: &str = "externalFulfillmentInventory_2024-09-11.json";
const RETURNS: &str = "externalFulfillmentReturns_2024-09-11.json";
const LISTINGS: &str = "listingsItems_2021-08-01.json";
const NOTIFICATIONS: &str = "notifications.json";
const ALL: [&str; 5] = [SHIPMENTS, INVENTORY, RETURNS, LISTINGS, NOTIFICATIONS];

fn models_dir() -> PathBuf {
    // The one resolver (env folder, ../shared/spapi-models, or the verified download cache).
    spapi_sim::models::locate().unwrap_or_else(|e| panic!("{e:#}"))
}

fn load(file: &str) -> Value {
    let path = models_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

struct Example {
    file: &'static str,
    op: String,
    status: String,
    source: String,
    value: Value,
}

impl Example {
    fn name(&self) -> String {
        format!(
            "{} {} {} ({})",
            self.file, self.op, self.status, self.source
        )
    }
}

fn operations(model: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (_, item) in model["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                if method != "parameters" {
                    out.push((id.to_string(), op));
                }
            }
        }
    }
    out
}

fn response_examples(file: &'static str, model: &Value) -> Vec<Example> {
    let mut out = Vec::new();
    for (op_id, op) in operations(model) {
        for (status, resp) in op["responses"].as_object().unwrap() {
            if let Some(ex) = resp.get("examples").and_then(Value::as_object) {
                for (mime, v) in ex {
                    out.push(Example {
                        file,
                        op: op_id.clone(),
                        status: status.clone(),
                        source: format!("examples {mime}"),
                        value: v.clone(),
                    });
                }
            }
            if let Some(sb) = resp.get("x-amzn-api-sandbox").and_then(Value::as_object) {
                for (kind, cases) in sb {
                    for (i, case) in cases.as_array().into_iter().flatten().enumerate() {
                        if let Some(v) = case.get("response") {
                            out.push(Example {
                                file,
                                op: op_id.clone(),
                                status: status.clone(),
                                source: format!("sandbox {kind} #{i}"),
                                value: v.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Request bodies the model itself shows (`x-example` and sandbox requests), by operationId.
fn request_examples(file: &'static str, model: &Value) -> Vec<Example> {
    let mut out = Vec::new();
    for (op_id, op) in operations(model) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "body" {
                if let Some(v) = p
                    .get("x-example")
                    .and_then(|x| x.get("body"))
                    .and_then(|b| b.get("value"))
                {
                    out.push(Example {
                        file,
                        op: op_id.clone(),
                        status: "request".into(),
                        source: "x-example".into(),
                        value: v.clone(),
                    });
                }
            }
        }
        for (status, resp) in op["responses"].as_object().unwrap() {
            for (kind, cases) in resp
                .get("x-amzn-api-sandbox")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                for (i, case) in cases.as_array().into_iter().flatten().enumerate() {
                    if let Some(v) = case.pointer("/request/parameters/body/value") {
                        out.push(Example {
                            file,
                            op: op_id.clone(),
                            status: status.clone(),
                            source: format!("sandbox {kind} #{i} request"),
                            value: v.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
        _ => false,
    }
}

/// Keys we write that the example does not have (a misnamed field shows up here), ignoring
/// defaults we fill in for absent fields; and keys of the example we drop.
fn compare_keys(
    ours: &Value,
    theirs: &Value,
    path: &str,
    extra: &mut Vec<String>,
    dropped: &mut BTreeSet<String>,
) {
    match (ours, theirs) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                match t.get(k) {
                    Some(tv) => compare_keys(v, tv, &format!("{path}.{k}"), extra, dropped),
                    None if is_empty_value(v) => {}
                    None => extra.push(format!("{path}.{k}")),
                }
            }
            for (k, tv) in t {
                if !o.contains_key(k) && !is_empty_value(tv) {
                    dropped.insert(format!("{}.{k}", strip_indexes(path)));
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (a, b)) in o.iter().zip(t).enumerate() {
                compare_keys(a, b, &format!("{path}[{i}]"), extra, dropped);
            }
        }
        _ => {}
    }
}

fn strip_indexes(path: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for c in path.chars() {
        match c {
            '[' => skip = true,
            ']' => skip = false,
            c if !skip => out.push(c),
            _ => {}
        }
    }
    out
}

fn check<T: DeserializeOwned + Serialize>(
    ex: &Example,
    dropped: &mut BTreeSet<String>,
) -> Result<(), String> {
    let parsed: T = serde_json::from_value(ex.value.clone())
        .map_err(|e| format!("{}: does not deserialize: {e}", ex.name()))?;
    let back = serde_json::to_value(&parsed).unwrap();
    let mut extra = Vec::new();
    compare_keys(&back, &ex.value, "$", &mut extra, dropped);
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: we would write fields the example does not have: {extra:?}",
            ex.name()
        ))
    }
}

/// Which of our types an example must deserialize into.
fn check_response(ex: &Example, dropped: &mut BTreeSet<String>) -> Result<(), String> {
    let ok = ex.status.starts_with('2');
    if ex.file == NOTIFICATIONS {
        // Every Notifications answer (errors included) is a `{payload, errors}` wrapper.
        return match ex.op.as_str() {
            "getSubscriptions" => check::<GetSubscriptionsResponse>(ex, dropped),
            "getSubscription" | "createSubscription" | "getSubscriptionById" => {
                check::<NotificationsResponse<Subscription>>(ex, dropped)
            }
            "getDestinations" => check::<GetDestinationsResponse>(ex, dropped),
            "createDestination" | "getDestination" => check::<DestinationResponse>(ex, dropped),
            "deleteSubscriptionById" | "deleteDestination" | "sendTestNotification" => {
                check::<EmptyResponse>(ex, dropped)
            }
            other => Err(format!(
                "{}: no type for notifications operation {other}",
                ex.name()
            )),
        };
    }
    if !ok {
        return check::<ErrorList>(ex, dropped);
    }
    match (ex.file, ex.op.as_str()) {
        (SHIPMENTS, "getShipments") => check::<ShipmentsResponse>(ex, dropped),
        (SHIPMENTS, "getShipment") => check::<Shipment>(ex, dropped),
        (SHIPMENTS, "retrieveShippingOptions") => check::<ShippingOptionsResponse>(ex, dropped),
        (SHIPMENTS, "generateInvoice" | "retrieveInvoice") => check::<InvoiceResponse>(ex, dropped),
        (SHIPMENTS, "generateShipLabels") => check::<ShipLabelsResponse>(ex, dropped),
        (SHIPMENTS, _) if ex.status == "204" => {
            // No content: the client ignores the body; the examples show an empty object.
            if is_empty_value(&ex.value) {
                Ok(())
            } else {
                Err(format!("{}: a 204 example with a body", ex.name()))
            }
        }
        (INVENTORY, "batchInventory") => check::<BatchInventoryResponse>(ex, dropped),
        (RETURNS, "listReturns") => check::<ReturnsResponse>(ex, dropped),
        (RETURNS, "getReturn") => check::<Return>(ex, dropped),
        (LISTINGS, "patchListingsItem" | "putListingsItem" | "deleteListingsItem") => {
            check::<ListingsItemSubmissionResponse>(ex, dropped)
        }
        (LISTINGS, "getListingsItem") => check::<ListingsItem>(ex, dropped),
        (LISTINGS, "searchListingsItems") => check::<ItemSearchResults>(ex, dropped),
        _ => Err(format!("{}: no type mapped for this example", ex.name())),
    }
}

#[test]
fn every_response_example_deserializes_into_our_types() {
    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dropped_by_file: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for file in ALL {
        let model = load(file);
        let examples = response_examples(file, &model);
        assert!(
            !examples.is_empty(),
            "{file}: no examples found; is this the official model?"
        );
        for ex in &examples {
            let dropped = dropped_by_file.entry(file).or_default();
            if let Err(e) = check_response(ex, dropped) {
                failures.push(e);
            }
        }
        counts.insert(file, examples.len());
    }
    for (file, n) in &counts {
        println!("{file}: {n} response examples");
    }
    for (file, d) in &dropped_by_file {
        if !d.is_empty() {
            println!("{file}: fields read but not modelled (kept out of our types): {d:?}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} examples failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The External Fulfillment models must be covered completely; only fields the schema
    // itself does not declare may be dropped.
    let allowed: BTreeSet<&str> = ["stateOrRegion"].into_iter().collect();
    for file in [SHIPMENTS, INVENTORY, RETURNS] {
        for path in dropped_by_file.get(file).into_iter().flatten() {
            let leaf = path.rsplit('.').next().unwrap();
            assert!(allowed.contains(leaf), "{file}: our types drop {path}");
        }
    }
}

fn page_len(page: &Value) -> usize {
    page["shipments"].as_array().map_or(0, Vec::len)
}

#[test]
fn amazons_quirks_are_read_not_rejected() {
    let model = load(SHIPMENTS);
    let examples = response_examples(SHIPMENTS, &model);
    let shipments: Vec<Shipment> = examples
        .iter()
        .filter(|e| e.op == "getShipment" && e.status == "200")
        .map(|e| serde_json::from_value(e.value.clone()).unwrap())
        .collect();
    assert!(!shipments.is_empty());
    // chargeType GIFT is not in the enum, yet the shipment reads, keeping the raw value.
    let all_charges = shipments.iter().flat_map(|s| {
        s.charges
            .iter()
            .chain(s.line_items.iter().flat_map(|l| l.charges.iter()))
    });
    let gift = all_charges
        .clone()
        .find(|c| c.charge_type == ChargeType::Unknown("GIFT".into()));
    assert!(
        gift.is_some(),
        "the GIFT charge of Amazon's example is kept as Unknown(\"GIFT\")"
    );
    // "2020-06-09 14:00:00Z" (space instead of T) reads as a date.
    assert!(shipments
        .iter()
        .all(|s| s.earliest_pack_date_time.is_some()));
    // orderPlacedTimestamp in epoch milliseconds.
    assert!(shipments
        .iter()
        .any(|s| s.shipment_info.order_placed_timestamp.is_some()));
    // An unknown status and unknown fields do not fail a page.
    let mut page = examples
        .iter()
        .find(|e| e.op == "getShipments" && e.status == "200")
        .unwrap()
        .value
        .clone();
    page["shipments"][0]["status"] = json!("SOME_FUTURE_STATUS");
    page["shipments"][0]["brandNewField"] = json!({"x": 1});
    page["shipments"][0]["creationDateTime"] = json!("not a date");
    let r: ShipmentsResponse = serde_json::from_value(page.clone()).unwrap();
    assert_eq!(
        r.shipments[0].status,
        ShipmentStatus::Unknown("SOME_FUTURE_STATUS".into())
    );
    assert!(r.shipments[0].creation_date_time.is_none());

    // A shipment whose shape is broken is reported by id, and the rest of the page still reads.
    let good = page_len(&page);
    let mut broken = page.clone();
    let mut bad = broken["shipments"][0].clone();
    bad["id"] = json!("BROKEN-1");
    bad["lineItems"] = json!("not a list");
    broken["shipments"].as_array_mut().unwrap().push(bad);
    let p = ShipmentsPage::from_json(&serde_json::to_vec(&broken).unwrap()).unwrap();
    assert_eq!(p.shipments.len(), good);
    assert_eq!(p.unreadable.len(), 1);
    assert_eq!(p.unreadable[0].id.as_deref(), Some("BROKEN-1"));
    assert!(p.next_token.is_some());
}

/// The schema of definition `name` with every object made strict (`additionalProperties: false`
/// unless the model says otherwise), so a misnamed or extra field fails validation.
fn strict_validator(model: &Value, name: &str) -> jsonschema::Validator {
    fn strictify(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                    o.insert("additionalProperties".into(), Value::Bool(false));
                }
                for (_, child) in o.iter_mut() {
                    strictify(child);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(strictify),
            _ => {}
        }
    }
    let mut defs = model["definitions"].clone();
    strictify(&mut defs);
    let schema = json!({"allOf": [{"$ref": format!("#/definitions/{name}")}], "definitions": defs});
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

fn assert_valid<T: Serialize>(model: &Value, def: &str, sample: &T, what: &str) {
    let v = serde_json::to_value(sample).unwrap();
    let validator = strict_validator(model, def);
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match {def}: {errors:#?}\nbody: {v}"
    );
}

fn sample_package(id: &str, full: bool) -> Package {
    let dim = |v: &str| Dimension {
        value: Decimal::from(v),
        dimension_unit: DimensionUnit::Cm,
    };
    Package {
        id: id.into(),
        dimensions: PackageDimensions {
            length: dim("30"),
            width: dim("20"),
            height: dim("10.5"),
        },
        weight: Weight {
            value: "1.25".into(),
            weight_unit: WeightUnit::Kg,
        },
        hazmat_labels: if full { vec!["UN3481".into()] } else { vec![] },
        package_line_items: vec![PackageLineItem {
            package_line_item_id: "1".into(),
            quantity: 2,
            serial_numbers: if full {
                vec!["SN1".into(), "SN2".into()]
            } else {
                vec![]
            },
            pieces: full.then_some(1),
            country_of_origin: full.then(|| "IN".into()),
            item_value: full.then(|| Amount {
                value: "499.00".into(),
                currency_code: "INR".into(),
            }),
        }],
        status: None,
        package_handling_requirements: full.then_some(PackageHandlingRequirements::Fragile),
    }
}

#[test]
fn every_request_body_we_send_matches_the_model() {
    let shipments = load(SHIPMENTS);
    let inventory = load(INVENTORY);
    let listings = load(LISTINGS);
    let notifications = load(NOTIFICATIONS);

    // processShipment REJECT.
    let shipment: Shipment = serde_json::from_value(
        response_examples(SHIPMENTS, &shipments)
            .into_iter()
            .find(|e| e.op == "getShipment" && e.status == "200")
            .unwrap()
            .value,
    )
    .unwrap();
    let reject = ShipmentAcknowledgementRequest::reject_all(
        &shipment,
        "reject#S1",
        RejectReason::OutOfStock,
    );
    assert_valid(
        &shipments,
        "ShipmentAcknowledgementRequest",
        &reject,
        "reject_all",
    );
    let reject = ShipmentAcknowledgementRequest {
        reference_id: None,
        line_items: vec![LineItemWithReason {
            line_item: LineItem {
                id: "1".into(),
                quantity: None,
            },
            reason: Some(RejectReason::CustomerRequested),
        }],
    };
    assert_valid(
        &shipments,
        "ShipmentAcknowledgementRequest",
        &reject,
        "minimal reject",
    );

    // createPackages / updatePackage.
    for full in [false, true] {
        let p = sample_package("PKG-1", full);
        assert_valid(&shipments, "Package", &p, "updatePackage body");
        let body = Packages {
            packages: vec![p, sample_package("PKG-2", !full)],
        };
        assert_valid(&shipments, "Packages", &body, "createPackages body");
    }

    // updatePackageStatus.
    for s in [
        PackageDeliveryStatus {
            status: Some(PackageStatus::Shipped),
            ..Default::default()
        },
        PackageDeliveryStatus {
            status: Some(PackageStatus::Delivered),
            sub_status: Some(PackageSubStatus::Delivered),
            reason: Some("handed to the buyer".into()),
        },
    ] {
        assert_valid(
            &shipments,
            "PackageDeliveryStatus",
            &s,
            "updatePackageStatus body",
        );
    }

    // generateShipLabels.
    for input in [
        ShipLabelsInput {
            package_ids: vec!["PKG-1".into()],
            courier_supported_attributes: None,
        },
        ShipLabelsInput {
            package_ids: vec!["PKG-1".into(), "PKG-2".into()],
            courier_supported_attributes: Some(CourierSupportedAttributes {
                carrier_name: "ATS".into(),
                tracking_id: "151958276037".into(),
            }),
        },
    ] {
        assert_valid(
            &shipments,
            "ShipLabelsInput",
            &input,
            "generateShipLabels body",
        );
    }

    // batchInventory.
    let market = InventoryMarketplaceAttributes {
        channel_name: Some(InventoryChannel::Fba),
        marketplace_id: Some("A21TJRUUN4KGV".into()),
    };
    let batch = BatchInventoryRequest {
        requests: vec![
            InventoryRequest::update(
                "EXSB",
                "sku with space/1",
                15,
                1_700_000_000_000,
                Some(market.clone()),
            ),
            InventoryRequest::update("EXSB", "plain", 0, 2, None),
            InventoryRequest::fetch("EXSB", "plain", Some(market)),
            InventoryRequest::fetch("DEFAULT", "plain", None),
        ],
    };
    assert_valid(
        &inventory,
        "BatchInventoryRequest",
        &batch,
        "batchInventory body",
    );

    // patchListingsItem.
    let one = ListingsPatch::price("SHIRT", "ATVPDKIKX0DER", "USD", 19.99);
    assert_valid(&listings, "ListingsItemPatchRequest", &one, "price patch");
    let many = ListingsPatch::prices(
        "SHIRT",
        &[
            MarketplacePrice {
                marketplace_id: "A1PA6795UKMFR9".into(),
                currency: "EUR".into(),
                value_with_tax: 21.5,
            },
            MarketplacePrice {
                marketplace_id: "A13V1IB3VIYZZH".into(),
                currency: "EUR".into(),
                value_with_tax: 22.0,
            },
        ],
    );
    assert_valid(
        &listings,
        "ListingsItemPatchRequest",
        &many,
        "multi-marketplace price patch",
    );

    // createSubscription.
    let sub = CreateSubscriptionRequest {
        payload_version: "1.0".into(),
        destination_id: "dest-1".into(),
        processing_directive: None,
    };
    assert_valid(
        &notifications,
        "CreateSubscriptionRequest",
        &sub,
        "createSubscription body",
    );

    // createDestination (SQS, and EventBridge which takes only region and account).
    let sqs = CreateDestinationRequest {
        name: "flexbridge".into(),
        resource_specification: DestinationResource {
            sqs: Some(SqsResource {
                arn: "arn:aws:sqs:us-east-1:123456789012:NotificationsQueue".into(),
            }),
            event_bridge: None,
        },
    };
    assert_valid(
        &notifications,
        "CreateDestinationRequest",
        &sqs,
        "createDestination (SQS)",
    );
    let eb = CreateDestinationRequest {
        name: "flexbridge-eb".into(),
        resource_specification: DestinationResource {
            sqs: None,
            event_bridge: Some(EventBridgeResource {
                name: None,
                region: "us-east-1".into(),
                account_id: "123456789012".into(),
            }),
        },
    };
    assert_valid(
        &notifications,
        "CreateDestinationRequest",
        &eb,
        "createDestination (EventBridge)",
    );
}

#[test]
fn the_models_request_examples_round_trip_through_our_types() {
    let mut checked = 0;
    for file in [SHIPMENTS, INVENTORY, LISTINGS, NOTIFICATIONS] {
        let model = load(file);
        for ex in request_examples(file, &model) {
            if is_empty_value(&ex.value) {
                continue; // the sandbox's `{}` placeholders
            }
            let back = match ex.op.as_str() {
                "processShipment" => rt::<ShipmentAcknowledgementRequest>(&ex),
                "createPackages" => rt::<Packages>(&ex),
                "updatePackage" => rt::<Package>(&ex),
                "updatePackageStatus" => rt::<PackageDeliveryStatus>(&ex),
                "generateShipLabels" => rt::<ShipLabelsInput>(&ex),
                "batchInventory" => rt::<BatchInventoryRequest>(&ex),
                "patchListingsItem" => rt::<ListingsPatch>(&ex),
                "createSubscription" => rt::<CreateSubscriptionRequest>(&ex),
                "createDestination" => rt::<CreateDestinationRequest>(&ex),
                _ => continue, // bodies of operations we never call
            };
            assert_eq!(
                back,
                ex.value,
                "{} changes when read and written back",
                ex.name()
            );
            checked += 1;
        }
    }
    println!("{checked} request examples round-tripped");
    assert!(
        checked >= 4,
        "expected the model's request examples, found {checked}"
    );
}

fn rt<T: DeserializeOwned + Serialize>(ex: &Example) -> Value {
    let t: T =
        serde_json::from_value(ex.value.clone()).unwrap_or_else(|e| panic!("{}: {e}", ex.name()));
    serde_json::to_value(t).unwrap()
}

fn model_enum(model: &Value, pointer: &str) -> BTreeSet<String> {
    model
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no enum at {pointer}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn ours(known: &[&str]) -> BTreeSet<String> {
    known.iter().map(|s| s.to_string()).collect()
}

#[test]
fn our_enums_list_exactly_the_models_values() {
    let s = load(SHIPMENTS);
    let d = "/definitions";
    let cases: Vec<(&Value, String, &[&str])> = vec![
        (
            &s,
            format!("{d}/Shipment/properties/status/enum"),
            ShipmentStatus::KNOWN,
        ),
        (
            &s,
            format!("{d}/Shipment/properties/subStatus/enum"),
            ShipmentSubStatus::KNOWN,
        ),
        (
            &s,
            format!("{d}/Charge/properties/chargeType/enum"),
            ChargeType::KNOWN,
        ),
        (&s, format!("{d}/Tax/properties/type/enum"), TaxType::KNOWN),
        (
            &s,
            format!("{d}/Package/properties/status/enum"),
            PackageStatus::KNOWN,
        ),
        (
            &s,
            format!("{d}/PackageSubStatus/enum"),
            PackageSubStatus::KNOWN,
        ),
        (
            &s,
            format!("{d}/Dimension/properties/dimensionUnit/enum"),
            DimensionUnit::KNOWN,
        ),
        (
            &s,
            format!("{d}/Weight/properties/weightUnit/enum"),
            WeightUnit::KNOWN,
        ),
        (
            &s,
            format!("{d}/ShippingOptions/properties/shipBy/enum"),
            ShipBy::KNOWN,
        ),
        (
            &s,
            format!("{d}/Document/properties/format/enum"),
            DocumentFormat::KNOWN,
        ),
        (
            &s,
            format!("{d}/Cancellation/properties/cancellationType/enum"),
            CancellationType::KNOWN,
        ),
        (
            &s,
            format!("{d}/ShippingInfo/properties/shippingType/enum"),
            ShippingType::KNOWN,
        ),
        (
            &s,
            format!("{d}/CustomChannelAttribute/items/enum"),
            CustomChannelAttribute::KNOWN,
        ),
    ];
    let inv = load(INVENTORY);
    let ret = load(RETURNS);
    let lis = load(LISTINGS);
    let more: Vec<(&Value, String, &[&str])> = vec![
        (
            &inv,
            format!("{d}/MarketplaceAttributes/properties/channelName/enum"),
            InventoryChannel::KNOWN,
        ),
        (
            &ret,
            format!("{d}/Return/properties/status/enum"),
            ReturnStatus::KNOWN,
        ),
        (
            &ret,
            format!("{d}/Return/properties/returnType/enum"),
            ReturnType::KNOWN,
        ),
        (
            &lis,
            format!("{d}/ListingsItemSubmissionResponse/properties/status/enum"),
            SubmissionStatus::KNOWN,
        ),
        (
            &lis,
            format!("{d}/Issue/properties/severity/enum"),
            IssueSeverity::KNOWN,
        ),
    ];
    for (model, pointer, known) in cases.into_iter().chain(more) {
        assert_eq!(ours(known), model_enum(model, &pointer), "{pointer}");
    }
    // Package.status has CANCELLED; the PackageStatus definition (updatePackageStatus) does not:
    // the client refuses to send it there only if Amazon's model lists it.
    let delivery = model_enum(&s, &format!("{d}/PackageStatus/enum"));
    assert!(delivery.is_subset(&ours(PackageStatus::KNOWN)));
    // The reject reasons and operations we send are the model's.
    let reasons = model_enum(
        &s,
        &format!("{d}/LineItemWithReason/properties/reason/enum"),
    );
    for r in [RejectReason::OutOfStock, RejectReason::CustomerRequested] {
        let v = serde_json::to_value(r).unwrap();
        assert!(reasons.contains(v.as_str().unwrap()));
    }
    let process = operations(&s)
        .into_iter()
        .find(|(id, _)| id == "processShipment")
        .unwrap()
        .1
        .clone();
    let ops: BTreeSet<String> = process["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "operation")
        .and_then(|p| p["enum"].as_array())
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ops, ours(&["CONFIRM", "REJECT"]));
    assert!(ops.contains(ShipmentOperation::Confirm.as_str()));
}

#[test]
fn the_checks_themselves_catch_mistakes() {
    // Guards against a vacuous test: the strict schema rejects a misnamed or extra field and a
    // wrong enum value, and the key comparison spots a field we would misname.
    let s = load(SHIPMENTS);
    let v = strict_validator(&s, "ShipLabelsInput");
    assert!(v.is_valid(&json!({"packageIds": ["P1"]})));
    assert!(!v.is_valid(&json!({"packageIDs": ["P1"]})));
    assert!(!v.is_valid(&json!({"packageIds": ["P1"], "extra": 1})));
    let v = strict_validator(&s, "PackageDeliveryStatus");
    assert!(!v.is_valid(&json!({"status": "LOST_IN_SPACE"})));
    let mut extra = Vec::new();
    let mut dropped = BTreeSet::new();
    compare_keys(
        &json!({"expectedShippingDateTimeInUtc": "2020-01-01T00:00:00Z"}),
        &json!({"expectedShippingDateTimeInUTC": "2020-01-01T00:00:00Z"}),
        "$",
        &mut extra,
        &mut dropped,
    );
    assert_eq!(extra, vec!["$.expectedShippingDateTimeInUtc".to_string()]);
    assert!(dropped.contains("$.expectedShippingDateTimeInUTC"));
}
