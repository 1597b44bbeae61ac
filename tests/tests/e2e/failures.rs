//! Failures reach a person (moto + simulator + the local runner): a message that can never
//! succeed ends in its own queue's DLQ at once, with the reason, function, time and source
//! queue as message attributes, for every SQS consumer; a failure of the environment (wrong
//! SP-API credentials) is never charged to the message: it stays on its queue for a retry.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use flexbridge::runtime::parked_attributes as attr;
use flexbridge_e2e::flexbridge_local::RunnerOptions;
use flexbridge_e2e::{eventually, TestOptions, TestStack};
use serde_json::json;

/// Each SQS consumer, its queue, its DLQ, a body it can never handle, and words its reason has.
const CONSUMERS: [(&str, &str, &str, &str, &str); 6] = [
    (
        "UploadIngestFunction",
        "UploadsQueue",
        "UploadsDLQ",
        "{\"hello\": \"not an S3 notification\"}",
        "not an S3 notification",
    ),
    (
        "PricePusherFunction",
        "PriceUpdatesQueue",
        "PriceUpdatesDLQ",
        "{\"price\": \"twelve\"}",
        "invalid input",
    ),
    (
        "NotificationConsumerFunction",
        "NotificationsQueue",
        "NotificationsDLQ",
        "this is not a notification",
        "invalid input",
    ),
    (
        "OutboundWebhookFunction",
        "OutboundQueue",
        "OutboundDLQ",
        "{\"source\": \"someone-else\"}",
        "not an EventBridge event",
    ),
    (
        "LabelWorkerFunction",
        "LabelsQueue",
        "LabelsDLQ",
        "{\"job\": \"not a label job\"}",
        "not a label job",
    ),
    (
        "CancellationWorkerFunction",
        "CancellationsQueue",
        "CancellationsDLQ",
        "cancel everything",
        "not a cancellation job",
    ),
];

fn only(ids: &[&str]) -> Option<BTreeSet<String>> {
    Some(ids.iter().map(|s| s.to_string()).collect())
}

async fn receive_one(t: &TestStack, queue: &str) -> Result<Option<Message>> {
    let out = t
        .sqs
        .receive_message()
        .queue_url(t.stack.queue_url(queue))
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(0)
        .visibility_timeout(0)
        .send()
        .await?;
    let mut messages = out.messages.unwrap_or_default();
    if messages.len() > 1 {
        return Err(anyhow!(
            "{queue}: {} messages, expected one",
            messages.len()
        ));
    }
    Ok(messages.pop())
}

fn text(m: &Message, name: &str) -> String {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(MessageAttributeValue::string_value)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_poison_message_in_each_queue_ends_in_its_dlq_at_once_with_a_readable_reason(
) -> Result<()> {
    let mut t = TestStack::start("poison_each_queue").await?;
    // A webhook is configured (nobody listens: the poison never gets that far).
    t.set_override("WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let ids: Vec<&str> = CONSUMERS.iter().map(|c| c.0).collect();
    let runner = t
        .runner(RunnerOptions {
            run_schedules: false,
            serve_urls: false,
            only: only(&ids),
            ..Default::default()
        })
        .await?;
    let origin = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("e2e")
        .build()?;
    for (_, queue, _, body, _) in CONSUMERS {
        t.sqs
            .send_message()
            .queue_url(t.stack.queue_url(queue))
            .message_body(body)
            .message_attributes("origin", origin.clone())
            .send()
            .await?;
    }
    for (function, queue, dlq, body, words) in CONSUMERS {
        let parked = eventually(
            Duration::from_secs(30),
            &format!("the poison message of {queue} in {dlq}"),
            || async { receive_one(&t, dlq).await },
        )
        .await?;
        assert_eq!(parked.body(), Some(body), "{dlq}: the original body");
        let reason = text(&parked, attr::REASON);
        assert!(reason.contains(words), "{dlq}: reason {reason:?}");
        assert_eq!(
            text(&parked, attr::FUNCTION),
            t.stack.function(function).unwrap().name,
            "{dlq}"
        );
        assert_eq!(
            text(&parked, attr::SOURCE_QUEUE),
            t.stack.queue(queue).arn,
            "{dlq}"
        );
        // Parked at the first receive, not after maxReceiveCount redeliveries.
        assert_eq!(text(&parked, attr::RECEIVE_COUNT), "1", "{dlq}");
        let at = chrono::DateTime::parse_from_rfc3339(&text(&parked, attr::PARKED_AT))?;
        assert!(
            (chrono::Utc::now() - at.to_utc()).num_seconds() < 120,
            "{dlq}"
        );
        assert_eq!(
            text(&parked, "origin"),
            "e2e",
            "{dlq}: its own attributes are kept"
        );
        assert!(!text(&parked, attr::SOURCE_MESSAGE_ID).is_empty());
        // ... and acknowledged on its own queue.
        assert_eq!(t.queue_depth(queue).await?, 0, "{queue}");
    }
    let stats = runner.stats();
    for (function, ..) in CONSUMERS {
        let s = &stats[function];
        // (UploadsQueue also gets S3's test event when the bucket notification is set up.)
        assert!(s.messages_ok >= 1, "{function}: {s:?}");
        assert_eq!((s.messages_failed, s.errors), (0, 0), "{function}: {s:?}");
    }
    runner.stop().await;
    Ok(())
}

#[tokio::test]
async fn wrong_sp_api_credentials_keep_the_message_for_a_retry_and_never_park_it() -> Result<()> {
    let mut options = TestOptions::default();
    options.seller.refresh_token = "Atzr|revoked-by-the-seller".into(); // LWA: invalid_grant
    let t = TestStack::start_with("env_failure_kept", options).await?;
    let runner = t
        .runner(RunnerOptions {
            run_schedules: false,
            serve_urls: false,
            only: only(&["NotificationConsumerFunction"]),
            ..Default::default()
        })
        .await?;
    let notification = json!({
        "NotificationType": "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
        "EventTime": "2026-11-21T08:00:00Z",
        "Payload": {"ExternalFulfillmentShipmentNotification": {
            "ShipmentId": "S-ANY", "ShipmentStatus": "ACCEPTED"}},
        "NotificationMetadata": {"NotificationId": "n-env-1",
            "ApplicationId": flexbridge_e2e::spapi_sim::DEFAULT_APPLICATION_ID}
    });
    t.sqs
        .send_message()
        .queue_url(t.stack.queue_url("NotificationsQueue"))
        .message_body(notification.to_string())
        .send()
        .await?;
    eventually(Duration::from_secs(30), "a failed delivery", || async {
        let s = runner.function_stats("NotificationConsumerFunction");
        Ok((s.messages_failed >= 1).then_some(()))
    })
    .await?;
    let s = runner.function_stats("NotificationConsumerFunction");
    assert_eq!(s.messages_ok, 0, "{s:?}");
    assert_eq!(t.queue_depth("NotificationsDLQ").await?, 0, "never parked");
    // Still on its queue, invisible until the visibility timeout passes.
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = t
        .sqs
        .get_queue_attributes()
        .queue_url(t.stack.queue_url("NotificationsQueue"))
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let in_flight = attrs.attributes().cloned().unwrap_or_default();
    assert_eq!(
        in_flight
            .get(&A::ApproximateNumberOfMessagesNotVisible)
            .map(String::as_str),
        Some("1")
    );
    runner.stop().await;
    Ok(())
}
