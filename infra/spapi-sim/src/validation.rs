//! Amazon's Swagger 2.0 models, loaded at runtime: routing by the models' path templates and
//! request/response validation with `jsonschema` (each body schema is
//! `{"$ref": "#/definitions/X", "definitions": <the file's definitions>}`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, Context};
use jsonschema::{Draft, Validator};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use crate::models::MODEL_FILES;

/// The operations the simulator serves (others in the models answer 404).
pub const SERVED: [&str; 23] = [
    "getShipments",
    "getShipment",
    "processShipment",
    "createPackages",
    "updatePackage",
    "updatePackageStatus",
    "retrieveShippingOptions",
    "generateInvoice",
    "retrieveInvoice",
    "generateShipLabels",
    "batchInventory",
    "listReturns",
    "getReturn",
    "patchListingsItem",
    "getListingsItem",
    "getDestinations",
    "createDestination",
    "getDestination",
    "deleteDestination",
    "getSubscription",
    "createSubscription",
    "getSubscriptionById",
    "deleteSubscriptionById",
];

pub struct Operation {
    pub id: String,
    pub method: String,
    pub template: Vec<String>,
    pub file: String,
    /// Non-body parameters as in the model.
    pub params: Vec<Value>,
    pub body: Option<(bool, Arc<Validator>)>,
    pub responses: BTreeMap<u16, Arc<Validator>>,
    /// Every status the model declares for the operation.
    pub declared: Vec<u16>,
}

pub struct Models {
    pub dir: PathBuf,
    pub operations: Vec<Operation>,
    /// Raw documents by file name (used by tests).
    pub documents: HashMap<String, Value>,
    definitions: HashMap<String, Value>,
}

/// A routed request: the operation and its decoded path parameters.
pub struct Routed<'a> {
    pub op: &'a Operation,
    pub path_params: HashMap<String, String>,
}

fn cache() -> &'static Mutex<HashMap<PathBuf, Arc<Models>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Models>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Compiles `{"$ref": "#/definitions/<name>"}` (or an inline schema) against a file's definitions.
pub fn compile(definitions: &Value, schema: &Value) -> anyhow::Result<Validator> {
    let mut root = schema.clone();
    if let Some(o) = root.as_object_mut() {
        o.insert("definitions".into(), definitions.clone());
    }
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| anyhow!("model schema does not compile: {e}"))
}

impl Models {
    /// Loads (once per process per folder) and compiles the models.
    pub fn load(dir: &Path) -> anyhow::Result<Arc<Models>> {
        let key = dir.to_path_buf();
        if let Some(m) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(m.clone());
        }
        let m = Arc::new(Self::load_uncached(dir)?);
        cache()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, m.clone());
        Ok(m)
    }

    fn load_uncached(dir: &Path) -> anyhow::Result<Models> {
        if let Some(f) = MODEL_FILES.iter().find(|f| !dir.join(f.name).is_file()) {
            return Err(anyhow!(
                "Amazon's SP-API models are missing: {} has no {}. Set {} to the folder holding the official models \
                 (infra/spapi-sim/README.md, \"Amazon's models\")",
                dir.display(),
                f.name,
                crate::MODELS_DIR_ENV
            ));
        }
        let mut operations = Vec::new();
        let mut documents = HashMap::new();
        let mut definitions = HashMap::new();
        for file in MODEL_FILES.map(|f| f.name) {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading model {}", path.display()))?;
            let doc: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing model {}", path.display()))?;
            let defs = doc.get("definitions").cloned().unwrap_or(json!({}));
            for (p, item) in doc["paths"].as_object().into_iter().flatten() {
                for (method, op) in item.as_object().into_iter().flatten() {
                    let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                        continue;
                    };
                    if !SERVED.contains(&id) {
                        continue;
                    }
                    let mut params = Vec::new();
                    let mut body = None;
                    for prm in op["parameters"].as_array().into_iter().flatten() {
                        if prm["in"] == "body" {
                            let v = compile(&defs, &prm["schema"])
                                .with_context(|| format!("{file} {id} body"))?;
                            body = Some((prm["required"] == true, Arc::new(v)));
                        } else {
                            params.push(prm.clone());
                        }
                    }
                    let mut responses = BTreeMap::new();
                    let declared: Vec<u16> = op["responses"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(c, _)| c.parse().ok())
                        .collect();
                    for (code, r) in op["responses"].as_object().into_iter().flatten() {
                        if let (Ok(code), Some(s)) = (code.parse::<u16>(), r.get("schema")) {
                            let v = compile(&defs, s)
                                .with_context(|| format!("{file} {id} response {code}"))?;
                            responses.insert(code, Arc::new(v));
                        }
                    }
                    operations.push(Operation {
                        id: id.to_string(),
                        method: method.to_uppercase(),
                        template: p.trim_matches('/').split('/').map(str::to_string).collect(),
                        file: file.to_string(),
                        params,
                        body,
                        responses,
                        declared,
                    });
                }
            }
            definitions.insert(file.to_string(), defs);
            documents.insert(file.to_string(), doc);
        }
        Ok(Models {
            dir: dir.to_path_buf(),
            operations,
            documents,
            definitions,
        })
    }

    /// A validator for `#/definitions/<name>` of `file`.
    pub fn definition(&self, file: &str, name: &str) -> anyhow::Result<Validator> {
        let defs = self
            .definitions
            .get(file)
            .ok_or_else(|| anyhow!("no model {file}"))?;
        compile(defs, &json!({ "$ref": format!("#/definitions/{name}") }))
    }

    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    /// Finds the operation for a method and raw (percent-encoded) path.
    pub fn route(&self, method: &str, raw_path: &str) -> Option<Routed<'_>> {
        let segs: Vec<&str> = raw_path.trim_matches('/').split('/').collect();
        'ops: for op in &self.operations {
            if op.method != method || op.template.len() != segs.len() {
                continue;
            }
            let mut path_params = HashMap::new();
            for (t, s) in op.template.iter().zip(&segs) {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    let v = percent_decode_str(s).decode_utf8_lossy().to_string();
                    if v.is_empty() {
                        continue 'ops;
                    }
                    path_params.insert(name.to_string(), v);
                } else if t != s {
                    continue 'ops;
                }
            }
            return Some(Routed { op, path_params });
        }
        None
    }

    /// Whether some served operation has this path (for 405-style answers).
    pub fn path_known(&self, raw_path: &str) -> bool {
        ["GET", "POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|m| self.route(m, raw_path).is_some())
    }
}

/// Checks path and query parameters against the model; returns the problems found.
pub fn check_params(
    op: &Operation,
    path_params: &HashMap<String, String>,
    query: &[(String, String)],
) -> Vec<String> {
    let mut problems = Vec::new();
    for prm in &op.params {
        let name = prm["name"].as_str().unwrap_or_default();
        let values: Vec<&str> = match prm["in"].as_str() {
            Some("path") => path_params
                .get(name)
                .map(|v| vec![v.as_str()])
                .unwrap_or_default(),
            Some("query") => query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect(),
            _ => continue,
        };
        if values.is_empty() {
            if prm["required"] == true {
                problems.push(format!(
                    "Invalid input 'null' for parameter '{name}': it is required"
                ));
            }
            continue;
        }
        if values.len() > 1 && prm["type"] != "array" {
            problems.push(format!(
                "Invalid input '{}' for parameter '{name}': exactly one value is allowed",
                values.join(",")
            ));
            continue;
        }
        let raw = values.join(",");
        if prm["type"] == "array" {
            let items: Vec<&str> = raw.split(',').collect();
            if let Some(max) = prm["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    problems.push(format!(
                        "Invalid input '{raw}' for parameter '{name}': at most {max} values"
                    ));
                }
            }
            for it in items {
                if let Some(p) = check_scalar(name, it, &prm["items"]) {
                    problems.push(p);
                }
            }
        } else if let Some(p) = check_scalar(name, &raw, prm) {
            problems.push(p);
        }
    }
    problems
}

fn check_scalar(name: &str, v: &str, spec: &Value) -> Option<String> {
    let bad = |why: String| Some(format!("Invalid input '{v}' for parameter '{name}': {why}"));
    match spec["type"].as_str() {
        Some("integer") | Some("number") => {
            let n: f64 = match v.parse::<i64>() {
                Ok(i) => i as f64,
                Err(_) if spec["type"] == "number" => match v.parse::<f64>() {
                    Ok(f) => f,
                    Err(_) => return bad("not a number".into()),
                },
                Err(_) => return bad("not an integer".into()),
            };
            if let Some(min) = spec["minimum"].as_f64() {
                if n < min {
                    return bad(format!("must be at least {min}"));
                }
            }
            if let Some(max) = spec["maximum"].as_f64() {
                if n > max {
                    return bad(format!("must be at most {max}"));
                }
            }
        }
        Some("boolean") => {
            if v != "true" && v != "false" {
                return bad("not a boolean".into());
            }
        }
        _ => {
            let len = v.chars().count() as u64;
            if let Some(max) = spec["maxLength"].as_u64() {
                if len > max {
                    return bad(format!("longer than {max} characters"));
                }
            }
            if let Some(min) = spec["minLength"].as_u64() {
                if len < min {
                    return bad(format!("shorter than {min} characters"));
                }
            }
            if let Some(en) = spec["enum"].as_array() {
                if !en.iter().any(|e| e.as_str() == Some(v)) {
                    let allowed: Vec<&str> = en.iter().filter_map(Value::as_str).collect();
                    return bad(format!("must be one of {}", allowed.join(", ")));
                }
            }
            if spec["format"] == "date-time" && chrono::DateTime::parse_from_rfc3339(v).is_err() {
                return bad("not an ISO 8601 date-time".into());
            }
        }
    }
    None
}

/// Validates a request body; `Ok(None)` when there is none and none is required.
pub fn check_body(op: &Operation, body: &[u8]) -> Result<Option<Value>, Vec<String>> {
    let Some((required, validator)) = &op.body else {
        return Ok(None);
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return if *required {
            Err(vec![
                "At least one field is mandatory in the input payload".into()
            ])
        } else {
            Ok(None)
        };
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| vec![format!("Invalid input: the body is not JSON ({e})")])?;
    let errs = schema_errors(validator, &v);
    if errs.is_empty() {
        Ok(Some(v))
    } else {
        Err(errs)
    }
}

/// Human-readable schema violations, `<json pointer>: <problem>`, at most 10.
pub fn schema_errors(validator: &Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .take(10)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("{}: {e}", if at.is_empty() { "/".to_string() } else { at })
        })
        .collect()
}
