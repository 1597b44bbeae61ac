//! Faults on demand: throttles, 500/503, latency, dropped connections and "apply then fail".
//! Deterministic `script`s are consumed first (one entry per request), then seeded random rates.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Let this request through untouched (useful inside a script).
    None,
    /// 429 with the throttling body, nothing applied.
    Throttle,
    /// 500 SC_00000, nothing applied.
    Error500,
    /// 503 SC_00001, nothing applied.
    Error503,
    /// Close the connection without any response, nothing applied.
    Drop,
    /// Apply the change, then answer 500.
    ApplyThenFail,
    /// Apply the change, then hold the connection for `hangMs` and close it without a response.
    ApplyThenHang,
}

impl FaultKind {
    /// Whether the request's change is made before the fault.
    pub fn applies(self) -> bool {
        matches!(
            self,
            FaultKind::ApplyThenFail | FaultKind::ApplyThenHang | FaultKind::None
        )
    }
}

/// Fault settings for one operation (or all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultRule {
    /// Share of requests (0..1) answered 429.
    pub throttle_rate: f64,
    pub error500_rate: f64,
    pub error503_rate: f64,
    /// Share of requests whose connection is closed without a response.
    pub drop_rate: f64,
    pub apply_then_fail_rate: f64,
    pub apply_then_hang_rate: f64,
    /// Added to every request.
    pub latency_ms: u64,
    /// Up to this much more, drawn per request.
    pub latency_jitter_ms: u64,
    /// How long "apply then hang" holds the connection (default 30000).
    pub hang_ms: u64,
    /// Consumed one per request before the random rates.
    pub script: Vec<FaultKind>,
}

/// Global rule plus per-operation rules (an operation's rule replaces the global one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    pub global: FaultRule,
    pub operations: BTreeMap<String, FaultRule>,
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub latency: Duration,
    pub kind: FaultKind,
    pub hang: Duration,
}

/// The live fault configuration with its scripts and seeded RNG.
#[derive(Debug)]
pub struct FaultState {
    config: FaultConfig,
    scripts: BTreeMap<String, VecDeque<FaultKind>>,
    global_script: VecDeque<FaultKind>,
    rng: StdRng,
}

impl FaultState {
    pub fn new(config: FaultConfig, seed: u64) -> Self {
        let mut s = Self {
            config: FaultConfig::default(),
            scripts: BTreeMap::new(),
            global_script: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_fa17),
        };
        s.set(config);
        s
    }

    pub fn set(&mut self, config: FaultConfig) {
        self.global_script = config.global.script.iter().copied().collect();
        self.scripts = config
            .operations
            .iter()
            .map(|(op, r)| (op.clone(), r.script.iter().copied().collect()))
            .collect();
        self.config = config;
    }

    /// The configuration with scripts showing what is left of them.
    pub fn current(&self) -> FaultConfig {
        let mut c = self.config.clone();
        c.global.script = self.global_script.iter().copied().collect();
        for (op, r) in c.operations.iter_mut() {
            r.script = self
                .scripts
                .get(op)
                .map(|q| q.iter().copied().collect())
                .unwrap_or_default();
        }
        c
    }

    /// Whether `operation` has a rule of its own (LWA faults only apply then).
    pub fn has_rule(&self, operation: &str) -> bool {
        self.config.operations.contains_key(operation)
    }

    pub fn decide(&mut self, operation: &str) -> Decision {
        let rule = self
            .config
            .operations
            .get(operation)
            .unwrap_or(&self.config.global)
            .clone();
        let mut latency = rule.latency_ms;
        if rule.latency_jitter_ms > 0 {
            latency += self.rng.random_range(0..=rule.latency_jitter_ms);
        }
        let hang = Duration::from_millis(if rule.hang_ms == 0 {
            30_000
        } else {
            rule.hang_ms
        });
        let scripted = match self.scripts.get_mut(operation) {
            Some(q) if !q.is_empty() => q.pop_front(),
            _ => self.global_script.pop_front(),
        };
        let kind = match scripted {
            Some(k) => k,
            None => {
                let u: f64 = self.rng.random();
                let mut acc = 0.0;
                let mut pick = FaultKind::None;
                for (rate, kind) in [
                    (rule.throttle_rate, FaultKind::Throttle),
                    (rule.error500_rate, FaultKind::Error500),
                    (rule.error503_rate, FaultKind::Error503),
                    (rule.drop_rate, FaultKind::Drop),
                    (rule.apply_then_fail_rate, FaultKind::ApplyThenFail),
                    (rule.apply_then_hang_rate, FaultKind::ApplyThenHang),
                ] {
                    acc += rate.max(0.0);
                    if u < acc {
                        pick = kind;
                        break;
                    }
                }
                pick
            }
        };
        Decision {
            latency: Duration::from_millis(latency),
            kind,
            hang,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_first_then_rates() {
        let mut ops = BTreeMap::new();
        ops.insert(
            "processShipment".to_string(),
            FaultRule {
                script: vec![FaultKind::ApplyThenFail, FaultKind::Drop],
                ..Default::default()
            },
        );
        let cfg = FaultConfig {
            global: FaultRule {
                throttle_rate: 1.0,
                ..Default::default()
            },
            operations: ops,
        };
        let mut f = FaultState::new(cfg, 7);
        assert_eq!(f.decide("processShipment").kind, FaultKind::ApplyThenFail);
        assert_eq!(f.decide("processShipment").kind, FaultKind::Drop);
        // the operation's own rule (no rates) replaces the global one
        assert_eq!(f.decide("processShipment").kind, FaultKind::None);
        assert_eq!(f.decide("getShipment").kind, FaultKind::Throttle);
    }

    #[test]
    fn rates_are_seeded() {
        let cfg = FaultConfig {
            global: FaultRule {
                error503_rate: 0.3,
                ..Default::default()
            },
            ..Default::default()
        };
        let draw = |seed| {
            let mut f = FaultState::new(cfg.clone(), seed);
            (0..200)
                .map(|_| f.decide("x").kind == FaultKind::Error503)
                .collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        let n = a.iter().filter(|b| **b).count();
        assert!((30..=90).contains(&n), "{n}");
    }
}
