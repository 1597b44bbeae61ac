//! Least privilege, checked both ways: what each function's code does to AWS, against what
//! template.yaml grants it (`tests/tests/foundation_access.rs`).
//!
//! The code side is static and deterministic:
//! - every AWS wrapper in `shared/` ([`WRAPPERS`]: the type and its file) is read for the SDK
//!   operations each of its methods sends (`.get_item()`, a transaction's `Put::builder()`,
//!   `.index_name("gsi1")`, `.version_id(..)` on a GetObject, ...), following calls to its own
//!   methods and to the file's helper functions ([`wrapper_actions`]);
//! - each function lists the wrappers it builds, on which resource (the environment variable
//!   naming it) and which of their methods it uses ([`FUNCTIONS`]: all of them, the reading
//!   ones, or named methods);
//! - the IAM actions that follow ([`used`]) must equal the function's policy statements in the
//!   template ([`check`]): an action the code sends and the template does not grant fails, and
//!   so does a granted action no code sends.

use std::collections::{BTreeMap, BTreeSet};

use flexbridge::config::prefixes;

/// Resource (template logical ID, with `/index/<name>` or `/*` where IAM names a part) to
/// the IAM actions on it.
pub type Grants = BTreeMap<String, BTreeSet<String>>;

/// Which methods of a wrapper a function calls.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// Every method (the function reads and writes through it).
    All,
    /// Only the methods that read (their actions: [`READ_ACTIONS`]).
    Read,
    /// These methods only.
    Methods(&'static [&'static str]),
}

/// One wrapper a function builds: on the resource its environment variable `key` names.
#[derive(Debug, Clone, Copy)]
pub struct Uses {
    pub key: &'static str,
    pub wrapper: &'static str,
    pub usage: Usage,
    /// For a bucket: the key prefixes its object actions are limited to (IAM resource
    /// `bucket/<prefix>*`). Every S3 object action must name them: a grant on `bucket/*` fails.
    pub prefixes: &'static [&'static str],
}

impl Uses {
    /// The same use, on objects under `prefixes` only.
    const fn under(self, prefixes: &'static [&'static str]) -> Uses {
        Uses { prefixes, ..self }
    }
}

const fn all(key: &'static str, wrapper: &'static str) -> Uses {
    Uses {
        key,
        wrapper,
        usage: Usage::All,
        prefixes: &[],
    }
}
const fn read(key: &'static str, wrapper: &'static str) -> Uses {
    Uses {
        key,
        wrapper,
        usage: Usage::Read,
        prefixes: &[],
    }
}
const fn methods(key: &'static str, wrapper: &'static str, m: &'static [&'static str]) -> Uses {
    Uses {
        key,
        wrapper,
        usage: Usage::Methods(m),
        prefixes: &[],
    }
}

/// Where each writer puts its objects (read from the code that builds the keys).
/// Labels and invoices: `fulfilment::worker` and `fulfilment::api` (`prefixes::LABELS`).
const LABELS: &[&str] = &[prefixes::LABELS];
/// Upload reports: `upload::UploadKey::*_report_key` (`prefixes::REPORTS`).
const REPORTS: &[&str] = &[prefixes::REPORTS];
/// Amazon's answers to a price upload: `UploadKey::amazon_report_key` of a `prices/` upload.
const PRICE_REPORTS: &[&str] = &["reports/prices/"];
/// The daily health page: `health::report_key`.
const HEALTH_REPORTS: &[&str] = &[prefixes::HEALTH_REPORTS];

/// Every type in `shared/src` that sends AWS requests, and its file.
pub const WRAPPERS: &[(&str, &str)] = &[
    ("DynamoSettingsStore", "store/settings.rs"),
    ("DynamoShipmentStore", "store/shipments.rs"),
    ("DynamoInventoryStore", "store/inventory.rs"),
    ("DynamoCursorStore", "store/cursors.rs"),
    ("DynamoBucketStore", "store/ratelimit.rs"),
    ("DynamoLocationStore", "store/locations.rs"),
    ("DynamoCatalogStore", "store/catalog.rs"),
    ("DynamoIdempotencyStore", "idempotency.rs"),
    ("DynamoCheckpoints", "upload/aws.rs"),
    ("DynamoAnswers", "upload/aws.rs"),
    ("S3Uploads", "upload/aws.rs"),
    ("SqsPriceQueue", "upload/aws.rs"),
    ("SqsRequeue", "upload/aws.rs"),
    ("S3LabelFiles", "fulfilment/ports.rs"),
    ("SqsJobQueue", "fulfilment/ports.rs"),
    ("SqsNudge", "inventory/mod.rs"),
    ("SqsDeadLetterQueue", "runtime.rs"),
    ("SqsRetryDelay", "runtime.rs"),
    ("EventBridgeSink", "events.rs"),
    ("SecretCache", "secrets.rs"),
    ("S3UploadSummaries", "health/aws.rs"),
    ("S3HealthReports", "health/aws.rs"),
    ("SqsDeadLetters", "health/aws.rs"),
];

/// `flexbridge::orders::Orders::from_env` (orders, and fulfilment's base): what it builds.
const ORDERS: &[Uses] = &[
    all("SHIPMENTS_TABLE", "DynamoShipmentStore"),
    all("INVENTORY_TABLE", "DynamoInventoryStore"),
    all("CURSORS_TABLE", "DynamoCursorStore"),
    all("IDEMPOTENCY_TABLE", "DynamoIdempotencyStore"),
    read("LOCATIONS_TABLE", "DynamoLocationStore"),
    read("SETTINGS_TABLE", "DynamoSettingsStore"),
    read("CATALOG_TABLE", "DynamoCatalogStore"),
    all("EVENT_BUS_NAME", "EventBridgeSink"),
    all("FLEXBRIDGE_SECRET_ARN", "SecretCache"),
];
/// The inventory nudge Orders adds when INVENTORY_PUSH_QUEUE_URL is set.
const NUDGE: Uses = all("INVENTORY_PUSH_QUEUE_URL", "SqsNudge");
/// Shipments operations' rate limits shared between instances (`fulfilment::wiring`).
const SHIPMENTS_LIMITS: Uses = all("CURSORS_TABLE", "DynamoBucketStore");
/// `flexbridge::runtime::SqsConsumer`: messages that can never succeed go to the DLQ.
const DLQ: Uses = all("DEAD_LETTER_QUEUE_URL", "SqsDeadLetterQueue");
/// The `key` of a wrapper acting on the queue of the function's own SQS event (no variable
/// names it: the records carry its ARN).
pub const EVENT_SOURCE: &str = "(its SQS event source)";
/// `flexbridge::runtime::SqsConsumer`: a failed message's next receive put off, on its queue.
const RETRIES: Uses = all(EVENT_SOURCE, "SqsRetryDelay");

/// Each function (template logical ID) and the wrappers its code builds (groups are joined).
pub const FUNCTIONS: &[(&str, &[&[Uses]])] = &[
    (
        "HeartbeatFunction",
        &[&[
            methods("SETTINGS_TABLE", "DynamoSettingsStore", &["record_status"]),
            // every DLQ's depth (the dead_letters alert), never its messages
            methods("DEAD_LETTER_QUEUE_URLS", "SqsDeadLetters", &["depths"]),
        ]],
    ),
    (
        "WarehouseApiFunction",
        &[
            ORDERS,
            &[
                NUDGE,
                all("FLEXBRIDGE_SECRET_ARN", "SecretCache"),
                // flexbridge::fulfilment::FulfilmentService
                all("LABELS_QUEUE_URL", "SqsJobQueue"),
                all("CANCELLATIONS_QUEUE_URL", "SqsJobQueue"),
                all("BUCKET_NAME", "S3LabelFiles").under(LABELS),
                // a fresh link to the latest health report (GET /v1/reports/health/latest)
                methods("BUCKET_NAME", "S3LabelFiles", &["link"]).under(HEALTH_REPORTS),
                all("BUCKET_NAME", "S3HealthReports"),
            ],
        ],
    ),
    (
        "OutboundWebhookFunction",
        &[&[DLQ, RETRIES, all("FLEXBRIDGE_SECRET_ARN", "SecretCache")]],
    ),
    (
        "UploadIngestFunction",
        &[&[
            DLQ,
            RETRIES,
            // reads the seller's uploads, writes their reports
            methods("BUCKET_NAME", "S3Uploads", &["current_version", "open"])
                .under(prefixes::INBOUND),
            methods("BUCKET_NAME", "S3Uploads", &["put"]).under(REPORTS),
            methods(
                "CATALOG_TABLE",
                "DynamoCatalogStore",
                &["get_items", "get_prices", "put_items", "scan_items"],
            ),
            all("PRICE_UPDATES_QUEUE_URL", "SqsPriceQueue"),
            all("CURSORS_TABLE", "DynamoCheckpoints"),
            all("CURSORS_TABLE", "DynamoAnswers"),
            read("SETTINGS_TABLE", "DynamoSettingsStore"),
            all("EVENT_BUS_NAME", "EventBridgeSink"),
            all("UPLOADS_QUEUE_URL", "SqsRequeue"),
            all("IDEMPOTENCY_TABLE", "DynamoIdempotencyStore"),
            // stock files (flexbridge::inventory::StockChanges)
            all("INVENTORY_TABLE", "DynamoInventoryStore"),
            read("LOCATIONS_TABLE", "DynamoLocationStore"),
            NUDGE,
        ]],
    ),
    (
        "PricePusherFunction",
        &[&[
            DLQ,
            RETRIES,
            methods(
                "CATALOG_TABLE",
                "DynamoCatalogStore",
                &["get_prices", "claim_price", "release_price", "put_price"],
            ),
            all("IDEMPOTENCY_TABLE", "DynamoIdempotencyStore"),
            all("CURSORS_TABLE", "DynamoAnswers"),
            // the upload's report
            methods("BUCKET_NAME", "S3Uploads", &["put"]).under(PRICE_REPORTS),
            all("FLEXBRIDGE_SECRET_ARN", "SecretCache"),
        ]],
    ),
    (
        "OrderPollerFunction",
        &[
            ORDERS,
            &[
                NUDGE,
                // the promise sweep (flexbridge::fulfilment::promises)
                all("LABELS_QUEUE_URL", "SqsJobQueue"),
                all("CANCELLATIONS_QUEUE_URL", "SqsJobQueue"),
            ],
        ],
    ),
    (
        "NotificationConsumerFunction",
        &[ORDERS, &[NUDGE, DLQ, RETRIES]],
    ),
    ("ReturnsPollerFunction", &[ORDERS, &[NUDGE]]),
    (
        "InventoryPusherFunction",
        &[&[
            DLQ,
            RETRIES,
            // the shared batchInventory rate limit
            all("CURSORS_TABLE", "DynamoBucketStore"),
            all("INVENTORY_TABLE", "DynamoInventoryStore"),
            read("LOCATIONS_TABLE", "DynamoLocationStore"),
            read("CATALOG_TABLE", "DynamoCatalogStore"),
            read("SETTINGS_TABLE", "DynamoSettingsStore"),
            // the reconciliation report (flexbridge::inventory::reconcile)
            methods("SETTINGS_TABLE", "DynamoSettingsStore", &["record_status"]),
            all("EVENT_BUS_NAME", "EventBridgeSink"),
            all("FLEXBRIDGE_SECRET_ARN", "SecretCache"),
        ]],
    ),
    (
        "LabelWorkerFunction",
        &[
            ORDERS,
            &[
                DLQ,
                RETRIES,
                all("BUCKET_NAME", "S3LabelFiles").under(LABELS),
                SHIPMENTS_LIMITS,
            ],
        ],
    ),
    (
        "CancellationWorkerFunction",
        &[ORDERS, &[DLQ, RETRIES, SHIPMENTS_LIMITS]],
    ),
    (
        "HealthReportFunction",
        &[&[
            read("SHIPMENTS_TABLE", "DynamoShipmentStore"),
            read("LOCATIONS_TABLE", "DynamoLocationStore"),
            read("INVENTORY_TABLE", "DynamoInventoryStore"),
            all("BUCKET_NAME", "S3UploadSummaries").under(REPORTS),
            // the report page and its presigned link
            methods("BUCKET_NAME", "S3LabelFiles", &["put", "link"]).under(HEALTH_REPORTS),
            // a list of queues: each is read, none is changed
            all("DEAD_LETTER_QUEUE_URLS", "SqsDeadLetters"),
            all("EVENT_BUS_NAME", "EventBridgeSink"),
        ]],
    ),
];

/// Actions that only read.
pub const READ_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "secretsmanager:GetSecretValue",
];

/// Code (whitespace removed) that sends a request, and the IAM action authorising it. A
/// transaction is authorised item by item (there is no TransactWriteItems action); SQS's
/// SendMessageBatch and S3's HeadObject by SendMessage and GetObject.
const CALLS: &[(&str, &str)] = &[
    (".get_item()", "dynamodb:GetItem"),
    (".put_item()", "dynamodb:PutItem"),
    (".update_item()", "dynamodb:UpdateItem"),
    (".delete_item()", "dynamodb:DeleteItem"),
    (".scan()", "dynamodb:Scan"),
    (".batch_get_item()", "dynamodb:BatchGetItem"),
    ("dynamo::batch_get(", "dynamodb:BatchGetItem"),
    (".batch_write_item()", "dynamodb:BatchWriteItem"),
    ("dynamo::batch_write(", "dynamodb:BatchWriteItem"),
    ("Put::builder()", "dynamodb:PutItem"),
    ("Update::builder()", "dynamodb:UpdateItem"),
    ("Delete::builder()", "dynamodb:DeleteItem"),
    ("ConditionCheck::builder()", "dynamodb:ConditionCheckItem"),
    (".send_message()", "sqs:SendMessage"),
    (".send_message_batch()", "sqs:SendMessage"),
    (
        ".change_message_visibility_batch()",
        "sqs:ChangeMessageVisibility",
    ),
    (".put_object()", "s3:PutObject"),
    (".get_object()", "s3:GetObject"),
    (".head_object()", "s3:GetObject"),
    (".put_events()", "events:PutEvents"),
    (".list_objects_v2()", "s3:ListBucket"),
    (".get_queue_attributes()", "sqs:GetQueueAttributes"),
    (".receive_message()", "sqs:ReceiveMessage"),
    (".get_secret_value()", "secretsmanager:GetSecretValue"),
];

/// An action on a part of the wrapper's resource: `("/index/gsi1", "dynamodb:Query")`; `""`
/// is the resource itself.
pub type Action = (String, String);

/// The source with string, char and comment contents blanked (same length), so braces can be
/// matched.
fn mask(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(b.len(), |e| i + e);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                blank(&mut out, i, end);
                i = end;
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                let end = src[start..]
                    .find(&close)
                    .map_or(b.len(), |e| start + e + close.len());
                blank(&mut out, start, end - close.len());
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '{'), not a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let end = src[i + 2..].find('\'').map_or(b.len(), |e| i + 2 + e + 1);
                    blank(&mut out, i + 1, end - 1);
                    i = end;
                } else if b.get(i + 2) == Some(&b'\'') {
                    blank(&mut out, i + 1, i + 2);
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The index of the brace closing the one at `open`.
fn closing(masked: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in masked.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    masked.len()
}

/// `fn name` items directly in `range` of `masked` (not nested in another item's body):
/// (name, body range).
fn fns_in(masked: &[u8], range: std::ops::Range<usize>) -> Vec<(String, std::ops::Range<usize>)> {
    let text = std::str::from_utf8(masked).unwrap_or_default();
    let mut out = Vec::new();
    let mut i = range.start;
    while i < range.end {
        match masked[i] {
            b'{' => {
                // a nested block that is not a fn body (impl, mod, struct): look inside impls
                // only through `impls`, skip others
                i = closing(masked, i) + 1;
                continue;
            }
            b'f' if text[i..].starts_with("fn ")
                && (i == 0
                    || !(masked[i - 1].is_ascii_alphanumeric() || masked[i - 1] == b'_')) =>
            {
                let name: String = text[i + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let Some(open) = text[i..range.end].find(['{', ';']).map(|o| i + o) else {
                    break;
                };
                if masked[open] == b';' {
                    i = open + 1;
                    continue;
                }
                let close = closing(masked, open);
                out.push((name, open..close + 1));
                i = close + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Each method of `type_name` in `src` (inherent and trait impls) and each free function of
/// `src` and `helpers`, with the actions of their own bodies and the functions they call.
struct Items {
    methods: BTreeMap<String, (BTreeSet<Action>, BTreeSet<String>)>,
}

fn body_actions(body: &str) -> BTreeSet<Action> {
    let flat: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = BTreeSet::new();
    for (pattern, action) in CALLS {
        if flat.contains(pattern) {
            out.insert((String::new(), action.to_string()));
        }
    }
    // A GetObject of a named version is authorised by GetObjectVersion.
    if flat.contains(".get_object()") && flat.contains(".version_id(") {
        out.insert((String::new(), "s3:GetObjectVersion".into()));
    }
    // Queries: on an index when named, on the table for the others.
    let queries = flat.matches(".query()").count();
    let mut on_index = 0;
    for part in flat.split(".index_name(\"").skip(1) {
        if let Some(name) = part.split('"').next() {
            on_index += 1;
            out.insert((format!("/index/{name}"), "dynamodb:Query".into()));
        }
    }
    if queries > on_index {
        out.insert((String::new(), "dynamodb:Query".into()));
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Names of `candidates` called in `body`: `self.f(`, `Self::f(`, `Type::f(` for methods;
/// a bare `f(` for free functions.
fn calls_in(
    body: &str,
    type_name: &str,
    methods: &BTreeSet<String>,
    free: &BTreeSet<String>,
) -> BTreeSet<String> {
    let flat: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = BTreeSet::new();
    for m in methods {
        for p in [
            format!("self.{m}("),
            format!("Self::{m}("),
            format!("{type_name}::{m}("),
        ] {
            if flat.contains(&p) {
                out.insert(m.clone());
            }
        }
    }
    for f in free {
        let fb = flat.as_bytes();
        for (i, _) in flat.match_indices(&format!("{f}(")) {
            let before = if i == 0 { b' ' } else { fb[i - 1] };
            if !is_ident(before) && before != b'.' && !flat[..i].ends_with("fn") {
                out.insert(format!("free:{f}"));
            }
        }
    }
    out
}

impl Items {
    fn read(src: &str, type_name: &str) -> Items {
        let masked = mask(src);
        let text = std::str::from_utf8(&masked).unwrap_or_default();
        let mut methods: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        let mut free = Vec::new();
        // Top-level items: impl blocks of the type, and free fns.
        let mut i = 0;
        while i < masked.len() {
            let at_line_start = i == 0 || masked[i - 1] == b'\n';
            if at_line_start && text[i..].starts_with("#[cfg(test)]") {
                // a test module (or item): not what the function runs
                let Some(open) = text[i..].find('{').map(|o| i + o) else {
                    break;
                };
                i = closing(&masked, open) + 1;
                continue;
            }
            if at_line_start && text[i..].starts_with("impl") {
                let Some(open) = text[i..].find('{').map(|o| i + o) else {
                    break;
                };
                let header = &text[i..open];
                let target = header.rsplit(" for ").next().unwrap_or(header);
                let target = target.trim_start_matches("impl").trim();
                let target = if target.starts_with('<') {
                    target.split_once('>').map_or(target, |(_, t)| t).trim()
                } else {
                    target
                };
                let name: String = target
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let close = closing(&masked, open);
                if name == type_name {
                    methods.extend(fns_in(&masked, open + 1..close));
                }
                i = close + 1;
                continue;
            }
            if at_line_start {
                let line_end = text[i..].find('\n').map_or(masked.len(), |e| i + e);
                let line = &text[i..line_end];
                let is_fn = [
                    "fn ",
                    "pub fn ",
                    "async fn ",
                    "pub async fn ",
                    "pub(crate) fn ",
                    "pub(crate) async fn ",
                ]
                .iter()
                .any(|p| line.starts_with(p));
                if is_fn {
                    let start = i + line.find("fn ").unwrap_or(0);
                    let found = fns_in(&masked, start..masked.len());
                    if let Some((name, body)) = found.into_iter().next() {
                        i = body.end;
                        free.push((name, body));
                        continue;
                    }
                }
                if line.starts_with("mod ") || line.starts_with("pub mod ") || line.contains('{') {
                    // skip other blocks (structs, enums, consts with bodies)
                    if let Some(open) = line.find('{') {
                        let close = closing(&masked, i + open);
                        i = close + 1;
                        continue;
                    }
                }
                i = line_end + 1;
                continue;
            }
            i += 1;
        }
        let method_names: BTreeSet<String> = methods.iter().map(|(n, _)| n.clone()).collect();
        let free_names: BTreeSet<String> = free.iter().map(|(n, _)| n.clone()).collect();
        let mut items: BTreeMap<String, (BTreeSet<Action>, BTreeSet<String>)> = BTreeMap::new();
        for (name, body) in methods.iter() {
            let b = &src[body.clone()];
            let e = items.entry(name.clone()).or_default();
            e.0.extend(body_actions(b));
            e.1.extend(calls_in(b, type_name, &method_names, &free_names));
        }
        for (name, body) in free.iter() {
            let b = &src[body.clone()];
            let e = items.entry(format!("free:{name}")).or_default();
            e.0.extend(body_actions(b));
            e.1.extend(calls_in(b, type_name, &BTreeSet::new(), &free_names));
        }
        Items { methods: items }
    }

    /// The actions of `name` and of everything it calls.
    fn closure(&self, name: &str) -> BTreeSet<Action> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        let mut out = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some((actions, calls)) = self.methods.get(&n) {
                out.extend(actions.iter().cloned());
                todo.extend(calls.iter().cloned());
            }
        }
        out
    }
}

/// Each method of the wrapper `type_name` in `src` and the actions it (and what it calls in
/// the same file) sends.
pub fn wrapper_actions(src: &str, type_name: &str) -> BTreeMap<String, BTreeSet<Action>> {
    let items = Items::read(src, type_name);
    items
        .methods
        .keys()
        .filter(|n| !n.starts_with("free:"))
        .map(|n| (n.clone(), items.closure(n)))
        .collect()
}

/// The actions `usage` of a wrapper (its methods' actions) amounts to; errors name methods
/// the wrapper does not have.
pub fn actions_of(
    wrapper: &BTreeMap<String, BTreeSet<Action>>,
    usage: Usage,
) -> Result<BTreeSet<Action>, String> {
    Ok(match usage {
        Usage::All => wrapper.values().flatten().cloned().collect(),
        Usage::Read => wrapper
            .values()
            .flatten()
            .filter(|(_, a)| READ_ACTIONS.contains(&a.as_str()))
            .cloned()
            .collect(),
        Usage::Methods(names) => {
            let mut out = BTreeSet::new();
            for n in names {
                out.extend(
                    wrapper
                        .get(*n)
                        .ok_or_else(|| format!("no method {n}"))?
                        .iter()
                        .cloned(),
                );
            }
            out
        }
    })
}

/// Both ways round: every action used is granted, every action granted is used, and nothing
/// is granted with a wildcard. Problems, one line each.
pub fn check(function: &str, used: &Grants, granted: &Grants) -> Vec<String> {
    let mut problems = Vec::new();
    for (resource, actions) in used {
        for a in actions {
            if !granted.get(resource).is_some_and(|g| g.contains(a)) {
                problems.push(format!(
                    "{function}: its code sends {a} to {resource}, which template.yaml does not grant"
                ));
            }
        }
    }
    for (resource, actions) in granted {
        if resource.contains('*') && !resource.ends_with("/*") || resource == "*" {
            problems.push(format!(
                "{function}: grants on {resource:?} (a wildcard resource)"
            ));
        }
        for a in actions {
            if a.contains('*') {
                problems.push(format!(
                    "{function}: grants {a} on {resource} (a wildcard action)"
                ));
            } else if !used.get(resource).is_some_and(|u| u.contains(a)) {
                problems.push(format!(
                    "{function}: template.yaml grants {a} on {resource}, which no code of it sends"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = r#"
use x::{Put, TransactWriteItem};

pub struct DynamoThings { client: Client, table: String }

impl DynamoThings {
    fn put_item(&self, v: &str) -> TransactWriteItem {
        let put = Put::builder().table_name(&self.table).build();
        TransactWriteItem::builder().put(put).build()
    }
}

#[async_trait]
impl ThingStore for DynamoThings {
    async fn get(&self, id: &str) -> Result<Option<Thing>> {
        let out = self.client.get_item().table_name(&self.table).send().await?;
        Ok(format!("{{not a block}} {}", '{').into())
    }
    async fn by_owner(&self, owner: &str) -> Result<Vec<Thing>> {
        query_all(self.client.query().table_name(&self.table).index_name("gsi1"), from_item).await
    }
    async fn put(&self, thing: &Thing) -> Result<()> {
        self.client.transact_write_items().transact_items(self.put_item("x")).send().await?;
        Ok(())
    }
}

pub async fn query_all<T>(q: Builder, map: impl Fn(&Item) -> T) -> Result<Vec<T>> { todo() }

#[cfg(test)]
mod tests {
    fn not_counted() { client.delete_item(); }
}
"#;

    fn set(items: &[(&str, &str)]) -> BTreeSet<Action> {
        items
            .iter()
            .map(|(r, a)| (r.to_string(), a.to_string()))
            .collect()
    }

    #[test]
    fn reads_each_methods_actions_through_its_helpers() {
        let w = wrapper_actions(STORE, "DynamoThings");
        assert_eq!(w["get"], set(&[("", "dynamodb:GetItem")]));
        assert_eq!(w["by_owner"], set(&[("/index/gsi1", "dynamodb:Query")]));
        // through the helper that builds the transaction's Put
        assert_eq!(w["put"], set(&[("", "dynamodb:PutItem")]));
        assert_eq!(
            actions_of(&w, Usage::Read).unwrap(),
            set(&[("", "dynamodb:GetItem"), ("/index/gsi1", "dynamodb:Query")])
        );
        assert_eq!(
            actions_of(&w, Usage::Methods(&["put"])).unwrap(),
            set(&[("", "dynamodb:PutItem")])
        );
        assert!(actions_of(&w, Usage::Methods(&["remove"])).is_err());
    }

    fn grants(items: &[(&str, &[&str])]) -> Grants {
        items
            .iter()
            .map(|(r, a)| (r.to_string(), a.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn an_action_used_but_not_granted_fails() {
        let used = grants(&[("ThingsTable", &["dynamodb:GetItem", "dynamodb:PutItem"])]);
        let granted = grants(&[("ThingsTable", &["dynamodb:GetItem"])]);
        let problems = check("ThingFunction", &used, &granted);
        assert_eq!(
            problems,
            vec!["ThingFunction: its code sends dynamodb:PutItem to ThingsTable, which template.yaml does not grant"]
        );
    }

    #[test]
    fn an_action_granted_but_not_used_fails() {
        let used = grants(&[("ThingsTable", &["dynamodb:GetItem"])]);
        let granted = grants(&[
            ("ThingsTable", &["dynamodb:GetItem", "dynamodb:DeleteItem"]),
            ("OtherQueue", &["sqs:SendMessage"]),
        ]);
        let problems = check("ThingFunction", &used, &granted);
        assert_eq!(
            problems,
            vec![
                "ThingFunction: template.yaml grants sqs:SendMessage on OtherQueue, which no code of it sends",
                "ThingFunction: template.yaml grants dynamodb:DeleteItem on ThingsTable, which no code of it sends",
            ]
        );
    }

    #[test]
    fn wildcards_fail_and_equal_sets_pass() {
        let used = grants(&[("ThingsTable", &["dynamodb:GetItem"])]);
        assert!(check("F", &used, &used).is_empty());
        let granted = grants(&[("ThingsTable", &["dynamodb:GetItem", "dynamodb:*"])]);
        assert!(check("F", &used, &granted)[0].contains("wildcard action"));
        let granted = grants(&[("*", &["dynamodb:GetItem"])]);
        assert!(check("F", &used, &granted)
            .iter()
            .any(|p| p.contains("wildcard resource")));
    }
}
