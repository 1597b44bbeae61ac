//! Uploads: the seller drops a catalog with a few bad rows into the bucket, then a price list;
//! the summary says what was accepted, what Amazon answered, and where the reports are.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use flexbridge::store::catalog::{CatalogStore, DynamoCatalogStore};
use flexbridge::upload::UploadSummary;

use super::{Ctx, Progress, Scenario, Summary, SummaryLine};
use crate::runner::Runner;

const CATALOG_KEY: &str = "catalog/delta/demo-catalog.csv";
const PRICES_KEY: &str = "prices/demo-prices.csv";

/// Eight good rows and three a seller typically gets wrong.
const CATALOG: &str = "sku,asin,title,product_type,enabled,safety_stock,max_quantity,supplier\n\
    DEMO-MUG-RED,B0DEMO0001,\"Mug, red\",KITCHEN,yes,2,100,Acme\n\
    DEMO-MUG-BLUE,B0DEMO0002,\"Mug, blue\",KITCHEN,yes,2,100,Acme\n\
    DEMO-PLATE,B0DEMO0003,Dinner plate,KITCHEN,yes,0,,Acme\n\
    DEMO-TOWEL,B0DEMO0004,Bath towel,HOME,yes,5,50,Linen Co\n\
    DEMO-LAMP,B0DEMO0005,Desk lamp,HOME,no,,,Lights Ltd\n\
    DEMO-BAG,B0DEMO0006,Travel bag,LUGGAGE,true,1,20,Bags Inc\n\
    DEMO-BOOK,B0DEMO0007,Cook book,BOOK,1,,,Pages\n\
    DEMO-BALL,B0DEMO0008,Football,SPORTING_GOODS,,,,Sports\n\
    DEMO-CUP,b0demo0009,Cup,KITCHEN,yes,,,Acme\n\
    DEMO-MUG-RED,B0DEMO0010,Mug again,KITCHEN,yes,,,Acme\n\
    DEMO-SPOON,B0DEMO0011,=1+1,KITCHEN,perhaps,,,Acme\n";

/// Four prices Amazon gets, two the guardrails stop.
const PRICES: &str = "sku,price,currency,minimum_price,maximum_price\n\
    DEMO-MUG-RED,12.99,USD,9,20\n\
    DEMO-MUG-BLUE,12.99,USD,9,20\n\
    DEMO-TOWEL,8.50,USD,,\n\
    DEMO-BAG,49.00,USD,30,60\n\
    DEMO-UNKNOWN,5.00,USD,,\n\
    DEMO-PLATE,99.00,USD,5,15\n";

#[derive(Default)]
pub struct Uploads {
    prices_sent: AtomicBool,
}

async fn put(ctx: &Ctx, key: &str, body: &str) -> Result<()> {
    flexbridge::aws::s3_client(&ctx.sdk)
        .put_object()
        .bucket(ctx.stack.bucket("UploadsBucket"))
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await?;
    Ok(())
}

async fn summary_of(ctx: &Ctx, key: &str) -> Result<Option<UploadSummary>> {
    let got = flexbridge::aws::s3_client(&ctx.sdk)
        .get_object()
        .bucket(ctx.stack.bucket("UploadsBucket"))
        .key(format!("reports/{key}.summary.json"))
        .send()
        .await;
    match got {
        Ok(out) => Ok(Some(serde_json::from_slice(
            &out.body.collect().await?.to_vec(),
        )?)),
        Err(_) => Ok(None),
    }
}

/// Copies a report out of moto into `.local/`, so the seller can open it after the run ends
/// (moto, and the bucket with it, stop with the main job).
async fn keep_report(ctx: &Ctx, report_key: &str) -> Result<std::path::PathBuf> {
    let out = flexbridge::aws::s3_client(&ctx.sdk)
        .get_object()
        .bucket(ctx.stack.bucket("UploadsBucket"))
        .key(report_key)
        .send()
        .await?;
    let path = crate::paths::repo_root().join(".local").join(report_key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, out.body.collect().await?.into_bytes())?;
    Ok(path)
}

/// Price answers from Amazon recorded so far for the demo price list: (accepted, other).
async fn answers(ctx: &Ctx) -> Result<(usize, usize)> {
    let store = DynamoCatalogStore::new(
        flexbridge::aws::dynamodb_client(&ctx.sdk),
        ctx.stack.table("CatalogTable"),
    );
    let keys: Vec<(String, String)> = PRICES
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|sku| {
            (
                sku.to_string(),
                ctx.seller
                    .locations
                    .first()
                    .map_or("ATVPDKIKX0DER".into(), |l| l.marketplace_id.clone()),
            )
        })
        .collect();
    let states = store.get_prices(&keys).await?;
    let accepted = states.iter().filter(|s| s.status == "ACCEPTED").count();
    Ok((accepted, states.len() - accepted))
}

#[async_trait]
impl Scenario for Uploads {
    fn name(&self) -> &'static str {
        "uploads"
    }

    async fn seed(&self, ctx: &Ctx) -> Result<()> {
        put(ctx, CATALOG_KEY, CATALOG).await
    }

    async fn progress(&self, ctx: &Ctx, _runner: &Runner) -> Result<Progress> {
        let Some(catalog) = summary_of(ctx, CATALOG_KEY).await? else {
            return Ok(Progress {
                line: "catalog upload waiting".into(),
                done: false,
            });
        };
        // Prices need the catalog (product types) first, as a seller would do it.
        if !self.prices_sent.swap(true, Ordering::SeqCst) {
            put(ctx, PRICES_KEY, PRICES).await?;
        }
        let Some(prices) = summary_of(ctx, PRICES_KEY).await? else {
            return Ok(Progress {
                line: format!(
                    "catalog {} SKUs accepted; price upload waiting",
                    catalog.accepted
                ),
                done: false,
            });
        };
        let (accepted, other) = answers(ctx).await?;
        let answered = (accepted + other) as u64;
        Ok(Progress {
            line: format!(
                "catalog {} SKUs accepted; prices {answered}/{} answered by Amazon",
                catalog.accepted, prices.queued
            ),
            done: answered >= prices.queued,
        })
    }

    async fn summary(&self, ctx: &Ctx, _runner: &Runner) -> Result<Summary> {
        let mut s = Summary::default();
        for key in [CATALOG_KEY, PRICES_KEY] {
            match summary_of(ctx, key).await? {
                Some(r) => {
                    let kept = keep_report(ctx, &r.summary_report).await?;
                    let mut value = format!(
                        "{}: {} rows, {} accepted, {} rejected; report {}",
                        r.status,
                        r.rows_read,
                        r.accepted,
                        r.rejected,
                        kept.display()
                    );
                    if r.queued > 0 {
                        value.push_str(&format!("; {} prices sent to Amazon", r.queued));
                    }
                    s.lines
                        .push(SummaryLine::new(format!("Upload {key}"), value));
                    if let Some(errors) = &r.errors_report {
                        let kept = keep_report(ctx, errors).await?;
                        s.errors.push(format!(
                            "{key}: {} rows skipped; line-by-line reasons in {} (copy of s3://{}/{errors})",
                            r.rejected,
                            kept.display(),
                            ctx.stack.bucket("UploadsBucket")
                        ));
                    }
                }
                None => s
                    .errors
                    .push(format!("{key}: no report yet (was it processed?)")),
            }
        }
        let (accepted, other) = answers(ctx).await?;
        s.lines.push(SummaryLine::new(
            "Prices at Amazon",
            format!(
                "{accepted} accepted, {other} refused (answers stored per SKU in CatalogTable)"
            ),
        ));
        Ok(s)
    }
}
