//! Seller uploads: catalog, price and inventory CSV files dropped into the bucket.
//!
//! The file is read as a stream ([`reader::UploadReader`] over any `Read`), validated row by row on
//! bytes, and never held whole. Whole-file problems (encoding, binary, header) are a
//! [`FileRejection`]; row problems are [`RowError`]s that skip that row and keep the rest.
//! What happens to accepted rows (DynamoDB, the price queue) lives in [`ingest`]; how an SQS
//! message becomes runs of [`ingest::run`] (claim, resume, notification) in [`process`]; the
//! order of uploads in [`order`]. What a price does once accepted (the queue message, the
//! pusher, Amazon's answers) is [`crate::prices`]'s.
//!
//! A new kind of upload: a prefix in [`UploadKey::classify`], a [`Kind`], its columns in
//! [`reader`] (crate `flexbridge-upload-reader`), and what its rows do in [`ingest`].

pub mod aws;
pub mod ingest;
pub mod object;
pub mod order;
pub mod process;
pub mod report;

/// Prices moved to [`crate::prices`]; their old paths stay.
pub use crate::prices::{answers, push};
pub use object::{ObjectSource, ReportBody, ReportSink, UploadRef};

/// The reader and the row rules live in `flexbridge-upload-reader` (a crate of its own, compiled
/// at full speed in the deployed profile); their old paths stay.
pub use flexbridge_upload_reader::{currency, reader, skuset, validate, Kind};

use crate::config::prefixes;

pub use reader::{
    CatalogRow, Dialect, FileRejection, InventoryRow, Outcome, Parsed, PriceRow, RejectionKind,
    UploadReader,
};
pub use report::{ErrorCsv, RowError, UploadSummary};

/// `catalog/full/…` replaces the catalog (absent SKUs are disabled), `inventory/full/<hub>/…`
/// replaces a hub's stock (absent SKUs are zero); everything else only touches its rows.
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
    /// `inventory/full/<hub>/…`: the hub the file is the whole stock of (`None` when the key
    /// names no hub folder; such a file is refused).
    pub hub: Option<String>,
}

impl UploadKey {
    /// Classifies an object key. `None` for keys that are not uploads (our own `reports/`).
    pub fn classify(key: &str) -> Option<Self> {
        let mut hub = None;
        let (kind, mode) = if let Some(rest) = key.strip_prefix(prefixes::CATALOG) {
            if rest.starts_with("full/") {
                (Kind::Catalog, Mode::Full)
            } else {
                (Kind::Catalog, Mode::Delta)
            }
        } else if key.starts_with(prefixes::PRICES) {
            (Kind::Prices, Mode::Delta)
        } else if let Some(rest) = key.strip_prefix(prefixes::INVENTORY) {
            match rest.strip_prefix("full/") {
                Some(path) => {
                    // `<hub>/<file>`: the folder names the hub.
                    hub = path
                        .split_once('/')
                        .map(|(h, _)| h.to_string())
                        .filter(|h| !h.is_empty());
                    (Kind::Inventory, Mode::Full)
                }
                None => (Kind::Inventory, Mode::Delta),
            }
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
            hub,
        })
    }

    /// The seller's explicit consent to zeroing many SKUs (inventory full mode).
    pub fn allows_mass_zero(&self) -> bool {
        let name = self.key.rsplit('/').next().unwrap_or(&self.key);
        name.to_ascii_lowercase().contains("allow-mass-zero")
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
        let k = UploadKey::classify("inventory/i.csv").unwrap();
        assert_eq!(
            (k.kind, k.mode, k.hub),
            (Kind::Inventory, Mode::Delta, None)
        );
        let k = UploadKey::classify("inventory/delta/i.csv").unwrap();
        assert_eq!((k.kind, k.mode), (Kind::Inventory, Mode::Delta));
        let k = UploadKey::classify("inventory/full/HUB-1/2026-12-01.csv").unwrap();
        assert_eq!((k.kind, k.mode), (Kind::Inventory, Mode::Full));
        assert_eq!(k.hub.as_deref(), Some("HUB-1"));
        let k = UploadKey::classify("inventory/full/x.csv").unwrap();
        assert_eq!(
            (k.mode, k.hub),
            (Mode::Full, None),
            "no hub folder: refused later"
        );
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
