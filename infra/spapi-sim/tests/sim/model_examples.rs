//! Our request validation against the models' own sandbox requests. A sandbox case lists only
//! the parameters it matches on (`{}` bodies match anything), so we check what each case gives:
//! every value in a 2xx case must pass our validation, i.e. we are not stricter than Amazon's
//! own examples.
use std::collections::HashMap;

use serde_json::Value;
use spapi_sim::validation::{check_body, check_params, Models};

#[test]
fn sandbox_requests_pass_our_validation() {
    let m = Models::load(&spapi_sim::models::locate().unwrap()).unwrap();
    let mut passed = 0;
    let mut failed: Vec<String> = Vec::new();
    for (file, doc) in &m.documents {
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                let Some(model_op) = m.operation(id) else {
                    continue;
                };
                for (code, resp) in op["responses"].as_object().unwrap() {
                    if !code.starts_with('2') {
                        continue;
                    }
                    for case in resp["x-amzn-api-sandbox"]["static"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let params = case["request"]["parameters"]
                            .as_object()
                            .cloned()
                            .unwrap_or_default();
                        let mut path = HashMap::new();
                        let mut query = Vec::new();
                        let mut body = Vec::new();
                        for (name, v) in &params {
                            let v = &v["value"];
                            if name == "body" {
                                if v.as_object().is_some_and(|o| !o.is_empty()) {
                                    body = serde_json::to_vec(v).unwrap();
                                }
                                continue;
                            }
                            let s = match v {
                                Value::String(s) => s.clone(),
                                Value::Array(a) => a
                                    .iter()
                                    .map(|x| {
                                        x.as_str().map(str::to_string).unwrap_or(x.to_string())
                                    })
                                    .collect::<Vec<_>>()
                                    .join(","),
                                other => other.to_string(),
                            };
                            let is_path = model_op
                                .template
                                .iter()
                                .any(|t| t == &format!("{{{name}}}"));
                            if is_path {
                                path.insert(name.clone(), s);
                            } else {
                                query.push((name.clone(), s));
                            }
                        }
                        // parameters the case leaves out are wildcards
                        let mut problems: Vec<String> = check_params(model_op, &path, &query)
                            .into_iter()
                            .filter(|p| !p.ends_with("it is required"))
                            .collect();
                        if !body.is_empty() {
                            if let Err(p) = check_body(model_op, &body) {
                                problems.extend(p);
                            }
                        }
                        if problems.is_empty() {
                            passed += 1;
                        } else {
                            failed.push(format!("{file} {id} {code}: {}", problems.join(" | ")));
                        }
                    }
                }
            }
        }
    }
    println!("passed={passed}");
    for f in &failed {
        println!("FAILED {f}");
    }
    assert!(passed >= 30, "{passed}");
    assert!(failed.is_empty(), "{failed:#?}");
}
