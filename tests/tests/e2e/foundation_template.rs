//! template.yaml is the one truth: it lints (as SAM and as its CloudFormation translation),
//! it declares what the design promises, and the code uses nothing it does not declare.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use flexbridge::config::{keys, prefixes};
use flexbridge_e2e::flexbridge_local::{paths, stack};
use serde_json::{json, Value};

/// The CloudFormation translation of template.yaml, made once per test process.
pub(crate) fn cfn() -> Value {
    static CFN: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    CFN.get_or_init(|| {
        paths::ensure_venv().expect("venv");
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(stack::transform())
            .expect("SAM transform of template.yaml")
    })
    .clone()
}

pub(crate) fn resources_of<'a>(cfn: &'a Value, kind: &str) -> BTreeMap<&'a str, &'a Value> {
    cfn["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(k, r)| (k.as_str(), r))
        .collect()
}

pub(crate) fn logical_of(v: &Value) -> Option<&str> {
    v.get("Ref")
        .and_then(Value::as_str)
        .or_else(|| v.get("Fn::GetAtt").and_then(|g| g[0].as_str()))
}

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn cfn_lint_passes_on_the_template_and_on_its_translation() {
    let translated = cfn();
    let dir = paths::repo_root().join("target/flexbridge-lint");
    std::fs::create_dir_all(&dir).unwrap();
    let cfn_path = dir.join("template.cfn.json");
    std::fs::write(
        &cfn_path,
        serde_json::to_string_pretty(&translated).unwrap(),
    )
    .unwrap();
    let lint = paths::venv().join("bin/cfn-lint");
    for (what, file, extra) in [
        ("template.yaml", paths::template(), vec![]),
        // Parameters only capability functions use are unused until they exist (W2001).
        (
            "its CloudFormation translation",
            cfn_path,
            vec!["--ignore-checks", "W2001"],
        ),
    ] {
        let out = Command::new(&lint)
            .arg(&file)
            .args(&extra)
            .output()
            .expect("run cfn-lint");
        assert!(
            out.status.success(),
            "cfn-lint failed on {what} ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn tables_have_the_designed_keys_and_are_on_demand_with_pitr_and_sse() {
    let cfn = cfn();
    let tables = resources_of(&cfn, "AWS::DynamoDB::Table");
    let expected: BTreeMap<&str, (&[&str], &[&str])> = [
        ("CatalogTable", (&["pk", "sk"][..], &["gsi1"][..])),
        ("LocationsTable", (&["pk", "sk"][..], &[][..])),
        ("SettingsTable", (&["pk", "sk"][..], &[][..])),
        ("ShipmentsTable", (&["pk", "sk"][..], &["by_stage"][..])),
        ("InventoryTable", (&["pk", "sk"][..], &["gsi1"][..])),
        ("IdempotencyTable", (&["id"][..], &[][..])),
        ("CursorsTable", (&["pk", "sk"][..], &[][..])),
    ]
    .into();
    assert_eq!(
        tables.keys().copied().collect::<BTreeSet<_>>(),
        expected.keys().copied().collect()
    );
    for (name, t) in &tables {
        let p = &t["Properties"];
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{name}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{name}"
        );
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{name}");
        let keys: Vec<&str> = p["KeySchema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["AttributeName"].as_str().unwrap())
            .collect();
        assert_eq!(keys, expected[name].0, "{name} key schema");
        let choices = index_choices(p);
        let gsis: Vec<&str> = choices
            .last()
            .unwrap()
            .iter()
            .map(|g| g["IndexName"].as_str().unwrap())
            .collect();
        assert_eq!(gsis, expected[name].1, "{name} indexes");
    }
    let ttl = &tables["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!(
        (ttl["AttributeName"].as_str(), ttl["Enabled"].as_bool()),
        (Some("expiration"), Some(true))
    );
}

#[test]
fn every_queue_has_a_dlq_the_heartbeat_watches_and_a_visibility_timeout_of_six_consumer_timeouts() {
    let cfn = cfn();
    let queues = resources_of(&cfn, "AWS::SQS::Queue");
    let functions = resources_of(&cfn, "AWS::Lambda::Function");
    let mappings = resources_of(&cfn, "AWS::Lambda::EventSourceMapping");
    // The heartbeat reads every DLQ's depth (alert dead_letters, the NeedsAttention alarm).
    let watched = functions["HeartbeatFunction"]["Properties"]["Environment"]["Variables"]
        [keys::DEAD_LETTER_QUEUE_URLS]
        .to_string();
    let main_queues = [
        "UploadsQueue",
        "LabelsQueue",
        "CancellationsQueue",
        "PriceUpdatesQueue",
        "NotificationsQueue",
        "OutboundQueue",
    ];
    for q in main_queues {
        let p = &queues
            .get(q)
            .unwrap_or_else(|| panic!("template declares no {q}"))["Properties"];
        let redrive = &p["RedrivePolicy"];
        let dlq =
            logical_of(&redrive["deadLetterTargetArn"]).unwrap_or_else(|| panic!("{q} has no DLQ"));
        assert!(queues.contains_key(dlq), "{q}: DLQ {dlq} is not a queue");
        let max = redrive["maxReceiveCount"].as_u64().unwrap();
        assert_eq!(
            max,
            u64::from(flexbridge::runtime::MAX_RECEIVES),
            "{q}: maxReceiveCount"
        );
        assert!(
            watched.contains(&format!("{{\"Ref\":\"{dlq}\"}}")),
            "the heartbeat does not read {dlq}: {watched}"
        );
        let vt = p["VisibilityTimeout"].as_u64().unwrap_or(30);
        for m in mappings.values() {
            let mp = &m["Properties"];
            if logical_of(&mp["EventSourceArn"]) != Some(q) {
                continue;
            }
            let f = logical_of(&mp["FunctionName"]).unwrap();
            let timeout = functions[f]["Properties"]["Timeout"].as_u64().unwrap_or(3);
            assert!(
                vt >= 6 * timeout,
                "{q}: VisibilityTimeout {vt} < 6 x {f} Timeout {timeout}"
            );
            assert!(
                mp["FunctionResponseTypes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|t| t == "ReportBatchItemFailures")),
                "{f} on {q} must report batch item failures"
            );
            // Messages that can never succeed are parked in this queue's own DLQ
            // (flexbridge::runtime::SqsConsumer); the SendMessage policy is checked by
            // every_resource_a_function_is_told_about_it_may_also_use.
            let env_dlq = &functions[f]["Properties"]["Environment"]["Variables"]
                [keys::DEAD_LETTER_QUEUE_URL];
            assert_eq!(
                logical_of(env_dlq),
                Some(dlq),
                "{f} consumes {q}: its {} must be !Ref {dlq}",
                keys::DEAD_LETTER_QUEUE_URL
            );
        }
    }
}

/// Rules moto does not enforce: a queue must keep a message for as long as its consumer may
/// retry it (every receive failing, put off by `flexbridge::runtime::retry_delay`, the last
/// one `retry_horizon` after the first) or SQS deletes it unread, silently; and a DLQ must keep
/// it longer than its source queue, because SQS's redrive keeps a message's original enqueue
/// time (AWS SQS developer guide, "Using dead-letter queues": set the DLQ's retention period
/// longer than the source queue's).
#[test]
fn every_queue_keeps_its_messages_longer_than_the_retry_horizon_and_its_dlq_longer_still() {
    use flexbridge::runtime::{retry_horizon, MAX_VISIBILITY};
    const SQS_DEFAULT_RETENTION: u64 = 345_600; // 4 days
    const SQS_MAX_RETENTION: u64 = 1_209_600; // 14 days
    let cfn = cfn();
    let queues = resources_of(&cfn, "AWS::SQS::Queue");
    let retention = |p: &Value| {
        p["MessageRetentionPeriod"]
            .as_u64()
            .unwrap_or(SQS_DEFAULT_RETENTION)
    };
    // A message may wait a visibility timeout before its first receive fails, then the
    // horizon; an hour's margin on top.
    assert!(retry_horizon() < MAX_VISIBILITY * 2);
    let mut checked = 0;
    for (q, r) in &queues {
        let p = &r["Properties"];
        let Some(dlq) = logical_of(&p["RedrivePolicy"]["deadLetterTargetArn"]) else {
            continue;
        };
        checked += 1;
        let vt = p["VisibilityTimeout"].as_u64().unwrap_or(30);
        let needed = retry_horizon().as_secs() + vt + 3600;
        assert!(
            retention(p) >= needed,
            "{q}: MessageRetentionPeriod {} s < {needed} s (retry horizon {:?} + visibility + 1 h)",
            retention(p),
            retry_horizon()
        );
        let dlq_retention = retention(&queues[dlq]["Properties"]);
        assert!(
            dlq_retention > retention(p) && dlq_retention <= SQS_MAX_RETENTION,
            "{dlq}: retention {dlq_retention} s must exceed {q}'s {} s",
            retention(p)
        );
    }
    assert!(checked >= 7, "{checked} queues with a DLQ");
}

/// Every alarm reads a metric the code extracts, on exactly the dimension set it extracts
/// ([Stack]), and the metrics the code extracts without the dashboard are exactly the
/// alarmed ones: each series is $0.30 a month, each alarm $0.10 (BENCHMARKS.md, cost).
#[test]
fn every_alarm_reads_an_extracted_metric_on_the_stack_and_nothing_else_is_extracted() {
    use flexbridge::metrics::{names, Extract, NAMESPACE};
    let cfn = cfn();
    let alarms = resources_of(&cfn, "AWS::CloudWatch::Alarm");
    let mut read = BTreeSet::new();
    for (id, a) in &alarms {
        let p = &a["Properties"];
        let m = p["MetricName"].as_str().unwrap_or_default();
        assert_eq!(p["Namespace"], NAMESPACE, "{id}");
        assert!(
            Extract::Alarmed.covers(m),
            "{id} watches {m}, which the functions do not publish as a metric by default"
        );
        assert_eq!(
            p["Dimensions"],
            json!([{"Name": "Stack", "Value": {"Ref": "AWS::StackName"}}]),
            "{id}: the one dimension set the code extracts is [Stack]"
        );
        assert_eq!(p["Statistic"], "Sum", "{id}");
        assert!(
            p["AlarmActions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| logical_of(t) == Some("AlarmTopic"))),
            "{id}: no action to the AlarmTopic"
        );
        assert!(
            a.get("Condition").is_none(),
            "{id}: every alarm is always on"
        );
        read.insert(m);
    }
    let extracted: BTreeSet<&str> = Extract::Alarmed.names().into_iter().collect();
    assert_eq!(
        read, extracted,
        "alarmed metrics == metrics extracted by default"
    );
    assert_eq!(extracted, names::ALARMED.into_iter().collect());
    assert!(alarms.len() <= 3, "{} alarms", alarms.len());
    assert!(
        extracted.len() <= 3,
        "{} series by default",
        extracted.len()
    );

    // The one alarm on everything a person must act on says where to look, and names every
    // kind its lines can carry.
    let needs = &alarms["NeedsAttentionAlarm"]["Properties"];
    assert_eq!(needs["MetricName"], names::NEEDS_ATTENTION);
    let text = needs["AlarmDescription"].as_str().unwrap();
    for must in ["flexbridge status", "health report", "alerts"] {
        assert!(
            text.contains(must),
            "NeedsAttentionAlarm does not say {must:?}"
        );
    }
    for kind in flexbridge::metrics::Alert::ALL {
        assert!(
            text.contains(kind.as_str()),
            "NeedsAttentionAlarm omits {kind}"
        );
    }
    // The order poll's absence is the failure: missing data breaches.
    let poll = &alarms["OrderPollNotSucceedingAlarm"]["Properties"];
    assert_eq!(poll["MetricName"], names::ORDER_POLLS_SUCCEEDED);
    assert_eq!(poll["TreatMissingData"], "breaching");
    assert_eq!(
        alarms["SpApiThrottlingAlarm"]["Properties"]["MetricName"],
        names::SPAPI_THROTTLES
    );

    // The dimension's value comes from STACK_NAME, which every function gets, and the
    // dashboard switch from the CloudWatchDashboard parameter.
    for (id, f) in resources_of(&cfn, "AWS::Lambda::Function") {
        let vars = &f["Properties"]["Environment"]["Variables"];
        assert_eq!(
            vars[keys::STACK_NAME],
            json!({"Ref": "AWS::StackName"}),
            "{id}"
        );
        assert_eq!(
            vars[keys::METRICS_DASHBOARD],
            json!({"Ref": "CloudWatchDashboard"}),
            "{id}"
        );
    }
}

/// The dashboard ($3 a month, and its series) is off unless the seller turns it on, and the
/// same parameter makes the functions publish what it reads.
#[test]
fn the_dashboard_is_off_by_default_and_on_with_its_metrics() {
    let cfn = cfn();
    let param = &cfn["Parameters"]["CloudWatchDashboard"];
    assert_eq!(param["Default"], "off");
    assert_eq!(param["AllowedValues"], json!(["off", "on"]));
    assert_eq!(
        cfn["Conditions"]["WithDashboard"],
        json!({"Fn::Equals": [{"Ref": "CloudWatchDashboard"}, "on"]})
    );
    for (id, d) in resources_of(&cfn, "AWS::CloudWatch::Dashboard") {
        assert_eq!(d["Condition"], "WithDashboard", "{id}");
    }
    let env = flexbridge::Env::default().with(keys::METRICS_DASHBOARD, "on");
    assert_eq!(
        flexbridge::metrics::Extract::from_env(&env),
        flexbridge::metrics::Extract::WithDashboard
    );
}

/// Every function goes through the one runtime that counts a failed invocation
/// (`flexbridge::runtime::run_lambda`, or the warehouse API's guard calling
/// `runtime::guarded`): the per-function Errors alarms were replaced by that count.
#[test]
fn every_function_counts_its_failed_invocations_and_every_value_name_is_used() {
    use flexbridge::metrics::names;
    let cfn = cfn();
    let root = paths::repo_root();
    let mut problems = Vec::new();
    for (id, f) in resources_of(&cfn, "AWS::Lambda::Function") {
        let Some(dir) = f["Metadata"]["SourceCodeUri"].as_str() else {
            problems.push(format!("{id}: no SourceCodeUri"));
            continue;
        };
        let main = std::fs::read_to_string(root.join(dir).join("src/main.rs")).unwrap();
        let guard =
            std::fs::read_to_string(root.join(dir).join("src/guard.rs")).unwrap_or_default();
        if !main.contains("run_lambda(") && !guard.contains("runtime::guarded(") {
            problems.push(format!(
                "{id}: its failures are not counted (no run_lambda/guarded)"
            ));
        }
    }
    // Every name is emitted somewhere outside metrics.rs (by its constant).
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    rust_files(&root.join("functions"), &mut files);
    let code: String = files
        .iter()
        .filter(|f| {
            let rel = f.strip_prefix(&root).unwrap_or(f);
            !rel.ends_with("metrics.rs")
                && !rel.components().any(|c| c.as_os_str() == "tests")
                && !rel.ends_with("tests.rs")
        })
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let constants = std::fs::read_to_string(root.join("shared/src/metrics.rs")).unwrap();
    for name in names::ALL {
        let constant = constants
            .lines()
            .find(|l| l.contains(&format!("&str = \"{name}\"")))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(|c| c.trim_end_matches(':').to_string())
            .unwrap_or_else(|| panic!("{name}: no constant"));
        // NeedsAttention is counted through `Metrics::alert`.
        let used = if name == names::NEEDS_ATTENTION {
            code.contains(".alert(")
        } else {
            code.contains(&constant)
        };
        if !used {
            problems.push(format!("metric {name} ({constant}) is emitted nowhere"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_bucket_notifies_the_uploads_queue_for_exactly_the_inbound_prefixes() {
    let cfn = cfn();
    let bucket = &resources_of(&cfn, "AWS::S3::Bucket")["UploadsBucket"]["Properties"];
    let mut declared = BTreeSet::new();
    for c in bucket["NotificationConfiguration"]["QueueConfigurations"]
        .as_array()
        .unwrap()
    {
        assert_eq!(logical_of(&c["Queue"]), Some("UploadsQueue"));
        assert_eq!(c["Event"], "s3:ObjectCreated:*");
        for r in c["Filter"]["S3Key"]["Rules"].as_array().unwrap() {
            if r["Name"] == "prefix" {
                declared.insert(r["Value"].as_str().unwrap().to_string());
            }
        }
    }
    let inbound: BTreeSet<String> = prefixes::INBOUND.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        declared, inbound,
        "notification prefixes vs flexbridge::config::prefixes::INBOUND"
    );
    let outputs = cfn["Outputs"]["OutputPrefixes"]["Value"].as_str().unwrap();
    for p in prefixes::OUTBOUND {
        assert!(
            outputs.split(',').any(|o| o == *p),
            "outbound prefix {p} is not in the OutputPrefixes output"
        );
    }
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    assert!(bucket["BucketEncryption"].is_object());
    assert_eq!(
        bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"],
        true
    );
    let policy = resources_of(&cfn, "AWS::S3::BucketPolicy");
    assert!(
        policy.values().any(|p| p["Properties"]["PolicyDocument"]
            .to_string()
            .contains("aws:SecureTransport")),
        "the bucket must refuse plain HTTP"
    );
}

/// Names of `flexbridge::config::keys` constants, by value.
fn key_names() -> BTreeSet<&'static str> {
    [
        keys::CATALOG_TABLE,
        keys::LOCATIONS_TABLE,
        keys::SETTINGS_TABLE,
        keys::SHIPMENTS_TABLE,
        keys::INVENTORY_TABLE,
        keys::IDEMPOTENCY_TABLE,
        keys::CURSORS_TABLE,
        keys::UPLOADS_QUEUE_URL,
        keys::LABELS_QUEUE_URL,
        keys::CANCELLATIONS_QUEUE_URL,
        keys::PRICE_UPDATES_QUEUE_URL,
        keys::NOTIFICATIONS_QUEUE_URL,
        keys::OUTBOUND_QUEUE_URL,
        keys::BUCKET_NAME,
        keys::EVENT_BUS_NAME,
        keys::FLEXBRIDGE_SECRET_ARN,
        keys::WAREHOUSE_ACCEPT_V1_SIGNATURES,
        keys::WEBHOOK_URL,
        keys::SPAPI_REGION,
        keys::MARKETPLACE_ID,
        keys::SELLER_ID,
        keys::DEAD_LETTER_QUEUE_URL,
        keys::DEAD_LETTER_QUEUE_URLS,
        keys::STACK_NAME,
        keys::METRICS_DASHBOARD,
    ]
    .into()
}

#[test]
fn every_setting_a_function_crate_reads_is_in_its_template_environment() {
    let cfn = cfn();
    let root = paths::repo_root();
    let names = key_names();
    let mut problems = Vec::new();
    for (logical, f) in resources_of(&cfn, "AWS::Lambda::Function") {
        let Some(dir) = f["Metadata"]["SourceCodeUri"].as_str() else {
            continue;
        };
        let declared: BTreeSet<&str> = f["Properties"]["Environment"]["Variables"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut files = Vec::new();
        rust_files(&root.join(dir).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in &names {
                let used = text.contains(&format!("keys::{name}"))
                    || text.contains(&format!("\"{name}\""));
                if used && !declared.contains(name) {
                    problems.push(format!(
                        "{} reads {name}, but {logical} in template.yaml does not set it",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A table's global secondary index lists: one, or under `Fn::If` the list with the condition
/// true, then the one with it false (the parameters' defaults: last).
fn index_choices(p: &Value) -> Vec<Vec<Value>> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let gsis = &p["GlobalSecondaryIndexes"];
    match gsis.get("Fn::If") {
        Some(choice) => vec![list(&choice[1]), list(&choice[2])],
        None => vec![list(gsis)],
    }
}

/// CloudFormation adds or deletes one GSI per table update ("If you do both in the same update
/// (for example, by changing the index's logical ID), the update fails", AWS::DynamoDB::Table,
/// GlobalSecondaryIndexes; DynamoDB's UpdateTable: "You can create or delete only one global
/// secondary index per UpdateTable operation"), and cannot change an index's keys or projection
/// in place. moto does neither check. The ShipmentsTable's move from `gsi1` (everything
/// projected) to `by_stage` (keys only) is therefore two deploys (docs/deploy.md, section 10):
/// last release → `KeepShipmentsGsi1=true` → the default; each step adds or deletes one index
/// and leaves every index it keeps as it was.
#[test]
fn the_shipments_index_upgrade_changes_one_index_per_deploy() {
    let cfn = cfn();
    let table = &resources_of(&cfn, "AWS::DynamoDB::Table")["ShipmentsTable"]["Properties"];
    let last_release = vec![json!({
        "IndexName": "gsi1",
        "KeySchema": [
            {"AttributeName": "gsi1pk", "KeyType": "HASH"},
            {"AttributeName": "gsi1sk", "KeyType": "RANGE"}
        ],
        "Projection": {"ProjectionType": "ALL"}
    })];
    let choice = &table["GlobalSecondaryIndexes"]["Fn::If"];
    assert_eq!(choice[0], "KeepsShipmentsGsi1");
    assert_eq!(
        cfn["Conditions"]["KeepsShipmentsGsi1"],
        json!({"Fn::Equals": [{"Ref": "KeepShipmentsGsi1"}, "true"]})
    );
    assert_eq!(cfn["Parameters"]["KeepShipmentsGsi1"]["Default"], "false");
    let mut steps = vec![last_release];
    steps.extend(index_choices(table));
    let by_name = |l: &[Value]| -> BTreeMap<String, Value> {
        l.iter()
            .map(|g| (g["IndexName"].as_str().unwrap().to_string(), g.clone()))
            .collect()
    };
    for pair in steps.windows(2) {
        let (before, after) = (by_name(&pair[0]), by_name(&pair[1]));
        let changed = before.keys().filter(|n| !after.contains_key(*n)).count()
            + after.keys().filter(|n| !before.contains_key(*n)).count();
        assert_eq!(changed, 1, "{:?} -> {:?}", before.keys(), after.keys());
        for (name, g) in &after {
            if let Some(old) = before.get(name) {
                assert_eq!(g, old, "index {name} changed in place");
            }
        }
    }
    let last = by_name(steps.last().unwrap());
    assert_eq!(
        last["by_stage"]["Projection"],
        json!({"ProjectionType": "KEYS_ONLY"})
    );
}

#[test]
fn every_index_named_in_code_exists_in_the_template() {
    let cfn = cfn();
    let declared: BTreeSet<String> = resources_of(&cfn, "AWS::DynamoDB::Table")
        .values()
        .flat_map(|t| {
            index_choices(&t["Properties"])
                .into_iter()
                .flatten()
                .map(|g| g["IndexName"].as_str().unwrap().to_string())
        })
        .collect();
    let root = paths::repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    rust_files(&root.join("functions"), &mut files);
    let mut problems = Vec::new();
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // `.index_name("x")` and `const ..INDEX..: &str = "x"` are the two ways code names an index.
        for (i, _) in text.match_indices(".index_name(") {
            let rest = text[i + ".index_name(".len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                let name = &lit[..lit.find('"').unwrap()];
                seen += 1;
                if !declared.contains(name) {
                    problems.push(format!(
                        "{}: index {name:?} is not in template.yaml",
                        file.display()
                    ));
                }
            }
        }
        for line in text.lines() {
            let l = line.trim();
            if l.contains("const")
                && l.to_ascii_uppercase().contains("INDEX")
                && l.contains(": &str = \"")
            {
                let name = l.split('"').nth(1).unwrap_or_default();
                seen += 1;
                if !declared.contains(name) {
                    problems.push(format!(
                        "{}: index constant {name:?} is not in template.yaml",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("checked {seen} index names in code against {declared:?}");
}

#[test]
fn s3_prefixes_in_code_are_declared() {
    // Any string literal in code that starts with `<word>/` next to S3 calls must be one of the
    // declared prefixes (flexbridge::config::prefixes, checked against the template above).
    let declared: BTreeSet<&str> = prefixes::INBOUND
        .iter()
        .chain(prefixes::OUTBOUND)
        .copied()
        .collect();
    let root = paths::repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    rust_files(&root.join("functions"), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if !(text.contains("put_object") || text.contains("get_object")) {
            continue;
        }
        for lit in text.split('"').skip(1).step_by(2) {
            let Some((word, _)) = lit.split_once('/') else {
                continue;
            };
            let prefix = format!("{word}/");
            let looks_like_key = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
                && ![
                    "application",
                    "text",
                    "image",
                    "multipart",
                    "http:",
                    "https:",
                ]
                .contains(&word);
            if looks_like_key && !declared.contains(prefix.as_str()) {
                problems.push(format!(
                    "{}: S3 prefix {prefix:?} (in {lit:?}) is not declared",
                    file.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_resource_a_function_is_told_about_it_may_also_use() {
    // Each table, queue, bucket, bus and secret in a function's environment is named by one of
    // its policy statements (or is the queue it consumes); policies are statements only. That
    // the statements hold exactly the actions its code sends: foundation_access.rs.
    let sam = flexbridge_e2e::sam_json();
    let mut problems = Vec::new();
    for (id, r) in sam["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let p = &r["Properties"];
        let mut named = String::new();
        for pol in p["Policies"].as_array().into_iter().flatten() {
            match pol.get("Statement").and_then(Value::as_array) {
                Some(statements) => {
                    for st in statements {
                        named.push_str(&st["Resource"].to_string());
                    }
                }
                None => problems.push(format!(
                    "{id}: policy {pol} is not a policy document (named actions on named resources)"
                )),
            }
        }
        let consumes = |queue: &str| {
            p["Events"].as_object().is_some_and(|ev| {
                ev.values().any(|e| {
                    e["Type"] == "SQS" && logical_of(&e["Properties"]["Queue"]) == Some(queue)
                })
            })
        };
        let Some(vars) = p["Environment"]["Variables"].as_object() else {
            continue;
        };
        for (name, value) in vars {
            let resource = name.ends_with("_TABLE")
                || name.ends_with("_QUEUE_URL")
                || name == "BUCKET_NAME"
                || name == "EVENT_BUS_NAME"
                || name.ends_with("_SECRET_ARN");
            if !resource {
                continue;
            }
            let covered = match logical_of(value) {
                Some(logical) => {
                    named.contains(&format!("\"{logical}\""))
                        || named.contains(&format!("{{{logical}.Arn}}"))
                        || (name.ends_with("_QUEUE_URL") && consumes(logical))
                }
                // the bucket, named by a !Sub of its name
                None => value["Fn::Sub"]
                    .as_str()
                    .is_some_and(|sub| named.contains(sub)),
            };
            if !covered {
                problems.push(format!("{id}: {name} = {value} has no policy statement"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A test target switched off (`test = false`, to spare a link of the whole crate) must have no
/// test to lose: every `[lib]` or `[[bin]]` of the workspace that says so holds no `#[test]`.
#[test]
fn no_test_target_is_off_where_there_are_tests() {
    let root = paths::repo_root();
    let mut manifests = Vec::new();
    for dir in ["functions", "infra"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            manifests.push(e.path().join("Cargo.toml"));
        }
    }
    manifests.push(root.join("shared/Cargo.toml"));
    manifests.push(root.join("tests/Cargo.toml"));
    let mut off = 0;
    let mut wrong = Vec::new();
    for manifest in manifests.iter().filter(|m| m.exists()) {
        let crate_dir = manifest.parent().unwrap();
        let text = std::fs::read_to_string(manifest).unwrap();
        // Each target section: its header, its `path` (or the default), its `test` flag.
        for section in text.split("\n[").skip(1) {
            let header = section.lines().next().unwrap_or_default();
            let value = |key: &str| {
                section.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == key).then(|| {
                        v.split('#')
                            .next()
                            .unwrap()
                            .trim()
                            .trim_matches('"')
                            .to_string()
                    })
                })
            };
            if value("test").as_deref() != Some("false") {
                continue;
            }
            off += 1;
            let files = match header {
                "lib]" => {
                    let mut files = Vec::new();
                    rust_files(&crate_dir.join("src"), &mut files);
                    files.retain(|f| {
                        !f.ends_with("main.rs") && !f.starts_with(crate_dir.join("src/bin"))
                    });
                    files
                }
                "[bin]]" => vec![crate_dir
                    .join(value("path").expect("a [[bin]] with test = false names its path"))],
                other => panic!("{}: test = false in [{other}", manifest.display()),
            };
            for f in files {
                let src = std::fs::read_to_string(&f).unwrap();
                if src.contains("#[test]") || src.contains("#[tokio::test") {
                    wrong.push(f.display().to_string());
                }
            }
        }
    }
    assert!(
        off > 10,
        "found only {off} targets with test = false: is the parsing right?"
    );
    assert!(
        wrong.is_empty(),
        "tests in targets with test = false (they would never run): {wrong:?}"
    );
}

/// `WebhookUrl` takes what the webhook function accepts (`flexbridge::events::webhook_url`):
/// https, or http to localhost only; AWS refuses anything else at deploy time.
#[test]
fn the_webhook_url_parameter_takes_https_or_loopback_http_only() {
    let sam = flexbridge_e2e::sam_json();
    let pattern = sam["Parameters"]["WebhookUrl"]["AllowedPattern"]
        .as_str()
        .expect("WebhookUrl has an AllowedPattern");
    // CloudFormation matches the whole value.
    let whole = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
    for ok in [
        "",
        "https://wms.example.com/flexbridge",
        "https://wms.example.com:8443/hook?x=1",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:8080/",
    ] {
        assert!(whole.is_match(ok), "the template refuses {ok:?}");
        assert!(
            ok.is_empty() || flexbridge::events::webhook_url(ok).is_ok(),
            "the function refuses {ok:?}"
        );
    }
    for refused in [
        "http://wms.example.com/flexbridge",
        "http://10.0.0.5/hook",
        "http://localhost.example.com/hook",
        "ftp://wms.example.com/",
        "wms.example.com/hook",
        "https://",
    ] {
        assert!(!whole.is_match(refused), "the template takes {refused:?}");
        assert!(
            flexbridge::events::webhook_url(refused).is_err(),
            "the function takes {refused:?}"
        );
    }
}

/// `LogLevel` turns up our crates only (`flexbridge::telemetry::filter_for`): every function
/// crate is on the list, under the name its log lines carry.
#[test]
fn every_function_crate_is_one_of_ours_for_the_log_level() {
    let root = paths::repo_root();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root.join("functions")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().replace('-', "_");
        if !flexbridge::telemetry::OUR_CRATES.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not in telemetry::OUR_CRATES: {missing:?}"
    );
}

/// Key rotation (docs/keys.md) reads the stack secret's `AWSPREVIOUS` version with the same
/// `secretsmanager:GetSecretValue`: AWS checks a `secretsmanager:VersionStage` condition, moto
/// does not, so a grant narrowed to `AWSCURRENT` would pass every local test and break rotation.
#[test]
fn the_signing_keys_are_readable_in_every_version_stage() {
    let cfn = cfn();
    let roles = resources_of(&cfn, "AWS::IAM::Role");
    for (role, secret) in [
        ("WarehouseApiFunctionRole", "FlexbridgeSecret"),
        ("OutboundWebhookFunctionRole", "FlexbridgeSecret"),
    ] {
        let statements: Vec<&Value> = roles[role]["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
            .collect();
        let actions = |s: &Value| -> Vec<String> {
            match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            }
        };
        let grants: Vec<&&Value> = statements
            .iter()
            .filter(|s| {
                s["Effect"] == "Allow"
                    && logical_of(&s["Resource"]) == Some(secret)
                    && actions(s)
                        .iter()
                        .any(|a| a == "secretsmanager:GetSecretValue")
            })
            .collect();
        assert!(!grants.is_empty(), "{role} cannot read {secret}");
        for s in grants {
            assert!(
                s.get("Condition").is_none(),
                "{role}: the grant on {secret} has a condition, which may exclude AWSPREVIOUS: {s}"
            );
        }
        assert!(
            !statements
                .iter()
                .any(|s| s["Effect"] == "Deny" && s.to_string().contains("VersionStage")),
            "{role} denies some version stage"
        );
    }
}

/// What keeps an alarm's action from reaching anyone: CloudWatch publishes to an encrypted topic
/// only when the topic's KMS key lets `cloudwatch.amazonaws.com` use it (Decrypt and
/// GenerateDataKey*), and an AWS-managed key (`alias/aws/...`) never does. moto accepts either.
/// A key chosen by a condition is checked in each branch: none (unencrypted), a key of this
/// stack (its policy is checked), or the seller's own key from a parameter, whose policy the
/// template cannot see: the parameter's description must then tell them what it needs.
fn alarm_topic_problems(cfn: &Value) -> Vec<String> {
    let topics = resources_of(cfn, "AWS::SNS::Topic");
    let keys = resources_of(cfn, "AWS::KMS::Key");
    let mut problems = Vec::new();
    for (alarm, a) in resources_of(cfn, "AWS::CloudWatch::Alarm") {
        let p = &a["Properties"];
        let actions = ["AlarmActions", "OKActions", "InsufficientDataActions"]
            .iter()
            .flat_map(|k| p[k].as_array().cloned().unwrap_or_default());
        for action in actions {
            let Some(topic) = logical_of(&action).filter(|t| topics.contains_key(t)) else {
                problems.push(format!(
                    "{alarm}: action {action} is not a topic of the stack"
                ));
                continue;
            };
            let key = &topics[topic]["Properties"]["KmsMasterKeyId"];
            let branches = match key.get("Fn::If").and_then(Value::as_array) {
                Some(b) if b.len() == 3 => vec![b[1].clone(), b[2].clone()],
                _ => vec![key.clone()],
            };
            for key in &branches {
                problems.extend(alarm_topic_key_problems(cfn, alarm, topic, key, &keys));
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// One key a topic may use (see [`alarm_topic_problems`]).
fn alarm_topic_key_problems(
    cfn: &Value,
    alarm: &str,
    topic: &str,
    key: &Value,
    keys: &BTreeMap<&str, &Value>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if key.is_null() || *key == json!({"Ref": "AWS::NoValue"}) {
        return problems; // unencrypted: CloudWatch needs no key
    }
    if let Some(param) = logical_of(key).and_then(|p| cfn["Parameters"].get(p)) {
        let told = param["Description"].as_str().unwrap_or_default();
        if !(told.contains("cloudwatch.amazonaws.com")
            && told.contains("kms:Decrypt")
            && told.contains("kms:GenerateDataKey*"))
        {
            problems.push(format!(
                "{alarm} -> {topic}: the seller's key parameter {key} does not say its \
                 policy must let cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*"
            ));
        }
        return problems;
    }
    let Some(key_id) = logical_of(key).filter(|k| keys.contains_key(k)) else {
        problems.push(format!(
            "{alarm} -> {topic}: its key {key} is not a key of this stack whose policy \
             can allow CloudWatch (an alias/aws/... key cannot)"
        ));
        return problems;
    };
    let k = &keys[key_id]["Properties"];
    let allows = k["KeyPolicy"]["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|st| {
            let list = |v: &Value| -> Vec<String> {
                match v {
                    Value::Array(a) => a.iter().map(|x| x.to_string()).collect(),
                    other => vec![other.to_string()],
                }
            };
            let services = list(&st["Principal"]["Service"]);
            let actions = list(&st["Action"]);
            st["Effect"] == "Allow"
                && services.contains(&"\"cloudwatch.amazonaws.com\"".to_string())
                && actions.contains(&"\"kms:Decrypt\"".to_string())
                && actions
                    .iter()
                    .any(|a| a.starts_with("\"kms:GenerateDataKey"))
                && st["Condition"]["StringEquals"]["aws:SourceAccount"]
                    == json!({"Ref": "AWS::AccountId"})
        });
    if !allows {
        problems.push(format!(
            "{alarm} -> {topic}: key {key_id}'s policy does not let cloudwatch.amazonaws.com \
             (of this account) Decrypt and GenerateDataKey*"
        ));
    }
    if k["EnableKeyRotation"] != true {
        problems.push(format!("{key_id}: EnableKeyRotation must be true"));
    }
    problems
}

#[test]
fn every_alarm_action_reaches_a_topic_whose_key_lets_cloudwatch_publish() {
    let cfn = cfn();
    let problems = alarm_topic_problems(&cfn);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        resources_of(&cfn, "AWS::CloudWatch::Alarm").len() >= 3,
        "the alarms were not found"
    );
    // The template: no key by default, the seller's own key when AlarmTopicKmsKeyArn is set
    // (docs/runbook.md, "What the alarms cost"); no key of ours is billed.
    assert_eq!(
        cfn["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"],
        json!({"Fn::If": ["HasAlarmTopicKey", {"Ref": "AlarmTopicKmsKeyArn"}, {"Ref": "AWS::NoValue"}]})
    );
    assert!(
        resources_of(&cfn, "AWS::KMS::Key").is_empty(),
        "a KMS key is $1/month"
    );
    // The check fails a seller's key parameter that does not say what its policy needs.
    let mut untold = cfn.clone();
    untold["Parameters"]["AlarmTopicKmsKeyArn"]["Description"] = json!("a key");
    assert!(!alarm_topic_problems(&untold).is_empty());
    // And, were the key ours again, it still checks its policy: the AWS-managed key fails, a
    // key of the stack letting CloudWatch in passes, the same key without the grant fails.
    let mut managed = cfn.clone();
    managed["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"] = json!("alias/aws/sns");
    assert!(!alarm_topic_problems(&managed).is_empty());
    let mut ours = cfn.clone();
    ours["Resources"]["AlarmTopicKey"] = json!({
        "Type": "AWS::KMS::Key",
        "Properties": {
            "EnableKeyRotation": true,
            "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                {"Sid": "AccountAdministers", "Effect": "Allow",
                 "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
                 "Principal": {"Service": "cloudwatch.amazonaws.com"},
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
                 "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}
            ]}
        }
    });
    ours["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"] =
        json!({"Ref": "AlarmTopicKey"});
    assert_eq!(alarm_topic_problems(&ours), Vec::<String>::new());
    let mut ungranted = ours.clone();
    ungranted["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|st| st["Principal"]["Service"].is_null());
    assert!(!alarm_topic_problems(&ungranted).is_empty());
}

/// One secret, not three ($0.40 a month each; docs/keys.md): the SP-API credentials the seller
/// fills in and the `signing_key` both HMAC keys are derived from, generated at deploy into the
/// credentials' JSON. AWS's rules for that, which moto does not check (the local stack builds
/// the value itself, infra/local/provision.py): `SecretString` or `GenerateSecretString`, not
/// both; `SecretStringTemplate` (a JSON object) together with `GenerateStringKey`.
#[test]
fn one_secret_holds_the_credentials_and_generates_the_signing_key() {
    let cfn = cfn();
    let secrets = resources_of(&cfn, "AWS::SecretsManager::Secret");
    assert_eq!(
        secrets.keys().copied().collect::<Vec<_>>(),
        ["FlexbridgeSecret"],
        "every secret is $0.40 a month"
    );
    let p = &secrets["FlexbridgeSecret"]["Properties"];
    assert!(
        p["SecretString"].is_null(),
        "SecretString and GenerateSecretString exclude each other"
    );
    let gen = &p["GenerateSecretString"];
    assert_eq!(
        gen["GenerateStringKey"],
        flexbridge::warehouse::keys::SIGNING_KEY_FIELD
    );
    let template: Value = serde_json::from_str(gen["SecretStringTemplate"].as_str().unwrap())
        .expect("SecretStringTemplate is JSON");
    for field in ["client_id", "client_secret", "refresh_token"] {
        assert_eq!(
            template[field], "",
            "{field} is there for the seller to fill"
        );
    }
    assert!(template.get("signing_key").is_none());
    // Long, and no punctuation to escape in JSON or a shell.
    assert!(gen["PasswordLength"].as_u64().unwrap() >= 32);
    assert_eq!(gen["ExcludePunctuation"], true);
    // Every function that reads it gets the one variable; the seller gets the one output.
    assert_eq!(
        cfn["Outputs"]["FlexbridgeSecretArn"]["Value"],
        json!({"Ref": "FlexbridgeSecret"})
    );
}

/// The warehouse API's public Function URL (AuthType NONE; requests are signed at the
/// application level) has reserved concurrency, which is also its ceiling: a flood of unsigned
/// requests cannot take the concurrency the SQS consumers need. 0 leaves it unreserved (AWS
/// refuses a reservation leaving the account under 10 unreserved executions).
#[test]
fn every_public_function_url_has_its_concurrency_reserved_by_a_parameter() {
    let cfn = cfn();
    let functions = resources_of(&cfn, "AWS::Lambda::Function");
    let urls = resources_of(&cfn, "AWS::Lambda::Url");
    assert!(!urls.is_empty(), "no Function URL found");
    for (id, u) in urls {
        if u["Properties"]["AuthType"] != "NONE" {
            continue;
        }
        let f = logical_of(&u["Properties"]["TargetFunctionArn"]).unwrap();
        assert_eq!(
            functions[f]["Properties"]["ReservedConcurrentExecutions"],
            json!({"Fn::If": ["ReservesApiConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}),
            "{id}: {f} must reserve ApiReservedConcurrency"
        );
    }
    let p = &cfn["Parameters"]["ApiReservedConcurrency"];
    assert_eq!(p["Type"], "Number");
    assert_eq!(p["Default"], 5);
    assert_eq!(p["MinValue"], 0);
    let description = p["Description"].as_str().unwrap();
    assert!(
        description.contains("0 = not reserved") && description.contains("10"),
        "{description}"
    );
    assert_eq!(
        cfn["Conditions"]["ReservesApiConcurrency"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, 0]}]})
    );
}

/// The seller's data outlives the stack: deleting it, or a change that replaces a table or the
/// bucket, keeps them (docs/runbook.md says how to delete them on purpose).
#[test]
fn every_table_and_the_bucket_are_kept_on_stack_deletion_and_replacement() {
    let cfn = cfn();
    let mut kept = 0;
    for kind in ["AWS::DynamoDB::Table", "AWS::S3::Bucket"] {
        for (id, r) in resources_of(&cfn, kind) {
            assert_eq!(r["DeletionPolicy"], "Retain", "{id}");
            assert_eq!(r["UpdateReplacePolicy"], "Retain", "{id}");
            kept += 1;
        }
    }
    assert_eq!(kept, 8, "7 tables and the uploads bucket");
}
