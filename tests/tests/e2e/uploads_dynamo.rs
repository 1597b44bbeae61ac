//! `flexbridge::store::dynamo::batch_write` against a stand-in DynamoDB that hands items back
//! as `UnprocessedItems` (moto never does): they are sent again, only they, until all are
//! written, in requests of at most 25.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use flexbridge::retry::RetryPolicy;
use flexbridge::store::dynamo::{batch_write, Batching};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers BatchWriteItem: the first `throttled` requests get their last item back unprocessed.
async fn fake_dynamodb(throttled: usize) -> Result<(String, Arc<Mutex<Vec<Vec<String>>>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let served = Arc::new(AtomicUsize::new(0));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock, log.clone(), served.clone(), throttled));
        }
    });
    Ok((url, seen))
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<Vec<String>>>>,
    served: Arc<AtomicUsize>,
    throttled: usize,
) {
    loop {
        // One HTTP/1.1 request: headers, then Content-Length bytes of JSON.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let n = match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < header_end + len {
            let n = sock.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Value =
            serde_json::from_slice(&buf[header_end..header_end + len]).unwrap_or(Value::Null);
        let requests = body["RequestItems"]["t"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let skus: Vec<String> = requests
            .iter()
            .map(|r| {
                r["PutRequest"]["Item"]["pk"]["S"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        log.lock().unwrap().push(skus);
        let unprocessed = if served.fetch_add(1, Ordering::SeqCst) < throttled {
            json!({"t": [requests.last().cloned().unwrap_or(Value::Null)]})
        } else {
            json!({})
        };
        let out = json!({ "UnprocessedItems": unprocessed }).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{out}",
            out.len()
        );
        if sock.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn put(pk: &str) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .item("pk", AttributeValue::S(pk.into()))
                .item("sk", AttributeValue::S("ITEM".into()))
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn unprocessed_items_are_sent_again_in_batches_of_25() -> Result<()> {
    let (url, seen) = fake_dynamodb(2).await?;
    let sdk = flexbridge::aws::load_with_endpoint(&url).await;
    let client = flexbridge::aws::dynamodb_client(&sdk);
    let requests: Vec<WriteRequest> = (0..30).map(|i| put(&format!("SKU#{i:02}"))).collect();
    let batching = Batching {
        concurrency: 1,
        policy: RetryPolicy::new(5, Duration::from_millis(1), Duration::from_millis(5)),
        deadline: None,
    };
    batch_write(&client, "t", requests, batching).await?;
    let calls = seen.lock().unwrap().clone();
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    // 25 with its last item handed back, that item again (handed back once more), again
    // (written), then the remaining 5.
    assert_eq!(sizes, [25, 1, 1, 5], "{calls:?}");
    assert_eq!(
        (calls[1].as_slice(), calls[2].as_slice()),
        (&["SKU#24".to_string()][..], &["SKU#24".to_string()][..])
    );
    let mut written: Vec<String> = calls.concat();
    written.sort();
    written.dedup();
    assert_eq!(written.len(), 30);
    Ok(())
}

#[tokio::test]
async fn items_still_unprocessed_after_every_attempt_are_a_retryable_error() -> Result<()> {
    let (url, _seen) = fake_dynamodb(usize::MAX).await?;
    let sdk = flexbridge::aws::load_with_endpoint(&url).await;
    let client = flexbridge::aws::dynamodb_client(&sdk);
    let batching = Batching {
        concurrency: 1,
        policy: RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(2)),
        deadline: None,
    };
    let err = batch_write(&client, "t", vec![put("SKU#1")], batching)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("unprocessed"), "{err}");
    Ok(())
}
