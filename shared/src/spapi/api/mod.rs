//! One module per SP-API, each an `impl SpApiClient` block: the API's paths, its operations'
//! input checks (refused before sending) and their answers' types. Sending is `transport`'s.

mod inventory;
mod listings;
mod notifications;
mod returns;
mod shipments;

/// A client whose endpoint nothing listens on: for checks that refuse input before sending.
#[cfg(test)]
fn offline_client() -> crate::spapi::SpApiClient {
    use crate::spapi::{LwaCredentials, Region, SpApiClient, SpApiConfig};
    let creds = LwaCredentials {
        client_id: "id".into(),
        client_secret: "secret".into(),
        refresh_token: "refresh".into(),
    };
    SpApiClient::new(SpApiConfig {
        endpoint: Some("http://127.0.0.1:9".into()),
        ..SpApiConfig::new(Region::Na, creds)
    })
    .unwrap()
}
