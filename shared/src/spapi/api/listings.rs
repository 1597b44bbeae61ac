//! Listings Items (2021-08-01): patching a listing (prices).

use reqwest::Method;

use crate::spapi::models::*;
use crate::spapi::operation::Operation;
use crate::spapi::transport::{enc, Request};
use crate::spapi::{SpApiClient, SpApiError};

const LISTINGS: &str = "/listings/2021-08-01/items";

impl SpApiClient {
    /// Patches a listing (prices: [`ListingsPatch::price`]). `ACCEPTED` means queued at Amazon.
    pub async fn patch_listings_item(
        &self,
        seller_id: &str,
        sku: &str,
        marketplace_ids: &[impl AsRef<str>],
        patch: &ListingsPatch,
    ) -> Result<ListingsItemSubmissionResponse, SpApiError> {
        let op = Operation::PatchListingsItem;
        if marketplace_ids.is_empty() {
            return Err(SpApiError::invalid_input(
                op.id(),
                "at least one marketplace id is required",
            ));
        }
        if patch.patches.is_empty() {
            return Err(SpApiError::invalid_input(
                op.id(),
                "at least one patch is required",
            ));
        }
        let ids = marketplace_ids
            .iter()
            .map(|m| m.as_ref().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let req = Request::new(
            op,
            Method::PATCH,
            format!("{LISTINGS}/{}/{}", enc(seller_id), enc(sku)),
        )
        .query("marketplaceIds", Some(ids))
        .json(patch)?;
        self.call_json(req).await
    }
}
