//! Seeds a seller into a fresh stack: the secrets the template creates empty or random
//! (SP-API app credentials, the warehouse and webhook HMAC keys), warehouse locations, settings.

use anyhow::{Context, Result};
use flexbridge::store::locations::{DynamoLocationStore, Location, LocationStore};
use flexbridge::store::settings::{names, DynamoSettingsStore, SettingsStore};
use serde_json::{json, Value};

use crate::stack::Stack;

/// Everything a seller sets up once.
#[derive(Debug, Clone)]
pub struct Seller {
    pub seller_id: String,
    /// LWA app credentials (the simulator's test client by default).
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// The SP-API application (App ID) whose notifications this stack accepts.
    pub application_id: String,
    /// HMAC key the warehouse signs its requests with.
    pub warehouse_key: String,
    /// HMAC key flexbridge signs webhook deliveries with.
    pub webhook_key: String,
    pub locations: Vec<Location>,
    pub settings: Vec<(String, Value)>,
}

impl Default for Seller {
    fn default() -> Self {
        let loc = |id: &str, hub: &str, name: &str| Location {
            location_id: id.into(),
            hub_id: hub.into(),
            name: name.into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
            channel: "FBA".into(),
            orders_enabled: true,
            inventory_enabled: true,
            returns_enabled: true,
        };
        Self {
            seller_id: "A1SIMMERCHANT01".into(),
            client_id: spapi_sim::DEFAULT_CLIENT_ID.into(),
            client_secret: spapi_sim::DEFAULT_CLIENT_SECRET.into(),
            refresh_token: spapi_sim::DEFAULT_REFRESH_TOKEN.into(),
            application_id: spapi_sim::DEFAULT_APPLICATION_ID.into(),
            warehouse_key: "local-warehouse-hmac-key-0123456789abcdef".into(),
            webhook_key: "local-webhook-hmac-key-0123456789abcdef".into(),
            locations: vec![
                loc("SIMLOC-EAST-1", "HUB-NJ", "New Jersey hub"),
                loc("SIMLOC-WEST-1", "HUB-CA", "California hub"),
            ],
            settings: vec![
                (names::HANDLING_TIME_DAYS.into(), json!(1)),
                (names::AUTO_CONFIRM_ORDERS.into(), json!(true)),
                (names::INVENTORY_PUSH_ENABLED.into(), json!(true)),
            ],
        }
    }
}

/// Puts the seller's secret values into the stack's secrets (what the seller does in the
/// console after `sam deploy`).
pub async fn seed_secrets(stack: &Stack, seller: &Seller) -> Result<()> {
    let sdk = flexbridge::aws::load_with_endpoint(&stack.endpoint).await;
    let sm = flexbridge::aws::secrets_client(&sdk);
    let values = [
        (
            "SpApiSecret",
            json!({
                "client_id": seller.client_id,
                "client_secret": seller.client_secret,
                "refresh_token": seller.refresh_token,
                "seller_id": seller.seller_id,
                "application_id": seller.application_id,
            })
            .to_string(),
        ),
        ("WarehouseSecret", seller.warehouse_key.clone()),
        ("WebhookSecret", seller.webhook_key.clone()),
    ];
    for (logical, value) in values {
        let Some(arn) = stack.secrets.get(logical) else {
            continue;
        };
        sm.put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
            })
            .with_context(|| format!("seeding {logical}"))?;
    }
    Ok(())
}

/// Writes the seller's locations and settings (through the same stores the functions use).
pub async fn seed_seller(stack: &Stack, seller: &Seller) -> Result<()> {
    let sdk = flexbridge::aws::load_with_endpoint(&stack.endpoint).await;
    let ddb = flexbridge::aws::dynamodb_client(&sdk);
    let locations = DynamoLocationStore::new(ddb.clone(), stack.table("LocationsTable"));
    for l in &seller.locations {
        locations
            .put(l)
            .await
            .with_context(|| format!("seeding location {}", l.location_id))?;
    }
    let settings = DynamoSettingsStore::new(ddb, stack.table("SettingsTable"));
    for (name, value) in &seller.settings {
        settings
            .put(name, value.clone(), None, "seed")
            .await
            .with_context(|| format!("seeding setting {name}"))?;
    }
    Ok(())
}
