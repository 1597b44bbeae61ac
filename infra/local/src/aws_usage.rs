//! What the functions' AWS calls would be billed for: every call through the
//! [`AwsFaultProxy`](crate::aws_faults::AwsFaultProxy) (faults at rate 0 are fine) is tallied by
//! service, operation and resource (table and index, queue, bucket, bus, secret), with its
//! request and response sizes and the units AWS bills for it.
//!
//! moto answers `ReturnConsumedCapacity` with fixed figures (1.0 per write, 0.5 per read,
//! whatever the item size), so DynamoDB units come from the item sizes instead, by AWS's rules:
//! a write is 1 WRU per 1 KB of the item (the larger of before and after: an `UpdateItem` or
//! `DeleteItem` without `ReturnValues` is sent on with `ALL_NEW`/`ALL_OLD` to see the item, and
//! the SDK ignores the extra `Attributes`), a read is 1 RRU per 4 KB of the items read
//! (summed over a Query or Scan page, per item for a batch), half that eventually consistent,
//! transactions twice. A write also writes each GSI as AWS documents it ("Provisioned throughput
//! considerations for global secondary indexes"), by the index's projection: nothing when the
//! item is in the index neither before nor after, a put or a delete when it enters or leaves it,
//! a delete plus a put when an index key changes, one write when only projected attributes
//! change, each of the size of the projected entry (table and index keys plus what `ALL` or
//! `INCLUDE` project), at least 1 WRU. A `PutItem` without `ReturnValues` is sent on with
//! `ALL_OLD` to see the item before; where the item before is unknown (`UpdateItem`,
//! transactions, batches) an update that names an index key counts as delete plus put (an upper
//! bound).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::aws_faults::Service;

/// Where one call's units go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UsageKey {
    pub service: Service,
    /// `X-Amz-Target` after the dot (JSON protocols); S3: `PUT`, `GET`, `HEAD`, `LIST`, `DELETE`, `POST`.
    pub operation: String,
    /// Table (`table/index` for a GSI), queue name, bucket, event bus or secret.
    pub resource: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub requests: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// SQS: 64 KB chunks of the request (each one a billed request); EventBridge: 64 KB chunks
    /// of the entries (each one a billed event).
    pub billed_requests: u64,
    /// EventBridge entries, SQS batch entries.
    pub entries: u64,
    pub read_units: f64,
    pub write_units: f64,
}

/// Every tally so far.
pub type Usage = BTreeMap<UsageKey, Tally>;

/// What a GSI copies from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    All,
    KeysOnly,
    /// These non-key attributes besides the keys.
    Include(Vec<String>),
}

/// One global secondary index, as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    /// Its key attributes: partition key first, then the sort key if any.
    pub keys: Vec<String>,
    pub projection: Projection,
}

/// A table's key attributes and its global secondary indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableIndexes {
    pub table_keys: Vec<String>,
    pub indexes: Vec<Index>,
}

/// Global secondary indexes by table name.
pub type Indexes = BTreeMap<String, TableIndexes>;

impl Index {
    /// The entry `item` has in this index: `None` when the item lacks the index's partition key
    /// (a sparse index leaves it out).
    fn entry(&self, table_keys: &[String], item: &Value) -> Option<serde_json::Map<String, Value>> {
        let attrs = item.as_object()?;
        attrs.get(self.keys.first()?)?;
        let keep = |name: &str| {
            table_keys.iter().any(|k| k == name)
                || self.keys.iter().any(|k| k == name)
                || match &self.projection {
                    Projection::All => true,
                    Projection::KeysOnly => false,
                    Projection::Include(names) => names.iter().any(|n| n == name),
                }
        };
        Some(
            attrs
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn key_of(&self, entry: &serde_json::Map<String, Value>) -> Vec<Option<Value>> {
        self.keys.iter().map(|k| entry.get(k).cloned()).collect()
    }

    /// Write units on this index of a write that turns `before` into `after` (`Value::Null`:
    /// no item).
    pub fn write_units(&self, table_keys: &[String], before: &Value, after: &Value) -> f64 {
        let size =
            |e: &serde_json::Map<String, Value>| write_units(item_size(&Value::Object(e.clone())));
        match (
            self.entry(table_keys, before),
            self.entry(table_keys, after),
        ) {
            (None, None) => 0.0,
            (Some(old), None) => size(&old),
            (None, Some(new)) => size(&new),
            (Some(old), Some(new)) if self.key_of(&old) != self.key_of(&new) => {
                size(&old) + size(&new)
            }
            (Some(old), Some(new)) if old == new => 0.0,
            (Some(_), Some(new)) => size(&new),
        }
    }

    /// Write units of an update whose item before is unknown: `after` its item after (`None`:
    /// unknown too, as in a transaction), `named` the attributes its expressions name.
    fn update_units(&self, table_keys: &[String], after: Option<&Value>, named: &[String]) -> f64 {
        let touches_key = self.keys.iter().any(|k| named.contains(k));
        let touches_projected = match &self.projection {
            Projection::All => true,
            Projection::KeysOnly => false,
            Projection::Include(names) => names.iter().any(|n| named.contains(n)),
        };
        let Some(after) = after else {
            // Neither side known: a key named is a delete plus a put at worst.
            return if touches_key {
                2.0
            } else if touches_projected {
                1.0
            } else {
                0.0
            };
        };
        match self.entry(table_keys, after) {
            // Left the index (a REMOVE of its key), or never in it.
            None if touches_key => 1.0,
            None => 0.0,
            Some(new) => {
                let units = write_units(item_size(&Value::Object(new)));
                if touches_key {
                    2.0 * units
                } else if touches_projected {
                    units
                } else {
                    0.0
                }
            }
        }
    }
}

/// The attribute names an update's expressions name (`#x` resolved through
/// `ExpressionAttributeNames`).
fn named_attributes(req: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["UpdateExpression", "ConditionExpression"] {
        let Some(expr) = req[field].as_str() else {
            continue;
        };
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#')) {
            if let Some(alias) = word.strip_prefix('#') {
                if let Some(n) = req["ExpressionAttributeNames"][format!("#{alias}")].as_str() {
                    out.push(n.to_string());
                }
            } else if !word.is_empty() {
                out.push(word.to_string());
            }
        }
    }
    out
}

const KB: f64 = 1024.0;

/// DynamoDB's size of an item: attribute names plus values (strings and binaries by length,
/// numbers about one byte per two digits plus one, 1 for a boolean or null, 3 plus a byte per
/// element for a list or map).
pub fn item_size(item: &Value) -> u64 {
    match item {
        Value::Object(attrs) => attrs
            .iter()
            .map(|(k, v)| k.len() as u64 + value_size(v))
            .sum(),
        _ => 0,
    }
}

fn value_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        ("B", Value::String(b)) => (b.len() as u64 * 3).div_ceil(4),
        ("N", Value::String(n)) => (n.trim_start_matches('-').len() as u64).div_ceil(2) + 1,
        ("BOOL" | "NULL", _) => 1,
        ("SS" | "NS" | "BS", Value::Array(xs)) => xs
            .iter()
            .map(|x| x.as_str().map_or(0, |s| s.len() as u64))
            .sum(),
        ("L", Value::Array(xs)) => 3 + xs.iter().map(|x| 1 + value_size(x)).sum::<u64>(),
        ("M", Value::Object(_)) => {
            3 + item_size(inner) + inner.as_object().map_or(0, |o| o.len() as u64)
        }
        _ => 0,
    }
}

fn write_units(bytes: u64) -> f64 {
    (bytes as f64 / KB).ceil().max(1.0)
}

fn read_units(bytes: u64, consistent: bool) -> f64 {
    let units = (bytes as f64 / (4.0 * KB)).ceil().max(1.0);
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// The request as it is sent on: `UpdateItem` without `ReturnValues` asks for the item after,
/// `PutItem`/`DeleteItem` for the item before, so sizes and index changes are known. `None`: sent unchanged.
pub fn rewrite_request(service: Service, operation: &str, body: &[u8]) -> Option<Vec<u8>> {
    if service != Service::DynamoDb {
        return None;
    }
    let want = match operation {
        "UpdateItem" => "ALL_NEW",
        "PutItem" | "DeleteItem" => "ALL_OLD",
        _ => return None,
    };
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let set = v.get("ReturnValues").and_then(Value::as_str);
    if set.is_some_and(|s| s != "NONE") {
        return None;
    }
    v["ReturnValues"] = Value::from(want);
    serde_json::to_vec(&v).ok()
}

/// The (key, units) one call adds. `request`/`response` are the bodies as sent and received.
pub fn tally_call(
    service: Service,
    operation: &str,
    path: &str,
    request: &[u8],
    response: &[u8],
    indexes: &Indexes,
) -> Vec<(UsageKey, Tally)> {
    let json = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap_or(Value::Null);
    let base = Tally {
        requests: 1,
        request_bytes: request.len() as u64,
        response_bytes: response.len() as u64,
        ..Default::default()
    };
    let key = |resource: &str| UsageKey {
        service,
        operation: operation.to_string(),
        resource: resource.to_string(),
    };
    match service {
        Service::DynamoDb => dynamodb(
            operation,
            &json(request),
            &json(response),
            indexes,
            base,
            &key,
        ),
        Service::Sqs => {
            let req = json(request);
            let queue = req["QueueUrl"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("-")
                .to_string();
            let entries = req["Entries"].as_array().map_or(1, |e| e.len() as u64);
            vec![(
                key(&queue),
                Tally {
                    billed_requests: (request.len() as u64).div_ceil(64 * 1024).max(1),
                    entries,
                    ..base
                },
            )]
        }
        Service::EventBridge => {
            let req = json(request);
            let mut t = base;
            let bus = req["Entries"][0]["EventBusName"]
                .as_str()
                .unwrap_or("default")
                .rsplit('/')
                .next()
                .unwrap_or("default")
                .to_string();
            for e in req["Entries"].as_array().into_iter().flatten() {
                let size = e.to_string().len() as u64;
                t.entries += 1;
                t.billed_requests += size.div_ceil(64 * 1024).max(1);
            }
            vec![(key(&bus), t)]
        }
        Service::SecretsManager => {
            let req = json(request);
            let id = req["SecretId"].as_str().unwrap_or("-");
            let name = id.rsplit(':').next().unwrap_or(id);
            vec![(key(name), base)]
        }
        Service::S3 => {
            let bucket = path
                .trim_start_matches('/')
                .split(['/', '?'])
                .next()
                .unwrap_or("-")
                .to_string();
            vec![(key(&bucket), base)]
        }
    }
}

fn dynamodb(
    operation: &str,
    req: &Value,
    resp: &Value,
    indexes: &Indexes,
    base: Tally,
    key: &dyn Fn(&str) -> UsageKey,
) -> Vec<(UsageKey, Tally)> {
    let consistent = req["ConsistentRead"].as_bool().unwrap_or(false);
    let table = req["TableName"].as_str().unwrap_or("-").to_string();
    let mut out: Vec<(UsageKey, Tally)> = Vec::new();
    // The first entry carries the request itself; the others only units.
    let mut add = |resource: &str, read: f64, write: f64| {
        let t = if out.is_empty() {
            Tally {
                read_units: read,
                write_units: write,
                ..base.clone()
            }
        } else {
            Tally {
                read_units: read,
                write_units: write,
                ..Default::default()
            }
        };
        out.push((key(resource), t));
    };
    // A write of `bytes` to `table` (transactions: `factor` 2), and its writes on each GSI:
    // `index_units` gives them per index.
    let write = |table: &str,
                 bytes: u64,
                 factor: f64,
                 index_units: &dyn Fn(&Index, &[String]) -> f64,
                 add: &mut dyn FnMut(&str, f64, f64)| {
        add(table, 0.0, write_units(bytes) * factor);
        if let Some(t) = indexes.get(table) {
            for index in &t.indexes {
                let units = index_units(index, &t.table_keys) * factor;
                if units > 0.0 {
                    add(&format!("{table}/{}", index.name), 0.0, units);
                }
            }
        }
    };
    // A failed request (a condition not met) writes no index.
    let failed = resp.get("__type").is_some();
    match operation {
        "GetItem" => add(
            &table,
            read_units(item_size(&resp["Item"]), consistent),
            0.0,
        ),
        "Query" | "Scan" => {
            let bytes: u64 = resp["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(item_size)
                .sum();
            let resource = match req["IndexName"].as_str() {
                Some(i) => format!("{table}/{i}"),
                None => table.clone(),
            };
            add(&resource, read_units(bytes, consistent), 0.0);
        }
        "PutItem" => {
            let item = &req["Item"];
            let before = &resp["Attributes"];
            write(
                &table,
                item_size(item).max(item_size(before)),
                1.0,
                &|i, keys| {
                    if failed {
                        0.0
                    } else {
                        i.write_units(keys, before, item)
                    }
                },
                &mut add,
            );
        }
        "DeleteItem" => {
            let before = &resp["Attributes"];
            write(
                &table,
                item_size(before).max(item_size(&req["Key"])),
                1.0,
                &|i, keys| {
                    if failed {
                        0.0
                    } else {
                        i.write_units(keys, before, &Value::Null)
                    }
                },
                &mut add,
            );
        }
        "UpdateItem" => {
            let after = &resp["Attributes"];
            let named = named_attributes(req);
            write(
                &table,
                item_size(after).max(item_size(&req["Key"])),
                1.0,
                &|i, keys| {
                    if failed {
                        0.0
                    } else {
                        i.update_units(keys, Some(after), &named)
                    }
                },
                &mut add,
            );
        }
        "BatchWriteItem" => {
            for (t, reqs) in req["RequestItems"].as_object().into_iter().flatten() {
                for r in reqs.as_array().into_iter().flatten() {
                    // The item before is unknown: a put counts as entering each index it is in.
                    let (item, deleted) = if r["PutRequest"].is_object() {
                        (&r["PutRequest"]["Item"], false)
                    } else {
                        (&r["DeleteRequest"]["Key"], true)
                    };
                    write(
                        t,
                        item_size(item),
                        1.0,
                        &|i, keys| {
                            if deleted {
                                0.0
                            } else {
                                i.write_units(keys, &Value::Null, item)
                            }
                        },
                        &mut add,
                    );
                }
            }
        }
        "BatchGetItem" => {
            for (t, items) in resp["Responses"].as_object().into_iter().flatten() {
                let consistent = req["RequestItems"][t]["ConsistentRead"]
                    .as_bool()
                    .unwrap_or(false);
                let units: f64 = items
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| read_units(item_size(i), consistent))
                    .sum();
                add(t, units, 0.0);
            }
        }
        "TransactWriteItems" => {
            for item in req["TransactItems"].as_array().into_iter().flatten() {
                for (kind, what) in item.as_object().into_iter().flatten() {
                    let t = what["TableName"].as_str().unwrap_or("-");
                    // An update's item after it is not returned here: its key and new values.
                    match kind.as_str() {
                        "Put" => {
                            let item = &what["Item"];
                            write(
                                t,
                                item_size(item),
                                2.0,
                                &|i, keys| i.write_units(keys, &Value::Null, item),
                                &mut add,
                            );
                        }
                        "Update" => {
                            let named = named_attributes(what);
                            write(
                                t,
                                item_size(&what["Key"])
                                    + item_size(&what["ExpressionAttributeValues"]),
                                2.0,
                                &|i, keys| i.update_units(keys, None, &named),
                                &mut add,
                            );
                        }
                        // ConditionCheck, Delete: the table's units; an index entry the
                        // delete removes is not known here.
                        _ => write(
                            t,
                            item_size(&what["Key"]) + item_size(&what["ExpressionAttributeValues"]),
                            2.0,
                            &|_, _| 0.0,
                            &mut add,
                        ),
                    }
                }
            }
        }
        "TransactGetItems" => {
            for (i, r) in resp["Responses"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let t = req["TransactItems"][i]["Get"]["TableName"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string();
                add(&t, 2.0 * read_units(item_size(&r["Item"]), true), 0.0);
            }
        }
        _ => add(&table, 0.0, 0.0),
    }
    if out.is_empty() {
        out.push((key(&table), base));
    }
    out
}

/// Adds one call's tallies to `usage`.
pub fn record(usage: &mut Usage, tallies: Vec<(UsageKey, Tally)>) {
    for (k, t) in tallies {
        let e = usage.entry(k).or_default();
        e.requests += t.requests;
        e.request_bytes += t.request_bytes;
        e.response_bytes += t.response_bytes;
        e.billed_requests += t.billed_requests;
        e.entries += t.entries;
        e.read_units += t.read_units;
        e.write_units += t.write_units;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn units_follow_the_item_sizes() {
        let small = json!({"pk": {"S": "a"}, "n": {"N": "12"}});
        // "pk" + "a", "n" + 12 (two digits: 1 byte, plus 1).
        assert_eq!(item_size(&small), (2 + 1) + (1 + 2));
        let big = json!({"pk": {"S": "a"}, "body": {"S": "x".repeat(2000)}});
        let mut indexes = Indexes::new();
        indexes.insert(
            "t".into(),
            TableIndexes {
                table_keys: vec!["pk".into()],
                indexes: vec![Index {
                    name: "gsi1".into(),
                    keys: vec!["body".into()],
                    projection: Projection::All,
                }],
            },
        );
        let req = json!({"TableName": "t", "Item": big}).to_string();
        let got = tally_call(
            Service::DynamoDb,
            "PutItem",
            "/",
            req.as_bytes(),
            b"{}",
            &indexes,
        );
        // 2,007 bytes: 2 WRU on the table and 2 on the index its key is in.
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].0.resource.as_str(), got[0].1.write_units),
            ("t", 2.0)
        );
        assert_eq!(
            (got[1].0.resource.as_str(), got[1].1.write_units),
            ("t/gsi1", 2.0)
        );
        assert_eq!(got[1].1.requests, 0);
        let q = json!({"TableName": "t", "IndexName": "gsi1"}).to_string();
        let items = json!({"Items": [big.clone(), big.clone(), big]}).to_string();
        let got = tally_call(
            Service::DynamoDb,
            "Query",
            "/",
            q.as_bytes(),
            items.as_bytes(),
            &indexes,
        );
        // 6,021 bytes eventually consistent: 2 × 4 KB halved.
        assert_eq!(
            (got[0].0.resource.as_str(), got[0].1.read_units),
            ("t/gsi1", 1.0)
        );
        let send = json!({"QueueUrl": "http://x/1/q", "Entries": [{}, {}]}).to_string();
        let got = tally_call(
            Service::Sqs,
            "SendMessageBatch",
            "/",
            send.as_bytes(),
            b"{}",
            &indexes,
        );
        assert_eq!(
            (
                got[0].0.resource.as_str(),
                got[0].1.billed_requests,
                got[0].1.entries
            ),
            ("q", 1, 2)
        );
        assert_eq!(
            rewrite_request(Service::DynamoDb, "UpdateItem", br#"{"TableName":"t"}"#),
            Some(br#"{"ReturnValues":"ALL_NEW","TableName":"t"}"#.to_vec())
        );
        assert_eq!(
            rewrite_request(Service::DynamoDb, "PutItem", br#"{"TableName":"t"}"#),
            Some(br#"{"ReturnValues":"ALL_OLD","TableName":"t"}"#.to_vec())
        );
        assert_eq!(
            rewrite_request(
                Service::DynamoDb,
                "UpdateItem",
                br#"{"ReturnValues":"ALL_OLD"}"#
            ),
            None
        );
    }

    /// A shipment-like item of 3,000 bytes under a KEYS_ONLY index on `gp`/`gs`, and the same
    /// index projecting `stage` (INCLUDE), worked out by hand.
    #[test]
    fn index_writes_follow_the_projection_and_key_changes() {
        let keys = vec!["pk".to_string(), "sk".to_string()];
        let index = |projection| Index {
            name: "by_stage".into(),
            keys: vec!["gp".into(), "gs".into()],
            projection,
        };
        let item = |gs: &str| {
            json!({"pk": {"S": "S#1"}, "sk": {"S": "D"}, "gp": {"S": "STAGE#packed"},
                   "gs": {"S": gs}, "stage": {"S": "packed"}, "doc": {"S": "x".repeat(2950)}})
        };
        let (t1, t2) = (
            item("2026-12-07T10:00:00.000Z#1"),
            item("2026-12-07T10:05:00.000Z#1"),
        );
        // The table: 2+3 + 2+1 + 2+12 + 2+26 + 5+6 + 3+2950 = 3,014 bytes = 3 WRU.
        assert_eq!(item_size(&t1), 3014);
        let keys_only = index(Projection::KeysOnly);
        // The entry: pk, sk, gp, gs = 5 + 3 + 14 + 28 = 50 bytes = 1 WRU.
        assert_eq!(keys_only.write_units(&keys, &Value::Null, &t1), 1.0);
        // Sort key changed: delete the old entry plus put the new one.
        assert_eq!(keys_only.write_units(&keys, &t1, &t2), 2.0);
        // Same keys, only `doc` changed: nothing projected changed, nothing written.
        let mut t1b = t1.clone();
        t1b["doc"] = json!({"S": "y".repeat(2950)});
        assert_eq!(keys_only.write_units(&keys, &t1, &t1b), 0.0);
        // ALL projects `doc` too: one write of the whole item.
        assert_eq!(index(Projection::All).write_units(&keys, &t1, &t1b), 3.0);
        assert_eq!(index(Projection::All).write_units(&keys, &t1, &t2), 6.0);
        let include = index(Projection::Include(vec!["stage".into()]));
        assert_eq!(include.write_units(&keys, &t1, &t1b), 0.0);
        // Out of a sparse index: a delete; never in it: nothing.
        let mut gone = t2.clone();
        gone.as_object_mut().unwrap().remove("gp");
        assert_eq!(keys_only.write_units(&keys, &t2, &gone), 1.0);
        assert_eq!(keys_only.write_units(&keys, &Value::Null, &gone), 0.0);

        // Through a call: PutItem with its item before (as ALL_OLD brings it back).
        let mut indexes = Indexes::new();
        indexes.insert(
            "T".into(),
            TableIndexes {
                table_keys: keys.clone(),
                indexes: vec![keys_only],
            },
        );
        let req = json!({"TableName": "T", "Item": t2}).to_string();
        let resp = json!({"Attributes": t1}).to_string();
        let got = tally_call(
            Service::DynamoDb,
            "PutItem",
            "/",
            req.as_bytes(),
            resp.as_bytes(),
            &indexes,
        );
        let units: Vec<(&str, f64)> = got
            .iter()
            .map(|(k, t)| (k.resource.as_str(), t.write_units))
            .collect();
        assert_eq!(units, [("T", 3.0), ("T/by_stage", 2.0)]);
        // A failed condition: the table's units, no index write.
        let failed = json!({"__type": "ConditionalCheckFailedException"}).to_string();
        let got = tally_call(
            Service::DynamoDb,
            "PutItem",
            "/",
            req.as_bytes(),
            failed.as_bytes(),
            &indexes,
        );
        assert_eq!(got.len(), 1);
        // An update naming the index key, item after known: delete plus put.
        let upd = json!({"TableName": "T", "UpdateExpression": "SET #g = :g",
                         "ExpressionAttributeNames": {"#g": "gs"}})
        .to_string();
        let resp = json!({"Attributes": item("2026-12-07T11:00:00.000Z#1")}).to_string();
        let got = tally_call(
            Service::DynamoDb,
            "UpdateItem",
            "/",
            upd.as_bytes(),
            resp.as_bytes(),
            &indexes,
        );
        assert_eq!(got[1].1.write_units, 2.0);
    }
}
