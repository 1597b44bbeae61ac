//! Token buckets per operation, with Amazon's published defaults.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Requests per second and burst of one operation's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub rate: f64,
    pub burst: f64,
}

/// Amazon's defaults: batchInventory 50/100, listReturns & getReturn 10/20,
/// patchListingsItem 5/5, every Notifications operation 1/5; Shipments limits are unpublished,
/// we use 1 rps / burst 2.
pub fn default_limit(operation: &str) -> RateLimit {
    let (rate, burst) = match operation {
        "batchInventory" => (50.0, 100.0),
        "listReturns" | "getReturn" => (10.0, 20.0),
        "patchListingsItem" => (5.0, 5.0),
        op if crate::notifications_api::OPERATIONS.contains(&op) => (1.0, 5.0),
        _ => (1.0, 2.0),
    };
    RateLimit { rate, burst }
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

/// All buckets; `enabled = false` never throttles but still reports the limit header.
#[derive(Debug)]
pub struct Limiter {
    pub enabled: bool,
    overrides: BTreeMap<String, RateLimit>,
    buckets: BTreeMap<String, Bucket>,
}

impl Limiter {
    pub fn new(enabled: bool, overrides: &BTreeMap<String, RateLimit>) -> Self {
        Self {
            enabled,
            overrides: overrides.clone(),
            buckets: BTreeMap::new(),
        }
    }

    pub fn limit(&self, operation: &str) -> RateLimit {
        self.overrides
            .get(operation)
            .copied()
            .unwrap_or_else(|| default_limit(operation))
    }

    /// Replaces one operation's limit; its bucket starts full.
    pub fn set(&mut self, operation: &str, limit: RateLimit) {
        self.overrides.insert(operation.to_string(), limit);
        self.buckets.remove(operation);
    }

    pub fn overrides(&self) -> &BTreeMap<String, RateLimit> {
        &self.overrides
    }

    /// Takes one token; `false` means answer 429.
    pub fn try_acquire(&mut self, operation: &str, now: Instant) -> bool {
        if !self.enabled {
            return true;
        }
        let limit = self.limit(operation);
        let b = self.buckets.entry(operation.to_string()).or_insert(Bucket {
            limit,
            tokens: limit.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * b.limit.rate).min(b.limit.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The `x-amzn-RateLimit-Limit` value, e.g. `50.0` or `0.5`.
pub fn header_value(limit: RateLimit) -> String {
    format!("{:?}", limit.rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let mut l = Limiter::new(true, &BTreeMap::new());
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(l.try_acquire("batchInventory", t0));
        }
        assert!(!l.try_acquire("batchInventory", t0));
        // 50 rps: one token every 20 ms
        assert!(l.try_acquire("batchInventory", t0 + Duration::from_millis(21)));
        assert!(!l.try_acquire("batchInventory", t0 + Duration::from_millis(22)));
        assert_eq!(header_value(l.limit("getShipment")), "1.0");
    }
}
