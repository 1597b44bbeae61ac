use chrono::{Duration, NaiveDate, TimeZone, Utc};

use super::*;
use crate::shipment::{fixtures, AmazonShipment, Fulfilment, ReturnStage, StepRecord};

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap()
}

/// A shipment first seen `days_ago` days before the report's date at 10:00, created at
/// Amazon 30 minutes earlier, due 20 hours after it was seen.
fn shipment(id: &str, days_ago: i64, stage: Stage) -> ShipmentRecord {
    let v = fixtures::shipment(id, "ACCEPTED", "2026-11-21T08:00:00Z", &[("A", 1)]);
    let mut r = AmazonShipment::from_json(&v).unwrap().record;
    let seen = Utc.from_utc_datetime(
        &(date() - Duration::days(days_ago))
            .and_hms_opt(10, 0, 0)
            .unwrap(),
    );
    r.first_seen_at = seen;
    r.created_at_amazon = Some(seen - Duration::minutes(30));
    r.ship_by = Some(crate::shipment::sort_time(seen + Duration::hours(20)));
    r.stage = stage;
    if matches!(
        stage,
        Stage::HandedOver | Stage::Packed | Stage::Labelled | Stage::Shipped
    ) {
        r.handed_over_at = Some(seen + Duration::minutes(10));
    }
    r
}

fn labelled(
    mut r: ShipmentRecord,
    after_seen: Duration,
    shipped: Option<Duration>,
) -> ShipmentRecord {
    let seen = r.first_seen_at;
    r.fulfilment = Some(Fulfilment {
        steps: vec![StepRecord {
            step: "label_ready".into(),
            at: seen + after_seen,
            note: None,
        }],
        shipped_at: shipped.map(|d| seen + d),
        ..Default::default()
    });
    r
}

fn a_return(id: &str, sku: &str, units: u32, days_ago: i64) -> ReturnRecord {
    let t = Utc.from_utc_datetime(
        &(date() - Duration::days(days_ago))
            .and_hms_opt(9, 0, 0)
            .unwrap(),
    );
    ReturnRecord {
        id: id.into(),
        return_location_id: "RL".into(),
        fulfillment_location_id: None,
        sku: Some(sku.into()),
        units,
        status: "CREATED".into(),
        return_type: None,
        return_reason: None,
        rma_id: None,
        shipment_id: None,
        amazon_updated_at: t,
        stage: ReturnStage::Open,
        announced_status: None,
        receipt: None,
        first_seen_at: t,
        changed_at: t,
        version: 1,
        unreadable: None,
        quarantined_from: None,
    }
}

fn data() -> HealthData {
    let upload: UploadSummary = serde_json::from_value(serde_json::json!({
        "key": "catalog/a.csv", "versionId": "v1", "kind": "catalog", "mode": "delta",
        "status": "processed", "reason": null, "rowsRead": 12, "accepted": 10, "unchanged": 0,
        "rejected": 2, "disabled": 0, "queued": 0, "extraColumns": [], "delimiter": ",",
        "startedAt": "2026-11-29T08:00:00.000Z", "finishedAt": "2026-11-29T08:00:05.000Z",
        "durationMs": 5000, "runs": 1, "summaryReport": "reports/catalog/a.csv.summary.json",
        "errorsReport": "reports/catalog/a.csv.errors.csv"
    }))
    .expect("an upload summary");
    HealthData {
        shipments: vec![
            // Due and labelled and shipped in time.
            labelled(
                shipment("S1", 2, Stage::Shipped),
                Duration::hours(3),
                Some(Duration::hours(5)),
            ),
            // Labelled in time, shipped late.
            labelled(
                shipment("S2", 2, Stage::Shipped),
                Duration::hours(4),
                Some(Duration::hours(30)),
            ),
            // Due, never labelled.
            shipment("S3", 1, Stage::HandedOver),
            // Rejected by us: a seller-caused cancellation, not counted for ship-by.
            shipment("S4", 1, Stage::Rejected),
            // Held for a person today (not due yet).
            shipment("S5", 0, Stage::Held),
            // Outside the window: ignored.
            shipment("OLD", 40, Stage::Shipped),
        ],
        returns: vec![
            a_return("R1", "MUG-1", 2, 1),
            a_return("R2", "MUG-1", 1, 3),
            a_return("R3", "TEA-9", 1, 0),
            a_return("R0", "OLD-1", 5, 30),
        ],
        uploads: vec![upload],
        dlqs: vec![
            DlqState {
                queue: "LabelsDLQ".into(),
                messages: 2,
                reasons: vec!["invalid input: not a label job <oops>".into()],
            },
            DlqState {
                queue: "UploadsDLQ".into(),
                messages: 0,
                reasons: vec![],
            },
        ],
        halted_pushes: vec![],
    }
}

#[test]
fn the_report_counts_orders_latency_and_the_figures_amazon_judges() {
    let r = HealthReport::compute(&data(), date(), now());
    assert_eq!(r.days.len(), DAYS as usize);
    assert_eq!(r.days.last().unwrap().date, date());
    let day = |ago: i64| {
        r.days
            .iter()
            .find(|d| d.date == date() - Duration::days(ago))
            .unwrap()
    };
    assert_eq!((day(2).orders, day(2).confirmed), (2, 2));
    assert_eq!(
        day(2).median_handover_minutes,
        Some(40.0),
        "30 min at Amazon + 10 with us"
    );
    assert_eq!((day(1).orders, day(1).rejected), (2, 1));
    assert_eq!((day(0).orders, day(0).held), (1, 1));
    assert_eq!(
        r.days.iter().map(|d| d.orders).sum::<u64>(),
        5,
        "OLD is outside"
    );
    // 1 of the 5 shipments seen in the window was rejected by us.
    assert_eq!(r.seller_cancellations, Share { part: 1, whole: 5 });
    assert_eq!(r.seller_cancellations.percent(), Some(20.0));
    // Due so far: S1, S2, S3 (S4 rejected, S5 not due yet).
    assert_eq!(r.labelled_before_ship_by, Share { part: 2, whole: 3 });
    assert_eq!(r.handed_over_before_ship_by, Share { part: 1, whole: 3 });
    assert_eq!(
        r.returns_by_sku,
        vec![("MUG-1".to_string(), 3), ("TEA-9".to_string(), 1)]
    );
    assert_eq!(
        (day(1).upload_rows_accepted, day(1).upload_rows_rejected),
        (10, 2)
    );
    assert_eq!(
        day(1).errors,
        1 + 2,
        "the rejected shipment and the two rejected rows"
    );
    assert_eq!(r.parked(), 2);
    assert_eq!(r.waiting_for_a_person, 1);
}

#[test]
fn the_page_is_self_contained_escaped_and_shows_every_section() {
    let r = HealthReport::compute(&data(), date(), now());
    let html = render(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for section in [
        "What Amazon judges you by",
        "Seller-caused cancellation rate",
        "Labelled before ship-by",
        "Handed over (shipped) before ship-by",
        "<h2>Orders</h2>",
        "Median minutes from Amazon",
        "<h2>Uploads</h2>",
        "<h2>Errors</h2>",
        "<h2>Stock pushes</h2>",
        "<h2>Returns by SKU</h2>",
        "<h2>Dead-letter queues</h2>",
    ] {
        assert!(html.contains(section), "missing {section}");
    }
    assert!(html.contains("20.0%"));
    assert!(html.contains("MUG-1"));
    // Charts are inline SVG; nothing is fetched from elsewhere.
    assert!(html.matches("<svg ").count() >= 5);
    for external in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(external), "external reference {external}");
    }
    // Stored text is escaped.
    assert!(html.contains("&lt;oops&gt;"));
    assert!(!html.contains("<oops>"));
    // No buyer data: the fixture's address never appears.
    assert!(!html.contains("Secret Street"));
}

#[test]
fn an_empty_stack_renders_a_report_too() {
    let r = HealthReport::compute(&HealthData::default(), date(), now());
    assert_eq!(r.seller_cancellations.percent(), None);
    let html = render(&r);
    assert!(html.contains("n/a"));
    assert!(html.contains("No returns in the window."));
    assert!(html.contains("No inventory push is halted."));
    assert_eq!(report_key(date()), "reports/health/2026-11-30.html");
}

mod run {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::error::Result;
    use crate::events::{EventName, MemoryEventSink};
    use crate::fulfilment::ports::LabelFiles;
    use crate::health::aws::{DeadLetters, HealthReporter, UploadSummaries};
    use crate::store::inventory::{MemoryInventoryStore, PushLedger};
    use crate::store::locations::{Location, LocationStore, MemoryLocationStore};
    use crate::store::shipments::{MemoryShipmentStore, ShipmentStore};

    #[derive(Default)]
    struct Files(Mutex<HashMap<String, (Vec<u8>, String)>>);

    #[async_trait]
    impl LabelFiles for Files {
        async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
            self.0
                .lock()
                .unwrap()
                .insert(key.into(), (bytes, content_type.into()));
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Vec<u8>> {
            Ok(self.0.lock().unwrap()[key].0.clone())
        }
        async fn link(
            &self,
            key: &str,
            _ttl: std::time::Duration,
        ) -> Result<crate::fulfilment::ports::Link> {
            Ok(crate::fulfilment::ports::Link {
                url: format!("https://bucket.example/{key}?X-Amz-Signature=x"),
                expires_at: Utc::now() + chrono::Duration::hours(1),
            })
        }
        async fn download(&self, _url: &str) -> Result<(Vec<u8>, String)> {
            unreachable!()
        }
    }

    struct Fixed(HealthData);

    #[async_trait]
    impl UploadSummaries for Fixed {
        async fn since(&self, _since: DateTime<Utc>) -> Result<Vec<UploadSummary>> {
            Ok(self.0.uploads.clone())
        }
    }

    #[async_trait]
    impl DeadLetters for Fixed {
        async fn states(&self) -> Result<Vec<DlqState>> {
            Ok(self.0.dlqs.clone())
        }
    }

    #[tokio::test]
    async fn every_dlq_holding_messages_is_an_alert_with_its_queue_and_depth() {
        let dlqs = crate::health::aws::MemoryDeadLetters::default();
        dlqs.set(data().dlqs);
        let (metrics, recorded) = crate::metrics::Metrics::memory("test", "heartbeat");
        let waiting = crate::health::aws::alert_dead_letters(&dlqs, &metrics)
            .await
            .unwrap();
        assert_eq!(waiting, vec![("LabelsDLQ".to_string(), 2)]);
        assert_eq!(recorded.alerts(crate::metrics::Alert::DeadLetters), 1.0);
        let d = &recorded.documents()[0];
        assert_eq!(
            (d["Queue"].as_str(), d["Depth"].as_str()),
            (Some("LabelsDLQ"), Some("2"))
        );
        // Emptied: nothing more to say.
        dlqs.set(vec![]);
        crate::health::aws::alert_dead_letters(&dlqs, &metrics)
            .await
            .unwrap();
        assert_eq!(recorded.alerts(crate::metrics::Alert::DeadLetters), 1.0);
    }

    #[tokio::test]
    async fn a_run_reads_the_stores_writes_the_page_and_links_it_from_an_event() {
        let d = data();
        let shipments = Arc::new(MemoryShipmentStore::new());
        for s in &d.shipments {
            let mut s = s.clone();
            s.version = 0;
            shipments.save(&mut s).await.unwrap();
        }
        for r in &d.returns {
            let mut r = r.clone();
            r.version = 0;
            shipments.save_return(&mut r).await.unwrap();
        }
        let locations = Arc::new(MemoryLocationStore::new());
        locations
            .put(&Location {
                location_id: "L1".into(),
                hub_id: "H1".into(),
                name: "hub".into(),
                marketplace_id: "M".into(),
                channel: "FBA".into(),
                orders_enabled: true,
                inventory_enabled: true,
                returns_enabled: true,
            })
            .await
            .unwrap();
        let ledger = Arc::new(MemoryInventoryStore::new());
        ledger
            .put_halt(&PushHalt {
                location_id: "L1".into(),
                hub: "H1".into(),
                status: "halted".into(),
                reason: "would zero 80% of the advertised SKUs".into(),
                skus_in_push: 10,
                skus_zeroed: 8,
                skus_advertised_before: 10,
                units_before: 100,
                units_after: 2,
                halted_at: "2026-11-30T12:00:00.000Z".into(),
                decided_by: None,
                decided_at: None,
            })
            .await
            .unwrap();
        let files = Arc::new(Files::default());
        let events = Arc::new(MemoryEventSink::new());
        let (metrics, recorded) = crate::metrics::Metrics::memory("test", "health");
        let fixed = Arc::new(Fixed(d));
        let reporter = HealthReporter {
            shipments,
            locations,
            ledger,
            uploads: fixed.clone(),
            dead_letters: fixed,
            files: files.clone(),
            events: events.clone(),
            metrics,
        };
        // The real clock: the stores list by the time records last changed.
        let now = Utc::now();
        let yesterday = (now - Duration::days(1)).date_naive();
        let written = reporter.run(yesterday, now).await.unwrap();
        assert_eq!(
            written.report_key,
            format!("reports/health/{yesterday}.html")
        );
        let (page, content_type) = files.0.lock().unwrap()[&written.report_key].clone();
        assert_eq!(content_type, "text/html; charset=utf-8");
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.contains("would zero 80% of the advertised SKUs"),
            "halted push shown"
        );
        assert!(page.contains("LabelsDLQ"));
        assert_eq!(written.messages_parked, 2);
        let evs = events.events();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].name, EventName::HealthReportReady);
        let detail = evs[0].detail();
        assert_eq!(detail["reportKey"], written.report_key.as_str());
        assert!(detail["reportUrl"]
            .as_str()
            .unwrap()
            .contains("reports/health/"));
        assert_eq!(detail["messagesParked"], 2);
        assert_eq!(recorded.sum(crate::metrics::names::HEALTH_REPORTS), 1.0);
    }

    struct Dates(Vec<chrono::NaiveDate>);

    #[async_trait]
    impl crate::health::aws::HealthReports for Dates {
        async fn dates(&self) -> Result<Vec<chrono::NaiveDate>> {
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn a_fresh_report_link_is_for_the_newest_or_the_asked_date_and_says_when_it_expires() {
        use crate::health::aws::report_link;
        let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
        let files = Files::default();
        let none = report_link(&Dates(vec![]), &files, None).await;
        assert!(matches!(none, Err(crate::Error::NotFound(_))), "{none:?}");
        let reports = Dates(vec![day("2026-11-28"), day("2026-11-29")]);
        let newest = report_link(&reports, &files, None).await.unwrap();
        assert_eq!(newest.date, "2026-11-29");
        assert_eq!(newest.report_key, "reports/health/2026-11-29.html");
        assert!(newest.report_url.contains("2026-11-29.html"));
        // The expiry is the link's own (Files: an hour), not the wanted 7 days.
        let expires = chrono::DateTime::parse_from_rfc3339(&newest.link_expires_at).unwrap();
        assert!(expires < Utc::now() + chrono::Duration::hours(2));
        let asked = report_link(&reports, &files, Some(day("2026-11-28")))
            .await
            .unwrap();
        assert_eq!(asked.report_key, "reports/health/2026-11-28.html");
        let missing = report_link(&reports, &files, Some(day("2026-11-01"))).await;
        assert!(
            matches!(missing, Err(crate::Error::NotFound(_))),
            "{missing:?}"
        );
        assert_eq!(
            super::report_date("reports/health/2026-11-28.html"),
            Some(day("2026-11-28"))
        );
        assert_eq!(super::report_date("reports/health/x.html"), None);
    }
}
