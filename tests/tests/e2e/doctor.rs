//! `flexbridge doctor` against the local stack (moto + the simulator): every check passes on a
//! stack set up as docs/deploy.md says, and each broken case is named with its fix: a refused
//! role, a location Amazon does not know, a deleted subscription, a webhook that answers 500,
//! an empty SP-API secret.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use flexbridge::secrets::SecretCache;
use flexbridge::spapi::SpApiClient;
use flexbridge::store::locations::{DynamoLocationStore, Location, LocationStore};
use flexbridge_cli::{run_with, CliError};
use flexbridge_e2e::{TestOptions, TestStack};
use serde_json::{json, Value};

/// A webhook receiver answering whatever status `answer` holds.
async fn receiver(answer: Arc<AtomicU16>) -> Result<String> {
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move {
            axum::http::StatusCode::from_u16(answer.load(Ordering::SeqCst))
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/flexbridge/events"))
}

struct Doctor {
    args: Vec<String>,
    vars: HashMap<String, String>,
}

impl Doctor {
    /// `Ok(text)` when every check passed, `Err(text)` when one failed (the command exits 1).
    async fn run(&self) -> std::result::Result<String, String> {
        match run_with(self.args.clone(), self.vars.clone()).await {
            Ok(out) => Ok(out),
            Err(CliError::Failed(e)) => Err(format!("{e:#}")),
            Err(e) => panic!("doctor: {e}"),
        }
    }

    async fn failing(&self, check: &str, words: &[&str]) -> String {
        let text = self.run().await.expect_err("a check fails");
        let line = text
            .lines()
            .find(|l| l.starts_with("FAIL") && l.contains(check))
            .unwrap_or_else(|| panic!("no failing {check:?} in:\n{text}"));
        for w in words {
            assert!(line.contains(w), "{w:?} in {line:?}");
        }
        println!("--- doctor, {check} broken:\n{text}");
        text
    }
}

#[tokio::test]
async fn doctor_passes_on_a_stack_set_up_as_documented_and_names_each_broken_part() -> Result<()> {
    flexbridge_e2e::init_logging();
    let answer = Arc::new(AtomicU16::new(200));
    let url = receiver(answer.clone()).await?;
    let t = TestStack::start_with(
        "doctor",
        TestOptions {
            parameters: vec![("WebhookUrl".into(), url)],
            ..Default::default()
        },
    )
    .await?;
    let sim = t.sim();
    // The seller's locations, as Amazon knows them.
    for l in ["SIMLOC-EAST-1", "SIMLOC-WEST-1"] {
        sim.admin()
            .create_location(l, "ATVPDKIKX0DER", "FBA")
            .await?;
    }
    // Step 6 of the guide: the notification destination and subscription.
    let env = t.env_for("OrderPollerFunction")?;
    let client = SpApiClient::from_env(&env, &SecretCache::from_sdk_config(&t.sdk)).await?;
    let queue = t.stack.queue("NotificationsQueue").arn.clone();
    notifications_setup::setup(&client, &queue, "flexbridge-notifications").await?;

    let vars = HashMap::from([
        ("AWS_ENDPOINT_URL".to_string(), t.endpoint().to_string()),
        ("SPAPI_ENDPOINT".to_string(), sim.base_url.clone()),
        ("LWA_ENDPOINT".to_string(), sim.lwa_url()),
    ]);
    let args = |json: bool| {
        let mut a = vec![
            "flexbridge".to_string(),
            "--stack".into(),
            t.stack.name.clone(),
            "doctor".into(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let doctor = Doctor {
        args: args(false),
        vars: vars.clone(),
    };

    // Healthy: every check ok (the alarm e-mail, unset here, and the push, off, only warn).
    let text = doctor
        .run()
        .await
        .map_err(|e| anyhow!("doctor failed:\n{e}"))?;
    println!("--- doctor, healthy:\n{text}");
    for needle in [
        "secret FlexbridgeSecret",
        "api External Fulfillment Shipments",
        "api External Fulfillment Returns",
        "notifications",
        "webhook",
        "alarm e-mail",
        "schedule ",
        "dlq ",
        "inventory push",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    let json: Value = serde_json::from_str(
        &Doctor {
            args: args(true),
            vars: vars.clone(),
        }
        .run()
        .await
        .map_err(|e| anyhow!(e))?,
    )?;
    let checks = json["checks"].as_array().cloned().unwrap_or_default();
    assert!(checks.len() >= 10, "{json}");
    assert!(checks.iter().all(|c| c["verdict"] != "fail"), "{json}");

    // A role the application lacks: named, with the fix.
    sim.admin()
        .refuse_roles(&["externalFulfillmentReturns"])
        .await?;
    doctor
        .failing(
            "api External Fulfillment Returns",
            &["Direct-to-Consumer Shipping", "403"],
        )
        .await;
    sim.admin().refuse_roles(&[]).await?;

    // A location Amazon does not know.
    let locations = DynamoLocationStore::new(t.dynamodb.clone(), t.stack.table("LocationsTable"));
    let mut unknown = Location {
        location_id: "ZZZ9".into(),
        hub_id: "HUB-GHOST".into(),
        name: "ghost".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        channel: "FBA".into(),
        orders_enabled: true,
        inventory_enabled: true,
        returns_enabled: false,
    };
    locations.put(&unknown).await?;
    doctor
        .failing("location ZZZ9", &["Amazon does not know it", "hubs add"])
        .await;
    unknown.orders_enabled = false;
    unknown.inventory_enabled = false;
    locations.put(&unknown).await?;

    // A deleted subscription (deleteSubscriptionById, grantless, as an operator would).
    let found = notifications_setup::inspect(&client, &queue).await?;
    let (subscription_id, _) = found.subscription.expect("a subscription");
    delete_subscription(sim, &subscription_id).await?;
    doctor
        .failing(
            "notifications",
            &[
                "no EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE subscription",
                "notifications-setup",
            ],
        )
        .await;
    notifications_setup::setup(&client, &queue, "flexbridge-notifications").await?;

    // A webhook that answers 500.
    answer.store(500, Ordering::SeqCst);
    doctor.failing("webhook", &["answered 500"]).await;
    answer.store(200, Ordering::SeqCst);
    doctor
        .run()
        .await
        .map_err(|e| anyhow!("healthy again:\n{e}"))?;

    // Empty SP-API credentials (the keys still there): named, and nothing is tried with them.
    let arn = t.stack.secret_arn("FlexbridgeSecret");
    let put = |value: String| {
        t.secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
    };
    put(json!({"signing_key": t.seller.signing_key}).to_string()).await?;
    let text = doctor
        .failing(
            "secret FlexbridgeSecret",
            &["client_id, client_secret, refresh_token", "steps 3 and 5"],
        )
        .await;
    assert!(text.contains("not tried"), "{text}");
    // A whole-value put of the credentials alone (not `flexbridge secret set`) drops the key
    // both HMAC keys come from: named with the fix, and the webhook check cannot sign.
    put(json!({"client_id": "a", "client_secret": "b", "refresh_token": "c"}).to_string()).await?;
    let text = doctor
        .failing(
            "secret FlexbridgeSecret",
            &[
                "warehouse_key, webhook_key and no signing_key",
                "secret rotate",
            ],
        )
        .await;
    assert!(!text.contains(&t.seller.signing_key), "{text}");
    Ok(())
}

/// Amazon's deleteSubscriptionById with a grantless token (client_credentials).
async fn delete_subscription(sim: &spapi_sim::SimHandle, id: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let token: Value = http
        .post(sim.lwa_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope=sellingpartnerapi%3A%3Anotifications&client_id={}&client_secret={}",
            spapi_sim::DEFAULT_CLIENT_ID,
            spapi_sim::DEFAULT_CLIENT_SECRET
        ))
        .send()
        .await?
        .json()
        .await?;
    let access = token["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("{token}"))?;
    let resp = http
        .delete(format!(
            "{}/notifications/v1/subscriptions/EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE/{id}",
            sim.base_url
        ))
        .header("x-amz-access-token", access)
        .header("user-agent", "flexbridge-e2e/1.0 (Language=Rust)")
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "delete: {}", resp.status());
    Ok(())
}
