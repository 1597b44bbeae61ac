//! The arithmetic of the bill, pure: the price table (`infra/bench/prices/aws-us-east-1.json`),
//! Lambda's billed duration and GB-seconds, the hold of a poller that waits between passes,
//! and a bill's lines summed into fixed and per-order parts. `cost.rs` measures the
//! quantities; `tests/tests/e2e/cost.rs` checks this arithmetic on a hand-computed case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub usd: f64,
    /// The price is for this many units.
    pub per: f64,
    pub unit: String,
    /// The AWS pricing page it came from.
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PriceTable {
    pub region: String,
    pub as_of: String,
    pub terms: String,
    pub prices: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The table kept in the repository.
    pub fn default_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prices/aws-us-east-1.json")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    /// What `quantity` units of `key` cost.
    pub fn cost(&self, key: &str, quantity: f64) -> Result<f64> {
        let p = self
            .prices
            .get(key)
            .ok_or_else(|| anyhow!("no price {key} in the price table"))?;
        Ok(quantity / p.per * p.usd)
    }
}

/// Lambda's billed duration of one invocation: its handler time rounded up to the next 1 ms.
pub fn billed_ms(handler: Duration) -> u64 {
    (handler.as_secs_f64() * 1000.0).ceil().max(1.0) as u64
}

/// GB-seconds of `billed_ms` at `memory_mb` (Lambda counts 1 GB as 1,024 MB).
pub fn gb_seconds(memory_mb: u64, billed_ms: f64) -> f64 {
    memory_mb as f64 / 1024.0 * billed_ms / 1000.0
}

/// How long one run of a poller that repeats a pass every `interval` holds its function in
/// AWS: it passes, then, unless notifications are flowing (a notification handled within
/// `orders_notifications_quiet_minutes`: one pass, `OrderPoller::run`), while at least
/// `interval + reserve` of `timeout` is left, waits for the next interval and passes again.
/// `pass` is one pass's time. Returns (passes, held time).
pub fn poller_hold(
    timeout: Duration,
    interval: Duration,
    reserve: Duration,
    pass: Duration,
    notifications_flowing: bool,
) -> (u32, Duration) {
    let mut passes = 1;
    let mut started = Duration::ZERO;
    let mut now = pass;
    while !notifications_flowing
        && !interval.is_zero()
        && timeout.saturating_sub(now) >= interval + reserve
    {
        started = (started + interval).max(now);
        now = started + pass;
        passes += 1;
    }
    (passes, now.min(timeout))
}

/// One line of the bill: a quantity for the month and its price.
#[derive(Debug, Clone)]
pub struct Line {
    pub service: String,
    pub item: String,
    /// Units per month.
    pub quantity: f64,
    pub price: String,
    /// Paid whatever the orders (the template and the clock); otherwise it grows with orders.
    pub fixed: bool,
    pub usd: f64,
}

/// A month's bill at the measured load.
#[derive(Debug, Clone, Default)]
pub struct Bill {
    pub lines: Vec<Line>,
}

impl Bill {
    pub fn add(
        &mut self,
        prices: &PriceTable,
        service: &str,
        item: &str,
        quantity: f64,
        price: &str,
        fixed: bool,
    ) -> Result<()> {
        let usd = prices.cost(price, quantity)?;
        self.lines.push(Line {
            service: service.into(),
            item: item.into(),
            quantity,
            price: price.into(),
            fixed,
            usd,
        });
        Ok(())
    }

    pub fn fixed_usd(&self) -> f64 {
        self.lines.iter().filter(|l| l.fixed).map(|l| l.usd).sum()
    }

    pub fn variable_usd(&self) -> f64 {
        self.lines.iter().filter(|l| !l.fixed).map(|l| l.usd).sum()
    }

    pub fn total_usd(&self) -> f64 {
        self.fixed_usd() + self.variable_usd()
    }

    /// The month's per-order part per 1,000 orders a day, the bill measured at
    /// `orders_per_day`.
    pub fn per_1000_orders_usd(&self, orders_per_day: f64) -> f64 {
        if orders_per_day <= 0.0 {
            return 0.0;
        }
        self.variable_usd() / orders_per_day * 1000.0
    }

    /// A month at `orders_per_day`: the fixed part plus the per-order part scaled.
    pub fn month_at(&self, measured_orders_per_day: f64, orders_per_day: f64) -> f64 {
        self.fixed_usd()
            + self.per_1000_orders_usd(measured_orders_per_day) * orders_per_day / 1000.0
    }

    /// Sum by service: (fixed, per order).
    pub fn by_service(&self) -> BTreeMap<String, (f64, f64)> {
        let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for l in &self.lines {
            let e = out.entry(l.service.clone()).or_default();
            if l.fixed {
                e.0 += l.usd;
            } else {
                e.1 += l.usd;
            }
        }
        out
    }
}
