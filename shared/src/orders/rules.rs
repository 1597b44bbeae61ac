//! Rules decided before a shipment is confirmed. Each rule gives a verdict; the strictest wins
//! (reject over hold over confirm). A stock-based rule joins the list with inventory sync.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::orders::ports::{OrderLocation, RejectReason, SkuCatalog, UnmappedSkuAction};
use crate::shipment::ShipmentRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Confirm,
    /// A person decides (warehouse API release/reject).
    Hold {
        reason: String,
    },
    Reject {
        reason: RejectReason,
        detail: String,
    },
}

impl Verdict {
    fn strictness(&self) -> u8 {
        match self {
            Verdict::Confirm => 0,
            Verdict::Hold { .. } => 1,
            Verdict::Reject { .. } => 2,
        }
    }
}

#[async_trait]
pub trait OrderRule: Send + Sync {
    fn name(&self) -> &'static str;
    async fn check(&self, shipment: &ShipmentRecord, location: &OrderLocation) -> Result<Verdict>;
}

/// A line whose SKU is not in the catalog cannot be fulfilled from our mapping.
pub struct UnmappedSkuRule {
    pub catalog: Arc<dyn SkuCatalog>,
}

#[async_trait]
impl OrderRule for UnmappedSkuRule {
    fn name(&self) -> &'static str {
        "unmapped_sku"
    }

    async fn check(&self, shipment: &ShipmentRecord, location: &OrderLocation) -> Result<Verdict> {
        let mut skus: Vec<String> = shipment
            .line_items
            .iter()
            .filter(|l| l.open_units() > 0)
            .map(|l| l.sku.clone())
            .collect();
        skus.sort();
        skus.dedup();
        let unmapped = self.catalog.unmapped(&skus).await?;
        if unmapped.is_empty() {
            return Ok(Verdict::Confirm);
        }
        let detail = format!("SKU not in the catalog: {}", unmapped.join(", "));
        Ok(match location.unmapped_sku {
            UnmappedSkuAction::Hold => Verdict::Hold { reason: detail },
            UnmappedSkuAction::Reject => Verdict::Reject {
                reason: RejectReason::OutOfStock,
                detail,
            },
        })
    }
}

/// The seller's master switch (`auto_confirm_orders`, default on): when off, every new shipment
/// waits for a person.
pub struct AutoConfirmRule {
    pub settings: Arc<dyn crate::store::settings::SettingsStore>,
}

#[async_trait]
impl OrderRule for AutoConfirmRule {
    fn name(&self) -> &'static str {
        "auto_confirm_orders"
    }

    async fn check(
        &self,
        _shipment: &ShipmentRecord,
        _location: &OrderLocation,
    ) -> Result<Verdict> {
        let on = crate::store::settings::get_or(
            self.settings.as_ref(),
            crate::store::settings::names::AUTO_CONFIRM_ORDERS,
            true,
        )
        .await?;
        Ok(if on {
            Verdict::Confirm
        } else {
            Verdict::Hold {
                reason: "automatic confirmation is switched off (setting auto_confirm_orders)"
                    .into(),
            }
        })
    }
}

/// Applies every rule; the strictest verdict wins. A reject the shipment's status does not allow
/// (`orderStatesEligibleForRejection`) becomes a hold, so a person sees it.
pub async fn decide(
    rules: &[Arc<dyn OrderRule>],
    shipment: &ShipmentRecord,
    location: &OrderLocation,
) -> Result<Verdict> {
    let mut verdict = Verdict::Confirm;
    for rule in rules {
        let v = rule.check(shipment, location).await?;
        if v.strictness() > verdict.strictness() {
            tracing::info!(shipment_id = %shipment.id, rule = rule.name(), verdict = ?v, "rule verdict");
            verdict = v;
        }
    }
    if let Verdict::Reject { detail, .. } = &verdict {
        if !shipment.eligible_for_rejection.contains(&shipment.status) {
            verdict = Verdict::Hold {
                reason: format!(
                    "{detail} (rejection not allowed while {}; held for a person)",
                    shipment.status
                ),
            };
        }
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::ports::MemoryCatalog;
    use crate::shipment::{fixtures, AmazonShipment};

    fn loc(action: UnmappedSkuAction) -> OrderLocation {
        OrderLocation {
            location_id: "LOC1".into(),
            hub: "HUB1".into(),
            order_sync: true,
            return_location_id: None,
            unmapped_sku: action,
            adopt_existing: Default::default(),
        }
    }

    fn rules(mapped: &[&str]) -> Vec<Arc<dyn OrderRule>> {
        vec![Arc::new(UnmappedSkuRule {
            catalog: Arc::new(MemoryCatalog::with(mapped)),
        })]
    }

    fn shipment(status: &str) -> ShipmentRecord {
        AmazonShipment::from_json(&fixtures::shipment(
            "S1",
            status,
            "2026-11-21T08:00:00Z",
            &[("A", 1), ("B", 2)],
        ))
        .unwrap()
        .record
    }

    #[tokio::test]
    async fn mapped_skus_confirm() {
        let v = decide(
            &rules(&["A", "B"]),
            &shipment("ACCEPTED"),
            &loc(UnmappedSkuAction::Hold),
        )
        .await
        .unwrap();
        assert_eq!(v, Verdict::Confirm);
    }

    #[tokio::test]
    async fn unmapped_sku_holds_by_default_and_names_the_sku() {
        let v = decide(
            &rules(&["A"]),
            &shipment("ACCEPTED"),
            &loc(UnmappedSkuAction::Hold),
        )
        .await
        .unwrap();
        assert!(
            matches!(&v, Verdict::Hold { reason } if reason.contains('B')),
            "{v:?}"
        );
    }

    #[tokio::test]
    async fn the_master_switch_holds_everything() {
        use crate::store::settings::{names, MemorySettingsStore, SettingsStore};
        let settings = Arc::new(MemorySettingsStore::new());
        let mut all = rules(&["A", "B"]);
        all.push(Arc::new(AutoConfirmRule {
            settings: settings.clone(),
        }));
        let l = loc(UnmappedSkuAction::Hold);
        assert_eq!(
            decide(&all, &shipment("ACCEPTED"), &l).await.unwrap(),
            Verdict::Confirm
        );
        settings
            .put(
                names::AUTO_CONFIRM_ORDERS,
                serde_json::json!(false),
                None,
                "test",
            )
            .await
            .unwrap();
        let v = decide(&all, &shipment("ACCEPTED"), &l).await.unwrap();
        assert!(matches!(v, Verdict::Hold { reason } if reason.contains("auto_confirm_orders")));
    }

    #[tokio::test]
    async fn reject_only_when_status_allows() {
        let v = decide(
            &rules(&["A"]),
            &shipment("ACCEPTED"),
            &loc(UnmappedSkuAction::Reject),
        )
        .await
        .unwrap();
        assert!(matches!(
            v,
            Verdict::Reject {
                reason: RejectReason::OutOfStock,
                ..
            }
        ));
        // CREATED is not in the fixture's orderStatesEligibleForRejection.
        let v = decide(
            &rules(&["A"]),
            &shipment("CREATED"),
            &loc(UnmappedSkuAction::Reject),
        )
        .await
        .unwrap();
        assert!(matches!(v, Verdict::Hold { .. }), "{v:?}");
    }
}
