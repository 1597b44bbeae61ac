//! The streaming reader: dialect from the header line, UTF-8 checked chunk by chunk as it
//! streams past, rows validated on the bytes of a reused `csv::ByteRecord` (no allocation for a
//! good row). Memory is the csv buffer plus the compact SKU set, whatever the file size.

use std::io::{self, Cursor, Read};

use super::skuset::{Seen, SkuSet};
use super::validate::{self, Asin, Cents};
use super::Kind;
use super::RowError;

/// Why a whole file was refused before anything was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    Empty,
    Binary,
    NotUtf8,
    Header,
    MissingColumns,
    DuplicateColumns,
    /// A quoted field is opened and never closed: every later row would vanish into it.
    UnclosedQuote,
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FileRejection {
    pub kind: RejectionKind,
    pub message: String,
}

impl FileRejection {
    fn new(kind: RejectionKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A read failure: ours (encoding, binary) passes through; anything else is `Unreadable`.
    fn from_io(e: io::Error) -> Self {
        match e.get_ref().and_then(|i| i.downcast_ref::<FileRejection>()) {
            Some(r) => r.clone(),
            None => Self::new(
                RejectionKind::Unreadable,
                format!("could not read the file: {e}"),
            ),
        }
    }
}

/// How the file is written, detected from its header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub bom: bool,
}

impl Dialect {
    pub fn delimiter_name(&self) -> &'static str {
        match self.delimiter {
            b';' => "semicolon",
            b'\t' => "tab",
            _ => "comma",
        }
    }
}

const MAX_HEADER_BYTES: usize = 1 << 20;
const CSV_BUFFER: usize = 64 * 1024;

/// Checks each chunk on its way to the CSV parser: UTF-8 (a character split across two
/// chunks is held back until complete), no NUL bytes, and no well-known binary signature.
struct Utf8Guard<R> {
    inner: R,
    offset: u64,
    pending: [u8; 4],
    pending_len: usize,
    /// Follows quoting once the delimiter is known (set after the header is read).
    quotes: Option<QuoteScan>,
}

impl<R: Read> Utf8Guard<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            pending: [0; 4],
            pending_len: 0,
            quotes: None,
        }
    }

    /// Hands out `n` checked bytes of `buf`, after the quote scanner has seen them.
    fn hand_out(&mut self, buf: &[u8], n: usize) -> usize {
        if let Some(q) = &mut self.quotes {
            q.feed(&buf[..n]);
        }
        n
    }

    fn fail(r: FileRejection) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, r)
    }
}

/// Follows quoting the way the CSV parser does (a quote opens a quoted field only at the start
/// of a field; `""` inside one is a literal quote), counting lines, so the end of the file can
/// tell whether a quoted field was left open and on which line it opened. The parser itself
/// would silently take everything up to the end of the file as that field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QuoteScan {
    delimiter: u8,
    state: QuoteState,
    line: u64,
    opened_on: u64,
    /// The last byte was a `\r` outside quotes.
    after_cr: bool,
    /// The first line where a `\r` outside quotes ends a row on its own (not as `\r\n`): the
    /// parser would split the row there while lines are counted by `\n`, so rows would be
    /// misnumbered.
    bare_cr_on: Option<u64>,
    /// Whether the first line ended with `\r\n` (else `\n`), once seen.
    crlf: Option<bool>,
    /// The first line that ends differently from the first one: the parser's line positions
    /// would drift, so rows would be misnumbered.
    mixed_on: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: closes it, or escapes a second quote.
    QuoteInQuoted,
}

impl QuoteScan {
    /// `line`: the line the next byte is on.
    fn new(delimiter: u8, line: u64) -> Self {
        Self {
            delimiter,
            state: QuoteState::FieldStart,
            line,
            opened_on: 0,
            after_cr: false,
            bare_cr_on: None,
            crlf: None,
            mixed_on: None,
        }
    }

    /// Follows `bytes` in one pass: `memchr` jumps to the next byte that can change anything
    /// (`"`, `\r`, `\n`; inside quotes only `"` and `\n`), and the run before it is taken whole.
    /// The same answers as [`QuoteScan::step`] on every byte, whatever the chunk boundaries.
    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        loop {
            let next = if self.state == QuoteState::Quoted {
                memchr::memchr2(b'"', b'\n', rest)
            } else {
                memchr::memchr3(b'"', b'\r', b'\n', rest)
            };
            let run = next.unwrap_or(rest.len());
            if run > 0 {
                self.skip(&rest[..run]);
            }
            match next {
                Some(at) => {
                    self.step(rest[at]);
                    rest = &rest[at + 1..];
                }
                None => return,
            }
        }
    }

    /// A run of bytes none of which is `"` or `\n` (nor `\r` outside quotes): inside quotes it
    /// changes nothing; outside, a `\r` before it ended a row alone, and its last byte decides
    /// whether the next one starts a field.
    fn skip(&mut self, run: &[u8]) {
        if self.state == QuoteState::Quoted {
            return;
        }
        if self.after_cr && self.bare_cr_on.is_none() {
            self.bare_cr_on = Some(self.line);
        }
        self.after_cr = false;
        self.state = if run.last() == Some(&self.delimiter) {
            QuoteState::FieldStart
        } else {
            QuoteState::Unquoted
        };
    }

    /// One byte, the way the CSV parser takes it.
    fn step(&mut self, b: u8) {
        use QuoteState::*;
        if self.after_cr && b != b'\n' && self.bare_cr_on.is_none() {
            self.bare_cr_on = Some(self.line);
        }
        if b == b'\n' && self.state != Quoted {
            match self.crlf {
                None => self.crlf = Some(self.after_cr),
                Some(c) if c != self.after_cr && self.mixed_on.is_none() => {
                    self.mixed_on = Some(self.line)
                }
                _ => {}
            }
        }
        self.after_cr = b == b'\r' && self.state != Quoted;
        let ends_field = b == self.delimiter || b == b'\n' || b == b'\r';
        self.state = match (self.state, b) {
            (FieldStart, b'"') => {
                self.opened_on = self.line;
                Quoted
            }
            (FieldStart | Unquoted, _) if ends_field => FieldStart,
            (FieldStart | Unquoted, _) => Unquoted,
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (QuoteInQuoted, b'"') => Quoted,
            (QuoteInQuoted, _) if ends_field => FieldStart,
            (QuoteInQuoted, _) => Unquoted,
        };
        if b == b'\n' {
            self.line += 1;
        }
    }

    /// The refusal for a row ended by a `\r` alone, if the bytes so far hold one.
    fn bare_cr(&self) -> Option<FileRejection> {
        if let Some(line) = self.mixed_on {
            return Some(FileRejection::new(
                RejectionKind::Unreadable,
                format!(
                    "line {line} ends differently from the first line (mixed \\r\\n and \\n line endings), \
                     so rows could not be numbered exactly; save the file again as \"CSV UTF-8\". Nothing in \
                     the file was applied"
                ),
            ));
        }
        self.bare_cr_on.map(|line| {
            FileRejection::new(
                RejectionKind::Unreadable,
                format!(
                    "line {line} holds a carriage return alone outside quotes, which would split the row \
                     without a new line number; remove it or quote the value. Nothing in the file was applied"
                ),
            )
        })
    }

    /// The line where a still-open quoted field started.
    fn unclosed(&self) -> Option<u64> {
        (self.state == QuoteState::Quoted).then_some(self.opened_on)
    }
}

fn signature(start: &[u8]) -> Option<&'static str> {
    let sigs: [(&[u8], &str); 7] = [
        (b"\xFF\xFE", "UTF-16 text; save it as \"CSV UTF-8\""),
        (b"\xFE\xFF", "UTF-16 text; save it as \"CSV UTF-8\""),
        (
            b"PK\x03\x04",
            "a ZIP archive or an Excel workbook (.xlsx); export the sheet as \"CSV UTF-8\"",
        ),
        (
            b"\xD0\xCF\x11\xE0",
            "an Excel 97-2003 workbook (.xls); export the sheet as \"CSV UTF-8\"",
        ),
        (b"%PDF", "a PDF document, not a CSV file"),
        (b"\x1F\x8B", "a gzip archive; upload the uncompressed CSV"),
        (b"\x89PNG", "a PNG image, not a CSV file"),
    ];
    sigs.iter()
        .find(|(s, _)| start.starts_with(s))
        .map(|(_, what)| *what)
}

impl<R: Read> Read for Utf8Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let p = self.pending_len;
        if buf.len() < 8 {
            return Err(io::Error::other("read buffer too small"));
        }
        buf[..p].copy_from_slice(&self.pending[..p]);
        let mut total = p;
        loop {
            let n = match self.inner.read(&mut buf[total..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                if total > 0 {
                    return Err(Self::fail(FileRejection::new(
                        RejectionKind::NotUtf8,
                        format!(
                            "the file is not UTF-8 text: it ends inside a character (byte offset {})",
                            self.offset
                        ),
                    )));
                }
                if let Some(line) = self.quotes.as_ref().and_then(QuoteScan::unclosed) {
                    return Err(Self::fail(FileRejection::new(
                        RejectionKind::UnclosedQuote,
                        format!(
                            "line {line} opens a quoted field (\") that is never closed, so every row after it \
                             would be read as part of that one value; close the quote (a quote inside a value is \
                             written twice: \"\"). Nothing in the file was applied"
                        ),
                    )));
                }
                return Ok(0);
            }
            let fresh = &buf[total..total + n];
            if self.offset == 0 && total == 0 {
                if let Some(what) = signature(fresh) {
                    return Err(Self::fail(FileRejection::new(
                        RejectionKind::Binary,
                        format!("the file is {what}"),
                    )));
                }
            }
            let nul = memchr::memchr(0, fresh).map(|i| total + i);
            total += n;
            let utf8 = std::str::from_utf8(&buf[..total]);
            // The first bad byte decides, whatever the chunk boundaries (a NUL after an
            // invalid byte is not the first problem).
            let invalid = match &utf8 {
                Err(e) if e.error_len().is_some() => Some(e.valid_up_to()),
                _ => None,
            };
            if let Some(at) = nul.filter(|at| invalid.is_none_or(|b| *at < b)) {
                return Err(Self::fail(FileRejection::new(
                    RejectionKind::Binary,
                    format!(
                        "the file is binary, not CSV text (a NUL byte at byte offset {})",
                        self.offset + at as u64
                    ),
                )));
            }
            match utf8 {
                Ok(_) => {
                    self.pending_len = 0;
                    self.offset += total as u64;
                    let n = self.hand_out(buf, total);
                    return match self.quotes.as_ref().and_then(QuoteScan::bare_cr) {
                        Some(r) => Err(Self::fail(r)),
                        None => Ok(n),
                    };
                }
                Err(e) if e.error_len().is_some() => {
                    let at = e.valid_up_to();
                    return Err(Self::fail(FileRejection::new(
                        RejectionKind::NotUtf8,
                        format!(
                            "the file is not UTF-8 text (byte 0x{:02X} at byte offset {}); it is probably \
                             in a legacy encoding such as Windows-1252: save it as \"CSV UTF-8\"",
                            buf[at],
                            self.offset + at as u64
                        ),
                    )));
                }
                Err(e) => {
                    // The chunk ends inside a character: hand over the complete part.
                    let valid = e.valid_up_to();
                    let tail = total - valid;
                    if valid == 0 && total < buf.len() {
                        continue;
                    }
                    self.pending[..tail].copy_from_slice(&buf[valid..total]);
                    self.pending_len = tail;
                    self.offset += valid as u64;
                    let n = self.hand_out(buf, valid);
                    return match self.quotes.as_ref().and_then(QuoteScan::bare_cr) {
                        Some(r) => Err(Self::fail(r)),
                        None => Ok(n),
                    };
                }
            }
        }
    }
}

/// One column a schema knows.
struct Column {
    name: &'static str,
    required: bool,
}

const fn col(name: &'static str, required: bool) -> Column {
    Column { name, required }
}

const CATALOG: [Column; 7] = [
    col("sku", true),
    col("asin", true),
    col("title", false),
    col("product_type", false),
    col("enabled", false),
    col("safety_stock", false),
    col("max_quantity", false),
];
const PRICES: [Column; 7] = [
    col("sku", true),
    col("price", true),
    col("currency", true),
    col("marketplace_id", false),
    col("minimum_price", false),
    col("maximum_price", false),
    col("force", false),
];
const INVENTORY: [Column; 4] = [
    col("sku", true),
    col("hub", true),
    col("on_hand", true),
    col("as_of", false),
];
// Column positions in the arrays above.
const SKU: usize = 0;
const C_ASIN: usize = 1;
const C_TITLE: usize = 2;
const C_PRODUCT_TYPE: usize = 3;
const C_ENABLED: usize = 4;
const C_SAFETY_STOCK: usize = 5;
const C_MAX_QUANTITY: usize = 6;
const P_PRICE: usize = 1;
const P_CURRENCY: usize = 2;
const P_MARKETPLACE: usize = 3;
const P_MIN: usize = 4;
const P_MAX: usize = 5;
const P_FORCE: usize = 6;
const I_HUB: usize = 1;
const I_ON_HAND: usize = 2;
const I_AS_OF: usize = 3;

fn schema(kind: Kind) -> &'static [Column] {
    match kind {
        Kind::Catalog => &CATALOG,
        Kind::Prices => &PRICES,
        Kind::Inventory => &INVENTORY,
    }
}

/// A valid catalog row, borrowing the reader's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRow<'a> {
    pub sku: &'a str,
    pub asin: Asin,
    pub title: Option<&'a str>,
    pub product_type: Option<&'a str>,
    pub enabled: Option<bool>,
    pub safety_stock: Option<u32>,
    pub max_quantity: Option<u32>,
}

/// A valid price row (range already checked unless `force`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow<'a> {
    pub sku: &'a str,
    pub price: Cents,
    pub currency: [u8; 3],
    pub marketplace_id: Option<&'a str>,
    pub minimum_price: Option<Cents>,
    pub maximum_price: Option<Cents>,
    pub force: bool,
}

impl PriceRow<'_> {
    pub fn currency_str(&self) -> &str {
        std::str::from_utf8(&self.currency).unwrap_or("")
    }
}

/// A valid inventory row: what is on hand of a SKU at a hub, as of when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow<'a> {
    pub sku: &'a str,
    pub hub: &'a str,
    pub on_hand: u32,
    /// When the figure was counted; absent: the file's own time (its S3 notification).
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug)]
pub enum Outcome<'a> {
    Catalog(CatalogRow<'a>),
    Price(PriceRow<'a>),
    Inventory(InventoryRow<'a>),
    /// Every reason this row was skipped (at least one).
    Rejected(&'a [RowError]),
}

#[derive(Debug)]
pub struct Parsed<'a> {
    /// Line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// Byte offset in the file where the row starts.
    pub byte: u64,
    pub outcome: Outcome<'a>,
}

pub struct UploadReader<R: Read> {
    csv: csv::Reader<io::Chain<Cursor<Vec<u8>>, Utf8Guard<R>>>,
    record: csv::ByteRecord,
    kind: Kind,
    /// Field index of each schema column in this file.
    cols: [Option<usize>; 7],
    header_len: usize,
    extra_columns: Vec<String>,
    dialect: Dialect,
    /// csv counts a CRLF's `\n` into the next record's start; this corrects lines and offsets.
    crlf: u64,
    seen: SkuSet,
    /// The row after `record`, read one ahead so its SKU slot is already being fetched.
    ahead: csv::ByteRecord,
    ahead_state: Ahead,
    errors: Vec<RowError>,
    rows_read: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ahead {
    Unread,
    /// A row is waiting in `ahead`; its key hash.
    Row(u64),
    End,
}

/// Where the header line starts and ends in `buf`, once a whole line (outside quotes) is there.
fn header_span(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut quoted = false;
    for (i, &b) in buf[start..].iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return Some((start, start + i)),
            _ => {}
        }
    }
    None
}

/// Whether the header line (the text up to its first `\n` outside quotes) holds a `\r` that
/// ends a line on its own, i.e. one followed by more text rather than by `\n`.
fn bare_cr(buf: &[u8]) -> bool {
    let mut quoted = false;
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return false,
            b'\r' if !quoted => {
                if let Some(&next) = buf.get(i + 1) {
                    if next != b'\n' {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The delimiter is whichever of `,` `;` tab occurs most in the header line (outside quotes).
fn detect_delimiter(header: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in header {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

/// Header names match case-insensitively; spaces and dashes count as `_` ("Product Type").
fn normalise_header(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw.trim_ascii())
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

impl<R: Read> UploadReader<R> {
    /// Reads the header and decides the dialect; the rows stay in the stream.
    pub fn open(kind: Kind, input: R) -> Result<Self, FileRejection> {
        let mut guard = Utf8Guard::new(input);
        let mut prefix = Vec::with_capacity(CSV_BUFFER);
        let mut chunk = vec![0u8; CSV_BUFFER];
        while header_span(prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&prefix)).is_none() {
            let n = guard.read(&mut chunk).map_err(FileRejection::from_io)?;
            if n == 0 {
                break;
            }
            prefix.extend_from_slice(&chunk[..n]);
            if prefix.len() > MAX_HEADER_BYTES {
                return Err(FileRejection::new(
                    RejectionKind::Header,
                    "the first line is longer than 1 MiB; the file does not look like a CSV with a header",
                ));
            }
        }
        drop(chunk);
        let bom = prefix.starts_with(b"\xEF\xBB\xBF");
        if bom {
            prefix.drain(..3);
        }
        if prefix.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(FileRejection::new(
                RejectionKind::Empty,
                "the file is empty",
            ));
        }
        let (start, end) = header_span(&prefix).unwrap_or((0, prefix.len()));
        if bare_cr(&prefix[start..]) {
            return Err(FileRejection::new(
                RejectionKind::Header,
                "the first line ends with a carriage return alone (classic Mac line endings), so rows \
                 could not be told apart by line; save the file as \"CSV UTF-8\" (Windows or Unix line endings)",
            ));
        }
        let delimiter = detect_delimiter(&prefix[start..end]);
        let crlf = (end > start && prefix[end - 1] == b'\r') as u64;
        let dialect = Dialect { delimiter, bom };
        // The bytes read so far are what the parser will see first; the guard scans the rest.
        let mut quotes = QuoteScan::new(delimiter, 1);
        quotes.feed(&prefix);
        if let Some(r) = quotes.bare_cr() {
            return Err(r);
        }
        guard.quotes = Some(quotes);

        let mut csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(Cursor::new(prefix).chain(guard));
        let mut record = csv::ByteRecord::new();
        if !csv.read_byte_record(&mut record).map_err(csv_rejection)? {
            return Err(FileRejection::new(
                RejectionKind::Empty,
                "the file is empty",
            ));
        }

        let columns = schema(kind);
        let mut cols = [None; 7];
        let mut names: Vec<String> = Vec::with_capacity(record.len());
        let mut extra_columns = Vec::new();
        let mut duplicates = Vec::new();
        for (i, raw) in record.iter().enumerate() {
            let name = normalise_header(raw);
            if name.is_empty() {
                continue;
            }
            if names.contains(&name) {
                if !duplicates.contains(&name) {
                    duplicates.push(name.clone());
                }
                continue;
            }
            match columns.iter().position(|c| c.name == name) {
                Some(c) => cols[c] = Some(i),
                None => extra_columns.push(String::from_utf8_lossy(raw.trim_ascii()).into_owned()),
            }
            names.push(name);
        }
        if !duplicates.is_empty() {
            return Err(FileRejection::new(
                RejectionKind::DuplicateColumns,
                format!(
                    "the header names these columns more than once: {}",
                    duplicates.join(", ")
                ),
            ));
        }
        let missing: Vec<&str> = columns
            .iter()
            .zip(cols)
            .filter(|(c, at)| c.required && at.is_none())
            .map(|(c, _)| c.name)
            .collect();
        if !missing.is_empty() {
            let required: Vec<&str> = columns
                .iter()
                .filter(|c| c.required)
                .map(|c| c.name)
                .collect();
            let optional: Vec<&str> = columns
                .iter()
                .filter(|c| !c.required)
                .map(|c| c.name)
                .collect();
            return Err(FileRejection::new(
                RejectionKind::MissingColumns,
                format!(
                    "missing required column{} {} (the first line must name the columns; required: {}; optional: {}; \
                     found: {})",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    required.join(", "),
                    optional.join(", "),
                    if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
                ),
            ));
        }
        Ok(Self {
            csv,
            header_len: record.len(),
            record,
            kind,
            cols,
            extra_columns,
            dialect,
            crlf,
            seen: SkuSet::default(),
            ahead: csv::ByteRecord::new(),
            ahead_state: Ahead::Unread,
            errors: Vec::new(),
            rows_read: 0,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Header names we do not use (reported, not an error).
    pub fn extra_columns(&self) -> &[String] {
        &self.extra_columns
    }

    /// Data rows read so far (blank lines not counted).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Every SKU that appeared in the file so far, accepted or not.
    pub fn skus(&self) -> &SkuSet {
        &self.seen
    }

    pub fn into_skus(self) -> SkuSet {
        self.seen
    }

    /// Reads the next non-blank record into `ahead` and starts fetching its SKU's slot.
    fn read_ahead(&mut self) -> Result<Ahead, FileRejection> {
        loop {
            if !self
                .csv
                .read_byte_record(&mut self.ahead)
                .map_err(csv_rejection)?
            {
                return Ok(Ahead::End);
            }
            // Spreadsheets export empty rows as ",,,"; they are not data.
            if !self.ahead.as_slice().iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        let field = |c: usize| {
            self.cols[c]
                .and_then(|i| self.ahead.get(i))
                .unwrap_or(b"")
                .trim_ascii()
        };
        let h = match self.kind {
            Kind::Catalog => SkuSet::hash(field(SKU)),
            Kind::Prices => SkuSet::hash_pair(field(SKU), field(P_MARKETPLACE)),
            Kind::Inventory => SkuSet::hash_pair(field(SKU), field(I_HUB)),
        };
        self.seen.prefetch(h);
        Ok(Ahead::Row(h))
    }

    /// The next data row, validated; `Ok(None)` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Parsed<'_>>, FileRejection> {
        if self.ahead_state == Ahead::Unread {
            self.ahead_state = self.read_ahead()?;
        }
        let Ahead::Row(key) = self.ahead_state else {
            return Ok(None);
        };
        std::mem::swap(&mut self.record, &mut self.ahead);
        self.ahead_state = self.read_ahead()?;
        self.rows_read += 1;
        let (line, byte) = self
            .record
            .position()
            .map_or((0, 0), |p| (p.line() + self.crlf, p.byte() + self.crlf));
        self.errors.clear();
        if self.record.len() > self.header_len {
            let extra = &self.record.as_slice()
                [self.record.range(self.header_len).map_or(0, |r| r.start)..];
            if !extra.iter().all(u8::is_ascii_whitespace) {
                self.errors.push(RowError {
                    line,
                    column: String::new(),
                    value: String::from_utf8_lossy(extra).into_owned(),
                    reason: format!(
                        "the row has {} fields but the header has {}; a value probably contains an unquoted delimiter",
                        self.record.len(),
                        self.header_len
                    ),
                });
            }
        }
        let outcome = match self.kind {
            Kind::Catalog => self.catalog_row(line, key),
            Kind::Prices => self.price_row(line, key),
            Kind::Inventory => self.inventory_row(line, key),
        };
        Ok(Some(Parsed {
            line,
            byte,
            outcome,
        }))
    }

    fn catalog_row(&mut self, line: u64, key: u64) -> Outcome<'_> {
        let rec = &self.record;
        let cols = &self.cols;
        let errors = &mut self.errors;
        let field = |c: usize| cols[c].and_then(|i| rec.get(i)).unwrap_or(b"");
        macro_rules! check {
            ($c:expr, $r:expr $(,)?) => {
                keep(errors, line, CATALOG[$c].name, field($c), $r)
            };
        }
        let sku = check!(SKU, validate::sku(field(SKU)));
        let asin = check!(C_ASIN, validate::asin(field(C_ASIN)));
        let title = check!(
            C_TITLE,
            validate::text(field(C_TITLE), "title", validate::TITLE_MAX_CHARS)
        );
        let product_type = check!(
            C_PRODUCT_TYPE,
            validate::product_type(field(C_PRODUCT_TYPE))
        );
        let enabled = check!(C_ENABLED, validate::flag(field(C_ENABLED)));
        let safety_stock = check!(C_SAFETY_STOCK, validate::quantity(field(C_SAFETY_STOCK)));
        let max_quantity = check!(C_MAX_QUANTITY, validate::quantity(field(C_MAX_QUANTITY)));
        if let Some(sku) = sku {
            let ok = self.errors.is_empty();
            if let (Seen::AcceptedOn(first), true) = (self.seen.note_hash(key, line, ok), ok) {
                self.errors.push(row_error(
                    line,
                    "sku",
                    sku.as_bytes(),
                    format!("duplicate SKU in this file: line {first} already has it"),
                ));
            }
        }
        if !self.errors.is_empty() {
            return Outcome::Rejected(&self.errors);
        }
        match (
            sku,
            asin,
            title,
            product_type,
            enabled,
            safety_stock,
            max_quantity,
        ) {
            (
                Some(sku),
                Some(asin),
                Some(title),
                Some(product_type),
                Some(enabled),
                Some(safety_stock),
                Some(max_quantity),
            ) => Outcome::Catalog(CatalogRow {
                sku,
                asin,
                title,
                product_type,
                enabled,
                safety_stock,
                max_quantity,
            }),
            _ => Outcome::Rejected(&self.errors),
        }
    }

    fn price_row(&mut self, line: u64, key: u64) -> Outcome<'_> {
        let rec = &self.record;
        let cols = &self.cols;
        let errors = &mut self.errors;
        let comma_decimal = self.dialect.delimiter == b';';
        let field = |c: usize| cols[c].and_then(|i| rec.get(i)).unwrap_or(b"");
        macro_rules! check {
            ($c:expr, $r:expr $(,)?) => {
                keep(errors, line, PRICES[$c].name, field($c), $r)
            };
        }
        let sku = check!(SKU, validate::sku(field(SKU)));
        let price = check!(
            P_PRICE,
            match validate::amount(field(P_PRICE), comma_decimal) {
                Ok(None) => Err("price is empty".to_string()),
                Ok(Some(Cents(0))) => Err("price must be greater than 0".to_string()),
                Ok(Some(p)) => Ok(p),
                Err(e) => Err(e),
            },
        );
        let currency = check!(P_CURRENCY, validate::currency(field(P_CURRENCY)));
        let marketplace_id = check!(
            P_MARKETPLACE,
            validate::marketplace_id(field(P_MARKETPLACE))
        );
        let minimum_price = check!(P_MIN, validate::amount(field(P_MIN), comma_decimal));
        let maximum_price = check!(P_MAX, validate::amount(field(P_MAX), comma_decimal));
        let force = check!(P_FORCE, validate::flag(field(P_FORCE)));
        if let (Some(Some(lo)), Some(Some(hi))) = (minimum_price, maximum_price) {
            if lo > hi {
                check!(
                    P_MIN,
                    Err::<(), _>(format!("minimum_price {lo} is above maximum_price {hi}")),
                );
            }
        }
        if let (Some(p), Some(force), Some(lo), Some(hi)) =
            (price, force, minimum_price, maximum_price)
        {
            let range_ok = !matches!((lo, hi), (Some(lo), Some(hi)) if lo > hi);
            if force != Some(true) && range_ok {
                if let Some(lo) = lo.filter(|lo| p < *lo) {
                    check!(
                        P_PRICE,
                        Err::<(), _>(format!(
                            "price {p} is below minimum_price {lo}; set force to true to send it anyway"
                        )),
                    );
                } else if let Some(hi) = hi.filter(|hi| p > *hi) {
                    check!(
                        P_PRICE,
                        Err::<(), _>(format!(
                            "price {p} is above maximum_price {hi}; set force to true to send it anyway"
                        )),
                    );
                }
            }
        }
        if let Some(sku) = sku {
            // One price per SKU and marketplace in a file (`key` hashes both).
            let ok = self.errors.is_empty();
            if let (Seen::AcceptedOn(first), true) = (self.seen.note_hash(key, line, ok), ok) {
                self.errors.push(row_error(
                    line,
                    "sku",
                    sku.as_bytes(),
                    format!("duplicate SKU in this file: line {first} already prices it for this marketplace"),
                ));
            }
        }
        if !self.errors.is_empty() {
            return Outcome::Rejected(&self.errors);
        }
        match (
            sku,
            price,
            currency,
            marketplace_id,
            minimum_price,
            maximum_price,
            force,
        ) {
            (
                Some(sku),
                Some(price),
                Some(currency),
                Some(marketplace_id),
                Some(minimum_price),
                Some(maximum_price),
                Some(force),
            ) => Outcome::Price(PriceRow {
                sku,
                price,
                currency,
                marketplace_id,
                minimum_price,
                maximum_price,
                force: force.unwrap_or(false),
            }),
            _ => Outcome::Rejected(&self.errors),
        }
    }
}

impl<R: Read> UploadReader<R> {
    fn inventory_row(&mut self, line: u64, key: u64) -> Outcome<'_> {
        let rec = &self.record;
        let cols = &self.cols;
        let errors = &mut self.errors;
        let field = |c: usize| cols[c].and_then(|i| rec.get(i)).unwrap_or(b"");
        macro_rules! check {
            ($c:expr, $r:expr $(,)?) => {
                keep(errors, line, INVENTORY[$c].name, field($c), $r)
            };
        }
        let sku = check!(SKU, validate::sku(field(SKU)));
        let hub = check!(
            I_HUB,
            match validate::text(field(I_HUB), "hub", 100) {
                Ok(Some(h)) => Ok(h),
                Ok(None) => Err("hub is empty".to_string()),
                Err(e) => Err(e),
            }
        );
        let on_hand = check!(
            I_ON_HAND,
            match validate::quantity(field(I_ON_HAND)) {
                Ok(Some(n)) => Ok(n),
                Ok(None) => Err("on_hand is empty (write 0 for none)".to_string()),
                Err(e) => Err(e),
            }
        );
        let as_of = check!(I_AS_OF, validate::timestamp(field(I_AS_OF)));
        if let (Some(sku), Some(_)) = (sku, hub) {
            let ok = self.errors.is_empty();
            if let (Seen::AcceptedOn(first), true) = (self.seen.note_hash(key, line, ok), ok) {
                self.errors.push(row_error(
                    line,
                    "sku",
                    sku.as_bytes(),
                    format!("duplicate SKU in this file: line {first} already has it for this hub"),
                ));
            }
        }
        if !self.errors.is_empty() {
            return Outcome::Rejected(&self.errors);
        }
        match (sku, hub, on_hand, as_of) {
            (Some(sku), Some(hub), Some(on_hand), Some(as_of)) => {
                Outcome::Inventory(InventoryRow {
                    sku,
                    hub,
                    on_hand,
                    as_of,
                })
            }
            _ => Outcome::Rejected(&self.errors),
        }
    }
}

#[inline]
fn keep<T>(
    errors: &mut Vec<RowError>,
    line: u64,
    column: &str,
    value: &[u8],
    r: Result<T, String>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(reason) => {
            errors.push(row_error(line, column, value, reason));
            None
        }
    }
}

fn row_error(line: u64, column: &str, value: &[u8], reason: String) -> RowError {
    RowError {
        line,
        column: column.to_string(),
        value: String::from_utf8_lossy(value).into_owned(),
        reason,
    }
}

fn csv_rejection(e: csv::Error) -> FileRejection {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => FileRejection::from_io(io),
        other => FileRejection::new(
            RejectionKind::Unreadable,
            format!("could not read the file: {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests;
