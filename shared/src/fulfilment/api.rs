//! What the warehouse API's fulfilment routes do (the route files only parse and answer).

use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::fulfilment::packing;
use crate::fulfilment::policy;
use crate::fulfilment::worker::Fulfiller;
use crate::fulfilment::{CancelJob, LabelJob};
use crate::idempotency::ActionKey;
use crate::orders::ports::RejectReason;
use crate::runtime::Invocation;
use crate::shipment::{
    is_shipped, join_statuses, CancellationState, JobState, Reprint, SellerCancellation,
    ShipmentRecord, ShipmentStatus, Stage, StoredDocument,
};
use crate::spapi::{Package, PackageStatus, Shipment};
use crate::store::inventory::ShippedLine;

/// `POST /v1/shipments/{id}/packed` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackedRequest {
    pub packages: Vec<Package>,
}

/// `POST /v1/shipments/{id}/cancel` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    pub reason: RejectReason,
    /// Lines to cancel (`{lineId, quantity}`); absent = the whole shipment. Amazon supports
    /// whole-shipment rejection only ([`NO_PARTIAL_REJECT`]), so the lines must cover every
    /// open unit.
    #[serde(default)]
    pub lines: Option<Vec<CancelLine>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelLine {
    pub line_id: String,
    pub quantity: u32,
}

/// `PUT /v1/shipments/{id}/invoice` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoiceUpload {
    /// `PDF` (default) or `PNG`.
    #[serde(default)]
    pub format: Option<String>,
    /// The file, base64.
    pub content: String,
}

/// `POST /v1/shipments/{id}/reprint` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReprintRequest {
    /// Why a new label is needed (recorded).
    pub reason: String,
    /// Packages to relabel; absent = every package.
    #[serde(default)]
    pub package_ids: Option<Vec<String>>,
}

/// What an accepted request answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub shipment_id: String,
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

const MAX_CONFLICTS: usize = 8;

/// Why some lines cannot be cancelled alone. processShipment's REJECT body has a line list
/// (`lineItems[{lineItem{id, quantity}, reason}]`), but the External Fulfillment Shipments model
/// (2024-09-11, `Cancellations`) states: "Currently, SmartConnect does not support partial
/// cancellation of a shipment or its line items"; a REJECT cancels every line.
pub const NO_PARTIAL_REJECT: &str = "Amazon cannot cancel part of a shipment: the External \
    Fulfillment API does not support partial cancellation of a shipment or its line items (a \
    REJECT cancels every line), so list every line with all its open units, or omit lines";

fn conflict(msg: String) -> Error {
    Error::Conflict(msg)
}

impl Fulfiller {
    /// The warehouse packed the shipment: validate (nothing is written when it does not fit),
    /// record the packages and queue the label job. The same packages again re-queue the
    /// same job; other packages after packages exist at Amazon are a re-pack.
    pub async fn packed(&self, id: &str, req: PackedRequest) -> Result<Accepted> {
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.stored(id).await?;
            if let Some(why) = packing::not_packable(&r) {
                return Err(conflict(why));
            }
            let problems = packing::problems(&r, &req.packages);
            if !problems.is_empty() {
                return Err(Error::InvalidInput(problems.join("; ")));
            }
            let mut f = r.fulfilment();
            if f.pack_version > 0 && f.packages == req.packages {
                // Same packing again (a retried request): make sure its job is on the queue.
                if f.job != JobState::Done {
                    self.queue_label_job(&r, f.pack_version).await?;
                }
                return Ok(accepted(&r, Some("same packing as before".into())));
            }
            if f.packages_at_amazon.is_some() {
                let mut old: Vec<&str> = f.packages.iter().map(|p| p.id.as_str()).collect();
                let mut new: Vec<&str> = req.packages.iter().map(|p| p.id.as_str()).collect();
                old.sort();
                new.sort();
                if old != new {
                    return Err(Error::InvalidInput(format!(
                        "packages {} exist at Amazon; a re-pack must keep these package IDs \
                         (Amazon has no operation to add or remove packages)",
                        old.join(", ")
                    )));
                }
            }
            f.pack_version += 1;
            f.packages = req.packages.clone();
            // A re-pack voids shipping options, labels and Amazon's invoice (Amazon does too).
            f.shipping_options.clear();
            f.labels.clear();
            f.reprint = None;
            f.invoice = f.seller_invoice.clone();
            f.label_ready_sent = false;
            f.job = JobState::Queued;
            let note = format!(
                "packing {} with {} packages",
                f.pack_version,
                f.packages.len()
            );
            f.record_step("packed", Some(note));
            let version = f.pack_version;
            r.fulfilment = Some(f);
            r.stage = Stage::Packed;
            if self.save(&mut r).await? {
                self.queue_label_job(&r, version).await?;
                return Ok(accepted(&r, None));
            }
        }
        Err(busy(id))
    }

    pub(crate) async fn queue_label_job(
        &self,
        r: &ShipmentRecord,
        pack_version: u32,
    ) -> Result<()> {
        let job = LabelJob {
            shipment_id: r.id.clone(),
            pack_version,
            correlation_id: r.correlation_id.clone(),
        };
        self.labels_queue.send(&serde_json::to_value(&job)?).await
    }

    /// A person asks for new labels (REGENERATE), with the reason recorded.
    pub async fn reprint(&self, id: &str, req: ReprintRequest) -> Result<Accepted> {
        let reason = req.reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(Error::InvalidInput(
                "reason must be 1-500 characters saying why a new label is needed".into(),
            ));
        }
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.stored(id).await?;
            let f = r.fulfilment();
            if r.stage == Stage::Packed && f.job != JobState::Done {
                if let Some(pending) = f.reprint.as_ref().filter(|p| p.reason == reason) {
                    // The same reprint again: the run that saved it may have died before its
                    // send, so the job goes out again (the label worker is idempotent).
                    self.queue_label_job(&r, f.pack_version).await?;
                    let note = format!("reprint {} already queued", pending.number);
                    return Ok(accepted(&r, Some(note)));
                }
            }
            if r.stage != Stage::Labelled {
                return Err(conflict(format!(
                    "shipment {id} is {}; a reprint needs labelled shipments",
                    r.stage.as_str()
                )));
            }
            let mut f = r.fulfilment();
            let ids = match &req.package_ids {
                Some(ids) => {
                    if let Some(bad) = ids.iter().find(|i| !f.labels.contains_key(*i)) {
                        return Err(Error::InvalidInput(format!(
                            "package {bad} has no label on shipment {id}"
                        )));
                    }
                    ids.clone()
                }
                None => f.labels.keys().cloned().collect(),
            };
            let rp = Reprint {
                package_ids: ids,
                reason: reason.clone(),
                requested_at: Utc::now(),
                number: f.reprints.len() as u32 + 1,
            };
            f.reprints.push(rp.clone());
            f.reprint = Some(rp);
            f.job = JobState::Queued;
            f.record_step("reprint_requested", Some(reason.clone()));
            let version = f.pack_version;
            r.fulfilment = Some(f);
            r.stage = Stage::Packed;
            if self.save(&mut r).await? {
                self.queue_label_job(&r, version).await?;
                return Ok(accepted(&r, None));
            }
        }
        Err(busy(id))
    }

    /// The seller's own invoice, used instead of generating one.
    pub async fn upload_invoice(&self, id: &str, req: InvoiceUpload) -> Result<Accepted> {
        let content_type = match req.format.as_deref().unwrap_or("PDF") {
            "PDF" => "application/pdf",
            "PNG" => "image/png",
            other => {
                return Err(Error::InvalidInput(format!(
                    "format {other:?} is not PDF or PNG"
                )))
            }
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(req.content.trim())
            .map_err(|e| Error::InvalidInput(format!("content is not base64: {e}")))?;
        if bytes.is_empty() {
            return Err(Error::InvalidInput("content is empty".into()));
        }
        let r = self.stored(id).await?;
        if r.invoice_required {
            return Err(conflict(format!(
                "Amazon requires its own invoice for shipment {id} \
                 (shipmentRequirements.invoice REQUIRED); flexbridge generates it"
            )));
        }
        if !matches!(r.stage, Stage::HandedOver | Stage::Packed) || r.fulfilment().label_ready_sent
        {
            return Err(conflict(format!(
                "shipment {id} is {}; an invoice can be uploaded until its labels are ready",
                r.stage.as_str()
            )));
        }
        let key = format!(
            "{}{}/{}/invoice-seller.{}",
            crate::config::prefixes::LABELS,
            r.location_id,
            id,
            if content_type == "image/png" {
                "png"
            } else {
                "pdf"
            }
        );
        self.files.put(&key, bytes, content_type).await?;
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.stored(id).await?;
            let mut f = r.fulfilment();
            let doc = StoredDocument {
                key: key.clone(),
                content_type: content_type.into(),
                source: "seller".into(),
            };
            f.seller_invoice = Some(doc.clone());
            f.invoice = Some(doc);
            f.record_step("invoice_uploaded", Some(key.clone()));
            r.fulfilment = Some(f);
            if self.save(&mut r).await? {
                return Ok(accepted(&r, Some(format!("stored at {key}"))));
            }
        }
        Err(busy(id))
    }

    /// The warehouse handed the packages to the carrier: updatePackageStatus SHIPPED per
    /// package (once each), reservation released, `ShipmentShipped`.
    pub async fn shipped(&self, id: &str, inv: &Invocation) -> Result<Accepted> {
        let r = self.stored(id).await?;
        if r.stage == Stage::Shipped {
            return Ok(accepted(&r, Some("already shipped".into())));
        }
        if r.stage != Stage::Labelled {
            return Err(conflict(format!(
                "shipment {id} is {}; only labelled shipments can be reported shipped",
                r.stage.as_str()
            )));
        }
        let f = r.fulfilment();
        if !is_shipped(&r.status) {
            for p in &f.packages {
                let pid = p.id.clone();
                self.once(
                    &ActionKey::Shipped {
                        shipment_id: id,
                        package_id: &p.id,
                    }
                    .to_string(),
                    id,
                    inv,
                    move |s: &Shipment| {
                        s.packages.iter().any(|a| {
                            a.id == pid
                                && matches!(
                                    a.status,
                                    Some(PackageStatus::Shipped | PackageStatus::Delivered)
                                )
                        })
                    },
                    self.amazon.mark_shipped(id, &p.id),
                    async { Ok(()) },
                )
                .await?;
            }
        }
        let hub = self.hub(&r.location_id).await?;
        let shipped_at = Utc::now();
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.stored(id).await?;
            if r.stage == Stage::Shipped {
                return Ok(accepted(&r, None));
            }
            // The units left: reservation released and on-hand lowered in one write, so the
            // pusher never offers them again while the warehouse's next count is on its way.
            for l in &r.line_items {
                self.inventory
                    .ship_line(ShippedLine {
                        location_id: &r.location_id,
                        hub: &hub,
                        sku: &l.sku,
                        shipment_id: &r.id,
                        line_id: &l.id,
                        units: l.open_units(),
                        shipped_at,
                    })
                    .await?;
            }
            if !is_shipped(&r.status) {
                r.status = ShipmentStatus::Shipped;
            }
            self.events
                .publish(&[crate::fulfilment::shipped_event(&r, &hub)?])
                .await?;
            let mut f = r.fulfilment();
            f.shipped_at = Some(shipped_at);
            f.record_step("shipped", None);
            r.fulfilment = Some(f);
            r.stage = Stage::Shipped;
            r.reservation_released = true;
            if self.save(&mut r).await? {
                return Ok(accepted(&r, None));
            }
        }
        Err(busy(id))
    }

    /// The warehouse cancels: refused (409) unless Amazon's status allows rejection; queued for
    /// REJECT when the location cancels on Amazon automatically, else kept local and held.
    pub async fn cancel(&self, id: &str, req: CancelRequest) -> Result<Accepted> {
        for _ in 0..MAX_CONFLICTS {
            let mut r = self.stored(id).await?;
            let mut f = r.fulfilment();
            if let Some(c) = &f.cancellation {
                if c.state == CancellationState::Queued {
                    // A stored promise is kept: the run that saved `queued` may have died before
                    // its send, so a retry sends the job again (the cancellation worker does
                    // nothing for a cancellation no longer queued, and REJECT goes through the
                    // idempotency helper with the same reference).
                    self.queue_cancel_job(id, &c.reference_id).await?;
                }
                if c.state != CancellationState::Refused {
                    return Ok(accepted(
                        &r,
                        Some(format!("cancellation already {:?}", c.state).to_lowercase()),
                    ));
                }
            }
            if matches!(r.stage, Stage::Cancelled | Stage::Rejected) {
                return Err(conflict(format!("shipment {id} is already cancelled")));
            }
            if r.stage == Stage::Shipped || is_shipped(&r.status) {
                return Err(conflict(format!(
                    "shipment {id} has shipped; it cannot be cancelled"
                )));
            }
            if !r.eligible_for_rejection.contains(&r.status) {
                return Err(conflict(format!(
                    "shipment {id} is {} at Amazon, which does not allow rejection (allowed: {})",
                    r.status,
                    join_statuses(&r.eligible_for_rejection)
                )));
            }
            if let Some(lines) = &req.lines {
                check_whole(&r, lines)?;
            }
            let auto = policy::for_location(
                self.settings.as_ref(),
                policy::AUTO_CANCEL,
                &r.location_id,
                true,
            )
            .await?;
            let reason = crate::orders::ports::reject_reason_str(req.reason).to_string();
            let reference_id = format!("flexbridge-cancel-{id}-{}", uuid::Uuid::new_v4().simple());
            f.cancellation = Some(SellerCancellation {
                reference_id: reference_id.clone(),
                reason: reason.clone(),
                requested_at: Utc::now(),
                state: if auto {
                    CancellationState::Queued
                } else {
                    CancellationState::LocalOnly
                },
                note: None,
            });
            f.record_step("cancel_requested", Some(reason.clone()));
            r.fulfilment = Some(f);
            if !auto {
                let why = format!(
                    "the warehouse cancelled it ({reason}) and auto-cancel is off for location {}: \
                     reject it (POST /v1/shipments/{id}/reject) or cancel it in Seller Central",
                    r.location_id
                );
                r.hold_reasons = vec![why.clone()];
                r.stage = Stage::Held;
                let hub = self.hub(&r.location_id).await?;
                let ev = crate::events::OutboundEvent::new(
                    crate::events::EventName::ShipmentHeld,
                    &format!("{id}#seller-cancel"),
                    Utc::now(),
                    crate::events::ShipmentHeld {
                        shipment_id: id.to_string(),
                        hub,
                        reason: why,
                    },
                )?;
                self.events.publish(&[ev]).await?;
            }
            if self.save(&mut r).await? {
                if auto {
                    self.queue_cancel_job(id, &reference_id).await?;
                }
                return Ok(accepted(&r, None));
            }
        }
        Err(busy(id))
    }

    pub(crate) async fn queue_cancel_job(&self, id: &str, reference_id: &str) -> Result<()> {
        let job = CancelJob {
            shipment_id: id.to_string(),
            reference_id: reference_id.to_string(),
        };
        self.cancellations_queue
            .send(&serde_json::to_value(&job)?)
            .await
    }

    /// Fresh links to a labelled shipment's files ([`file_links`]).
    pub async fn links(&self, id: &str) -> Result<Value> {
        let r = self.stored(id).await?;
        file_links(&r, self.files.as_ref(), self.link_ttl).await
    }
}

/// Fresh links to a shipment's label and invoice files (the API's `GET .../labels` and the
/// CLI's `flexbridge link labels`), each with the time it stops working (`expiresAt`), and
/// `linksExpireAt`: when the first of them does.
pub async fn file_links(
    r: &ShipmentRecord,
    files: &dyn crate::fulfilment::ports::LabelFiles,
    wanted: std::time::Duration,
) -> Result<Value> {
    use crate::shipment::sort_time;
    let f = r.fulfilment();
    let mut labels = Vec::new();
    let mut made = Vec::new();
    for (pid, l) in &f.labels {
        let link = match &l.key {
            Some(k) => Some(files.link(k, wanted).await?),
            None => None,
        };
        labels.push(json!({"packageId": pid, "key": l.key,
            "url": link.as_ref().map(|l| &l.url),
            "expiresAt": link.as_ref().map(|l| sort_time(l.expires_at)),
            "carrier": l.carrier, "trackingId": l.tracking_id, "generation": l.generation,
            "contentType": l.content_type}));
        made.extend(link);
    }
    let invoice = match f.invoice.as_ref().or(f.seller_invoice.as_ref()) {
        Some(d) => {
            let link = files.link(&d.key, wanted).await?;
            let v = json!({"key": d.key, "source": d.source, "url": link.url,
                "expiresAt": sort_time(link.expires_at)});
            made.push(link);
            Some(v)
        }
        None => None,
    };
    let expire = crate::fulfilment::ports::links_expire_at(&made).map(sort_time);
    Ok(
        json!({"shipmentId": r.id, "stage": r.stage.as_str(), "labels": labels,
        "invoice": invoice, "linksExpireAt": expire}),
    )
}

fn check_whole(r: &ShipmentRecord, lines: &[CancelLine]) -> Result<()> {
    for l in &r.line_items {
        let asked: u32 = lines
            .iter()
            .filter(|c| c.line_id == l.id)
            .map(|c| c.quantity)
            .sum();
        if asked != l.open_units() {
            return Err(Error::InvalidInput(format!(
                "line {} ({}): {asked} of {} open units asked to be cancelled. {NO_PARTIAL_REJECT}",
                l.id,
                l.sku,
                l.open_units()
            )));
        }
    }
    if let Some(bad) = lines
        .iter()
        .find(|c| !r.line_items.iter().any(|l| l.id == c.line_id))
    {
        return Err(Error::InvalidInput(format!(
            "line {} is not a line of shipment {}",
            bad.line_id, r.id
        )));
    }
    Ok(())
}

fn accepted(r: &ShipmentRecord, message: Option<String>) -> Accepted {
    Accepted {
        shipment_id: r.id.clone(),
        stage: r.stage.as_str().to_string(),
        pack_version: r.fulfilment.as_ref().map(|f| f.pack_version),
        message,
    }
}

fn busy(id: &str) -> Error {
    Error::Transient {
        message: format!("shipment {id} kept changing while being processed"),
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipment::{fixtures, AmazonShipment};

    fn lines(v: &[(&str, u32)]) -> Vec<CancelLine> {
        v.iter()
            .map(|(id, q)| CancelLine {
                line_id: id.to_string(),
                quantity: *q,
            })
            .collect()
    }

    #[test]
    fn only_whole_shipments_can_be_cancelled() {
        let v = fixtures::shipment(
            "S1",
            "CONFIRMED",
            "2026-11-21T08:00:00Z",
            &[("A", 2), ("B", 1)],
        );
        let r = AmazonShipment::from_json(&v).unwrap().record;
        // Every line with all its open units: the whole shipment.
        assert!(check_whole(&r, &lines(&[("1", 2), ("2", 1)])).is_ok());
        assert!(check_whole(&r, &lines(&[("1", 1), ("2", 1), ("1", 1)])).is_ok());
        // Some units of a line, or some lines: refused, saying why Amazon cannot.
        for partial in [lines(&[("1", 1), ("2", 1)]), lines(&[("1", 2)]), lines(&[])] {
            let e = check_whole(&r, &partial).unwrap_err().to_string();
            assert!(e.contains(NO_PARTIAL_REJECT), "{e}");
        }
        let e = check_whole(&r, &lines(&[("1", 2), ("2", 1), ("9", 1)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 9 is not a line of shipment S1"), "{e}");
    }
}
