//! The standalone binary, and notifications to an SQS queue in moto (via AWS_ENDPOINT_URL).
use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves() {
    let (_guard, base) =
        spawn(&["--listen", "127.0.0.1:0", "--seed", "5", "--no-rate-limits"]).await;
    assert!(base.starts_with("http://127.0.0.1:"));
    let http = reqwest::Client::new();
    let t = token(&http, &base).await;
    let a = spapi_sim::AdminClient::new(&base);
    a.create_location("FLEX", MP, "FBA").await.unwrap();
    a.create_random_shipments("FLEX", 3).await.unwrap();
    let r = http
        .get(format!("{base}{SHIPMENTS}?status=ACCEPTED"))
        .header("x-amz-access-token", t)
        .header("user-agent", "t/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["shipments"].is_array(), "{v}");
}

async fn spawn(args: &[&str]) -> (Kill, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spapi-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        BufReader::new(out).read_line(&mut l).unwrap();
        l
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("spapi-sim listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    (Kill(child), base)
}

#[tokio::test]
async fn fault_flags_apply_to_every_operation() {
    let (_k, base) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--no-rate-limits",
        "--fault-503-rate",
        "1",
    ])
    .await;
    let http = reqwest::Client::new();
    let t = token(&http, &base).await;
    let r = http
        .get(format!("{base}{SHIPMENTS}?status=ACCEPTED"))
        .header("x-amz-access-token", &t)
        .header("user-agent", "t/1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let faults = r#"{"operations":{"getReturn":{"script":["throttle"]}}}"#;
    let (_k2, base2) = spawn(&["--listen", "127.0.0.1:0", "--faults-json", faults]).await;
    let t2 = token(&http, &base2).await;
    let get = |u: String| {
        http.get(u)
            .header("x-amz-access-token", &t2)
            .header("user-agent", "t/1")
            .send()
    };
    assert_eq!(
        get(format!("{base2}{RETURNS}/R1")).await.unwrap().status(),
        429
    );
    assert_eq!(
        get(format!("{base2}{RETURNS}/R1")).await.unwrap().status(),
        404
    );
}

/// moto_server from $MOTO_SERVER, the repo's .venv or .venv-ci (as `python -m moto.server`:
/// the interpreter works wherever the checkout moved, a console script's `#!` line does not),
/// or PATH.
fn moto_server() -> Command {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return Command::new(p);
    }
    let repo = spapi_sim::models::checkout_root().unwrap();
    for v in [".venv", ".venv-ci"] {
        let python = repo.join(v).join("bin/python");
        if repo.join(v).join("bin/moto_server").is_file() && python.is_file() {
            let mut c = Command::new(python);
            c.args(["-m", "moto.server"]);
            return c;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return Command::new(p);
            }
        }
    }
    panic!("moto_server not found: set MOTO_SERVER or install it (python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5')");
}

#[tokio::test]
async fn notifications_reach_an_sqs_queue_in_moto() {
    let mut child = moto_server()
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let err = child.stderr.take().unwrap();
    let _guard = Kill(child);
    let port = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(err);
        let mut l = String::new();
        loop {
            l.clear();
            if r.read_line(&mut l).unwrap() == 0 {
                panic!("moto exited");
            }
            if let Some(i) = l.find("Running on http://127.0.0.1:") {
                let p: String = l[i + 28..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                // keep draining stderr so moto never blocks on a full pipe
                std::thread::spawn(move || for _ in r.lines() {});
                return p;
            }
        }
    })
    .await
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    // This test binary holds only this test that touches the AWS environment.
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let mut queue = None;
    for _ in 0..50 {
        match sqs
            .create_queue()
            .queue_name("sim-notifications")
            .send()
            .await
        {
            Ok(q) => {
                queue = q.queue_url;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let queue = queue.expect("moto answers");

    let sim = start().await;
    sim.setup_locations().await;
    let a = sim.handle.admin();
    a.add_notification_destination(json!({ "sqsQueueUrl": queue }))
        .await
        .unwrap();
    let s = sim.shipment(json!({"locationId": "FLEX"})).await;
    let id = s["id"].as_str().unwrap();
    sim.confirm(id).await;
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            bodies.push(serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap());
        }
        if bodies.len() >= 2 {
            break;
        }
    }
    let statuses: Vec<&str> = bodies
        .iter()
        .map(|b| {
            b["payload"]["externalFulfillmentShipmentNotification"]["shipmentStatus"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, ["ACCEPTED", "CONFIRMED"]);
    assert_eq!(
        bodies[1]["payload"]["externalFulfillmentShipmentNotification"]["shipmentId"],
        id
    );
    assert_eq!(
        bodies[1]["notificationType"],
        "EXTERNAL_FULFILLMENT_SHIPMENT_STATUS_CHANGE"
    );
}
