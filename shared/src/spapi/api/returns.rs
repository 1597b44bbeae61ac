//! External Fulfillment Returns (2024-09-11): listing and reading returns.

use reqwest::Method;

use super::check_page_size;
use crate::spapi::models::*;
use crate::spapi::operation::Operation;
use crate::spapi::transport::{enc, Request};
use crate::spapi::{SpApiClient, SpApiError};

const RETURNS: &str = "/externalFulfillment/2024-09-11/returns";

impl SpApiClient {
    /// One page of returns; follow `next_token` until `None` (pages may be empty).
    pub async fn list_returns(&self, q: &ListReturnsQuery) -> Result<ReturnsPage, SpApiError> {
        let op = Operation::ListReturns;
        check_page_size(op, q.max_results)?;
        if (q.last_updated_since.is_some() || q.last_updated_until.is_some())
            && (q.return_location_id.is_none() || q.status.is_none())
        {
            return Err(SpApiError::invalid_input(
                op.id(),
                "lastUpdatedSince/Until also need returnLocationId and status",
            ));
        }
        let req = Request::new(op, Method::GET, RETURNS.to_string())
            .query("returnLocationId", q.return_location_id.as_ref())
            .query("rmaId", q.rma_id.as_ref())
            .query("status", q.status.as_ref().map(|s| s.as_str()))
            .query("reverseTrackingId", q.reverse_tracking_id.as_ref())
            .query("createdSince", q.created_since.map(|t| t.to_rfc3339()))
            .query("createdUntil", q.created_until.map(|t| t.to_rfc3339()))
            .query(
                "lastUpdatedSince",
                q.last_updated_since.map(|t| t.to_rfc3339()),
            )
            .query(
                "lastUpdatedUntil",
                q.last_updated_until.map(|t| t.to_rfc3339()),
            )
            .query("maxResults", q.max_results)
            .query("nextToken", q.next_token.as_ref());
        self.call_with(req, ReturnsPage::from_json).await
    }

    pub async fn get_return(&self, return_id: &str) -> Result<Return, SpApiError> {
        let req = Request::new(
            Operation::GetReturn,
            Method::GET,
            format!("{RETURNS}/{}", enc(return_id)),
        );
        self.call_json(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spapi::SpApiErrorKind;

    #[tokio::test]
    async fn a_page_size_outside_1_to_100_is_refused_before_sending() {
        let c = super::super::offline_client();
        for n in [0, 101] {
            let e = c
                .list_returns(&ListReturnsQuery {
                    max_results: Some(n),
                    ..ListReturnsQuery::default()
                })
                .await
                .unwrap_err();
            assert_eq!(e.kind, SpApiErrorKind::InvalidInput, "{n}");
        }
    }
}
