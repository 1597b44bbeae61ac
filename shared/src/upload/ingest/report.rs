//! What a finished upload leaves: the errors report (written by a blocking thread while the
//! validate pass runs), the summary JSON, the `UploadProcessed` event, the metrics and the
//! change log entry.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Checkpoint, Ports, Validated};
use crate::error::{Error, Result};
use crate::events::{EventName, OutboundEvent, UploadProcessed};
use crate::prices::answers;
use crate::upload::report::{ErrorCsv, RowError, UploadSummary};
use crate::upload::{Kind, ReportBody, UploadKey, UploadRef};

pub(super) fn now_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "flexbridge-upload-{}.errors.csv",
        uuid::Uuid::new_v4()
    ))
}

/// Removes the temporary file however the function returns (on a blocking thread).
pub(super) struct TempFile(pub(super) PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.0);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || std::fs::remove_file(path));
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The errors report, written to a temporary file by a blocking thread that receives the
/// rows' errors over a channel.
pub(super) struct ErrorsWriter {
    tx: mpsc::Sender<Vec<RowError>>,
    handle: tokio::task::JoinHandle<std::io::Result<u64>>,
}

impl ErrorsWriter {
    pub(super) fn start(path: PathBuf) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<RowError>>(8);
        let handle = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&path)?;
            let mut errors = ErrorCsv::new(std::io::BufWriter::new(file))?;
            while let Some(batch) = rx.blocking_recv() {
                for e in &batch {
                    errors.write(e)?;
                }
            }
            let rows = errors.rows();
            std::io::Write::flush(&mut errors.finish()?)?;
            Ok(rows)
        });
        Self { tx, handle }
    }

    pub(super) async fn write(&self, batch: Vec<RowError>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.tx.send(batch).await.is_err() {
            // The writer stopped on an error; `finish` reports it.
            return Err(Error::Internal("errors report: the writer stopped".into()));
        }
        Ok(())
    }

    /// Rows written.
    pub(super) async fn finish(self) -> Result<u64> {
        drop(self.tx);
        self.handle
            .await
            .map_err(|e| Error::Internal(format!("errors report thread failed: {e}")))?
            .map_err(|e| Error::Internal(format!("errors report: {e}")))
    }
}

pub(super) async fn finish(
    ports: &Ports,
    key: &UploadKey,
    upload: &UploadRef,
    cp: &Checkpoint,
    validated: &Validated,
) -> Result<UploadSummary> {
    let finished = Utc::now();
    let started = DateTime::parse_from_rfc3339(&cp.started_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(finished);
    let (status, reason) = match &validated.stopped {
        Some((status, reason)) => (status.clone(), Some(reason.clone())),
        None => ("processed".to_string(), None),
    };
    let rejected = validated.rejected + cp.apply_refused.saturating_sub(validated.guard_refused);
    let amazon_report =
        (key.kind == Kind::Prices && validated.stopped.is_none()).then(|| key.amazon_report_key());
    if amazon_report.is_some() {
        answers::expect(
            ports.answers.as_ref(),
            ports.reports.as_ref(),
            upload,
            cp.queued,
        )
        .await?;
    }
    let summary = UploadSummary {
        key: upload.key.clone(),
        version_id: upload.version_id.clone(),
        kind: Some(key.kind),
        mode: (key.kind != Kind::Prices).then_some(key.mode),
        status: status.clone(),
        reason,
        rows_read: validated.rows_read,
        accepted: if validated.stopped.is_some() {
            0
        } else {
            validated.rows_read.saturating_sub(rejected)
        },
        unchanged: cp.unchanged,
        rejected,
        disabled: cp.disabled,
        zeroed: cp.zeroed,
        skipped_as_older: cp.older,
        queued: cp.queued,
        extra_columns: validated.extra_columns.clone(),
        delimiter: (!validated.delimiter.is_empty()).then(|| validated.delimiter.clone()),
        started_at: cp.started_at.clone(),
        finished_at: now_string(finished),
        duration_ms: (finished - started).num_milliseconds().max(0) as u64,
        runs: cp.runs,
        summary_report: key.summary_report_key(),
        errors_report: validated.errors_report.clone(),
        amazon_report,
    };
    ports
        .reports
        .put(
            &summary.summary_report,
            ReportBody::Bytes(serde_json::to_vec_pretty(&summary)?),
            "application/json",
        )
        .await?;

    #[derive(Serialize)]
    struct Fields<'a> {
        #[serde(flatten)]
        event: UploadProcessed,
        summary: &'a UploadSummary,
    }
    let event = OutboundEvent::new(
        EventName::UploadProcessed,
        &upload.label(),
        finished,
        Fields {
            event: UploadProcessed {
                upload_key: upload.key.clone(),
                kind: key.kind.name().into(),
                rows_accepted: summary.accepted,
                rows_rejected: summary.rejected,
                report_key: summary.summary_report.clone(),
            },
            summary: &summary,
        },
    )?;
    ports.events.publish(&[event]).await?;
    let at = [(
        "Kind",
        if key.kind == Kind::Catalog {
            "catalog"
        } else {
            "prices"
        },
    )];
    use crate::metrics::{names, Unit};
    let (accepted, rejected) = (summary.accepted as f64, summary.rejected as f64);
    ports
        .metrics
        .put(names::UPLOAD_ROWS_ACCEPTED, accepted, Unit::Count, &at);
    ports
        .metrics
        .put(names::UPLOAD_ROWS_REJECTED, rejected, Unit::Count, &at);

    // The change log: one entry per upload (key, version, counts, when).
    ports
        .settings
        .put(
            &format!("upload:{}", upload.key),
            serde_json::json!({
                "version_id": upload.version_id,
                "status": status,
                "rows_read": summary.rows_read,
                "accepted": summary.accepted,
                "unchanged": summary.unchanged,
                "rejected": summary.rejected,
                "disabled": summary.disabled,
                "zeroed": summary.zeroed,
                "skipped_as_older": summary.skipped_as_older,
                "queued": summary.queued,
                "at": summary.finished_at,
            }),
            None,
            "upload-ingest",
        )
        .await?;
    Ok(summary)
}
