//! Registers the stack's `NotificationsQueue` with Amazon so that shipment changes arrive within
//! seconds (the order poller stays on as the safety net). See the library for the steps.
//!
//! ```text
//! cargo run -p notifications-setup -- \
//!   --queue-arn  <NotificationsQueueArn output> \
//!   --secret-arn <FlexbridgeSecretArn output> --region na
//! ```
//! The queue policy in template.yaml (`NotificationsQueuePolicy`) already lets Amazon's
//! notifications account send to the queue. `--dry-run` prints the requests without sending.

use anyhow::Result;
use clap::Parser;
use flexbridge::config::keys;
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::{SpApiClient, EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE};
use flexbridge::Env;

#[derive(Parser, Debug)]
#[command(about = "Points Amazon's shipment notifications at the stack's NotificationsQueue")]
struct Args {
    /// ARN of the stack's NotificationsQueue (stack output NotificationsQueueArn).
    #[arg(long)]
    queue_arn: String,
    /// ARN of the stack's secret (stack output FlexbridgeSecretArn): `{client_id, client_secret, refresh_token, …}`.
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
    notifications_setup::check_queue_arn(&args.queue_arn)?;
    if args.dry_run {
        println!(
            "{}",
            notifications_setup::plan(&args.queue_arn, &args.name)?
        );
        return Ok(());
    }
    let env = Env::from_process()
        .with(keys::FLEXBRIDGE_SECRET_ARN, &args.secret_arn)
        .with(keys::SPAPI_REGION, &args.region);
    let sdk = flexbridge::aws::config(&env).await;
    let secrets = SecretCache::from_sdk_config(&sdk);
    let client = SpApiClient::from_env(&env, &secrets).await?;
    let out = notifications_setup::setup(&client, &args.queue_arn, &args.name).await?;
    println!(
        "destination {} ({}) → {}",
        out.destination_id,
        if out.destination_created {
            "created"
        } else {
            "already there"
        },
        args.queue_arn
    );
    println!(
        "{EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE}: subscription {} ({})",
        out.subscription_id,
        if out.subscription_created {
            "created"
        } else {
            "already there"
        }
    );
    if out.subscription_elsewhere {
        println!("note: the subscription points at another destination; delete it in Amazon's console to move it here");
    }
    Ok(())
}
