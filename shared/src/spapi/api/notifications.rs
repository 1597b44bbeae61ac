//! Notifications (v1): subscriptions (seller token) and destinations (grantless token).

use reqwest::Method;

use super::required_payload;
use crate::spapi::models::*;
use crate::spapi::operation::Operation;
use crate::spapi::transport::{enc, Request};
use crate::spapi::{SpApiClient, SpApiError};

const SUBSCRIPTIONS: &str = "/notifications/v1/subscriptions";
const DESTINATIONS: &str = "/notifications/v1/destinations";

impl SpApiClient {
    /// The seller's subscription to `notification_type`, if any (404 → `Ok(None)`).
    pub async fn get_subscription(
        &self,
        notification_type: &str,
    ) -> Result<Option<Subscription>, SpApiError> {
        let req = Request::new(
            Operation::GetSubscription,
            Method::GET,
            format!("{SUBSCRIPTIONS}/{}", enc(notification_type)),
        );
        match self.call_json::<GetSubscriptionResponse>(req).await {
            Ok(r) => Ok(r.payload),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Subscribes the seller to `notification_type` at `destination_id` (409 if it exists).
    pub async fn create_subscription(
        &self,
        notification_type: &str,
        body: &CreateSubscriptionRequest,
    ) -> Result<Subscription, SpApiError> {
        let op = Operation::CreateSubscription;
        let req = Request::new(
            op,
            Method::POST,
            format!("{SUBSCRIPTIONS}/{}", enc(notification_type)),
        )
        .json(body)?;
        let r: CreateSubscriptionResponse = self.call_json(req).await?;
        required_payload(op, r.payload, "subscription")
    }

    /// The application's notification destinations (grantless).
    pub async fn get_destinations(&self) -> Result<Vec<Destination>, SpApiError> {
        let req = Request::new(
            Operation::GetDestinations,
            Method::GET,
            DESTINATIONS.to_string(),
        );
        let r: GetDestinationsResponse = self.call_json(req).await?;
        Ok(r.payload.unwrap_or_default())
    }

    /// Registers where Amazon sends notifications (grantless; 409 if it exists already).
    pub async fn create_destination(
        &self,
        body: &CreateDestinationRequest,
    ) -> Result<Destination, SpApiError> {
        let op = Operation::CreateDestination;
        if body.resource_specification.sqs.is_none()
            && body.resource_specification.event_bridge.is_none()
        {
            return Err(SpApiError::invalid_input(
                op.id(),
                "a destination needs an SQS queue ARN or an EventBridge account",
            ));
        }
        let req = Request::new(op, Method::POST, DESTINATIONS.to_string()).json(body)?;
        let r: DestinationResponse = self.call_json(req).await?;
        required_payload(op, r.payload, "destination")
    }
}
