//! The one retry policy of the project: exponential backoff with full jitter, bounded both by a
//! number of attempts and by a deadline (usually the Lambda invocation's).
//!
//! Generic over the operation and its error, so the SP-API client, DynamoDB and SQS code share it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), flexbridge::Error> {
//! use flexbridge::retry::{Deadline, RetryPolicy};
//! let policy = RetryPolicy::default();
//! let deadline = Deadline::after(std::time::Duration::from_secs(30));
//! let value = policy
//!     .run(Some(deadline), |attempt| async move {
//!         // ... one try; `attempt` counts from 1
//!         Ok::<_, flexbridge::Error>(attempt)
//!     })
//!     .await?;
//! # let _ = value; Ok(()) }
//! ```

use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

/// A point in time after which no new attempt (or wait) may start.
///
/// Built on tokio's clock so tests with paused time drive it like real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// From a wall-clock deadline such as `Invocation::deadline` (already past = now).
    pub fn at_system_time(when: SystemTime) -> Self {
        let left = when
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::after(left)
    }

    pub fn instant(&self) -> Instant {
        self.0
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn is_past(&self) -> bool {
        Instant::now() >= self.0
    }

    /// The earlier of two optional deadlines.
    pub fn earliest(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl From<SystemTime> for Deadline {
    fn from(when: SystemTime) -> Self {
        Self::at_system_time(when)
    }
}

impl From<&crate::runtime::Invocation> for Deadline {
    fn from(inv: &crate::runtime::Invocation) -> Self {
        Self::at_system_time(inv.deadline)
    }
}

/// What an error says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Give up and return the error.
    Stop,
    /// Try again after the policy's backoff.
    Retry,
    /// Try again, but not before this long (e.g. a server's Retry-After), and at least the backoff.
    RetryAfter(Duration),
}

/// Errors that know whether trying again can help.
pub trait Retryable {
    fn retry_decision(&self) -> RetryDecision;
}

impl Retryable for crate::Error {
    fn retry_decision(&self) -> RetryDecision {
        match self {
            crate::Error::SpApi(e) => e.retry_decision(),
            crate::Error::Transient {
                after: Some(after), ..
            } => RetryDecision::RetryAfter(*after),
            e if e.is_retryable() => RetryDecision::Retry,
            _ => RetryDecision::Stop,
        }
    }
}

/// Exponential backoff with full jitter: before retry `n` (n = 1 after the first failure) wait a
/// uniformly random time in `[0, min(max_delay, base * 2^(n-1))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries including the first (1 = no retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_delay,
            max_delay,
        }
    }

    /// No retries at all (one attempt).
    pub fn none() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The upper bound of the jittered wait before retry number `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }

    /// A full-jitter wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }

    /// The wait before the next try, or `None` when the attempts or the deadline are used up
    /// (a wait that would end after the deadline is not started).
    pub fn next_wait(
        &self,
        attempt: u32,
        decision: RetryDecision,
        deadline: Option<Deadline>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let wait = match decision {
            RetryDecision::Stop => return None,
            RetryDecision::Retry => self.backoff(attempt),
            RetryDecision::RetryAfter(min) => self.backoff(attempt).max(min),
        };
        match deadline {
            Some(d) if Instant::now() + wait >= d.instant() => None,
            _ => Some(wait),
        }
    }

    /// Runs `op` (given the attempt number, from 1) until it succeeds, fails for good, runs out of
    /// attempts or would cross `deadline`. Returns the last error in the failing cases.
    pub async fn run<T, E, F, Fut>(&self, deadline: Option<Deadline>, op: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_with(deadline, op, E::retry_decision).await
    }

    /// Like [`run`](Self::run) with a caller-supplied classification of errors.
    pub async fn run_with<T, E, F, Fut, C>(
        &self,
        deadline: Option<Deadline>,
        mut op: F,
        classify: C,
    ) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: Fn(&E) -> RetryDecision,
    {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) => match self.next_wait(attempt, classify(&e), deadline) {
                    None => return Err(e),
                    Some(wait) => {
                        tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct E(RetryDecision);
    impl Retryable for E {
        fn retry_decision(&self) -> RetryDecision {
            self.0
        }
    }

    #[test]
    fn ceiling_grows_exponentially_and_is_capped() {
        let p = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(5), Duration::from_secs(1));
        assert_eq!(p.ceiling(40), Duration::from_secs(1));
    }

    #[test]
    fn backoff_is_full_jitter_within_the_ceiling() {
        let p = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(5));
        let samples: Vec<Duration> = (0..2000).map(|_| p.backoff(3)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter spreads over the whole range, not just near the ceiling.
        assert!(samples.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(300)));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::new(5, Duration::from_millis(50), Duration::from_secs(1));
        let out = p
            .run(None, |attempt| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if attempt < 3 {
                        Err(E(RetryDecision::Retry))
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_max_attempts_with_last_error() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::new(4, Duration::from_millis(10), Duration::from_millis(100));
        let r: Result<(), E> = p
            .run(None, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(E(RetryDecision::Retry)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = RetryPolicy::default()
            .run(None, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(E(RetryDecision::Stop)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_waits_past_the_deadline() {
        let start = Instant::now();
        let deadline = Deadline::after(Duration::from_secs(2));
        let p = RetryPolicy::new(1000, Duration::from_millis(200), Duration::from_secs(1));
        let r: Result<(), E> = p
            .run(Some(deadline), |_| async { Err(E(RetryDecision::Retry)) })
            .await;
        assert!(r.is_err());
        assert!(Instant::now() <= start + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_a_minimum_wait() {
        let start = Instant::now();
        let p = RetryPolicy::new(2, Duration::from_millis(1), Duration::from_millis(1));
        let _ = p
            .run(None, |attempt| async move {
                if attempt == 1 {
                    Err(E(RetryDecision::RetryAfter(Duration::from_secs(3))))
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(Instant::now() >= start + Duration::from_secs(3));
    }

    #[test]
    fn deadline_from_past_system_time_is_past() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let d = Deadline::at_system_time(SystemTime::now() - Duration::from_secs(5));
            assert!(d.is_past());
        });
    }
}
