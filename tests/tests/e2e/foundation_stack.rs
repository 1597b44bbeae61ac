//! The resources template.yaml declares really exist in moto, wired as designed, and the
//! foundation stores work against them.

use std::time::Duration;

use aws_sdk_dynamodb::types::KeyType;
use aws_sdk_sqs::types::QueueAttributeName;
use flexbridge::store::locations::{DynamoLocationStore, LocationStore};
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::Error;
use flexbridge_e2e::{TestOptions, TestStack};
use serde_json::json;

/// SDK errors with their service message (the plain Display says only "service error").
fn sdk<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
}

fn no_sim() -> TestOptions {
    TestOptions {
        simulator: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn every_declared_resource_exists_in_moto() -> anyhow::Result<()> {
    let t = TestStack::start_with("resources_exist", no_sim()).await?;
    let st = &t.stack;
    assert_eq!(st.tables.len(), 7, "{:?}", st.tables.keys());
    assert_eq!(st.queues.len(), 14, "{:?}", st.queues.keys());

    for (logical, name) in &st.tables {
        let d = t
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(sdk)?;
        let table = d.table().unwrap();
        let hash = table
            .key_schema()
            .iter()
            .find(|k| k.key_type() == &KeyType::Hash)
            .unwrap();
        let expected = if logical == "IdempotencyTable" {
            "id"
        } else {
            "pk"
        };
        assert_eq!(hash.attribute_name(), expected, "{logical}");
    }
    let ttl = t
        .dynamodb
        .describe_time_to_live()
        .table_name(st.table("IdempotencyTable"))
        .send()
        .await?;
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expiration")
    );
    let shipments = t
        .dynamodb
        .describe_table()
        .table_name(st.table("ShipmentsTable"))
        .send()
        .await
        .map_err(sdk)?;
    assert_eq!(
        shipments.table().unwrap().global_secondary_indexes()[0].index_name(),
        Some("by_stage")
    );

    for (logical, q) in &st.queues {
        let attrs = t
            .sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await?;
        let a = attrs.attributes().unwrap();
        if logical.ends_with("DLQ") {
            assert!(q.dead_letter_queue.is_none(), "{logical}");
        } else {
            let dlq = q
                .dead_letter_queue
                .as_deref()
                .unwrap_or_else(|| panic!("{logical} has no DLQ"));
            assert!(
                a[&QueueAttributeName::RedrivePolicy].contains(&st.queue(dlq).arn),
                "{logical}"
            );
            assert_eq!(
                q.max_receive_count,
                Some(flexbridge::runtime::MAX_RECEIVES),
                "{logical}"
            );
        }
    }

    let bucket = st.bucket("UploadsBucket");
    // Versioned: a second upload keeps the first (moto's GetBucketVersioning reply does not
    // parse in the Rust SDK, so the behaviour is checked instead).
    for body in ["v1", "v2"] {
        t.s3.put_object()
            .bucket(bucket)
            .key("reports/v.txt")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .map_err(sdk)?;
    }
    let versions =
        t.s3.list_object_versions()
            .bucket(bucket)
            .prefix("reports/v.txt")
            .send()
            .await
            .map_err(sdk)?;
    assert_eq!(versions.versions().len(), 2);
    let n =
        t.s3.get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(sdk)?;
    assert_eq!(n.queue_configurations().len(), 3);

    let rules = t
        .events
        .list_rules()
        .event_bus_name(st.event_bus("EventBus"))
        .send()
        .await
        .map_err(sdk)?;
    // Ours, and the managed rule EventBridge adds for the archive.
    let names: Vec<&str> = rules.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| !n.starts_with("Events-Archive-"))
            .count(),
        1,
        "{names:?}"
    );
    // Every event is kept for a replay (docs/events.md: "Events when no webhook is set").
    let archive = t
        .events
        .describe_archive()
        .archive_name(&st.resources["EventArchive"].physical_id)
        .send()
        .await
        .map_err(sdk)?;
    assert_eq!(archive.retention_days(), Some(30));
    assert!(archive
        .event_source_arn()
        .is_some_and(|a| a.ends_with(&format!("event-bus/{}", st.event_bus("EventBus")))));

    for (logical, arn) in &st.secrets {
        t.secrets
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{logical}: {e}"));
    }
    let heartbeat = st.function("HeartbeatFunction").unwrap();
    assert_eq!(
        heartbeat.env.get("SETTINGS_TABLE").map(String::as_str),
        Some(st.table("SettingsTable"))
    );
    Ok(())
}

#[tokio::test]
async fn an_upload_to_an_inbound_prefix_lands_on_the_uploads_queue_and_parses() -> anyhow::Result<()>
{
    let t = TestStack::start_with("upload_notification", no_sim()).await?;
    let bucket = t.stack.bucket("UploadsBucket");
    for key in ["catalog/spring 2026+new.csv", "reports/not-notified.csv"] {
        t.s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(b"sku\n".to_vec().into())
            .send()
            .await
            .map_err(sdk)?;
    }
    let mut created = Vec::new();
    for _ in 0..5 {
        let out = t
            .sqs
            .receive_message()
            .queue_url(t.stack.queue_url("UploadsQueue"))
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for m in out.messages() {
            created.extend(flexbridge::aws::parse_s3_notification(m.body().unwrap())?);
        }
        if !created.is_empty() {
            break;
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].key, "catalog/spring 2026+new.csv");
    assert_eq!(created[0].bucket, bucket);
    Ok(())
}

#[tokio::test]
async fn an_event_on_the_bus_reaches_the_outbound_queue() -> anyhow::Result<()> {
    let t = TestStack::start_with("bus_to_outbound", no_sim()).await?;
    t.events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(t.stack.event_bus("EventBus"))
                .source("flexbridge")
                .detail_type("WebhookTest")
                .detail(json!({"version": "1", "eventId": "e1", "message": "hi"}).to_string())
                .build(),
        )
        .send()
        .await?;
    let out = t
        .sqs
        .receive_message()
        .queue_url(t.stack.queue_url("OutboundQueue"))
        .wait_time_seconds(2)
        .send()
        .await?;
    let body: serde_json::Value = serde_json::from_str(out.messages()[0].body().unwrap())?;
    assert_eq!(body["detail-type"], "WebhookTest");
    assert_eq!(body["detail"]["eventId"], "e1");
    Ok(())
}

/// A settings transaction applied with its answer lost is sent again by the SDK; DynamoDB
/// answers the retry like the first (same ClientRequestToken), moto cancels it: the store reads
/// back and finds its own write, not someone else's (found by the chaos run's AWS faults).
#[tokio::test]
async fn a_setting_written_with_its_answer_lost_is_ours_not_a_conflict() -> anyhow::Result<()> {
    use flexbridge_local::aws_faults::{AwsFaultProxy, AwsFaults};
    let t = TestStack::start_with("settings_lost", no_sim()).await?;
    let proxy = AwsFaultProxy::start(&t.stack.endpoint, AwsFaults::each(1, 0.0)).await?;
    proxy.lose_next("TransactWriteItems");
    let sdk = flexbridge::aws::load_with_endpoint(proxy.url()).await;
    let s = DynamoSettingsStore::new(
        flexbridge::aws::dynamodb_client(&sdk),
        t.stack.table("SettingsTable"),
    );
    let v2 = s
        .put(
            "handling_time_days",
            json!(2),
            Some(1),
            "seller@example.com",
        )
        .await?;
    assert_eq!((v2.value, v2.version), (json!(2), 2));
    assert_eq!(proxy.total(), 1, "the one answer was lost");
    assert_eq!(s.history("handling_time_days").await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn settings_keep_a_change_log_and_refuse_stale_writes() -> anyhow::Result<()> {
    let t = TestStack::start_with("settings_log", no_sim()).await?;
    let s = DynamoSettingsStore::new(t.dynamodb.clone(), t.stack.table("SettingsTable"));
    // The seeded seller set handling_time_days = 1 (version 1).
    let v1 = s.get("handling_time_days").await?.expect("seeded");
    assert_eq!((v1.value.clone(), v1.version), (json!(1), 1));
    let v2 = s
        .put(
            "handling_time_days",
            json!(2),
            Some(1),
            "seller@example.com",
        )
        .await?;
    assert_eq!(v2.version, 2);
    let stale = s
        .put("handling_time_days", json!(3), Some(1), "other")
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::Conflict(_)), "{stale}");
    let same = s.put("handling_time_days", json!(2), None, "again").await?;
    assert_eq!(same.version, 2, "setting the same value is not a change");
    let h = s.history("handling_time_days").await?;
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].old.clone(), h[0].new.clone(), h[0].by.as_str()),
        (Some(json!(1)), json!(2), "seller@example.com")
    );
    assert_eq!(s.get("handling_time_days").await?.unwrap().value, json!(2));
    assert!(s.list().await?.len() >= 3);
    Ok(())
}

#[tokio::test]
async fn locations_are_found_by_amazon_location_and_by_hub() -> anyhow::Result<()> {
    let t = TestStack::start_with("locations", no_sim()).await?;
    let st = DynamoLocationStore::new(t.dynamodb.clone(), t.stack.table("LocationsTable"));
    let seeded = st.list().await?;
    assert_eq!(seeded.len(), 2);
    let mut east = st.get("SIMLOC-EAST-1").await?.expect("seeded location");
    assert_eq!(east.hub_id, "HUB-NJ");
    assert_eq!(st.by_hub("HUB-NJ").await?.len(), 1);
    east.hub_id = "HUB-CA".into();
    st.put(&east).await?;
    assert!(
        st.by_hub("HUB-NJ").await?.is_empty(),
        "moving a location removes it from the old hub"
    );
    assert_eq!(st.by_hub("HUB-CA").await?.len(), 2);
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}
