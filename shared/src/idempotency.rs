//! The one idempotency helper, modelled on AWS Lambda Powertools' idempotency utility.
//!
//! A record per business key ([`ActionKey`]: `confirm#<shipmentId>`, `warehouse#<Idempotency-Key>`,
//! ...), never per whole event, with the Powertools schema:
//!
//! | attribute | meaning |
//! |---|---|
//! | `id` | the key |
//! | `status` | `INPROGRESS` while the work runs, `COMPLETED` with the saved result |
//! | `expiration` | epoch seconds; the table's TTL attribute; an expired record counts as absent |
//! | `in_progress_expiration` | epoch milliseconds; when an `INPROGRESS` record may be taken over (the invocation's deadline) |
//! | `data` | the saved result (JSON) |
//! | `validation` | hash of the payload, so one key reused with another payload is refused |
//!
//! The work is claimed with ONE conditional put: it succeeds when there is no record, the record
//! has expired, or it is `INPROGRESS` past its in-progress expiry (its invocation died). That last
//! case is reported as [`Claim::Retaken`]: the previous attempt may have acted (called Amazon)
//! without recording it, so the caller must reconcile (read the shipment back) before acting again.
//! On success the result is saved as `COMPLETED`; on error the claim is deleted so a retry can run.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::runtime::Invocation;
use crate::store::dynamo::{ddb_error, get_n, get_s, is_condition_failed, n, s};

mod key;
pub use key::ActionKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::InProgress => "INPROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "INPROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            _ => None,
        }
    }
}

/// One idempotency record, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub status: Status,
    /// Epoch seconds (TTL).
    pub expiration: i64,
    /// Epoch milliseconds; set while `INPROGRESS`.
    pub in_progress_expiration: Option<i64>,
    /// The saved result (JSON text); set when `COMPLETED`.
    pub data: Option<String>,
    /// Payload hash.
    pub validation: Option<String>,
    /// A nonce of the put that wrote the record: a put whose answer was lost and that the SDK
    /// sent again finds its own record, and must not take it for someone else's.
    pub writer: Option<String>,
}

impl Record {
    fn is_expired(&self, now: Now) -> bool {
        self.expiration < now.secs
    }

    fn in_progress_is_stale(&self, now: Now) -> bool {
        self.status == Status::InProgress
            && self
                .in_progress_expiration
                .is_some_and(|ms| ms < now.millis)
    }

    /// Whether the claim condition lets a new claim replace this record.
    fn claimable(&self, now: Now) -> bool {
        self.is_expired(now) || self.in_progress_is_stale(now)
    }
}

/// A point in time in the two units the schema uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub secs: i64,
    pub millis: i64,
}

impl Now {
    pub fn at(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            secs: d.as_secs() as i64,
            millis: d.as_millis() as i64,
        }
    }
}

/// What the conditional claim did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// The record is ours; `replaced` is the record the condition allowed us to overwrite.
    Claimed { replaced: Option<Record> },
    /// The condition failed; the existing record when the store returned it.
    Exists(Option<Record>),
}

/// Where records live: DynamoDB in Lambda, memory in unit tests.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Puts `record` (`INPROGRESS` for a claim, `COMPLETED` for [`Idempotency::first_use`]) if no
    /// live record holds its key: absent, `expiration < now.secs`, or `INPROGRESS` with
    /// `in_progress_expiration < now.millis`. Atomic.
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<PutOutcome>;
    async fn get(&self, id: &str) -> Result<Option<Record>>;
    /// Replaces our `INPROGRESS` record (identified by its `in_progress_expiration`) with
    /// `record` (the result, or an already expired claim after an unknown outcome); returns
    /// false when someone else has taken the key over meanwhile.
    async fn complete(&self, record: &Record, claimed_until_ms: i64) -> Result<bool>;
    /// Deletes our `INPROGRESS` record; a record someone else has retaken is left alone.
    async fn release(&self, id: &str, claimed_until_ms: i64) -> Result<()>;
}

/// How the caller got to run the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody has started this before (or the previous record expired long ago).
    Fresh,
    /// A previous attempt claimed it and died before recording a result: it may have acted.
    /// Reconcile with the source of truth (e.g. read the shipment from Amazon) before acting.
    Retaken,
}

impl Claim {
    pub fn is_retaken(&self) -> bool {
        matches!(self, Claim::Retaken)
    }
}

/// The result of [`Idempotency::begin`].
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Go ahead; finish with [`Idempotency::complete`] or [`Idempotency::release`].
    Claimed(ClaimToken),
    /// Already done: the saved result.
    Replay(serde_json::Value),
    /// The key was used before with a different payload.
    PayloadMismatch,
    /// Another invocation is working on it right now.
    InProgress { retry_after: Duration },
}

/// Proof of a claim, needed to complete or release it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimToken {
    pub key: String,
    pub claim: Claim,
    validation: String,
    claimed_until_ms: i64,
}

/// What [`Idempotency::execute`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Executed { value: T, claim: Claim },
    Replayed(T),
}

impl<T> Outcome<T> {
    pub fn into_value(self) -> T {
        match self {
            Outcome::Executed { value, .. } | Outcome::Replayed(value) => value,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self, Outcome::Replayed(_))
    }
}

/// Hash of a payload as stored in `validation` (sha256 of its JSON serialization, hex).
pub fn payload_hash<P: Serialize + ?Sized>(payload: &P) -> Result<String> {
    let bytes = serde_json::to_vec(payload)
        .map_err(|e| Error::Internal(format!("idempotency payload is not serializable: {e}")))?;
    Ok(hash_bytes(&bytes))
}

/// Hash of raw bytes (an HTTP body), same format as [`payload_hash`].
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Attempts at claiming when the record changes under us between the put and the read.
const MAX_CLAIM_ATTEMPTS: usize = 3;

/// The helper. Cheap to clone.
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    ttl: Duration,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// `ttl`: how long a completed result is remembered (and replayed).
    pub fn new(store: Arc<dyn IdempotencyStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// Over the DynamoDB table named by `IDEMPOTENCY_TABLE`.
    pub fn dynamodb(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self::new(Arc::new(DynamoIdempotencyStore::new(client, table)), ttl)
    }

    /// Replaces the wall clock (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Runs `work` at most once per `key` (until the result expires): a repeat returns the saved
    /// result. Errors: [`Error::InvalidInput`] when `key` was used with another payload,
    /// [`Error::Transient`] (retryable) while another invocation holds the claim.
    pub async fn run<P, T, F, Fut>(
        &self,
        key: &str,
        payload: &P,
        inv: &Invocation,
        work: F,
    ) -> Result<T>
    where
        P: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce(Claim) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        Ok(self.execute(key, payload, inv, work).await?.into_value())
    }

    /// Like [`run`](Self::run), telling whether the result was replayed.
    pub async fn execute<P, T, F, Fut>(
        &self,
        key: &str,
        payload: &P,
        inv: &Invocation,
        work: F,
    ) -> Result<Outcome<T>>
    where
        P: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce(Claim) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // Work that always finishes is resumable work that never stops part-way.
        let outcome = self
            .execute_resumable(key, payload, inv, |claim| async move {
                work(claim).await.map(Some)
            })
            .await?;
        outcome.ok_or_else(|| {
            Error::Internal(format!(
                "idempotent work for key {key} finished without a result"
            ))
        })
    }

    /// Like [`execute`](Self::execute) for work that may stop part-way and continue in a later
    /// invocation: `Ok(Some(value))` is done (saved; a failed save is logged, not returned, as in
    /// `execute`), `Ok(None)` is not finished yet (the claim is released so the continuation can
    /// claim it), an error releases the claim, except after an unknown outcome or in a retaken
    /// run: then the claim is left expired, so the next try is `Retaken` and reads back first.
    /// `None` back means unfinished.
    pub async fn execute_resumable<P, T, F, Fut>(
        &self,
        key: &str,
        payload: &P,
        inv: &Invocation,
        work: F,
    ) -> Result<Option<Outcome<T>>>
    where
        P: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce(Claim) -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let validation = payload_hash(payload)?;
        let token = match self.begin(key, &validation, inv).await? {
            Begin::Claimed(token) => token,
            Begin::Replay(saved) => {
                let value = serde_json::from_value(saved).map_err(|e| {
                    Error::Internal(format!(
                        "saved result for idempotency key {key} no longer parses: {e}"
                    ))
                })?;
                return Ok(Some(Outcome::Replayed(value)));
            }
            Begin::PayloadMismatch => {
                return Err(Error::InvalidInput(format!(
                    "idempotency key {key} was already used with a different payload"
                )))
            }
            Begin::InProgress { retry_after } => {
                return Err(Error::Transient {
                    message: format!(
                        "idempotency key {key} is being processed by another invocation"
                    ),
                    after: Some(retry_after),
                })
            }
        };
        let claim = token.claim;
        match work(claim).await {
            Ok(Some(value)) => {
                let saved = serde_json::to_value(&value)
                    .map_err(|e| Error::Internal(format!("result is not serializable: {e}")))?;
                // The work is done; reporting an error now would invite a retry of done work.
                // Unsaved, the claim expires with the invocation and a repeat sees `Retaken`.
                if let Err(e) = self.complete(&token, &saved).await {
                    tracing::warn!(key, error = %e, "could not save idempotent result");
                }
                Ok(Some(Outcome::Executed { value, claim }))
            }
            Err(e) if e.outcome_unknown() || claim.is_retaken() => {
                // The work (or the run it retook) may have acted: the next try must see
                // `Retaken` and read back before acting, so the claim is expired, not deleted.
                if let Err(mark) = self.release_uncertain(&token).await {
                    // The claim then expires with the invocation; the next try retakes it.
                    tracing::warn!(key, error = %mark, "could not mark idempotency claim uncertain");
                }
                Err(e)
            }
            other => {
                if let Err(release) = self.release(&token).await {
                    // The claim then expires with the invocation; the next try retakes it.
                    tracing::warn!(key, error = %release, "could not release idempotency claim");
                }
                other.map(|_| None)
            }
        }
    }

    /// The claim step on its own, for callers that cannot wrap their work in a closure (the
    /// HTTP middleware). `validation` is the payload hash ([`payload_hash`]/[`hash_bytes`]).
    pub async fn begin(&self, key: &str, validation: &str, inv: &Invocation) -> Result<Begin> {
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            let now_t = (self.clock)();
            let now = Now::at(now_t);
            let claimed_until_ms = now.millis + inv.remaining().as_millis() as i64;
            let record = Record {
                id: key.to_string(),
                status: Status::InProgress,
                expiration: now.secs + self.ttl.as_secs() as i64,
                in_progress_expiration: Some(claimed_until_ms),
                data: None,
                validation: Some(validation.to_string()),
                writer: Some(uuid::Uuid::new_v4().simple().to_string()),
            };
            let existing = match self.store.put_in_progress(&record, now).await? {
                PutOutcome::Claimed { replaced } => {
                    let claim = match replaced {
                        Some(old) if old.status == Status::InProgress && !old.is_expired(now) => {
                            tracing::warn!(
                                key,
                                "retaking an idempotency claim whose invocation did not finish"
                            );
                            Claim::Retaken
                        }
                        _ => Claim::Fresh,
                    };
                    return Ok(Begin::Claimed(ClaimToken {
                        key: key.to_string(),
                        claim,
                        validation: validation.to_string(),
                        claimed_until_ms,
                    }));
                }
                PutOutcome::Exists(Some(r)) => r,
                PutOutcome::Exists(None) => match self.store.get(key).await? {
                    Some(r) => r,
                    None => continue, // deleted between our put and read: claim again
                },
            };
            if existing.writer.is_some() && existing.writer == record.writer {
                // Our own put, applied on an attempt whose answer was lost: the claim is ours.
                // Whether that put replaced an unfinished run's claim is unknown, so the work
                // reads back first, as after a retaken claim.
                tracing::warn!(
                    key,
                    "idempotency claim applied with its answer lost; retaking it"
                );
                return Ok(Begin::Claimed(ClaimToken {
                    key: key.to_string(),
                    claim: Claim::Retaken,
                    validation: validation.to_string(),
                    claimed_until_ms,
                }));
            }
            if existing.claimable(now) {
                continue; // it expired between the put and the read
            }
            if existing
                .validation
                .as_deref()
                .is_some_and(|v| v != validation)
            {
                return Ok(Begin::PayloadMismatch);
            }
            match existing.status {
                Status::Completed => {
                    let data = existing.data.as_deref().unwrap_or("null");
                    let saved = serde_json::from_str(data).map_err(|e| {
                        Error::Internal(format!(
                            "saved result for idempotency key {key} is not JSON: {e}"
                        ))
                    })?;
                    return Ok(Begin::Replay(saved));
                }
                Status::InProgress => {
                    let left_ms = existing
                        .in_progress_expiration
                        .map_or(0, |ms| ms - now.millis)
                        .max(0);
                    return Ok(Begin::InProgress {
                        retry_after: Duration::from_millis(left_ms as u64)
                            .max(Duration::from_secs(1)),
                    });
                }
            }
        }
        Err(Error::Transient {
            message: format!("idempotency key {key} kept changing while being claimed"),
            after: None,
        })
    }

    /// Saves the result of a claimed run as `COMPLETED`.
    pub async fn complete(&self, token: &ClaimToken, saved: &serde_json::Value) -> Result<()> {
        let now = Now::at((self.clock)());
        let record = Record {
            id: token.key.clone(),
            status: Status::Completed,
            expiration: now.secs + self.ttl.as_secs() as i64,
            in_progress_expiration: None,
            data: Some(saved.to_string()),
            validation: Some(token.validation.clone()),
            writer: None,
        };
        if !self.store.complete(&record, token.claimed_until_ms).await? {
            tracing::warn!(
                key = token.key,
                "idempotency claim was retaken before this run completed; result not saved"
            );
        }
        Ok(())
    }

    /// Gives a claim back after a failed run, so a retry can claim it at once.
    pub async fn release(&self, token: &ClaimToken) -> Result<()> {
        self.store.release(&token.key, token.claimed_until_ms).await
    }

    /// Gives a claim back after a run whose effect is unknown: the record stays, its claim
    /// already expired, so a retry can take it at once and is told [`Claim::Retaken`].
    pub async fn release_uncertain(&self, token: &ClaimToken) -> Result<()> {
        let now = Now::at((self.clock)());
        let record = Record {
            id: token.key.clone(),
            status: Status::InProgress,
            expiration: now.secs + self.ttl.as_secs() as i64,
            in_progress_expiration: Some(now.millis - 1),
            data: None,
            validation: Some(token.validation.clone()),
            writer: None,
        };
        self.store
            .complete(&record, token.claimed_until_ms)
            .await
            .map(|_| ())
    }

    /// Marks `key` as used until `until_secs` (epoch seconds, the record's TTL) with the claim's
    /// one conditional put; false when it was already used and has not expired. For one-time
    /// tokens such as request signatures: there is no work, so nothing to complete or release.
    pub async fn first_use(&self, key: &str, until_secs: i64) -> Result<bool> {
        let now = Now::at((self.clock)());
        let record = Record {
            id: key.to_string(),
            status: Status::Completed,
            expiration: until_secs,
            in_progress_expiration: None,
            data: None,
            validation: None,
            writer: Some(uuid::Uuid::new_v4().simple().to_string()),
        };
        Ok(match self.store.put_in_progress(&record, now).await? {
            PutOutcome::Claimed { .. } => true,
            // Our own put, applied on an attempt whose answer was lost: still the first use.
            PutOutcome::Exists(Some(existing)) => {
                existing.writer.is_some() && existing.writer == record.writer
            }
            PutOutcome::Exists(None) => false,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// In memory

/// Records in a map; evaluates the same condition as the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<String, Record>>,
}

impl MemoryIdempotencyStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, id: &str) -> Option<Record> {
        self.records.lock().expect("lock").get(id).cloned()
    }

    /// Writes a record as is (tests simulate crashed invocations with it).
    pub fn insert(&self, record: Record) {
        self.records
            .lock()
            .expect("lock")
            .insert(record.id.clone(), record);
    }

    pub fn len(&self) -> usize {
        self.records.lock().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<PutOutcome> {
        let mut records = self.records.lock().expect("lock");
        match records.get(&record.id) {
            Some(existing) if !existing.claimable(now) => {
                Ok(PutOutcome::Exists(Some(existing.clone())))
            }
            _ => {
                let replaced = records.insert(record.id.clone(), record.clone());
                Ok(PutOutcome::Claimed { replaced })
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Record>> {
        Ok(self.record(id))
    }

    async fn complete(&self, record: &Record, claimed_until_ms: i64) -> Result<bool> {
        let mut records = self.records.lock().expect("lock");
        let ours = records.get(&record.id).is_some_and(|r| {
            r.status == Status::InProgress && r.in_progress_expiration == Some(claimed_until_ms)
        });
        if ours {
            records.insert(record.id.clone(), record.clone());
        }
        Ok(ours)
    }

    async fn release(&self, id: &str, claimed_until_ms: i64) -> Result<()> {
        let mut records = self.records.lock().expect("lock");
        let ours = records.get(id).is_some_and(|r| {
            r.status == Status::InProgress && r.in_progress_expiration == Some(claimed_until_ms)
        });
        if ours {
            records.remove(id);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

/// The `IdempotencyTable` (`id` S HASH, TTL on `expiration`).
#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn to_item(r: &Record) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("id".to_string(), s(&r.id)),
        ("status".to_string(), s(r.status.as_str())),
        ("expiration".to_string(), n(r.expiration)),
    ]);
    if let Some(ms) = r.in_progress_expiration {
        item.insert("in_progress_expiration".into(), n(ms));
    }
    if let Some(d) = &r.data {
        item.insert("data".into(), s(d));
    }
    if let Some(v) = &r.validation {
        item.insert("validation".into(), s(v));
    }
    if let Some(w) = &r.writer {
        item.insert("writer".into(), s(w));
    }
    item
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Record> {
    let text = |k: &str| get_s(item, k).map(str::to_string);
    let id = text("id").ok_or_else(|| Error::Internal("idempotency record without id".into()))?;
    let status = get_s(item, "status")
        .and_then(Status::parse)
        .ok_or_else(|| Error::Internal(format!("idempotency record {id} has no valid status")))?;
    Ok(Record {
        status,
        expiration: get_n(item, "expiration").unwrap_or(0),
        in_progress_expiration: get_n(item, "in_progress_expiration"),
        data: text("data"),
        validation: text("validation"),
        writer: text("writer"),
        id,
    })
}

impl DynamoIdempotencyStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<PutOutcome> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(
                "attribute_not_exists(#id) OR #exp < :now \
                 OR (#status = :inprogress AND #ipe < :now_ms)",
            )
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#exp", "expiration")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ipe", "in_progress_expiration")
            .expression_attribute_values(":now", n(now.secs))
            .expression_attribute_values(":now_ms", n(now.millis))
            .expression_attribute_values(":inprogress", s(Status::InProgress.as_str()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let replaced = match out.attributes() {
                    Some(item) if !item.is_empty() => Some(from_item(item)?),
                    _ => None,
                };
                Ok(PutOutcome::Claimed { replaced })
            }
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let existing = match e.item() {
                        Some(item) if !item.is_empty() => Some(from_item(item)?),
                        _ => None,
                    };
                    Ok(PutOutcome::Exists(existing))
                }
                _ => Err(ddb_error("PutItem", err)),
            },
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Record>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        out.item().map(from_item).transpose()
    }

    async fn complete(&self, record: &Record, claimed_until_ms: i64) -> Result<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression("#status = :inprogress AND #ipe = :mine")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ipe", "in_progress_expiration")
            .expression_attribute_values(":inprogress", s(Status::InProgress.as_str()))
            .expression_attribute_values(":mine", n(claimed_until_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failed(&err) => Ok(false),
            Err(err) => Err(ddb_error("PutItem", err)),
        }
    }

    async fn release(&self, id: &str, claimed_until_ms: i64) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id))
            .condition_expression("#status = :inprogress AND #ipe = :mine")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ipe", "in_progress_expiration")
            .expression_attribute_values(":inprogress", s(Status::InProgress.as_str()))
            .expression_attribute_values(":mine", n(claimed_until_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failed(&err) => Ok(()),
            Err(err) => Err(ddb_error("DeleteItem", err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const TTL: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// A helper whose clock reads `offset` after t0 (tests move it by rebuilding).
    fn helper(store: &Arc<MemoryIdempotencyStore>, offset: Duration) -> Idempotency {
        Idempotency::new(store.clone(), TTL).with_clock(move || t0() + offset)
    }

    #[tokio::test]
    async fn first_use_is_true_once_until_it_expires() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        let at = |secs: u64| helper(&store, Duration::from_secs(secs));
        let until = 1_800_000_300;
        assert!(at(0).first_use("signature#a", until).await.unwrap());
        assert!(!at(1).first_use("signature#a", until).await.unwrap());
        assert!(!at(300).first_use("signature#a", until).await.unwrap());
        assert!(at(0).first_use("signature#b", until).await.unwrap());
        // Past its expiry the record no longer counts (DynamoDB's TTL deletes it later).
        assert!(at(301).first_use("signature#a", until + 301).await.unwrap());
    }

    fn inv() -> Invocation {
        // Deadline relative to the real clock; only remaining() is used, read as a duration.
        Invocation::new("req", Duration::from_secs(30))
    }

    #[tokio::test]
    async fn fresh_claim_runs_once_and_replays_completed() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        let idem = helper(&store, Duration::ZERO);
        let calls = AtomicU32::new(0);
        let payload = serde_json::json!({"shipmentId": "S1"});
        let inv = inv();
        let run = || {
            idem.execute("confirm#S1", &payload, &inv, |claim| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(claim, Claim::Fresh);
                    Ok::<_, Error>(serde_json::json!({"confirmed": true}))
                }
            })
        };
        let first = run().await.unwrap();
        assert_eq!(
            first,
            Outcome::Executed {
                value: serde_json::json!({"confirmed": true}),
                claim: Claim::Fresh
            }
        );
        let rec = store.record("confirm#S1").unwrap();
        assert_eq!(rec.status, Status::Completed);
        assert_eq!(rec.expiration, 1_800_000_000 + 3600);
        assert_eq!(rec.in_progress_expiration, None);
        assert_eq!(
            rec.validation.as_deref(),
            Some(payload_hash(&payload).unwrap().as_str())
        );

        let second = run().await.unwrap();
        assert_eq!(
            second,
            Outcome::Replayed(serde_json::json!({"confirmed": true}))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn same_key_other_payload_is_refused() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        let idem = helper(&store, Duration::ZERO);
        idem.run("k", &1, &inv(), |_| async { Ok::<_, Error>(1) })
            .await
            .unwrap();
        let err = idem
            .run("k", &2, &inv(), |_| async { Ok::<_, Error>(2) })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("different payload"), "{err}");
        assert_eq!(store.record("k").unwrap().data.as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn live_in_progress_claim_is_a_retryable_conflict() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        let idem = helper(&store, Duration::ZERO);
        let Begin::Claimed(_token) = idem.begin("k", "h", &inv()).await.unwrap() else {
            panic!("expected a claim")
        };
        let rec = store.record("k").unwrap();
        assert_eq!(rec.status, Status::InProgress);
        // Expiry follows the invocation's remaining time (30 s, minus a little).
        let ipe = rec.in_progress_expiration.unwrap() - Now::at(t0()).millis;
        assert!((29_000..=30_000).contains(&ipe), "{ipe}");

        // Another invocation 10 s later, same payload: in progress, retryable, told when to retry.
        let later = helper(&store, Duration::from_secs(10));
        match later.begin("k", "h", &inv()).await.unwrap() {
            Begin::InProgress { retry_after } => assert!(
                retry_after >= Duration::from_secs(19) && retry_after <= Duration::from_secs(20),
                "{retry_after:?}"
            ),
            other => panic!("{other:?}"),
        }
        // Through run(): a retryable Transient error, and the work does not run.
        let payload = 5;
        let Begin::Claimed(_) = helper(&store, Duration::ZERO)
            .begin("k5", &payload_hash(&payload).unwrap(), &inv())
            .await
            .unwrap()
        else {
            panic!()
        };
        let err = later
            .run("k5", &payload, &inv(), |_| async {
                Err::<(), _>(Error::Internal("must not run".into()))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Transient { after: Some(_), .. }),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn a_run_with_an_unknown_outcome_leaves_the_next_one_retaken() {
        // A write timed out and its read-back failed too: whether Amazon applied it is
        // unknown, so the next try must read back first, not act as if fresh.
        let store = Arc::new(MemoryIdempotencyStore::new());
        let h = helper(&store, Duration::ZERO);
        let unknown = || {
            let mut e = crate::spapi::SpApiError::new(
                crate::spapi::SpApiErrorKind::Timeout,
                "generateShipLabels",
                "timed out after sending",
            );
            e.outcome_unknown = true;
            Error::SpApi(e)
        };
        let first = h
            .execute("labels#S1", "p", &inv(), |_| async move {
                Err::<bool, _>(unknown())
            })
            .await;
        assert!(first.unwrap_err().outcome_unknown());
        let second = h
            .execute("labels#S1", "p", &inv(), |claim| async move {
                Ok::<_, Error>(claim.is_retaken())
            })
            .await
            .unwrap();
        assert!(second.into_value(), "the second run was told to read back");

        // A definite failure gives the claim back as fresh.
        let h = helper(&store, Duration::ZERO);
        let _ = h
            .execute("labels#S2", "p", &inv(), |_| async move {
                Err::<bool, _>(Error::InvalidInput("no".into()))
            })
            .await;
        assert!(store.record("labels#S2").is_none());
        let fresh = h
            .execute("labels#S2", "p", &inv(), |claim| async move {
                Ok::<_, Error>(claim.is_retaken())
            })
            .await
            .unwrap();
        assert!(!fresh.into_value());

        // A retaken run that fails (its read-back, say) leaves the next one retaken too.
        let store = Arc::new(MemoryIdempotencyStore::new());
        let Begin::Claimed(_) = helper(&store, Duration::ZERO)
            .begin("labels#S3", &payload_hash("p").unwrap(), &inv())
            .await
            .unwrap()
        else {
            panic!()
        };
        let later = helper(&store, Duration::from_secs(31));
        let _ = later
            .execute("labels#S3", "p", &inv(), |claim| async move {
                assert!(claim.is_retaken());
                Err::<bool, _>(Error::Transient {
                    message: "getShipment throttled".into(),
                    after: None,
                })
            })
            .await;
        let again = later
            .execute("labels#S3", "p", &inv(), |claim| async move {
                Ok::<_, Error>(claim.is_retaken())
            })
            .await
            .unwrap();
        assert!(again.into_value());
    }

    #[tokio::test]
    async fn expired_in_progress_claim_is_retaken() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        // An invocation claimed at t0 with 30 s left, then crashed.
        let Begin::Claimed(_) = helper(&store, Duration::ZERO)
            .begin("confirm#S9", &payload_hash("p").unwrap(), &inv())
            .await
            .unwrap()
        else {
            panic!()
        };
        let after_deadline = helper(&store, Duration::from_secs(31));
        let out = after_deadline
            .execute("confirm#S9", "p", &inv(), |claim| async move {
                Ok::<_, Error>(claim.is_retaken())
            })
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Executed {
                value: true,
                claim: Claim::Retaken
            }
        );
        assert_eq!(
            store.record("confirm#S9").unwrap().status,
            Status::Completed
        );
    }

    #[tokio::test]
    async fn expired_completed_record_gives_a_fresh_claim() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        helper(&store, Duration::ZERO)
            .run("k", "p", &inv(), |_| async { Ok::<_, Error>(1) })
            .await
            .unwrap();
        let out = helper(&store, TTL + Duration::from_secs(1))
            .execute(
                "k",
                "other payload is fine after expiry",
                &inv(),
                |claim| async move { Ok::<_, Error>(if claim == Claim::Fresh { 2 } else { 3 }) },
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Executed {
                value: 2,
                claim: Claim::Fresh
            }
        );
    }

    #[tokio::test]
    async fn error_deletes_the_claim_so_a_retry_runs() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        let idem = helper(&store, Duration::ZERO);
        let err = idem
            .run("k", "p", &inv(), |_| async {
                Err::<u32, _>(Error::Transient {
                    message: "amazon 503".into(),
                    after: None,
                })
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert!(store.is_empty(), "claim must be released");
        let v = idem
            .run("k", "p", &inv(), |claim| async move {
                assert_eq!(claim, Claim::Fresh);
                Ok::<_, Error>(7)
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }

    #[tokio::test]
    async fn a_late_finisher_does_not_overwrite_a_retaken_claim() {
        let store = Arc::new(MemoryIdempotencyStore::new());
        let Begin::Claimed(slow) = helper(&store, Duration::ZERO)
            .begin("k", "h", &inv())
            .await
            .unwrap()
        else {
            panic!()
        };
        let late = helper(&store, Duration::from_secs(31));
        let Begin::Claimed(fast) = late.begin("k", "h", &inv()).await.unwrap() else {
            panic!()
        };
        assert_eq!(fast.claim, Claim::Retaken);
        late.complete(&slow, &serde_json::json!("slow"))
            .await
            .unwrap();
        late.release(&slow).await.unwrap();
        assert_eq!(store.record("k").unwrap().status, Status::InProgress);
        late.complete(&fast, &serde_json::json!("fast"))
            .await
            .unwrap();
        assert_eq!(store.record("k").unwrap().data.as_deref(), Some("\"fast\""));
    }

    /// DynamoDB behind a lost answer: each put is applied, its answer lost, and sent again by
    /// the SDK, whose second answer is the one the caller sees (the chaos run's AWS faults).
    struct AnswerLost(MemoryIdempotencyStore);

    #[async_trait]
    impl IdempotencyStore for AnswerLost {
        async fn put_in_progress(&self, record: &Record, now: Now) -> Result<PutOutcome> {
            self.0.put_in_progress(record, now).await?;
            self.0.put_in_progress(record, now).await
        }
        async fn get(&self, id: &str) -> Result<Option<Record>> {
            self.0.get(id).await
        }
        async fn complete(&self, record: &Record, claimed_until_ms: i64) -> Result<bool> {
            self.0.complete(record, claimed_until_ms).await
        }
        async fn release(&self, id: &str, claimed_until_ms: i64) -> Result<()> {
            self.0.release(id, claimed_until_ms).await
        }
    }

    #[tokio::test]
    async fn a_claim_whose_answer_was_lost_is_ours_and_reads_back_first() {
        let store = Arc::new(AnswerLost(MemoryIdempotencyStore::new()));
        let idem = Idempotency::new(store.clone(), TTL).with_clock(t0);
        let inv = Invocation::new("t", Duration::from_secs(60));
        let out = idem
            .execute("confirm#S1", "p", &inv, |claim| async move {
                // Our lost put may have replaced an unfinished run's claim: read back first.
                assert_eq!(claim, Claim::Retaken);
                Ok::<_, Error>("done".to_string())
            })
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Executed { ref value, .. } if value == "done"));
        assert_eq!(
            store.0.record("confirm#S1").unwrap().status,
            Status::Completed
        );
        // Someone else's live claim is still someone else's.
        let other = Idempotency::new(Arc::new(MemoryIdempotencyStore::new()), TTL).with_clock(t0);
        let ours = other.begin("k", "v", &inv).await.unwrap();
        assert!(matches!(ours, Begin::Claimed(_)));
        assert!(matches!(
            other.begin("k", "v", &inv).await.unwrap(),
            Begin::InProgress { .. }
        ));
    }

    #[tokio::test]
    async fn a_signature_whose_first_use_answer_was_lost_is_still_its_first_use() {
        let store = Arc::new(AnswerLost(MemoryIdempotencyStore::new()));
        let idem = Idempotency::new(store, TTL).with_clock(t0);
        let until = 1_800_000_300;
        assert!(idem.first_use("signature#a", until).await.unwrap());
        assert!(!idem.first_use("signature#a", until).await.unwrap());
    }

    #[test]
    fn items_round_trip() {
        let r = Record {
            id: "confirm#S1".into(),
            status: Status::Completed,
            expiration: 10,
            in_progress_expiration: Some(5),
            data: Some("{}".into()),
            validation: Some("ab".into()),
            writer: Some("w1".into()),
        };
        assert_eq!(from_item(&to_item(&r)).unwrap(), r);
    }
}
