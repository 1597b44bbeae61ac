use std::sync::Arc;
use std::time::Duration;

use super::memory::*;
use super::*;
use crate::events::{EventName, MemoryEventSink};
use crate::inventory::changes::StockChanges;
use crate::inventory::MemoryNudge;
use crate::prices::answers::memory::MemoryAnswers;
use crate::store::catalog::{CatalogStore, MemoryCatalogStore, PriceState};
use crate::store::inventory::{MemoryInventoryStore, MemoryOnHandStore, OnHandStore, PushLedger};
use crate::store::locations::{Location, MemoryLocationStore};
use crate::store::settings::{MemorySettingsStore, SettingsStore};
use crate::upload::order::UploadOrder;
use crate::upload::{Mode, UploadSummary};

struct World {
    objects: Arc<MemoryObjects>,
    catalog: Arc<MemoryCatalogStore>,
    prices: Arc<MemoryPriceQueue>,
    reports: Arc<MemoryReports>,
    checkpoints: Arc<MemoryCheckpoints>,
    settings: Arc<MemorySettingsStore>,
    events: Arc<MemoryEventSink>,
    answers: Arc<MemoryAnswers>,
    config: IngestConfig,
    stock: Arc<StockChanges>,
    on_hand: Arc<MemoryOnHandStore>,
    ledger: Arc<MemoryInventoryStore>,
}

/// The location hub `H1` serves (inventory sync on); `H2` serves none.
const LOC: &str = "LOC-H1";

/// An upload as its notification names it; the order follows the version (v1 < v2 < ...).
fn upload_ref(key: &str, version: &str) -> UploadRef {
    UploadRef::new(key, version).with_order(
        UploadOrder::new(
            "2026-11-21T08:00:00Z",
            Some(&format!("{:0>4}", version.trim_start_matches('v'))),
            key,
            version,
        )
        .unwrap(),
    )
}

impl World {
    fn new() -> Self {
        let on_hand = Arc::new(MemoryOnHandStore::new());
        let ledger = Arc::new(MemoryInventoryStore::new());
        let locations = Arc::new(MemoryLocationStore::with(vec![Location {
            location_id: LOC.into(),
            hub_id: "H1".into(),
            name: "H1".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        }]));
        Self {
            stock: Arc::new(StockChanges::new(
                on_hand.clone(),
                ledger.clone(),
                locations,
                Arc::new(MemoryNudge::default()),
            )),
            on_hand,
            ledger,
            objects: Default::default(),
            catalog: Default::default(),
            prices: Default::default(),
            reports: Default::default(),
            checkpoints: Default::default(),
            settings: Arc::new(MemorySettingsStore::new()),
            events: Arc::new(MemoryEventSink::new()),
            answers: Default::default(),
            config: IngestConfig {
                default_marketplace: "ATVPDKIKX0DER".into(),
                window_rows: 2,
                stop_margin: Duration::from_secs(1),
            },
        }
    }

    fn ports(&self) -> Ports {
        Ports {
            source: self.objects.clone(),
            catalog: self.catalog.clone(),
            prices: self.prices.clone(),
            reports: self.reports.clone(),
            checkpoints: self.checkpoints.clone(),
            settings: self.settings.clone(),
            events: self.events.clone(),
            answers: self.answers.clone(),
            stock: Some(self.stock.clone()),
            metrics: crate::metrics::Metrics::memory("test", "uploads").0,
        }
    }

    async fn upload(&self, key: &str, version: &str, body: &str) -> UploadSummary {
        self.objects.put(key, version, body);
        let upload = upload_ref(key, version);
        match run(
            &self.ports(),
            &self.config,
            &upload,
            Deadline::after(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        {
            RunResult::Done(s) => *s,
            other => panic!("not done: {other:?}"),
        }
    }

    fn active(&self) -> Vec<String> {
        self.catalog
            .items()
            .into_iter()
            .filter(|i| i.enabled)
            .map(|i| i.sku)
            .collect()
    }
}

const CATALOG: &str = "sku,asin,title,product_type,colour\n\
    A,B000000001,Mug,KITCHEN,red\n\
    B,B000000002,Cup,KITCHEN,blue\n\
    C,bad,Plate,KITCHEN,\n\
    D,B000000004,=SUM(A1),,\n\
    A,B000000009,again,,\n";

#[tokio::test]
async fn delta_catalog_applies_good_rows_and_reports_bad_ones() {
    let w = World::new();
    let s = w.upload("catalog/delta/c.csv", "v1", CATALOG).await;
    assert_eq!(
        (s.status.as_str(), s.rows_read, s.accepted, s.rejected),
        ("processed", 5, 3, 2)
    );
    assert_eq!(s.extra_columns, vec!["colour"]);
    assert_eq!(s.mode, Some(Mode::Delta));
    assert_eq!(w.active(), ["A", "B", "D"]);
    assert_eq!(
        w.catalog.item("D").unwrap().title.as_deref(),
        Some("=SUM(A1)")
    );

    let errors = w
        .reports
        .get("reports/catalog/delta/c.csv.errors.csv")
        .unwrap();
    assert_eq!(
        errors.lines().collect::<Vec<_>>(),
        [
            "line,column,value,reason",
            "4,asin,bad,\"ASIN must be exactly 10 characters, upper-case A-Z or 0-9 (e.g. B07XJ8C8F5)\"",
            "6,sku,A,duplicate SKU in this file: line 2 already has it",
        ]
    );
    let summary: UploadSummary = serde_json::from_str(
        &w.reports
            .get("reports/catalog/delta/c.csv.summary.json")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary, s);
    assert_eq!(
        s.errors_report.as_deref(),
        Some("reports/catalog/delta/c.csv.errors.csv")
    );

    let events = w.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, EventName::UploadProcessed);
    assert_eq!(events[0].fields["rowsAccepted"], 3);
    assert_eq!(events[0].fields["summary"]["rejected"], 2);

    let log = w
        .settings
        .history("upload:catalog/delta/c.csv")
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].new["version_id"], "v1");
    assert_eq!(log[0].new["accepted"], 3);
}

#[tokio::test]
async fn reuploading_unchanged_rows_writes_nothing() {
    let w = World::new();
    w.upload("catalog/delta/c.csv", "v1", CATALOG).await;
    let writes = w.catalog.writes();
    let s = w.upload("catalog/delta/c.csv", "v2", CATALOG).await;
    assert_eq!(w.catalog.writes(), writes);
    assert_eq!((s.accepted, s.unchanged), (3, 3));
    let s = w
        .upload(
            "catalog/delta/c2.csv",
            "v1",
            "sku,asin,title,product_type\nA,B000000001,Mug,KITCHEN\nB,B000000002,Big cup,KITCHEN\n",
        )
        .await;
    assert_eq!((s.accepted, s.unchanged), (2, 1));
    assert_eq!(w.catalog.writes(), writes + 1);
}

#[tokio::test]
async fn whole_file_rejection_writes_nothing_but_the_summary() {
    let w = World::new();
    let s = w
        .upload("catalog/delta/x.csv", "v1", "sku,title\nA,x\n")
        .await;
    assert_eq!(s.status, "rejected");
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("missing required column asin"),
        "{s:?}"
    );
    assert_eq!(w.catalog.writes(), 0);
    assert!(w
        .reports
        .get("reports/catalog/delta/x.csv.errors.csv")
        .is_none());
    assert!(w
        .reports
        .get("reports/catalog/delta/x.csv.summary.json")
        .is_some());
    assert_eq!(w.events.events().len(), 1);
}

fn full_catalog(skus: std::ops::Range<u32>) -> String {
    let mut s = String::from("sku,asin\n");
    for i in skus {
        s.push_str(&format!("S{i},B{i:09}\n"));
    }
    s
}

#[tokio::test]
async fn full_mode_disables_absent_skus_but_not_too_many() {
    let w = World::new();
    w.upload("catalog/full/a.csv", "v1", &full_catalog(0..10))
        .await;
    assert_eq!(w.active().len(), 10);

    // 2 of 10 absent: 20% is allowed.
    let s = w
        .upload("catalog/full/a.csv", "v2", &full_catalog(0..8))
        .await;
    assert_eq!((s.status.as_str(), s.disabled), ("processed", 2));
    assert_eq!(w.active().len(), 8);
    assert_eq!(w.catalog.items().len(), 10, "never deleted");

    // A truncated export: 5 of 8 absent is refused, nothing written.
    let writes = w.catalog.writes();
    let s = w
        .upload("catalog/full/a.csv", "v3", &full_catalog(0..3))
        .await;
    assert_eq!(s.status, "refused");
    assert!(
        s.reason.as_deref().unwrap().contains("disable 5 of 8"),
        "{s:?}"
    );
    assert_eq!(w.catalog.writes(), writes);
    assert_eq!(w.active().len(), 8);

    // The seller says so in the file name.
    let s = w
        .upload(
            "catalog/full/a-allow-mass-disable.csv",
            "v1",
            &full_catalog(0..3),
        )
        .await;
    assert_eq!((s.status.as_str(), s.disabled), ("processed", 5));
    assert_eq!(w.active(), ["S0", "S1", "S2"]);

    // Or a setting does.
    w.settings
        .put(
            SETTING_MAX_DISABLE_SHARE,
            serde_json::json!(0.9),
            None,
            "test",
        )
        .await
        .unwrap();
    let s = w
        .upload("catalog/full/b.csv", "v1", &full_catalog(0..1))
        .await;
    assert_eq!((s.status.as_str(), s.disabled), ("processed", 2));
}

#[tokio::test]
async fn a_rejected_row_keeps_its_sku_enabled_in_full_mode() {
    let w = World::new();
    w.upload("catalog/full/a.csv", "v1", &full_catalog(0..10))
        .await;
    let mut body = full_catalog(0..9);
    body.push_str("S9,not-an-asin\n");
    let s = w.upload("catalog/full/a.csv", "v2", &body).await;
    assert_eq!((s.rejected, s.disabled), (1, 0));
    assert_eq!(w.active().len(), 10);
}

async fn seed_catalog(w: &World) {
    w.upload(
        "catalog/delta/seed.csv",
        "v1",
        "sku,asin,product_type,enabled\nA,B000000001,KITCHEN,\nB,B000000002,,\nC,B000000003,KITCHEN,\nOFF,B000000004,KITCHEN,false\n",
    )
    .await;
    w.catalog
        .put_price(&PriceState {
            sku: "C".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
            price: 2000,
            currency: "USD".into(),
            status: "ACCEPTED".into(),
            issues: "[]".into(),
            submission_id: None,
            upload: "prices/old.csv@v1#2".into(),
            order: String::new(),
            updated_at: "t".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn price_rows_pass_the_guardrails_or_are_refused() {
    let w = World::new();
    seed_catalog(&w).await;
    let s = w
        .upload(
            "prices/p.csv",
            "v1",
            "sku,price,currency,force\nA,19.99,USD,\nB,5,USD,\nC,9.00,USD,\nC,9.00,EUR,\nZ,1,USD,\nOFF,3,USD,\nA,x,USD,\n",
        )
        .await;
    // C/EUR is a different row key? No: same SKU, same (default) marketplace → duplicate.
    let sent = w.prices.sent.lock().unwrap().clone();
    let got: Vec<(&str, i64, &str)> = sent
        .iter()
        .map(|u| (u.sku.as_str(), u.price, u.product_type.as_str()))
        .collect();
    assert_eq!(got, [("A", 1999, "KITCHEN")]);
    assert_eq!(sent[0].upload, "prices/p.csv@v1");
    assert_eq!(sent[0].marketplace_id, "ATVPDKIKX0DER");
    assert_eq!(
        (s.rows_read, s.accepted, s.rejected, s.queued),
        (7, 1, 6, 1)
    );
    let errors = w.reports.get("reports/prices/p.csv.errors.csv").unwrap();
    let lines: Vec<&str> = errors.lines().skip(1).collect();
    assert!(
        lines[0].starts_with("3,sku,B,the catalog has no product_type"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(
            "4,price,9.00,price 9.00 is more than 50% away from the last price we sent (20.00)"
        ),
        "{lines:?}"
    );
    assert!(lines[2].starts_with("5,sku,C,duplicate SKU"), "{lines:?}");
    assert!(
        lines[3].starts_with("6,sku,Z,SKU is not in the catalog"),
        "{lines:?}"
    );
    assert!(
        lines[4].starts_with("7,sku,OFF,SKU is disabled"),
        "{lines:?}"
    );
    assert!(lines[5].starts_with("8,price,x,not a number"), "{lines:?}");

    let s = w
        .upload(
            "prices/p2.csv",
            "v1",
            "sku,price,currency,force\nC,9.00,USD,true\n",
        )
        .await;
    assert_eq!(s.queued, 1, "force overrides the 50% guardrail");
}

#[tokio::test]
async fn a_large_file_resumes_from_its_checkpoint() {
    let w = World::new();
    let body = full_catalog(0..9);
    w.objects.put("catalog/delta/big.csv", "v1", body.as_str());
    let upload = upload_ref("catalog/delta/big.csv", "v1");
    // A deadline already inside the stop margin: each run applies one window (2 rows) and stops.
    let mut runs = 0;
    let summary = loop {
        runs += 1;
        assert!(runs < 20);
        match run(
            &w.ports(),
            &w.config,
            &upload,
            Deadline::after(Duration::ZERO),
        )
        .await
        .unwrap()
        {
            RunResult::Done(s) => break *s,
            RunResult::Paused {
                applied_through_line,
            } => {
                assert_eq!(applied_through_line, 1 + 2 * runs as u64);
                assert_eq!(w.catalog.items().len(), 2 * runs);
            }
        }
    };
    assert_eq!(runs, 5, "one window a run, the short tail too");
    assert_eq!(
        (summary.runs, summary.accepted, summary.unchanged),
        (5, 9, 0)
    );
    assert_eq!(w.catalog.writes(), 9, "no row written twice");
    assert_eq!(w.events.events().len(), 1, "one event for the whole upload");
}

#[tokio::test]
async fn a_file_without_a_column_never_changes_that_column() {
    let w = World::new();
    w.upload(
        "catalog/delta/a.csv",
        "v1",
        "sku,asin,title,product_type,enabled,safety_stock\nA,B000000001,Mug,KITCHEN,false,3\nB,B000000002,Cup,KITCHEN,,\n",
    )
    .await;
    // A title-only correction, then a file whose product_type cell is empty.
    let s = w
        .upload(
            "catalog/delta/t.csv",
            "v1",
            "sku,asin,title\nA,B000000001,Red mug\n",
        )
        .await;
    assert_eq!((s.accepted, s.rejected), (1, 0));
    w.upload(
        "catalog/full/f.csv",
        "v1",
        "sku,asin,product_type,title\nA,B000000001,,Red mug\nB,B000000002,,\n",
    )
    .await;
    let a = w.catalog.item("A").unwrap();
    assert_eq!(a.title.as_deref(), Some("Red mug"));
    assert_eq!(a.product_type.as_deref(), Some("KITCHEN"), "kept");
    assert_eq!((a.enabled, a.safety_stock), (false, Some(3)), "kept");
    let b = w.catalog.item("B").unwrap();
    assert_eq!(
        (b.title.as_deref(), b.product_type.as_deref()),
        (Some("Cup"), Some("KITCHEN"))
    );
    // And so a later price for A's SKU still finds its product type.
    assert!(w.catalog.item("A").unwrap().product_type.is_some());
}

#[tokio::test]
async fn an_unclosed_quote_rejects_the_whole_file_and_writes_nothing() {
    let w = World::new();
    let s = w
        .upload(
            "catalog/delta/q.csv",
            "v1",
            "sku,asin,title\nA,B000000001,Mug\nB,B000000002,\"Cup, blue\nC,B000000003,Plate\nD,B000000004,Bowl\n",
        )
        .await;
    assert_eq!(s.status, "rejected", "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .unwrap_or_default()
            .contains("line 3 opens a quoted field"),
        "{s:?}"
    );
    assert!(w.catalog.items().is_empty(), "nothing written");
}

#[tokio::test]
async fn the_disable_pass_pauses_and_resumes_from_its_page() {
    let w = World::new();
    w.settings
        .put(
            SETTING_ALLOW_MASS_DISABLE,
            serde_json::json!(true),
            None,
            "t",
        )
        .await
        .unwrap();
    w.upload("catalog/delta/all.csv", "v1", &full_catalog(0..9))
        .await;
    // The full file lists S0 and S1 only: 7 SKUs to disable, 2 per scan page in memory.
    let body = full_catalog(0..2);
    w.objects.put("catalog/full/two.csv", "v1", body.as_str());
    let upload = upload_ref("catalog/full/two.csv", "v1");
    let mut paused = 0;
    let summary = loop {
        assert!(paused < 20);
        match run(
            &w.ports(),
            &w.config,
            &upload,
            Deadline::after(Duration::ZERO),
        )
        .await
        .unwrap()
        {
            RunResult::Done(s) => break *s,
            RunResult::Paused { .. } => paused += 1,
        }
    };
    assert!(
        paused >= 4,
        "paused {paused} times: the scan resumes page by page"
    );
    assert_eq!(summary.disabled, 7);
    assert_eq!(w.active(), ["S0", "S1"]);
    assert_eq!(w.events.events().len(), 2, "one event per upload");
}

#[tokio::test]
async fn a_price_upload_expects_amazons_answer_per_queued_row() {
    let w = World::new();
    seed_catalog(&w).await;
    let s = w
        .upload(
            "prices/p.csv",
            "v1",
            "sku,price,currency\nA,10.00,USD\nC,21.00,USD\n",
        )
        .await;
    assert_eq!(s.queued, 2);
    assert_eq!(
        s.amazon_report.as_deref(),
        Some("reports/prices/p.csv.amazon.csv")
    );
    let sent = w.prices.sent.lock().unwrap().clone();
    assert_eq!(sent[0].key, "prices/p.csv");
    assert_eq!(
        sent[0].order,
        upload_ref("prices/p.csv", "v1").order.unwrap().to_string()
    );
    assert!(
        w.reports.get("reports/prices/p.csv.amazon.csv").is_none(),
        "not before Amazon answered"
    );
    // Running it again (a redelivery) repeats nothing.
    w.upload("prices/p.csv", "v1", "ignored").await;
    assert_eq!(w.prices.sent.lock().unwrap().len(), 2);
}

impl World {
    async fn on_hand(&self, sku: &str) -> Option<u32> {
        self.on_hand
            .on_hand("H1", sku)
            .await
            .unwrap()
            .map(|f| f.on_hand)
    }
    async fn pending(&self) -> Vec<String> {
        self.ledger.pending(LOC).await.unwrap()
    }
    /// Clears every mark (as a push would).
    async fn pushed(&self) {
        for p in self
            .ledger
            .positions(LOC, &self.pending().await)
            .await
            .unwrap()
        {
            self.ledger
                .finish(LOC, &p.sku, p.pending_gen, None)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn an_inventory_delta_stores_figures_marks_them_pending_and_reports_bad_rows() {
    let w = World::new();
    let s = w
        .upload(
            "inventory/delta/i.csv",
            "v1",
            "hub,sku,on_hand,as_of\nH1,A,5,\nH1,B,3,2026-11-21T07:00:00Z\nH2,C,1,\nH1,D,-1,\nH1,A,6,\n",
        )
        .await;
    assert_eq!(
        (s.status.as_str(), s.rows_read, s.accepted, s.rejected),
        ("processed", 5, 2, 3),
        "{s:?}"
    );
    assert_eq!((s.kind, s.mode), (Some(Kind::Inventory), Some(Mode::Delta)));
    assert_eq!(
        (w.on_hand("A").await, w.on_hand("B").await),
        (Some(5), Some(3))
    );
    assert_eq!(w.on_hand("D").await, None);
    let a = w.on_hand.on_hand("H1", "A").await.unwrap().unwrap();
    assert_eq!(
        a.reported_at.to_rfc3339(),
        "2026-11-21T08:00:00+00:00",
        "no as_of: the file's own time"
    );
    assert_eq!(w.pending().await, ["A", "B"]);
    let errors = w
        .reports
        .get("reports/inventory/delta/i.csv.errors.csv")
        .unwrap();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 4, "{errors}");
    assert!(
        lines[1].starts_with("4,hub,H2,hub H2 is not mapped"),
        "{errors}"
    );
    assert!(lines[2].starts_with("5,on_hand,'-1,"), "{errors}");
    assert!(lines[3].contains("duplicate SKU"), "{errors}");
    let events = w.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, EventName::UploadProcessed);
    assert_eq!(events[0].fields["kind"], "inventory");
    assert_eq!(events[0].fields["rowsAccepted"], 2);
}

#[tokio::test]
async fn an_older_inventory_figure_never_overwrites_a_newer_one() {
    let w = World::new();
    w.upload(
        "inventory/a.csv",
        "v1",
        "hub,sku,on_hand,as_of\nH1,A,5,2026-11-21T09:00:00Z\n",
    )
    .await;
    w.pushed().await;
    // Without as_of the figure is as of the file (08:00): older than 09:00.
    let s = w
        .upload("inventory/b.csv", "v1", "hub,sku,on_hand\nH1,A,2\n")
        .await;
    assert_eq!((s.accepted, s.skipped_as_older), (1, 1), "{s:?}");
    assert_eq!(w.on_hand("A").await, Some(5));
    assert!(
        w.pending().await.is_empty(),
        "nothing changed, nothing to push"
    );
    let s = w
        .upload(
            "inventory/c.csv",
            "v1",
            "hub,sku,on_hand,as_of\nH1,A,7,2026-11-21T10:00:00Z\n",
        )
        .await;
    assert_eq!(s.skipped_as_older, 0);
    assert_eq!(w.on_hand("A").await, Some(7));
    assert_eq!(w.pending().await, ["A"]);
}

#[tokio::test]
async fn a_full_inventory_file_zeroes_its_hubs_absent_skus_but_not_too_many() {
    let w = World::new();
    let mut seed = String::from("hub,sku,on_hand,as_of\n");
    for c in 'A'..='J' {
        seed.push_str(&format!("H1,{c},4,2026-11-21T07:00:00Z\n"));
    }
    w.upload("inventory/delta/seed.csv", "v1", &seed).await;
    w.pushed().await;

    // No hub folder: refused whole.
    let s = w
        .upload("inventory/full/x.csv", "v1", "hub,sku,on_hand\nH1,A,1\n")
        .await;
    assert_eq!(s.status, "rejected");
    assert!(s.reason.unwrap().contains("inventory/full/<hub>/"));

    // Lists A..H (I and J absent: 2 of 10 = the 20% allowed); a row of another hub is an error.
    let mut full = String::from("hub,sku,on_hand\n");
    for c in 'A'..='H' {
        full.push_str(&format!("H1,{c},4\n"));
    }
    full.push_str("H2,Z,1\n");
    let s = w.upload("inventory/full/H1/f.csv", "v1", &full).await;
    assert_eq!(
        (s.status.as_str(), s.zeroed, s.rejected),
        ("processed", 2, 1),
        "{s:?}"
    );
    assert_eq!(
        (w.on_hand("I").await, w.on_hand("J").await),
        (Some(0), Some(0))
    );
    assert_eq!(w.on_hand("A").await, Some(4));
    assert!(w
        .reports
        .get("reports/inventory/full/H1/f.csv.errors.csv")
        .unwrap()
        .contains("whole stock of hub H1"));
    w.pushed().await;

    // A broken export listing only A would zero 7 of 8 SKUs in stock: refused, nothing changed.
    let s = w
        .upload("inventory/full/H1/g.csv", "v1", "hub,sku,on_hand\nH1,A,3\n")
        .await;
    assert_eq!(s.status, "refused");
    assert!(s.reason.as_deref().unwrap().contains("7 of its 8"), "{s:?}");
    assert_eq!(w.on_hand("A").await, Some(4));
    assert_eq!(w.on_hand("B").await, Some(4));
    assert!(w.pending().await.is_empty());
    // The seller's consent in the file name.
    let s = w
        .upload(
            "inventory/full/H1/g-allow-mass-zero.csv",
            "v1",
            "hub,sku,on_hand\nH1,A,3\n",
        )
        .await;
    assert_eq!((s.status.as_str(), s.zeroed), ("processed", 7));
    assert_eq!(w.on_hand("B").await, Some(0));
    assert_eq!(w.pending().await.len(), 8);
}

#[tokio::test]
async fn catalog_changes_to_what_is_advertised_mark_the_skus_pending() {
    let w = World::new();
    // Only SKUs the hub has stock figures for can be pushed (C has none: never marked).
    w.ledger.set_on_hand("H1", "A", 5);
    w.ledger.set_on_hand("H1", "B", 5);
    w.upload(
        "catalog/delta/c.csv",
        "v1",
        "sku,asin,title\nA,B000000001,Mug\nB,B000000002,Cup\nC,B000000003,Jug\n",
    )
    .await;
    assert_eq!(w.pending().await, ["A", "B"], "new SKUs with stock");
    w.pushed().await;
    // A title changes nothing we advertise; safety_stock and enabled do.
    w.upload(
        "catalog/delta/c.csv",
        "v2",
        "sku,asin,title,safety_stock\nA,B000000001,Big mug,\nB,B000000002,Cup,2\n",
    )
    .await;
    assert_eq!(w.pending().await, ["B"]);
    w.pushed().await;
    // Full mode: A is absent, so disabled; that is a change too.
    let s = w
        .upload(
            "catalog/full/c-allow-mass-disable.csv",
            "v1",
            "sku,asin\nB,B000000002\n",
        )
        .await;
    assert_eq!(s.disabled, 2);
    assert_eq!(w.pending().await, ["A"]);
}
