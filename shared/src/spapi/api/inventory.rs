//! External Fulfillment Inventory (2024-09-11): batchInventory.

use reqwest::Method;

use crate::spapi::models::*;
use crate::spapi::operation::Operation;
use crate::spapi::transport::Request;
use crate::spapi::{SpApiClient, SpApiError};

const INVENTORY: &str = "/externalFulfillment/inventory/2024-09-11/inventories";

impl SpApiClient {
    /// 1 to 10 inventory updates/fetches in one call; one result per request (HTTP 207), each to
    /// be checked on its own.
    pub async fn batch_inventory(
        &self,
        requests: &[InventoryRequest],
    ) -> Result<Vec<InventoryItemResult>, SpApiError> {
        let op = Operation::BatchInventory;
        if requests.is_empty() || requests.len() > 10 {
            return Err(SpApiError::invalid_input(
                op.id(),
                format!("{} requests; a batch holds 1 to 10", requests.len()),
            ));
        }
        let body = BatchInventoryRequest {
            requests: requests.to_vec(),
        };
        let req = Request::new(op, Method::POST, INVENTORY.to_string()).json(&body)?;
        let r: BatchInventoryResponse = self.call_json(req).await?;
        Ok(r.responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spapi::SpApiErrorKind;

    #[tokio::test]
    async fn invalid_input_is_refused_before_sending() {
        let c = super::super::offline_client();
        let eleven: Vec<_> = (0..11)
            .map(|i| InventoryRequest::fetch("L", &format!("s{i}"), None))
            .collect();
        let e = c.batch_inventory(&eleven).await.unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
        assert!(!e.is_retryable());
        let e = c.batch_inventory(&[]).await.unwrap_err();
        assert_eq!(e.kind, SpApiErrorKind::InvalidInput);
    }
}
