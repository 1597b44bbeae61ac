//! The Notifications API: grantless destinations, seller subscriptions, Amazon's refusals, and
//! every answer within the model.
use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const DESTINATIONS: &str = "/notifications/v1/destinations";
const SUBSCRIPTIONS: &str =
    "/notifications/v1/subscriptions/EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE";
const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:NotificationsQueue";

#[tokio::test]
async fn destinations_and_subscriptions_with_the_right_tokens() {
    let sim = start().await;
    let base = &sim.handle.base_url;
    // LWA: client_credentials needs a known scope.
    let (status, body) = grantless_token(&sim.http, base, "sellingpartnerapi::orders").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = grantless_token(&sim.http, base, "sellingpartnerapi::notifications").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "sellingpartnerapi::notifications");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let grantless = body["access_token"].as_str().unwrap().to_string();

    // Destinations are grantless only; subscriptions need the seller's token.
    let r = sim.get(DESTINATIONS).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "Unauthorized")
    );
    let r = sim
        .call_as(&grantless, Method::GET, SUBSCRIPTIONS, None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "Unauthorized")
    );

    let list = sim
        .call_as(&grantless, Method::GET, DESTINATIONS, None)
        .await;
    assert_eq!(
        (list.status, &list.body),
        (StatusCode::OK, &json!({"payload": []}))
    );
    let spec = json!({"name": "flexbridge", "resourceSpecification": {"sqs": {"arn": QUEUE}}});
    let made = sim
        .call_as(&grantless, Method::POST, DESTINATIONS, Some(spec.clone()))
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let dest = made.body["payload"].clone();
    assert_eq!(dest["resource"], json!({"sqs": {"arn": QUEUE}}));
    let dest_id = dest["destinationId"].as_str().unwrap().to_string();
    let again = sim
        .call_as(&grantless, Method::POST, DESTINATIONS, Some(spec))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "Conflict")
    );
    let bad = sim
        .call_as(
            &grantless,
            Method::POST,
            DESTINATIONS,
            Some(json!({"name": "x", "resourceSpecification": {"sqs": {"arn": "queue"}}})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "InvalidInput")
    );
    let one = sim
        .call_as(
            &grantless,
            Method::GET,
            &format!("{DESTINATIONS}/{dest_id}"),
            None,
        )
        .await;
    assert_eq!(one.body["payload"], dest);

    // Subscriptions.
    let none = sim.get(SUBSCRIPTIONS).await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::NOT_FOUND, "NotFound")
    );
    let body = json!({"payloadVersion": "1.0", "destinationId": dest_id});
    let sub = sim
        .call(Method::POST, SUBSCRIPTIONS, Some(body.clone()))
        .await;
    assert_eq!(sub.status, StatusCode::OK, "{}", sub.body);
    let sub_id = sub.body["payload"]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sub.body["payload"]["destinationId"], dest_id.as_str());
    let twice = sim.call(Method::POST, SUBSCRIPTIONS, Some(body)).await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "Conflict")
    );
    let elsewhere = sim
        .call(
            Method::POST,
            "/notifications/v1/subscriptions/ANY_OFFER_CHANGED",
            Some(json!({"payloadVersion": "1.0", "destinationId": "nope"})),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.get(SUBSCRIPTIONS).await.body, sub.body);
    let by_id = format!("{SUBSCRIPTIONS}/{sub_id}");
    assert_eq!(sim.get(&by_id).await.body, sub.body);
    assert_eq!(
        sim.get(&format!("{SUBSCRIPTIONS}/other")).await.status,
        StatusCode::NOT_FOUND
    );

    // A destination in use cannot go; deleting the subscription (grantless) frees it.
    let dest_path = format!("{DESTINATIONS}/{dest_id}");
    let busy = sim
        .call_as(&grantless, Method::DELETE, &dest_path, None)
        .await;
    assert_eq!(
        (busy.status, busy.code()),
        (StatusCode::CONFLICT, "Conflict")
    );
    assert_eq!(
        sim.call(Method::DELETE, &by_id, None).await.status,
        StatusCode::FORBIDDEN
    );
    let gone = sim.call_as(&grantless, Method::DELETE, &by_id, None).await;
    assert_eq!((gone.status, &gone.body), (StatusCode::OK, &json!({})));
    let gone = sim
        .call_as(&grantless, Method::DELETE, &dest_path, None)
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    let missing = sim.call_as(&grantless, Method::GET, &dest_path, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let state = sim.handle.snapshot();
    assert_eq!(state["responseViolations"], json!([]), "{state}");
    assert_eq!(state["destinations"], json!([]));
    assert_eq!(state["subscriptions"], json!({}));
}
