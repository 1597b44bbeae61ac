//! The operator CLI against the local stack (moto + the simulator): every command through the
//! binary's own entry point (`flexbridge_cli::run_with`), the stack found by its name as an
//! operator's would be. One stack, one test: settings (a refused invalid change, the change
//! log), hubs (one Amazon does not know is refused), status, shipment, upload, halted pushes,
//! DLQs, reconcile, `--help` and helpful errors.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{anyhow, Result};
use flexbridge::store::inventory::{DynamoInventoryStore, PushHalt, PushLedger};
use flexbridge_cli::{run_with, CliError};
use flexbridge_e2e::{eventually, TestStack};
use flexbridge_local::RunnerOptions;
use serde_json::{json, Value};

const EAST: &str = "SIMLOC-EAST-1";

struct Cli {
    stack: String,
    vars: HashMap<String, String>,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> Result<String, CliError> {
        let mut all = vec!["flexbridge", "--stack", self.stack.as_str()];
        all.extend_from_slice(args);
        run_with(all, self.vars.clone()).await
    }

    async fn ok(&self, args: &[&str]) -> Result<String> {
        self.run(args)
            .await
            .map_err(|e| anyhow!("flexbridge {}: {e}", args.join(" ")))
    }

    async fn json(&self, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        Ok(serde_json::from_str(&self.ok(&a).await?)?)
    }

    async fn refused(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(out) => panic!("flexbridge {} succeeded: {out}", args.join(" ")),
            Err(e) => e.to_string(),
        }
    }
}

fn setting<'a>(all: &'a Value, name: &str) -> &'a Value {
    all.as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no setting {name} in {all}"))
}

#[tokio::test]
async fn every_cli_command_against_the_local_stack() -> Result<()> {
    let t = TestStack::start("operator_cli").await?;
    let sim = t.sim();
    let cli = Cli {
        stack: t.stack.name.clone(),
        vars: HashMap::from([
            ("AWS_ENDPOINT_URL".to_string(), t.endpoint().to_string()),
            ("SPAPI_ENDPOINT".to_string(), sim.base_url.clone()),
            ("LWA_ENDPOINT".to_string(), sim.lwa_url()),
        ]),
    };

    // --help everywhere; usage errors and a wrong stack say what to do.
    for cmd in [
        vec!["--help"],
        vec!["status", "--help"],
        vec!["doctor", "--help"],
        vec!["settings", "set", "--help"],
        vec!["hubs", "add", "--help"],
        vec!["upload", "--help"],
        vec!["shipment", "--help"],
        vec!["inventory", "--help"],
        vec!["dlq", "redrive", "--help"],
        vec!["reconcile", "--help"],
        vec!["secret", "rotate", "--help"],
    ] {
        match cli.run(&cmd).await {
            Err(CliError::Usage(e)) => {
                assert_eq!(
                    e.kind(),
                    flexbridge_cli::clap::error::ErrorKind::DisplayHelp,
                    "{cmd:?}"
                );
                assert!(e.to_string().contains("Usage:"), "{cmd:?}: {e}");
            }
            other => panic!("{cmd:?}: {other:?}"),
        }
    }
    assert!(matches!(
        cli.run(&["upload", "f.csv", "--kind", "shoes"]).await,
        Err(CliError::Usage(_))
    ));
    let err = run_with(["flexbridge", "status"], cli.vars.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--stack"), "{err}");
    let err = run_with(
        ["flexbridge", "--stack", "no-such-stack", "status"],
        cli.vars.clone(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("no flexbridge stack named"), "{err}");

    // Settings: the seeded values, a refused invalid change, a valid one, the change log.
    let all = cli.json(&["settings", "get"]).await?;
    assert_eq!(setting(&all, "inventory_push_enabled")["value"], true);
    assert_eq!(setting(&all, "inventory_push_enabled")["updatedBy"], "seed");
    assert_eq!(setting(&all, "inventory_breaker_zero_share")["set"], false);
    let err = cli
        .refused(&[
            "settings",
            "set",
            "inventory_breaker_zero_share",
            "1.5",
            "--by",
            "ana",
        ])
        .await;
    assert!(err.contains("a number from 0 to 1"), "{err}");
    let err = cli
        .refused(&[
            "settings",
            "set",
            "inventory_push_enabled",
            "maybe",
            "--by",
            "ana",
        ])
        .await;
    assert!(err.contains("true or false"), "{err}");
    let err = cli
        .refused(&["settings", "set", "no_such_setting", "1", "--by", "ana"])
        .await;
    assert!(err.contains("unknown setting"), "{err}");
    let err = cli
        .refused(&[
            "settings",
            "set",
            "fulfilment_auto_cancel",
            "false",
            "--location",
            "NOWHERE",
            "--by",
            "ana",
        ])
        .await;
    assert!(err.contains("not mapped"), "{err}");
    let log = cli
        .ok(&["settings", "log", "inventory_breaker_zero_share"])
        .await?;
    assert!(
        log.contains("never changed"),
        "refused changes wrote nothing: {log}"
    );

    let out = cli
        .ok(&[
            "settings",
            "set",
            "inventory_breaker_zero_share",
            "0.25",
            "--by",
            "ana",
        ])
        .await?;
    assert!(
        out.contains("(default) -> 0.25 (version 1, by ana)"),
        "{out}"
    );
    cli.ok(&[
        "settings",
        "set",
        "inventory_breaker_zero_share",
        "0.3",
        "--by",
        "bo",
    ])
    .await?;
    cli.ok(&[
        "settings",
        "set",
        "fulfilment_auto_cancel",
        "false",
        "--location",
        EAST,
        "--by",
        "ana",
    ])
    .await?;
    let log = cli
        .json(&["settings", "log", "inventory_breaker_zero_share"])
        .await?;
    assert_eq!(
        log,
        json!([
            {"version": 2, "at": log[0]["at"], "by": "bo", "old": 0.25, "new": 0.3},
            {"version": 1, "at": log[1]["at"], "by": "ana", "old": null, "new": 0.25},
        ])
    );
    let one = cli
        .json(&["settings", "get", "fulfilment_auto_cancel"])
        .await?;
    assert_eq!(
        one[0]["value"],
        json!({"default": true, "locations": {EAST: false}})
    );

    // Hubs: malformed and unknown-to-Amazon mappings are refused; a known one is added,
    // disabled, and both changes are in its log.
    for loc in ["TX01", EAST, "SIMLOC-WEST-1"] {
        sim.admin()
            .create_location(loc, "ATVPDKIKX0DER", "FBA")
            .await?;
    }
    let err = cli
        .refused(&["hubs", "add", "TX1", "--hub", "HUB-TX", "--by", "ops"])
        .await;
    assert!(err.contains("4 letters or digits"), "{err}");
    let err = cli
        .refused(&["hubs", "add", "ZZ99", "--hub", "HUB-TX", "--by", "ops"])
        .await;
    assert!(err.contains("INVALID_LOCATION"), "{err}");
    let out = cli
        .ok(&[
            "hubs", "add", "TX01", "--hub", "HUB-TX", "--name", "Texas", "--by", "ops",
        ])
        .await?;
    assert!(out.starts_with("added (log hub:TX01 v1)"), "{out}");
    cli.ok(&["hubs", "disable", "TX01", "--by", "ana"]).await?;
    let hubs = cli.json(&["hubs", "list"]).await?;
    let ids: Vec<&str> = hubs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["locationId"].as_str())
        .collect();
    assert_eq!(ids, ["SIMLOC-EAST-1", "SIMLOC-WEST-1", "TX01"]);
    assert_eq!(hubs[2]["ordersEnabled"], false);
    let log = cli.json(&["settings", "log", "hub:TX01"]).await?;
    assert_eq!(log.as_array().map(Vec::len), Some(2), "{log}");
    assert_eq!(
        (log[0]["by"].as_str(), &log[0]["new"]["inventoryEnabled"]),
        (Some("ana"), &json!(false))
    );

    // Status before anything ran: no poll yet.
    let s = cli.json(&["status"]).await?;
    assert_eq!(s["locations"][0]["locationId"], EAST);
    assert!(s["locations"][0]["lastSuccessfulPoll"].is_null(), "{s}");

    // The order poller and the upload function run; shipments come in.
    let ids = sim.admin().create_random_shipments(EAST, 2).await?;
    let only: BTreeSet<String> = ["OrderPollerFunction", "UploadIngestFunction"]
        .into_iter()
        .map(String::from)
        .collect();
    let runner = t
        .runner(RunnerOptions {
            speedup: 60.0,
            fire_schedules_at_start: true,
            serve_urls: false,
            only: Some(only),
            ..Default::default()
        })
        .await?;
    let s = eventually(
        Duration::from_secs(60),
        "a successful poll of EAST",
        || async {
            let s = cli.json(&["status"]).await?;
            Ok((!s["locations"][0]["lastSuccessfulPoll"].is_null()).then_some(s))
        },
    )
    .await?;
    assert!(
        s["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["queue"] == "UploadsQueue" && q["dlq"] == "UploadsDLQ"),
        "{s}"
    );
    let text = cli.ok(&["status"]).await?;
    assert!(
        text.contains("SIMLOC-EAST-1") && text.contains("OutboundQueue"),
        "{text}"
    );

    let shown = eventually(Duration::from_secs(30), "the shipment stored", || async {
        Ok(cli.run(&["shipment", &ids[0]]).await.ok())
    })
    .await?;
    assert!(
        shown.contains("seen by flexbridge") && shown.contains(EAST),
        "{shown}"
    );
    let err = cli.refused(&["shipment", "NO-SUCH-SHIPMENT"]).await;
    assert!(err.contains("no shipment NO-SUCH-SHIPMENT"), "{err}");

    // Upload: the file goes under its prefix and the report is printed.
    let dir = std::env::temp_dir().join(format!("fb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("spring.csv");
    std::fs::write(
        &file,
        "SKU,ASIN,Title,Product Type\nMUG-1,B000000001,Mug,KITCHEN\nBAD,b0000x,Plate,KITCHEN\n",
    )?;
    let report = cli
        .json(&[
            "upload",
            file.to_str().unwrap(),
            "--kind",
            "catalog",
            "--wait-secs",
            "60",
        ])
        .await?;
    assert_eq!(report["key"], "catalog/spring.csv");
    assert_eq!(report["report"]["status"], "processed", "{report}");
    assert_eq!(
        (&report["report"]["accepted"], &report["report"]["rejected"]),
        (&json!(1), &json!(1))
    );
    runner.stop().await;

    // A halted push: shown by status, released once; a second decision is refused.
    let ledger = DynamoInventoryStore::new(t.dynamodb.clone(), t.stack.table("InventoryTable"));
    ledger
        .put_halt(&PushHalt {
            location_id: EAST.into(),
            hub: "HUB-NJ".into(),
            status: "halted".into(),
            reason: "would set 10 of 10 advertised SKUs to zero".into(),
            skus_in_push: 10,
            skus_zeroed: 10,
            skus_advertised_before: 10,
            units_before: 100,
            units_after: 0,
            halted_at: chrono::Utc::now().to_rfc3339(),
            decided_by: None,
            decided_at: None,
        })
        .await?;
    let text = cli.ok(&["status"]).await?;
    assert!(text.contains("HALTED: would set 10 of 10"), "{text}");
    assert!(text.contains("inventory push halted"), "{text}");
    let halts = cli.json(&["inventory", "halts"]).await?;
    assert_eq!(halts[0]["status"], "halted");
    let out = cli
        .ok(&["inventory", "release", EAST, "--by", "ana"])
        .await?;
    assert!(out.contains("released by ana"), "{out}");
    let err = cli
        .refused(&["inventory", "discard", EAST, "--by", "bo"])
        .await;
    assert!(err.contains("already released by ana"), "{err}");
    let err = cli
        .refused(&["inventory", "release", "SIMLOC-WEST-1", "--by", "bo"])
        .await;
    assert!(err.contains("no halted push"), "{err}");

    // DLQ: a parked message is listed with its reason and redriven to its queue.
    let dlq = t.stack.queue_url("OutboundDLQ").to_string();
    t.sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(r#"{"detail-type":"ShipmentAccepted"}"#)
        .message_attributes(
            "flexbridge.reason",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("the webhook answered 410")
                .build()?,
        )
        .send()
        .await?;
    let listed = cli.json(&["dlq", "list", "OutboundQueue"]).await?;
    assert_eq!(listed[0]["depth"], 1, "{listed}");
    assert_eq!(
        listed[0]["messages"][0]["reason"],
        "the webhook answered 410"
    );
    let s = cli.json(&["status"]).await?;
    let outbound = s["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "OutboundQueue")
        .unwrap();
    assert_eq!(outbound["dlqVisible"], 1, "{s}");
    // (The order poller's events wait on OutboundQueue too: no webhook function runs here.)
    let before = t.queue_depth("OutboundQueue").await?;
    let out = cli.ok(&["dlq", "redrive", "OutboundDLQ"]).await?;
    assert_eq!(
        out,
        "moved 1 message(s) from OutboundDLQ back to OutboundQueue\n"
    );
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0);
    assert_eq!(t.queue_depth("OutboundQueue").await?, before + 1);
    // What the DLQ holds when the redrive starts, and only that: one of three is in flight (a
    // person reading it) and comes back within the redrive's long polls; it is not left behind.
    for i in 0..3 {
        t.sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(format!(r#"{{"detail-type":"ShipmentAccepted","n":{i}}}"#))
            .send()
            .await?;
    }
    let looked = t
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(1)
        .visibility_timeout(3)
        .send()
        .await?;
    assert_eq!(looked.messages().len(), 1);
    let before = t.queue_depth("OutboundQueue").await?;
    let out = cli.ok(&["dlq", "redrive", "OutboundQueue"]).await?;
    assert_eq!(
        out,
        "moved 3 message(s) from OutboundDLQ back to OutboundQueue\n"
    );
    assert_eq!(t.queue_depth("OutboundDLQ").await?, 0);
    assert_eq!(t.queue_depth("OutboundQueue").await?, before + 3);
    // `status --watch`: frames until the count, the last one's JSON.
    let watched = cli
        .json(&["status", "--watch", "--interval", "1", "--times", "2"])
        .await?;
    assert!(watched["queues"].is_array(), "{watched}");
    let err = cli.refused(&["dlq", "redrive", "Nope"]).await;
    assert!(err.contains("queues with a DLQ"), "{err}");

    // Reconcile: reads Amazon back for every location with inventory sync on.
    let r = cli.json(&["reconcile"]).await?;
    let locs: Vec<&str> = r["locations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["locationId"].as_str())
        .collect();
    assert_eq!(locs, [EAST, "SIMLOC-WEST-1"], "{r}");

    // The secret last: it puts a new version. On a thread of its own: polled from inside this
    // test's future (large in a debug build), the CLI's SDK calls overflow the thread's stack,
    // and the CLI's futures are not Send (a task of its own is no way out).
    let check = SecretCheck {
        cli: Cli {
            stack: cli.stack.clone(),
            vars: cli.vars.clone(),
        },
        endpoint: t.endpoint().to_string(),
        arn: t.stack.secret_arn("FlexbridgeSecret").to_string(),
        seller: t.seller.clone(),
    };
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(the_secret(check))
    })
    .join()
    .map_err(|_| anyhow!("the secret check panicked"))?
}

/// What [`the_secret`] needs of the test's stack, owned (it runs on a thread of its own).
struct SecretCheck {
    cli: Cli,
    endpoint: String,
    arn: String,
    seller: flexbridge_local::seed::Seller,
}

/// `flexbridge secret`: filling credentials keeps both keys; key fields and typos are refused;
/// values are never printed.
async fn the_secret(t: SecretCheck) -> Result<()> {
    let cli = &t.cli;
    assert_eq!(
        cli.ok(&["secret", "show-key", "warehouse"])
            .await?
            .lines()
            .next(),
        Some(t.seller.warehouse_key.as_str())
    );
    let dir = std::env::temp_dir().join(format!("{}-secret", cli.stack));
    std::fs::create_dir_all(&dir)?;
    let file = |name: &str, v: Value| -> Result<String> {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string())?;
        Ok(p.to_string_lossy().into_owned())
    };
    let same = file("same.json", json!({"client_id": t.seller.client_id}))?;
    assert_eq!(
        cli.ok(&["secret", "set", &same]).await?,
        "nothing changed: the secret already holds these values\n"
    );
    let key = file("key.json", json!({"signing_key": "mine"}))?;
    let err = cli.refused(&["secret", "set", &key]).await;
    assert!(err.contains("not a credential field"), "{err}");
    let new = file(
        "new.json",
        json!({"client_secret": "rotated-client-secret", "seller_id": "A1OTHER"}),
    )?;
    // The seed's version replaced the generated keys less than a day ago: that window is open.
    let err = cli.refused(&["secret", "set", &new]).await;
    assert!(err.contains("--end-window"), "{err}");
    let out = cli.ok(&["secret", "set", &new, "--end-window"]).await?;
    assert!(out.contains("client_secret, seller_id"), "{out}");
    assert!(!out.contains("rotated-client-secret"), "{out}");
    let sdk = flexbridge::aws::load_with_endpoint(&t.endpoint).await;
    let stored: Value = serde_json::from_str(
        flexbridge::aws::secrets_client(&sdk)
            .get_secret_value()
            .secret_id(&t.arn)
            .send()
            .await?
            .secret_string()
            .unwrap_or_default(),
    )?;
    assert_eq!(stored["seller_id"], "A1OTHER");
    assert_eq!(stored["signing_key"], t.seller.signing_key.as_str());
    for (which, key) in [
        ("warehouse", &t.seller.warehouse_key),
        ("webhook", &t.seller.webhook_key),
    ] {
        let shown = cli.json(&["secret", "show-key", which]).await?;
        assert_eq!(
            shown["value"],
            key.as_str(),
            "{which}: the keys did not change"
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
