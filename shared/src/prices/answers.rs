//! Amazon's answer to each queued row of a price upload, and the report they end in:
//! `reports/<key>.amazon.csv` (`line,sku,marketplace_id,price,currency,status,issues`).
//!
//! The price pusher records each answer (Amazon's status, or `SUPERSEDED` when a newer upload's
//! price for the same SKU and marketplace came first) once per row: a redelivered message
//! records nothing new, so it is counted once. upload-ingest records how many rows it queued
//! once the file is applied. Whichever of them brings `answered` to `expected` wins a
//! conditional claim and writes the report; everyone else sees the claim fail. A price message
//! that ends in the DLQ holds the report back until it is redriven and answered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::upload::report::neutralise;
use crate::upload::validate::Cents;
use crate::upload::{ReportBody, ReportSink, UploadKey, UploadRef};

/// How long a writer holds the report claim before another may take it over.
const REPORT_LEASE: Duration = Duration::from_secs(120);

/// Amazon's answer to one price row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceAnswer {
    pub line: u64,
    pub sku: String,
    pub marketplace_id: String,
    /// Hundredths of the currency unit.
    pub price: i64,
    pub currency: String,
    /// Amazon's status (`ACCEPTED`, `INVALID`, ...) or `SUPERSEDED`.
    pub status: String,
    /// Amazon's issues as JSON, or why the row was not sent.
    pub issues: String,
}

/// Where answers are counted (CursorsTable, see [`super::aws::DynamoAnswers`]).
#[async_trait]
pub trait AnswerStore: Send + Sync {
    /// Stores the answer of one row and counts it, atomically; a second answer for the same
    /// line changes nothing.
    async fn record(&self, upload: &UploadRef, answer: &PriceAnswer) -> Result<()>;
    /// How many rows the upload queued (set once the file is applied).
    async fn expect(&self, upload: &UploadRef, queued: u64) -> Result<()>;
    /// Takes the right to write the report: true for one caller, once every queued row has an
    /// answer and no report was written (a claim older than its lease can be taken over).
    async fn claim_report(
        &self,
        upload: &UploadRef,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool>;
    /// The report is written.
    async fn reported(&self, upload: &UploadRef) -> Result<()>;
    /// Writing failed; another attempt may claim it at once.
    async fn release_report(&self, upload: &UploadRef) -> Result<()>;
    /// Every recorded answer.
    async fn answers(&self, upload: &UploadRef) -> Result<Vec<PriceAnswer>>;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// The price pusher: one row's answer is in.
pub async fn answered(
    store: &dyn AnswerStore,
    reports: &dyn ReportSink,
    upload: &UploadRef,
    answer: &PriceAnswer,
) -> Result<()> {
    store.record(upload, answer).await?;
    write_if_complete(store, reports, upload).await
}

/// upload-ingest: the file is applied and `queued` rows went to the price queue.
pub async fn expect(
    store: &dyn AnswerStore,
    reports: &dyn ReportSink,
    upload: &UploadRef,
    queued: u64,
) -> Result<()> {
    store.expect(upload, queued).await?;
    write_if_complete(store, reports, upload).await
}

async fn write_if_complete(
    store: &dyn AnswerStore,
    reports: &dyn ReportSink,
    upload: &UploadRef,
) -> Result<()> {
    let now = now_ms();
    if !store
        .claim_report(upload, now, now + REPORT_LEASE.as_millis() as i64)
        .await?
    {
        return Ok(());
    }
    let written = async {
        let mut rows = store.answers(upload).await?;
        rows.sort_by_key(|a| a.line);
        let body = report_csv(&rows)?;
        reports
            .put(
                &UploadKey::amazon_report_key_of(&upload.key),
                ReportBody::Bytes(body),
                "text/csv; charset=utf-8",
            )
            .await
    }
    .await;
    match written {
        Ok(()) => {
            tracing::info!(upload = upload.label(), "Amazon's answers report written");
            store.reported(upload).await
        }
        Err(e) => {
            if let Err(release) = store.release_report(upload).await {
                tracing::warn!(error = %release, "could not release the report claim; it expires");
            }
            Err(e)
        }
    }
}

/// `line,sku,marketplace_id,price,currency,status,issues`, safe to open in a spreadsheet.
pub fn report_csv(rows: &[PriceAnswer]) -> Result<Vec<u8>> {
    let io = |e: csv::Error| Error::Internal(format!("Amazon report: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "line",
        "sku",
        "marketplace_id",
        "price",
        "currency",
        "status",
        "issues",
    ])
    .map_err(io)?;
    for a in rows {
        out.write_record([
            a.line.to_string().as_str(),
            &neutralise(&a.sku),
            &neutralise(&a.marketplace_id),
            &Cents(a.price).to_string(),
            &neutralise(&a.currency),
            &neutralise(&a.status),
            &neutralise(&a.issues),
        ])
        .map_err(io)?;
    }
    out.into_inner()
        .map_err(|e| Error::Internal(format!("Amazon report: {}", e.error())))
}

pub mod memory {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, Default, Clone)]
    struct Count {
        expected: Option<u64>,
        rows: BTreeMap<u64, PriceAnswer>,
        lease_until: Option<i64>,
        reported: bool,
    }

    /// Answers in a map (unit tests).
    #[derive(Debug, Default)]
    pub struct MemoryAnswers {
        counts: Mutex<BTreeMap<String, Count>>,
    }

    impl MemoryAnswers {
        pub fn answered(&self, upload: &UploadRef) -> usize {
            self.counts
                .lock()
                .expect("lock")
                .get(&upload.label())
                .map_or(0, |c| c.rows.len())
        }
    }

    #[async_trait]
    impl AnswerStore for MemoryAnswers {
        async fn record(&self, upload: &UploadRef, answer: &PriceAnswer) -> Result<()> {
            let mut counts = self.counts.lock().expect("lock");
            let c = counts.entry(upload.label()).or_default();
            c.rows.entry(answer.line).or_insert_with(|| answer.clone());
            Ok(())
        }
        async fn expect(&self, upload: &UploadRef, queued: u64) -> Result<()> {
            let mut counts = self.counts.lock().expect("lock");
            counts.entry(upload.label()).or_default().expected = Some(queued);
            Ok(())
        }
        async fn claim_report(
            &self,
            upload: &UploadRef,
            now_ms: i64,
            lease_until_ms: i64,
        ) -> Result<bool> {
            let mut counts = self.counts.lock().expect("lock");
            let Some(c) = counts.get_mut(&upload.label()) else {
                return Ok(false);
            };
            let complete = c.expected == Some(c.rows.len() as u64);
            let free = c.lease_until.is_none_or(|l| l < now_ms);
            if complete && free && !c.reported {
                c.lease_until = Some(lease_until_ms);
                return Ok(true);
            }
            Ok(false)
        }
        async fn reported(&self, upload: &UploadRef) -> Result<()> {
            let mut counts = self.counts.lock().expect("lock");
            if let Some(c) = counts.get_mut(&upload.label()) {
                c.reported = true;
                c.lease_until = None;
            }
            Ok(())
        }
        async fn release_report(&self, upload: &UploadRef) -> Result<()> {
            let mut counts = self.counts.lock().expect("lock");
            if let Some(c) = counts.get_mut(&upload.label()) {
                c.lease_until = None;
            }
            Ok(())
        }
        async fn answers(&self, upload: &UploadRef) -> Result<Vec<PriceAnswer>> {
            Ok(self
                .counts
                .lock()
                .expect("lock")
                .get(&upload.label())
                .map(|c| c.rows.values().cloned().collect())
                .unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::memory::MemoryAnswers;
    use super::*;
    use crate::upload::object::memory::MemoryReports;

    fn answer(line: u64, status: &str) -> PriceAnswer {
        PriceAnswer {
            line,
            sku: format!("SKU-{line}"),
            marketplace_id: "ATVPDKIKX0DER".into(),
            price: 1999,
            currency: "USD".into(),
            status: status.into(),
            issues: "[]".into(),
        }
    }

    /// Counts the writes of each report key.
    #[derive(Default)]
    struct CountingReports {
        inner: MemoryReports,
        puts: std::sync::Mutex<u32>,
    }

    #[async_trait]
    impl ReportSink for CountingReports {
        async fn put(&self, key: &str, body: ReportBody, content_type: &str) -> Result<()> {
            *self.puts.lock().expect("lock") += 1;
            self.inner.put(key, body, content_type).await
        }
    }

    fn upload() -> UploadRef {
        UploadRef::new("prices/p.csv", "v1")
    }

    #[tokio::test]
    async fn the_report_is_written_once_when_the_last_answer_arrives() {
        let store = MemoryAnswers::default();
        let reports = CountingReports::default();
        let u = upload();
        answered(&store, &reports, &u, &answer(3, "INVALID"))
            .await
            .unwrap();
        expect(&store, &reports, &u, 2).await.unwrap();
        // A redelivered answer is not counted twice, so the report is not written early.
        answered(&store, &reports, &u, &answer(3, "INVALID"))
            .await
            .unwrap();
        assert_eq!(*reports.puts.lock().unwrap(), 0);
        answered(&store, &reports, &u, &answer(2, "ACCEPTED"))
            .await
            .unwrap();
        answered(&store, &reports, &u, &answer(2, "ACCEPTED"))
            .await
            .unwrap();
        expect(&store, &reports, &u, 2).await.unwrap();
        assert_eq!(*reports.puts.lock().unwrap(), 1);
        let csv = reports
            .inner
            .get("reports/prices/p.csv.amazon.csv")
            .unwrap();
        assert_eq!(
            csv,
            "line,sku,marketplace_id,price,currency,status,issues\n\
             2,SKU-2,ATVPDKIKX0DER,19.99,USD,ACCEPTED,[]\n\
             3,SKU-3,ATVPDKIKX0DER,19.99,USD,INVALID,[]\n"
        );
    }

    #[tokio::test]
    async fn the_count_reaching_the_total_before_ingest_sets_it_writes_on_expect() {
        let store = Arc::new(MemoryAnswers::default());
        let reports = CountingReports::default();
        let u = upload();
        answered(store.as_ref(), &reports, &u, &answer(2, "SUPERSEDED"))
            .await
            .unwrap();
        assert_eq!(*reports.puts.lock().unwrap(), 0);
        expect(store.as_ref(), &reports, &u, 1).await.unwrap();
        assert_eq!(*reports.puts.lock().unwrap(), 1);
        // A file that queued nothing gets an empty report at once.
        let none = UploadRef::new("prices/none.csv", "v1");
        expect(store.as_ref(), &reports, &none, 0).await.unwrap();
        assert!(reports
            .inner
            .get("reports/prices/none.csv.amazon.csv")
            .is_some());
    }
}
