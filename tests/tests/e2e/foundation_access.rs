//! Least privilege, both ways round: each function's policy statements in template.yaml grant
//! exactly the IAM actions its code sends, on exactly the resources it sends them to
//! (`flexbridge_e2e::access` says how the code side is read).

use std::collections::{BTreeMap, BTreeSet};

use flexbridge_e2e::access::{self, Grants, FUNCTIONS, WRAPPERS};
use flexbridge_e2e::flexbridge_local::paths;
use serde_json::Value;

/// The logical ID a value names: `!Ref X`, `!GetAtt X.Attr`, or the `!Sub` name of a bucket
/// (functions get the bucket's name spelled out: a `!Ref` would be a CloudFormation cycle).
fn logical_of(sam: &Value, v: &Value) -> Option<String> {
    if let Some(r) = v.get("Ref").and_then(Value::as_str) {
        return Some(r.into());
    }
    if let Some(g) = v.get("Fn::GetAtt") {
        let first = g
            .get(0)
            .and_then(Value::as_str)
            .or_else(|| g.as_str().and_then(|s| s.split('.').next()))?;
        return Some(first.split('.').next()?.into());
    }
    let sub = v.get("Fn::Sub").and_then(Value::as_str)?;
    bucket_named(sam, sub).map(|(id, _)| id)
}

/// The bucket whose `BucketName` `text` starts with, and the rest of `text`.
fn bucket_named(sam: &Value, text: &str) -> Option<(String, String)> {
    let text = text
        .strip_prefix("arn:${AWS::Partition}:s3:::")
        .unwrap_or(text);
    sam["Resources"].as_object()?.iter().find_map(|(id, r)| {
        let name = r["Properties"]["BucketName"]["Fn::Sub"].as_str()?;
        (r["Type"] == "AWS::S3::Bucket" && text.starts_with(name))
            .then(|| (id.clone(), text[name.len()..].to_string()))
    })
}

/// A statement's resource as `Logical[/part]`.
fn resource_of(sam: &Value, v: &Value) -> Result<String, String> {
    if v.get("Ref").is_some() || v.get("Fn::GetAtt").is_some() {
        return logical_of(sam, v).ok_or_else(|| format!("{v}"));
    }
    if let Some(sub) = v.get("Fn::Sub").and_then(Value::as_str) {
        if let Some((id, rest)) = bucket_named(sam, sub) {
            return Ok(format!("{id}{rest}"));
        }
        // "${Table.Arn}/index/gsi1"
        if let Some(inner) = sub.strip_prefix("${") {
            if let Some((reference, rest)) = inner.split_once('}') {
                if let Some(id) = reference.strip_suffix(".Arn") {
                    return Ok(format!("{id}{rest}"));
                }
            }
        }
    }
    Err(format!("resource {v} names no resource of the template"))
}

fn strings(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// A function's grants from its `Policies` (statements only; anything else is a problem).
fn granted(sam: &Value, id: &str, f: &Value, problems: &mut Vec<String>) -> Grants {
    let mut out = Grants::new();
    for policy in f["Properties"]["Policies"].as_array().into_iter().flatten() {
        let Some(statements) = policy.get("Statement").and_then(Value::as_array) else {
            problems.push(format!(
                "{id}: policy {policy} is not a policy document of named actions and resources"
            ));
            continue;
        };
        for st in statements {
            if st["Effect"] != "Allow" {
                problems.push(format!("{id}: statement {st} must Allow"));
                continue;
            }
            for r in strings(&st["Resource"]) {
                match resource_of(sam, &r) {
                    Ok(resource) => {
                        let actions = out.entry(resource).or_default();
                        for a in strings(&st["Action"]) {
                            actions.insert(a.as_str().unwrap_or("?").to_string());
                        }
                    }
                    Err(e) => problems.push(format!("{id}: {e}")),
                }
            }
        }
    }
    out
}

/// What each wrapper's methods send, read from shared/src.
fn wrappers() -> BTreeMap<&'static str, BTreeMap<String, BTreeSet<access::Action>>> {
    let src = paths::repo_root().join("shared/src");
    WRAPPERS
        .iter()
        .map(|(name, file)| {
            let text = std::fs::read_to_string(src.join(file)).unwrap();
            let methods = access::wrapper_actions(&text, name);
            assert!(
                methods.values().any(|a| !a.is_empty()),
                "{name} in shared/src/{file} sends no AWS request that access.rs recognises"
            );
            (*name, methods)
        })
        .collect()
}

#[test]
fn every_function_is_granted_exactly_what_its_code_sends() {
    let sam = flexbridge_e2e::sam_json();
    let wrappers = wrappers();
    let mut problems = Vec::new();
    let mut expected_yaml = String::new();
    let functions: BTreeMap<&str, &Value> = sam["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(k, r)| (k.as_str(), r))
        .collect();
    let declared: BTreeSet<&str> = FUNCTIONS.iter().map(|(id, _)| *id).collect();
    for id in functions.keys() {
        if !declared.contains(id) {
            problems.push(format!(
                "{id}: not in flexbridge_e2e::access::FUNCTIONS (list the wrappers its code builds)"
            ));
        }
    }
    for (id, groups) in FUNCTIONS {
        let Some(f) = functions.get(id) else {
            problems.push(format!(
                "access::FUNCTIONS names {id}, which template.yaml lacks"
            ));
            continue;
        };
        let env = &f["Properties"]["Environment"]["Variables"];
        let mut used = Grants::new();
        // The queues of its SQS events, for wrappers acting on the messages' own queue.
        let sources: Vec<Value> = f["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
            .filter(|e| e["Type"] == "SQS")
            .map(|e| e["Properties"]["Queue"].clone())
            .collect();
        for uses in groups.iter().flat_map(|g| g.iter()) {
            if uses.key == access::EVENT_SOURCE {
                let actions = access::actions_of(&wrappers[uses.wrapper], uses.usage)
                    .unwrap_or_else(|e| panic!("{id}: {}: {e}", uses.wrapper));
                assert!(
                    !sources.is_empty(),
                    "{id}: {} without an SQS event",
                    uses.wrapper
                );
                for v in &sources {
                    let resource = logical_of(&sam, v)
                        .unwrap_or_else(|| panic!("{id}: its SQS event's queue {v}"));
                    for (part, action) in &actions {
                        used.entry(format!("{resource}{part}"))
                            .or_default()
                            .insert(action.clone());
                    }
                }
                continue;
            }
            let Some(value) = env.get(uses.key) else {
                // Optional wiring the function's template does not switch on (e.g. Orders'
                // inventory nudge without INVENTORY_PUSH_QUEUE_URL).
                continue;
            };
            // A list of resources (`!Join [",", [!Ref A, !Ref B]]`) or one.
            let values = match value.get("Fn::Join").and_then(|j| j.get(1)) {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![value.clone()],
            };
            let mut resources = Vec::new();
            for v in &values {
                match logical_of(&sam, v) {
                    Some(r) => resources.push(r),
                    None => problems.push(format!("{id}: {} = {v} names no resource", uses.key)),
                }
            }
            let actions = match access::actions_of(&wrappers[uses.wrapper], uses.usage) {
                Ok(a) => a,
                Err(e) => {
                    problems.push(format!("{id}: {}: {e}", uses.wrapper));
                    continue;
                }
            };
            for resource in &resources {
                for (part, action) in &actions {
                    // S3 object actions are on `bucket/<prefix>*` for each prefix the function
                    // keeps to; listing is on the bucket itself.
                    let parts = if part.is_empty()
                        && action.starts_with("s3:")
                        && action != "s3:ListBucket"
                    {
                        if uses.prefixes.is_empty() {
                            problems.push(format!(
                                "{id}: {} sends {action} on objects of {resource}: name the \
                                 prefixes it keeps to (Uses::under in access.rs)",
                                uses.wrapper
                            ));
                        }
                        uses.prefixes.iter().map(|p| format!("/{p}*")).collect()
                    } else {
                        vec![part.clone()]
                    };
                    for part in parts {
                        used.entry(format!("{resource}{part}"))
                            .or_default()
                            .insert(action.clone());
                    }
                }
            }
        }
        let granted = granted(&sam, id, f, &mut problems);
        let found = access::check(id, &used, &granted);
        if !found.is_empty() {
            expected_yaml.push_str(&format!("{id}:\n{}", statements_yaml(&used)));
        }
        problems.extend(found);
    }
    assert!(
        problems.is_empty(),
        "{}\n\nThe statements the code needs:\n{expected_yaml}",
        problems.join("\n")
    );
}

/// The `Policies` the code needs, in the template's spelling (printed when they differ): one
/// statement per resource, `Sid` its logical ID (and index).
fn statements_yaml(used: &Grants) -> String {
    let mut out = String::from("      Policies:\n        - Statement:\n");
    for (resource, actions) in used {
        let (logical, rest) = resource.split_once('/').unwrap_or((resource, ""));
        let (sid, arn) = match rest {
            "" if logical.ends_with("Secret") => (logical.to_string(), format!("!Ref {logical}")),
            "" => (logical.to_string(), format!("!GetAtt {logical}.Arn")),
            _ if logical == "UploadsBucket" => (
                format!(
                    "{logical}{}",
                    rest.split('/')
                        .filter(|w| !w.is_empty() && *w != "*")
                        .map(|w| w[..1].to_uppercase() + &w[1..])
                        .collect::<String>()
                ),
                format!(
                    "!Sub \"arn:${{AWS::Partition}}:s3:::${{AWS::StackName}}-uploads-${{AWS::AccountId}}/{rest}\""
                ),
            ),
            _ => (
                format!("{logical}{}", rest.rsplit('/').next().unwrap_or_default().to_uppercase()),
                format!("!Sub \"${{{logical}.Arn}}/{rest}\""),
            ),
        };
        out.push_str(&format!(
            "            - Sid: {sid}\n              Effect: Allow\n              Action: [{}]\n              Resource: {arn}\n",
            actions.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
        ));
    }
    out
}
