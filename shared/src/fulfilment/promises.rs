//! Work a shipment record promises but no queue may hold. A label job (`job: queued` on a
//! packed shipment) and a seller cancellation (`cancellation: queued`) are saved first and sent
//! after; a run that dies between the two leaves a promise with no message. A retry of the same
//! warehouse request sends it again (`api.rs`), and this sweep, run by the order poller, sends
//! every promise older than [`RESEND_AFTER`] again. The consumers are idempotent (the label
//! job resumes at its first step not done, the cancellation worker acts only on a queued
//! cancellation, and every call with an effect goes through the idempotency helper), so a
//! second copy is safe; a lost one is not.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::fulfilment::worker::Fulfiller;
use crate::runtime::Invocation;
use crate::shipment::{CancellationState, JobState, ShipmentRecord, Stage};

/// How old a promise must be before the sweep sends its job again: longer than a send takes,
/// shorter than a seller waits for a label. Each further copy waits twice as long.
pub const RESEND_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// The step recorded with each copy the sweep sends.
pub const RESENT: &str = "promise_resent";

impl Fulfiller {
    /// Sends again every label job and cancellation that a shipment record has promised for
    /// longer than [`RESEND_AFTER`] since its last recorded step (twice that after one copy,
    /// four times after two, …). Returns how many shipments.
    pub async fn promise_sweep(&self, now: DateTime<Utc>, inv: &Invocation) -> Result<usize> {
        // A cancellation can be queued in any stage Amazon may still reject; a label job on a
        // packed shipment only.
        let stages = [
            Stage::Confirmed,
            Stage::HandedOver,
            Stage::Packed,
            Stage::Labelled,
        ];
        self.each_open(&stages, inv, |r| self.resend_promised(r, now))
            .await
    }

    /// Sends `r`'s promised jobs again when they are due; whether it sent any.
    async fn resend_promised(&self, r: ShipmentRecord, now: DateTime<Utc>) -> Result<bool> {
        let f = r.fulfilment();
        // Each copy sent waits twice as long as the one before: a job that is only slow (a long
        // queue) gets a few copies, not one every sweep.
        let copies = f.steps.iter().filter(|s| s.step == RESENT).count();
        let wait = RESEND_AFTER * 2i32.pow(copies.min(6) as u32);
        let promised_at = f.steps.last().map(|s| s.at);
        if promised_at.is_some_and(|at| now - at < wait) {
            return Ok(false);
        }
        let cancellation = f
            .cancellation
            .as_ref()
            .filter(|c| c.state == CancellationState::Queued);
        let label_job = r.stage == Stage::Packed && f.job == JobState::Queued;
        if cancellation.is_none() && !label_job {
            return Ok(false);
        }
        if let Some(c) = cancellation {
            self.queue_cancel_job(&r.id, &c.reference_id).await?;
        }
        if label_job {
            self.queue_label_job(&r, f.pack_version).await?;
        }
        tracing::warn!(shipment_id = %r.id, label_job, cancellation = cancellation.is_some(), "a promised job was sent again");
        // The step restarts the clock, so the next sweeps wait for this copy. A lost race means
        // another writer moved the shipment on: nothing to record.
        let mut r = r;
        let mut f = f;
        f.record_step(RESENT, None);
        r.fulfilment = Some(f);
        self.save(&mut r).await?;
        Ok(true)
    }
}
