//! The one token bucket of the project (the SP-API client keeps one per operation).
//!
//! Amazon's limits hold per seller account and application, not per Lambda instance. For an
//! operation that several invocations call at once (batchInventory: the fast path, the sweep,
//! reconciliation), the client can share its bucket across processes: [`SharedBucket`] keeps
//! the bucket's state in a store ([`SharedBucketStore`]; DynamoDB in Lambda, see
//! `store::ratelimit`) as GCRA's "theoretical arrival time", and each process reserves a few
//! tokens at a time with one conditional write, then hands them out locally. Any operation
//! can use it (`SpApiClient::share_rate_limit`).
//!
//! `acquire` reserves a token and sleeps until it is due, so callers queue in arrival order
//! without polling: with rate `r`, the n-th waiting caller is released `n / r` seconds after the
//! bucket ran dry. A bucket is shared by all tasks of the process (wrap it in an `Arc`, or share
//! the client that owns it). The rate can change at any time (Amazon's `x-amzn-RateLimit-Limit`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::retry::Deadline;

/// Rate (tokens per second) and burst (bucket size) of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub rate: f64,
    pub burst: u32,
}

impl Limit {
    pub const fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst }
    }
}

/// Waiting for a token would end after the caller's deadline; nothing was reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: the next token is due in {wait:?}, after the deadline")]
pub struct WouldExceedDeadline {
    pub wait: Duration,
}

#[derive(Debug)]
struct State {
    rate: f64,
    burst: f64,
    /// May be negative: tokens already promised to sleeping callers.
    tokens: f64,
    updated: Instant,
}

impl State {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    fn wait_for_next(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// A token bucket; starts full.
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<State>,
}

impl TokenBucket {
    pub fn new(limit: Limit) -> Self {
        let rate = sane_rate(limit.rate);
        let burst = f64::from(limit.burst.max(1));
        Self {
            state: Mutex::new(State {
                rate,
                burst,
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the numbers inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a token is available and takes it.
    pub async fn acquire(&self) {
        // No deadline: cannot fail.
        let _ = self.acquire_before(None).await;
    }

    /// Takes a token, waiting if needed, unless the wait would end after `deadline`
    /// (then returns at once without reserving anything).
    pub async fn acquire_before(
        &self,
        deadline: Option<Deadline>,
    ) -> Result<(), WouldExceedDeadline> {
        let wait = {
            let mut s = self.lock();
            let now = Instant::now();
            s.refill(now);
            let wait = s.wait_for_next();
            if let Some(d) = deadline {
                if now + wait > d.instant() {
                    return Err(WouldExceedDeadline { wait });
                }
            }
            s.tokens -= 1.0;
            wait
        };
        if !wait.is_zero() {
            // If this future is dropped while sleeping, give the promised token back.
            let mut refund = Refund(Some(self));
            tokio::time::sleep(wait).await;
            refund.0 = None;
        }
        Ok(())
    }

    /// Takes a token only if one is available now.
    pub fn try_acquire(&self) -> bool {
        let mut s = self.lock();
        s.refill(Instant::now());
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Changes the refill rate (tokens already promised keep their release times).
    pub fn set_rate(&self, rate: f64) {
        let mut s = self.lock();
        s.refill(Instant::now());
        s.rate = sane_rate(rate);
    }

    pub fn limit(&self) -> Limit {
        let s = self.lock();
        Limit::new(s.rate, s.burst as u32)
    }

    /// Tokens available now (negative when callers are queued).
    pub fn available(&self) -> f64 {
        let mut s = self.lock();
        s.refill(Instant::now());
        s.tokens
    }

    /// The server throttled us although we had tokens: our bucket is ahead of the server's,
    /// so forget the spare tokens and let the refill resynchronise.
    pub fn drain(&self) {
        let mut s = self.lock();
        s.refill(Instant::now());
        s.tokens = s.tokens.min(0.0);
    }
}

struct Refund<'a>(Option<&'a TokenBucket>);

impl Drop for Refund<'_> {
    fn drop(&mut self) {
        if let Some(bucket) = self.0 {
            let mut s = bucket.lock();
            s.tokens = (s.tokens + 1.0).min(s.burst);
        }
    }
}

fn sane_rate(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        // A zero or garbage rate would stall every caller forever.
        0.01
    }
}

/// Named buckets (one per operation), created on first use from defaults; an operation may
/// instead use a bucket shared across processes ([`RateLimiters::share`]).
#[derive(Debug, Default)]
pub struct RateLimiters {
    defaults: HashMap<String, Limit>,
    fallback: Option<Limit>,
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
    shared: Mutex<HashMap<String, Arc<SharedBucket>>>,
}

impl RateLimiters {
    pub fn new(defaults: HashMap<String, Limit>, fallback: Limit) -> Self {
        Self {
            defaults,
            fallback: Some(fallback),
            buckets: Mutex::new(HashMap::new()),
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// From now on `name` waits on `bucket` (shared across processes) instead of its own.
    pub fn share(&self, name: &str, bucket: Arc<SharedBucket>) {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), bucket);
    }

    pub fn shared(&self, name: &str) -> Option<Arc<SharedBucket>> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The default limit of `name`.
    pub fn default_limit(&self, name: &str) -> Limit {
        self.defaults
            .get(name)
            .copied()
            .or(self.fallback)
            .unwrap_or(Limit::new(1.0, 1))
    }

    /// The bucket for `name`, created on first use from its default (or the fallback).
    pub fn bucket(&self, name: &str) -> Arc<TokenBucket> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(name) {
            return Arc::clone(b);
        }
        let limit = self
            .defaults
            .get(name)
            .copied()
            .or(self.fallback)
            .unwrap_or(Limit::new(1.0, 1));
        let b = Arc::new(TokenBucket::new(limit));
        map.insert(name.to_string(), Arc::clone(&b));
        b
    }
}

// ---------------------------------------------------------------------------------------------
// A bucket shared by several processes.

/// GCRA: reserving `n` tokens at `now_ms` against the stored theoretical arrival time `tat_ms`
/// gives the new `tat_ms` and when the last of the `n` tokens is due (never before `now_ms`).
pub fn gcra_reserve(tat_ms: Option<f64>, now_ms: f64, limit: Limit, n: u32) -> (f64, f64) {
    let interval = 1000.0 / sane_rate(limit.rate);
    let window = f64::from(limit.burst.max(1)) * interval;
    let tat = tat_ms.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat + f64::from(n) * interval;
    (new_tat, (new_tat - window).max(now_ms))
}

/// Where a shared bucket's state lives.
#[async_trait::async_trait]
pub trait SharedBucketStore: Send + Sync {
    /// Reserves `n` tokens of bucket `name`; returns when (unix ms) they are all due.
    async fn reserve(&self, name: &str, limit: Limit, n: u32) -> crate::Result<f64>;
}

/// Shared state in memory (tests: several "processes" in one).
#[derive(Debug, Default)]
pub struct MemoryBucketStore {
    tats: Mutex<HashMap<String, f64>>,
}

#[async_trait::async_trait]
impl SharedBucketStore for MemoryBucketStore {
    async fn reserve(&self, name: &str, limit: Limit, n: u32) -> crate::Result<f64> {
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let (tat, due) = gcra_reserve(tats.get(name).copied(), unix_ms(), limit, n);
        tats.insert(name.to_string(), tat);
        Ok(due)
    }
}

pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// A bucket whose tokens are reserved in a shared store, `chunk` at a time.
pub struct SharedBucket {
    store: Arc<dyn SharedBucketStore>,
    name: String,
    limit: Limit,
    chunk: u32,
    /// Tokens reserved but not handed out yet, and when they are due.
    local: tokio::sync::Mutex<(u32, f64)>,
    /// Used when the store cannot be reached (still limits this process).
    fallback: TokenBucket,
}

impl std::fmt::Debug for SharedBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBucket")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl SharedBucket {
    /// `chunk`: tokens reserved per store write (more = fewer writes, coarser sharing).
    pub fn new(
        store: Arc<dyn SharedBucketStore>,
        name: impl Into<String>,
        limit: Limit,
        chunk: u32,
    ) -> Self {
        Self {
            store,
            name: name.into(),
            limit,
            chunk: chunk.clamp(1, limit.burst.max(1)),
            local: tokio::sync::Mutex::new((0, 0.0)),
            fallback: TokenBucket::new(limit),
        }
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Takes a token, waiting until it is due, unless that would end after `deadline`.
    pub async fn acquire_before(
        &self,
        deadline: Option<Deadline>,
    ) -> Result<(), WouldExceedDeadline> {
        // Held across the wait: this process's callers queue behind the one reserving.
        let mut local = self.local.lock().await;
        if local.0 == 0 {
            match self.store.reserve(&self.name, self.limit, self.chunk).await {
                Ok(due) => *local = (self.chunk, due),
                Err(e) => {
                    drop(local);
                    tracing::warn!(bucket = %self.name, error = %e, "shared rate limit unavailable; limiting this process only");
                    return self.fallback.acquire_before(deadline).await;
                }
            }
        }
        let wait = Duration::from_secs_f64(((local.1 - unix_ms()) / 1000.0).max(0.0));
        if let Some(d) = deadline {
            if Instant::now() + wait > d.instant() {
                return Err(WouldExceedDeadline { wait });
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        local.0 -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_gives_the_burst_then_the_rate() {
        let l = Limit::new(50.0, 100);
        let mut tat = None;
        for _ in 0..100 {
            let (t, due) = gcra_reserve(tat, 0.0, l, 1);
            assert_eq!(due, 0.0);
            tat = Some(t);
        }
        let (t, due) = gcra_reserve(tat, 0.0, l, 1);
        assert!((due - 20.0).abs() < 1e-9, "{due}");
        let (_, due) = gcra_reserve(Some(t), 0.0, l, 5);
        assert!((due - 120.0).abs() < 1e-9, "{due}");
        // Idle time refills: a second later, 50 tokens are free again.
        let (_, due) = gcra_reserve(Some(t), 1000.0, l, 49);
        assert_eq!(due, 1000.0);
    }

    #[tokio::test]
    async fn processes_sharing_a_store_stay_within_the_limit_together() {
        let store: Arc<dyn SharedBucketStore> = Arc::new(MemoryBucketStore::default());
        let limit = Limit::new(100.0, 10);
        let a = Arc::new(SharedBucket::new(store.clone(), "op", limit, 5));
        let b = Arc::new(SharedBucket::new(store, "op", limit, 5));
        let start = std::time::Instant::now();
        let run = |bucket: Arc<SharedBucket>| {
            tokio::spawn(async move {
                for _ in 0..30 {
                    bucket.acquire_before(None).await.unwrap();
                }
            })
        };
        let (x, y) = (run(a), run(b));
        x.await.unwrap();
        y.await.unwrap();
        // 60 tokens: 10 at once, 50 more at 100/s = 0.5 s (one process alone would take 0.2 s).
        let took = start.elapsed().as_secs_f64();
        assert!(took >= 0.45, "took {took}");
        assert!(took < 1.5, "took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let b = TokenBucket::new(Limit::new(10.0, 5));
        let start = Instant::now();
        for _ in 0..5 {
            b.acquire().await;
        }
        assert_eq!(Instant::now(), start, "the burst is free");
        for _ in 0..10 {
            b.acquire().await;
        }
        let took = Instant::now() - start;
        assert!(
            (took.as_secs_f64() - 1.0).abs() < 0.01,
            "10 more tokens at 10/s take 1 s, took {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_bucket() {
        let b = Arc::new(TokenBucket::new(Limit::new(50.0, 100)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let b = Arc::clone(&b);
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..15 {
                    b.acquire().await;
                    times.push(Instant::now());
                }
                times
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        // 300 tokens: 100 at once, 200 more at 50/s = 4 s.
        let last = *all.last().unwrap() - start;
        assert!((last.as_secs_f64() - 4.0).abs() < 0.05, "{last:?}");
        // No window of one second (after the burst) grants more than rate + 1.
        for (i, t) in all.iter().enumerate().skip(100) {
            let n = all[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(n <= 51, "{n} tokens within 1 s");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn set_rate_changes_the_pace() {
        let b = TokenBucket::new(Limit::new(1.0, 1));
        b.acquire().await;
        b.set_rate(100.0);
        let start = Instant::now();
        for _ in 0..100 {
            b.acquire().await;
        }
        let took = Instant::now() - start;
        assert!(took <= Duration::from_millis(1010), "{took:?}");
        assert_eq!(b.limit().rate, 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_refuses_long_waits_without_reserving() {
        let b = TokenBucket::new(Limit::new(1.0, 1));
        b.acquire().await;
        let d = Deadline::after(Duration::from_millis(500));
        let err = b.acquire_before(Some(d)).await.unwrap_err();
        assert!(err.wait > Duration::from_millis(500));
        // Nothing was reserved: the next token is still due 1 s after the first.
        assert!((b.available() - 0.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_waiter_refunds_its_token() {
        let b = Arc::new(TokenBucket::new(Limit::new(1.0, 1)));
        b.acquire().await;
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move { b2.acquire().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiter.abort();
        let _ = waiter.await;
        assert!(b.available() > -0.5, "token given back: {}", b.available());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_forgets_spare_tokens() {
        let b = TokenBucket::new(Limit::new(10.0, 10));
        assert!(b.try_acquire());
        b.drain();
        assert!(!b.try_acquire());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(b.try_acquire());
    }

    #[test]
    fn limiters_create_buckets_from_defaults() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = RateLimiters::new(
                HashMap::from([("a".to_string(), Limit::new(5.0, 5))]),
                Limit::new(1.0, 2),
            );
            assert_eq!(l.bucket("a").limit(), Limit::new(5.0, 5));
            assert_eq!(l.bucket("b").limit(), Limit::new(1.0, 2));
            assert!(Arc::ptr_eq(&l.bucket("a"), &l.bucket("a")));
        });
    }
}
