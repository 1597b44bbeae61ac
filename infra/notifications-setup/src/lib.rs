//! Points Amazon's shipment notifications at the stack's `NotificationsQueue`, through the SP-API
//! client only (the binary reads its arguments and the SP-API secret, then calls [`setup`]):
//!
//! 1. the destination: getDestinations, and createDestination when none points at the queue
//!    (both *grantless*: the client uses LWA `client_credentials`, scope
//!    `sellingpartnerapi::notifications`);
//! 2. createSubscription for `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE` (payload version 1.0)
//!    with the seller's authorization; an existing one is reported, not replaced.
//!
//! Running it again is safe: every step first looks for what an earlier run made.

use anyhow::{bail, Context, Result};
use flexbridge::spapi::{
    CreateDestinationRequest, CreateSubscriptionRequest, Destination, DestinationResource,
    SpApiClient, SqsResource, EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE, NOTIFICATIONS_SCOPE,
};

/// The subscription's payload version for `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE`.
pub const PAYLOAD_VERSION: &str = "1.0";

/// What a run found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub destination_id: String,
    pub destination_created: bool,
    pub subscription_id: String,
    pub subscription_created: bool,
    /// The subscription found points at another destination (left as it is).
    pub subscription_elsewhere: bool,
}

pub fn check_queue_arn(queue_arn: &str) -> Result<()> {
    if !queue_arn.starts_with("arn:") || !queue_arn.contains(":sqs:") {
        bail!("--queue-arn must be an SQS queue ARN (arn:aws:sqs:<region>:<account>:<name>), got {queue_arn:?}");
    }
    Ok(())
}

pub fn destination_request(queue_arn: &str, name: &str) -> CreateDestinationRequest {
    CreateDestinationRequest {
        name: name.to_string(),
        resource_specification: DestinationResource {
            sqs: Some(SqsResource {
                arn: queue_arn.to_string(),
            }),
            event_bridge: None,
        },
    }
}

pub fn subscription_request(destination_id: &str) -> CreateSubscriptionRequest {
    CreateSubscriptionRequest {
        payload_version: PAYLOAD_VERSION.into(),
        destination_id: destination_id.to_string(),
        processing_directive: None,
    }
}

/// What `--dry-run` prints: the calls and the bodies that would be sent.
pub fn plan(queue_arn: &str, name: &str) -> Result<String> {
    Ok(format!(
        "1. GET /notifications/v1/destinations, then if none is for the queue\n   \
         POST /notifications/v1/destinations (grantless, scope {NOTIFICATIONS_SCOPE})\n   {}\n\
         2. GET, then if absent POST /notifications/v1/subscriptions/{EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE}\n   {}",
        serde_json::to_string(&destination_request(queue_arn, name))?,
        serde_json::to_string(&subscription_request("<from step 1>"))?
    ))
}

fn for_queue<'a>(all: &'a [Destination], queue_arn: &str) -> Option<&'a Destination> {
    all.iter().find(|d| {
        d.resource
            .sqs
            .as_ref()
            .is_some_and(|sqs| sqs.arn == queue_arn)
    })
}

/// What Amazon has now, read only (the doctor's check): the destination pointing at the queue,
/// and the subscription with the destination it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub destination_id: Option<String>,
    /// `(subscriptionId, destinationId)`.
    pub subscription: Option<(String, String)>,
}

pub async fn inspect(client: &SpApiClient, queue_arn: &str) -> Result<Found> {
    let destinations = client
        .get_destinations()
        .await
        .context("getDestinations failed (check client_id/client_secret)")?;
    let subscription = client
        .get_subscription(EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE)
        .await
        .context("getSubscription failed")?
        .map(|s| (s.subscription_id, s.destination_id));
    Ok(Found {
        destination_id: for_queue(&destinations, queue_arn).map(|d| d.destination_id.clone()),
        subscription,
    })
}

pub async fn setup(client: &SpApiClient, queue_arn: &str, name: &str) -> Result<Outcome> {
    check_queue_arn(queue_arn)?;
    let existing = client
        .get_destinations()
        .await
        .context("getDestinations failed (check client_id/client_secret)")?;
    let (destination_id, destination_created) = match for_queue(&existing, queue_arn) {
        Some(d) => (d.destination_id.clone(), false),
        None => match client
            .create_destination(&destination_request(queue_arn, name))
            .await
        {
            Ok(d) => (d.destination_id, true),
            // Made meanwhile, or made but unanswered (the client never resends a create):
            // look again before giving up.
            Err(e) if e.is_conflict() || e.outcome_unknown() => {
                let again = client.get_destinations().await?;
                match for_queue(&again, queue_arn) {
                    Some(d) => (d.destination_id.clone(), false),
                    None => return Err(e).context("createDestination failed"),
                }
            }
            Err(e) => return Err(e).context("createDestination failed"),
        },
    };
    if destination_id.is_empty() {
        bail!("Amazon answered without a destinationId for {queue_arn}");
    }

    if let Some(found) = client
        .get_subscription(EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE)
        .await
        .context("getSubscription failed")?
    {
        return Ok(Outcome {
            subscription_elsewhere: found.destination_id != destination_id,
            destination_id,
            destination_created,
            subscription_id: found.subscription_id,
            subscription_created: false,
        });
    }
    let created = client
        .create_subscription(
            EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE,
            &subscription_request(&destination_id),
        )
        .await
        .context("createSubscription failed")?;
    Ok(Outcome {
        subscription_elsewhere: created.destination_id != destination_id,
        destination_id,
        destination_created,
        subscription_id: created.subscription_id,
        subscription_created: true,
    })
}
