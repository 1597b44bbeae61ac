//! Notifications: the SQS envelope Amazon delivers (casing varies by notification type, so both
//! PascalCase and camelCase are read) and the Notifications API v1 types (`notifications.json`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{lenient_timestamp, ApiError, Timestamp};
use super::shipments::ShipmentStatus;

pub const EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE: &str =
    "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationMetadata {
    #[serde(
        default,
        alias = "ApplicationId",
        skip_serializing_if = "Option::is_none"
    )]
    pub application_id: Option<String>,
    #[serde(
        default,
        alias = "SubscriptionId",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscription_id: Option<String>,
    #[serde(
        default,
        alias = "PublishTime",
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub publish_time: Option<Timestamp>,
    #[serde(
        default,
        alias = "NotificationId",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_id: Option<String>,
}

/// The envelope of any SP-API notification (an SQS message body).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(
        default,
        alias = "NotificationVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_version: Option<String>,
    #[serde(default, alias = "NotificationType")]
    pub notification_type: String,
    #[serde(
        default,
        alias = "PayloadVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_version: Option<String>,
    #[serde(
        default,
        alias = "EventTime",
        deserialize_with = "lenient_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_time: Option<Timestamp>,
    #[serde(default, alias = "Payload")]
    pub payload: Value,
    #[serde(default, alias = "NotificationMetadata")]
    pub notification_metadata: NotificationMetadata,
    /// Some senders put the id at the top level instead of in the metadata.
    #[serde(
        default,
        alias = "NotificationId",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_id: Option<String>,
}

/// The payload of `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE`: only a "shipment X changed"
/// signal (its schema is unpublished); read the shipment with getShipment for the facts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentStatusChange {
    #[serde(default, alias = "MerchantId", skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(default, alias = "LocationId", skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(
        default,
        alias = "ChannelName",
        skip_serializing_if = "Option::is_none"
    )]
    pub channel_name: Option<String>,
    #[serde(alias = "ShipmentId")]
    pub shipment_id: String,
    #[serde(
        default,
        alias = "ShipmentStatus",
        alias = "status",
        alias = "Status",
        skip_serializing_if = "Option::is_none"
    )]
    pub shipment_status: Option<ShipmentStatus>,
}

/// Why a message could not be read as a notification we handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("notification body is not a JSON envelope: {0}")]
    Envelope(String),
    #[error("notification type {0} is not {EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE}")]
    OtherType(String),
    #[error("{EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE} payload has no shipment: {0}")]
    Payload(String),
}

impl Notification {
    /// Parses an SQS message body.
    pub fn from_json(body: &str) -> Result<Self, NotificationError> {
        serde_json::from_str(body).map_err(|e| NotificationError::Envelope(e.to_string()))
    }

    /// The id to deduplicate deliveries on (metadata first, then the top level).
    pub fn id(&self) -> Option<&str> {
        self.notification_metadata
            .notification_id
            .as_deref()
            .or(self.notification_id.as_deref())
    }

    /// The shipment that changed, for `EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE`. The payload
    /// is read under `externalFulfillmentShipmentNotification` (any casing) or flat.
    pub fn shipment_status_change(&self) -> Result<ShipmentStatusChange, NotificationError> {
        if self.notification_type != EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE {
            return Err(NotificationError::OtherType(self.notification_type.clone()));
        }
        let inner = self
            .payload
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| {
                        k.eq_ignore_ascii_case("externalFulfillmentShipmentNotification")
                    })
                    .map(|(_, v)| v)
            })
            .unwrap_or(&self.payload);
        ShipmentStatusChange::deserialize(inner)
            .map_err(|e| NotificationError::Payload(e.to_string()))
    }
}

// ---- Notifications API v1 ----

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub subscription_id: String,
    #[serde(default)]
    pub payload_version: String,
    #[serde(default)]
    pub destination_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_directive: Option<Value>,
}

/// createSubscription's body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSubscriptionRequest {
    pub payload_version: String,
    pub destination_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_directive: Option<Value>,
}

/// The `{payload, errors}` wrapper the Notifications API answers with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsResponse<T> {
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub payload: Option<T>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionsPayload {
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsResource {
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBridgeResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub account_id: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_bridge: Option<EventBridgeResource>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub destination_id: String,
    #[serde(default)]
    pub resource: DestinationResource,
}

/// createDestination's body (an SQS destination).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDestinationRequest {
    pub resource_specification: DestinationResource,
    pub name: String,
}

pub type GetSubscriptionResponse = NotificationsResponse<Subscription>;
pub type CreateSubscriptionResponse = NotificationsResponse<Subscription>;
pub type GetSubscriptionsResponse = NotificationsResponse<SubscriptionsPayload>;
pub type GetDestinationsResponse = NotificationsResponse<Vec<Destination>>;
pub type DestinationResponse = NotificationsResponse<Destination>;
pub type EmptyResponse = NotificationsResponse<Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_envelope() {
        let n = Notification::from_json(r#"{"notificationVersion":"1.0","notificationType":"EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
          "payloadVersion":"1.0","eventTime":"2026-11-21T08:00:00Z",
          "payload":{"externalFulfillmentShipmentNotification":{"merchantId":"M","locationId":"L","channelName":"FBA","shipmentId":"S1","shipmentStatus":"ACCEPTED"}},
          "notificationMetadata":{"applicationId":"a","subscriptionId":"s","publishTime":"2026-11-21T08:00:01Z","notificationId":"n-1"}}"#).unwrap();
        assert_eq!(n.id(), Some("n-1"));
        let c = n.shipment_status_change().unwrap();
        assert_eq!(c.shipment_id, "S1");
        assert_eq!(c.shipment_status, Some(ShipmentStatus::Accepted));
    }

    #[test]
    fn reads_pascal_case_envelope() {
        let n = Notification::from_json(r#"{"NotificationVersion":"1.0","NotificationType":"EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE",
          "PayloadVersion":"1.0","EventTime":"2026-11-21 08:00:00Z",
          "Payload":{"ExternalFulfillmentShipmentNotification":{"MerchantId":"M","LocationId":"L","ChannelName":"MFN","ShipmentId":"S2","ShipmentStatus":"SOMETHING_NEW"}},
          "NotificationMetadata":{"ApplicationId":"a","SubscriptionId":"s","PublishTime":"2026-11-21T08:00:01Z","NotificationId":"n-2"}}"#).unwrap();
        assert_eq!(n.id(), Some("n-2"));
        assert!(n.event_time.is_some());
        let c = n.shipment_status_change().unwrap();
        assert_eq!(c.shipment_id, "S2");
        assert_eq!(
            c.shipment_status,
            Some(ShipmentStatus::Unknown("SOMETHING_NEW".into()))
        );
    }

    #[test]
    fn other_types_and_bad_payloads_are_told_apart() {
        let n =
            Notification::from_json(r#"{"notificationType":"ORDER_CHANGE","payload":{}}"#).unwrap();
        assert!(matches!(
            n.shipment_status_change(),
            Err(NotificationError::OtherType(_))
        ));
        let n = Notification::from_json(
            r#"{"notificationType":"EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE","payload":{"x":1}}"#,
        )
        .unwrap();
        assert!(matches!(
            n.shipment_status_change(),
            Err(NotificationError::Payload(_))
        ));
        assert!(Notification::from_json("not json").is_err());
    }
}
