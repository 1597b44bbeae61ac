//! What the seller gets back: `reports/<key>.errors.csv` and `reports/<key>.summary.json`, and
//! for price uploads `reports/<key>.amazon.csv` once Amazon answered every queued row
//! ([`super::answers`]).

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{Kind, Mode};

pub use flexbridge_upload_reader::RowError;

/// Writes the errors report: `line,column,value,reason`, safe to open in a spreadsheet.
pub struct ErrorCsv<W: Write> {
    out: csv::Writer<W>,
    rows: u64,
}

impl<W: Write> ErrorCsv<W> {
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut out = csv::WriterBuilder::new().from_writer(out);
        out.write_record(["line", "column", "value", "reason"])?;
        Ok(Self { out, rows: 0 })
    }

    pub fn write(&mut self, e: &RowError) -> std::io::Result<()> {
        let line = e.line.to_string();
        self.out.write_record([
            line.as_str(),
            &neutralise(&e.column),
            &neutralise(&e.value),
            &neutralise(&e.reason),
        ])?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(self) -> std::io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Spreadsheet formula injection: a cell starting with `=`, `+`, `-`, `@` (or a tab / carriage
/// return that some spreadsheets skip) is run as a formula. A leading `'` makes it text.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// What happened to one upload: the summary report and the `UploadProcessed` event's
/// `summary` (camelCase, like every event field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSummary {
    pub key: String,
    pub version_id: String,
    pub kind: Option<Kind>,
    pub mode: Option<Mode>,
    /// `processed`, `rejected` (the whole file; nothing written) or `refused` (a guard stopped it).
    pub status: String,
    /// Why the whole file was rejected or refused.
    pub reason: Option<String>,
    pub rows_read: u64,
    pub accepted: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Catalog, full mode: SKUs switched off because the file no longer lists them.
    pub disabled: u64,
    /// Inventory, full mode: SKUs of the hub set to zero because the file does not list them.
    #[serde(default)]
    pub zeroed: u64,
    /// Inventory: rows not stored because a newer figure (by `as_of`, else the file's time)
    /// is stored already.
    #[serde(default)]
    pub skipped_as_older: u64,
    /// Prices: rows handed to the price queue for Amazon.
    pub queued: u64,
    pub extra_columns: Vec<String>,
    pub delimiter: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// Runs it took (more than one when a large file resumed from a checkpoint).
    pub runs: u32,
    pub summary_report: String,
    pub errors_report: Option<String>,
    /// Prices: where Amazon's answer per queued row appears once every row has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amazon_report: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for (input, out) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("B07XJ8C8F5", "B07XJ8C8F5"),
            ("", ""),
        ] {
            assert_eq!(neutralise(input), out);
        }
    }

    #[test]
    fn error_csv_quotes_and_neutralises() {
        let mut w = ErrorCsv::new(Vec::new()).unwrap();
        w.write(&RowError {
            line: 7,
            column: "asin".into(),
            value: "=cmd|' /C calc'!A0".into(),
            reason: "ASIN must be, well, 10 characters".into(),
        })
        .unwrap();
        assert_eq!(w.rows(), 1);
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            "line,column,value,reason\n7,asin,'=cmd|' /C calc'!A0,\"ASIN must be, well, 10 characters\"\n"
        );
    }
}
