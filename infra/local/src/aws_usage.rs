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
//! transactions twice; a write also writes every GSI whose partition key the item has (an
//! upper bound: AWS skips an index whose keys and projected attributes did not change).

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

/// Global secondary indexes by table name: (index name, its partition key attribute).
pub type Indexes = BTreeMap<String, Vec<(String, String)>>;

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

/// The request as it is sent on: `UpdateItem`/`DeleteItem` without `ReturnValues` ask for the
/// item after/before, so its size is known. `None`: sent unchanged.
pub fn rewrite_request(service: Service, operation: &str, body: &[u8]) -> Option<Vec<u8>> {
    if service != Service::DynamoDb {
        return None;
    }
    let want = match operation {
        "UpdateItem" => "ALL_NEW",
        "DeleteItem" => "ALL_OLD",
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
    // A write of `item` to `table` (transactions: `factor` 2), and to each GSI it is in.
    let write = |table: &str,
                 item: &Value,
                 bytes: u64,
                 factor: f64,
                 add: &mut dyn FnMut(&str, f64, f64)| {
        let units = write_units(bytes) * factor;
        add(table, 0.0, units);
        for (index, pk) in indexes.get(table).into_iter().flatten() {
            if item.get(pk).is_some() {
                add(&format!("{table}/{index}"), 0.0, units);
            }
        }
    };
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
        "PutItem" => write(&table, &req["Item"], item_size(&req["Item"]), 1.0, &mut add),
        "UpdateItem" | "DeleteItem" => {
            let after = &resp["Attributes"];
            let bytes = item_size(after).max(item_size(&req["Key"]));
            let item = if after.is_object() {
                after
            } else {
                &req["Key"]
            };
            write(&table, item, bytes, 1.0, &mut add);
        }
        "BatchWriteItem" => {
            for (t, reqs) in req["RequestItems"].as_object().into_iter().flatten() {
                for r in reqs.as_array().into_iter().flatten() {
                    let item = if r["PutRequest"].is_object() {
                        &r["PutRequest"]["Item"]
                    } else {
                        &r["DeleteRequest"]["Key"]
                    };
                    write(t, item, item_size(item), 1.0, &mut add);
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
                    let (doc, bytes) = match kind.as_str() {
                        "Put" => (&what["Item"], item_size(&what["Item"])),
                        _ => (
                            &what["Key"],
                            item_size(&what["Key"]) + item_size(&what["ExpressionAttributeValues"]),
                        ),
                    };
                    write(t, doc, bytes, 2.0, &mut add);
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
        indexes.insert("t".into(), vec![("gsi1".into(), "body".into())]);
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
            rewrite_request(
                Service::DynamoDb,
                "UpdateItem",
                br#"{"ReturnValues":"ALL_OLD"}"#
            ),
            None
        );
    }
}
