//! The order of uploads, so a late or redelivered message of an older file never overrides a
//! newer one.
//!
//! S3 gives each object-created notification an `eventTime` (milliseconds) and, on AWS, a
//! `sequencer` (hex; comparable only between events of one key, after right-padding the shorter
//! value with zeros). moto sends no `sequencer`. The order used here works with both:
//!
//! `<eventTime, UTC, millisecond precision>|<sequencer, upper-case, right-padded to 32 with 0>|<key>@<version>`
//!
//! compared as a plain string (as DynamoDB compares it in a condition). Event time first: files
//! uploaded at different milliseconds are ordered by time; within one millisecond the sequencer
//! orders two versions of one key (on AWS; without it they tie), and the key and version make the
//! order total. One upload (key and version) has one order, the same on every redelivery.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// S3 sequencers are 16-18 hex digits today; 32 leaves room.
const SEQUENCER_WIDTH: usize = 32;

/// Where an upload stands among all uploads; larger is newer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UploadOrder(String);

impl UploadOrder {
    /// From the notification's `eventTime` (RFC 3339) and `sequencer` (absent on moto).
    pub fn new(
        event_time: &str,
        sequencer: Option<&str>,
        key: &str,
        version_id: &str,
    ) -> Result<Self> {
        let time = DateTime::parse_from_rfc3339(event_time)
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "S3 notification for {key}: eventTime {event_time:?} is not a time: {e}"
                ))
            })?
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let sequencer = sequencer.unwrap_or_default().trim().to_ascii_uppercase();
        if sequencer.len() > SEQUENCER_WIDTH || !sequencer.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!(
                "S3 notification for {key}: sequencer {sequencer:?} is not up to {SEQUENCER_WIDTH} hex digits"
            )));
        }
        Ok(Self(format!(
            "{time}|{sequencer:0<SEQUENCER_WIDTH$}|{key}@{version_id}"
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(time: &str, seq: Option<&str>, key: &str, v: &str) -> UploadOrder {
        UploadOrder::new(time, seq, key, v).unwrap()
    }

    #[test]
    fn later_event_time_wins_whatever_the_key() {
        let a = o("2026-11-21T08:21:13.408Z", None, "prices/z.csv", "v1");
        let b = o("2026-11-21T08:21:13.409Z", None, "prices/a.csv", "v0");
        assert!(a < b);
        // Offsets are normalised to UTC before comparing.
        let c = o("2026-11-21T09:21:13.410+01:00", None, "prices/a.csv", "v0");
        assert!(b < c, "{b} {c}");
    }

    #[test]
    fn sequencer_orders_one_keys_versions_within_a_millisecond() {
        let t = "2026-11-21T08:21:13.408Z";
        // Right-padded: "0055AED6DCD90281E5" < "0055AED6DCD90281E6" and a shorter value
        // compares as if padded with zeros on the right, as S3 documents.
        let a = o(t, Some("0055aed6dcd90281e5"), "prices/p.csv", "vB");
        let b = o(t, Some("0055AED6DCD90281E6"), "prices/p.csv", "vA");
        let c = o(t, Some("0055AED6DCD903"), "prices/p.csv", "vC");
        assert!(a < b && b < c);
        assert!(a.as_str().starts_with(
            "2026-11-21T08:21:13.408Z|0055AED6DCD90281E500000000000000|prices/p.csv@vB"
        ));
    }

    #[test]
    fn refuses_what_is_not_a_time_or_a_sequencer() {
        assert!(UploadOrder::new("yesterday", None, "k", "v").is_err());
        assert!(UploadOrder::new("2026-11-21T08:21:13Z", Some("xyz"), "k", "v").is_err());
    }
}
