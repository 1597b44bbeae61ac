//! `flexbridge doctor`: gathers each fact from AWS and Amazon (read-only calls, plus one signed
//! test event to the webhook) and lets `flexbridge::operate::doctor` judge it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use flexbridge::operate::doctor::{self as judge, ApiFamily, Check, Report};
use flexbridge::operate::hubs::LocationProbe;
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::{
    GetShipmentsQuery, ListReturnsQuery, ReturnStatus, ShipmentStatus, SpApiClient, Timestamp,
};
use flexbridge::store::locations::{Location, LocationStore};
use flexbridge::store::settings::SettingsStore;
use flexbridge::warehouse::keys::{KeyRole, SigningKeys};
use flexbridge::warehouse::signing;
use serde_json::{json, Value};

use crate::commands::Ctx;

/// The stack as CloudFormation knows it: its parameters and resources by logical ID.
struct StackFacts {
    parameters: HashMap<String, String>,
    /// logical ID → (type, physical ID).
    resources: HashMap<String, (String, String)>,
}

async fn stack_facts(ctx: &Ctx) -> Result<StackFacts> {
    let cfn = aws_sdk_cloudformation::Client::new(&ctx.sdk);
    let stack = &ctx.res.stack;
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .with_context(|| format!("describing stack {stack}"))?;
    let parameters = described
        .stacks()
        .first()
        .map(|s| {
            s.parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_string(),
                        p.parameter_value()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let resources = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .with_context(|| format!("listing the resources of stack {stack}"))?
        .stack_resources()
        .iter()
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                (
                    r.resource_type()?.to_string(),
                    r.physical_resource_id()?.to_string(),
                ),
            ))
        })
        .collect();
    Ok(StackFacts {
        parameters,
        resources,
    })
}

pub async fn run(ctx: &Ctx) -> Result<Report> {
    let mut report = Report::default();
    let facts = stack_facts(ctx).await?;
    // The mappings in use (one with everything switched off is history, not configuration).
    let locations: Vec<Location> = ctx
        .locations()?
        .list()
        .await?
        .into_iter()
        .filter(|l| l.orders_enabled || l.inventory_enabled || l.returns_enabled)
        .collect();

    // The stack secret, then one cheap read per family with its credentials.
    let secrets = SecretCache::from_sdk_config(&ctx.sdk);
    let secret_arn = ctx
        .res
        .secrets
        .get(crate::resolve::SECRET)
        .cloned()
        .unwrap_or_default();
    let value: Option<Value> = secrets
        .get(&secret_arn)
        .await
        .ok()
        .and_then(|s| serde_json::from_str(s.expose()).ok());
    let secret_check = judge::secret_fields(crate::resolve::SECRET, value.as_ref());
    let secret_ok = secret_check.verdict == judge::Verdict::Ok;
    report.push(secret_check);
    if secret_ok {
        let client = ctx.spapi().await?;
        spapi_checks(&mut report, &client, ctx, &locations).await;
    } else {
        report.push(Check::fail(
            "api",
            "not tried: the SP-API secret is not filled",
            "fill the secret, then run doctor again",
        ));
    }

    // Every mapping names a hub (Amazon's answer for each location is in the inventory check).
    for l in &locations {
        let name = format!("location {}", l.location_id);
        if l.hub_id.trim().is_empty() {
            report.push(Check::fail(
                name,
                "mapped to no hub",
                format!("`flexbridge hubs add {} --hub <code>`", l.location_id),
            ));
        }
    }
    if locations.is_empty() {
        report.push(Check::fail(
            "locations",
            "no location is mapped",
            "`flexbridge hubs add <locationId> --hub <code>` (docs/deploy.md, step 7)",
        ));
    }

    report.push(webhook(ctx, &secrets, facts.parameters.get("WebhookUrl")).await);
    report.push(alarm_email(ctx, &facts).await);
    for c in schedules(ctx, &facts).await {
        report.push(c);
    }
    for q in ctx.res.work_queues() {
        let Some(dlq) = q.dlq.as_deref() else {
            continue;
        };
        let url = &ctx.res.queue(dlq)?.url;
        let (visible, in_flight) = crate::commands::queue_depth(&ctx.sqs, url).await?;
        report.push(judge::dlq(dlq, visible + in_flight));
    }
    report.push(inventory_push(ctx).await?);
    Ok(report)
}

async fn spapi_checks(
    report: &mut Report,
    client: &SpApiClient,
    ctx: &Ctx,
    locations: &[Location],
) {
    let since = Timestamp(Utc::now() - chrono::Duration::hours(1));
    let first = locations
        .iter()
        .find(|l| l.orders_enabled)
        .or(locations.first());
    let mut q = GetShipmentsQuery::status(ShipmentStatus::from("ACCEPTED"));
    q.location_id = first.map(|l| l.location_id.clone());
    q.last_updated_after = Some(since);
    q.max_results = Some(1);
    let shipments = client.get_shipments(&q).await.map(|_| ());
    let lwa_refused =
        matches!(&shipments, Err(e) if e.kind == flexbridge::spapi::SpApiErrorKind::Auth);
    report.push(judge::family_read(
        ApiFamily::Shipments,
        shipments.as_ref().map(|_| ()),
    ));
    if lwa_refused {
        return; // every other read would say the same
    }
    let returns = client
        .list_returns(&ListReturnsQuery {
            return_location_id: first.map(|l| l.location_id.clone()),
            status: Some(ReturnStatus::from("CREATED")),
            last_updated_since: Some(since),
            max_results: Some(1),
            ..Default::default()
        })
        .await
        .map(|_| ());
    report.push(judge::family_read(
        ApiFamily::Returns,
        returns.as_ref().map(|_| ()),
    ));

    // Inventory: Amazon's answer for each mapped location (a read, as `hubs add` asks it).
    for l in locations {
        let name = format!("location {}", l.location_id);
        match client.check(l).await {
            Ok(Ok(())) if !l.hub_id.trim().is_empty() => report.push(Check::ok(
                name,
                format!("known to Amazon, mapped to hub {}", l.hub_id),
            )),
            Ok(Ok(())) => {} // the hub check below names it
            Ok(Err(why)) => report.push(Check::fail(
                name,
                format!("Amazon does not know it: {why}"),
                "check the location ID in Seller Central (Settings → Seller Flex), then `flexbridge hubs add`",
            )),
            Err(flexbridge::Error::SpApi(e)) => {
                report.push(judge::family_read(ApiFamily::Inventory, Err(&e)))
            }
            Err(e) => report.push(Check::fail(
                name,
                format!("the location check failed: {e}"),
                "run again; if it persists, check SPAPI_REGION",
            )),
        }
    }

    let queue = match ctx.res.queue("NotificationsQueue") {
        Ok(q) => q.arn.clone(),
        Err(e) => {
            report.push(Check::fail("notifications", e.to_string(), "check --stack"));
            return;
        }
    };
    let fix =
        "`notifications-setup` with this stack's NotificationsQueue ARN (docs/deploy.md, step 6)";
    match notifications_setup::inspect(client, &queue).await {
        Ok(found) => match (found.destination_id, found.subscription) {
            (None, _) => report.push(Check::fail(
                "notifications",
                format!("no destination points at {queue}"),
                fix,
            )),
            (Some(_), None) => report.push(Check::fail(
                "notifications",
                "no EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE subscription",
                fix,
            )),
            (Some(d), Some((s, to))) if d == to => report.push(Check::ok(
                "notifications",
                format!("subscription {s} → destination {d} → this stack's queue"),
            )),
            (Some(d), Some((s, to))) => report.push(Check::fail(
                "notifications",
                format!("subscription {s} points at destination {to}, not this stack's {d}"),
                "delete that subscription (deleteSubscriptionById), then run notifications-setup",
            )),
        },
        Err(e) => report.push(Check::fail(
            "notifications",
            format!("{e:#}"),
            "check the application's LWA credentials (getDestinations is grantless)",
        )),
    }
}

async fn webhook(ctx: &Ctx, secrets: &SecretCache, url: Option<&String>) -> Check {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Check::ok(
            "webhook",
            "WebhookUrl not set: events stay on the bus and the API",
        );
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            return Check::fail(
                "webhook",
                format!("{url} is not a URL: {e}"),
                "fix WebhookUrl",
            )
        }
    };
    let Some(arn) = ctx.res.secrets.get(crate::resolve::SECRET) else {
        return Check::fail(
            "webhook",
            format!("the stack has no {}", crate::resolve::SECRET),
            "check --stack",
        );
    };
    // Every key a delivery is signed with now (both during a rotation), as the function does.
    let keys = match SigningKeys::new(secrets.clone(), arn.clone(), KeyRole::Webhook)
        .keys()
        .await
    {
        Ok(k) => k,
        Err(e) => {
            return Check::fail(
                "webhook",
                format!("the webhook key cannot be read: {e}"),
                "check the secret's signing_key or webhook_key (docs/keys.md)",
            )
        }
    };
    let event_id = format!("doctor-{}", uuid::Uuid::new_v4());
    let body = json!({
        "eventId": event_id,
        "type": "DoctorTest",
        "version": 1,
        "detail": {"note": "flexbridge doctor: a signed test event; nothing to do"},
    })
    .to_string();
    let path_and_query = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let signed = signing::Signed::new("POST", &path_and_query, body.as_bytes())
        .content_type("application/json")
        .idempotency_key(&event_id);
    let mut req = reqwest::Client::new()
        .post(parsed.clone())
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header(signing::IDEMPOTENCY_KEY_HEADER, &event_id);
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.expose().as_bytes()).collect();
    for (k, v) in signing::signed_headers_all(&keys, signing::now_unix(), &signed) {
        req = req.header(k, v);
    }
    // Only the host: the URL's path or query may carry a token.
    let host = parsed.host_str().unwrap_or("?").to_string();
    match req.body(body).send().await {
        Ok(r) if r.status().is_success() => {
            Check::ok("webhook", format!("{host} accepted a signed test event ({})", r.status().as_u16()))
        }
        Ok(r) => Check::fail(
            "webhook",
            format!("{host} answered {} to a signed test event", r.status().as_u16()),
            "check the receiver's logs and that it verifies with the webhook key, `flexbridge secret show-key webhook` (docs/events.md)",
        ),
        Err(e) => Check::fail(
            "webhook",
            format!("{host} could not be reached: {}", e.without_url()),
            "check WebhookUrl and that the receiver is up",
        ),
    }
}

async fn alarm_email(ctx: &Ctx, facts: &StackFacts) -> Check {
    let email = facts.parameters.get("AlarmEmail").filter(|e| !e.is_empty());
    let Some(email) = email else {
        return Check::warn(
            "alarm e-mail",
            "AlarmEmail is not set: alarms reach nobody",
            "deploy with AlarmEmail=<address> (or subscribe to the AlarmTopic yourself)",
        );
    };
    let Some((_, topic)) = facts.resources.get("AlarmTopic") else {
        return Check::fail(
            "alarm e-mail",
            "the stack has no AlarmTopic",
            "check --stack",
        );
    };
    let sns = aws_sdk_sns::Client::new(&ctx.sdk);
    match sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
    {
        Ok(out) => {
            let subs = out.subscriptions();
            let mine = subs.iter().find(|s| s.endpoint() == Some(email.as_str()));
            match mine.and_then(|s| s.subscription_arn()) {
                Some(arn) if arn.starts_with("arn:") => Check::ok("alarm e-mail", "subscription confirmed"),
                Some(_) => Check::fail(
                    "alarm e-mail",
                    "the subscription is waiting for confirmation",
                    "open the e-mail \"AWS Notification - Subscription Confirmation\" and confirm it",
                ),
                None => Check::fail(
                    "alarm e-mail",
                    "no subscription for AlarmEmail on the AlarmTopic",
                    "deploy again, or subscribe the address to the AlarmTopic",
                ),
            }
        }
        Err(e) => Check::fail(
            "alarm e-mail",
            format!(
                "cannot list the topic's subscriptions: {}",
                aws_sdk_sns::error::DisplayErrorContext(&e)
            ),
            "the doctor needs sns:ListSubscriptionsByTopic",
        ),
    }
}

async fn schedules(ctx: &Ctx, facts: &StackFacts) -> Vec<Check> {
    let events = flexbridge::aws::eventbridge_client(&ctx.sdk);
    let mut out = Vec::new();
    let mut rules: Vec<(&String, &String)> = facts
        .resources
        .iter()
        .filter(|(_, (t, _))| t == "AWS::Events::Rule")
        .map(|(lid, (_, physical))| (lid, physical))
        .collect();
    rules.sort();
    for (lid, name) in rules {
        let described = match events.describe_rule().name(name).send().await {
            Ok(d) => d,
            // Rules on the stack's own bus are not schedules; the default bus holds those.
            Err(_) => continue,
        };
        if described.schedule_expression().is_none() {
            continue;
        }
        let state = described
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let name_of = format!("schedule {lid}");
        if state == "ENABLED" {
            out.push(Check::ok(
                name_of,
                described.schedule_expression().unwrap_or("").to_string(),
            ));
        } else {
            out.push(Check::fail(
                name_of,
                format!("{state}: its function never runs"),
                format!("`aws events enable-rule --name {name}`"),
            ));
        }
    }
    if out.is_empty() {
        out.push(Check::fail(
            "schedules",
            "no schedule found in the stack",
            "check --stack",
        ));
    }
    out
}

async fn inventory_push(ctx: &Ctx) -> Result<Check> {
    let settings = ctx.settings()?;
    let name = flexbridge::store::settings::names::INVENTORY_PUSH_ENABLED;
    let on = settings
        .get(name)
        .await?
        .and_then(|s| s.value.as_bool())
        .unwrap_or(false);
    let halts = hubs_halts(ctx).await?;
    Ok(match (on, halts.is_empty()) {
        (true, true) => Check::ok("inventory push", "enabled"),
        (true, false) => Check::warn(
            "inventory push",
            format!(
                "enabled, halted by the safety breaker for {}",
                halts.join(", ")
            ),
            "`flexbridge inventory halts`, then release or discard",
        ),
        (false, _) => Check::warn(
            "inventory push",
            format!("off ({name} is false): Amazon does not get your stock"),
            format!("`flexbridge settings set {name} true` once the catalog and stock are in"),
        ),
    })
}

async fn hubs_halts(ctx: &Ctx) -> Result<Vec<String>> {
    let changes = flexbridge::inventory::changes::StockChanges::from_env(&ctx.env).await?;
    Ok(changes
        .halts()
        .await?
        .into_iter()
        .map(|h| h.location_id)
        .collect())
}
