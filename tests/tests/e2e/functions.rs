//! The function crates' own checks (their template settings, their handlers without AWS), kept
//! here so that no function crate links a test binary of its own.

/// The section of template.yaml that declares `logical_id` (up to its first blank line).
fn template_section(logical_id: &str) -> &'static str {
    let template = include_str!("../../../template.yaml");
    let at = template
        .find(&format!("{logical_id}:"))
        .expect("the function");
    &template[at..at + template[at..].find("\n\n").unwrap_or(4000)]
}

mod cancellation_worker {
    use cancellation_worker::MAX_INSTANCES;

    #[test]
    fn instances_are_capped_by_the_event_source_not_reserved_concurrency() {
        let section = super::template_section("CancellationWorkerFunction");
        assert!(
            section.contains(&format!("MaximumConcurrency: {MAX_INSTANCES}")),
            "template.yaml's Cancellations event source must cap instances at {MAX_INSTANCES}"
        );
        assert!(!section.contains("ReservedConcurrentExecutions:"));
        assert!(
            section.contains("CURSORS_TABLE: !Ref CursorsTable"),
            "the shared buckets"
        );
    }
}

mod label_worker {
    use label_worker::MAX_INSTANCES;

    #[test]
    fn instances_are_capped_by_the_event_source_not_reserved_concurrency() {
        let section = super::template_section("LabelWorkerFunction");
        assert!(
            section.contains(&format!("MaximumConcurrency: {MAX_INSTANCES}")),
            "template.yaml's Labels event source must cap instances at {MAX_INSTANCES}"
        );
        assert!(!section.contains("ReservedConcurrentExecutions:"));
        assert!(
            section.contains("CURSORS_TABLE: !Ref CursorsTable"),
            "the shared buckets"
        );
    }
}

mod price_pusher {
    use price_pusher::{instance_share, AMAZON_LIMIT, MAX_INSTANCES};

    #[test]
    fn the_instances_together_stay_within_amazons_limit() {
        let share = instance_share();
        assert!(share.rate * f64::from(MAX_INSTANCES) <= AMAZON_LIMIT.rate);
        assert!(share.burst * MAX_INSTANCES <= AMAZON_LIMIT.burst);
        let section = super::template_section("PricePusherFunction");
        assert!(
            section.contains(&format!("MaximumConcurrency: {MAX_INSTANCES}")),
            "template.yaml's PriceUpdates event source must cap instances at {MAX_INSTANCES}"
        );
        assert!(!section.contains("ReservedConcurrentExecutions"));
    }
}

mod health_report {
    use chrono::TimeZone;
    use health_report::report_date;
    use serde_json::json;

    #[test]
    fn the_schedule_reports_yesterday_and_an_operator_any_day() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 15, 0).unwrap();
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(
            report_date(&scheduled, now).unwrap().to_string(),
            "2026-11-30"
        );
        let asked = json!({"date": "2026-11-02"});
        assert_eq!(report_date(&asked, now).unwrap().to_string(), "2026-11-02");
        assert!(report_date(&json!({"date": "yesterday"}), now).is_err());
    }
}

mod heartbeat {
    use std::sync::Arc;
    use std::time::Duration;

    use flexbridge::health::aws::MemoryDeadLetters;
    use flexbridge::health::DlqState;
    use flexbridge::metrics::{Alert, Metrics};
    use flexbridge::runtime::{Function, Invocation};
    use flexbridge::store::settings::{MemorySettingsStore, SettingsStore};
    use heartbeat::{Heartbeat, STATUS_NAME};
    use serde_json::json;

    #[tokio::test]
    async fn records_the_beat_with_the_scheduled_time() {
        let store = Arc::new(MemorySettingsStore::new());
        let (metrics, recorded) = Metrics::memory("s", "heartbeat");
        let h = Heartbeat::new(
            store.clone(),
            Arc::new(MemoryDeadLetters::default()),
            metrics,
        );
        h.invoke(
            json!({"time": "2026-11-21T08:00:00Z"}),
            Invocation::new("r1", Duration::from_secs(5)),
        )
        .await
        .unwrap();
        let (v, _) = store.status(STATUS_NAME).await.unwrap().unwrap();
        assert_eq!(v["scheduledFor"], "2026-11-21T08:00:00Z");
        assert_eq!(v["requestId"], "r1");
        assert_eq!(recorded.alerts(Alert::DeadLetters), 0.0);
    }

    #[tokio::test]
    async fn a_dlq_holding_messages_raises_the_dead_letters_alert_on_every_beat() {
        let store = Arc::new(MemorySettingsStore::new());
        let dlqs = Arc::new(MemoryDeadLetters::default());
        let (metrics, recorded) = Metrics::memory("s", "heartbeat");
        let h = Heartbeat::new(store.clone(), dlqs.clone(), metrics);
        dlqs.set(vec![
            DlqState {
                queue: "s-LabelsDLQ".into(),
                messages: 3,
                reasons: vec![],
            },
            DlqState {
                queue: "s-UploadsDLQ".into(),
                messages: 0,
                reasons: vec![],
            },
        ]);
        for run in 1..=2 {
            let out = h
                .invoke(json!({}), Invocation::new("r", Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!(
                out["deadLetters"],
                json!([{"queue": "s-LabelsDLQ", "depth": 3}])
            );
            assert_eq!(recorded.alerts(Alert::DeadLetters), f64::from(run));
        }
        dlqs.set(vec![]);
        h.invoke(json!({}), Invocation::new("r", Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(
            recorded.alerts(Alert::DeadLetters),
            2.0,
            "quiet once emptied"
        );
    }
}

mod upload_ingest {
    use flexbridge::config::keys;
    use flexbridge::{Env, Error};
    use upload_ingest::UploadIngest;

    #[tokio::test]
    async fn a_missing_marketplace_is_a_configuration_error() {
        let mut env = Env::default();
        for (k, v) in [
            (keys::BUCKET_NAME, "b"),
            (keys::CATALOG_TABLE, "c"),
            (keys::CURSORS_TABLE, "cu"),
            (keys::SETTINGS_TABLE, "s"),
            (keys::IDEMPOTENCY_TABLE, "i"),
            (keys::PRICE_UPDATES_QUEUE_URL, "http://q"),
            (keys::UPLOADS_QUEUE_URL, "http://u"),
            (keys::EVENT_BUS_NAME, "e"),
            (keys::INVENTORY_TABLE, "inv"),
            (keys::LOCATIONS_TABLE, "loc"),
            (keys::AWS_ENDPOINT_URL, "http://127.0.0.1:1"),
        ] {
            env = env.with(k, v);
        }
        let err = UploadIngest::from_env(&env).await.err().expect("refused");
        assert!(matches!(err, Error::Config(_)), "{err}");
        assert!(err.to_string().contains(keys::MARKETPLACE_ID), "{err}");
    }
}
