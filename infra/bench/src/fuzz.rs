//! Property-based fuzz targets for every input flexbridge reads from outside: the upload CSV
//! readers, the warehouse API's signature check and request handling, the notification envelope,
//! and SP-API response bodies. Each target states what must hold for ANY input (no panic, a clear
//! error, nothing written on a refusal, the same answer however the bytes arrive) and runs under
//! proptest: `tests/fuzz.rs` runs each for `PROPTEST_CASES` cases in CI, `bin/fuzz.rs` for a
//! fixed time with a seed. A failing input found either way becomes a regression test in
//! `tests/fuzz.rs`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flexbridge::spapi::{
    ErrorList, Notification, NotificationError, ReturnsPage, Shipment, ShipmentsPage,
};
use flexbridge::upload::{Kind, Outcome, UploadReader};
use flexbridge::warehouse::signing::{self, SignatureError, Signed};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{json, Value};

/// One fuzz target: a name and a function that runs it on a runner (its config and RNG decide
/// how many cases and which).
pub struct Target {
    pub name: &'static str,
    pub run: fn(&mut TestRunner) -> Result<(), String>,
}

/// Every target, in the order the fuzz command runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "csv_catalog",
        run: csv_catalog,
    },
    Target {
        name: "csv_prices",
        run: csv_prices,
    },
    Target {
        name: "csv_inventory",
        run: csv_inventory,
    },
    Target {
        name: "warehouse_signature",
        run: warehouse_signature,
    },
    Target {
        name: "warehouse_request",
        run: warehouse_request,
    },
    Target {
        name: "notification_envelope",
        run: notification_envelope,
    },
    Target {
        name: "spapi_shipments",
        run: spapi_shipments,
    },
    Target {
        name: "spapi_returns_errors",
        run: spapi_returns_errors,
    },
];

fn report<T: std::fmt::Debug>(
    r: Result<(), proptest::test_runner::TestError<T>>,
) -> Result<(), String> {
    r.map_err(|e| format!("{e}"))
}

// ---------------------------------------------------------------- CSV readers

/// A reader that hands out at most `n` bytes a call (splits characters, quotes and rows).
struct Dribble<'a>(&'a [u8], usize);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(self.0.len()).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Most rows the oracle reads from one input (inputs are small; this only bounds a bug).
const MAX_ROWS: usize = 10_000;

/// Everything the reader says about a file, as comparable text; checks the per-row rules on
/// the way.
pub fn read_upload(kind: Kind, input: impl Read, len: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut reader = match UploadReader::open(kind, input) {
        Ok(r) => r,
        Err(e) => {
            if e.message.trim().is_empty() {
                return Err(format!("refusal without a message: {e:?}"));
            }
            out.push(format!("refused {:?}: {}", e.kind, e.message));
            return Ok(out);
        }
    };
    out.push(format!(
        "dialect {:?} extra {:?}",
        reader.dialect(),
        reader.extra_columns()
    ));
    let mut last_line = 1;
    loop {
        match reader.next_row() {
            Ok(None) => break,
            Ok(Some(p)) => {
                if p.line <= last_line && p.line != 0 {
                    return Err(format!(
                        "row at line {} after line {last_line}: lines must increase past the header",
                        p.line
                    ));
                }
                if p.byte as usize > len {
                    return Err(format!("row starts at byte {} of {len}", p.byte));
                }
                last_line = p.line.max(last_line);
                let text = match &p.outcome {
                    Outcome::Rejected(errors) => {
                        if errors.is_empty() {
                            return Err(format!("line {}: rejected without a reason", p.line));
                        }
                        if let Some(e) = errors.iter().find(|e| e.reason.trim().is_empty()) {
                            return Err(format!("line {}: empty reason {e:?}", p.line));
                        }
                        format!("{}: rejected {errors:?}", p.line)
                    }
                    Outcome::Catalog(row) => {
                        if row.sku.trim().is_empty() {
                            return Err(format!("line {}: accepted an empty SKU", p.line));
                        }
                        format!("{}: {row:?}", p.line)
                    }
                    Outcome::Price(row) => {
                        if row.sku.trim().is_empty() {
                            return Err(format!("line {}: accepted an empty SKU", p.line));
                        }
                        format!("{}: {row:?}", p.line)
                    }
                    Outcome::Inventory(row) => {
                        if row.sku.trim().is_empty() || row.hub.trim().is_empty() {
                            return Err(format!("line {}: accepted an empty SKU or hub", p.line));
                        }
                        format!("{}: {row:?}", p.line)
                    }
                };
                out.push(text);
                if out.len() > MAX_ROWS {
                    return Err("more rows than the input can hold".into());
                }
            }
            Err(e) => {
                if e.message.trim().is_empty() {
                    return Err(format!("refusal without a message: {e:?}"));
                }
                out.push(format!("refused {:?}: {}", e.kind, e.message));
                break;
            }
        }
    }
    out.push(format!("rows_read {}", reader.rows_read()));
    Ok(out)
}

fn cell() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[A-Za-z0-9_.-]{0,12}".prop_map(String::into_bytes),
        "B0[A-Z0-9]{8}".prop_map(String::into_bytes),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        "-?[0-9]{1,24}([.,][0-9]{0,4})?".prop_map(String::into_bytes),
        prop::sample::select(vec![
            "",
            " ",
            "true",
            "false",
            "yes",
            "0",
            "EUR",
            "usd",
            "2026-12-01T08:00:00Z",
            "2026-12-01T08:00:00.123+01:00",
            "2026-13-01T08:00:00Z",
            "2026-12-01 08:00",
            "HUB-1",
            "\"",
            "\"\"",
            "x\"y",
            "\"a,b\"",
            "\"multi\nline\"",
            "\"a\"\"b\"",
            "\r",
            "\u{feff}",
            "é",
            "\u{0}",
            "NaN",
            "1e9",
            "\u{202e}",
            "😀",
            "  SKU ",
            "\t",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..6),
    ]
}

fn header(kind: Kind) -> impl Strategy<Value = Vec<String>> {
    let known: Vec<&'static str> = match kind {
        Kind::Catalog => vec![
            "sku",
            "asin",
            "title",
            "product_type",
            "enabled",
            "safety_stock",
            "max_quantity",
        ],
        Kind::Prices => vec![
            "sku",
            "price",
            "currency",
            "marketplace_id",
            "minimum_price",
            "maximum_price",
            "force",
        ],
        Kind::Inventory => vec!["hub", "sku", "on_hand", "as_of"],
    };
    let n = known.len();
    (
        Just(known).prop_shuffle(),
        1..=n,
        prop::collection::vec(
            prop_oneof![
                "[a-z_ -]{1,10}",
                Just("SKU".to_string()),
                Just(" Sku ".to_string())
            ],
            0..3,
        ),
    )
        .prop_map(|(cols, keep, extra)| {
            let mut h: Vec<String> = cols[..keep].iter().map(|s| s.to_string()).collect();
            h.extend(extra);
            h
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Delete(usize),
    Flip(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Flip(i, b) if len > 0 => bytes[i % len] ^= b | 1,
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// A CSV upload of `kind`: mostly well-formed (a header in any order, any delimiter, line end
/// and BOM, odd cells), then a few byte mutations; sometimes plain random bytes.
pub fn csv_file(kind: Kind) -> impl Strategy<Value = Vec<u8>> {
    let structured = (
        header(kind),
        prop::sample::select(vec![b',', b';', b'\t', b'|']),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(cell(), 0..9), 0..12),
        prop::collection::vec(mutation(), 0..3),
    )
        .prop_map(|(header, delim, eol, bom, rows, mutations)| {
            let mut f = Vec::new();
            if bom {
                f.extend_from_slice(b"\xEF\xBB\xBF");
            }
            f.extend_from_slice(header.join(&(delim as char).to_string()).as_bytes());
            for row in rows {
                f.extend_from_slice(eol.as_bytes());
                for (i, c) in row.iter().enumerate() {
                    if i > 0 {
                        f.push(delim);
                    }
                    f.extend_from_slice(c);
                }
            }
            mutate(f, &mutations)
        });
    prop_oneof![
        8 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// The reader's answer is the same whether the file arrives at once or a few bytes at a time,
/// and every answer is a row, a row rejection with reasons, or a file refusal with a message.
pub fn check_csv(kind: Kind, bytes: &[u8], chunk: usize) -> Result<(), String> {
    // A refusal anywhere refuses the whole file (the ingest validates every row before it
    // writes one), so rows read before it do not count.
    let settle = |out: Vec<String>| match out.iter().find(|l| l.starts_with("refused")) {
        Some(r) => vec![r.clone()],
        None => out,
    };
    let whole = settle(read_upload(kind, bytes, bytes.len())?);
    let dribbled = settle(read_upload(kind, Dribble(bytes, chunk), bytes.len())?);
    // Both refusing is the same answer: a file with two problems (say a bad byte and a bad
    // header) may be refused for either, depending on which one the reader reaches first.
    let refused = |out: &[String]| out.len() == 1 && out[0].starts_with("refused");
    if whole != dribbled && !(refused(&whole) && refused(&dribbled)) {
        return Err(format!(
            "reading {chunk} bytes at a time changes the answer:\n whole: {whole:?}\n dribbled: {dribbled:?}"
        ));
    }
    Ok(())
}

fn csv_target(runner: &mut TestRunner, kind: Kind) -> Result<(), String> {
    report(runner.run(&(csv_file(kind), 1usize..8), |(bytes, chunk)| {
        check_csv(kind, &bytes, chunk).map_err(TestCaseError::fail)
    }))
}

pub fn csv_catalog(runner: &mut TestRunner) -> Result<(), String> {
    csv_target(runner, Kind::Catalog)
}

pub fn csv_prices(runner: &mut TestRunner) -> Result<(), String> {
    csv_target(runner, Kind::Prices)
}

pub fn csv_inventory(runner: &mut TestRunner) -> Result<(), String> {
    csv_target(runner, Kind::Inventory)
}

// ---------------------------------------------------------------- warehouse signature

pub const SECRET: &str = "whsec_fuzz";

/// What a request does, as the warehouse sends it (header-safe text: no line breaks).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub key: Option<String>,
    pub body: Vec<u8>,
}

fn header_text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/v1/inventory",
            "/v1/health",
            "/v1/inventory/halts",
            "/v1/inventory/halts/LOC-BER1/release",
            "/v1/shipments/S1/packed",
            "/v1/%2e%2e/inventory",
            "/v1/inventory/%2e%2e%2f%2e%2e%2fsecrets",
            "/v1/./inventory",
            "/v1//inventory",
            "/v1/inventory?x=1",
            "/v1/inventory?hub=BER1&hub=BER2",
            "/../v1/inventory",
            "/v1/inventory%00",
            "/V1/INVENTORY",
        ])
        .prop_map(str::to_string),
        "/[a-zA-Z0-9%._~/?=&-]{0,40}",
    ]
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "post", "HEAD", "PATCH",
        ]),
        path(),
        prop::option::of(prop_oneof![
            Just("application/json".to_string()),
            Just("Application/JSON; charset=utf-8".to_string()),
            header_text(),
        ]),
        prop::option::of("[!-~]{1,40}"),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, path, content_type, key, body)| Req {
            method: method.to_string(),
            path,
            content_type,
            key,
            body,
        })
}

impl Req {
    pub fn signed(&self) -> Signed<'_> {
        let mut s = Signed::new(&self.method, &self.path, &self.body);
        s.content_type = self.content_type.as_deref();
        s.idempotency_key = self.key.as_deref();
        s
    }
}

/// One change to a signed request that changes what it does.
#[derive(Debug, Clone)]
pub enum Tamper {
    Method(String),
    Path(String),
    ContentType(Option<String>),
    Key(Option<String>),
    Body(Vec<u8>),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"])
            .prop_map(|m| Tamper::Method(m.into())),
        path().prop_map(Tamper::Path),
        prop::option::of(header_text()).prop_map(Tamper::ContentType),
        prop::option::of("[!-~]{1,40}").prop_map(Tamper::Key),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Tamper::Body),
    ]
}

/// Whether two requests do the same thing as far as the signature is meant to tell (method
/// case, content type case and padding, and an absent vs. empty key do not change anything).
fn same_effect(a: &Req, b: &Req) -> bool {
    let ct = |r: &Req| {
        r.content_type
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    a.method.eq_ignore_ascii_case(&b.method)
        && a.path == b.path
        && ct(a) == ct(b)
        && a.key.as_deref().unwrap_or("") == b.key.as_deref().unwrap_or("")
        && a.body == b.body
}

/// A fresh signature verifies; any change to what the request does fails it; any header text
/// is refused with a specific error, never a panic.
pub fn check_signature(
    req: &Req,
    change: &Tamper,
    ts_offset: i64,
    raw_ts: &str,
    raw_sig: &str,
) -> Result<(), String> {
    let now = 1_800_000_000;
    let secret = SECRET.as_bytes();
    let ts = now + ts_offset;
    let sig = signing::sign(secret, ts, &req.signed());
    let ok = signing::verify(
        secret,
        Some(&ts.to_string()),
        Some(&sig),
        &req.signed(),
        now,
        false,
    );
    let in_window = ts_offset.unsigned_abs() <= signing::CLOCK_WINDOW.as_secs();
    match (&ok, in_window) {
        (Ok(v), true) if v.timestamp == ts => {}
        (Err(SignatureError::StaleTimestamp { .. }), false) => {}
        _ => return Err(format!("own signature at offset {ts_offset}: {ok:?}")),
    }
    let mut other = req.clone();
    match change.clone() {
        Tamper::Method(m) => other.method = m,
        Tamper::Path(p) => other.path = p,
        Tamper::ContentType(c) => other.content_type = c,
        Tamper::Key(k) => other.key = k,
        Tamper::Body(b) => other.body = b,
    }
    if in_window {
        let r = signing::verify(
            secret,
            Some(&ts.to_string()),
            Some(&sig),
            &other.signed(),
            now,
            false,
        );
        if same_effect(req, &other) != r.is_ok() {
            return Err(format!(
                "changed request {other:?} (same effect: {}) verified as {r:?}",
                same_effect(req, &other)
            ));
        }
    }
    // Arbitrary header text: a specific refusal, or (only if it is our own signature) success.
    let r = signing::verify(
        secret,
        Some(raw_ts),
        Some(raw_sig),
        &req.signed(),
        now,
        true,
    );
    if let Err(e) = &r {
        if e.code().is_empty() || e.to_string().is_empty() {
            return Err(format!("refusal without a code or message: {e:?}"));
        }
    }
    Ok(())
}

fn raw_timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (1_800_000_000i64 - 400..1_800_000_000 + 400).prop_map(|n| format!(" {n} ")),
        Just(i64::MIN.to_string()),
        Just("99999999999999999999999".to_string()),
        "[ -~]{0,20}",
    ]
}

fn raw_signature() -> impl Strategy<Value = String> {
    prop_oneof![
        "v2=[0-9a-f]{64}",
        "V1=[0-9a-fA-F]{0,70}",
        "[0-9a-f]{64}",
        "v[0-9]=.{0,70}",
        "[ -~]{0,80}",
    ]
}

pub fn warehouse_signature(runner: &mut TestRunner) -> Result<(), String> {
    report(runner.run(
        &(
            request(),
            tamper(),
            prop_oneof![-400i64..400, any::<i64>().prop_map(|n| n / 4)],
            raw_timestamp(),
            raw_signature(),
        ),
        |(req, change, offset, raw_ts, raw_sig)| {
            check_signature(&req, &change, offset, &raw_ts, &raw_sig).map_err(TestCaseError::fail)
        },
    ))
}

// ---------------------------------------------------------------- warehouse requests

/// On-hand store that counts what was stored, to prove a refusal writes nothing.
struct CountingOnHand {
    inner: flexbridge::store::inventory::MemoryOnHandStore,
    stored: AtomicUsize,
}

#[async_trait]
impl flexbridge::store::inventory::OnHandStore for CountingOnHand {
    async fn record_each(
        &self,
        figures: &[flexbridge::store::inventory::OnHand],
    ) -> flexbridge::Result<Vec<bool>> {
        let r = self.inner.record_each(figures).await?;
        self.stored
            .fetch_add(r.iter().filter(|s| **s).count(), Ordering::SeqCst);
        Ok(r)
    }

    async fn on_hand(
        &self,
        hub: &str,
        sku: &str,
    ) -> flexbridge::Result<Option<flexbridge::store::inventory::OnHand>> {
        self.inner.on_hand(hub, sku).await
    }

    async fn hub_stock(&self, hub: &str) -> flexbridge::Result<Vec<(String, i64)>> {
        self.inner.hub_stock(hub).await
    }
}

/// One `POST /v1/inventory` item, well-formed or not.
fn inventory_item() -> impl Strategy<Value = Value> {
    let hub = prop_oneof![
        4 => Just(json!("BER1")),
        1 => Just(json!("NOWHERE")),
        1 => Just(json!(" BER1")),
        1 => Just(json!(1)),
        1 => "[ -~]{0,70}".prop_map(Value::from),
    ];
    let sku = prop_oneof![
        4 => "[A-Z0-9-]{1,12}".prop_map(Value::from),
        1 => "\\PC{0,50}".prop_map(Value::from),
        1 => Just(json!("")),
        1 => Just(json!("A\u{0}B")),
        1 => Just(Value::Null),
    ];
    let on_hand = prop_oneof![
        4 => (0u32..10_000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(4_294_967_296u64)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(-1)),
        1 => Just(json!(1.5)),
        1 => Just(json!(1e300)),
        1 => Just(json!("12")),
    ];
    (hub, sku, on_hand, 0u8..8).prop_map(|(hub, sku, on_hand, shape)| match shape {
        0 => json!({"hub": hub, "sku": sku}),
        1 => json!({"hub": hub, "sku": sku, "onHand": on_hand, "extra": true}),
        2 => json!({"hub": hub, "sku": sku, "on_hand": on_hand}),
        _ => json!({"hub": hub, "sku": sku, "onHand": on_hand}),
    })
}

fn request_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (
            prop::collection::vec(inventory_item(), 0..5),
            prop::option::of(prop_oneof![
                Just(json!("2026-12-01T10:00:00Z")),
                Just(json!("yesterday")),
                Just(json!(12)),
            ]),
        )
            .prop_map(|(items, as_of)| {
                let mut v = json!({ "items": items });
                if let Some(a) = as_of {
                    v["asOf"] = a;
                }
                serde_json::to_vec(&v).expect("json")
            }),
        1 => Just(b"{\"items\": [".to_vec()),
        1 => Just(format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[derive(Debug, Clone)]
pub enum Signing {
    /// Signed correctly, sent now.
    Good,
    /// Signed for other bytes.
    OtherBody,
    /// Signed 10 minutes ago.
    Stale,
    /// No signature header.
    Missing,
    /// Any header text.
    Raw(String),
}

fn signing_mode() -> impl Strategy<Value = Signing> {
    prop_oneof![
        6 => Just(Signing::Good),
        1 => Just(Signing::OtherBody),
        1 => Just(Signing::Stale),
        1 => Just(Signing::Missing),
        1 => raw_signature().prop_map(Signing::Raw),
    ]
}

/// The router with in-memory stores (one hub, BER1) and counters of what it wrote.
pub struct WarehouseFixture {
    pub app: axum::Router,
    on_hand: Arc<CountingOnHand>,
    events: Arc<flexbridge::events::MemoryEventSink>,
}

impl Default for WarehouseFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl WarehouseFixture {
    pub fn new() -> Self {
        const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:warehouse";
        let on_hand = Arc::new(CountingOnHand {
            inner: Default::default(),
            stored: AtomicUsize::new(0),
        });
        let events = Arc::new(flexbridge::events::MemoryEventSink::new());
        let state = warehouse_api::AppState {
            secrets: flexbridge::secrets::SecretCache::from_static(HashMap::from([(
                ARN.to_string(),
                serde_json::json!({ "warehouse_key": SECRET }).to_string(),
            )])),
            secret_arn: ARN.into(),
            idempotency: flexbridge::idempotency::Idempotency::new(
                Arc::new(flexbridge::idempotency::MemoryIdempotencyStore::new()),
                Duration::from_secs(3600),
            ),
            events: events.clone(),
            on_hand: on_hand.clone(),
            stock: Arc::new(flexbridge::inventory::changes::StockChanges::in_memory(
                on_hand.clone(),
                &["BER1"],
            )),
            env: flexbridge::Env::default(),
            accept_v1_signatures: false,
            orders: Default::default(),
            fulfilment: Default::default(),
            report_links: Default::default(),
        };
        Self {
            app: warehouse_api::router(state),
            on_hand,
            events,
        }
    }

    fn written(&self) -> (usize, usize) {
        (
            self.on_hand.stored.load(Ordering::SeqCst),
            self.events.events().len(),
        )
    }
}

/// Sends one request; the status and whether it wrote anything.
pub async fn send(
    f: &WarehouseFixture,
    req: &Req,
    mode: &Signing,
    nonce: i64,
) -> Result<(u16, bool), String> {
    use tower::ServiceExt;
    let now = signing::now_unix() - nonce % 200;
    let mut b = axum::http::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str());
    if let Some(ct) = &req.content_type {
        b = b.header("content-type", ct);
    }
    if let Some(k) = &req.key {
        b = b.header("idempotency-key", k);
    }
    let other = Req {
        body: b"{}".to_vec(),
        ..req.clone()
    };
    let headers = match mode {
        Signing::Good => signing::signed_headers(SECRET.as_bytes(), now, &req.signed()).to_vec(),
        Signing::OtherBody => {
            signing::signed_headers(SECRET.as_bytes(), now, &other.signed()).to_vec()
        }
        Signing::Stale => {
            signing::signed_headers(SECRET.as_bytes(), now - 600, &req.signed()).to_vec()
        }
        Signing::Missing => vec![(signing::TIMESTAMP_HEADER, now.to_string())],
        Signing::Raw(s) => vec![
            (signing::TIMESTAMP_HEADER, now.to_string()),
            (signing::SIGNATURE_HEADER, s.clone()),
        ],
    };
    for (name, value) in headers {
        b = b.header(name, value);
    }
    let Ok(request) = b.body(axum::body::Body::from(req.body.clone())) else {
        // Not a request HTTP can carry (the method or a header is malformed): nothing to send.
        return Ok((0, false));
    };
    let before = f.written();
    let resp = f
        .app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| format!("router failed: {e}"))?;
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .map_err(|e| format!("response body: {e}"))?;
    // A HEAD answer has no body.
    if !(200..300).contains(&status) && req.method != "HEAD" {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("{status} without a JSON error body"))?;
        let code = v["error"]["code"].as_str().unwrap_or("");
        if code.is_empty() {
            return Err(format!("{status} without an error code: {v}"));
        }
    }
    Ok((status, f.written() != before))
}

/// Every request is answered 2xx or a specific 4xx (never 5xx or a panic); an unsigned,
/// badly signed or refused request writes nothing.
pub async fn check_request(
    f: &WarehouseFixture,
    req: &Req,
    mode: &Signing,
    nonce: i64,
) -> Result<(), String> {
    let (status, wrote) = send(f, req, mode, nonce).await?;
    if status == 0 {
        return Ok(());
    }
    if status >= 500 {
        return Err(format!("{status} for {req:?} ({mode:?})"));
    }
    let authentic = matches!(mode, Signing::Good);
    // A path that may hide a traversal (an escape, a `.`/`..` segment) is refused as
    // `400 invalid_path` before the signature is looked at.
    // The path ends where the query begins (`/.?x` has the segment `.`).
    let path = req.path.split('?').next().unwrap_or_default();
    let suspicious_path =
        path.contains('%') || path.split('/').any(|seg| seg == "." || seg == "..");
    if !authentic && status != 401 && !(status == 400 && suspicious_path) {
        return Err(format!("{mode:?} answered {status}, not 401"));
    }
    if wrote && !(200..300).contains(&status) {
        return Err(format!("{status} but something was written"));
    }
    Ok(())
}

pub fn warehouse_request(runner: &mut TestRunner) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let fixture = WarehouseFixture::new();
    let strategy = (
        request(),
        prop_oneof![
            3 => Just("/v1/inventory".to_string()),
            1 => path(),
        ],
        prop_oneof![
            3 => Just(Some("application/json".to_string())),
            1 => prop::option::of(header_text()),
        ],
        request_body(),
        signing_mode(),
        any::<i64>(),
    )
        .prop_map(|(mut req, path, ct, body, mode, nonce)| {
            req.path = path;
            req.content_type = ct;
            req.body = body;
            if req.key.is_none() && nonce % 4 != 0 {
                req.key = Some(format!("k{nonce}"));
            }
            (req, mode, nonce)
        });
    report(runner.run(&strategy, |(req, mode, nonce)| {
        // Paths that need the orders capability have no stack here; skip what would build it.
        if req.path.starts_with("/v1/shipments") || req.path.starts_with("/v1/returns") {
            return Ok(());
        }
        rt.block_on(check_request(&fixture, &req, &mode, nonce))
            .map_err(TestCaseError::fail)
    }))
}

// ---------------------------------------------------------------- notification envelope

/// Any JSON value, up to a small depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn envelope() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        Just(json!("0f1e2d3c")),
        "[a-z0-9-]{0,36}".prop_map(Value::from),
        json_value(),
    ];
    let kind = prop_oneof![
        4 => Just(json!("EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE")),
        1 => Just(json!("ANY_OFFER_CHANGED")),
        1 => json_value(),
    ];
    let shipment = prop_oneof![
        4 => "[A-Za-z0-9]{0,12}".prop_map(Value::from),
        1 => json_value(),
    ];
    let time = prop_oneof![
        Just(json!("2026-12-01T10:00:00.123Z")),
        Just(json!("2026-12-01 10:00:00")),
        Just(json!(1764583200000u64)),
        json_value(),
    ];
    (
        kind,
        shipment,
        id,
        time,
        0u8..6,
        any::<bool>(),
        prop::collection::vec(mutation(), 0..3),
    )
        .prop_map(|(kind, shipment, id, time, shape, pascal, mutations)| {
            let change =
                json!({"shipmentId": shipment, "locationId": "LOC1", "shipmentStatus": "ACCEPTED"});
            let payload = match shape {
                0 => json!({ "externalFulfillmentShipmentNotification": change }),
                1 => json!({ "EXTERNALFULFILLMENTSHIPMENTNOTIFICATION": change }),
                2 => change,
                3 => Value::Null,
                _ => json!({ "externalFulfillmentShipmentNotification": change, "other": 1 }),
            };
            let (t, p, m, n, e) = if pascal {
                (
                    "NotificationType",
                    "Payload",
                    "NotificationMetadata",
                    "NotificationId",
                    "EventTime",
                )
            } else {
                (
                    "notificationType",
                    "payload",
                    "notificationMetadata",
                    "notificationId",
                    "eventTime",
                )
            };
            let mut env = serde_json::Map::new();
            env.insert(t.into(), kind);
            env.insert(p.into(), payload);
            env.insert(e.into(), time.clone());
            env.insert(m.into(), json!({ n: id, "publishTime": time }));
            let text = serde_json::to_vec(&Value::Object(env)).expect("json");
            String::from_utf8_lossy(&mutate(text, &mutations)).into_owned()
        })
}

/// Any body is an envelope or a clear error; a readable one of our type gives the shipment ID
/// it names, or a clear error; nothing panics.
pub fn check_notification(body: &str) -> Result<(), String> {
    let n = match Notification::from_json(body) {
        Ok(n) => n,
        Err(e) => {
            return match e {
                NotificationError::Envelope(m) if !m.is_empty() => Ok(()),
                other => Err(format!("unexpected parse error {other:?}")),
            }
        }
    };
    let _ = n.id();
    match n.shipment_status_change() {
        Ok(c) => {
            if n.notification_type != "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE" {
                return Err(format!("type {} read as ours", n.notification_type));
            }
            let _ = c.shipment_id.len();
        }
        Err(NotificationError::OtherType(t)) if t == n.notification_type => {}
        Err(NotificationError::Payload(m)) if !m.is_empty() => {}
        Err(e) => return Err(format!("unexpected error {e:?}")),
    }
    Ok(())
}

pub fn notification_envelope(runner: &mut TestRunner) -> Result<(), String> {
    report(
        runner.run(&prop_oneof![4 => envelope(), 1 => "\\PC{0,64}"], |body| {
            check_notification(&body).map_err(TestCaseError::fail)
        }),
    )
}

// ---------------------------------------------------------------- SP-API responses

/// A getShipment(s) record in the model's shape (as `orders::model`'s fixture).
pub fn shipment_json(id: &str) -> Value {
    json!({
        "id": id,
        "locationId": "LOC1",
        "marketplaceAttributes": {"marketplaceId": "A1PA6795UKMFR9", "channelName": "FBA", "customAttributes": ["PRIME"]},
        "shipmentInfo": {"shipmentType": "NEW", "numberOfUnits": 3, "priority": "HIGH",
            "buyerOrderId": "028-1", "orderStatesEligibleForRejection": ["ACCEPTED", "CONFIRMED"], "orderPlacedTimestamp": "1604923992000"},
        "shipmentRequirements": {},
        "charges": [{"chargeType": "GIFT", "totalCharge": {"netAmount": {"value": "1.00", "currencyCode": "EUR"}}}],
        "status": "ACCEPTED",
        "lineItems": [{
            "shipmentLineItemId": "1",
            "merchantSku": "SKU-A",
            "numberOfUnits": 3,
            "giftAttributes": {"giftWrapRequirement": "REQUIRED", "giftMessagePresence": "ABSENT"},
            "complianceAttributes": {"serialNumberRequirement": "DISALLOWED", "hazmatLabelsRequirement": "DISALLOWED",
                "countryOfOriginRequirement": "DISALLOWED", "itemValueRequirement": "DISALLOWED"},
            "charges": [{"chargeType": "PRODUCT", "totalCharge": {"netAmount": {"value": "10.00", "currencyCode": "EUR"}}}],
            "cancellations": [{"cancelledQuantity": 1, "cancelledTimestamp": "2026-11-21T09:00:00Z", "cancellationType": "MARKETPLACE_CANCELLED"}]
        }],
        "packages": [{"id": "P1", "dimensions": {"length": {"value": 1, "dimensionUnit": "CM"}}, "weight": {"value": 2, "weightUnit": "KG"}, "status": "CREATED", "packageLineItems": [{"packageLineItem": {"id": "1"}, "quantity": 3}]}],
        "shippingInfo": {"expectedShippingDateTimeInUTC": "2026-11-22T10:00:00Z", "shippingType": "MARKETPLACE"},
        "creationDateTime": "2026-11-21 08:00:00Z",
        "lastUpdatedDateTime": "2026-11-21T08:00:01.500Z"
    })
}

/// Replaces the value at a path chosen by `pick` (walking into objects and arrays) with `with`,
/// or removes it when `with` is `None`.
fn replace_at(v: &mut Value, pick: u64, with: Option<Value>) {
    let descend = !pick.is_multiple_of(3);
    let pick = pick / 3;
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let key = m.keys().nth(pick as usize % m.len()).cloned().expect("key");
            let pick = pick / 7;
            if pick.is_multiple_of(4) {
                match with {
                    Some(w) => {
                        m.insert(key, w);
                    }
                    None => {
                        m.remove(&key);
                    }
                }
            } else {
                replace_at(m.get_mut(&key).expect("key"), pick, with);
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = pick as usize % a.len();
            replace_at(&mut a[i], pick / 5, with);
        }
        _ => {
            if let Some(w) = with {
                *v = w;
            }
        }
    }
}

fn page_body() -> impl Strategy<Value = Vec<u8>> {
    let record = (
        "[A-Z0-9]{1,8}",
        prop::collection::vec((any::<u64>(), prop::option::of(json_value())), 0..4),
    )
        .prop_map(|(id, edits)| {
            let mut s = shipment_json(&id);
            for (pick, with) in edits {
                replace_at(&mut s, pick, with);
            }
            s
        });
    (
        prop::collection::vec(record, 0..4),
        prop::option::of(json_value()),
        prop::collection::vec(mutation(), 0..2),
    )
        .prop_map(|(shipments, token, mutations)| {
            let mut page = json!({ "shipments": shipments });
            if let Some(t) = token {
                page["pagination"] = json!({ "nextToken": t });
            }
            mutate(serde_json::to_vec(&page).expect("json"), &mutations)
        })
}

/// A page is read record by record: every record is a shipment or listed as unreadable (none
/// dropped); every readable shipment converts to our view or fails with a clear error.
pub fn check_shipments_page(body: &[u8]) -> Result<(), String> {
    let page = match ShipmentsPage::from_json(body) {
        Ok(p) => p,
        Err(e) => {
            return if e.to_string().is_empty() {
                Err("empty decode error".into())
            } else {
                Ok(())
            }
        }
    };
    let Ok(raw) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let records = raw
        .get("shipments")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if page.shipments.len() + page.unreadable.len() != records {
        return Err(format!(
            "{records} records in, {} read + {} unreadable out",
            page.shipments.len(),
            page.unreadable.len()
        ));
    }
    for s in &page.shipments {
        if let Err(e) = flexbridge::shipment::AmazonShipment::from_shipment(s) {
            if e.to_string().is_empty() {
                return Err("empty conversion error".into());
            }
        }
        // The stored JSON of the typed shipment reads back (what the store and twins do).
        let v = serde_json::to_value(s).map_err(|e| format!("re-encode: {e}"))?;
        let back: Shipment = serde_json::from_value(v.clone())
            .map_err(|e| format!("a decoded shipment does not read back: {e}\n{v}"))?;
        if &back != s {
            return Err(format!("round trip changed the shipment:\n{v}"));
        }
    }
    Ok(())
}

pub fn spapi_shipments(runner: &mut TestRunner) -> Result<(), String> {
    report(runner.run(
        &prop_oneof![6 => page_body(), 1 => prop::collection::vec(any::<u8>(), 0..64)],
        |body| check_shipments_page(&body).map_err(TestCaseError::fail),
    ))
}

fn return_json(id: &str) -> Value {
    json!({
        "id": id, "returnLocationId": "LOC1", "status": "CREATED", "merchantSku": "SKU-A",
        "numberOfUnits": 1, "fulfillmentLocationId": "LOC1", "creationDateTime": "2026-11-21T08:00:00Z",
        "lastUpdatedDateTime": "2026-11-21T09:00:00Z",
        "marketplaceChannelDetails": {"shipmentId": "S1", "marketplaceName": "AMAZON_DE", "channelName": "FBA"}
    })
}

/// listReturns pages and error bodies: read or refused clearly, records never dropped.
pub fn check_returns_and_errors(body: &[u8]) -> Result<(), String> {
    if let Ok(page) = ReturnsPage::from_json(body) {
        // serde_json does not check the UTF-8 of what it skips, so the page may read where
        // a whole `Value` does not; the count is checked where both read.
        let Ok(raw) = serde_json::from_slice::<Value>(body) else {
            return Ok(());
        };
        let records = raw
            .get("returns")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if page.returns.len() + page.unreadable.len() != records {
            return Err(format!(
                "{records} returns in, {} + {} out",
                page.returns.len(),
                page.unreadable.len()
            ));
        }
        for r in &page.returns {
            let v = serde_json::to_value(r).map_err(|e| e.to_string())?;
            let _ = flexbridge::shipment::ReturnRecord::from_json(&v);
        }
    }
    let _ = serde_json::from_slice::<ErrorList>(body);
    Ok(())
}

pub fn spapi_returns_errors(runner: &mut TestRunner) -> Result<(), String> {
    let page = (
        prop::collection::vec(
            (
                "[A-Z0-9]{1,8}",
                prop::collection::vec((any::<u64>(), prop::option::of(json_value())), 0..3),
            )
                .prop_map(|(id, edits)| {
                    let mut r = return_json(&id);
                    for (pick, with) in edits {
                        replace_at(&mut r, pick, with);
                    }
                    r
                }),
            0..4,
        ),
        prop::collection::vec(mutation(), 0..2),
    )
        .prop_map(|(returns, mutations)| {
            mutate(
                serde_json::to_vec(&json!({ "returns": returns, "nextToken": "t" })).expect("json"),
                &mutations,
            )
        });
    let errors = (json_value(), prop::collection::vec(mutation(), 0..2)).prop_map(|(v, m)| {
        let body = json!({ "errors": [{"code": "InvalidInput", "message": "m", "details": v}] });
        mutate(serde_json::to_vec(&body).expect("json"), &m)
    });
    report(runner.run(&prop_oneof![page, errors], |body| {
        check_returns_and_errors(&body).map_err(TestCaseError::fail)
    }))
}
