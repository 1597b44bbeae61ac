//! Sends one queued price row to Amazon (`patchListingsItem`), in upload order, and records
//! Amazon's answer. The price pusher Lambda is a thin wrapper around [`PriceSender`].
//!
//! Per message (idempotent per upload version, SKU and marketplace through
//! [`Idempotency`]):
//! 1. **claim** (SKU, marketplace) for the upload's order ([`CatalogStore::claim_price`]). If a
//!    price of a newer upload was applied or is in flight, this row is `SUPERSEDED`: never sent,
//!    never stored, so it never becomes the base of the 50% guard; the answer says so. If an
//!    older upload's price is in flight, the message is retried after it.
//! 2. **pace**: a permit from the [`Pace`] (Amazon's 5 rps for the seller, shared by every
//!    instance; see [`PriceSender::pace`]).
//! 3. **send**. Amazon's verdict on the price (its status, e.g. `ACCEPTED` or `INVALID`, with its
//!    issues) is the answer. Any error instead (401/403 after a token refresh, 5xx, throttling
//!    after the client's retries, a timeout) is returned as the error it is: the claim is
//!    released, nothing is recorded, and the message is retried or parked by the batch helper,
//!    so fixing the credentials lets it be sent.
//! 4. **record**: the answer is stored on the `PRICE#` item (unless a newer price got there
//!    first) and counted for the upload's Amazon report ([`super::answers`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::answers::{self, AnswerStore, PriceAnswer};
use super::PriceUpdate;
use crate::error::{Error, Result};
use crate::idempotency::Idempotency;
use crate::ratelimit::TokenBucket;
use crate::retry::Deadline;
use crate::runtime::Invocation;
use crate::spapi::models::ListingsPatch;
use crate::spapi::SpApiClient;
use crate::store::catalog::{CatalogStore, PriceClaim, PriceState};
use crate::upload::ReportSink;

/// Status of a row a newer upload's price overtook.
pub const SUPERSEDED: &str = "SUPERSEDED";

/// Permits to call `patchListingsItem`.
#[async_trait]
pub trait Pace: Send + Sync {
    /// Waits for a permit; an error when none comes before `deadline`.
    async fn permit(&self, deadline: Deadline) -> Result<()>;
}

/// A process-local bucket: holds a rate within one instance only.
#[async_trait]
impl Pace for TokenBucket {
    async fn permit(&self, deadline: Deadline) -> Result<()> {
        self.acquire_before(Some(deadline))
            .await
            .map_err(|e| Error::Transient {
                message: format!("patchListingsItem: {e}"),
                after: Some(e.wait),
            })
    }
}

/// Everything the sender talks to.
pub struct PriceSender {
    pub client: SpApiClient,
    /// The secret's `seller_id`, else `SELLER_ID`: read on the first price, not at init (the
    /// client reads the SP-API secret lazily). Empty = not read yet.
    pub seller_id: tokio::sync::OnceCell<String>,
    pub catalog: Arc<dyn CatalogStore>,
    pub idempotency: Idempotency,
    pub answers: Arc<dyn AnswerStore>,
    pub reports: Arc<dyn ReportSink>,
    /// THE seam for Amazon's rate across instances: the price pusher passes a per-instance
    /// share of 5 rps today; a cross-instance limiter replaces it here, nowhere else.
    pub pace: Arc<dyn Pace>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

impl PriceSender {
    /// One price queue message; an error is the message's outcome.
    pub async fn handle_message(&self, body: &str, inv: &Invocation) -> Result<()> {
        let update: PriceUpdate = serde_json::from_str(body)
            .map_err(|e| Error::InvalidInput(format!("not a price update: {e}")))?;
        let key = update.idempotency_key();
        self.idempotency
            .run(&key, &update, inv, |_claim| self.push(&update, inv))
            .await
            .map(|_: Value| ())
    }

    async fn push(&self, update: &PriceUpdate, inv: &Invocation) -> Result<Value> {
        let (sku, market) = (update.sku.as_str(), update.marketplace_id.as_str());
        let now = now_ms();
        let lease_until = now + inv.remaining().as_millis() as i64;
        match self
            .catalog
            .claim_price(sku, market, &update.order, now, lease_until)
            .await?
        {
            PriceClaim::Claimed => {}
            PriceClaim::Superseded { by } if by == update.order => {
                // This row was applied before (its record was not saved): answer as stored.
                let stored = self
                    .catalog
                    .get_prices(&[(sku.to_string(), market.to_string())])
                    .await?
                    .pop();
                let (status, issues) = stored
                    .map(|p| (p.status, p.issues))
                    .unwrap_or_else(|| ("SENT".into(), "[]".into()));
                return self.answer(update, &status, &issues).await;
            }
            PriceClaim::Superseded { by } => {
                tracing::info!(
                    sku,
                    marketplace = market,
                    order = update.order,
                    newer = by,
                    "a newer upload's price came first; not sent"
                );
                let issues = json!([{
                    "code": "SUPERSEDED",
                    "message": format!("not sent: a newer upload's price for this SKU and marketplace came first ({by})"),
                }])
                .to_string();
                return self.answer(update, SUPERSEDED, &issues).await;
            }
            PriceClaim::Busy { retry_after } => {
                return Err(Error::Transient {
                    message: format!(
                        "an older upload's price for {sku} in {market} is on its way to Amazon; retrying after it"
                    ),
                    after: Some(retry_after),
                })
            }
        }
        let sent = self.send(update, inv).await;
        let (status, issues, submission_id) = match sent {
            Ok(answer) => answer,
            Err(e) => {
                if let Err(release) = self.catalog.release_price(sku, market, &update.order).await {
                    tracing::warn!(error = %release, "could not release the price claim; it expires");
                }
                return Err(e);
            }
        };
        tracing::info!(sku, marketplace = market, status, "price sent");
        let stored = self
            .catalog
            .put_price(&PriceState {
                sku: update.sku.clone(),
                marketplace_id: update.marketplace_id.clone(),
                price: update.price,
                currency: update.currency.clone(),
                status: status.clone(),
                issues: issues.clone(),
                submission_id,
                upload: format!("{}#{}", update.upload, update.line),
                order: update.order.clone(),
                updated_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            })
            .await?;
        if !stored {
            tracing::warn!(
                sku,
                marketplace = market,
                "a newer upload's price was applied while this one was in flight; its answer is not stored"
            );
        }
        self.answer(update, &status, &issues).await
    }

    /// A deployment without a seller id is an environment failure: retried, never dropped.
    async fn seller_id(&self) -> Result<&str> {
        self.seller_id
            // Boxed: keeps the handler's future type shallow (rustc's layout depth limit).
            .get_or_try_init(|| {
                Box::pin(async {
                    self.client
                        .seller_id()
                        .await?
                        .ok_or_else(|| Error::Transient {
                            message:
                                "no seller id: set seller_id in the SP-API secret or SELLER_ID"
                                    .into(),
                            after: None,
                        })
                })
            })
            .await
            .map(String::as_str)
    }

    /// Amazon's verdict, or the error that kept it from giving one.
    async fn send(
        &self,
        update: &PriceUpdate,
        inv: &Invocation,
    ) -> Result<(String, String, Option<String>)> {
        self.pace.permit(Deadline::from(inv)).await?;
        let patch = ListingsPatch::price(
            &update.product_type,
            &update.marketplace_id,
            &update.currency,
            update.price as f64 / 100.0,
        );
        let answer = self
            .client
            .with_deadline(inv)
            .patch_listings_item(
                self.seller_id().await?,
                &update.sku,
                &[&update.marketplace_id],
                &patch,
            )
            .await
            .map_err(Error::SpApi)?;
        Ok((
            answer.status.as_str().to_string(),
            serde_json::to_string(&answer.issues)?,
            Some(answer.submission_id).filter(|s| !s.is_empty()),
        ))
    }

    async fn answer(&self, update: &PriceUpdate, status: &str, issues: &str) -> Result<Value> {
        if !update.key.is_empty() {
            answers::answered(
                self.answers.as_ref(),
                self.reports.as_ref(),
                &update.upload_ref(),
                &PriceAnswer {
                    line: update.line,
                    sku: update.sku.clone(),
                    marketplace_id: update.marketplace_id.clone(),
                    price: update.price,
                    currency: update.currency.clone(),
                    status: status.to_string(),
                    issues: issues.to_string(),
                },
            )
            .await?;
        }
        Ok(json!({"sku": update.sku, "status": status}))
    }
}
