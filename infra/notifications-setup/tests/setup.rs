//! notifications-setup against a small stand-in for Amazon's Notifications API and LWA: every
//! call goes through the SP-API client (grantless token for destinations, the seller's for the
//! subscription), and a second run finds what the first made instead of creating it again.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use flexbridge::spapi::{LwaCredentials, Region, SpApiClient, SpApiConfig};
use serde_json::{json, Value};

const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:NotificationsQueue";
const SUBSCRIPTIONS: &str =
    "/notifications/v1/subscriptions/EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE";

#[derive(Default)]
struct Amazon {
    destinations: Vec<Value>,
    subscription: Option<Value>,
    /// (method, path, access token) of every SP-API call.
    calls: Vec<(String, String, String)>,
    /// Answer the next createDestination with 409 after creating it (another run was first).
    conflict_on_create: bool,
}

type Shared = Arc<Mutex<Amazon>>;

async fn answer(
    State(amazon): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let body = String::from_utf8_lossy(&body).to_string();
    let path = uri.path().to_string();
    if path == "/auth/o2/token" {
        let token = if body.contains("grant_type=client_credentials")
            && body.contains("scope=sellingpartnerapi%3A%3Anotifications")
        {
            "Atza|grantless"
        } else if body.contains("grant_type=refresh_token") {
            "Atza|seller"
        } else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_grant"}).to_string(),
            );
        };
        return (
            StatusCode::OK,
            json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}).to_string(),
        );
    }
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut a = amazon.lock().unwrap();
    a.calls
        .push((method.to_string(), path.clone(), token.clone()));
    let sent: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let ok = |payload: Value| (StatusCode::OK, json!({ "payload": payload }).to_string());
    let unauthorized = (
        StatusCode::FORBIDDEN,
        json!({"errors": [{"code": "Unauthorized", "message": "wrong token"}]}).to_string(),
    );
    match (method.as_str(), path.as_str()) {
        (_, "/notifications/v1/destinations") if token != "Atza|grantless" => unauthorized,
        ("GET", "/notifications/v1/destinations") => ok(Value::Array(a.destinations.clone())),
        ("POST", "/notifications/v1/destinations") => {
            let d = json!({
                "name": sent["name"],
                "destinationId": format!("dest-{}", a.destinations.len() + 1),
                "resource": {"sqs": {"arn": sent["resourceSpecification"]["sqs"]["arn"]}},
            });
            a.destinations.push(d.clone());
            if std::mem::take(&mut a.conflict_on_create) {
                return (
                    StatusCode::CONFLICT,
                    json!({"errors": [{"code": "Conflict", "message": "exists"}]}).to_string(),
                );
            }
            ok(d)
        }
        (_, SUBSCRIPTIONS) if token != "Atza|seller" => unauthorized,
        ("GET", SUBSCRIPTIONS) => match &a.subscription {
            Some(s) => ok(s.clone()),
            None => (
                StatusCode::NOT_FOUND,
                json!({"errors": [{"code": "NotFound", "message": "no subscription"}]}).to_string(),
            ),
        },
        ("POST", SUBSCRIPTIONS) => {
            assert_eq!(sent["payloadVersion"], "1.0", "{sent}");
            let s = json!({
                "subscriptionId": "sub-1",
                "payloadVersion": sent["payloadVersion"],
                "destinationId": sent["destinationId"],
            });
            a.subscription = Some(s.clone());
            ok(s)
        }
        _ => (StatusCode::NOT_FOUND, json!({"errors": []}).to_string()),
    }
}

async fn start() -> (Shared, SpApiClient) {
    let amazon: Shared = Arc::default();
    let app = Router::new().fallback(answer).with_state(amazon.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cfg = SpApiConfig::new(
        Region::Na,
        LwaCredentials {
            client_id: "amzn1.application-oa2-client.test".into(),
            client_secret: "secret".into(),
            refresh_token: "Atzr|test".into(),
        },
    );
    cfg.endpoint = Some(base.clone());
    cfg.lwa_endpoint = Some(format!("{base}/auth/o2/token"));
    (amazon, SpApiClient::new(cfg).unwrap())
}

#[tokio::test]
async fn creates_destination_and_subscription_then_finds_them_again() {
    let (amazon, client) = start().await;
    let first = notifications_setup::setup(&client, QUEUE, "flexbridge-notifications")
        .await
        .unwrap();
    assert_eq!(first.destination_id, "dest-1");
    assert!(first.destination_created && first.subscription_created);
    assert!(!first.subscription_elsewhere);
    {
        let a = amazon.lock().unwrap();
        assert_eq!(a.destinations[0]["resource"]["sqs"]["arn"], QUEUE);
        assert_eq!(a.destinations[0]["name"], "flexbridge-notifications");
        assert_eq!(a.subscription.as_ref().unwrap()["destinationId"], "dest-1");
        let calls: Vec<(&str, &str)> = a
            .calls
            .iter()
            .map(|(m, p, _)| (m.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            calls,
            vec![
                ("GET", "/notifications/v1/destinations"),
                ("POST", "/notifications/v1/destinations"),
                ("GET", SUBSCRIPTIONS),
                ("POST", SUBSCRIPTIONS),
            ]
        );
    }

    let again = notifications_setup::setup(&client, QUEUE, "flexbridge-notifications")
        .await
        .unwrap();
    assert_eq!(again.destination_id, "dest-1");
    assert_eq!(again.subscription_id, "sub-1");
    assert!(!again.destination_created && !again.subscription_created);
    let a = amazon.lock().unwrap();
    assert_eq!(a.destinations.len(), 1);
    assert_eq!(
        a.calls.iter().filter(|(m, _, _)| m == "POST").count(),
        2,
        "nothing created twice"
    );
}

#[tokio::test]
async fn a_destination_made_meanwhile_is_found_after_409() {
    let (amazon, client) = start().await;
    amazon.lock().unwrap().conflict_on_create = true;
    let out = notifications_setup::setup(&client, QUEUE, "flexbridge-notifications")
        .await
        .unwrap();
    assert_eq!(out.destination_id, "dest-1");
    assert!(!out.destination_created && out.subscription_created);
}

#[tokio::test]
async fn a_bad_queue_arn_is_refused_before_any_call() {
    let (amazon, client) = start().await;
    let err = notifications_setup::setup(&client, "NotificationsQueue", "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--queue-arn"), "{err}");
    assert!(amazon.lock().unwrap().calls.is_empty());
    let plan = notifications_setup::plan(QUEUE, "flexbridge-notifications").unwrap();
    assert!(
        plan.contains(QUEUE) && plan.contains("\"payloadVersion\":\"1.0\""),
        "{plan}"
    );
}
