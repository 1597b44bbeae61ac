//! The state of rate-limit buckets shared by every Lambda instance (CursorsTable).
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | bucket | `RATELIMIT#<operation>` | `BUCKET` | `tat` N (GCRA theoretical arrival time, unix ms) |
//!
//! Access pattern: read (consistent), then one conditional write on the value read; a lost race
//! reads again. See `crate::ratelimit` for the algorithm.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::ratelimit::{gcra_reserve, unix_ms, Limit, SharedBucketStore};
use crate::store::dynamo::{ddb_error, get_n, is_condition_failed, n, s};

pub struct DynamoBucketStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoBucketStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl DynamoBucketStore {
    /// How far ahead of now bucket `name` is booked (ms; 0 when idle, `None` when never used):
    /// what a caller asking for a token now would wait (the operator's `status`).
    pub async fn booked_ahead_ms(&self, name: &str) -> Result<Option<f64>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATELIMIT#{name}")))
            .key("sk", s("BUCKET"))
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| get_n::<f64>(i, "tat"))
            .map(|tat| (tat - unix_ms()).max(0.0)))
    }
}

#[async_trait]
impl SharedBucketStore for DynamoBucketStore {
    async fn reserve(&self, name: &str, limit: Limit, tokens: u32) -> Result<f64> {
        let pk = format!("RATELIMIT#{name}");
        for _ in 0..20 {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s("BUCKET"))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| ddb_error("GetItem", e))?;
            let old: Option<f64> = out.item.as_ref().and_then(|i| get_n(i, "tat"));
            let (tat, due) = gcra_reserve(old, unix_ms(), limit, tokens);
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&pk))
                .item("sk", s("BUCKET"))
                .item("tat", n(format!("{tat:.3}")));
            put = match old {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(old) => put
                    .condition_expression("tat = :old")
                    .expression_attribute_values(":old", n(format!("{old:.3}"))),
            };
            match put.send().await {
                Ok(_) => return Ok(due),
                Err(e) if is_condition_failed(&e) => continue,
                Err(e) => return Err(ddb_error("PutItem", e)),
            }
        }
        Err(Error::Transient {
            message: format!("rate-limit bucket {name} kept changing under us"),
            after: None,
        })
    }
}
