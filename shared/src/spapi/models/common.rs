//! Building blocks for tolerant reading: enums that keep unknown values, lenient timestamps
//! and decimals. Amazon's own examples break the models (see the module docs of `spapi`), and an
//! odd value in one field must not fail a whole page of shipments.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string enum that reads any value (unknown ones land in `Unknown(raw)`) and
/// writes exactly the model's spelling.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of the model does not list (kept verbatim).
            Unknown(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(raw) => raw,
                }
            }

            /// Every value the model lists.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Unknown(String::new())
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                match raw {
                    $($text => Self::$variant,)+
                    other => Self::Unknown(other.to_string()),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok(Self::from(raw.as_ref()))
            }
        }
    };
}
pub(crate) use string_enum;

/// A point in time read leniently: RFC 3339, a space instead of `T`, no zone (taken as UTC),
/// epoch seconds or milliseconds as a number or a string. Written as RFC 3339 (`...Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn parse(raw: &str) -> Option<Self> {
        parse_datetime(raw).map(Self)
    }

    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(d: DateTime<Utc>) -> Self {
        Self(d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    /// Keeps fractions of a second (when there are any): a stored copy must read back as the
    /// same instant, or two updates within one second would look equally new.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        timestamp_from_value(&v)
            .ok_or_else(|| serde::de::Error::custom(format!("not a recognisable date-time: {v}")))
    }
}

fn timestamp_from_value(v: &serde_json::Value) -> Option<Timestamp> {
    match v {
        serde_json::Value::String(s) => Timestamp::parse(s),
        serde_json::Value::Number(n) => n.as_i64().and_then(epoch).map(Timestamp),
        _ => None,
    }
}

/// Epoch seconds or milliseconds (values past year ~5138 in seconds are taken as milliseconds).
fn epoch(n: i64) -> Option<DateTime<Utc>> {
    if n.abs() >= 100_000_000_000 {
        Utc.timestamp_millis_opt(n).single()
    } else {
        Utc.timestamp_opt(n, 0).single()
    }
}

pub fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') && s.len() >= 9 {
        return s.parse::<i64>().ok().and_then(epoch);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let t = s.replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&t) {
        return Some(d.with_timezone(&Utc));
    }
    // "+0000" style offsets.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(d) = DateTime::parse_from_str(&t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), fmt) {
            return Some(d.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// `deserialize_with` for `Option<Timestamp>` fields: an unreadable value becomes `None`
/// instead of failing the whole document (the raw value is rarely actionable anyway).
pub fn lenient_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(|v| {
        let t = timestamp_from_value(v);
        if t.is_none() && !v.is_null() {
            tracing::warn!(value = %v, "unreadable date-time from Amazon ignored");
        }
        t
    }))
}

/// A decimal kept as Amazon's string (`"12.50"`); also accepts a JSON number on input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Decimal(pub String);

impl Decimal {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_f64(&self) -> Option<f64> {
        self.0.trim().parse().ok()
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Decimal {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a decimal string, got {other}"
            ))),
        }
    }
}

/// `deserialize_with` for integer fields that Amazon sometimes writes as strings.
pub fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `deserialize_with` for lists: `null` reads as empty.
pub fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A record of a page that could not be read as our type (reported, never silently dropped).
/// Holds the id when there is one, so the caller can read it back on its own or raise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub id: Option<String>,
    /// The deserialization error (field names and positions only).
    pub error: String,
}

/// Reads each element on its own, so one odd record does not fail the whole page.
pub fn read_each<T: serde::de::DeserializeOwned>(
    items: Vec<serde_json::Value>,
) -> (Vec<T>, Vec<Unreadable>) {
    let mut ok = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for item in items {
        let id = item.get("id").and_then(|v| v.as_str()).map(str::to_string);
        match serde_json::from_value::<T>(item) {
            Ok(t) => ok.push(t),
            Err(e) => {
                let error = match e.classify() {
                    serde_json::error::Category::Data
                        if e.to_string().starts_with("missing field") =>
                    {
                        e.to_string()
                    }
                    c => format!("{c:?} error: a field has an unexpected shape"),
                };
                tracing::error!(id = ?id, %error, "unreadable record in an SP-API page");
                bad.push(Unreadable { id, error });
            }
        }
    }
    (ok, bad)
}

/// Amazon's error body, `{"errors": [{"code", "message", "details"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorList {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub errors: Vec<ApiError>,
}

/// One entry of an [`ErrorList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    string_enum!(Colour { Red = "RED", Blue = "BLUE" });

    #[test]
    fn enums_keep_unknown_values_and_write_exact_names() {
        let c: Vec<Colour> = serde_json::from_str(r#"["RED","GREEN"]"#).unwrap();
        assert_eq!(c, vec![Colour::Red, Colour::Unknown("GREEN".into())]);
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"["RED","GREEN"]"#);
        assert!(c[0].is_known() && !c[1].is_known());
        assert_eq!(Colour::KNOWN, &["RED", "BLUE"]);
    }

    #[test]
    fn timestamps_are_read_leniently() {
        let want = Utc.with_ymd_and_hms(2020, 6, 9, 14, 0, 0).unwrap();
        for raw in [
            "\"2020-06-09T14:00:00Z\"",
            "\"2020-06-09 14:00:00Z\"",
            "\"2020-06-09T14:00:00.000Z\"",
            "\"2020-06-09T16:00:00+02:00\"",
            "\"2020-06-09T14:00:00\"",
            "\"2020-06-09T14:00:00+0000\"",
            "\"1591711200000\"",
            "1591711200000",
            "1591711200",
        ] {
            let t: Timestamp = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(t.0, want, "{raw}");
        }
        assert_eq!(
            serde_json::to_string(&Timestamp(want)).unwrap(),
            "\"2020-06-09T14:00:00Z\""
        );
    }

    #[derive(Deserialize)]
    struct WithDate {
        #[serde(default, deserialize_with = "lenient_timestamp")]
        at: Option<Timestamp>,
    }

    #[test]
    fn garbage_dates_do_not_fail_the_document() {
        let w: WithDate = serde_json::from_str(r#"{"at":"next tuesday"}"#).unwrap();
        assert!(w.at.is_none());
        let w: WithDate = serde_json::from_str(r#"{}"#).unwrap();
        assert!(w.at.is_none());
    }

    #[test]
    fn decimals_accept_numbers() {
        let d: Decimal = serde_json::from_str("12.5").unwrap();
        assert_eq!(d.as_str(), "12.5");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"12.5\"");
    }
}
