//! CursorsTable: how far each poller has read Amazon.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | shipments cursor | `CURSOR#shipments#<locationId>` | `<STATUS>` (one per polled status) | `at` (RFC 3339 ms); while a window is half read: `markAfter`, `markBefore`, `markToken`; `unreadable` (N) |
//! | returns cursor | `CURSOR#returns#<returnLocationId>` | `<STATUS>` | the same |
//! | notifications heard | `CURSOR#notifications#seller` | `HANDLED` | `at`: the publish time of the newest notification of ours handled (`orders::notifications::NotificationClock`) |
//!
//! `at`: everything Amazon changed before it is stored. A poll reads one bounded window
//! (`lastUpdatedAfter` = `at` − overlap, `lastUpdatedBefore` = at most `at` + the window cap)
//! and, after each page it stored, saves where it stands in that window (the mark: the window
//! and Amazon's token for the next page), so a run that stops at its deadline loses no page and
//! the next run goes on from there. Only a window read to its end moves `at` (to the window's
//! end): Amazon documents no order for its pages, so no record's time inside a half-read window
//! is safe to advance to. `unreadable` counts the records without an ID seen under this cursor.
//!
//! Access patterns: read one cursor; save it (a conditional put that never moves `at` back, so
//! a slow, older run cannot undo a newer one's progress).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::shipment::{parse_amazon_time, sort_time};
use crate::store::dynamo::{ddb_error, get_n, get_s, is_condition_failed, n, s};

/// Which stream a cursor follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CursorKind {
    Shipments,
    Returns,
    /// Not a read position: when Amazon's notifications last reached the stack (the order
    /// poller makes one pass per run while they flow).
    Notifications,
}

impl CursorKind {
    fn as_str(self) -> &'static str {
        match self {
            CursorKind::Shipments => "shipments",
            CursorKind::Returns => "returns",
            CursorKind::Notifications => "notifications",
        }
    }
}

/// Where a poll stands inside a window it has not read to the end.
#[derive(Debug, Clone, PartialEq)]
pub struct PageMark {
    /// The window's `lastUpdatedAfter`/`lastUpdatedBefore` (a token is valid only with the
    /// same arguments).
    pub after: DateTime<Utc>,
    pub before: DateTime<Utc>,
    /// Amazon's token for the first page not yet stored.
    pub token: String,
}

/// One cursor as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cursor {
    pub at: Option<DateTime<Utc>>,
    pub mark: Option<PageMark>,
    /// Records without an ID seen under this cursor (they cannot be read back alone).
    pub unreadable: u64,
}

#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn read(&self, kind: CursorKind, location_id: &str, status: &str) -> Result<Cursor>;

    /// Stores `cursor` unless the stored `at` is already later (a newer run got further).
    /// Returns whether it was stored.
    async fn save(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        cursor: &Cursor,
    ) -> Result<bool>;

    async fn get(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        Ok(self.read(kind, location_id, status).await?.at)
    }

    /// Moves the cursor to `at` (dropping any mark) unless it is already there or later.
    async fn advance(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let now = self.read(kind, location_id, status).await?;
        if now.at.is_some_and(|t| t >= at) {
            return Ok(());
        }
        let next = Cursor {
            at: Some(at),
            mark: None,
            unreadable: now.unreadable,
        };
        self.save(kind, location_id, status, &next)
            .await
            .map(|_| ())
    }
}

/// A time as windows and cursors keep it: whole seconds, the precision the SP-API client sends
/// `lastUpdatedAfter`/`lastUpdatedBefore` in, so a window's bounds on the wire are exactly the
/// ones saved in a mark (a token is valid only with the same arguments) and a window's end is
/// never rounded down past records it was meant to include.
pub fn cursor_time(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
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
    async fn read(&self, kind: CursorKind, location_id: &str, status: &str) -> Result<Cursor> {
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
        let Some(item) = out.item.as_ref() else {
            return Ok(Cursor::default());
        };
        let time = |name| get_s(item, name).and_then(parse_amazon_time);
        let mark = match (
            time("markAfter"),
            time("markBefore"),
            get_s(item, "markToken"),
        ) {
            (Some(after), Some(before), Some(token)) => Some(PageMark {
                after,
                before,
                token: token.to_string(),
            }),
            _ => None,
        };
        Ok(Cursor {
            at: time("at"),
            mark,
            unreadable: get_n(item, "unreadable").unwrap_or(0),
        })
    }

    async fn save(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        cursor: &Cursor,
    ) -> Result<bool> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk(kind, location_id)))
            .item("sk", s(status))
            .item("unreadable", n(cursor.unreadable));
        if let Some(m) = &cursor.mark {
            put = put
                .item("markAfter", s(sort_time(m.after)))
                .item("markBefore", s(sort_time(m.before)))
                .item("markToken", s(&m.token));
        }
        put = match cursor.at {
            Some(at) => put
                .item("at", s(sort_time(at)))
                .condition_expression("attribute_not_exists(#at) OR #at <= :at")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":at", s(sort_time(at))),
            None => put
                .condition_expression("attribute_not_exists(#at)")
                .expression_attribute_names("#at", "at"),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(ddb_error("PutItem", e)),
        }
    }
}

#[derive(Default)]
pub struct MemoryCursorStore {
    map: Mutex<HashMap<(CursorKind, String, String), Cursor>>,
}

impl MemoryCursorStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CursorStore for MemoryCursorStore {
    async fn read(&self, kind: CursorKind, location_id: &str, status: &str) -> Result<Cursor> {
        Ok(self
            .map
            .lock()
            .expect("cursor lock")
            .get(&(kind, location_id.to_string(), status.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    async fn save(
        &self,
        kind: CursorKind,
        location_id: &str,
        status: &str,
        cursor: &Cursor,
    ) -> Result<bool> {
        let mut map = self.map.lock().expect("cursor lock");
        let e = map
            .entry((kind, location_id.to_string(), status.to_string()))
            .or_default();
        let allowed = match (e.at, cursor.at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(old), Some(new)) => old <= new,
        };
        if allowed {
            *e = cursor.clone();
        }
        Ok(allowed)
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
