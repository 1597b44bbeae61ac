//! Where an upload stands across runs, and what a run returns.

use serde::{Deserialize, Serialize};

use crate::upload::UploadSummary;

/// Pass 1's verdict, kept so later runs do not repeat it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validated {
    pub rows_read: u64,
    /// Rows refused (of `rejected`) by the price guardrails.
    pub guard_refused: u64,
    pub rejected: u64,
    pub extra_columns: Vec<String>,
    pub delimiter: String,
    pub errors_report: Option<String>,
    /// Set when the whole file was rejected or refused: (`rejected`|`refused`, reason).
    pub stopped: Option<(String, String)>,
}

/// Where an upload stands across runs (CursorsTable, see [`super::aws`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub started_at: String,
    pub runs: u32,
    pub validated: Option<Validated>,
    /// Every row up to this line has been applied.
    pub applied_through_line: u64,
    /// Byte offset where the next row starts (informational: the apply pass re-reads the
    /// top of the file anyway to rebuild duplicate detection).
    pub applied_through_byte: u64,
    pub applied: bool,
    pub written: u64,
    pub unchanged: u64,
    pub queued: u64,
    /// Price rows the guardrails refused when applied; more than pass 1 refused means the
    /// catalog changed in between.
    pub apply_refused: u64,
    pub disabled: u64,
    /// Inventory: figures skipped because a newer one is stored.
    #[serde(default)]
    pub older: u64,
    /// Inventory, full mode: SKUs of the hub set to zero because the file does not list them.
    #[serde(default)]
    pub zeroed: u64,
    /// Full mode: every row is applied and the disable pass is running.
    #[serde(default)]
    pub rows_applied: bool,
    /// Full mode: where the disable pass's catalog scan continues.
    #[serde(default)]
    pub disable_page: Option<String>,
    /// Set once the upload is finished: a later run returns it and repeats nothing.
    #[serde(default)]
    pub finished: Option<Box<UploadSummary>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    Done(Box<UploadSummary>),
    /// Stopped before the deadline; run again (re-enqueue) to continue.
    Paused {
        applied_through_line: u64,
    },
}
