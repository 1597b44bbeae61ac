//! EventBridge schedule expressions (`rate(...)`, `cron(...)`), evaluated by the runner.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, Duration as ChronoDuration, Timelike, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Rate(Duration),
    Cron(Box<Cron>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days_of_month: Option<Vec<bool>>,
    months: Vec<bool>,
    days_of_week: Option<Vec<bool>>,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule> {
        let expr = expr.trim();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let mut parts = inner.split_whitespace();
            let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
                bail!("{expr}: expected rate(<value> <unit>)");
            };
            let n: u64 = n.parse().with_context(|| format!("{expr}: bad value"))?;
            let secs = match (n, unit) {
                (1, "minute") | (2.., "minutes") => 60,
                (1, "hour") | (2.., "hours") => 3600,
                (1, "day") | (2.., "days") => 86_400,
                _ => {
                    bail!("{expr}: unit must be minute(s), hour(s) or day(s), singular only for 1")
                }
            };
            return Ok(Schedule::Rate(Duration::from_secs(n * secs)));
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            let f: Vec<&str> = inner.split_whitespace().collect();
            if f.len() != 6 {
                bail!("{expr}: cron needs 6 fields (minutes hours day-of-month month day-of-week year)");
            }
            let dom = if f[2] == "?" {
                None
            } else {
                Some(field(f[2], 1, 31, &[])?)
            };
            let dow = if f[4] == "?" {
                None
            } else {
                Some(field(
                    f[4],
                    1,
                    7,
                    &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
                )?)
            };
            if dom.is_some() == dow.is_some() {
                bail!("{expr}: exactly one of day-of-month and day-of-week must be '?'");
            }
            return Ok(Schedule::Cron(Box::new(Cron {
                minutes: field(f[0], 0, 59, &[])?,
                hours: field(f[1], 0, 23, &[])?,
                days_of_month: dom,
                months: field(
                    f[3],
                    1,
                    12,
                    &[
                        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                        "NOV", "DEC",
                    ],
                )?,
                days_of_week: dow,
            })));
        }
        bail!("{expr}: not a rate(...) or cron(...) expression")
    }

    /// The first firing strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate(d) => Some(t + ChronoDuration::from_std(*d).ok()?),
            Schedule::Cron(c) => {
                let mut m = t.with_second(0)?.with_nanosecond(0)? + ChronoDuration::minutes(1);
                for _ in 0..(366 * 24 * 60) {
                    if c.matches(m) {
                        return Some(m);
                    }
                    m += ChronoDuration::minutes(1);
                }
                None
            }
        }
    }
}

impl Cron {
    fn matches(&self, t: DateTime<Utc>) -> bool {
        let dow = t.weekday().num_days_from_sunday() as usize + 1; // AWS: 1 = SUN
        self.minutes[t.minute() as usize]
            && self.hours[t.hour() as usize]
            && self.months[t.month() as usize]
            && self
                .days_of_month
                .as_ref()
                .is_none_or(|d| d[t.day() as usize])
            && self.days_of_week.as_ref().is_none_or(|d| d[dow])
    }
}

/// One cron field as a table of allowed values (index = value).
fn field(spec: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>> {
    let mut allowed = vec![false; max as usize + 1];
    let value = |s: &str| -> Result<u32> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        let v: u32 = s
            .parse()
            .with_context(|| format!("cron field {spec:?}: {s:?} is not a value"))?;
        if v < min || v > max {
            bail!("cron field {spec:?}: {v} is outside {min}-{max}");
        }
        Ok(v)
    };
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .with_context(|| format!("cron step in {spec:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            bail!("cron field {spec:?}: step 0");
        }
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, max),
                None => (value(r)?, value(r)?),
            },
        };
        let mut v = lo;
        while v <= hi {
            allowed[v as usize] = true;
            v += step;
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rates() {
        assert_eq!(
            Schedule::parse("rate(5 minutes)").unwrap(),
            Schedule::Rate(Duration::from_secs(300))
        );
        assert_eq!(
            Schedule::parse("rate(1 hour)").unwrap(),
            Schedule::Rate(Duration::from_secs(3600))
        );
        assert!(Schedule::parse("rate(5 minute)").is_err());
        assert!(Schedule::parse("rate(1 minutes)").is_err());
        assert!(Schedule::parse("every 5 minutes").is_err());
    }

    #[test]
    fn cron_next() {
        let s = Schedule::parse("cron(0 3 * * ? *)").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap();
        assert_eq!(
            s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap())
        );
        let s = Schedule::parse("cron(*/15 * ? * MON-FRI *)").unwrap();
        // 2026-11-21 is a Saturday: the next firing is Monday 00:00.
        assert_eq!(
            s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap())
        );
        assert!(Schedule::parse("cron(0 3 * * * *)").is_err());
    }
}
