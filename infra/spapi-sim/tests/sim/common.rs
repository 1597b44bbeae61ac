//! Test support: a simulator with rate limits off (unless asked), a token, and a raw HTTP
//! helper that returns status, headers and JSON.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use spapi_sim::{
    SimHandle, SimOptions, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
};

pub const MP: &str = "A1PA6795UKMFR9";
pub const SHIPMENTS: &str = "/externalFulfillment/2024-09-11/shipments";
pub const INVENTORY: &str = "/externalFulfillment/inventory/2024-09-11/inventories";
pub const RETURNS: &str = "/externalFulfillment/2024-09-11/returns";

pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Res {
    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

pub async fn start_with(opts: SimOptions) -> Sim {
    let handle = Simulator::start(opts).await.expect(
        "simulator starts (are the models in ../shared/spapi-models or $SPAPI_MODELS_DIR?)",
    );
    let http = reqwest::Client::new();
    let token = token(&http, &handle.base_url).await;
    Sim {
        handle,
        http,
        token,
    }
}

/// No rate limits, no empty pages: deterministic functional tests.
pub async fn start() -> Sim {
    let sim = start_with(SimOptions {
        rate_limits: false,
        empty_page_rate: 0.0,
        ..Default::default()
    })
    .await;
    sim
}

pub async fn token(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("{base}/auth/o2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", DEFAULT_REFRESH_TOKEN)
                .append_pair("client_id", DEFAULT_CLIENT_ID)
                .append_pair("client_secret", DEFAULT_CLIENT_SECRET)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// A grantless token (LWA `client_credentials`) for `scope`.
pub async fn grantless_token(http: &reqwest::Client, base: &str, scope: &str) -> (u16, Value) {
    let r = http
        .post(format!("{base}/auth/o2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", scope)
                .append_pair("client_id", DEFAULT_CLIENT_ID)
                .append_pair("client_secret", DEFAULT_CLIENT_SECRET)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

impl Sim {
    pub async fn call(&self, method: Method, path_and_query: &str, body: Option<Value>) -> Res {
        self.call_as(&self.token, method, path_and_query, body)
            .await
    }

    /// [`Sim::call`] with another access token.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Res {
        let mut req = self
            .http
            .request(
                method,
                format!("{}{}", self.handle.base_url, path_and_query),
            )
            .header("x-amz-access-token", token)
            .header("user-agent", "spapi-sim-tests/1.0 (Language=Rust)");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Res {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, pq: &str) -> Res {
        self.call(Method::GET, pq, None).await
    }

    /// An FBA (Seller Flex) location "FLEX" and an MFN location "MFN1", both in DE.
    pub async fn setup_locations(&self) {
        let a = self.handle.admin();
        a.create_location("FLEX", MP, "FBA").await.unwrap();
        a.create_location("MFN1", MP, "MFN").await.unwrap();
    }

    pub async fn shipment(&self, spec: Value) -> Value {
        self.handle.admin().create_shipment(spec).await.unwrap()
    }

    pub async fn confirm(&self, id: &str) -> Res {
        self.call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}?operation=CONFIRM"),
            None,
        )
        .await
    }

    /// One package holding every line of the shipment.
    pub fn one_package(shipment: &Value, package_id: &str) -> Value {
        let lines: Vec<Value> = shipment["lineItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| json!({"packageLineItemId": l["shipmentLineItemId"], "quantity": l["numberOfUnits"]}))
            .collect();
        json!({
            "id": package_id,
            "dimensions": {"length": {"value": "30", "dimensionUnit": "CM"}, "width": {"value": "20", "dimensionUnit": "CM"}, "height": {"value": "10", "dimensionUnit": "CM"}},
            "weight": {"value": "750", "weightUnit": "G"},
            "packageLineItems": lines,
            "packageHandlingRequirements": "NORMAL",
        })
    }

    pub async fn create_packages(&self, shipment: &Value, package_id: &str) -> Res {
        let id = shipment["id"].as_str().unwrap();
        self.call(
            Method::POST,
            &format!("{SHIPMENTS}/{id}/packages"),
            Some(json!({"packages": [Self::one_package(shipment, package_id)]})),
        )
        .await
    }

    pub async fn status_of(&self, id: &str) -> String {
        self.get(&format!("{SHIPMENTS}/{id}")).await.body["status"]
            .as_str()
            .unwrap()
            .to_string()
    }
}
