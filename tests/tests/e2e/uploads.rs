//! Catalog and price uploads through the real path: an object put into moto's bucket → S3's
//! notification → UploadsQueue → the runner (or the handler itself) → CatalogTable, the price
//! queue → price-pusher → the simulator's listings, and the reports back in the bucket.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_s3::primitives::ByteStream;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore, PriceState};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::upload::ingest::IngestConfig;
use flexbridge::upload::UploadSummary;
use flexbridge_e2e::flexbridge_local::runner::sqs_event;
use flexbridge_e2e::{eventually, TestStack};
use flexbridge_local::RunnerOptions;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn bucket(t: &TestStack) -> String {
    t.stack.bucket("UploadsBucket").to_string()
}

/// Puts an upload; returns its version ID.
async fn put(t: &TestStack, key: &str, body: impl Into<Vec<u8>>) -> Result<String> {
    let out =
        t.s3.put_object()
            .bucket(bucket(t))
            .key(key)
            .body(ByteStream::from(body.into()))
            .send()
            .await?;
    // Without bucket versioning, flexbridge names a version by its ETag.
    Ok(match out.version_id().filter(|v| *v != "null") {
        Some(v) => v.to_string(),
        None => format!("etag:{}", out.e_tag().unwrap_or_default().trim_matches('"')),
    })
}

async fn object(t: &TestStack, key: &str) -> Result<Option<String>> {
    match t.s3.get_object().bucket(bucket(t)).key(key).send().await {
        Ok(out) => Ok(Some(String::from_utf8(out.body.collect().await?.to_vec())?)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits for the summary report of this version of `key`.
async fn summary(t: &TestStack, key: &str, version: &str) -> Result<UploadSummary> {
    let report = format!("reports/{key}.summary.json");
    eventually(WAIT, &format!("{report} for version {version}"), || async {
        Ok(match object(t, &report).await? {
            Some(text) => {
                let s: UploadSummary = serde_json::from_str(&text)?;
                (s.version_id == version).then_some(s)
            }
            None => None,
        })
    })
    .await
}

fn catalog(t: &TestStack) -> DynamoCatalogStore {
    DynamoCatalogStore::new(t.dynamodb.clone(), t.stack.table("CatalogTable"))
}

async fn items(t: &TestStack) -> Result<Vec<CatalogItem>> {
    let store = catalog(t);
    let mut all = Vec::new();
    let mut page = None;
    loop {
        let p = store.scan_items(page).await?;
        all.extend(p.items);
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    all.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(all)
}

async fn enabled_skus(t: &TestStack) -> Result<Vec<String>> {
    Ok(items(t)
        .await?
        .into_iter()
        .filter(|i| i.enabled)
        .map(|i| i.sku)
        .collect())
}

async fn upload_runner(t: &TestStack) -> Result<flexbridge_local::Runner> {
    let only: BTreeSet<String> = ["UploadIngestFunction", "PricePusherFunction"]
        .into_iter()
        .map(String::from)
        .collect();
    t.runner(RunnerOptions {
        run_schedules: false,
        serve_urls: false,
        only: Some(only),
        ..Default::default()
    })
    .await
}

/// Receives the next S3 notification (or resume message) from UploadsQueue, skipping
/// `s3:TestEvent`.
async fn next_upload_message(t: &TestStack) -> Result<aws_sdk_sqs::types::Message> {
    let url = t.stack.queue_url("UploadsQueue").to_string();
    eventually(WAIT, "a message on UploadsQueue", || async {
        let out = t
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?;
        for m in out.messages.unwrap_or_default() {
            t.sqs
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            if m.body().unwrap_or_default().contains("s3:TestEvent") {
                continue;
            }
            return Ok(Some(m));
        }
        Ok(None)
    })
    .await
}

fn event_for(t: &TestStack, m: &aws_sdk_sqs::types::Message) -> Value {
    let q = &t.stack.queues["UploadsQueue"];
    sqs_event(std::slice::from_ref(m), &q.arn, &t.stack.region)
}

/// The ingest handler exactly as the runner builds it (registry + template environment).
async fn ingest_handler(t: &TestStack) -> Result<Arc<dyn Function>> {
    let make = flexbridge_local::registry::constructors()["UploadIngestFunction"];
    match make(t.env_for("UploadIngestFunction")?).await? {
        flexbridge_local::Handler::Function(f) => Ok(f),
        flexbridge_local::Handler::Http(_) => {
            Err(anyhow!("UploadIngestFunction is not an SQS consumer"))
        }
    }
}

const CATALOG: &str =
    "\u{feff}SKU;ASIN;Title;Product Type;Enabled;Safety Stock;Max Quantity;Colour\r\n\
    MUG-1;B000000001;\"Mug; red\";KITCHEN;yes;2;50;red\r\n\
    CUP-1;B000000002;Cup;;true;;;blue\r\n\
    BAD-ASIN;b00000000x;Plate;KITCHEN;;;;\r\n\
    ;B000000003;No sku;KITCHEN;;;;\r\n\
    MUG-1;B000000009;Again;KITCHEN;;;;\r\n\
    ODD-TYPE;B000000004;Gadget;GADGET;;;;\r\n\
    EVIL;B000000005;=HYPERLINK(\"x\");KITCHEN;maybe;;;\r\n\
    FORMULA;=1+2;Formula;KITCHEN;;;;\r\n";

#[tokio::test]
async fn catalog_and_prices_go_from_the_bucket_to_dynamodb_and_amazon() -> Result<()> {
    let t = TestStack::start("uploads_catalog_prices").await?;
    let runner = upload_runner(&t).await?;

    let v = put(&t, "catalog/delta/spring.csv", CATALOG).await?;
    let s = summary(&t, "catalog/delta/spring.csv", &v).await?;
    assert_eq!(s.status, "processed");
    assert_eq!((s.rows_read, s.accepted, s.rejected), (8, 3, 5), "{s:?}");
    assert_eq!(s.extra_columns, vec!["Colour"]);
    assert_eq!(s.delimiter.as_deref(), Some("semicolon"));
    let all = items(&t).await?;
    let skus: Vec<&str> = all.iter().map(|i| i.sku.as_str()).collect();
    assert_eq!(skus, ["CUP-1", "MUG-1", "ODD-TYPE"]);
    let mug = &all[1];
    assert_eq!(
        (
            mug.asin.as_str(),
            mug.title.as_deref(),
            mug.safety_stock,
            mug.max_quantity
        ),
        ("B000000001", Some("Mug; red"), Some(2), Some(50))
    );

    let errors = object(&t, "reports/catalog/delta/spring.csv.errors.csv")
        .await?
        .ok_or_else(|| anyhow!("no errors report"))?;
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines[0], "line,column,value,reason");
    assert!(lines[1].starts_with("4,asin,b00000000x,"), "{errors}");
    assert!(lines[2].starts_with("5,sku,,SKU is empty"), "{errors}");
    assert!(
        lines[3].starts_with("6,sku,MUG-1,duplicate SKU in this file: line 2"),
        "{errors}"
    );
    assert!(lines[4].starts_with("8,enabled,maybe,"), "{errors}");
    // A formula in a cell comes back as text, not as something a spreadsheet would run.
    assert!(lines[5].starts_with("9,asin,'=1+2,"), "{errors}");
    assert_eq!(
        s.errors_report.as_deref(),
        Some("reports/catalog/delta/spring.csv.errors.csv")
    );

    // The same rows again (only an ignored column differs, so it is a new object version):
    // nothing rewritten.
    let before = items(&t).await?;
    let v2 = put(
        &t,
        "catalog/delta/spring.csv",
        CATALOG.replace(";red", ";crimson"),
    )
    .await?;
    assert_ne!(v, v2);
    let s2 = summary(&t, "catalog/delta/spring.csv", &v2).await?;
    assert_eq!((s2.accepted, s2.unchanged), (3, 3));
    assert_eq!(items(&t).await?, before, "an unchanged row writes nothing");

    // Prices: one good, one refused per guardrail, one Amazon will call INVALID.
    let prices = "sku,price,currency,minimum_price,maximum_price,force\n\
        MUG-1,12.50,USD,10,20,\n\
        CUP-1,3.00,USD,,,\n\
        NOPE,3.00,USD,,,\n\
        MUG-1,9.99,XYZ,,,\n\
        ODD-TYPE,7.00,USD,,,\n";
    let v = put(&t, "prices/today.csv", prices).await?;
    let s = summary(&t, "prices/today.csv", &v).await?;
    assert_eq!(
        (s.rows_read, s.accepted, s.rejected, s.queued),
        (5, 2, 3, 2),
        "{s:?}"
    );
    let errors = object(&t, "reports/prices/today.csv.errors.csv")
        .await?
        .unwrap_or_default();
    assert!(
        errors.contains("3,sku,CUP-1,the catalog has no product_type"),
        "{errors}"
    );
    assert!(
        errors.contains("4,sku,NOPE,SKU is not in the catalog"),
        "{errors}"
    );
    assert!(
        errors.contains("5,currency,XYZ,\"unknown currency"),
        "{errors}"
    );

    let store = catalog(&t);
    let key = |sku: &str| (sku.to_string(), "ATVPDKIKX0DER".to_string());
    let states: Vec<PriceState> = eventually(WAIT, "Amazon's answers recorded", || async {
        let got = store.get_prices(&[key("MUG-1"), key("ODD-TYPE")]).await?;
        Ok((got.len() == 2).then_some(got))
    })
    .await?;
    let mug = states.iter().find(|p| p.sku == "MUG-1").unwrap();
    assert_eq!(
        (mug.status.as_str(), mug.price, mug.currency.as_str()),
        ("ACCEPTED", 1250, "USD")
    );
    let odd = states.iter().find(|p| p.sku == "ODD-TYPE").unwrap();
    assert_eq!(odd.status, "INVALID");
    assert!(odd.issues.contains("GADGET"), "{}", odd.issues);
    let listings = t.sim().admin().listings().await?;
    assert_eq!(
        listings["MUG-1"]["prices"]["ATVPDKIKX0DER"], "12.50",
        "{listings}"
    );
    assert!(
        listings.get("ODD-TYPE").is_none()
            || listings["ODD-TYPE"]["prices"]
                .get("ATVPDKIKX0DER")
                .is_none()
    );

    // More than 50% below the last price sent: refused unless forced.
    let v = put(
        &t,
        "prices/sale.csv",
        "sku,price,currency,force\nMUG-1,5.00,USD,\n",
    )
    .await?;
    let s = summary(&t, "prices/sale.csv", &v).await?;
    assert_eq!((s.rejected, s.queued), (1, 0));
    let errors = object(&t, "reports/prices/sale.csv.errors.csv")
        .await?
        .unwrap_or_default();
    assert!(
        errors.contains("more than 50% away from the last price we sent (12.50)"),
        "{errors}"
    );
    let v = put(
        &t,
        "prices/sale.csv",
        "sku,price,currency,force\nMUG-1,5.00,USD,true\n",
    )
    .await?;
    let s = summary(&t, "prices/sale.csv", &v).await?;
    assert_eq!(s.queued, 1);
    eventually(WAIT, "the forced price at Amazon", || async {
        let l = t.sim().admin().listings().await?;
        Ok((l["MUG-1"]["prices"]["ATVPDKIKX0DER"] == "5.00").then_some(()))
    })
    .await?;

    // Every upload is in the change log, and announced on the bus.
    let settings = DynamoSettingsStore::new(t.dynamodb.clone(), t.stack.table("SettingsTable"));
    let log = settings.history("upload:catalog/delta/spring.csv").await?;
    assert_eq!(log.len(), 2, "two versions of the catalog");
    assert_eq!(log[0].new["version_id"], v2.as_str());
    let outbound = t.stack.queue_url("OutboundQueue").to_string();
    let event: Value = eventually(
        WAIT,
        "UploadProcessed on the bus (→ OutboundQueue)",
        || async {
            let out = t
                .sqs
                .receive_message()
                .queue_url(&outbound)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            for m in out.messages.unwrap_or_default() {
                let e: Value = serde_json::from_str(m.body().unwrap_or_default())?;
                if e["detail-type"] == "UploadProcessed"
                    && e["detail"]["uploadKey"] == "catalog/delta/spring.csv"
                {
                    return Ok(Some(e));
                }
            }
            Ok(None)
        },
    )
    .await?;
    assert_eq!(event["detail"]["kind"], "catalog");
    assert_eq!(
        event["detail"]["reportKey"],
        "reports/catalog/delta/spring.csv.summary.json"
    );
    assert_eq!(event["detail"]["summary"]["rowsRead"], 8);
    assert_eq!(event["detail"]["summary"]["rejected"], 5);
    assert_eq!(runner.function_stats("UploadIngestFunction").errors, 0);
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn files_that_cannot_be_read_are_rejected_whole_with_a_reason() -> Result<()> {
    let t = TestStack::start("uploads_rejections").await?;
    let runner = upload_runner(&t).await?;
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("catalog/delta/empty.csv", Vec::new(), "the file is empty"),
        (
            "catalog/delta/latin1.csv",
            b"sku,asin,title\nA,B000000001,caf\xe9\n".to_vec(),
            "not UTF-8",
        ),
        (
            "catalog/delta/book.csv",
            b"PK\x03\x04\x14\x00\x06\x00rest".to_vec(),
            "Excel workbook",
        ),
        (
            "catalog/delta/binary.csv",
            b"sku,asin\nA\x00B,B000000001\n".to_vec(),
            "binary",
        ),
        (
            "catalog/delta/nocol.csv",
            b"sku,title\nA,Mug\n".to_vec(),
            "missing required column asin",
        ),
        (
            "prices/dup.csv",
            b"sku,price,currency,Price\nA,1,USD,2\n".to_vec(),
            "more than once: price",
        ),
    ];
    for (key, body, reason) in &cases {
        let v = put(&t, key, body.clone()).await?;
        let s = summary(&t, key, &v).await?;
        assert_eq!(s.status, "rejected", "{key}: {s:?}");
        assert!(
            s.reason.as_deref().unwrap_or("").contains(reason),
            "{key}: {:?}",
            s.reason
        );
        assert!(
            object(&t, &format!("reports/{key}.errors.csv"))
                .await?
                .is_none(),
            "{key}"
        );
    }
    assert!(
        items(&t).await?.is_empty(),
        "a rejected file writes nothing"
    );
    assert_eq!(t.queue_depth("PriceUpdatesQueue").await?, 0);
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_redelivered_notification_is_processed_once_and_a_new_version_again() -> Result<()> {
    let t = TestStack::start("uploads_redelivery").await?;
    let handler = ingest_handler(&t).await?;
    let key = "catalog/delta/once.csv";
    let v1 = put(&t, key, "sku,asin\nA,B000000001\n").await?;
    let message = next_upload_message(&t).await?;
    let event = event_for(&t, &message);
    let inv = || Invocation::new("r", Duration::from_secs(60));

    let out = handler.invoke(event.clone(), inv()).await?;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    let first = summary(&t, key, &v1).await?;
    // S3/SQS deliver the same notification again.
    handler.invoke(event, inv()).await?;
    let again = summary(&t, key, &v1).await?;
    assert_eq!(again.finished_at, first.finished_at, "processed once");
    let settings = DynamoSettingsStore::new(t.dynamodb.clone(), t.stack.table("SettingsTable"));
    assert_eq!(settings.history(&format!("upload:{key}")).await?.len(), 1);

    // A new version of the same key is a new upload.
    let v2 = put(&t, key, "sku,asin\nA,B000000002\n").await?;
    assert_ne!(v1, v2);
    let message = next_upload_message(&t).await?;
    handler.invoke(event_for(&t, &message), inv()).await?;
    let s = summary(&t, key, &v2).await?;
    assert_eq!(s.accepted, 1);
    assert_eq!(items(&t).await?[0].asin, "B000000002");
    assert_eq!(settings.history(&format!("upload:{key}")).await?.len(), 2);
    Ok(())
}

fn full_catalog(skus: std::ops::Range<u32>) -> String {
    let mut s = String::from("sku,asin,product_type\n");
    for i in skus {
        s.push_str(&format!("S{i:04},B{i:09},KITCHEN\n"));
    }
    s
}

#[tokio::test]
async fn a_truncated_full_catalog_cannot_switch_the_catalog_off() -> Result<()> {
    let t = TestStack::start("uploads_full_mode").await?;
    let runner = upload_runner(&t).await?;
    let v = put(&t, "catalog/full/all.csv", full_catalog(0..10)).await?;
    summary(&t, "catalog/full/all.csv", &v).await?;
    assert_eq!(enabled_skus(&t).await?.len(), 10);

    // 1 of 10 missing: within the 20% allowed; disabled, not deleted.
    let v = put(&t, "catalog/full/all.csv", full_catalog(0..9)).await?;
    let s = summary(&t, "catalog/full/all.csv", &v).await?;
    assert_eq!((s.status.as_str(), s.disabled), ("processed", 1));
    assert_eq!(enabled_skus(&t).await?.len(), 9);
    assert_eq!(items(&t).await?.len(), 10);

    // A truncated export: refused, nothing changes.
    let v = put(&t, "catalog/full/all.csv", full_catalog(0..2)).await?;
    let s = summary(&t, "catalog/full/all.csv", &v).await?;
    assert_eq!(s.status, "refused", "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("disable 7 of 9 active SKUs"),
        "{s:?}"
    );
    assert_eq!(enabled_skus(&t).await?.len(), 9);

    // The seller means it.
    let key = "catalog/full/all-allow-mass-disable.csv";
    let v = put(&t, key, full_catalog(0..2)).await?;
    let s = summary(&t, key, &v).await?;
    assert_eq!((s.status.as_str(), s.disabled), ("processed", 7));
    assert_eq!(enabled_skus(&t).await?, ["S0000", "S0001"]);
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_file_too_big_for_one_run_resumes_from_its_checkpoint() -> Result<()> {
    let t = TestStack::start("uploads_checkpoint").await?;
    // A tiny deadline (1 s, inside the 20 s stop margin): every run applies one window of
    // rows, saves its checkpoint and re-enqueues the upload.
    let handler = ingest_handler(&t).await?;
    let window = IngestConfig::new("ATVPDKIKX0DER").window_rows;
    let key = "catalog/delta/big.csv";
    let v = put(&t, key, full_catalog(0..(2 * window as u32 + 200))).await?;
    let mut runs = 0;
    loop {
        let message = next_upload_message(&t).await?;
        runs += 1;
        handler
            .invoke(
                event_for(&t, &message),
                Invocation::new("r", Duration::from_secs(1)),
            )
            .await?;
        if object(&t, &format!("reports/{key}.summary.json"))
            .await?
            .is_some()
        {
            break;
        }
        assert!(runs < 10, "no progress");
        let written = items(&t).await?.len();
        assert_eq!(
            written,
            window * runs,
            "one window per run, nothing lost or repeated"
        );
    }
    let s = summary(&t, key, &v).await?;
    let rows = 2 * window as u64 + 200;
    assert_eq!(
        (runs, s.runs, s.accepted, s.rows_read),
        (3, 3, rows, rows),
        "{s:?}"
    );
    assert_eq!(items(&t).await?.len() as u64, rows);
    Ok(())
}

#[tokio::test]
async fn a_price_reaches_amazon_once_through_faults_and_redelivery() -> Result<()> {
    use flexbridge::upload::ingest::PriceUpdate;
    use spapi_sim::FaultKind;

    let t = TestStack::start("uploads_price_pusher").await?;
    let make = flexbridge_local::registry::constructors()["PricePusherFunction"];
    let flexbridge_local::Handler::Function(pusher) =
        make(t.env_for("PricePusherFunction")?).await?
    else {
        return Err(anyhow!("PricePusherFunction is not an SQS consumer"));
    };
    let update = PriceUpdate {
        upload: "prices/p.csv@v1".into(),
        key: "prices/p.csv".into(),
        version_id: "v1".into(),
        order: "2026-11-21T08:21:13.408Z|0|prices/p.csv@v1".into(),
        line: 2,
        sku: "MUG-9".into(),
        asin: "B000000009".into(),
        product_type: "KITCHEN".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        currency: "USD".into(),
        price: 1999,
    };
    let url = t.stack.queue_url("PriceUpdatesQueue").to_string();
    t.sqs
        .send_message()
        .queue_url(&url)
        .message_body(serde_json::to_string(&update)?)
        .send()
        .await?;
    let message = eventually(WAIT, "the price message", || async {
        let out = t
            .sqs
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(1)
            .send()
            .await?;
        Ok(out.messages.unwrap_or_default().into_iter().next())
    })
    .await?;
    let q = &t.stack.queues["PriceUpdatesQueue"];
    let event = sqs_event(std::slice::from_ref(&message), &q.arn, &t.stack.region);
    let id = message.message_id().unwrap_or_default().to_string();
    let submissions = || async {
        let l = t.sim().admin().listings().await?;
        Ok::<usize, anyhow::Error>(l["MUG-9"]["submissions"].as_array().map_or(0, Vec::len))
    };

    // Amazon keeps failing (503): the message is reported for retry, nothing recorded.
    t.sim()
        .admin()
        .script_faults("patchListingsItem", &[FaultKind::Error503; 30])
        .await?;
    let out = pusher
        .invoke(event.clone(), Invocation::new("r1", Duration::from_secs(3)))
        .await?;
    assert_eq!(
        out["batchItemFailures"][0]["itemIdentifier"],
        id.as_str(),
        "{out}"
    );
    let store = catalog(&t);
    let key = ("MUG-9".to_string(), "ATVPDKIKX0DER".to_string());
    assert!(store
        .get_prices(std::slice::from_ref(&key))
        .await?
        .is_empty());
    assert_eq!(submissions().await?, 0);

    // SQS redelivers once Amazon is back: sent and recorded.
    t.sim().admin().clear_faults().await?;
    let out = pusher
        .invoke(
            event.clone(),
            Invocation::new("r2", Duration::from_secs(30)),
        )
        .await?;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    let state = store
        .get_prices(std::slice::from_ref(&key))
        .await?
        .remove(0);
    assert_eq!((state.status.as_str(), state.price), ("ACCEPTED", 1999));
    assert_eq!(state.upload, "prices/p.csv@v1#2");
    assert_eq!(submissions().await?, 1);

    // And delivered yet again: not sent a second time.
    pusher
        .invoke(event, Invocation::new("r3", Duration::from_secs(30)))
        .await?;
    assert_eq!(submissions().await?, 1);
    Ok(())
}
