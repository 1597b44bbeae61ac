//! The documents that describe template.yaml stay true to it: the README's diagram shows every
//! function, queue, schedule and queue arrow; docs/deploy.md lists every parameter with its
//! default; the dashboard reads only metrics the code emits, on dimension sets it emits, and
//! docs/metrics.md names the dimensions the code really uses.

use std::collections::{BTreeMap, BTreeSet};

use flexbridge_e2e::flexbridge_local::paths;
use regex::Regex;
use serde_json::Value;

use super::foundation_template::{cfn, logical_of, resources_of, rust_files};

fn read(rel: &str) -> String {
    let path = paths::repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Logical IDs of the queues some queue's RedrivePolicy names as its DLQ.
fn dlqs(cfn: &Value) -> BTreeSet<String> {
    resources_of(cfn, "AWS::SQS::Queue")
        .values()
        .filter_map(|q| logical_of(&q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .map(str::to_string)
        .collect()
}

/// The function's logical ID → its directory name under functions/ (what the diagram shows).
fn function_names(cfn: &Value) -> BTreeMap<String, String> {
    resources_of(cfn, "AWS::Lambda::Function")
        .into_iter()
        .map(|(id, f)| {
            let uri = f["Metadata"]["SourceCodeUri"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: no CodeUri"));
            (id.to_string(), uri.rsplit('/').next().unwrap().to_string())
        })
        .collect()
}

/// Statements of a function's role that grant `action`, by the logical ID of their resource.
fn granted(cfn: &Value, function: &str, action: &str) -> BTreeSet<String> {
    let role = logical_of(&cfn["Resources"][function]["Properties"]["Role"]).unwrap();
    let mut out = BTreeSet::new();
    for policy in cfn["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for s in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let actions: Vec<&str> = match &s["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if actions.contains(&action) {
                if let Some(r) = logical_of(&s["Resource"]) {
                    out.insert(r.to_string());
                }
            }
        }
    }
    out
}

/// The mermaid block of a markdown file: nodes (ID → label, shape) and edges (from, to).
#[derive(Default, Debug)]
struct Diagram {
    /// Rounded boxes `ID([name])`: functions.
    stadiums: BTreeMap<String, String>,
    /// Cylinders `ID[(name)]`: queues, tables, the bucket.
    cylinders: BTreeMap<String, String>,
    /// Every node's label (first line), any shape.
    labels: BTreeMap<String, String>,
    edges: BTreeSet<(String, String)>,
}

fn parse_mermaid(markdown: &str) -> Diagram {
    let start = markdown
        .find("```mermaid")
        .expect("a ```mermaid block in the README");
    let body = &markdown[start + "```mermaid".len()..];
    let body = &body[..body.find("```").expect("the mermaid block ends")];
    let stadium = Regex::new(r#"(\w+)\(\["?([^\]"]*)"?\]\)"#).unwrap();
    let cylinder = Regex::new(r#"(\w+)\[\("?([^)"]*)"?\)\]"#).unwrap();
    // Any node definition, to strip it from an edge line once its label is read.
    let node = Regex::new(
        r#"(\w+)(\(\[[^\]]*\]\)|\[\([^)]*\)\]|\[\[[^\]]*\]\]|\{\{[^}]*\}\}|\[[^\]]*\]|\([^)]*\)|\{[^}]*\})"#,
    )
    .unwrap();
    // `-- text -->`, `-->|text|` and `<-- text -->` are arrows with a label.
    let labelled = Regex::new(r"(<?)--\s[^>]*?-->|-->\|[^|]*\|").unwrap();
    let arrow = Regex::new(r"<-->|-->").unwrap();
    let mut d = Diagram::default();
    for raw in body.lines() {
        let line = raw.trim();
        let first = line.split_whitespace().next().unwrap_or("");
        if line.is_empty()
            || line.starts_with("%%")
            || [
                "flowchart",
                "graph",
                "subgraph",
                "end",
                "classDef",
                "class",
                "style",
            ]
            .contains(&first)
        {
            continue;
        }
        for c in stadium.captures_iter(line) {
            d.stadiums.insert(c[1].into(), c[2].trim().into());
        }
        for c in cylinder.captures_iter(line) {
            d.cylinders.insert(c[1].into(), c[2].trim().into());
        }
        for c in node.captures_iter(line) {
            let inner = c[2].trim_matches(|ch| "([{}])\"".contains(ch));
            let label = inner.split("<br/>").next().unwrap_or("").trim();
            d.labels.insert(c[1].into(), label.into());
        }
        let plain = node.replace_all(line, "$1");
        let plain = labelled.replace_all(&plain, |c: &regex::Captures| {
            if c.get(1).is_some_and(|m| !m.as_str().is_empty()) {
                "<-->".to_string()
            } else {
                "-->".to_string()
            }
        });
        // Groups joined by arrows: `A & B --> C <--> D`.
        let groups: Vec<Vec<String>> = arrow
            .split(&plain)
            .map(|g| {
                g.split('&')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .collect();
        let arrows: Vec<&str> = arrow.find_iter(&plain).map(|m| m.as_str()).collect();
        for (i, a) in arrows.iter().enumerate() {
            for from in &groups[i] {
                for to in &groups[i + 1] {
                    d.edges.insert((from.clone(), to.clone()));
                    if *a == "<-->" {
                        d.edges.insert((to.clone(), from.clone()));
                    }
                }
            }
        }
    }
    d
}

#[test]
fn the_readme_diagram_shows_every_function_queue_schedule_and_queue_arrow_of_the_template() {
    let cfn = cfn();
    let d = parse_mermaid(&read("README.md"));
    let mut problems = Vec::new();
    let functions = function_names(&cfn);
    let dlqs = dlqs(&cfn);
    let queues: BTreeSet<String> = resources_of(&cfn, "AWS::SQS::Queue")
        .keys()
        .map(|q| q.to_string())
        .collect();
    let main_queues: BTreeSet<&String> = queues.difference(&dlqs).collect();

    // Nodes: functions are rounded boxes named like their directory, queues cylinders.
    let drawn_functions: BTreeMap<&str, &str> = d
        .stadiums
        .iter()
        .map(|(id, name)| (name.as_str(), id.as_str()))
        .collect();
    for name in functions.values() {
        if !drawn_functions.contains_key(name.as_str()) {
            problems.push(format!("function {name} is missing from the diagram"));
        }
    }
    for name in drawn_functions.keys() {
        if !functions.values().any(|f| f == name) {
            problems.push(format!(
                "the diagram shows a function {name} the template does not have"
            ));
        }
    }
    let drawn_queues: BTreeMap<&str, &str> = d
        .cylinders
        .iter()
        .filter(|(_, l)| l.ends_with("Queue") || l.ends_with("DLQ"))
        .map(|(id, l)| (l.as_str(), id.as_str()))
        .collect();
    for q in &main_queues {
        if !drawn_queues.contains_key(q.as_str()) {
            problems.push(format!("queue {q} is missing from the diagram"));
        }
    }
    for q in drawn_queues.keys() {
        if !queues.contains(*q) {
            problems.push(format!(
                "the diagram shows a queue {q} the template does not have"
            ));
        }
    }

    // Arrows between functions and queues, schedules, the bus and Amazon, both ways round.
    let node_of = |label: &str| {
        d.labels
            .iter()
            .find(|(_, l)| l.as_str() == label)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("the diagram has no node labelled {label}"))
    };
    let sched = node_of("EventBridge schedules");
    let bus = node_of("EventBus");
    let spapi = node_of("SP-API");
    let fn_node = |id: &str| {
        drawn_functions
            .get(functions[id].as_str())
            .map(|n| n.to_string())
    };
    let q_node = |q: &str| drawn_queues.get(q).map(|n| n.to_string());
    let mut expected = BTreeSet::new();
    for esm in resources_of(&cfn, "AWS::Lambda::EventSourceMapping").values() {
        let p = &esm["Properties"];
        let (q, f) = (
            logical_of(&p["EventSourceArn"]).unwrap(),
            logical_of(&p["FunctionName"]).unwrap(),
        );
        if let (Some(qn), Some(fnn)) = (q_node(q), fn_node(f)) {
            expected.insert((qn, fnn, format!("{q} → {}", functions[f])));
        }
    }
    for rule in resources_of(&cfn, "AWS::Events::Rule").values() {
        let p = &rule["Properties"];
        if p.get("ScheduleExpression").is_none() {
            continue;
        }
        for t in p["Targets"].as_array().into_iter().flatten() {
            let f = logical_of(&t["Arn"]).unwrap();
            if let Some(fnn) = fn_node(f) {
                expected.insert((
                    sched.clone(),
                    fnn,
                    format!("EventBridge schedules → {}", functions[f]),
                ));
            }
        }
    }
    for (id, name) in &functions {
        let Some(fnn) = fn_node(id) else { continue };
        for q in granted(&cfn, id, "sqs:SendMessage") {
            if let Some(qn) = q_node(&q).filter(|_| !dlqs.contains(&q)) {
                expected.insert((fnn.clone(), qn, format!("{name} → {q}")));
            }
        }
        if !granted(&cfn, id, "events:PutEvents").is_empty() {
            expected.insert((fnn.clone(), bus.clone(), format!("{name} → EventBus")));
        }
        // The one secret is read by the webhook function too (its key), which never calls
        // Amazon: the SP-API region in a function's environment is what says it does.
        if !cfn["Resources"][id.as_str()]["Properties"]["Environment"]["Variables"]["SPAPI_REGION"]
            .is_null()
        {
            expected.insert((fnn.clone(), spapi.clone(), format!("{name} ↔ SP-API")));
            expected.insert((spapi.clone(), fnn.clone(), format!("SP-API ↔ {name}")));
        }
    }
    let function_nodes: BTreeSet<&str> = drawn_functions.values().copied().collect();
    let queue_nodes: BTreeSet<&str> = drawn_queues.values().copied().collect();
    let checked = |n: &str| function_nodes.contains(n);
    for (from, to, what) in &expected {
        if !d.edges.contains(&(from.clone(), to.clone())) {
            problems.push(format!("the diagram lacks the arrow {what}"));
        }
    }
    // Every drawn arrow touching a function and a queue, schedule, the bus or Amazon is real.
    let others: BTreeSet<&str> = [sched.as_str(), bus.as_str(), spapi.as_str()]
        .into_iter()
        .chain(queue_nodes.iter().copied())
        .collect();
    for (from, to) in &d.edges {
        let relevant = (checked(from) && others.contains(to.as_str()))
            || (checked(to) && others.contains(from.as_str()));
        if relevant && !expected.iter().any(|(f, t, _)| f == from && t == to) {
            let label = |n: &str| d.labels.get(n).cloned().unwrap_or(n.to_string());
            problems.push(format!(
                "the diagram draws {} → {}, which the template does not have",
                label(from),
                label(to)
            ));
        }
    }
    // DLQs are summarised in the text under the diagram.
    if !read("README.md").contains("Every queue has a\ndead-letter queue")
        && !read("README.md").contains("Every queue has a dead-letter queue")
    {
        problems.push("the README no longer says that every queue has a dead-letter queue".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_diagram_parser_reads_shapes_labels_groups_and_both_way_arrows() {
    let d = parse_mermaid(
        "x\n```mermaid\nflowchart LR\n  subgraph A[\"a (b)\"]\n  Q[(LabelsQueue)]\n  F([label-worker])\n  end\n  \
         S[EventBridge schedules] --> F & G([heartbeat])\n  Q -- jobs --> F <--> X[SP-API<br/>EF]\n  \
         F -->|why| Q\n```\n",
    );
    assert_eq!(d.stadiums["F"], "label-worker");
    assert_eq!(d.stadiums["G"], "heartbeat");
    assert_eq!(d.cylinders["Q"], "LabelsQueue");
    assert_eq!(d.labels["X"], "SP-API");
    let e = |a: &str, b: &str| d.edges.contains(&(a.to_string(), b.to_string()));
    assert!(e("S", "F") && e("S", "G") && e("Q", "F") && e("F", "X") && e("X", "F"));
    assert!(e("F", "Q"));
    assert!(!e("G", "F") && !e("F", "S"));
    assert_eq!(d.edges.len(), 6, "{:?}", d.edges);
}

#[test]
fn docs_deploy_lists_every_template_parameter_with_its_default() {
    let cfn = cfn();
    let doc = read("docs/deploy.md");
    // Rows of the parameter table: | `Name` | default | what it does |
    let row = Regex::new(r"(?m)^\| `(\w+)` \| ([^|]*) \|").unwrap();
    let rows: BTreeMap<String, String> = row
        .captures_iter(&doc)
        .map(|c| (c[1].to_string(), c[2].trim().to_string()))
        .collect();
    let params = cfn["Parameters"].as_object().unwrap();
    let mut problems = Vec::new();
    for (name, p) in params {
        let default = match &p["Default"] {
            Value::String(s) if s.is_empty() => "(empty)".to_string(),
            Value::String(s) => format!("`{s}`"),
            Value::Null => "(none: required)".to_string(),
            v => format!("`{v}`"),
        };
        match rows.get(name) {
            None => problems.push(format!("parameter {name} is missing from docs/deploy.md")),
            Some(d) if *d != default => problems.push(format!(
                "docs/deploy.md gives {name} the default {d}; the template's is {default}"
            )),
            Some(_) => {}
        }
    }
    for name in rows.keys() {
        let upper = name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        if upper && !params.contains_key(name) {
            problems.push(format!(
                "docs/deploy.md lists a parameter {name} the template does not have"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every value name and the fields its call sites put on its line (besides `Stack` and
/// `Function`): read from each call site of a `names::` constant (a `let at = [...]` it
/// passes, or the client's own `count` helper), and for `NeedsAttention` from each
/// `.alert(` (which adds `alert`). A CloudWatch metric has only `Stack` as its dimension
/// (`flexbridge::metrics`); these are log fields.
fn emitted() -> BTreeMap<&'static str, BTreeSet<String>> {
    use flexbridge::metrics::names;
    let root = paths::repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    rust_files(&root.join("functions"), &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .filter(|f| {
            let rel = f.strip_prefix(&root).unwrap_or(f);
            !rel.ends_with("metrics.rs")
                && !rel.components().any(|c| c.as_os_str() == "tests")
                && !rel.ends_with("tests.rs")
        })
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            // The unit tests at the end of a file emit nothing in production.
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            (f.display().to_string(), code)
        })
        .collect();
    let constants = read("shared/src/metrics.rs");
    let dim = Regex::new(r#"\(\s*"(\w+)"\s*,"#).unwrap();
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for name in names::ALL {
        if name == names::NEEDS_ATTENTION {
            let mut fields: BTreeSet<String> = ["alert".to_string()].into();
            let mut sites = 0;
            for (_, code) in &sources {
                for (at, _) in code.match_indices(".alert(") {
                    let end = code[at..].find(");").map_or(code.len(), |i| at + i);
                    fields.extend(dim.captures_iter(&code[at..end]).map(|c| c[1].to_string()));
                    sites += 1;
                }
            }
            assert!(sites > 0, "NeedsAttention: no .alert( call site");
            out.insert(name, fields);
            continue;
        }
        let constant = constants
            .lines()
            .find(|l| l.contains(&format!("&str = \"{name}\"")))
            .and_then(|l| l.split_whitespace().nth(2))
            .map(|c| c.trim_end_matches(':').to_string())
            .unwrap_or_else(|| panic!("{name}: no constant"));
        let word = Regex::new(&format!(r"\b{constant}\b")).unwrap();
        let mut sets = BTreeSet::new();
        let mut found = false;
        for (file, code) in &sources {
            for m in word.find_iter(code) {
                // The call this use is an argument of: `.count(` / `.put(` since the last `;`.
                let before = &code[..m.start()];
                let stmt = before.rfind([';', '{', '}']).map_or(0, |i| i + 1);
                let Some(call) = [".count(", ".put("]
                    .iter()
                    .filter_map(|c| before[stmt..].rfind(c).map(|i| stmt + i))
                    .max()
                else {
                    continue;
                };
                let end = code[m.end()..]
                    .find(");")
                    .map_or(code.len(), |i| m.end() + i);
                let args = &code[call..end];
                let mut dims: BTreeSet<String> =
                    dim.captures_iter(args).map(|c| c[1].to_string()).collect();
                if dims.is_empty() && args.contains("&at") {
                    let def = before.rfind("let at = [").unwrap_or_else(|| {
                        panic!("{file}: {constant} passes `at`, defined where?")
                    });
                    let def_end = code[def..].find("];").map_or(code.len(), |i| def + i);
                    dims = dim
                        .captures_iter(&code[def..def_end])
                        .map(|c| c[1].to_string())
                        .collect();
                } else if dims.is_empty() && !args.contains("&[]") {
                    // A helper of the file that adds the dimensions (the SP-API client's `count`).
                    let helper = code.find("fn count(&self, name: &str").unwrap_or_else(|| {
                        panic!("{file}: cannot tell which dimensions {constant} gets: {args}")
                    });
                    let body_end = code[helper..]
                        .find("\n    }")
                        .map_or(code.len(), |i| helper + i);
                    dims = dim
                        .captures_iter(&code[helper..body_end])
                        .map(|c| c[1].to_string())
                        .collect();
                    assert!(!dims.is_empty(), "{file}: {constant}: no dimensions found");
                }
                sets.extend(dims);
                found = true;
            }
        }
        assert!(found, "metric {name} ({constant}): no call site found");
        out.insert(name, sets);
    }
    out
}

#[test]
fn docs_metrics_names_the_dimension_each_metric_is_emitted_with() {
    let emitted = emitted();
    let doc = read("docs/metrics.md");
    let row = Regex::new(r"(?m)^\| `(\w+)` \| \w+ \| ([^|]*) \|").unwrap();
    let documented: BTreeMap<String, String> = row
        .captures_iter(&doc)
        .map(|c| (c[1].to_string(), c[2].trim().to_string()))
        .collect();
    let mut problems = Vec::new();
    for (name, own) in &emitted {
        let shown = own
            .iter()
            .map(|d| format!("`{d}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let shown = if shown.is_empty() {
            "–".to_string()
        } else {
            shown
        };
        match documented.get(*name) {
            None => problems.push(format!("docs/metrics.md has no row for {name}")),
            Some(d) if *d != shown => problems.push(format!(
                "docs/metrics.md gives {name} the dimension {d}; the code emits {shown}"
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_dashboard_reads_only_metrics_and_dimension_sets_the_code_emits() {
    let cfn = cfn();
    let emitted = emitted();
    let dlqs = dlqs(&cfn);
    let dashboards = resources_of(&cfn, "AWS::CloudWatch::Dashboard");
    assert_eq!(
        dashboards.len(),
        1,
        "one dashboard (each costs money), when it is on"
    );
    let body = dashboards.values().next().unwrap()["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is one !Sub string");
    // ${AWS::StackName} → STACK, ${X.QueueName} → QUEUE:X (the test cannot resolve them).
    let sub = Regex::new(r"\$\{([^}!]+)\}").unwrap();
    let body = sub.replace_all(body, |c: &regex::Captures| match &c[1] {
        "AWS::StackName" => "STACK".to_string(),
        "AWS::Region" => "REGION".to_string(),
        other => match other.strip_suffix(".QueueName") {
            Some(q) => format!("QUEUE:{q}"),
            None => panic!("the dashboard substitutes {other}, which this test does not know"),
        },
    });
    let body: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    let search = Regex::new(r#"^SEARCH\('\{([^}]*)\} (.*)', '(\w+)', \d+\)$"#).unwrap();
    let metric_name = Regex::new(r#"MetricName="(\w+)""#).unwrap();
    let mut problems = Vec::new();
    let mut read_metrics = BTreeSet::new();
    let mut read_dlqs = BTreeSet::new();
    let widgets = body["widgets"].as_array().expect("widgets");
    for w in widgets {
        let title = w["properties"]["title"].as_str().unwrap_or("?");
        let mut previous: Vec<Value> = Vec::new();
        for row in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let row = row.as_array().expect("a metric row is an array");
            if let Some(expr) = row.first().and_then(|r| r.get("expression")) {
                let expr = expr.as_str().unwrap();
                let Some(c) = search.captures(expr) else {
                    problems.push(format!(
                        "{title}: an expression this test cannot check: {expr}"
                    ));
                    continue;
                };
                let mut schema = c[1].split(',').map(str::trim);
                let namespace = schema.next().unwrap();
                let set: BTreeSet<String> = schema.map(String::from).collect();
                let Some(m) = metric_name.captures(&c[2]) else {
                    problems.push(format!("{title}: a SEARCH without MetricName: {expr}"));
                    continue;
                };
                check(namespace, &m[1], &set, title, &emitted, &mut problems);
                if !c[2].contains("Stack=\"STACK\"") {
                    problems.push(format!("{title}: a SEARCH not limited to this stack"));
                }
                read_metrics.insert(m[1].to_string());
                continue;
            }
            // [namespace, name, dim, value, ..., {options}]; "." repeats the row above.
            let mut cells: Vec<Value> = row.iter().filter(|c| !c.is_object()).cloned().collect();
            for (i, c) in cells.iter_mut().enumerate() {
                if c == "." {
                    *c = previous.get(i).cloned().unwrap_or(Value::Null);
                }
            }
            previous = cells.clone();
            let s: Vec<&str> = cells.iter().filter_map(Value::as_str).collect();
            if s.len() < 2 || !s.len().is_multiple_of(2) {
                problems.push(format!(
                    "{title}: a metric row this test cannot read: {row:?}"
                ));
                continue;
            }
            let dims: BTreeMap<&str, &str> = s[2..].chunks(2).map(|p| (p[0], p[1])).collect();
            let set: BTreeSet<String> = dims.keys().map(|d| d.to_string()).collect();
            match s[0] {
                "flexbridge" => {
                    check("flexbridge", s[1], &set, title, &emitted, &mut problems);
                    if dims.get("Stack") != Some(&"STACK") {
                        problems.push(format!("{title}: {} not on this stack", s[1]));
                    }
                    read_metrics.insert(s[1].to_string());
                }
                "AWS/SQS" => {
                    let q = dims
                        .get("QueueName")
                        .and_then(|q| q.strip_prefix("QUEUE:"))
                        .filter(|q| dlqs.contains(*q));
                    match (s[1], q, dims.len()) {
                        ("ApproximateNumberOfMessagesVisible", Some(q), 1) => {
                            read_dlqs.insert(q.to_string());
                        }
                        _ => problems.push(format!("{title}: {row:?} is not a DLQ's depth")),
                    }
                }
                other => problems.push(format!("{title}: namespace {other} is not ours")),
            }
        }
    }
    // What the dashboard is for, and nothing the functions publish only for it is unread
    // (an unread series is $0.30 a month for nothing).
    let mut wanted: BTreeSet<String> = flexbridge::metrics::names::DASHBOARD
        .iter()
        .map(|m| m.to_string())
        .collect();
    wanted.insert("NeedsAttention".into());
    wanted.insert("SpApiThrottles".into());
    for m in &wanted {
        if !read_metrics.contains(m) {
            problems.push(format!("the dashboard does not show {m}"));
        }
    }
    for q in &dlqs {
        if !read_dlqs.contains(q) {
            problems.push(format!("the dashboard does not show the depth of {q}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn check(
    namespace: &str,
    metric: &str,
    set: &BTreeSet<String>,
    title: &str,
    emitted: &BTreeMap<&'static str, BTreeSet<String>>,
    problems: &mut Vec<String>,
) {
    if namespace != flexbridge::metrics::NAMESPACE {
        problems.push(format!(
            "{title}: namespace {namespace} is not flexbridge's"
        ));
        return;
    }
    if !emitted.contains_key(metric) {
        problems.push(format!("{title}: {metric} is not a value the code emits"));
    } else if !flexbridge::metrics::Extract::WithDashboard.covers(metric) {
        problems.push(format!(
            "{title}: {metric} is not published as a metric, even with the dashboard on"
        ));
    } else if set.iter().map(String::as_str).ne(["Stack"]) {
        problems.push(format!(
            "{title}: {metric} is published on [Stack] only, never on {set:?}"
        ));
    }
}

#[test]
fn the_saved_log_queries_cover_every_function_and_read_the_fields_telemetry_writes() {
    let cfn = cfn();
    let log_groups: BTreeSet<String> = resources_of(&cfn, "AWS::Lambda::Function")
        .values()
        .filter_map(|f| logical_of(&f["Properties"]["LoggingConfig"]["LogGroup"]))
        .map(String::from)
        .collect();
    assert_eq!(log_groups.len(), function_names(&cfn).len());
    let queries = resources_of(&cfn, "AWS::Logs::QueryDefinition");
    let mut problems = Vec::new();
    let text_of = |id: &str| queries[id]["Properties"]["QueryString"].as_str().unwrap();
    for (id, q) in &queries {
        let groups: BTreeSet<String> = q["Properties"]["LogGroupNames"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(logical_of)
            .map(String::from)
            .collect();
        if groups != log_groups {
            problems.push(format!(
                "{id} reads {groups:?}, not every function's log group {log_groups:?}"
            ));
        }
    }
    // The names flexbridge::telemetry writes (shipment_span; the JSON subscriber's level).
    let story = text_of("ShipmentStoryQuery");
    for field in ["span.correlation_id", "fields.correlation_id"] {
        if !story.contains(field) {
            problems.push(format!("ShipmentStoryQuery does not filter on {field}"));
        }
    }
    // The NeedsAttention alarm sends the seller to "<stack>/alerts": every alert's line.
    if !text_of("AlertsQuery").contains("filter ispresent(fields.alert)") {
        problems.push("AlertsQuery does not filter on fields.alert".into());
    }
    // The figures the dashboard showed, free, from the value lines.
    for m in flexbridge::metrics::names::DASHBOARD {
        let in_query =
            text_of("FiguresQuery").contains(m) || text_of("SpApiCallsQuery").contains(m);
        if !in_query {
            problems.push(format!("no saved query reads {m}"));
        }
    }
    if !text_of("ErrorsQuery").contains("level = \"ERROR\"") {
        problems.push("ErrorsQuery does not filter on level = \"ERROR\"".into());
    }
    let telemetry = read("shared/src/telemetry.rs");
    assert!(
        telemetry.contains("correlation_id = correlation_id") && telemetry.contains(".json()"),
        "telemetry no longer writes JSON lines with span.correlation_id: update the queries"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
