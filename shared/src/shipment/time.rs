//! Times as the store sorts them and as Amazon sends them.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a time the way the store sorts it (fixed width, so strings order like times).
pub fn sort_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses Amazon's times tolerantly: RFC 3339, a space instead of `T`, or epoch millis/seconds.
pub fn parse_amazon_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&raw.replacen(' ', "T", 1)) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(n) = raw.parse::<i64>() {
        return if n > 100_000_000_000 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_space_times_parse() {
        assert_eq!(
            parse_amazon_time("1604923992000").unwrap().timestamp(),
            1_604_923_992
        );
        assert!(parse_amazon_time("2020-06-09 14:00:00Z").is_some());
        assert!(parse_amazon_time("yesterday").is_none());
    }
}
