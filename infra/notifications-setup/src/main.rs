//! Registers the stack's `NotificationsQueue` with Amazon so that shipment changes arrive within
//! seconds (the order poller stays on as the safety net):
//!
//! 1. createDestination (`POST /notifications/v1/destinations`, a *grantless* operation: LWA
//!    `client_credentials` with scope `sellingpartnerapi::notifications`, no refresh token);
//!    an existing destination for the same queue is reused;
//! 2. createSubscription for `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` (payload version 1.0)
//!    with the seller's authorization, through the SP-API client; an existing one is reported.
//!
//! ```text
//! cargo run -p notifications-setup -- \
//!   --queue-arn  <NotificationsQueueArn output> \
//!   --secret-arn <SpApiSecretArn output> --region na
//! ```
//! The queue policy in template.yaml (`NotificationsQueuePolicy`) already lets Amazon's
//! notifications account send to the queue. `--dry-run` prints the two requests without sending.
//!
//! The SP-API client has no grantless operations yet, so step 1's token and call are made here.

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use flexbridge::config::keys;
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::{
    CreateSubscriptionRequest, SpApiClient, SpApiSecret, DEFAULT_LWA_ENDPOINT,
    EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE,
};
use flexbridge::Env;
use serde_json::{json, Value};

const DESTINATIONS: &str = "/notifications/v1/destinations";
const SCOPE: &str = "sellingpartnerapi::notifications";

#[derive(Parser, Debug)]
#[command(about = "Points Amazon's shipment notifications at the stack's NotificationsQueue")]
struct Args {
    /// ARN of the stack's NotificationsQueue (stack output NotificationsQueueArn).
    #[arg(long)]
    queue_arn: String,
    /// ARN of the SP-API secret (stack output SpApiSecretArn): `{client_id, client_secret, refresh_token}`.
    #[arg(long)]
    secret_arn: String,
    /// SP-API region of the seller's marketplace: na, eu or fe.
    #[arg(long, default_value = "na")]
    region: String,
    /// Name of the destination at Amazon.
    #[arg(long, default_value = "flexbridge-notifications")]
    name: String,
    /// Print what would be sent, send nothing.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    flexbridge::telemetry::init();
    let args = Args::parse();
    if !args.queue_arn.starts_with("arn:") || !args.queue_arn.contains(":sqs:") {
        bail!("--queue-arn must be an SQS queue ARN (arn:aws:sqs:<region>:<account>:<name>), got {:?}", args.queue_arn);
    }
    let destination_body =
        json!({"name": args.name, "resourceSpecification": {"sqs": {"arn": args.queue_arn}}});
    let subscription = CreateSubscriptionRequest {
        payload_version: "1.0".into(),
        destination_id: "<from step 1>".into(),
        processing_directive: None,
    };
    if args.dry_run {
        println!("1. POST {DESTINATIONS} (grantless, scope {SCOPE})\n   {destination_body}");
        println!(
            "2. POST /notifications/v1/subscriptions/{EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE}\n   {}",
            serde_json::to_string(&subscription)?
        );
        return Ok(());
    }

    let env = Env::from_process()
        .with(keys::SPAPI_SECRET_ARN, &args.secret_arn)
        .with(keys::SPAPI_REGION, &args.region);
    let sdk = flexbridge::aws::config(&env).await;
    let secrets = SecretCache::from_sdk_config(&sdk);
    let secret: SpApiSecret = secrets.get_json(&args.secret_arn).await?;
    let base = env
        .optional(keys::SPAPI_ENDPOINT)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let region: flexbridge::spapi::Region = args.region.parse().unwrap_or_default();
            region.endpoint().to_string()
        });
    let lwa = env
        .optional(keys::LWA_ENDPOINT)
        .unwrap_or(DEFAULT_LWA_ENDPOINT)
        .to_string();

    let http = reqwest::Client::new();
    let token: Value = http
        .post(&lwa)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", SCOPE)
                .append_pair("client_id", &secret.client_id)
                .append_pair("client_secret", secret.client_secret.expose())
                .finish(),
        )
        .send()
        .await?
        .error_for_status()
        .context("LWA refused the grantless token (check client_id/client_secret)")?
        .json()
        .await?;
    let grantless = token["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("LWA answered without access_token"))?;

    let resp = http
        .post(format!("{base}{DESTINATIONS}"))
        .header("x-amz-access-token", grantless)
        .json(&destination_body)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let destination_id = if status.is_success() {
        body["payload"]["destinationId"]
            .as_str()
            .map(str::to_string)
    } else if status.as_u16() == 409 {
        // Already registered: find it by the queue's ARN.
        let all: Value = http
            .get(format!("{base}{DESTINATIONS}"))
            .header("x-amz-access-token", grantless)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        all["payload"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["resource"]["sqs"]["arn"] == args.queue_arn.as_str())
            .and_then(|d| d["destinationId"].as_str().map(str::to_string))
    } else {
        bail!("createDestination failed: HTTP {status}: {body}");
    }
    .ok_or_else(|| {
        anyhow!(
            "no destinationId for {} in Amazon's answer: {body}",
            args.queue_arn
        )
    })?;
    println!("destination {destination_id} → {}", args.queue_arn);

    let client = SpApiClient::from_env(&env, &secrets).await?;
    if let Some(existing) = client
        .get_subscription(EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE)
        .await?
    {
        println!(
            "already subscribed: subscription {} → destination {}",
            existing.subscription_id, existing.destination_id
        );
        if existing.destination_id != destination_id {
            println!("note: it points at another destination; delete it in Amazon's console to move it here");
        }
        return Ok(());
    }
    let created = client
        .create_subscription(
            EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE,
            &CreateSubscriptionRequest {
                destination_id,
                ..subscription
            },
        )
        .await?;
    println!(
        "subscribed: {EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE} → subscription {} (destination {})",
        created.subscription_id, created.destination_id
    );
    Ok(())
}
