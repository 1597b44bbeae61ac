//! Price uploads end to end (moto + the simulator): an older file's price never overrides a
//! newer one's, Amazon's answer per row lands in `reports/<key>.amazon.csv`, and a refusal of
//! our credentials is an error to retry, not an answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_s3::primitives::ByteStream;
use flexbridge::runtime::{Function, Invocation};
use flexbridge::store::catalog::{CatalogItem, CatalogStore, DynamoCatalogStore};
use flexbridge::upload::ingest::PriceUpdate;
use flexbridge::upload::UploadSummary;
use flexbridge_e2e::flexbridge_local::runner::sqs_event;
use flexbridge_e2e::{eventually, TestStack};
use serde_json::Value;
use spapi_sim::LwaCredentials;

const WAIT: Duration = Duration::from_secs(60);
const MARKET: &str = "ATVPDKIKX0DER";

async fn function(t: &TestStack, name: &str) -> Result<Arc<dyn Function>> {
    let make = flexbridge_local::registry::constructors()[name];
    match make(t.env_for(name)?).await? {
        flexbridge_local::Handler::Function(f) => Ok(f),
        flexbridge_local::Handler::Http(_) => Err(anyhow!("{name} is not an SQS consumer")),
    }
}

fn bucket(t: &TestStack) -> String {
    t.stack.bucket("UploadsBucket").to_string()
}

async fn put(t: &TestStack, key: &str, body: &str) -> Result<()> {
    t.s3.put_object()
        .bucket(bucket(t))
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await?;
    Ok(())
}

async fn object(t: &TestStack, key: &str) -> Result<Option<String>> {
    match t.s3.get_object().bucket(bucket(t)).key(key).send().await {
        Ok(out) => Ok(Some(String::from_utf8(out.body.collect().await?.to_vec())?)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Takes every message off `queue` until `want` have arrived (S3 test events dropped).
async fn take(t: &TestStack, queue: &str, want: usize) -> Result<Vec<aws_sdk_sqs::types::Message>> {
    let url = t.stack.queue_url(queue).to_string();
    let until = std::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < want {
        if std::time::Instant::now() > until {
            return Err(anyhow!("only {} of {want} messages on {queue}", got.len()));
        }
        let out = t
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for m in out.messages.unwrap_or_default() {
            t.sqs
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            if !m.body().unwrap_or_default().contains("s3:TestEvent") {
                got.push(m);
            }
        }
    }
    Ok(got)
}

async fn report(t: &TestStack, key: &str) -> Result<String> {
    eventually(WAIT, key, || async { object(t, key).await }).await
}

async fn invoke(
    t: &TestStack,
    f: &Arc<dyn Function>,
    queue: &str,
    messages: &[aws_sdk_sqs::types::Message],
) -> Result<Value> {
    let q = &t.stack.queues[queue];
    let event = sqs_event(messages, &q.arn, &t.stack.region);
    Ok(
        f.invoke(event, Invocation::new("r", Duration::from_secs(30)))
            .await?,
    )
}

fn item(sku: &str, asin: &str) -> CatalogItem {
    CatalogItem {
        sku: sku.into(),
        asin: asin.into(),
        title: None,
        product_type: Some("KITCHEN".into()),
        enabled: true,
        safety_stock: None,
        max_quantity: None,
        updated_at: "t".into(),
        source: "seed".into(),
    }
}

async fn submissions(t: &TestStack, sku: &str) -> Result<usize> {
    let l = t.sim().admin().listings().await?;
    Ok(l[sku]["submissions"].as_array().map_or(0, Vec::len))
}

#[tokio::test]
async fn an_older_price_file_never_overrides_a_newer_one_and_amazons_answers_are_reported(
) -> Result<()> {
    let t = TestStack::start("uploads_price_order").await?;
    let ingest = function(&t, "UploadIngestFunction").await?;
    let pusher = function(&t, "PricePusherFunction").await?;
    let catalog = DynamoCatalogStore::new(t.dynamodb.clone(), t.stack.table("CatalogTable"));
    catalog
        .put_items(&[item("MUG-1", "B000000001"), item("MUG-2", "B000000002")])
        .await?;

    // a.csv first, b.csv (a newer price for MUG-1) a little later.
    put(
        &t,
        "prices/a.csv",
        "sku,price,currency\nMUG-1,10.00,USD\nMUG-2,10.00,USD\n",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(&t, "prices/b.csv", "sku,price,currency\nMUG-1,12.00,USD\n").await?;
    let mut by_key = BTreeMap::new();
    for m in take(&t, "UploadsQueue", 2).await? {
        let key = flexbridge::aws::parse_s3_notification(m.body().unwrap_or_default())?[0]
            .key
            .clone();
        by_key.insert(key, m);
    }

    // The newer file's notification is handled first, the older one's late.
    for key in ["prices/b.csv", "prices/a.csv"] {
        let out = invoke(
            &t,
            &ingest,
            "UploadsQueue",
            std::slice::from_ref(&by_key[key]),
        )
        .await?;
        assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
        let queued = if key == "prices/a.csv" { 2 } else { 1 };
        let prices = take(&t, "PriceUpdatesQueue", queued).await?;
        let out = invoke(&t, &pusher, "PriceUpdatesQueue", &prices).await?;
        assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    }

    assert_eq!(
        submissions(&t, "MUG-1").await?,
        1,
        "a.csv's MUG-1 never sent"
    );
    assert_eq!(submissions(&t, "MUG-2").await?, 1);
    let stored = catalog
        .get_prices(&[("MUG-1".to_string(), MARKET.to_string())])
        .await?
        .remove(0);
    assert_eq!((stored.price, stored.status.as_str()), (1200, "ACCEPTED"));
    assert!(stored.upload.starts_with("prices/b.csv@"), "{stored:?}");

    let a = report(&t, "reports/prices/a.csv.amazon.csv").await?;
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(
        lines[0],
        "line,sku,marketplace_id,price,currency,status,issues"
    );
    assert!(
        lines[1].starts_with("2,MUG-1,ATVPDKIKX0DER,10.00,USD,SUPERSEDED,"),
        "{a}"
    );
    assert!(
        lines[2].starts_with("3,MUG-2,ATVPDKIKX0DER,10.00,USD,ACCEPTED,"),
        "{a}"
    );
    let b = report(&t, "reports/prices/b.csv.amazon.csv").await?;
    assert!(
        b.contains("2,MUG-1,ATVPDKIKX0DER,12.00,USD,ACCEPTED,"),
        "{b}"
    );
    let summary: UploadSummary = serde_json::from_str(
        &object(&t, "reports/prices/a.csv.summary.json")
            .await?
            .unwrap_or_default(),
    )?;
    assert_eq!(
        summary.amazon_report.as_deref(),
        Some("reports/prices/a.csv.amazon.csv")
    );
    Ok(())
}

#[tokio::test]
async fn refused_credentials_are_an_error_to_retry_not_amazons_answer() -> Result<()> {
    let t = TestStack::start("uploads_price_credentials").await?;
    let pusher = function(&t, "PricePusherFunction").await?;
    let update = PriceUpdate {
        upload: "prices/p.csv@v1".into(),
        key: "prices/p.csv".into(),
        version_id: "v1".into(),
        order: "2026-11-21T08:21:13.408Z|0|prices/p.csv@v1".into(),
        line: 2,
        sku: "MUG-7".into(),
        asin: "B000000007".into(),
        product_type: "KITCHEN".into(),
        marketplace_id: MARKET.into(),
        currency: "USD".into(),
        price: 1500,
    };
    let url = t.stack.queue_url("PriceUpdatesQueue").to_string();
    t.sqs
        .send_message()
        .queue_url(&url)
        .message_body(serde_json::to_string(&update)?)
        .send()
        .await?;
    let message = take(&t, "PriceUpdatesQueue", 1).await?;
    let id = message[0].message_id().unwrap_or_default().to_string();
    let catalog = DynamoCatalogStore::new(t.dynamodb.clone(), t.stack.table("CatalogTable"));
    let key = ("MUG-7".to_string(), MARKET.to_string());

    // Amazon no longer accepts our app's credentials (LWA answers 401 invalid_grant).
    t.sim()
        .admin()
        .set_lwa_credentials(&[LwaCredentials {
            client_id: "another-app".into(),
            client_secret: "another-secret".into(),
            refresh_token: "Atzr|another".into(),
        }])
        .await?;
    // The pusher returns the error (the claim released, nothing marked done); whether SQS
    // retries the message or parks it is `handle_sqs_batch`'s decision, not the pusher's.
    match invoke(&t, &pusher, "PriceUpdatesQueue", &message).await {
        Ok(out) => eprintln!("batch response: {out} (message {id})"),
        Err(e) => eprintln!("the invocation failed as a whole: {e}"),
    }
    assert!(
        catalog
            .get_prices(std::slice::from_ref(&key))
            .await?
            .is_empty(),
        "nothing recorded as Amazon's answer"
    );
    assert_eq!(submissions(&t, "MUG-7").await?, 0);

    // The seller fixes the credentials: the redelivered message is sent.
    t.sim()
        .admin()
        .set_lwa_credentials(&[LwaCredentials {
            client_id: t.seller.client_id.clone(),
            client_secret: t.seller.client_secret.clone(),
            refresh_token: t.seller.refresh_token.clone(),
        }])
        .await?;
    let out = invoke(&t, &pusher, "PriceUpdatesQueue", &message).await?;
    assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{out}");
    let state = catalog
        .get_prices(std::slice::from_ref(&key))
        .await?
        .remove(0);
    assert_eq!((state.status.as_str(), state.price), ("ACCEPTED", 1500));
    assert_eq!(submissions(&t, "MUG-7").await?, 1);
    Ok(())
}
