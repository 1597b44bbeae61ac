//! The label job (LabelsQueue): one shipment from packed to labelled, one recorded step at a
//! time. Each round reads the record, finds the first step not done, does it, records it and
//! saves; a redelivered job therefore resumes where the last one stopped. Before every step
//! the job checks for a cancellation (ours or Amazon's) and stops cleanly at that boundary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::{EventName, EventSink, LabelReady, OutboundEvent};
use crate::fulfilment::policy::{self, OptionPolicy};
use crate::fulfilment::ports::{extension, FulfilmentApi, JobQueue, LabelFiles};
use crate::fulfilment::LabelJob;
use crate::idempotency::{ActionKey, Idempotency};
use crate::orders::ports::LocationDirectory;
use crate::orders::OrderProcessor;
use crate::runtime::Invocation;
use crate::shipment::{
    AmazonShipment, CancellationState, ChosenOption, Fulfilment, JobState, Reprint,
    ShipmentChannel, ShipmentRecord, Stage, StoredDocument, StoredLabel,
};
use crate::spapi::{
    DocumentFormat, LabelOperation, LabelStatus, PackageShipLabel, PackageStatus, Shipment,
    ShipmentStatus,
};
use crate::store::inventory::InventoryStore;
use crate::store::settings::SettingsStore;
use crate::store::shipments::ShipmentStore;

/// Everything fulfilment works with, bound to one invocation.
#[derive(Clone)]
pub struct Fulfiller {
    pub shipments: Arc<dyn ShipmentStore>,
    pub inventory: Arc<dyn InventoryStore>,
    pub amazon: Arc<dyn FulfilmentApi>,
    pub files: Arc<dyn LabelFiles>,
    pub events: Arc<dyn EventSink>,
    pub idempotency: Idempotency,
    pub settings: Arc<dyn SettingsStore>,
    pub locations: Arc<dyn LocationDirectory>,
    /// Takes Amazon's view when a read-back shows something new (e.g. a cancellation).
    pub processor: OrderProcessor,
    pub labels_queue: Arc<dyn JobQueue>,
    pub cancellations_queue: Arc<dyn JobQueue>,
    /// How long the links in `LabelReady` work.
    pub link_ttl: Duration,
    pub metrics: crate::metrics::Metrics,
}

/// What a label job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum JobOutcome {
    Labelled {
        steps: usize,
    },
    /// Stopped at a step boundary (cancelled, shipped, re-packed): nothing more to do.
    Stopped {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Packages,
    ShippingOptions(String),
    Invoice,
    Labels {
        packages: Vec<String>,
        regenerate: Option<Reprint>,
    },
    Download(String),
    Announce,
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Packages => "packages",
            Step::ShippingOptions(_) => "shipping_options",
            Step::Invoice => "invoice",
            Step::Labels {
                regenerate: None, ..
            } => "labels",
            Step::Labels { .. } => "labels_regenerated",
            Step::Download(_) => "download",
            Step::Announce => "label_ready",
        }
    }
}

/// Rounds per job before giving up for this delivery (each round does or redoes one step).
const MAX_ROUNDS: usize = 40;

/// Whether the channel has shipping options to choose from (Seller Flex has none).
pub fn needs_shipping_options(r: &ShipmentRecord) -> bool {
    r.channel == ShipmentChannel::Mfn
}

fn next_step(r: &ShipmentRecord, f: &Fulfilment) -> Option<Step> {
    if f.packages_at_amazon != Some(f.pack_version) {
        return Some(Step::Packages);
    }
    if needs_shipping_options(r) {
        if let Some(p) = f
            .packages
            .iter()
            .find(|p| !f.shipping_options.contains_key(&p.id))
        {
            return Some(Step::ShippingOptions(p.id.clone()));
        }
    }
    if r.invoice_required && f.invoice.is_none() {
        return Some(Step::Invoice);
    }
    if let Some(rp) = &f.reprint {
        return Some(Step::Labels {
            packages: rp.package_ids.clone(),
            regenerate: Some(rp.clone()),
        });
    }
    let missing: Vec<String> = f
        .packages
        .iter()
        .filter(|p| !f.labels.contains_key(&p.id))
        .map(|p| p.id.clone())
        .collect();
    if !missing.is_empty() {
        return Some(Step::Labels {
            packages: missing,
            regenerate: None,
        });
    }
    if let Some((id, _)) = f.labels.iter().find(|(_, l)| l.key.is_none()) {
        return Some(Step::Download(id.clone()));
    }
    if !f.label_ready_sent {
        return Some(Step::Announce);
    }
    None
}

/// Why the job must stop now, if it must.
fn stop_reason(r: &ShipmentRecord, f: &Fulfilment, job: &LabelJob) -> Option<String> {
    if f.pack_version != job.pack_version {
        return Some(format!(
            "superseded by packing {} (this job is for packing {})",
            f.pack_version, job.pack_version
        ));
    }
    if matches!(r.stage, Stage::Cancelled | Stage::Rejected)
        || r.status == ShipmentStatus::Cancelled
    {
        return Some("the shipment was cancelled".into());
    }
    if let Some(c) = &f.cancellation {
        if c.state != CancellationState::Refused {
            return Some("the warehouse asked to cancel the shipment".into());
        }
    }
    if matches!(r.stage, Stage::Shipped) {
        return Some("the shipment has shipped".into());
    }
    if !matches!(r.stage, Stage::Packed | Stage::Labelled) {
        return Some(format!("the shipment is {}", r.stage.as_str()));
    }
    None
}

/// Result of one step: the note to record, and an error to report after saving what worked.
struct Done {
    note: Option<String>,
    then_fail: Option<Error>,
}

impl Done {
    fn ok(note: impl Into<Option<String>>) -> Self {
        Self {
            note: note.into(),
            then_fail: None,
        }
    }
}

/// An error after which Amazon may or may not have applied the call: read the shipment back.
fn uncertain(e: &Error) -> bool {
    match e {
        Error::SpApi(e) => e.outcome_unknown() || e.is_conflict(),
        _ => false,
    }
}

/// Amazon refused the call for the shipment's state (cancelled, out of order): read it back.
fn refused_for_state(e: &Error) -> bool {
    matches!(e, Error::SpApi(e) if matches!(e.status(), Some(404 | 409 | 422)))
}

fn label_key(r: &ShipmentRecord, file: &str) -> String {
    format!(
        "{}{}/{}/{}",
        crate::config::prefixes::LABELS,
        r.location_id,
        r.id,
        file
    )
}

fn invoice_content_type(format: Option<&DocumentFormat>) -> &'static str {
    match format.map(|f| f.as_str()) {
        Some("PNG") => "image/png",
        Some("ZPL") => "x.application/zpl",
        Some("PLAIN_TEXT") => "text/plain",
        _ => "application/pdf",
    }
}

impl Fulfiller {
    pub(crate) async fn stored(&self, id: &str) -> Result<ShipmentRecord> {
        self.shipments
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("shipment {id} is not stored")))
    }

    pub(crate) async fn hub(&self, location_id: &str) -> Result<String> {
        Ok(match self.locations.location(location_id).await {
            Ok(l) => l.hub,
            Err(Error::NotFound(_)) => location_id.to_string(),
            Err(e) => return Err(e),
        })
    }

    /// Reads the shipment from Amazon and hands it to orders (which stores it, and tells the
    /// warehouse about a cancellation). Returns Amazon's typed view.
    pub(crate) async fn read_back(&self, id: &str, inv: &Invocation) -> Result<Shipment> {
        let s = self.amazon.shipment(id).await?;
        let v = serde_json::to_value(&s)
            .map_err(|e| Error::Internal(format!("shipment does not serialize: {e}")))?;
        self.processor
            .ingest(&AmazonShipment::from_json(&v)?, inv)
            .await?;
        Ok(s)
    }

    /// Runs an Amazon call with an effect at most once per `key`. When its outcome is uncertain
    /// (a previous attempt died holding the claim, a 5xx or timeout after sending, a 409
    /// "already applied") the shipment is read back: if `applied` says the change is there,
    /// `recover` gives the value without calling again.
    pub(crate) async fn once<T, C, R>(
        &self,
        key: &str,
        shipment_id: &str,
        inv: &Invocation,
        applied: impl Fn(&Shipment) -> bool + Send,
        call: C,
        recover: R,
    ) -> Result<T>
    where
        T: Serialize + serde::de::DeserializeOwned + Send,
        C: std::future::Future<Output = Result<T>> + Send,
        R: std::future::Future<Output = Result<T>> + Send,
    {
        self.idempotency
            .run(key, shipment_id, inv, |claim| async move {
                if claim.is_retaken() {
                    let s = self.read_back(shipment_id, inv).await?;
                    if applied(&s) {
                        tracing::warn!(shipment_id, key, "a previous attempt had applied it; not calling again");
                        return recover.await;
                    }
                }
                match call.await {
                    Ok(v) => Ok(v),
                    Err(e) if uncertain(&e) => {
                        // Unread, the outcome stays unknown: `e` keeps the claim for a
                        // read-back first next time (see `Idempotency::execute_resumable`).
                        let s = match self.read_back(shipment_id, inv).await {
                            Ok(s) => s,
                            Err(read) => {
                                tracing::warn!(shipment_id, key, error = %read, "could not read the shipment back");
                                return Err(e);
                            }
                        };
                        if applied(&s) {
                            tracing::warn!(shipment_id, key, error = %e, "call failed but Amazon shows it applied");
                            recover.await
                        } else {
                            Err(e)
                        }
                    }
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// Takes a shipment from packed to labelled (see the module docs). A failed job counts in
    /// `LabelsFailed`; the labels made in `LabelsMade` with `ShipByTimeLeft`.
    pub async fn run_label_job(&self, job: &LabelJob, inv: &Invocation) -> Result<JobOutcome> {
        use tracing::Instrument;
        let correlation_id = match &job.correlation_id {
            Some(c) => Some(c.clone()),
            None => self
                .shipments
                .get(&job.shipment_id)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.correlation_id),
        };
        let span = crate::telemetry::shipment_span(&job.shipment_id, correlation_id.as_deref());
        async {
            let outcome = self.label_job_steps(job, inv).await;
            if let Err(e) = &outcome {
                let location = match self.shipments.get(&job.shipment_id).await {
                    Ok(Some(r)) => r.location_id,
                    _ => "unknown".into(),
                };
                self.metrics.count(
                    crate::metrics::names::LABELS_FAILED,
                    &[("Location", &location)],
                );
                tracing::warn!(shipment_id = %job.shipment_id, error = %e, "label job failed");
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn label_job_steps(&self, job: &LabelJob, inv: &Invocation) -> Result<JobOutcome> {
        let mut steps = 0;
        for _ in 0..MAX_ROUNDS {
            let mut r = self.stored(&job.shipment_id).await?;
            let mut f = r.fulfilment();
            if let Some(reason) = stop_reason(&r, &f, job) {
                if f.pack_version == job.pack_version
                    && !matches!(f.job, JobState::Stopped { .. } | JobState::Done)
                {
                    f.job = JobState::Stopped {
                        reason: reason.clone(),
                    };
                    f.record_step("stopped", Some(reason.clone()));
                    r.fulfilment = Some(f);
                    if !self.save(&mut r).await? {
                        continue;
                    }
                }
                tracing::info!(shipment_id = %job.shipment_id, %reason, "label job stopped");
                return Ok(JobOutcome::Stopped { reason });
            }
            let Some(step) = next_step(&r, &f) else {
                return Ok(JobOutcome::Labelled { steps });
            };
            let done = match self.do_step(&step, &r, &mut f, inv).await {
                Ok(d) => d,
                Err(e) if refused_for_state(&e) => {
                    // Amazon may have cancelled it: take its view, then the next round decides.
                    let s = self.read_back(&job.shipment_id, inv).await?;
                    if s.status == ShipmentStatus::Cancelled {
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            f.record_step(step.name(), done.note);
            if step == Step::Announce {
                f.job = JobState::Done;
                r.stage = Stage::Labelled;
            }
            r.fulfilment = Some(f);
            if self.save(&mut r).await? {
                steps += 1;
                tracing::info!(shipment_id = %r.id, step = step.name(), "label step done");
                if step == Step::Announce {
                    self.labelled(&r);
                }
            }
            if let Some(e) = done.then_fail {
                return Err(e);
            }
        }
        Err(Error::Transient {
            message: format!(
                "label job for {} did not finish in {MAX_ROUNDS} rounds",
                job.shipment_id
            ),
            after: None,
        })
    }

    /// `LabelsMade`, and how long was left to the ship-by time (negative: late).
    fn labelled(&self, r: &ShipmentRecord) {
        use crate::metrics::{names, Unit};
        let at = [("Location", r.location_id.as_str())];
        self.metrics.count(names::LABELS_MADE, &at);
        if let Some(ship_by) = r
            .ship_by
            .as_deref()
            .and_then(crate::shipment::parse_amazon_time)
        {
            let left = (ship_by - Utc::now()).num_seconds() as f64;
            self.metrics
                .put(names::SHIP_BY_TIME_LEFT, left, Unit::Seconds, &at);
        }
    }

    /// Hands every stored shipment in `stages` to `check`, page by page, until the invocation
    /// is about to end (the sweeps of the order poller); how many `check` counted.
    pub(crate) async fn each_open<'a, F, Fut>(
        &'a self,
        stages: &[Stage],
        inv: &Invocation,
        mut check: F,
    ) -> Result<usize>
    where
        F: FnMut(ShipmentRecord) -> Fut,
        Fut: std::future::Future<Output = Result<bool>> + 'a,
    {
        let mut counted = 0;
        for stage in stages {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .shipments
                    .list(*stage, None, 100, token.as_deref())
                    .await?;
                for r in page.items {
                    if inv.remaining() < Duration::from_secs(2) {
                        return Ok(counted);
                    }
                    if check(r).await? {
                        counted += 1;
                    }
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(counted)
    }

    pub(crate) async fn save(&self, r: &mut ShipmentRecord) -> Result<bool> {
        match self.shipments.save(r).await {
            Ok(()) => Ok(true),
            Err(Error::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn do_step(
        &self,
        step: &Step,
        r: &ShipmentRecord,
        f: &mut Fulfilment,
        inv: &Invocation,
    ) -> Result<Done> {
        let id = r.id.as_str();
        match step {
            Step::Packages => {
                let v = f.pack_version;
                match f.packages_at_amazon {
                    None => {
                        let ids: Vec<String> = f.packages.iter().map(|p| p.id.clone()).collect();
                        let ids2 = ids.clone();
                        self.once(
                            &ActionKey::CreatePackages(id).to_string(),
                            id,
                            inv,
                            move |s| ids.iter().all(|i| s.packages.iter().any(|p| &p.id == i)),
                            self.amazon.create_packages(id, &f.packages),
                            async { Ok(()) },
                        )
                        .await?;
                        f.packages_at_amazon = Some(v);
                        Ok(Done::ok(format!("createPackages {}", ids2.join(","))))
                    }
                    Some(_) => {
                        // A re-pack: each package replaced (Amazon goes back to PACKAGE_CREATED).
                        for p in &f.packages {
                            let want = p.package_line_items.clone();
                            let weight = p.weight.clone();
                            let pid = p.id.clone();
                            self.once(
                                &ActionKey::UpdatePackage {
                                    shipment_id: id,
                                    pack_version: v,
                                    package_id: &p.id,
                                }
                                .to_string(),
                                id,
                                inv,
                                move |s| {
                                    s.packages.iter().any(|a| {
                                        a.id == pid
                                            && a.package_line_items == want
                                            && a.weight == weight
                                    })
                                },
                                self.amazon.update_package(id, p),
                                async { Ok(()) },
                            )
                            .await?;
                        }
                        f.packages_at_amazon = Some(v);
                        Ok(Done::ok(format!("updatePackage for packing {v}")))
                    }
                }
            }
            Step::ShippingOptions(pid) => {
                let policy: OptionPolicy = policy::for_location(
                    self.settings.as_ref(),
                    policy::SHIPPING_OPTION_POLICY,
                    &r.location_id,
                    OptionPolicy::Recommended,
                )
                .await?;
                let offered = self.amazon.shipping_options(id, pid).await?;
                let chosen = policy::choose(&policy, &offered).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "Amazon offers no shipping option for package {pid} of {id}"
                    ))
                })?;
                f.shipping_options.insert(
                    pid.clone(),
                    ChosenOption {
                        shipping_option_id: chosen.shipping_option_id.clone(),
                        carrier: chosen.carrier_name.clone(),
                        pickup_window: chosen.pickup_window.clone(),
                        policy: policy.name().to_string(),
                    },
                );
                Ok(Done::ok(format!(
                    "{pid}: {} ({})",
                    chosen.shipping_option_id,
                    policy.name()
                )))
            }
            Step::Invoice => {
                let v = f.pack_version;
                let key = label_key(r, &format!("invoice-v{v}"));
                let store = |doc: crate::spapi::InvoiceResponse| {
                    let key = key.clone();
                    async move {
                        let ct = invoice_content_type(doc.document.format.as_ref());
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(doc.document.content.unwrap_or_default())
                            .map_err(|e| {
                                Error::InvalidInput(format!("invoice is not base64: {e}"))
                            })?;
                        let key = format!("{key}.{}", extension(ct));
                        self.files.put(&key, bytes, ct).await?;
                        Ok(StoredDocument {
                            key,
                            content_type: ct.to_string(),
                            source: "amazon".into(),
                        })
                    }
                };
                let stored = self
                    .once(
                        &ActionKey::GenerateInvoice {
                            shipment_id: id,
                            pack_version: v,
                        }
                        .to_string(),
                        id,
                        inv,
                        |s| {
                            s.invoice_info.is_some() || s.status == ShipmentStatus::InvoiceGenerated
                        },
                        async { store(self.amazon.generate_invoice(id).await?).await },
                        async { store(self.amazon.retrieve_invoice(id).await?).await },
                    )
                    .await?;
                let note = format!("invoice stored at {}", stored.key);
                f.invoice = Some(stored);
                Ok(Done::ok(note))
            }
            Step::Labels {
                packages,
                regenerate,
            } => self.labels(r, f, packages, regenerate.as_ref(), inv).await,
            Step::Download(pid) => {
                let Some(label) = f.labels.get(pid).cloned() else {
                    return Ok(Done::ok(None));
                };
                match self.files.download(&label.url).await {
                    Ok((bytes, ct)) => {
                        let key = label_key(
                            r,
                            &format!("{pid}-label-{}.{}", label.generation, extension(&ct)),
                        );
                        self.files.put(&key, bytes, &ct).await?;
                        let l = f.labels.get_mut(pid).expect("label present");
                        l.key = Some(key.clone());
                        l.content_type = Some(ct);
                        Ok(Done::ok(format!("{pid}: stored at {key}")))
                    }
                    Err(Error::NotFound(why)) => {
                        // Never printed, so a new label replaces nothing the warehouse holds.
                        let number = f.reprints.len() as u32 + 1;
                        let rp = Reprint {
                            package_ids: vec![pid.clone()],
                            reason: format!("label file could not be downloaded: {why}"),
                            requested_at: Utc::now(),
                            number,
                        };
                        f.reprints.push(rp.clone());
                        f.reprint = Some(rp);
                        Ok(Done::ok(format!(
                            "{pid}: {why}; a new label will be asked for"
                        )))
                    }
                    Err(e) => Err(e),
                }
            }
            Step::Announce => {
                let hub = self.hub(&r.location_id).await?;
                let invoice = match f.invoice.as_ref().or(f.seller_invoice.as_ref()) {
                    Some(d) => Some((d.key.clone(), self.files.link(&d.key, self.link_ttl).await?)),
                    None => None,
                };
                let mut events = Vec::new();
                for (pid, l) in &f.labels {
                    let key = l.key.clone().unwrap_or_default();
                    let label = self.files.link(&key, self.link_ttl).await?;
                    // When the first of the event's links stops working.
                    let expires = crate::fulfilment::ports::links_expire_at(
                        std::iter::once(&label).chain(invoice.as_ref().map(|(_, l)| l)),
                    );
                    let ev = LabelReady {
                        shipment_id: r.id.clone(),
                        package_id: pid.clone(),
                        label_url: Some(label.url),
                        label_key: key,
                        carrier: Some(l.carrier.clone()),
                        tracking_number: Some(l.tracking_id.clone()),
                        content_type: l.content_type.clone(),
                        links_expire_at: expires.map(crate::shipment::sort_time),
                        invoice_key: invoice.as_ref().map(|(k, _)| k.clone()),
                        invoice_url: invoice.as_ref().map(|(_, l)| l.url.clone()),
                        pickup_window: l
                            .pickup_window
                            .as_ref()
                            .and_then(|w| serde_json::to_value(w).ok()),
                        generation: l.generation,
                    };
                    let mut fields = serde_json::to_value(&ev)?;
                    fields["hub"] = hub.clone().into();
                    events.push(OutboundEvent::new(
                        EventName::LabelReady,
                        &format!("{}#{pid}#{}", r.id, l.generation),
                        Utc::now(),
                        fields,
                    )?);
                }
                self.events.publish(&events).await?;
                f.label_ready_sent = true;
                Ok(Done::ok(format!("{} LabelReady sent", events.len())))
            }
        }
    }

    async fn labels(
        &self,
        r: &ShipmentRecord,
        f: &mut Fulfilment,
        packages: &[String],
        regenerate: Option<&Reprint>,
        inv: &Invocation,
    ) -> Result<Done> {
        let id = r.id.as_str();
        let v = f.pack_version;
        // MFN: one call per chosen option; Seller Flex: one call for every package.
        let mut groups: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for p in packages {
            let option = f
                .shipping_options
                .get(p)
                .map(|o| o.shipping_option_id.clone());
            groups.entry(option).or_default().push(p.clone());
        }
        let mut notes = Vec::new();
        let mut failures = Vec::new();
        for (option, ids) in groups {
            let (action, op) = match regenerate {
                Some(rp) => (
                    ActionKey::RegenerateLabels {
                        shipment_id: id,
                        reprint: rp.number,
                        package_ids: &ids,
                    },
                    LabelOperation::Regenerate,
                ),
                None => (
                    ActionKey::GenerateLabels {
                        shipment_id: id,
                        pack_version: v,
                        package_ids: &ids,
                    },
                    LabelOperation::Generate,
                ),
            };
            let key = action.to_string();
            let list = {
                let ids_applied = ids.clone();
                let recover_key = action.recovery();
                let applied = move |s: &Shipment| {
                    op == LabelOperation::Generate
                        && ids_applied.iter().all(|i| {
                            s.packages.iter().any(|p| {
                                &p.id == i
                                    && matches!(
                                        p.status,
                                        Some(PackageStatus::ShiplabelGenerated)
                                            | Some(PackageStatus::Shipped)
                                    )
                            })
                        })
                };
                let ids_ref = &ids;
                let option_ref = option.as_deref();
                self.once(
                    &key,
                    id,
                    inv,
                    applied,
                    async move {
                        Ok(self
                            .amazon
                            .ship_labels(id, op, option_ref, ids_ref)
                            .await?
                            .package_ship_label_list)
                    },
                    // GENERATE applied but its answer (the file URLs) lost: only a new
                    // label can give the files; the lost one was never printed.
                    async move {
                        self.idempotency
                            .run(&recover_key, &recover_key, inv, |_| async move {
                                Ok(self
                                    .amazon
                                    .ship_labels(
                                        id,
                                        LabelOperation::Regenerate,
                                        option_ref,
                                        ids_ref,
                                    )
                                    .await?
                                    .package_ship_label_list)
                            })
                            .await
                    },
                )
                .await?
            };
            for pid in &ids {
                match list
                    .iter()
                    .find(|l| l.package_id.as_deref() == Some(pid.as_str()))
                {
                    Some(PackageShipLabel {
                        status: Some(LabelStatus::Success) | None,
                        ship_label_metadata: Some(m),
                        file_data: Some(file),
                        ..
                    }) => {
                        let generation = f.labels.get(pid).map(|l| l.generation).unwrap_or(0) + 1;
                        f.labels.insert(
                            pid.clone(),
                            StoredLabel {
                                tracking_id: m.tracking_id.clone(),
                                carrier: m.carrier_name.clone(),
                                shipping_option_id: m.shipping_option_id.clone(),
                                pickup_window: m.pickup_window.clone().or_else(|| {
                                    f.shipping_options
                                        .get(pid)
                                        .and_then(|o| o.pickup_window.clone())
                                }),
                                url: file.url.clone(),
                                generation,
                                key: None,
                                content_type: None,
                            },
                        );
                        notes.push(format!("{pid}: {} {}", m.carrier_name, m.tracking_id));
                    }
                    other => failures.push(format!(
                        "package {pid}: {}",
                        other
                            .and_then(|l| l.error_details.as_ref())
                            .map(|e| format!("{} {}", e.code, e.message))
                            .unwrap_or_else(|| "no label in Amazon's answer".into())
                    )),
                }
            }
        }
        if regenerate.is_some() {
            f.reprint = None;
        }
        f.label_ready_sent = false;
        f.job = JobState::Queued;
        Ok(Done {
            note: Some(notes.join("; ")),
            then_fail: (!failures.is_empty()).then(|| {
                Error::InvalidInput(format!(
                    "Amazon gave no label for {} of shipment {}",
                    failures.join(", "),
                    r.id
                ))
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipment::fixtures;
    use crate::spapi::Package;

    fn packed(channel: ShipmentChannel, invoice: bool) -> (ShipmentRecord, Fulfilment) {
        let v = fixtures::shipment("S1", "CONFIRMED", "2026-11-21T08:00:00Z", &[("A", 1)]);
        let mut r = AmazonShipment::from_json(&v).unwrap().record;
        r.channel = channel;
        r.invoice_required = invoice;
        r.stage = Stage::Packed;
        let f = Fulfilment {
            pack_version: 1,
            packages: vec![Package {
                id: "P1".into(),
                ..Default::default()
            }],
            job: JobState::Queued,
            ..Default::default()
        };
        (r, f)
    }

    fn label() -> StoredLabel {
        StoredLabel {
            tracking_id: "T".into(),
            carrier: "C".into(),
            shipping_option_id: None,
            pickup_window: None,
            url: "http://x".into(),
            generation: 1,
            key: None,
            content_type: None,
        }
    }

    #[test]
    fn steps_follow_the_channel_and_resume_where_left() {
        let (r, mut f) = packed(ShipmentChannel::Mfn, true);
        assert_eq!(next_step(&r, &f), Some(Step::Packages));
        f.packages_at_amazon = Some(1);
        assert_eq!(next_step(&r, &f), Some(Step::ShippingOptions("P1".into())));
        f.shipping_options.insert(
            "P1".into(),
            ChosenOption {
                shipping_option_id: "O".into(),
                carrier: None,
                pickup_window: None,
                policy: "recommended".into(),
            },
        );
        assert_eq!(next_step(&r, &f), Some(Step::Invoice));
        f.invoice = Some(StoredDocument {
            key: "k".into(),
            content_type: "application/pdf".into(),
            source: "amazon".into(),
        });
        assert!(matches!(
            next_step(&r, &f),
            Some(Step::Labels {
                regenerate: None,
                ..
            })
        ));
        f.labels.insert("P1".into(), label());
        assert_eq!(next_step(&r, &f), Some(Step::Download("P1".into())));
        f.labels.get_mut("P1").unwrap().key = Some("labels/x".into());
        assert_eq!(next_step(&r, &f), Some(Step::Announce));
        f.label_ready_sent = true;
        assert_eq!(next_step(&r, &f), None);

        // Seller Flex: no shipping options; no invoice unless required.
        let (r, mut f) = packed(ShipmentChannel::Fba, false);
        f.packages_at_amazon = Some(1);
        assert!(matches!(next_step(&r, &f), Some(Step::Labels { .. })));
        // A re-pack (newer pack version) goes back to the packages.
        f.pack_version = 2;
        assert_eq!(next_step(&r, &f), Some(Step::Packages));
    }

    #[test]
    fn a_job_stops_when_superseded_or_cancelled() {
        let (mut r, mut f) = packed(ShipmentChannel::Fba, false);
        let job = LabelJob {
            shipment_id: "S1".into(),
            pack_version: 1,
            correlation_id: None,
        };
        assert_eq!(stop_reason(&r, &f, &job), None);
        f.pack_version = 2;
        assert!(stop_reason(&r, &f, &job).unwrap().contains("superseded"));
        f.pack_version = 1;
        r.status = ShipmentStatus::Cancelled;
        assert!(stop_reason(&r, &f, &job).unwrap().contains("cancelled"));
        r.status = ShipmentStatus::Confirmed;
        r.stage = Stage::Shipped;
        assert!(stop_reason(&r, &f, &job).unwrap().contains("shipped"));
    }
}
