//! CursorsTable: how far each poller has read Amazon.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | shipments cursor | `CURSOR#shipments#<locationId>` | `<STATUS>` (ACCEPTED, CREATED, CANCELLED) | `at` (RFC 3339 ms) |
//! | returns cursor | `CURSOR#returns#<returnLocationId>` | `<STATUS>` | `at` |
//!
//! Access patterns: get one cursor; advance it (a conditional write that only ever moves it
//! forward, so a slow, older run cannot move it back).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::orders::model::{parse_amazon_time, sort_time};
use crate::store::dynamo::{ddb_error, get_s, is_condition_failed, s};

/// Which stream a cursor follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CursorKind {
    Shipments,
    Returns,
}

impl CursorKind {
    fn as_str(self) -> &'static str {
        match self {
            CursorKind::Shipments => "shipments",
            CursorKind::Returns => "returns",
        }
    }
}

#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn get(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Moves the cursor to `at` unless it is already there or later.
    async fn advance(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

fn pk(kind: CursorKind, location_id: &str) -> String {
    format!("CURSOR#{}#{location_id}", kind.as_str())
}

pub struct DynamoCursorStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCursorStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl CursorStore for DynamoCursorStore {
    async fn get(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(kind, location_id)))
            .key("sk", s(status))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ddb_error("GetItem", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| get_s(i, "at"))
            .and_then(parse_amazon_time))
    }

    async fn advance(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk(kind, location_id)))
            .item("sk", s(status))
            .item("at", s(sort_time(at)))
            .condition_expression("attribute_not_exists(#at) OR #at < :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", s(sort_time(at)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(ddb_error("PutItem", e)),
        }
    }
}

#[derive(Default)]
pub struct MemoryCursorStore {
    map: Mutex<HashMap<(CursorKind, String, String), DateTime<Utc>>>,
}

impl MemoryCursorStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CursorStore for MemoryCursorStore {
    async fn get(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .map
            .lock()
            .expect("cursor lock")
            .get(&(kind, location_id.to_string(), status.to_string()))
            .copied())
    }

    async fn advance(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut map = self.map.lock().expect("cursor lock");
        let e = map
            .entry((kind, location_id.to_string(), status.to_string()))
            .or_insert(at);
        if *e < at {
            *e = at;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_moves_forward() {
        let c = MemoryCursorStore::new();
        let t1 = Utc::now();
        let t0 = t1 - chrono::Duration::minutes(5);
        assert!(c
            .get(CursorKind::Shipments, "L", "ACCEPTED")
            .await
            .unwrap()
            .is_none());
        c.advance(CursorKind::Shipments, "L", "ACCEPTED", t1)
            .await
            .unwrap();
        c.advance(CursorKind::Shipments, "L", "ACCEPTED", t0)
            .await
            .unwrap();
        assert_eq!(
            c.get(CursorKind::Shipments, "L", "ACCEPTED").await.unwrap(),
            Some(t1)
        );
        assert!(c
            .get(CursorKind::Returns, "L", "ACCEPTED")
            .await
            .unwrap()
            .is_none());
    }
}
