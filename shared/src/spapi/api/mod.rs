//! One module per SP-API, each an `impl SpApiClient` block: the API's paths, its operations'
//! input checks (refused before sending) and their answers' types. Sending is `transport`'s.

mod inventory;
mod listings;
mod notifications;
mod returns;
mod shipments;

use crate::spapi::{Operation, SpApiError, SpApiErrorKind};

/// A page holds 1 to 100 items (`maxResults`) in every listing operation.
fn check_page_size(op: Operation, max_results: Option<u32>) -> Result<(), SpApiError> {
    match max_results {
        Some(n) if !(1..=100).contains(&n) => Err(SpApiError::invalid_input(
            op.id(),
            format!("maxResults {n} is not within 1..=100"),
        )),
        _ => Ok(()),
    }
}

/// The `payload` of a write's answer, which Amazon always sends on success.
fn required_payload<T>(op: Operation, payload: Option<T>, what: &str) -> Result<T, SpApiError> {
    payload.ok_or_else(|| {
        SpApiError::new(
            SpApiErrorKind::Decode,
            op.id(),
            format!("answer has no {what} payload"),
        )
    })
}

/// A client whose endpoint nothing listens on: for checks that refuse input before sending.
#[cfg(test)]
fn offline_client() -> crate::spapi::SpApiClient {
    use crate::spapi::{config::test_credentials, Region, SpApiClient, SpApiConfig};
    SpApiClient::new(SpApiConfig {
        endpoint: Some("http://127.0.0.1:9".into()),
        ..SpApiConfig::new(Region::Na, test_credentials())
    })
    .unwrap()
}
