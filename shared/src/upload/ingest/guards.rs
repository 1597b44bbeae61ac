//! The guardrails: price rows against the catalog and the last price sent, inventory rows
//! against the hub mapping, and the whole-file guards of full mode (mass disable, mass zero).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::parser::{Event, PriceLine, RowData, StockLine};
use super::{Checkpoint, Ports};
use crate::error::{Error, Result};
use crate::inventory::changes::StockChanges;
use crate::prices::PriceUpdate;
use crate::store::catalog::{self, CatalogItem, CatalogStore};
use crate::store::inventory::OnHand;
use crate::store::settings;
use crate::upload::report::RowError;
use crate::upload::skuset::SkuSet;
use crate::upload::validate::Cents;
use crate::upload::{UploadKey, UploadRef};

/// Setting: the largest share of active SKUs a full catalog upload may disable (0.0–1.0).
pub const SETTING_MAX_DISABLE_SHARE: &str = "catalog_max_disable_share";
/// Setting: `true` lets every full catalog upload disable any number of SKUs.
pub const SETTING_ALLOW_MASS_DISABLE: &str = "catalog_allow_mass_disable";
pub const DEFAULT_MAX_DISABLE_SHARE: f64 = 0.2;
/// Setting: the largest share of a hub's SKUs in stock a full inventory upload may set to zero.
pub const SETTING_MAX_ZERO_SHARE: &str = "inventory_max_zero_share";
/// Setting: `true` lets every full inventory upload zero any number of SKUs.
pub const SETTING_ALLOW_MASS_ZERO: &str = "inventory_allow_mass_zero";
pub const DEFAULT_MAX_ZERO_SHARE: f64 = 0.2;
/// A price further than this from the last price we sent needs `force`.
pub const MAX_PRICE_CHANGE: f64 = 0.5;

/// Checks price rows against the catalog and the last price sent. Returns, per row, either
/// the update to send or the reason it is refused.
pub(super) async fn guard_prices(
    catalog: &dyn CatalogStore,
    rows: &[(u64, &PriceLine)],
    upload: &UploadRef,
    default_marketplace: &str,
) -> Result<Vec<std::result::Result<PriceUpdate, RowError>>> {
    let skus: Vec<String> = rows.iter().map(|(_, r)| r.sku.clone()).collect();
    let items: HashMap<String, CatalogItem> = catalog
        .get_items(&skus)
        .await?
        .into_iter()
        .map(|i| (i.sku.clone(), i))
        .collect();
    let market = |r: &PriceLine| {
        r.marketplace_id
            .clone()
            .unwrap_or_else(|| default_marketplace.to_string())
    };
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|(_, r)| (r.sku.clone(), market(r)))
        .collect();
    let last: HashMap<(String, String), catalog::PriceState> = catalog
        .get_prices(&keys)
        .await?
        .into_iter()
        .map(|p| ((p.sku.clone(), p.marketplace_id.clone()), p))
        .collect();
    Ok(rows
        .iter()
        .map(|&(line, r)| {
            let refuse = |column: &str, value: String, reason: String| RowError {
                line,
                column: column.into(),
                value,
                reason,
            };
            let item = items.get(&r.sku).ok_or_else(|| {
                refuse(
                    "sku",
                    r.sku.clone(),
                    "SKU is not in the catalog; upload it under catalog/ first".into(),
                )
            })?;
            if !item.enabled {
                return Err(refuse("sku", r.sku.clone(), "SKU is disabled in the catalog".into()));
            }
            let product_type = item.product_type.clone().ok_or_else(|| {
                refuse(
                    "sku",
                    r.sku.clone(),
                    "the catalog has no product_type for this SKU; Amazon needs it to change a price".into(),
                )
            })?;
            let marketplace_id = market(r);
            if let Some(prev) = last.get(&(r.sku.clone(), marketplace_id.clone())) {
                let change = (r.price.0 - prev.price).abs() as f64 / prev.price.max(1) as f64;
                if !r.force && prev.currency == r.currency && change > MAX_PRICE_CHANGE {
                    return Err(refuse(
                        "price",
                        r.price.to_string(),
                        format!(
                            "price {} is more than {:.0}% away from the last price we sent ({}); set force to true to send it anyway",
                            r.price,
                            MAX_PRICE_CHANGE * 100.0,
                            Cents(prev.price)
                        ),
                    ));
                }
            }
            Ok(PriceUpdate {
                upload: upload.label(),
                key: upload.key.clone(),
                version_id: upload.version_id.clone(),
                order: upload.order.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                line,
                sku: r.sku.clone(),
                asin: item.asin.clone(),
                product_type,
                marketplace_id,
                currency: r.currency.clone(),
                price: r.price.0,
            })
        })
        .collect())
}

/// Checks inventory rows: the hub must be the folder's (full mode) and mapped to a location
/// with inventory sync on. Returns, per row, the figure to store or the reason it is refused.
pub(super) async fn guard_stock(
    stock: &StockChanges,
    key: &UploadKey,
    rows: &[(u64, &StockLine)],
    file_time: DateTime<Utc>,
) -> Result<Vec<std::result::Result<OnHand, RowError>>> {
    let mut mapped: HashMap<String, bool> = HashMap::new();
    for (_, r) in rows {
        if !mapped.contains_key(&r.hub) {
            let synced = !stock.synced_locations(&r.hub).await?.is_empty();
            mapped.insert(r.hub.clone(), synced);
        }
    }
    Ok(rows
        .iter()
        .map(|&(line, r)| {
            let refuse = |reason: String| RowError {
                line,
                column: "hub".into(),
                value: r.hub.clone(),
                reason,
            };
            if let Some(hub) = key.hub.as_deref().filter(|h| *h != r.hub) {
                return Err(refuse(format!(
                    "this file is the whole stock of hub {hub} (its folder inventory/full/{hub}/); a row for another hub does not belong in it"
                )));
            }
            if !mapped[&r.hub] {
                return Err(refuse(format!(
                    "hub {} is not mapped to an Amazon location with inventory sync on",
                    r.hub
                )));
            }
            Ok(OnHand {
                hub: r.hub.clone(),
                sku: r.sku.clone(),
                on_hand: r.on_hand,
                reported_at: r.as_of.unwrap_or(file_time),
            })
        })
        .collect())
}

/// The time of an inventory file's figures without `as_of`: its S3 event time (the order),
/// else when processing started (a stable value, kept in the checkpoint).
pub(super) fn file_time(upload: &UploadRef, cp: &Checkpoint) -> DateTime<Utc> {
    upload
        .order
        .as_ref()
        .and_then(|o| o.as_str().split('|').next())
        .or(Some(cp.started_at.as_str()))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

pub(super) fn stock_of(ports: &Ports) -> Result<&StockChanges> {
    ports.stock.as_deref().ok_or_else(|| {
        Error::Config(
            "inventory uploads need the inventory sync (INVENTORY_TABLE, LOCATIONS_TABLE); this function has none".into(),
        )
    })
}

pub(super) fn stock_rows(window: &[Event]) -> Vec<(u64, &StockLine)> {
    window
        .iter()
        .filter_map(|e| match e {
            Event::Row {
                line,
                data: RowData::Stock(r),
                ..
            } => Some((*line, r)),
            _ => None,
        })
        .collect()
}

/// Full mode: refuses when the file would disable more than the allowed share of active SKUs.
pub(super) async fn mass_disable_guard(
    ports: &Ports,
    key: &UploadKey,
    present: &SkuSet,
) -> Result<Option<(String, String)>> {
    let settings = ports.settings.as_ref();
    let allowed_by_setting = settings::get_or(settings, SETTING_ALLOW_MASS_DISABLE, false).await?;
    if key.allows_mass_disable() || allowed_by_setting {
        return Ok(None);
    }
    let share: f64 = settings::get_or(
        settings,
        SETTING_MAX_DISABLE_SHARE,
        DEFAULT_MAX_DISABLE_SHARE,
    )
    .await?;
    let (mut active, mut absent) = (0u64, 0u64);
    let mut page = None;
    loop {
        let p = ports.catalog.scan_items(page).await?;
        for item in p.items.iter().filter(|i| i.enabled) {
            active += 1;
            if !present.contains(item.sku.as_bytes()) {
                absent += 1;
            }
        }
        match p.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    if active > 0 && absent as f64 > share * active as f64 {
        return Ok(Some((
            "refused".into(),
            format!(
                "this full catalog would disable {absent} of {active} active SKUs ({:.0}%), more than the {:.0}% allowed; \
                 nothing was changed. If that is intended, upload it again with \"allow-mass-disable\" in the file name \
                 or set {SETTING_MAX_DISABLE_SHARE}",
                absent as f64 * 100.0 / active as f64,
                share * 100.0
            ),
        )));
    }
    Ok(None)
}

/// The SKUs of the hub with stock that a full inventory file does not list.
pub(super) async fn absent_in_stock(
    ports: &Ports,
    hub: &str,
    present: &SkuSet,
) -> Result<(u64, Vec<String>)> {
    let stock = stock_of(ports)?.on_hand.hub_stock(hub).await?;
    let in_stock: Vec<&(String, i64)> = stock.iter().filter(|(_, n)| *n > 0).collect();
    let absent = in_stock
        .iter()
        .filter(|(sku, _)| !present.contains_pair(sku.as_bytes(), hub.as_bytes()))
        .map(|(sku, _)| sku.clone())
        .collect();
    Ok((in_stock.len() as u64, absent))
}

/// Inventory full mode: refuses when the file would zero more than the allowed share of the
/// hub's SKUs in stock (a broken export must not wipe the listing).
pub(super) async fn mass_zero_guard(
    ports: &Ports,
    key: &UploadKey,
    present: &SkuSet,
) -> Result<Option<(String, String)>> {
    let settings = ports.settings.as_ref();
    let allowed_by_setting = settings::get_or(settings, SETTING_ALLOW_MASS_ZERO, false).await?;
    let Some(hub) = key.hub.as_deref() else {
        return Ok(None);
    };
    if key.allows_mass_zero() || allowed_by_setting {
        return Ok(None);
    }
    let share: f64 =
        settings::get_or(settings, SETTING_MAX_ZERO_SHARE, DEFAULT_MAX_ZERO_SHARE).await?;
    let (in_stock, absent) = absent_in_stock(ports, hub, present).await?;
    let absent = absent.len() as u64;
    if in_stock > 0 && absent as f64 > share * in_stock as f64 {
        return Ok(Some((
            "refused".into(),
            format!(
                "this full inventory file for hub {hub} would set {absent} of its {in_stock} SKUs in stock to zero ({:.0}%), \
                 more than the {:.0}% allowed; nothing was changed. If that is intended, upload it again with \
                 \"allow-mass-zero\" in the file name or set {SETTING_MAX_ZERO_SHARE}",
                absent as f64 * 100.0 / in_stock as f64,
                share * 100.0
            ),
        )));
    }
    Ok(None)
}
