//! Pushes warehouse stock to Amazon (`flexbridge::inventory::pusher`).
//!
//! - SQS (`InventoryPushQueue`, the fast path): each message names a location whose stock
//!   changed; its pending SKUs are pushed within seconds. A location whose push hit Amazon
//!   failures (SKUs left pending) is a batch item failure, so SQS tries again.
//! - Schedule (`InventoryPushSchedule`, the safety net): every location's pending SKUs, then
//!   reconciliation when due (`inventory_reconcile_minutes`). A run that left SKUs pending
//!   because Amazon failed returns an error, so it looks failed to CloudWatch.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use flexbridge::inventory::pusher::{PushReport, Pusher};
use flexbridge::inventory::{reconcile, Nudge};
use flexbridge::retry::Deadline;
use flexbridge::runtime::{handle_sqs_batch, Function, Invocation, SqsConsumer};
use flexbridge::{Env, Error, Result};
use serde_json::{json, Value};

pub struct InventoryPusher {
    pub pusher: Pusher,
    consumer: SqsConsumer,
}

impl InventoryPusher {
    pub async fn from_env(env: &Env) -> Result<Self> {
        Ok(Self {
            pusher: Pusher::from_env(env).await?,
            consumer: SqsConsumer::from_env(env).await?,
        })
    }
}

fn failed(report: &PushReport) -> bool {
    report.failed_calls() > 0 || report.deferred() > 0 && !report.dry_run
}

#[async_trait]
impl Function for InventoryPusher {
    async fn invoke(&self, payload: Value, inv: Invocation) -> Result<Value> {
        let deadline = Some(Deadline::at_system_time(inv.deadline));
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)?;
            // One push per location, however many nudges the batch holds.
            let done: Mutex<HashMap<String, bool>> = Mutex::new(HashMap::new());
            let done = &done;
            let response = handle_sqs_batch(
                &self.consumer,
                event,
                "inventory push nudge",
                1,
                |m: aws_lambda_events::sqs::SqsMessage| async move {
                    let nudge: Nudge = serde_json::from_str(m.body.as_deref().unwrap_or(""))
                        .map_err(|e| Error::InvalidInput(format!("not an inventory nudge: {e}")))?;
                    let lag = flexbridge::runtime::message_age_seconds(&m);
                    let location = nudge.location_id.clone();
                    let known = done.lock().expect("lock").get(&nudge.location_id).copied();
                    let ok = match known {
                        Some(ok) => ok,
                        None => {
                            let report = self
                                .pusher
                                .push(Some(std::slice::from_ref(&nudge.location_id)), deadline)
                                .await?;
                            tracing::info!(report = %json!(report), "inventory push (fast path)");
                            let ok = !failed(&report);
                            done.lock().expect("lock").insert(nudge.location_id, ok);
                            ok
                        }
                    };
                    if ok {
                        // From the stock change (the nudge was sent with it) to Amazon's answer.
                        if let Some(lag) = lag {
                            self.pusher.metrics.put(
                                flexbridge::metrics::names::INVENTORY_PUSH_LAG,
                                lag,
                                flexbridge::metrics::Unit::Seconds,
                                &[("LocationId", &location)],
                            );
                        }
                        Ok(())
                    } else {
                        Err(Error::Transient {
                            message: "Amazon failed some updates; they stay pending".into(),
                            after: None,
                        })
                    }
                },
            )
            .await;
            return Ok(serde_json::to_value(response)?);
        }
        let report = self.pusher.push(None, deadline).await?;
        tracing::info!(report = %json!(report), "inventory push (sweep)");
        let reconciled = if reconcile::due(&self.pusher).await? {
            let r = reconcile::reconcile(&self.pusher, deadline).await?;
            tracing::info!(report = %json!(r), "inventory reconciliation");
            Some(r)
        } else {
            None
        };
        let reconcile_failed = reconciled.as_ref().is_some_and(|r| {
            r.locations.iter().any(|l| l.failed_calls > 0) || r.push.as_ref().is_some_and(failed)
        });
        if failed(&report) || reconcile_failed {
            return Err(Error::Transient {
                message: format!(
                    "inventory push left work for the next run: {} failed calls, {} SKUs pending",
                    report.failed_calls(),
                    report.deferred()
                ),
                after: None,
            });
        }
        Ok(json!({"push": report, "reconcile": reconciled}))
    }
}
