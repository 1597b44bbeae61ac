//! The contract between a function crate, Lambda, and the local runner.
//!
//! Each function crate exposes a type implementing [`Function`]; its `main.rs` hands it to
//! [`run_lambda`], and the local runner in `infra/` invokes the very same value with the
//! JSON payload Lambda would have delivered (SQS batch, EventBridge schedule, ...).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Error;

/// What a handler knows about the invocation it serves.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// When Lambda will stop the function; work that cannot finish by then must not start.
    pub deadline: SystemTime,
}

impl Invocation {
    pub fn new(request_id: impl Into<String>, budget: Duration) -> Self {
        Self {
            request_id: request_id.into(),
            deadline: SystemTime::now() + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

impl From<&lambda_runtime::Context> for Invocation {
    fn from(ctx: &lambda_runtime::Context) -> Self {
        Self {
            request_id: ctx.request_id.clone(),
            deadline: ctx.deadline(),
        }
    }
}

#[async_trait]
pub trait Function: Send + Sync + 'static {
    async fn invoke(&self, payload: Value, invocation: Invocation) -> Result<Value, Error>;
}

/// Runs a function under the Lambda runtime (the body of every `main.rs`).
pub async fn run_lambda<F: Function>(function: F) -> Result<(), lambda_runtime::Error> {
    let function = Arc::new(function);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let function = Arc::clone(&function);
            async move {
                let invocation = Invocation::from(&event.context);
                function
                    .invoke(event.payload, invocation)
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))
            }
        },
    ))
    .await
}

/// Handles each message of an SQS batch (at most `concurrency` at a time) and answers with a
/// partial batch response: a retryable failure is reported so SQS redelivers that message alone
/// (and parks it in the DLQ after `maxReceiveCount`); a permanent one is logged and
/// acknowledged, because no retry can help it. `what` names the message kind in the logs.
pub async fn handle_sqs_batch<F, Fut>(
    event: aws_lambda_events::sqs::SqsEvent,
    what: &'static str,
    concurrency: usize,
    handle: F,
) -> aws_lambda_events::sqs::SqsBatchResponse
where
    F: Fn(aws_lambda_events::sqs::SqsMessage) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    use futures::StreamExt;

    let results: Vec<(String, Result<(), Error>)> = futures::stream::iter(event.records)
        .map(|message| {
            let id = message.message_id.clone().unwrap_or_default();
            let done = handle(message);
            async move { (id, done.await) }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    for (message_id, result) in results {
        match result {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(message_id, error = %e, "{what} will be retried");
                let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
            Err(e) => tracing::error!(message_id, error = %e, "{what} dropped: no retry can help"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage};

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    #[tokio::test]
    async fn only_retryable_failures_are_reported_back_to_sqs() {
        let mut event = SqsEvent::default();
        event.records = vec![
            message("ok", "fine"),
            message("flaky", "transient"),
            message("poison", "invalid"),
        ];
        let response = handle_sqs_batch(event, "test message", 2, |m| async move {
            match m.body.as_deref() {
                Some("transient") => Err(Error::Transient {
                    message: "try later".into(),
                    after: None,
                }),
                Some("invalid") => Err(Error::InvalidInput("never valid".into())),
                _ => Ok(()),
            }
        })
        .await;
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["flaky"]);
    }
}
