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
