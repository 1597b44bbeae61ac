//! AWS SDK configuration, and the few AWS wire formats every function reads.
//!
//! In Lambda the SDK configures itself from the process. Tests and the local runner hand a
//! function an [`Env`] whose `AWS_ENDPOINT_URL` points at moto; [`config`] then uses static test
//! credentials and us-east-1 (unless the `Env` names others), and [`s3_client`] switches S3 to
//! path-style addressing, without anyone touching the process environment.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use serde::Deserialize;

use crate::config::{keys, Env};
use crate::error::{Error, Result};

/// The SDK configuration for a function built from `env` (the one way functions get one).
pub async fn config(env: &Env) -> SdkConfig {
    match env.optional(keys::AWS_ENDPOINT_URL) {
        Some(url) => load_with_endpoint_env(url, env).await,
        None => load().await,
    }
}

/// Loads the SDK configuration from the process (Lambda).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A configuration pointed at `url` (moto) with static test credentials in us-east-1.
pub async fn load_with_endpoint(url: &str) -> SdkConfig {
    load_with_endpoint_env(url, &Env::default()).await
}

async fn load_with_endpoint_env(url: &str, env: &Env) -> SdkConfig {
    let region = env.optional(keys::AWS_REGION).unwrap_or("us-east-1");
    let key = env.optional(keys::AWS_ACCESS_KEY_ID).unwrap_or("testing");
    let secret = env
        .optional(keys::AWS_SECRET_ACCESS_KEY)
        .unwrap_or("testing");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            key,
            secret,
            None,
            None,
            "flexbridge-static",
        ))
        .load()
        .await
}

pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

pub fn eventbridge_client(config: &SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(config)
}

pub fn secrets_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}

/// One object-created notification, as S3 sends it to SQS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ObjectCreated {
    pub bucket: String,
    /// The object key, decoded (S3 form-encodes it in notifications: `+` = space, `%2F` = `/`).
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub event_name: String,
    pub event_time: Option<String>,
    /// The object version (versioned buckets on AWS; moto sends none).
    pub version_id: Option<String>,
    /// S3's order of events on one key (AWS; moto sends none).
    pub sequencer: Option<String>,
}

/// Parses the body of an S3 → SQS notification leniently.
///
/// `aws_lambda_events::s3::S3Event` insists on fields real S3 sends but moto does not
/// (`userIdentity`, `requestParameters`, ...), so this reads only what it needs. S3's
/// `s3:TestEvent` (sent when notifications are configured) yields an empty list; records
/// that are not `ObjectCreated:*` are skipped; a body that is not an S3 notification at all
/// is an [`Error::InvalidInput`].
pub fn parse_s3_notification(body: &str) -> Result<Vec<S3ObjectCreated>> {
    #[derive(Deserialize)]
    struct Notification {
        #[serde(rename = "Event", default)]
        event: Option<String>,
        #[serde(rename = "Records", default)]
        records: Option<Vec<Record>>,
    }
    #[derive(Deserialize)]
    struct Record {
        #[serde(rename = "eventName", default)]
        event_name: String,
        #[serde(rename = "eventTime", default)]
        event_time: Option<String>,
        s3: S3,
    }
    #[derive(Deserialize)]
    struct S3 {
        bucket: Bucket,
        object: Object,
    }
    #[derive(Deserialize)]
    struct Bucket {
        name: String,
    }
    #[derive(Deserialize)]
    struct Object {
        key: String,
        #[serde(default)]
        size: Option<u64>,
        #[serde(rename = "eTag", default)]
        etag: Option<String>,
        #[serde(rename = "versionId", default)]
        version_id: Option<String>,
        #[serde(default)]
        sequencer: Option<String>,
    }

    let n: Notification = serde_json::from_str(body)
        .map_err(|e| Error::InvalidInput(format!("not an S3 notification: {e}")))?;
    if n.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let records = n.records.ok_or_else(|| {
        Error::InvalidInput("not an S3 notification: no Records and no Event".into())
    })?;
    Ok(records
        .into_iter()
        .filter(|r| r.event_name.starts_with("ObjectCreated:"))
        .map(|r| S3ObjectCreated {
            bucket: r.s3.bucket.name,
            key: decode_key(&r.s3.object.key),
            size: r.s3.object.size,
            etag: r.s3.object.etag,
            event_name: r.event_name,
            event_time: r.event_time,
            // An unversioned object's notification may say `null`.
            version_id: r
                .s3
                .object
                .version_id
                .filter(|v| !v.is_empty() && v != "null"),
            sequencer: r.s3.object.sequencer.filter(|s| !s.is_empty()),
        })
        .collect())
}

fn decode_key(raw: &str) -> String {
    form_urlencoded::parse(format!("k={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_motos_record_without_user_identity_and_decodes_the_key() {
        let body = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-21T08:21:13.408Z", "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
            "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
            "object": {"key": "catalog%2Fa+b%2Bc.csv", "size": 3, "eTag": "e"}}}]}"#;
        let got = parse_s3_notification(body).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bucket, "b");
        assert_eq!(got[0].key, "catalog/a b+c.csv");
        assert_eq!(got[0].size, Some(3));
    }

    #[test]
    fn keeps_the_version_and_sequencer_aws_sends() {
        let body = r#"{"Records":[
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"x"}}},
            {"eventName":"ObjectCreated:Put","eventTime":"2026-11-21T08:21:13.408Z","s3":{"bucket":{"name":"b"},
             "object":{"key":"catalog%2Fa.csv","versionId":"v7","sequencer":"0055AED6DCD90281E5"}}},
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"prices%2Fp.csv","versionId":"null"}}}]}"#;
        let got = parse_s3_notification(body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, "catalog/a.csv");
        assert_eq!(got[0].version_id.as_deref(), Some("v7"));
        assert_eq!(got[0].sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        assert_eq!(
            (got[1].version_id.as_ref(), got[1].sequencer.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn skips_test_events_and_other_event_names() {
        let test = r#"{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}"#;
        assert!(parse_s3_notification(test).unwrap().is_empty());
        let removed = r#"{"Records": [{"eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}"#;
        assert!(parse_s3_notification(removed).unwrap().is_empty());
    }

    #[test]
    fn refuses_bodies_that_are_not_notifications() {
        let err = parse_s3_notification(r#"{"hello": 1}"#).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(parse_s3_notification("nope").is_err());
    }
}
