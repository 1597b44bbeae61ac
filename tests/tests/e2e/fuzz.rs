//! The fuzz targets of `flexbridge_bench::fuzz`, each for `PROPTEST_CASES` cases (default 256)
//! from a fixed seed, so CI runs every one on every change; and the inputs fuzzing found that
//! once broke a rule, as regression tests. `cargo run --release -p flexbridge-bench --bin fuzz`
//! runs the same targets for a fixed time.

use flexbridge_bench::fuzz::{self, TARGETS};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn runner(seed: u8) -> TestRunner {
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}

fn run(name: &str) {
    let target = TARGETS.iter().find(|t| t.name == name).expect("target");
    if let Err(e) = (target.run)(&mut runner(7)) {
        panic!("{name}: {e}");
    }
}

#[test]
fn csv_catalog() {
    run("csv_catalog");
}

#[test]
fn csv_prices() {
    run("csv_prices");
}

#[test]
fn csv_inventory() {
    run("csv_inventory");
}

#[test]
fn warehouse_signature() {
    run("warehouse_signature");
}

#[test]
fn warehouse_request() {
    run("warehouse_request");
}

#[test]
fn notification_envelope() {
    run("notification_envelope");
}

#[test]
fn spapi_shipments() {
    run("spapi_shipments");
}

#[test]
fn spapi_returns_errors() {
    run("spapi_returns_errors");
}

#[test]
fn every_target_has_a_test() {
    let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "csv_catalog",
            "csv_prices",
            "csv_inventory",
            "warehouse_signature",
            "warehouse_request",
            "notification_envelope",
            "spapi_shipments",
            "spapi_returns_errors"
        ]
    );
}

// ---- regressions: inputs fuzzing found (each broke the rule its check states)

#[test]
fn csv_regressions() {
    // A NUL after an invalid byte: refused for the first bad byte whatever the chunking
    // (the reader once said "binary" read whole and "not UTF-8" read in pieces).
    let cases: &[&[u8]] = &[
        &[1, 1, 1, 128, 1, 1, 0],
        b"sku,asin\nA\x80,B0\x00",
        b"\xEF\xBB\xBFsku,price,currency\n\xE2\x00",
        // Classic Mac line endings: every row was reported as line 1.
        b"max_quantity,title,asin,SKU\ra",
        // A carriage return alone inside the rows: two rows were both reported as line 2.
        b"sku,asin\nB0A0AA000A,\r,0\x01",
        // Mixed line endings: two rows were both reported as line 2.
        b"sku,price,currency,marketplace_id, \n-,\r\n,,B00AA0AAAA\n-_Aa0_A0a\n",
    ];
    for bytes in cases {
        for chunk in 1..8 {
            fuzz::check_csv(flexbridge::upload::Kind::Catalog, bytes, chunk).unwrap();
            fuzz::check_csv(flexbridge::upload::Kind::Prices, bytes, chunk).unwrap();
        }
    }
}

#[test]
fn a_binary_and_not_utf8_file_is_refused_for_its_first_bad_byte() {
    use flexbridge::upload::{Kind, UploadReader};
    let bytes: &[u8] = b"sku,asin\nA\x80\x00";
    let err = UploadReader::open(Kind::Catalog, bytes)
        .and_then(|mut r| r.next_row().map(|_| ()))
        .unwrap_err();
    assert!(err.message.contains("0x80"), "{}", err.message);
}

#[test]
fn a_shipment_time_keeps_its_fraction_of_a_second_when_stored() {
    let v = fuzz::shipment_json("S1");
    let s: flexbridge::spapi::Shipment = serde_json::from_value(v).unwrap();
    let back = serde_json::to_value(&s).unwrap();
    assert_eq!(back["lastUpdatedDateTime"], "2026-11-21T08:00:01.500Z");
    let again: flexbridge::spapi::Shipment = serde_json::from_value(back).unwrap();
    assert_eq!(again, s);
}

#[test]
fn a_file_with_classic_mac_line_endings_is_refused_not_misnumbered() {
    use flexbridge::upload::{Kind, UploadReader};
    let err = UploadReader::open(
        Kind::Catalog,
        &b"sku,asin\rA,B000000001\rB,B000000002\r"[..],
    )
    .err()
    .expect("refused");
    assert!(err.message.contains("carriage return"), "{}", err.message);
    // A CRLF file is fine.
    let mut r = UploadReader::open(Kind::Catalog, &b"sku,asin\r\nA,B000000001\r\n"[..]).unwrap();
    assert_eq!(r.next_row().unwrap().unwrap().line, 2);
}

#[test]
fn a_carriage_return_alone_in_a_row_is_refused_with_its_line() {
    use flexbridge::upload::{Kind, UploadReader};
    let bytes: &[u8] = b"sku,asin\r\nA,B000000001\r\nB,B0000\r00002\r\n";
    let first_error = |bytes: &[u8]| {
        let mut r = UploadReader::open(Kind::Catalog, bytes)?;
        while r.next_row()?.is_some() {}
        Ok::<_, flexbridge::upload::FileRejection>(())
    };
    let err = first_error(bytes).unwrap_err();
    assert!(err.message.contains("line 3"), "{}", err.message);
    // Inside quotes it is part of the value.
    let mut r = UploadReader::open(
        Kind::Catalog,
        &b"sku,asin,title\nA,B000000001,\"a\rb\"\n"[..],
    )
    .unwrap();
    assert!(r.next_row().unwrap().is_some());
}

#[test]
fn mixed_line_endings_are_refused_with_the_line() {
    use flexbridge::upload::{Kind, UploadReader};
    let err = UploadReader::open(
        Kind::Prices,
        &b"sku,price,currency\nA,1.00,EUR\r\nB,2.00,EUR\n"[..],
    )
    .err()
    .expect("refused");
    assert!(err.message.contains("line 2"), "{}", err.message);
    // One style throughout, and a line break inside quotes, are fine.
    for ok in [
        &b"sku,price,currency\r\nA,1.00,EUR\r\nB,2.00,EUR\r\n"[..],
        &b"sku,price,currency\nA,1.00,EUR\nB,2.00,EUR\n"[..],
        &b"sku,price,currency,marketplace_id\r\nA,1.00,EUR,\"x\ny\"\r\n"[..],
    ] {
        let mut r = UploadReader::open(Kind::Prices, ok).unwrap();
        while r.next_row().unwrap().is_some() {}
    }
}

/// `/.?` has the segment `.` (the query starts at `?`): refused as `400 invalid_path` before
/// the signature is looked at, which the oracle first took for a wrongly signed request let in.
#[tokio::test]
async fn a_dot_segment_before_a_query_is_an_invalid_path_whatever_the_signature() {
    let f = fuzz::WarehouseFixture::default();
    let req = fuzz::Req {
        method: "GET".into(),
        path: "/.?".into(),
        content_type: Some("application/json".into()),
        key: None,
        body: br#"{"items":[]}"#.to_vec(),
    };
    fuzz::check_request(&f, &req, &fuzz::Signing::OtherBody, 0)
        .await
        .expect("the rule holds");
    let (status, wrote) = fuzz::send(&f, &req, &fuzz::Signing::OtherBody, 0)
        .await
        .expect("answered");
    assert_eq!((status, wrote), (400, false));
}
