//! Seller uploads: catalog and price CSV files dropped into the bucket.
//!
//! The file is read as a stream ([`reader::UploadReader`] over any `Read`), validated row by row on
//! bytes, and never held whole. Whole-file problems (encoding, binary, header) are a
//! [`FileRejection`]; row problems are [`RowError`]s that skip that row and keep the rest.
//! What happens to accepted rows (DynamoDB, the price queue) lives in [`ingest`]; how an SQS
//! message becomes runs of [`ingest::run`] (claim, resume, notification) in [`process`]; the
//! order of uploads in [`order`]; Amazon's answers to a price upload in [`answers`].
//!
//! A new kind of upload: a prefix in [`UploadKey::classify`], a [`Kind`], its columns in
//! [`reader`], and what its rows do in [`ingest`].

pub mod answers;
pub mod aws;
pub mod currency;
pub mod ingest;
pub mod order;
pub mod process;
pub mod push;
pub mod reader;
pub mod report;
pub mod skuset;
pub mod validate;

use crate::config::prefixes;

pub use reader::{
    CatalogRow, Dialect, FileRejection, Outcome, Parsed, PriceRow, RejectionKind, UploadReader,
};
pub use report::{ErrorCsv, RowError, UploadSummary};

/// What a file under the bucket is, from its key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Catalog,
    Prices,
}

/// `catalog/full/…` replaces the catalog (absent SKUs are disabled); everything else upserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Delta,
    Full,
}

/// An uploaded object as the seller named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadKey {
    pub key: String,
    pub kind: Kind,
    pub mode: Mode,
}

impl UploadKey {
    /// Classifies an object key. `None` for keys that are not catalog or price uploads
    /// (e.g. `inventory/`, which another function handles, or our own `reports/`).
    pub fn classify(key: &str) -> Option<Self> {
        let (kind, mode) = if let Some(rest) = key.strip_prefix(prefixes::CATALOG) {
            if rest.starts_with("full/") {
                (Kind::Catalog, Mode::Full)
            } else {
                (Kind::Catalog, Mode::Delta)
            }
        } else if key.starts_with(prefixes::PRICES) {
            (Kind::Prices, Mode::Delta)
        } else {
            return None;
        };
        // A "folder" placeholder object is not an upload.
        if key.ends_with('/') {
            return None;
        }
        Some(Self {
            key: key.to_string(),
            kind,
            mode,
        })
    }

    /// The seller's explicit consent to a large disable, written into the file name.
    pub fn allows_mass_disable(&self) -> bool {
        let name = self.key.rsplit('/').next().unwrap_or(&self.key);
        name.to_ascii_lowercase().contains("allow-mass-disable")
    }

    pub fn summary_report_key(&self) -> String {
        format!("{}{}.summary.json", prefixes::REPORTS, self.key)
    }

    pub fn errors_report_key(&self) -> String {
        format!("{}{}.errors.csv", prefixes::REPORTS, self.key)
    }

    /// Amazon's answer per price row (price uploads), see [`answers`].
    pub fn amazon_report_key(&self) -> String {
        Self::amazon_report_key_of(&self.key)
    }

    pub fn amazon_report_key_of(key: &str) -> String {
        format!("{}{key}.amazon.csv", prefixes::REPORTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_keys_by_prefix() {
        let k = UploadKey::classify("catalog/full/2026-11-21.csv").unwrap();
        assert_eq!((k.kind, k.mode), (Kind::Catalog, Mode::Full));
        let k = UploadKey::classify("catalog/delta/a.csv").unwrap();
        assert_eq!((k.kind, k.mode), (Kind::Catalog, Mode::Delta));
        let k = UploadKey::classify("catalog/a.csv").unwrap();
        assert_eq!((k.kind, k.mode), (Kind::Catalog, Mode::Delta));
        let k = UploadKey::classify("prices/p.csv").unwrap();
        assert_eq!(k.kind, Kind::Prices);
        assert!(UploadKey::classify("inventory/i.csv").is_none());
        assert!(UploadKey::classify("reports/catalog/a.csv.summary.json").is_none());
        assert!(UploadKey::classify("catalog/full/").is_none());
    }

    #[test]
    fn mass_disable_consent_comes_from_the_file_name_only() {
        let k = UploadKey::classify("catalog/full/export-ALLOW-MASS-DISABLE.csv").unwrap();
        assert!(k.allows_mass_disable());
        let k = UploadKey::classify("catalog/full/allow-mass-disable/export.csv").unwrap();
        assert!(!k.allows_mass_disable());
    }

    #[test]
    fn report_keys_keep_the_original_key() {
        let k = UploadKey::classify("catalog/delta/a b.csv").unwrap();
        assert_eq!(
            k.summary_report_key(),
            "reports/catalog/delta/a b.csv.summary.json"
        );
        assert_eq!(
            k.errors_report_key(),
            "reports/catalog/delta/a b.csv.errors.csv"
        );
    }
}
