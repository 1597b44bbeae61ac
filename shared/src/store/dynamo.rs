//! Shared DynamoDB helpers: error mapping, attribute access, and batch reads/writes that
//! respect DynamoDB's limits (25 writes / 100 keys a request), retry what DynamoDB hands back
//! unprocessed with the project's backoff, and run a bounded number of requests at once.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::retry::{Deadline, RetryDecision, RetryPolicy};

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's BatchWriteItem limit.
pub const BATCH_WRITE_MAX: usize = 25;
/// DynamoDB's BatchGetItem limit.
pub const BATCH_GET_MAX: usize = 100;

/// Maps an SDK error; throttling, server errors, timeouts and dropped connections are retryable.
pub fn ddb_error<E>(
    operation: &str,
    e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error()
                || matches!(
                    se.err().code(),
                    Some(
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                            | "TransactionConflictException"
                    )
                )
        }
        _ => false,
    };
    Error::aws(
        "dynamodb",
        format!("{operation}: {}", DisplayErrorContext(&e)),
        retryable,
    )
}

/// Whether an SDK error is a failed condition (the write was refused on purpose).
pub fn is_condition_failed<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// Whether a transaction was refused (one of its conditions failed, or it ran into another
/// transaction on the same items).
pub fn is_transaction_cancelled(
    e: &SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    e.as_service_error()
        .is_some_and(TransactWriteItemsError::is_transaction_canceled_exception)
}

/// Runs a query to the last page and maps every item.
pub async fn query_all<T>(
    query: QueryFluentBuilder,
    map: impl FnMut(&Item) -> Result<T>,
) -> Result<Vec<T>> {
    let items = query.into_paginator().items().send().collect().await;
    map_items("Query", items, map)
}

/// Runs a scan to the last page and maps every item.
pub async fn scan_all<T>(
    scan: ScanFluentBuilder,
    map: impl FnMut(&Item) -> Result<T>,
) -> Result<Vec<T>> {
    let items = scan.into_paginator().items().send().collect().await;
    map_items("Scan", items, map)
}

fn map_items<T, E>(
    operation: &str,
    items: std::result::Result<
        Vec<Item>,
        SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
    map: impl FnMut(&Item) -> Result<T>,
) -> Result<Vec<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    items
        .map_err(|e| ddb_error(operation, e))?
        .iter()
        .map(map)
        .collect()
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub fn get_bool(item: &Item, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

/// Settings for the batch helpers.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Backoff between attempts at what DynamoDB returned unprocessed.
    pub policy: RetryPolicy,
    pub deadline: Option<Deadline>,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            concurrency: 4,
            policy: RetryPolicy::new(8, Duration::from_millis(50), Duration::from_secs(5)),
            deadline: None,
        }
    }
}

/// Writes every request (puts/deletes) in batches of 25, `concurrency` at a time. Items
/// DynamoDB returns as unprocessed are sent again after a backoff; if they are still
/// unprocessed when the attempts or the deadline run out, the error is retryable.
pub async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<WriteRequest>,
    batching: Batching,
) -> Result<()> {
    let chunks: Vec<Vec<WriteRequest>> = requests
        .chunks(BATCH_WRITE_MAX)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    stream::iter(chunks.into_iter().map(Ok))
        .try_for_each_concurrent(batching.concurrency.max(1), |chunk| async move {
            write_chunk(client, table, chunk, batching).await
        })
        .await
}

async fn write_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
    batching: Batching,
) -> Result<()> {
    let mut attempt = 1;
    loop {
        let result = client
            .batch_write_item()
            .request_items(table, pending.clone())
            .send()
            .await;
        let wait = match result {
            Ok(out) => {
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    return Ok(());
                }
                wait_or_give_up(&batching, attempt, Error::Transient {
                    message: format!(
                        "dynamodb BatchWriteItem on {table}: {} items still unprocessed after {attempt} attempts",
                        pending.len()
                    ),
                    after: None,
                })?
            }
            Err(e) => wait_or_give_up(&batching, attempt, ddb_error("BatchWriteItem", e))?,
        };
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// The wait before sending what is still pending again, or, when the policy says stop (the
/// error is not retryable, or the attempts or deadline ran out), the error to give up with.
fn wait_or_give_up(batching: &Batching, attempt: u32, error: Error) -> Result<Duration> {
    let decision = if error.is_retryable() {
        RetryDecision::Retry
    } else {
        RetryDecision::Stop
    };
    batching
        .policy
        .next_wait(attempt, decision, batching.deadline)
        .ok_or(error)
}

/// Reads items by key in batches of 100, `concurrency` at a time, retrying unprocessed keys.
/// Items that do not exist are simply absent from the result (order not kept).
pub async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    projection: Option<&str>,
    batching: Batching,
) -> Result<Vec<Item>> {
    let chunks: Vec<Vec<Item>> = keys.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
    let pages: Vec<Vec<Item>> = stream::iter(chunks)
        .map(|chunk| get_chunk(client, table, chunk, projection, batching))
        .buffer_unordered(batching.concurrency.max(1))
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}

async fn get_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<Item>,
    projection: Option<&str>,
    batching: Batching,
) -> Result<Vec<Item>> {
    let mut found = Vec::with_capacity(pending.len());
    let mut attempt = 1;
    loop {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(pending.clone()))
            .set_projection_expression(projection.map(str::to_string))
            .consistent_read(true)
            .build()
            .map_err(|e| Error::Internal(format!("BatchGetItem request: {e}")))?;
        let result = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await;
        let wait = match result {
            Ok(out) => {
                if let Some(items) = out.responses.and_then(|mut r| r.remove(table)) {
                    found.extend(items);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if pending.is_empty() {
                    return Ok(found);
                }
                wait_or_give_up(&batching, attempt, Error::Transient {
                    message: format!(
                        "dynamodb BatchGetItem on {table}: {} keys still unprocessed after {attempt} attempts",
                        pending.len()
                    ),
                    after: None,
                })?
            }
            Err(e) => wait_or_give_up(&batching, attempt, ddb_error("BatchGetItem", e))?,
        };
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_helpers_read_what_they_write() {
        let item: Item = [
            ("a".to_string(), s("x")),
            ("n".to_string(), n(42)),
            ("b".to_string(), b(true)),
        ]
        .into();
        assert_eq!(get_s(&item, "a"), Some("x"));
        assert_eq!(get_n::<u32>(&item, "n"), Some(42));
        assert_eq!(get_bool(&item, "b"), Some(true));
        assert_eq!(get_s(&item, "n"), None);
        assert_eq!(get_n::<u32>(&item, "missing"), None);
    }
}
