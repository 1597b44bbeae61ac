//! Each command: the calls on `flexbridge` it makes, and what it prints (text and JSON).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use flexbridge::config::prefixes;
use flexbridge::inventory::changes::StockChanges;
use flexbridge::inventory::pusher::Pusher;
use flexbridge::inventory::reconcile;
use flexbridge::operate::status::{QueueStatus, Status, Throttling};
use flexbridge::operate::{hubs, secret as op_secret, settings as op_settings, status};
use flexbridge::runtime::parked_attributes;
use flexbridge::secrets::{SecretCache, SecretVersions};
use flexbridge::spapi::{Operation, SpApiClient};
use flexbridge::store::cursors::DynamoCursorStore;
use flexbridge::store::inventory::DynamoInventoryStore;
use flexbridge::store::locations::{DynamoLocationStore, Location, LocationStore};
use flexbridge::store::ratelimit::DynamoBucketStore;
use flexbridge::store::settings::{DynamoSettingsStore, SettingsStore};
use flexbridge::store::shipments::{DynamoShipmentStore, ShipmentStore};
use flexbridge::warehouse::keys::{KeyRole, ROTATION_WINDOW};
use flexbridge::Env;
use serde_json::{json, Value};

use crate::resolve::{self, Queue, Resources};
use crate::{
    Command, DlqCmd, HubsCmd, InventoryCmd, LinkCmd, RotateKey, SecretCmd, SettingsCmd, UploadKind,
};

/// What a command prints: `text` by default, `json` with `--json`.
pub struct Output {
    pub text: String,
    pub json: Value,
}

/// A connection to one stack.
pub struct Ctx {
    pub res: Resources,
    /// The environment a function of the stack would get (see [`Resources::env`]).
    pub env: Env,
    pub sdk: aws_config::SdkConfig,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Ctx {
    pub async fn connect(stack: &str, vars: HashMap<String, String>) -> Result<Ctx> {
        let base = Resources {
            stack: stack.into(),
            ..Default::default()
        }
        .env(&vars);
        let sdk = flexbridge::aws::config(&base).await;
        let res = resolve::resolve(&sdk, stack).await?;
        Ok(Ctx {
            env: res.env(&vars),
            ddb: flexbridge::aws::dynamodb_client(&sdk),
            sqs: flexbridge::aws::sqs_client(&sdk),
            s3: flexbridge::aws::s3_client(&sdk),
            sdk,
            res,
        })
    }

    pub(crate) fn settings(&self) -> Result<DynamoSettingsStore> {
        Ok(DynamoSettingsStore::new(
            self.ddb.clone(),
            self.res.table("SettingsTable")?,
        ))
    }

    pub(crate) fn locations(&self) -> Result<DynamoLocationStore> {
        Ok(DynamoLocationStore::new(
            self.ddb.clone(),
            self.res.table("LocationsTable")?,
        ))
    }

    pub(crate) async fn spapi(&self) -> Result<SpApiClient> {
        SpApiClient::from_env(&self.env, &SecretCache::from_sdk_config(&self.sdk))
            .await
            .context("connecting to Amazon with the SP-API credentials in the stack's secret")
    }
}

fn who(by: &Option<String>) -> Result<String> {
    by.clone()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| anyhow!("who makes this change? pass --by NAME (or set $USER)"))
}

pub async fn execute(ctx: &Ctx, command: &Command) -> Result<Output> {
    match command {
        Command::Status {
            watch,
            interval,
            times,
        } => {
            let watch = watch.then(|| (Duration::from_secs((*interval).max(1)), *times));
            status(ctx, watch).await
        }
        Command::Settings(c) => settings(ctx, c).await,
        Command::Hubs(c) => hubs_cmd(ctx, c).await,
        Command::Upload {
            file,
            kind,
            full,
            hub,
            wait_secs,
        } => {
            let wait = Duration::from_secs(*wait_secs);
            upload(ctx, file, *kind, *full, hub.as_deref(), wait).await
        }
        Command::Shipment { id } => shipment(ctx, id).await,
        Command::Inventory(c) => inventory(ctx, c).await,
        Command::Dlq(c) => dlq(ctx, c).await,
        Command::Reconcile => reconcile_now(ctx).await,
        Command::Doctor => bail!("doctor runs through `run` (it decides the exit code)"),
        Command::Link(c) => link(ctx, c).await,
        Command::Secret(c) => secret(ctx, c).await,
    }
}

fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "never".into(),
        Some(t) => format!(
            "{} ({} ago)",
            t.format("%Y-%m-%d %H:%M:%S"),
            secs((now - t).num_seconds())
        ),
    }
}

fn secs(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

fn opt_secs(s: Option<i64>) -> String {
    s.map(secs).unwrap_or_else(|| "-".into())
}

pub(crate) async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<(i64, i64)> {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "reading queue depth: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    let get = |n: &QueueAttributeName| {
        a.attributes()
            .and_then(|m| m.get(n))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// The status of the stack (what `status` prints; the local main job prints it too).
pub async fn collect_status(ctx: &Ctx) -> Result<Status> {
    let now = Utc::now();
    let inventory = DynamoInventoryStore::new(ctx.ddb.clone(), ctx.res.table("InventoryTable")?);
    let locations = status::locations(
        &ctx.locations()?,
        &DynamoCursorStore::new(ctx.ddb.clone(), ctx.res.table("CursorsTable")?),
        &DynamoShipmentStore::new(ctx.ddb.clone(), ctx.res.table("ShipmentsTable")?),
        &inventory,
        now,
    )
    .await?;
    let mut queues = Vec::new();
    for q in ctx.res.work_queues() {
        let (visible, in_flight) = queue_depth(&ctx.sqs, &q.url).await?;
        let dlq_visible = match q.dlq.as_deref().and_then(|d| ctx.res.queues.get(d)) {
            Some(d) => queue_depth(&ctx.sqs, &d.url).await?.0,
            None => 0,
        };
        queues.push(QueueStatus {
            queue: q.logical_id.clone(),
            visible,
            in_flight,
            dlq: q.dlq.clone(),
            dlq_visible,
        });
    }
    let buckets = DynamoBucketStore::new(ctx.ddb.clone(), ctx.res.table("CursorsTable")?);
    let mut throttling = Vec::new();
    for op in Operation::ALL {
        if let Some(ms) = buckets.booked_ahead_ms(op.id()).await? {
            throttling.push(Throttling {
                operation: op.id().to_string(),
                booked_ahead_ms: ms,
            });
        }
    }
    let heartbeat = ctx.settings()?.status("heartbeat").await?.map(|(_, at)| at);
    Ok(Status {
        stack: ctx.res.stack.clone(),
        at: now,
        heartbeat,
        locations,
        queues,
        throttling,
    })
}

/// `status` as text.
pub fn render_status(s: &Status) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "flexbridge stack {} at {} (heartbeat: {})",
        s.stack,
        s.at.format("%Y-%m-%d %H:%M:%S UTC"),
        s.heartbeat.as_deref().unwrap_or("never")
    );
    let _ = writeln!(
        t,
        "\n{:<16} {:<10} {:<6} {:<6} {:<32} {:>7} {:>6} {:>5} {:>8} {:>8} {:>6}  halt",
        "location",
        "hub",
        "orders",
        "stock",
        "last successful poll",
        "waiting",
        "lag",
        "held",
        "pending",
        "push lag",
        "errors"
    );
    for l in &s.locations {
        let onoff = |b: bool| if b { "on" } else { "off" };
        let halt = match &l.halt {
            Some(h) if h.status == "halted" => format!("HALTED: {}", h.reason),
            Some(h) => format!("{} by {}", h.status, h.decided_by.as_deref().unwrap_or("?")),
            None => "-".into(),
        };
        let _ = writeln!(
            t,
            "{:<16} {:<10} {:<6} {:<6} {:<32} {:>7} {:>6} {:>5} {:>8} {:>8} {:>6}  {halt}",
            l.location_id,
            l.hub_id,
            onoff(l.orders_enabled),
            onoff(l.inventory_enabled),
            ago(l.last_successful_poll, s.at),
            l.orders_waiting,
            opt_secs(l.order_lag_s),
            l.orders_held,
            l.pending_skus,
            opt_secs(l.push_lag_s),
            l.sku_errors,
        );
    }
    let _ = writeln!(
        t,
        "\n{:<22} {:>7} {:>9}  {:<22} {:>6}",
        "queue", "waiting", "in flight", "dead-letter queue", "parked"
    );
    for q in &s.queues {
        let _ = writeln!(
            t,
            "{:<22} {:>7} {:>9}  {:<22} {:>6}",
            q.queue,
            q.visible,
            q.in_flight,
            q.dlq.as_deref().unwrap_or("-"),
            q.dlq_visible
        );
    }
    let _ = write!(t, "\nrate limits (shared buckets): ");
    if s.throttling.is_empty() {
        let _ = writeln!(t, "none in use");
    } else {
        let parts: Vec<String> = s
            .throttling
            .iter()
            .map(|b| format!("{} booked {:.0} ms ahead", b.operation, b.booked_ahead_ms))
            .collect();
        let _ = writeln!(t, "{}", parts.join(", "));
    }
    let problems = s.problems();
    if problems.is_empty() {
        let _ = writeln!(t, "problems: none");
    } else {
        let _ = writeln!(t, "problems:");
        for p in problems {
            let _ = writeln!(t, "  - {p}");
        }
    }
    t
}

async fn status(ctx: &Ctx, watch: Option<(Duration, Option<u32>)>) -> Result<Output> {
    let Some((every, times)) = watch else {
        let s = collect_status(ctx).await?;
        return Ok(Output {
            text: render_status(&s),
            json: serde_json::to_value(&s)?,
        });
    };
    // Redrawn in place on a terminal, one frame after another otherwise; until Ctrl-C (or
    // `--times` frames).
    use std::io::{IsTerminal, Write};
    let tty = std::io::stdout().is_terminal();
    let mut frame = 0u32;
    loop {
        let s = collect_status(ctx).await?;
        frame += 1;
        let mut out = std::io::stdout().lock();
        if tty {
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        let _ = writeln!(
            out,
            "{} (every {} s; Ctrl-C ends)\n{}",
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            every.as_secs(),
            render_status(&s)
        );
        let _ = out.flush();
        drop(out);
        if times.is_some_and(|n| frame >= n) {
            return Ok(Output {
                text: String::new(),
                json: serde_json::to_value(&s)?,
            });
        }
        tokio::time::sleep(every).await;
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn settings(ctx: &Ctx, c: &SettingsCmd) -> Result<Output> {
    let store = ctx.settings()?;
    match c {
        SettingsCmd::Get { name } => {
            let mut all = op_settings::view(&store).await?;
            if let Some(n) = name {
                op_settings::spec(n)?;
                all.retain(|s| &s.name == n);
            }
            let mut t = String::new();
            for s in &all {
                let origin = if s.set {
                    format!(
                        "v{} by {} at {}",
                        s.version,
                        s.updated_by.as_deref().unwrap_or("?"),
                        s.updated_at.as_deref().unwrap_or("?")
                    )
                } else {
                    "default".into()
                };
                let _ = writeln!(
                    t,
                    "{:<36} {:<24} {origin}{}",
                    s.name,
                    show(&s.value),
                    if s.per_location {
                        "  [per location]"
                    } else {
                        ""
                    }
                );
                if name.is_some() {
                    let _ = writeln!(t, "  {}", s.meaning);
                }
            }
            Ok(Output {
                text: t,
                json: serde_json::to_value(&all)?,
            })
        }
        SettingsCmd::Set {
            name,
            value,
            location,
            by,
        } => {
            let by = who(by)?;
            let old = store.get(name).await?;
            let new = op_settings::change(
                &store,
                &ctx.locations()?,
                name,
                op_settings::parse_value(value),
                location.as_deref(),
                &by,
            )
            .await?;
            let old_text = old
                .as_ref()
                .map(|o| show(&o.value))
                .unwrap_or_else(|| "(default)".into());
            let changed = old.as_ref().map(|o| o.version) != Some(new.version);
            Ok(Output {
                text: if changed {
                    format!(
                        "{name}: {old_text} -> {} (version {}, by {by})\n",
                        show(&new.value),
                        new.version
                    )
                } else {
                    format!("{name}: already {} (nothing changed)\n", show(&new.value))
                },
                json: json!({
                    "name": name, "old": old.map(|o| o.value), "new": new.value,
                    "version": new.version, "by": by, "changed": changed,
                }),
            })
        }
        SettingsCmd::Log { name } => {
            let h = store.history(name).await?;
            // A name never changed and unknown is most likely a typo: say which names exist.
            if h.is_empty() && !name.starts_with(hubs::LOG_PREFIX) {
                op_settings::spec(name)?;
            }
            let mut t = String::new();
            if h.is_empty() {
                let _ = writeln!(t, "{name}: never changed");
            }
            for c in &h {
                let _ = writeln!(
                    t,
                    "v{:<3} {}  {:<12} {} -> {}",
                    c.version,
                    c.at,
                    c.by,
                    c.old.as_ref().map(show).unwrap_or_else(|| "(unset)".into()),
                    show(&c.new)
                );
            }
            let json: Vec<Value> = h
                .iter()
                .map(|c| json!({"version": c.version, "at": c.at, "by": c.by, "old": c.old, "new": c.new}))
                .collect();
            Ok(Output {
                text: t,
                json: Value::Array(json),
            })
        }
    }
}

fn hub_line(l: &Location) -> String {
    let onoff = |b: bool| if b { "on" } else { "off" };
    format!(
        "{:<16} {:<10} {:<16} {:<4} orders {:<3} inventory {:<3} returns {:<3} {}",
        l.location_id,
        l.hub_id,
        l.marketplace_id,
        l.channel,
        onoff(l.orders_enabled),
        onoff(l.inventory_enabled),
        onoff(l.returns_enabled),
        l.name
    )
}

async fn hubs_cmd(ctx: &Ctx, c: &HubsCmd) -> Result<Output> {
    let locations = ctx.locations()?;
    let log = ctx.settings()?;
    let change = match c {
        HubsCmd::List => {
            let all = locations.list().await?;
            let mut t = String::new();
            for l in &all {
                let _ = writeln!(t, "{}", hub_line(l));
            }
            if all.is_empty() {
                t.push_str("no hub is mapped yet (`hubs add`)\n");
            }
            return Ok(Output {
                text: t,
                json: serde_json::to_value(&all)?,
            });
        }
        HubsCmd::Add {
            location_id,
            hub,
            name,
            marketplace,
            channel,
            no_orders,
            no_inventory,
            no_returns,
            by,
        } => {
            let by = who(by)?;
            let mapping = Location {
                location_id: location_id.clone(),
                hub_id: hub.clone(),
                name: name.clone().unwrap_or_else(|| hub.clone()),
                marketplace_id: marketplace.clone(),
                channel: channel.as_str().into(),
                orders_enabled: !no_orders,
                inventory_enabled: !no_inventory,
                returns_enabled: !no_returns,
            };
            // The mapping's own rules first: no need to ask Amazon about a malformed one.
            hubs::check_mapping(&mapping)?;
            let amazon = ctx.spapi().await?;
            hubs::put(&locations, &log, &amazon, mapping, &by).await?
        }
        HubsCmd::Disable { location_id, by } => {
            hubs::disable(&locations, &log, location_id, &who(by)?).await?
        }
    };
    let verb = if change.old.is_some() {
        "changed"
    } else {
        "added"
    };
    Ok(Output {
        text: format!(
            "{verb} (log {} v{}):\n{}\n",
            hubs::log_name(&change.new.location_id),
            change.version,
            hub_line(&change.new)
        ),
        json: serde_json::to_value(&change)?,
    })
}

async fn upload(
    ctx: &Ctx,
    file: &std::path::Path,
    kind: UploadKind,
    full: bool,
    hub: Option<&str>,
    wait: Duration,
) -> Result<Output> {
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no usable file name", file.display()))?;
    let prefix = match kind {
        UploadKind::Catalog => prefixes::CATALOG,
        UploadKind::Prices => prefixes::PRICES,
        UploadKind::Inventory => prefixes::INVENTORY,
    };
    let folder = match (kind, full, hub) {
        (UploadKind::Catalog, true, None) => "full/".to_string(),
        (UploadKind::Inventory, true, Some(hub)) if !hub.is_empty() && !hub.contains('/') => {
            format!("full/{hub}/")
        }
        (UploadKind::Inventory, true, _) => bail!("a full stock file needs --hub HUB (one hub)"),
        (_, false, Some(_)) | (UploadKind::Catalog, true, Some(_)) => {
            bail!("--hub is for full stock files only (--kind inventory --full)")
        }
        (UploadKind::Prices, true, _) => bail!("--full is for catalog and stock files only"),
        (_, false, None) => String::new(),
    };
    let key = format!("{prefix}{folder}{name}");
    let bucket = ctx.res.bucket()?;
    let put = ctx
        .s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(body.into())
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "uploading to s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    let version = put.version_id().map(str::to_string);
    let report_key = format!("{}{key}.summary.json", prefixes::REPORTS);
    progress(&format!(
        "uploaded s3://{bucket}/{key}; waiting for its report"
    ));
    let started = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        if let Ok(o) = ctx
            .s3
            .get_object()
            .bucket(bucket)
            .key(&report_key)
            .send()
            .await
        {
            let bytes = o.body.collect().await?.into_bytes();
            let summary: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the report {report_key}"))?;
            // A report of an earlier upload of the same name is not this one's.
            let same = match (&version, summary["versionId"].as_str()) {
                (Some(v), Some(r)) => v == r,
                _ => true,
            };
            if same {
                let mut t =
                    format!("uploaded s3://{bucket}/{key}\nreport s3://{bucket}/{report_key}:\n");
                for f in [
                    "status",
                    "reason",
                    "rowsRead",
                    "accepted",
                    "unchanged",
                    "rejected",
                ] {
                    if let Some(v) = summary.get(f).filter(|v| !v.is_null()) {
                        let _ = writeln!(t, "  {f:<10} {}", show(v));
                    }
                }
                let errors = format!("{}{key}.errors.csv", prefixes::REPORTS);
                let _ = writeln!(t, "  row errors: s3://{bucket}/{errors}");
                return Ok(Output {
                    text: t,
                    json: json!({"bucket": bucket, "key": key, "report": summary}),
                });
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let depth = match ctx.res.queue("UploadsQueue") {
                Ok(q) => queue_depth(&ctx.sqs, &q.url).await.ok(),
                Err(_) => None,
            };
            let queued = depth
                .map(|(w, f)| format!(" (UploadsQueue: {w} waiting, {f} being read)"))
                .unwrap_or_default();
            progress(&format!(
                "{key}: no report yet after {} s{queued}",
                started.elapsed().as_secs()
            ));
        }
        if started.elapsed() > wait {
            bail!(
                "uploaded s3://{bucket}/{key}, but no report at s3://{bucket}/{report_key} after {} s \
                 (is the upload function running? see `status` and `dlq list UploadsQueue`)",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn shipment(ctx: &Ctx, id: &str) -> Result<Output> {
    let store = DynamoShipmentStore::new(ctx.ddb.clone(), ctx.res.table("ShipmentsTable")?);
    let Some(s) = store.get(id).await? else {
        bail!("no shipment {id} is stored (flexbridge has not seen it; check the location's last poll in `status`)");
    };
    let history = status::history(&s);
    let mut t = format!(
        "shipment {} at {} ({} {}), stage {}, Amazon status {}\n",
        s.id,
        s.location_id,
        s.marketplace_id,
        s.channel,
        s.stage.as_str(),
        s.status
    );
    if let Some(b) = &s.ship_by {
        let _ = writeln!(t, "ship by {b}");
    }
    for h in &history {
        let _ = writeln!(t, "  {}  {}", h.at.format("%Y-%m-%d %H:%M:%S"), h.what);
    }
    Ok(Output {
        text: t,
        json: json!({
            "id": s.id, "locationId": s.location_id, "stage": s.stage.as_str(),
            "status": s.status, "shipBy": s.ship_by, "history": history,
        }),
    })
}

/// Signed with the operator's own credentials: an IAM user's keys give links of the full
/// wanted life, SSO or assumed-role sessions no longer than the session lasts.
/// `flexbridge secret ...`: the logic is `flexbridge::operate::secret`; this reads the
/// secret's versions and puts the new one.
async fn secret(ctx: &Ctx, c: &SecretCmd) -> Result<Output> {
    let arn = ctx
        .res
        .secrets
        .get(resolve::SECRET)
        .ok_or_else(|| anyhow!("stack {}: no {} found", ctx.res.stack, resolve::SECRET))?;
    let versions = SecretCache::from_sdk_config(&ctx.sdk)
        .versions(arn, ROTATION_WINDOW)
        .await?;
    let now = Utc::now();
    let change = match c {
        SecretCmd::ShowKey { key } => return show_key(&versions, key.role(), now),
        SecretCmd::Set { file, end_window } => {
            let given = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let change = op_secret::merge_credentials(&versions.current.value, &given)?;
            if change.changed.is_empty() {
                return Ok(Output {
                    text: "nothing changed: the secret already holds these values\n".into(),
                    json: json!({"changed": []}),
                });
            }
            op_secret::may_put(&versions, now, *end_window)?;
            change
        }
        SecretCmd::Rotate {
            key,
            from_file,
            end_window,
        } => {
            let change = rotated(&versions, *key, from_file.as_deref())?;
            op_secret::may_put(&versions, now, *end_window)?;
            change
        }
    };
    flexbridge::aws::secrets_client(&ctx.sdk)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(change.secret.expose())
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
        .with_context(|| format!("putting a new version of {}", resolve::SECRET))?;
    let text = match c {
        SecretCmd::Rotate { key, .. } => format!(
            "rotated {}: the old key counts for 24 hours more (docs/keys.md); print the new one \
             with `flexbridge secret show-key <warehouse|webhook>`\n",
            match key {
                RotateKey::Both => "both keys",
                RotateKey::Warehouse => "the warehouse key",
                RotateKey::Webhook => "the webhook key",
            }
        ),
        _ => format!(
            "put a new version of {}: {} (the keys are unchanged)\n",
            resolve::SECRET,
            change.changed.join(", ")
        ),
    };
    Ok(Output {
        text,
        json: json!({"changed": change.changed}),
    })
}

/// The current key of one side, and until when the previous one still counts.
fn show_key(versions: &SecretVersions, role: KeyRole, now: DateTime<Utc>) -> Result<Output> {
    let keys = role.keys_at(versions, now, ROTATION_WINDOW)?;
    let previous_until = (keys.len() > 1)
        .then(|| op_secret::window_end(versions))
        .flatten();
    let mut text = format!("{}\n", keys[0].expose());
    if let Some(u) = previous_until {
        let _ = writeln!(
            text,
            "(the previous {} key counts too until {})",
            role.name(),
            u.to_rfc3339()
        );
    }
    Ok(Output {
        text,
        json: json!({
            "key": role.name(),
            "value": keys[0].expose(),
            "previousCountsUntil": previous_until.map(|u| u.to_rfc3339()),
        }),
    })
}

/// The secret with a new key: random, or (one side only) the one in `from_file`.
fn rotated(
    versions: &SecretVersions,
    key: RotateKey,
    from_file: Option<&std::path::Path>,
) -> Result<op_secret::Change> {
    let new_key = match from_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim()
            .to_string()
            .into(),
        None => op_secret::new_key(),
    };
    if new_key.expose().len() < 32 {
        bail!("a key must be at least 32 characters");
    }
    let current = &versions.current.value;
    Ok(match key {
        RotateKey::Both if from_file.is_some() => {
            bail!("--from-file sets one key (warehouse or webhook); both derive from a new random signing key")
        }
        RotateKey::Both => op_secret::rotate_both(current, &new_key)?,
        RotateKey::Warehouse => op_secret::rotate(current, KeyRole::Warehouse, &new_key)?,
        RotateKey::Webhook => op_secret::rotate(current, KeyRole::Webhook, &new_key)?,
    })
}

async fn link(ctx: &Ctx, c: &LinkCmd) -> Result<Output> {
    use flexbridge::fulfilment::ports::S3LabelFiles;
    let files = S3LabelFiles::new(&ctx.sdk, ctx.res.bucket()?)?;
    match c {
        LinkCmd::Labels { id } => {
            let store = DynamoShipmentStore::new(ctx.ddb.clone(), ctx.res.table("ShipmentsTable")?);
            let Some(s) = store.get(id).await? else {
                bail!("no shipment {id} is stored");
            };
            let links = flexbridge::fulfilment::api::file_links(
                &s,
                &files,
                flexbridge::fulfilment::wiring::LINK_TTL,
            )
            .await?;
            let mut t = String::new();
            for l in links["labels"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    t,
                    "label {} (until {}): {}",
                    l["packageId"].as_str().unwrap_or("?"),
                    l["expiresAt"].as_str().unwrap_or("-"),
                    l["url"].as_str().unwrap_or("not stored yet"),
                );
            }
            if let Some(i) = links["invoice"].as_object() {
                let _ = writeln!(
                    t,
                    "invoice (until {}): {}",
                    i["expiresAt"].as_str().unwrap_or("-"),
                    i["url"].as_str().unwrap_or("-"),
                );
            }
            if t.is_empty() {
                let _ = writeln!(t, "shipment {id} has no label or invoice file yet");
            }
            Ok(Output {
                text: t,
                json: links,
            })
        }
        LinkCmd::Report { date } => {
            let date = match date.as_str() {
                "latest" => None,
                d => Some(
                    d.parse()
                        .with_context(|| format!("{d:?} is neither `latest` nor YYYY-MM-DD"))?,
                ),
            };
            let sdk = &ctx.sdk;
            let links = flexbridge::health::aws::ReportLinks {
                reports: std::sync::Arc::new(flexbridge::health::aws::S3HealthReports {
                    s3: flexbridge::aws::s3_client(sdk),
                    bucket: ctx.res.bucket()?.to_string(),
                }),
                files: std::sync::Arc::new(files),
            };
            let l = links.link(date).await?;
            Ok(Output {
                text: format!(
                    "health report of {} (until {}): {}\n",
                    l.date, l.link_expires_at, l.report_url
                ),
                json: serde_json::to_value(&l)?,
            })
        }
    }
}

async fn inventory(ctx: &Ctx, c: &InventoryCmd) -> Result<Output> {
    let changes = StockChanges::from_env(&ctx.env).await?;
    let (loc, release, by) = match c {
        InventoryCmd::Halts => {
            let halts = changes.halts().await?;
            let mut t = String::new();
            for h in &halts {
                let _ = writeln!(
                    t,
                    "{:<16} {:<10} {}: {} (SKUs in push {}, zeroed {}, units {} -> {}) at {}",
                    h.location_id,
                    h.status,
                    h.hub,
                    h.reason,
                    h.skus_in_push,
                    h.skus_zeroed,
                    h.units_before,
                    h.units_after,
                    h.halted_at
                );
            }
            if halts.is_empty() {
                t.push_str("no halted push\n");
            }
            return Ok(Output {
                text: t,
                json: serde_json::to_value(&halts)?,
            });
        }
        InventoryCmd::Release { location_id, by } => (location_id, true, who(by)?),
        InventoryCmd::Discard { location_id, by } => (location_id, false, who(by)?),
    };
    let Some(h) = changes.decide_halt(loc, release, &by).await? else {
        bail!("no halted push at location {loc} (see `inventory halts`)");
    };
    let wanted = if release { "released" } else { "discarded" };
    if h.status != wanted || h.decided_by.as_deref() != Some(by.as_str()) {
        bail!(
            "the push at {loc} was already {} by {} at {}; nothing changed",
            h.status,
            h.decided_by.as_deref().unwrap_or("?"),
            h.decided_at.as_deref().unwrap_or("?")
        );
    }
    Ok(Output {
        text: format!("{loc}: {} by {by}; the pusher acts on it now\n", h.status),
        json: serde_json::to_value(&h)?,
    })
}

async fn dlq(ctx: &Ctx, c: &DlqCmd) -> Result<Output> {
    match c {
        DlqCmd::List { queue, max } => {
            let queues: Vec<_> = match queue {
                Some(q) => vec![ctx.res.work_queue(q)?],
                None => ctx.res.work_queues().collect(),
            };
            let mut t = String::new();
            let mut all = Vec::new();
            for q in queues {
                let dlq_id = q.dlq.as_deref().unwrap_or_default();
                let d = ctx.res.queue(dlq_id)?;
                let (depth, _) = queue_depth(&ctx.sqs, &d.url).await?;
                let _ = writeln!(t, "{dlq_id} (of {}): {depth} parked", q.logical_id);
                let mut messages = Vec::new();
                if depth > 0 && *max > 0 {
                    let out = ctx
                        .sqs
                        .receive_message()
                        .queue_url(&d.url)
                        .max_number_of_messages((*max).clamp(1, 10))
                        .visibility_timeout(0)
                        .message_attribute_names("All")
                        .message_system_attribute_names(MessageSystemAttributeName::All)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow!(
                                "reading {dlq_id}: {}",
                                aws_sdk_sqs::error::DisplayErrorContext(e)
                            )
                        })?;
                    for m in out.messages() {
                        let attr = |n: &str| {
                            m.message_attributes()
                                .and_then(|a| a.get(n))
                                .and_then(|v| v.string_value())
                                .map(str::to_string)
                        };
                        let body: String = m.body().unwrap_or_default().chars().take(300).collect();
                        let reason = attr(parked_attributes::REASON);
                        let function = attr(parked_attributes::FUNCTION);
                        let at = attr(parked_attributes::PARKED_AT);
                        let _ = writeln!(
                            t,
                            "  - {} parked {} by {}: {}\n    body: {body}",
                            m.message_id().unwrap_or("?"),
                            at.as_deref().unwrap_or("?"),
                            function.as_deref().unwrap_or("SQS (receive limit)"),
                            reason.as_deref().unwrap_or(
                                "no reason recorded (moved by SQS after repeated failures)"
                            )
                        );
                        messages.push(json!({
                            "messageId": m.message_id(), "reason": reason, "function": function,
                            "parkedAt": at, "body": body,
                        }));
                    }
                }
                all.push(json!({"queue": q.logical_id, "dlq": dlq_id, "depth": depth, "messages": messages}));
            }
            Ok(Output {
                text: t,
                json: Value::Array(all),
            })
        }
        DlqCmd::Redrive { queue } => {
            let q = ctx.res.work_queue(queue)?;
            let dlq_id = q.dlq.clone().unwrap_or_default();
            let d = ctx.res.queue(&dlq_id)?;
            let moved = redrive(&ctx.sqs, d, q).await?;
            Ok(Output {
                text: format!(
                    "moved {moved} message(s) from {dlq_id} back to {}\n",
                    q.logical_id
                ),
                json: json!({"queue": q.logical_id, "dlq": dlq_id, "moved": moved}),
            })
        }
    }
}

/// A line of progress on long work (stderr, so that stdout stays the result, JSON or text).
pub(crate) fn progress(line: &str) {
    eprintln!("flexbridge: {line}");
}

/// Moves what `dlq` holds now back to `queue`, and only that: SQS's own message move task
/// (StartMessageMoveTask, which moves the messages the DLQ held when it started, with
/// progress from ListMessageMoveTasks). Where the service does not offer it (moto), a bounded
/// loop does the same: at most the count held at the start, long-polling so an empty short
/// poll does not end it early, leaving any message parked after the start (one that failed
/// again) where it is, so nothing goes round in a circle.
async fn redrive(sqs: &aws_sdk_sqs::Client, dlq: &Queue, queue: &Queue) -> Result<u64> {
    let (visible, in_flight) = queue_depth(sqs, &dlq.url).await?;
    let held = visible + in_flight;
    if held == 0 {
        return Ok(0);
    }
    match sqs
        .start_message_move_task()
        .source_arn(&dlq.arn)
        .destination_arn(&queue.arn)
        .send()
        .await
    {
        Ok(_) => move_task_progress(sqs, &dlq.arn, held).await,
        Err(e) if unsupported(&e) => {
            progress("this endpoint has no StartMessageMoveTask; moving message by message");
            redrive_by_hand(sqs, &dlq.url, &queue.url, held).await
        }
        Err(e) => Err(anyhow!(
            "StartMessageMoveTask: {} (the caller needs sqs:StartMessageMoveTask, and \
             sqs:ReceiveMessage/DeleteMessage/GetQueueAttributes on the DLQ, sqs:SendMessage on the queue)",
            aws_sdk_sqs::error::DisplayErrorContext(e)
        )),
    }
}

/// The endpoint does not implement the action: an AWS-style "unknown action" error, or an answer
/// that is not AWS's at all (moto answers an action it lacks with an HTML page and a 500). An
/// AWS refusal (access, a bad ARN) is not this, and is reported as it is.
fn unsupported<E: std::fmt::Debug>(e: &E) -> bool {
    let text = format!("{e:?}");
    [
        "InvalidAction",
        "UnknownOperation",
        "NotImplemented",
        "text/html",
    ]
    .iter()
    .any(|w| text.contains(w))
}

async fn move_task_progress(sqs: &aws_sdk_sqs::Client, dlq_arn: &str, held: i64) -> Result<u64> {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(dlq_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "ListMessageMoveTasks: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        let Some(t) = tasks.results().first() else {
            bail!("the message move task of {dlq_arn} is not listed");
        };
        let moved = t.approximate_number_of_messages_moved();
        let to_move = t.approximate_number_of_messages_to_move().unwrap_or(held);
        let status = t.status().unwrap_or("?");
        progress(&format!("{status}: moved {moved} of {to_move}"));
        match status {
            "COMPLETED" => return Ok(moved.max(0) as u64),
            "RUNNING" | "CANCELLING" => continue,
            other => bail!(
                "the message move task ended {other} after {moved} of {to_move}: {}",
                t.failure_reason().unwrap_or("no reason given")
            ),
        }
    }
}

/// Sent first, then deleted: a failure midway leaves a message in both (handled twice,
/// harmlessly: every consumer is idempotent), never in neither. Our parking attributes are
/// dropped; the message's own stay.
async fn redrive_by_hand(
    sqs: &aws_sdk_sqs::Client,
    dlq: &str,
    queue: &str,
    held: i64,
) -> Result<u64> {
    let started = Utc::now().timestamp_millis();
    let mut moved: i64 = 0;
    let mut empty_polls = 0;
    while moved < held {
        let out = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(5)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "reading the DLQ: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        if out.messages().is_empty() {
            // Those in flight when we started come back when their visibility ends.
            empty_polls += 1;
            if empty_polls >= 12 {
                progress(&format!(
                    "nothing more to move after 60 s; {moved} of {held}"
                ));
                break;
            }
            continue;
        }
        empty_polls = 0;
        for m in out.messages() {
            let sent = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            if sent >= started || moved >= held {
                // Parked after we started (or beyond what was there): not ours to move.
                sqs.change_message_visibility()
                    .queue_url(dlq)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "releasing a message: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        )
                    })?;
                continue;
            }
            let mut send = sqs
                .send_message()
                .queue_url(queue)
                .message_body(m.body().unwrap_or_default());
            for (k, v) in m.message_attributes().cloned().unwrap_or_default() {
                if !parked_attributes::ALL.contains(&k.as_str()) {
                    send = send.message_attributes(k, v);
                }
            }
            send.send().await.map_err(|e| {
                anyhow!(
                    "sending back to the queue: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
            sqs.delete_message()
                .queue_url(dlq)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "deleting from the DLQ: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                })?;
            moved += 1;
        }
        progress(&format!("moved {moved} of {held}"));
    }
    Ok(moved as u64)
}

async fn reconcile_now(ctx: &Ctx) -> Result<Output> {
    let pusher = Pusher::from_env(&ctx.env)
        .await
        .context("building the inventory pusher")?;
    let r = reconcile::reconcile(&pusher, None).await?;
    let mut t = String::new();
    for l in &r.locations {
        let _ = writeln!(
            t,
            "{:<16} checked {:>5}  drift {:>4}  failed calls {}  item errors {}",
            l.location_id, l.checked, l.drift_count, l.failed_calls, l.item_errors
        );
        for d in l.drift.iter().take(20) {
            let _ = writeln!(
                t,
                "  {}: expected {}, Amazon sellable {} reserved {}",
                d.sku, d.expected, d.amazon_sellable, d.amazon_reserved
            );
        }
    }
    if r.locations.is_empty() {
        t.push_str("no location has inventory sync on\n");
    }
    let reading = |q: Option<flexbridge::inventory::QuantityReading>| {
        q.map(|q| format!("{q:?}"))
            .unwrap_or_else(|| "unknown".into())
    };
    let _ = writeln!(
        t,
        "quantity reading: configured {}, Amazon's numbers say {}",
        reading(r.configured_reading),
        reading(r.detected_reading)
    );
    if let Some(p) = &r.push {
        let sent: u64 = p.locations.iter().map(|l| l.accepted).sum();
        let _ = writeln!(t, "corrections pushed: {sent} accepted");
    }
    Ok(Output {
        text: t,
        json: serde_json::to_value(&r)?,
    })
}
