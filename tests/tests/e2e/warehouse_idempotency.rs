//! The idempotency helper over the real `IdempotencyTable` (from template.yaml, in moto): the
//! same cases the in-memory unit tests cover, so the DynamoDB condition expressions are proven.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use flexbridge::idempotency::{
    payload_hash, Begin, Claim, DynamoIdempotencyStore, Idempotency, IdempotencyStore, Outcome,
    Status,
};
use flexbridge::runtime::Invocation;
use flexbridge::Error;
use flexbridge_e2e::{TestOptions, TestStack};
use serde_json::json;

const TTL: Duration = Duration::from_secs(3600);

fn inv() -> Invocation {
    Invocation::new("req", Duration::from_secs(30))
}

#[tokio::test]
async fn the_idempotency_table_claims_replays_refuses_and_retakes() -> Result<()> {
    flexbridge_e2e::init_logging();
    let t = TestStack::start_with(
        "warehouse_idempotency",
        TestOptions {
            simulator: false,
            seed_seller: false,
            ..Default::default()
        },
    )
    .await?;
    let store = Arc::new(DynamoIdempotencyStore::new(
        t.dynamodb.clone(),
        t.stack.table("IdempotencyTable"),
    ));
    let at = |offset: Duration| {
        let now = SystemTime::now() + offset;
        Idempotency::new(store.clone(), TTL).with_clock(move || now)
    };
    let idem = at(Duration::ZERO);
    let runs = AtomicU32::new(0);
    let payload = json!({"shipmentId": "S1", "operation": "CONFIRM"});

    // Fresh claim, then a replay of the saved result without running again.
    for expected in [false, true] {
        let out = idem
            .execute("confirm#S1", &payload, &inv(), |claim| {
                runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(claim, Claim::Fresh);
                    Ok::<_, Error>(json!({"status": "ACCEPTED"}))
                }
            })
            .await?;
        assert_eq!(out.is_replay(), expected);
        assert_eq!(out.into_value(), json!({"status": "ACCEPTED"}));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let rec = store.get("confirm#S1").await?.expect("record");
    assert_eq!(rec.status, Status::Completed);
    assert_eq!(rec.validation, Some(payload_hash(&payload)?));

    // Same key, other payload.
    let err = idem
        .run("confirm#S1", &json!({"other": 1}), &inv(), |_| async {
            Ok::<_, Error>(json!(null))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");

    // A live claim held by another invocation: retryable conflict, the work does not run.
    let Begin::Claimed(_held) = idem.begin("confirm#S2", "h2", &inv()).await? else {
        panic!("first claim")
    };
    match at(Duration::from_secs(5))
        .begin("confirm#S2", "h2", &inv())
        .await?
    {
        Begin::InProgress { retry_after } => assert!(retry_after >= Duration::from_secs(20)),
        other => panic!("expected in progress, got {other:?}"),
    }

    // That invocation died: after its deadline the claim is retaken, and the caller is told.
    let later = at(Duration::from_secs(31));
    match later.begin("confirm#S2", "h2", &inv()).await? {
        Begin::Claimed(token) => {
            assert_eq!(token.claim, Claim::Retaken);
            later.complete(&token, &json!("reconciled")).await?;
        }
        other => panic!("expected a retaken claim, got {other:?}"),
    }
    assert_eq!(
        store.get("confirm#S2").await?.unwrap().data.as_deref(),
        Some("\"reconciled\"")
    );

    // An error releases the claim so the retry runs at once.
    let err = idem
        .run("confirm#S3", &3, &inv(), |_| async {
            Err::<(), _>(Error::Transient {
                message: "amazon 503".into(),
                after: None,
            })
        })
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(store.get("confirm#S3").await?.is_none(), "claim released");
    idem.run("confirm#S3", &3, &inv(), |c| async move {
        assert_eq!(c, Claim::Fresh);
        Ok::<_, Error>(())
    })
    .await?;

    // An expired COMPLETED record (TTL not yet swept, as moto never sweeps) counts as absent.
    let out = at(TTL + Duration::from_secs(10))
        .execute(
            "confirm#S1",
            &json!("new payload"),
            &inv(),
            |c| async move { Ok::<_, Error>(c.is_retaken()) },
        )
        .await?;
    assert_eq!(
        out,
        Outcome::Executed {
            value: false,
            claim: Claim::Fresh
        }
    );
    Ok(())
}
