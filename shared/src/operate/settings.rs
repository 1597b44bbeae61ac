//! The seller's settings as an operator changes them: one list of every setting flexbridge
//! reads ([`SPECS`]), and one validation every change goes through ([`validate`]). A change that
//! fails it is refused and nothing is written; a valid one goes through
//! [`SettingsStore::put`], which keeps it in the change log (`CHANGE#<name>`: who, when, old
//! and new value).
//!
//! Per-location settings keep one value with per-location overrides,
//! `{"default": v, "locations": {"<locationId>": v}}` (what `fulfilment::policy::for_location`
//! and the orders' unmapped-SKU rule read); changing one location rewrites that document.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::store::locations::LocationStore;
use crate::store::settings::{Setting, SettingsStore};

/// What values a setting takes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    /// A whole number in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number in `min..=max`.
    Number {
        min: f64,
        max: f64,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A JSON document the domain type reads (the check says what is wrong).
    Document(fn(&Value) -> std::result::Result<(), String>),
}

/// One setting flexbridge reads.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Takes per-location overrides (`--location`).
    pub per_location: bool,
    /// The value used while it is not set (JSON text).
    pub default: &'static str,
    pub meaning: &'static str,
}

fn low_stock(v: &Value) -> std::result::Result<(), String> {
    serde_json::from_value::<crate::inventory::LowStock>(v.clone())
        .map(|_| ())
        .map_err(|_| "a number, or {\"default\": n, \"skus\": {...}, \"locations\": {...}}".into())
}

fn option_policy(v: &Value) -> std::result::Result<(), String> {
    serde_json::from_value::<crate::fulfilment::policy::OptionPolicy>(v.clone())
        .map(|_| ())
        .map_err(|_| {
            "\"recommended\", \"earliest_pickup\" or {\"cheapest\": {\"<carrier>\": <cost>}}".into()
        })
}

use crate::fulfilment::policy as fp;
use crate::inventory::settings as inv;
use crate::orders::wiring::settings as ord;
use crate::store::settings::names as core;

/// Every setting flexbridge reads, with its type, range and default.
pub const SPECS: &[SettingSpec] = &[
    SettingSpec {
        name: core::AUTO_CONFIRM_ORDERS,
        kind: Kind::Bool,
        per_location: false,
        default: "true",
        meaning: "order sync: confirm new shipments automatically (false: every new shipment is held for a person)",
    },
    SettingSpec {
        name: core::HANDLING_TIME_DAYS,
        kind: Kind::Int { min: 0, max: 30 },
        per_location: false,
        default: "1",
        meaning: "days the warehouse needs from order to handover",
    },
    SettingSpec {
        name: crate::orders::adapters::UNMAPPED_SKU_SETTING,
        kind: Kind::Choice(&["hold", "reject"]),
        per_location: true,
        default: "\"hold\"",
        meaning: "reject-or-hold rule for a line whose SKU is not in the catalog",
    },
    SettingSpec {
        name: ord::POLL_OVERLAP_SECONDS,
        kind: Kind::Int { min: 0, max: 86_400 },
        per_location: false,
        default: "300",
        meaning: "seconds re-read before each order poll cursor",
    },
    SettingSpec {
        name: ord::FIRST_LOOKBACK_HOURS,
        kind: Kind::Int { min: 1, max: 720 },
        per_location: false,
        default: "24",
        meaning: "hours a new location looks back on its first order poll",
    },
    SettingSpec {
        name: ord::POLL_PASS_SECONDS,
        kind: Kind::Int { min: 0, max: 900 },
        per_location: false,
        default: "15",
        meaning: "seconds between passes over new work within one order poll run (0 = one pass)",
    },
    SettingSpec {
        name: ord::NOTIFICATIONS_QUIET_MINUTES,
        kind: Kind::Int { min: 0, max: 1440 },
        per_location: false,
        default: "10",
        meaning: "minutes since the last notification within which an order poll run makes one pass (0 = always its passes)",
    },
    SettingSpec {
        name: fp::AUTO_CANCEL,
        kind: Kind::Bool,
        per_location: true,
        default: "true",
        meaning: "auto-cancel on Amazon: send a warehouse cancellation to Amazon as REJECT (false: hold it for a person)",
    },
    SettingSpec {
        name: fp::SHIP_BY_ALERT_MINUTES,
        kind: Kind::Int { min: 0, max: 10_080 },
        per_location: true,
        default: "120",
        meaning: "minutes before ship-by at which an unlabelled shipment raises ShipByAtRisk",
    },
    SettingSpec {
        name: fp::SHIPPING_OPTION_POLICY,
        kind: Kind::Document(option_policy),
        per_location: true,
        default: "\"recommended\"",
        meaning: "how a shipping option is picked (MFN)",
    },
    SettingSpec {
        name: inv::PUSH_ENABLED,
        kind: Kind::Bool,
        per_location: false,
        default: "false",
        meaning: "inventory sync kill switch: nothing is pushed to Amazon while false",
    },
    SettingSpec {
        name: inv::DRY_RUN,
        kind: Kind::Bool,
        per_location: false,
        default: "false",
        meaning: "inventory dry run: compute and report what would be pushed, call nothing",
    },
    SettingSpec {
        name: inv::QUANTITY_READING,
        kind: Kind::Choice(&["sellable", "on_hand"]),
        per_location: false,
        default: "\"sellable\"",
        meaning: "how Amazon reads the pushed quantity",
    },
    SettingSpec {
        name: inv::BREAKER_ZERO_SHARE,
        kind: Kind::Number { min: 0.0, max: 1.0 },
        per_location: false,
        default: "0.1",
        meaning: "safety share: advertised SKUs one push may set to zero",
    },
    SettingSpec {
        name: inv::BREAKER_UNITS_CUT_SHARE,
        kind: Kind::Number { min: 0.0, max: 1.0 },
        per_location: false,
        default: "0.5",
        meaning: "safety share: advertised units one push may cut",
    },
    SettingSpec {
        name: inv::BREAKER_MIN_SKUS,
        kind: Kind::Int {
            min: 0,
            max: 1_000_000,
        },
        per_location: false,
        default: "5",
        meaning: "pushes changing fewer SKUs than this never trip the breaker",
    },
    SettingSpec {
        name: inv::LOW_STOCK_THRESHOLD,
        kind: Kind::Document(low_stock),
        per_location: false,
        default: "null",
        meaning: "low-stock threshold (a number or per SKU / location rules)",
    },
    SettingSpec {
        name: inv::RECONCILE_MINUTES,
        kind: Kind::Int { min: 1, max: 10_080 },
        per_location: false,
        default: "60",
        meaning: "minutes between inventory reconciliations",
    },
    SettingSpec {
        name: crate::upload::ingest::SETTING_MAX_DISABLE_SHARE,
        kind: Kind::Number { min: 0.0, max: 1.0 },
        per_location: false,
        default: "0.2",
        meaning: "safety share: active SKUs one full catalog file may disable",
    },
    SettingSpec {
        name: crate::upload::ingest::SETTING_ALLOW_MASS_DISABLE,
        kind: Kind::Bool,
        per_location: false,
        default: "false",
        meaning: "let a full catalog file disable any share of SKUs",
    },
    SettingSpec {
        name: crate::upload::ingest::SETTING_MAX_ZERO_SHARE,
        kind: Kind::Number { min: 0.0, max: 1.0 },
        per_location: false,
        default: "0.2",
        meaning: "safety share: a hub's stocked SKUs one full stock file may set to 0",
    },
    SettingSpec {
        name: crate::upload::ingest::SETTING_ALLOW_MASS_ZERO,
        kind: Kind::Bool,
        per_location: false,
        default: "false",
        meaning: "let a full stock file set any share of a hub's SKUs to 0",
    },
];

pub fn spec(name: &str) -> Result<&'static SettingSpec> {
    SPECS.iter().find(|s| s.name == name).ok_or_else(|| {
        let mut known: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        known.sort_unstable();
        Error::InvalidInput(format!(
            "unknown setting {name:?}; known settings: {}",
            known.join(", ")
        ))
    })
}

impl SettingSpec {
    /// Whether `value` is one this setting takes (one plain value, not the per-location document).
    pub fn check(&self, value: &Value) -> Result<()> {
        let bad = |expected: String| {
            Err(Error::InvalidInput(format!(
                "setting {}: {value} is not valid, expected {expected}",
                self.name
            )))
        };
        match self.kind {
            Kind::Bool if value.is_boolean() => Ok(()),
            Kind::Bool => bad("true or false".into()),
            Kind::Int { min, max } => match value.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(()),
                _ => bad(format!("a whole number from {min} to {max}")),
            },
            Kind::Number { min, max } => match value.as_f64() {
                Some(n) if n >= min && n <= max => Ok(()),
                _ => bad(format!("a number from {min} to {max}")),
            },
            Kind::Choice(choices) => match value.as_str() {
                Some(s) if choices.contains(&s) => Ok(()),
                _ => bad(format!("one of {}", choices.join(", "))),
            },
            Kind::Document(f) => f(value).or_else(bad),
        }
    }

    pub fn default_value(&self) -> Value {
        serde_json::from_str(self.default).unwrap_or(Value::Null)
    }
}

/// Reads what an operator typed: JSON when it parses (`true`, `0.2`, `{"cheapest": …}`),
/// otherwise the text as a string (`reject`).
pub fn parse_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// The value to store when `name` changes to `value` (for `location`, or for every location):
/// validated against the setting's type and range, the known locations and the stored value.
/// Refused with [`Error::InvalidInput`] before anything is written.
pub fn validate(
    name: &str,
    value: &Value,
    location: Option<&str>,
    known_locations: &[String],
    current: Option<&Value>,
) -> Result<Value> {
    let spec = spec(name)?;
    let Some(location) = location else {
        // A whole per-location document may be set at once; each of its values is checked.
        if spec.per_location {
            if let Some((default, overrides)) = split(value) {
                spec.check(default)?;
                for (loc, v) in overrides {
                    known_location(name, loc, known_locations)?;
                    spec.check(v)?;
                }
                return Ok(value.clone());
            }
        }
        spec.check(value)?;
        return Ok(value.clone());
    };
    if !spec.per_location {
        return Err(Error::InvalidInput(format!(
            "setting {name} is the same for every location; set it without --location"
        )));
    }
    known_location(name, location, known_locations)?;
    spec.check(value)?;
    let (default, mut overrides) = match current {
        None => (spec.default_value(), Map::new()),
        Some(c) => match split(c) {
            Some((d, o)) => (d.clone(), o.clone()),
            None => (c.clone(), Map::new()),
        },
    };
    overrides.insert(location.to_string(), value.clone());
    Ok(json!({"default": default, "locations": overrides}))
}

/// `{"default": v, "locations": {...}}` split into its parts.
fn split(v: &Value) -> Option<(&Value, &Map<String, Value>)> {
    let o = v.as_object()?;
    if o.len() != 2 {
        return None;
    }
    Some((o.get("default")?, o.get("locations")?.as_object()?))
}

fn known_location(name: &str, location: &str, known: &[String]) -> Result<()> {
    if known.iter().any(|k| k == location) {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "setting {name}: location {location:?} is not mapped (known: {}); map it first with `hubs add`",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
}

/// Validates and stores one change (logged with `by`). Nothing is written when it is refused.
pub async fn change(
    settings: &dyn SettingsStore,
    locations: &dyn LocationStore,
    name: &str,
    value: Value,
    location: Option<&str>,
    by: &str,
) -> Result<Setting> {
    let by = by.trim();
    if by.is_empty() {
        return Err(Error::InvalidInput(
            "a change needs who made it (--by or $USER)".into(),
        ));
    }
    let known: Vec<String> = locations
        .list()
        .await?
        .into_iter()
        .map(|l| l.location_id)
        .collect();
    let current = settings.get(name).await?;
    let new = validate(
        name,
        &value,
        location,
        &known,
        current.as_ref().map(|c| &c.value),
    )?;
    // The version read is the one replaced: a concurrent edit makes this a conflict.
    let expected = current.as_ref().map(|c| c.version).unwrap_or(0);
    settings.put(name, new, Some(expected), by).await
}

/// One line of `settings get`: the stored value or the default.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingView {
    pub name: String,
    pub value: Value,
    /// `false`: not set, `value` is the default.
    pub set: bool,
    pub version: u64,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
    pub per_location: bool,
    pub meaning: String,
}

/// Every known setting (stored or default), plus stored ones flexbridge does not know.
pub async fn view(settings: &dyn SettingsStore) -> Result<Vec<SettingView>> {
    let stored = settings.list().await?;
    let mut out: Vec<SettingView> = SPECS
        .iter()
        .map(|spec| {
            let s = stored.iter().find(|s| s.name == spec.name);
            SettingView {
                name: spec.name.to_string(),
                value: s.map(|s| s.value.clone()).unwrap_or(spec.default_value()),
                set: s.is_some(),
                version: s.map(|s| s.version).unwrap_or(0),
                updated_at: s.map(|s| s.updated_at.clone()),
                updated_by: s.map(|s| s.updated_by.clone()),
                per_location: spec.per_location,
                meaning: spec.meaning.to_string(),
            }
        })
        .collect();
    for s in stored {
        if out.iter().any(|v| v.name == s.name) || s.name.starts_with(super::hubs::LOG_PREFIX) {
            continue;
        }
        out.push(SettingView {
            name: s.name,
            value: s.value,
            set: true,
            version: s.version,
            updated_at: Some(s.updated_at),
            updated_by: Some(s.updated_by),
            per_location: false,
            meaning: "not read by flexbridge".into(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::locations::{Location, MemoryLocationStore};
    use crate::store::settings::MemorySettingsStore;

    fn locations() -> MemoryLocationStore {
        MemoryLocationStore::with(vec![Location {
            location_id: "EAST".into(),
            hub_id: "HUB-NJ".into(),
            name: "NJ".into(),
            marketplace_id: "M".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        }])
    }

    #[test]
    fn every_spec_default_is_valid() {
        for s in SPECS {
            let d = s.default_value();
            if d.is_null() {
                continue;
            }
            s.check(&d).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }

    #[tokio::test]
    async fn an_invalid_change_is_refused_and_writes_nothing() {
        let st = MemorySettingsStore::new();
        let locs = locations();
        for (name, value, loc) in [
            ("no_such_setting", json!(true), None),
            (inv::PUSH_ENABLED, json!("yes"), None),
            (inv::BREAKER_ZERO_SHARE, json!(1.5), None),
            (inv::RECONCILE_MINUTES, json!(0), None),
            (inv::QUANTITY_READING, json!("all"), None),
            (fp::AUTO_CANCEL, json!(false), Some("WEST")),
            (inv::PUSH_ENABLED, json!(false), Some("EAST")),
            (
                fp::AUTO_CANCEL,
                json!({"default": true, "locations": {"WEST": false}}),
                None,
            ),
        ] {
            let err = change(&st, &locs, name, value, loc, "ops")
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{name}: {err}");
            assert!(st.get(name).await.unwrap().is_none(), "{name}");
            assert!(st.history(name).await.unwrap().is_empty(), "{name}");
        }
    }

    #[tokio::test]
    async fn a_location_override_keeps_the_default_and_is_logged() {
        let st = MemorySettingsStore::new();
        let locs = locations();
        change(
            &st,
            &locs,
            fp::AUTO_CANCEL,
            json!(false),
            Some("EAST"),
            "ana",
        )
        .await
        .unwrap();
        let s = st.get(fp::AUTO_CANCEL).await.unwrap().unwrap();
        assert_eq!(
            s.value,
            json!({"default": true, "locations": {"EAST": false}})
        );
        // What the fulfilment code reads.
        assert!(!fp::for_location(&st, fp::AUTO_CANCEL, "EAST", true)
            .await
            .unwrap());
        assert!(fp::for_location(&st, fp::AUTO_CANCEL, "OTHER", true)
            .await
            .unwrap());
        change(&st, &locs, fp::AUTO_CANCEL, json!(false), None, "bo")
            .await
            .unwrap();
        let h = st.history(fp::AUTO_CANCEL).await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].by.as_str(), h[0].new.clone()), ("bo", json!(false)));
        assert_eq!(h[1].old, None);
        assert_eq!(parse_value("reject"), json!("reject"));
        assert_eq!(parse_value("0.2"), json!(0.2));
    }

    #[tokio::test]
    async fn view_shows_defaults_and_stored_values() {
        let st = MemorySettingsStore::new();
        change(&st, &locations(), inv::DRY_RUN, json!(true), None, "ops")
            .await
            .unwrap();
        let v = view(&st).await.unwrap();
        let dry = v.iter().find(|s| s.name == inv::DRY_RUN).unwrap();
        assert!(dry.set && dry.value == json!(true) && dry.version == 1);
        let push = v.iter().find(|s| s.name == inv::PUSH_ENABLED).unwrap();
        assert!(!push.set && push.value == json!(false));
    }
}
