//! Seeds a seller into a fresh stack: the secret the template creates with empty credentials
//! and a random signing key (SP-API app credentials; a known signing key, so the warehouse and
//! webhook HMAC keys derived from it are known), warehouse locations, settings.

use anyhow::{Context, Result};
use flexbridge::store::locations::{DynamoLocationStore, Location, LocationStore};
use flexbridge::store::settings::{names, DynamoSettingsStore, SettingsStore};
use flexbridge::warehouse::keys::KeyRole;
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
    /// The secret's `signing_key`, which both HMAC keys below are derived from
    /// (`flexbridge::warehouse::keys`).
    pub signing_key: String,
    /// HMAC key the warehouse signs its requests with (derived from `signing_key` by default;
    /// a different value is seeded as the secret's explicit `warehouse_key`).
    pub warehouse_key: String,
    /// HMAC key flexbridge signs webhook deliveries with (likewise, `webhook_key`).
    pub webhook_key: String,
    pub locations: Vec<Location>,
    pub settings: Vec<(String, Value)>,
}

const LOCAL_SIGNING_KEY: &str = "local-signing-key-0123456789abcdef0123456789abcdef";

fn derived(role: KeyRole) -> String {
    role.derive(&LOCAL_SIGNING_KEY.into()).expose().to_string()
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
            signing_key: LOCAL_SIGNING_KEY.into(),
            warehouse_key: derived(KeyRole::Warehouse),
            webhook_key: derived(KeyRole::Webhook),
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

/// The stack secret's JSON for `seller`: the credentials, the signing key, and a key only
/// where it is not the one derived from the signing key.
pub fn secret_value(seller: &Seller) -> String {
    let mut secret = json!({
        "client_id": seller.client_id,
        "client_secret": seller.client_secret,
        "refresh_token": seller.refresh_token,
        "seller_id": seller.seller_id,
        "application_id": seller.application_id,
        "signing_key": seller.signing_key,
    });
    let signing_key = seller.signing_key.as_str().into();
    for (role, key) in [
        (KeyRole::Warehouse, &seller.warehouse_key),
        (KeyRole::Webhook, &seller.webhook_key),
    ] {
        if role.derive(&signing_key).expose() != key {
            secret[role.field()] = json!(key);
        }
    }
    secret.to_string()
}

/// Puts the seller's values into the stack's secret (what the seller does with
/// `flexbridge secret set` after `sam deploy`).
pub async fn seed_secrets(stack: &Stack, seller: &Seller) -> Result<()> {
    const SECRET: &str = "FlexbridgeSecret";
    let sdk = flexbridge::aws::load_with_endpoint(&stack.endpoint).await;
    let sm = flexbridge::aws::secrets_client(&sdk);
    let Some(arn) = stack.secrets.get(SECRET) else {
        return Ok(());
    };
    sm.put_secret_value()
        .secret_id(arn)
        .secret_string(secret_value(seller))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
        .with_context(|| format!("seeding {SECRET}"))?;
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
