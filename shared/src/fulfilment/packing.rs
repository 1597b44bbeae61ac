//! Checks a packing report against the stored shipment before anything is written or sent:
//! every open unit packed exactly once, weights and dimensions Amazon accepts, and each line's
//! `complianceAttributes` met. Each problem is named exactly (package, line, field).

use std::collections::{BTreeMap, BTreeSet};

use crate::shipment::{is_shipped, ShipmentRecord, ShipmentStatus, Stage};
use crate::spapi::{DimensionUnit, Package, WeightUnit};

/// Amazon's minimum package weight.
pub const MIN_WEIGHT_GRAMS: f64 = 5.0;

/// Problems with a packing report, each a sentence naming what is wrong. Empty = valid.
pub fn problems(r: &ShipmentRecord, packages: &[Package]) -> Vec<String> {
    let mut out = Vec::new();
    if packages.is_empty() {
        out.push("no packages: report at least one package".to_string());
        return out;
    }
    let mut ids = BTreeSet::new();
    let mut packed: BTreeMap<&str, i64> = BTreeMap::new();
    for p in packages {
        let pid = p.id.trim();
        if pid.is_empty() {
            out.push("a package has an empty id".into());
            continue;
        }
        if pid.len() > 40 || pid.contains('/') || pid.contains('#') {
            out.push(format!(
                "package {pid}: id must be at most 40 characters without '/' or '#'"
            ));
        }
        if !ids.insert(pid) {
            out.push(format!("package {pid}: id used twice"));
        }
        match grams(p) {
            Some(g) if g >= MIN_WEIGHT_GRAMS => {}
            Some(g) => out.push(format!(
                "package {pid}: weight {g:.1} g is below Amazon's minimum of 5 g"
            )),
            None => out.push(format!(
                "package {pid}: weight unit must be G, KG, LB or OZ with a positive value"
            )),
        }
        for (name, d) in [
            ("length", &p.dimensions.length),
            ("width", &p.dimensions.width),
            ("height", &p.dimensions.height),
        ] {
            let unit_ok = matches!(
                d.dimension_unit,
                DimensionUnit::Cm | DimensionUnit::M | DimensionUnit::In
            );
            if !unit_ok || d.value.to_f64().is_none_or(|v| v <= 0.0) {
                out.push(format!(
                    "package {pid}: {name} must be a positive value in CM, M or IN"
                ));
            }
        }
        if p.package_line_items.is_empty() {
            out.push(format!("package {pid}: holds no line items"));
        }
        let mut hazmat_needed = false;
        for pl in &p.package_line_items {
            let lid = pl.package_line_item_id.as_str();
            let Some(line) = r.line_items.iter().find(|l| l.id == lid) else {
                out.push(format!(
                    "package {pid}: line {lid} is not a line of shipment {}",
                    r.id
                ));
                continue;
            };
            if pl.quantity < 1 {
                out.push(format!(
                    "package {pid}, line {lid}: quantity must be at least 1"
                ));
                continue;
            }
            *packed.entry(line.id.as_str()).or_default() += pl.quantity;
            let c = &line.compliance;
            let serials = pl.serial_numbers.iter().filter(|s| !s.trim().is_empty());
            let n_serials = serials.clone().count() as i64;
            match c.serial_numbers.or(line.serial_numbers_required.then_some(true)) {
                Some(true) if n_serials != pl.quantity => out.push(format!(
                    "package {pid}, line {lid} ({}): {} serial numbers for {} units; one per unit is required",
                    line.sku, n_serials, pl.quantity
                )),
                Some(false) if n_serials > 0 => out.push(format!(
                    "package {pid}, line {lid} ({}): serial numbers are not allowed for this line",
                    line.sku
                )),
                _ => {}
            }
            for (field, required, present) in [
                (
                    "countryOfOrigin",
                    c.country_of_origin,
                    pl.country_of_origin.is_some(),
                ),
                ("itemValue", c.item_value, pl.item_value.is_some()),
            ] {
                match required {
                    Some(true) if !present => out.push(format!(
                        "package {pid}, line {lid} ({}): {field} is required for this line",
                        line.sku
                    )),
                    Some(false) if present => out.push(format!(
                        "package {pid}, line {lid} ({}): {field} is not allowed for this line",
                        line.sku
                    )),
                    _ => {}
                }
            }
            if c.hazmat_labels == Some(true) {
                hazmat_needed = true;
            }
        }
        if hazmat_needed && p.hazmat_labels.is_empty() {
            out.push(format!(
                "package {pid}: holds a line that requires hazmat labels; give hazmatLabels"
            ));
        }
    }
    for line in &r.line_items {
        let want = line.open_units() as i64;
        let got = packed.get(line.id.as_str()).copied().unwrap_or(0);
        if got != want {
            out.push(format!(
                "line {} ({}): {got} units packed, {want} open units must be packed exactly once",
                line.id, line.sku
            ));
        }
    }
    out
}

/// Why the shipment cannot be packed at all now (a 409), or `None`.
pub fn not_packable(r: &ShipmentRecord) -> Option<String> {
    let f = r.fulfilment();
    if let Some(c) = &f.cancellation {
        return Some(format!(
            "shipment {} has a seller cancellation ({:?}); it cannot be packed",
            r.id, c.state
        ));
    }
    if r.packed_elsewhere() && r.stage == Stage::HandedOver {
        return Some(format!(
            "shipment {} was packed by another connector before flexbridge saw it (Amazon status {}); \
             finish it there or in Seller Central",
            r.id,
            r.handled_elsewhere
                .as_ref()
                .map_or("?", ShipmentStatus::as_str)
        ));
    }
    match r.stage {
        Stage::HandedOver | Stage::Packed | Stage::Labelled => {}
        Stage::Cancelled | Stage::Rejected => {
            return Some(format!("shipment {} is cancelled", r.id))
        }
        Stage::Shipped => return Some(format!("shipment {} has already shipped", r.id)),
        other => {
            return Some(format!(
                "shipment {} is {}; only shipments handed over to the warehouse can be packed",
                r.id,
                other.as_str()
            ))
        }
    }
    if r.status == ShipmentStatus::Cancelled || is_shipped(&r.status) {
        return Some(format!("shipment {} is {} at Amazon", r.id, r.status));
    }
    None
}

fn grams(p: &Package) -> Option<f64> {
    let v = p.weight.value.to_f64()?;
    let factor = match p.weight.weight_unit {
        WeightUnit::G => 1.0,
        WeightUnit::Kg => 1000.0,
        WeightUnit::Lb => 453.592_37,
        WeightUnit::Oz => 28.349_523,
        _ => return None,
    };
    (v > 0.0).then_some(v * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipment::{fixtures, AmazonShipment};
    use serde_json::json;

    fn record() -> ShipmentRecord {
        let mut v = fixtures::shipment(
            "S1",
            "CONFIRMED",
            "2026-11-21T08:00:00Z",
            &[("A", 2), ("B", 1)],
        );
        v["lineItems"][1]["complianceAttributes"]["serialNumberRequirement"] = "REQUIRED".into();
        v["lineItems"][1]["complianceAttributes"]["countryOfOriginRequirement"] = "REQUIRED".into();
        let mut r = AmazonShipment::from_json(&v).unwrap().record;
        r.stage = Stage::HandedOver;
        r
    }

    fn pkg(v: serde_json::Value) -> Vec<Package> {
        serde_json::from_value(v).unwrap()
    }

    fn good() -> serde_json::Value {
        json!([{"id": "P1",
            "dimensions": {"length": {"value": "20", "dimensionUnit": "CM"}, "width": {"value": "10", "dimensionUnit": "CM"}, "height": {"value": "5", "dimensionUnit": "CM"}},
            "weight": {"value": "0.4", "weightUnit": "KG"},
            "packageLineItems": [
                {"packageLineItemId": "1", "quantity": 2},
                {"packageLineItemId": "2", "quantity": 1, "serialNumbers": ["SN1"], "countryOfOrigin": "DE"}]}])
    }

    #[test]
    fn a_complete_packing_passes() {
        assert_eq!(problems(&record(), &pkg(good())), Vec::<String>::new());
    }

    #[test]
    fn each_problem_is_named() {
        let r = record();
        let mut v = good();
        v[0]["weight"] = json!({"value": "3", "weightUnit": "G"});
        let p = problems(&r, &pkg(v));
        assert!(
            p.iter().any(|m| m.contains("below Amazon's minimum")),
            "{p:?}"
        );

        let mut v = good();
        v[0]["packageLineItems"][0]["quantity"] = 1.into();
        let p = problems(&r, &pkg(v));
        assert!(
            p.iter()
                .any(|m| m.starts_with("line 1 (A): 1 units packed, 2 open")),
            "{p:?}"
        );

        let mut v = good();
        v[0]["packageLineItems"][1]["serialNumbers"] = json!([]);
        let p = problems(&r, &pkg(v));
        assert!(
            p.iter().any(|m| m.contains("0 serial numbers for 1 units")),
            "{p:?}"
        );

        let mut v = good();
        v[0]["packageLineItems"][1]
            .as_object_mut()
            .unwrap()
            .remove("countryOfOrigin");
        let p = problems(&r, &pkg(v));
        assert!(
            p.iter().any(|m| m.contains("countryOfOrigin is required")),
            "{p:?}"
        );

        let mut v = good();
        v[0]["packageLineItems"][0]["packageLineItemId"] = "9".into();
        let p = problems(&r, &pkg(v));
        assert!(
            p.iter()
                .any(|m| m.contains("line 9 is not a line of shipment S1")),
            "{p:?}"
        );

        let mut v = good();
        let second = v[0].clone();
        v.as_array_mut().unwrap().push(second);
        let p = problems(&r, &pkg(v));
        assert!(p.iter().any(|m| m.contains("id used twice")), "{p:?}");
        assert!(
            p.iter().any(|m| m.contains("4 units packed, 2 open")),
            "{p:?}"
        );
    }

    #[test]
    fn compliance_requirements_and_units_are_checked() {
        let mut v = fixtures::shipment("S2", "CONFIRMED", "2026-11-21T08:00:00Z", &[("H", 1)]);
        let ca = &mut v["lineItems"][0]["complianceAttributes"];
        ca["hazmatLabelsRequirement"] = "REQUIRED".into();
        ca["itemValueRequirement"] = "REQUIRED".into();
        ca["serialNumberRequirement"] = "DISALLOWED".into();
        ca["countryOfOriginRequirement"] = "DISALLOWED".into();
        let mut r = AmazonShipment::from_json(&v).unwrap().record;
        r.stage = Stage::HandedOver;
        let ok = json!([{"id": "H1",
            "dimensions": {"length": {"value": "1", "dimensionUnit": "M"}, "width": {"value": "4", "dimensionUnit": "IN"}, "height": {"value": "5", "dimensionUnit": "CM"}},
            "weight": {"value": "2", "weightUnit": "LB"}, "hazmatLabels": ["UN3481"],
            "packageLineItems": [{"packageLineItemId": "1", "quantity": 1,
                "itemValue": {"value": "10.00", "currencyCode": "USD"}}]}]);
        assert_eq!(problems(&r, &pkg(ok.clone())), Vec::<String>::new());
        type Change<'a> = &'a dyn Fn(&mut serde_json::Value);
        let cases: [(Change, &str); 8] = [
            (
                &|v| {
                    v[0].as_object_mut().unwrap().remove("hazmatLabels");
                },
                "package H1: holds a line that requires hazmat labels",
            ),
            (
                &|v| {
                    v[0]["packageLineItems"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("itemValue");
                },
                "line 1 (H): itemValue is required",
            ),
            (
                &|v| v[0]["packageLineItems"][0]["serialNumbers"] = json!(["SN"]),
                "serial numbers are not allowed for this line",
            ),
            (
                &|v| v[0]["packageLineItems"][0]["countryOfOrigin"] = "DE".into(),
                "countryOfOrigin is not allowed for this line",
            ),
            (
                &|v| v[0]["weight"] = json!({"value": "0.17", "weightUnit": "OZ"}),
                "weight 4.8 g is below Amazon's minimum of 5 g",
            ),
            (
                &|v| v[0]["weight"] = json!({"value": "-1", "weightUnit": "KG"}),
                "weight unit must be G, KG, LB or OZ with a positive value",
            ),
            (
                &|v| v[0]["dimensions"]["width"]["value"] = "0".into(),
                "package H1: width must be a positive value in CM, M or IN",
            ),
            (
                &|v| v[0]["packageLineItems"] = json!([]),
                "package H1: holds no line items",
            ),
        ];
        for (change, expect) in cases {
            let mut v = ok.clone();
            change(&mut v);
            let p = problems(&r, &pkg(v));
            assert!(p.iter().any(|m| m.contains(expect)), "{expect}: {p:?}");
        }
        assert_eq!(
            problems(&r, &[]),
            ["no packages: report at least one package"]
        );
    }

    #[test]
    fn cancelled_or_not_handed_over_cannot_be_packed() {
        let mut r = record();
        assert_eq!(not_packable(&r), None);
        r.stage = Stage::Cancelled;
        assert!(not_packable(&r).unwrap().contains("cancelled"));
        r.stage = Stage::Held;
        assert!(not_packable(&r).unwrap().contains("held"));
        r.stage = Stage::Shipped;
        assert!(not_packable(&r).unwrap().contains("already shipped"));
        // Cancelled at Amazon, not yet taken into the stage.
        r.stage = Stage::HandedOver;
        r.status = ShipmentStatus::Cancelled;
        assert!(not_packable(&r).unwrap().contains("CANCELLED at Amazon"));
        // The warehouse asked to cancel it.
        r.status = ShipmentStatus::Confirmed;
        let mut f = r.fulfilment();
        f.cancellation = Some(crate::shipment::SellerCancellation {
            reference_id: "ref".into(),
            reason: "OUT_OF_STOCK".into(),
            requested_at: chrono::Utc::now(),
            state: crate::shipment::CancellationState::Queued,
            note: None,
        });
        r.fulfilment = Some(f);
        assert!(not_packable(&r)
            .unwrap()
            .contains("has a seller cancellation"));
    }
}
