//! Field rules, checked on the raw bytes of a CSV field (already known to be UTF-8).
//! Each returns the reason a seller reads in the errors report.

use std::fmt;

use super::currency;

pub const SKU_MAX_CHARS: usize = 40;
pub const TITLE_MAX_CHARS: usize = 500;

/// Trims ASCII whitespace (spreadsheets pad cells; SKUs are trimmed, case preserved).
#[inline]
pub fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Counts characters without decoding: every byte that is not a UTF-8 continuation byte.
#[inline]
fn char_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c as i8) >= -0x40).count()
}

#[inline]
fn as_str(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "not valid UTF-8".to_string())
}

pub fn sku(raw: &[u8]) -> Result<&str, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Err("SKU is empty".into());
    }
    if b.len() > SKU_MAX_CHARS && char_count(b) > SKU_MAX_CHARS {
        return Err(format!(
            "SKU is {} characters long; Amazon allows at most {SKU_MAX_CHARS}",
            char_count(b)
        ));
    }
    if b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Err("SKU contains a line break or another control character".into());
    }
    as_str(b)
}

/// An ASIN: exactly 10 characters, A–Z and 0–9.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asin([u8; 10]);

impl Asin {
    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Asin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Asin({})", self.as_str())
    }
}

impl fmt::Display for Asin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn asin(raw: &[u8]) -> Result<Asin, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Err("ASIN is empty".into());
    }
    match <[u8; 10]>::try_from(b) {
        Ok(a)
            if a.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
        {
            Ok(Asin(a))
        }
        _ => Err(
            "ASIN must be exactly 10 characters, upper-case A-Z or 0-9 (e.g. B07XJ8C8F5)".into(),
        ),
    }
}

/// Optional text; empty means absent.
pub fn text<'a>(raw: &'a [u8], name: &str, max_chars: usize) -> Result<Option<&'a str>, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() > max_chars && char_count(b) > max_chars {
        return Err(format!("{name} is longer than {max_chars} characters"));
    }
    as_str(b).map(Some)
}

/// Amazon's product type name, e.g. `LUGGAGE` or `HOME_BED_AND_BATH`.
pub fn product_type(raw: &[u8]) -> Result<Option<&str>, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() > 100
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
    {
        return Err(
            "product_type must be Amazon's product type name: upper-case letters, digits and _ (e.g. LUGGAGE)"
                .into(),
        );
    }
    as_str(b).map(Some)
}

/// true/false, yes/no, 1/0 in any case; empty means absent.
pub fn flag(raw: &[u8]) -> Result<Option<bool>, String> {
    let b = trim(raw);
    let yes = |w: &[u8]| b.eq_ignore_ascii_case(w);
    if b.is_empty() {
        Ok(None)
    } else if yes(b"true") || yes(b"yes") || b == b"1" {
        Ok(Some(true))
    } else if yes(b"false") || yes(b"no") || b == b"0" {
        Ok(Some(false))
    } else {
        Err("must be one of true, false, yes, no, 1, 0".into())
    }
}

/// A point in time (RFC 3339 with an offset, e.g. `2026-12-01T08:00:00Z`); empty means absent.
pub fn timestamp(raw: &[u8]) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .ok_or_else(|| {
            "must be a time with its offset, like 2026-12-01T08:00:00Z (RFC 3339)".to_string()
        })
}

/// A non-negative whole number of units; empty means absent.
pub fn quantity(raw: &[u8]) -> Result<Option<u32>, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return Err("must be a whole number of units from 0 to 999999999".into());
    }
    Ok(Some(b.iter().fold(0u32, |n, d| n * 10 + (d - b'0') as u32)))
}

/// An amount in hundredths (19.99 → 1999); at most two fraction digits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl Cents {
    /// The value Amazon's `value_with_tax` takes (a JSON number).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A positive decimal with at most two fraction digits. `comma_decimal` is true only in
/// `;`-delimited files, where `19,99` is how European spreadsheets write 19.99.
pub fn amount(raw: &[u8], comma_decimal: bool) -> Result<Option<Cents>, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Ok(None);
    }
    let sep = b.iter().position(|&c| c == b'.' || c == b',');
    let (int, frac) = match sep {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[..0]),
    };
    if let Some(i) = sep {
        if b[i] == b',' && !comma_decimal {
            return Err(
                "',' as decimal separator is accepted only in ';'-delimited files; write 19.99"
                    .into(),
            );
        }
    }
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if int.is_empty() || !digits(int) || !digits(frac) || (sep.is_some() && frac.is_empty()) {
        return Err(
            "not a number: write a decimal like 19.99 (no currency sign or thousands separator)"
                .into(),
        );
    }
    if frac.len() > 2 {
        return Err("more than two digits after the decimal separator".into());
    }
    if int.len() > 12 {
        return Err("number is too large".into());
    }
    let whole = int.iter().fold(0i64, |n, d| n * 10 + (d - b'0') as i64);
    let cents = match frac {
        [] => 0,
        [a] => (a - b'0') as i64 * 10,
        [a, b] => (a - b'0') as i64 * 10 + (b - b'0') as i64,
        _ => unreachable!(),
    };
    Ok(Some(Cents(whole * 100 + cents)))
}

/// An ISO 4217 code (any case in the file; upper case after).
pub fn currency(raw: &[u8]) -> Result<[u8; 3], String> {
    let b = trim(raw);
    if b.is_empty() {
        return Err("currency is empty".into());
    }
    if let Ok(mut c) = <[u8; 3]>::try_from(b) {
        c.make_ascii_uppercase();
        if currency::is_known(&c) {
            return Ok(c);
        }
    }
    Err("unknown currency: use an ISO 4217 code such as USD, EUR, GBP".into())
}

/// Amazon marketplace IDs are short upper-case alphanumerics (ATVPDKIKX0DER).
pub fn marketplace_id(raw: &[u8]) -> Result<Option<&str>, String> {
    let b = trim(raw);
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() > 20
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err("marketplace_id must be an Amazon marketplace ID such as ATVPDKIKX0DER".into());
    }
    as_str(b).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_is_trimmed_case_preserved_and_bounded() {
        assert_eq!(sku(b"  Ab-1 ").unwrap(), "Ab-1");
        assert!(sku(b"   ").unwrap_err().contains("empty"));
        assert_eq!(sku(&[b'x'; 40]).unwrap().len(), 40);
        assert!(sku(&[b'x'; 41]).unwrap_err().contains("41 characters"));
        // 40 two-byte characters are 80 bytes but still 40 characters.
        let wide = "é".repeat(40);
        assert_eq!(sku(wide.as_bytes()).unwrap(), wide);
        assert!(sku("é".repeat(41).as_bytes()).is_err());
        assert!(sku(b"a\nb").unwrap_err().contains("line break"));
    }

    #[test]
    fn asin_is_ten_upper_case_alphanumerics() {
        assert_eq!(asin(b" B07XJ8C8F5 ").unwrap().as_str(), "B07XJ8C8F5");
        assert!(asin(b"0123456789").is_ok());
        for bad in [
            &b"B07XJ8C8F"[..],
            b"B07XJ8C8F55",
            b"b07xj8c8f5",
            b"B07XJ8C8F-",
            b"B07XJ8C8\xc3\xa9",
        ] {
            assert!(asin(bad).is_err(), "{bad:?}");
        }
        assert!(asin(b"").unwrap_err().contains("empty"));
    }

    #[test]
    fn flags_accept_the_documented_words() {
        for (s, v) in [
            ("true", true),
            ("YES", true),
            ("1", true),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(flag(s.as_bytes()).unwrap(), Some(v), "{s}");
        }
        assert_eq!(flag(b" ").unwrap(), None);
        assert!(flag(b"y").is_err() && flag(b"2").is_err() && flag(b"enabled").is_err());
    }

    #[test]
    fn quantities_are_whole_non_negative_numbers() {
        assert_eq!(quantity(b" 12 ").unwrap(), Some(12));
        assert_eq!(quantity(b"").unwrap(), None);
        for bad in [&b"-1"[..], b"1.5", b"ten", b"1e3", b"1234567890"] {
            assert!(quantity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn amounts_have_at_most_two_fraction_digits() {
        assert_eq!(amount(b"19.99", false).unwrap(), Some(Cents(1999)));
        assert_eq!(amount(b"19.9", false).unwrap(), Some(Cents(1990)));
        assert_eq!(amount(b"19", false).unwrap(), Some(Cents(1900)));
        assert_eq!(amount(b"0.05", false).unwrap(), Some(Cents(5)));
        assert_eq!(amount(b"", false).unwrap(), None);
        assert!(amount(b"19.999", false).unwrap_err().contains("two digits"));
        assert!(amount(b"19.", false).is_err());
        assert!(amount(b".5", false).is_err());
        assert!(amount(b"-1", false).is_err());
        assert!(amount(b"$19", false).is_err());
        assert!(amount(b"1,234.50", false).is_err());
        assert!(amount(b"1.234,50", true).is_err());
        assert_eq!(Cents(1999).to_string(), "19.99");
        assert_eq!(Cents(5).to_string(), "0.05");
    }

    #[test]
    fn comma_decimals_only_in_semicolon_files() {
        assert_eq!(amount(b"19,99", true).unwrap(), Some(Cents(1999)));
        assert!(amount(b"19,99", false)
            .unwrap_err()
            .contains("';'-delimited"));
    }

    #[test]
    fn currencies_are_iso_4217() {
        assert_eq!(&currency(b"usd").unwrap(), b"USD");
        assert_eq!(&currency(b" EUR ").unwrap(), b"EUR");
        assert!(currency(b"XYZ").unwrap_err().contains("ISO 4217"));
        assert!(currency(b"US").is_err() && currency(b"").is_err() && currency(b"DOLLAR").is_err());
    }

    #[test]
    fn product_types_and_marketplaces() {
        assert_eq!(
            product_type(b"HOME_BED_AND_BATH").unwrap(),
            Some("HOME_BED_AND_BATH")
        );
        assert_eq!(product_type(b"").unwrap(), None);
        assert!(product_type(b"luggage").is_err());
        assert_eq!(
            marketplace_id(b"ATVPDKIKX0DER").unwrap(),
            Some("ATVPDKIKX0DER")
        );
        assert!(marketplace_id(b"us").is_err());
        assert_eq!(text(b" Red mug ", "title", 10).unwrap(), Some("Red mug"));
        assert!(text(b"01234567890", "title", 10).is_err());
    }
}
