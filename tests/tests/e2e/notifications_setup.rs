//! notifications-setup against the SP-API simulator's Notifications API (served from Amazon's
//! model, grantless tokens for destinations as Amazon requires): every call goes through the
//! SP-API client, a second run finds what the first made instead of creating it again, and a
//! create whose answer is lost is found by reading back, never sent twice.

use flexbridge::spapi::{LwaCredentials, Region, SpApiClient, SpApiConfig};
use serde_json::{json, Value};
use spapi_sim::{
    FaultKind, SimHandle, SimOptions, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
};

const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:NotificationsQueue";
const NAME: &str = "flexbridge-notifications";

async fn start() -> (SimHandle, SpApiClient) {
    let sim = Simulator::start(SimOptions::default())
        .await
        .expect("simulator starts (models in $SPAPI_MODELS_DIR)");
    let mut cfg = SpApiConfig::new(
        Region::Na,
        LwaCredentials {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            refresh_token: DEFAULT_REFRESH_TOKEN.into(),
        },
    );
    cfg.endpoint = Some(sim.base_url.clone());
    cfg.lwa_endpoint = Some(sim.lwa_url());
    (sim, SpApiClient::new(cfg).unwrap())
}

fn count(state: &Value, operation: &str) -> u64 {
    state["callCounts"][operation].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn creates_destination_and_subscription_then_finds_them_again() {
    let (sim, client) = start().await;
    let first = notifications_setup::setup(&client, QUEUE, NAME)
        .await
        .unwrap();
    assert!(first.destination_created && first.subscription_created);
    assert!(!first.subscription_elsewhere);
    let state = sim.snapshot();
    assert_eq!(
        state["destinations"],
        json!([{"name": NAME, "destinationId": first.destination_id, "resource": {"sqs": {"arn": QUEUE}}}])
    );
    let sub = &state["subscriptions"]["EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE"];
    assert_eq!(sub["subscriptionId"], first.subscription_id.as_str());
    assert_eq!(sub["destinationId"], first.destination_id.as_str());
    assert_eq!(sub["payloadVersion"], "1.0");

    // Run again: everything is found, nothing is made twice.
    let again = notifications_setup::setup(&client, QUEUE, NAME)
        .await
        .unwrap();
    assert_eq!(again.destination_id, first.destination_id);
    assert_eq!(again.subscription_id, first.subscription_id);
    assert!(!again.destination_created && !again.subscription_created);
    assert!(!again.subscription_elsewhere);
    let state = sim.snapshot();
    assert_eq!(count(&state, "createDestination"), 1);
    assert_eq!(count(&state, "createSubscription"), 1);
    assert_eq!(count(&state, "getDestinations"), 2);
    assert_eq!(count(&state, "getSubscription"), 2);
    // Grantless and seller tokens were each used where Amazon wants them (the simulator
    // refuses the wrong kind with 403), and every answer matched the model.
    assert_eq!(state["responseViolations"], json!([]), "{state}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_destination_made_but_unanswered_is_found_not_made_again() {
    let (sim, client) = start().await;
    // Amazon makes the destination, then the answer is lost (500).
    sim.admin()
        .script_faults("createDestination", &[FaultKind::ApplyThenFail])
        .await
        .unwrap();
    let out = notifications_setup::setup(&client, QUEUE, NAME)
        .await
        .unwrap();
    assert!(!out.destination_created && out.subscription_created);
    let state = sim.snapshot();
    assert_eq!(count(&state, "createDestination"), 1, "never sent twice");
    assert_eq!(state["destinations"].as_array().unwrap().len(), 1);
    assert_eq!(
        state["destinations"][0]["destinationId"],
        out.destination_id.as_str()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_bad_queue_arn_is_refused_before_any_call() {
    let (sim, client) = start().await;
    let err = notifications_setup::setup(&client, "NotificationsQueue", "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--queue-arn"), "{err}");
    assert_eq!(sim.snapshot()["callCounts"], json!({}));
    let plan = notifications_setup::plan(QUEUE, NAME).unwrap();
    assert!(
        plan.contains(QUEUE) && plan.contains("\"payloadVersion\":\"1.0\""),
        "{plan}"
    );
    sim.shutdown().await;
}
