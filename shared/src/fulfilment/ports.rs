//! The narrow views fulfilment needs of Amazon, the bucket and the queues, with the
//! production implementations (SP-API client, S3, SQS).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::spapi::{
    InvoiceResponse, LabelOperation, Package, PackageDeliveryStatus, PackageStatus,
    ShipLabelsInput, ShipLabelsResponse, Shipment, ShippingOptionsResponse, SpApiClient,
};

/// Amazon's shipment operations the label job, shipping and cancellation use.
#[async_trait]
pub trait FulfilmentApi: Send + Sync {
    async fn shipment(&self, id: &str) -> Result<Shipment>;
    async fn create_packages(&self, id: &str, packages: &[Package]) -> Result<()>;
    async fn update_package(&self, id: &str, package: &Package) -> Result<()>;
    async fn shipping_options(&self, id: &str, package_id: &str)
        -> Result<ShippingOptionsResponse>;
    async fn generate_invoice(&self, id: &str) -> Result<InvoiceResponse>;
    async fn retrieve_invoice(&self, id: &str) -> Result<InvoiceResponse>;
    async fn ship_labels(
        &self,
        id: &str,
        operation: LabelOperation,
        shipping_option_id: Option<&str>,
        package_ids: &[String],
    ) -> Result<ShipLabelsResponse>;
    async fn mark_shipped(&self, id: &str, package_id: &str) -> Result<()>;
}

#[async_trait]
impl FulfilmentApi for SpApiClient {
    async fn shipment(&self, id: &str) -> Result<Shipment> {
        Ok(self.get_shipment(id).await?)
    }
    async fn create_packages(&self, id: &str, packages: &[Package]) -> Result<()> {
        Ok(SpApiClient::create_packages(self, id, packages).await?)
    }
    async fn update_package(&self, id: &str, package: &Package) -> Result<()> {
        Ok(SpApiClient::update_package(self, id, package).await?)
    }
    async fn shipping_options(
        &self,
        id: &str,
        package_id: &str,
    ) -> Result<ShippingOptionsResponse> {
        Ok(self.retrieve_shipping_options(id, package_id).await?)
    }
    async fn generate_invoice(&self, id: &str) -> Result<InvoiceResponse> {
        Ok(SpApiClient::generate_invoice(self, id).await?)
    }
    async fn retrieve_invoice(&self, id: &str) -> Result<InvoiceResponse> {
        Ok(SpApiClient::retrieve_invoice(self, id).await?)
    }
    async fn ship_labels(
        &self,
        id: &str,
        operation: LabelOperation,
        shipping_option_id: Option<&str>,
        package_ids: &[String],
    ) -> Result<ShipLabelsResponse> {
        let input = ShipLabelsInput {
            package_ids: package_ids.to_vec(),
            courier_supported_attributes: None,
        };
        Ok(self
            .generate_ship_labels(id, operation, shipping_option_id, &input)
            .await?)
    }
    async fn mark_shipped(&self, id: &str, package_id: &str) -> Result<()> {
        let body = PackageDeliveryStatus {
            status: Some(PackageStatus::Shipped),
            sub_status: None,
            reason: None,
        };
        Ok(self.update_package_status(id, package_id, &body).await?)
    }
}

/// An S3 or SQS failure: their 5xx, timeouts and dropped connections may heal; any other answer
/// (AccessDenied, a missing bucket or queue) is the deployment's.
fn aws_error<E>(
    service: &'static str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::ServiceError(se) => se.raw().status().is_server_error(),
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    Error::aws(service, DisplayErrorContext(&e), retryable)
}

/// A presigned GET link and the time it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The credentials a link is signed with, as far as their end is known. A presigned URL stops
/// working when the credentials that signed it expire, whatever expiry it names (S3 user
/// guide, "Download and upload objects with presigned URLs").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Long-term keys (an IAM user's): a link can live as long as S3 allows.
    LongTerm,
    /// Temporary credentials that say when they expire (STS, SSO, instance or container roles).
    Until(SystemTime),
    /// Temporary credentials (a session token) that do not say: Lambda's role credentials
    /// come from the environment with no expiry, and AWS publishes no lifetime for them.
    Temporary,
}

impl Signer {
    pub fn of(credentials: &aws_sdk_s3::config::Credentials) -> Self {
        match (credentials.expiry(), credentials.session_token()) {
            (Some(until), _) => Signer::Until(until),
            (None, Some(_)) => Signer::Temporary,
            (None, None) => Signer::LongTerm,
        }
    }
}

/// S3's longest presigned life (Signature Version 4).
pub const PRESIGN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// The life of a link signed by temporary credentials of unknown end. An hour is the default
/// session of an assumed role and what flexbridge has always given label links; a link that
/// dies sooner (the role's session ended early) is replaced by asking for a fresh one
/// (`GET /v1/shipments/{id}/labels`, `GET /v1/reports/health/latest`, `flexbridge link`).
pub const UNKNOWN_EXPIRY_LIFE: Duration = Duration::from_secs(3600);

/// How long a link can be made to live: what is `wanted`, no longer than its signer's
/// credentials last (from `now`) and than S3 allows.
pub fn link_life(wanted: Duration, signer: Signer, now: SystemTime) -> Duration {
    let honoured = match signer {
        Signer::LongTerm => PRESIGN_MAX,
        Signer::Until(end) => end.duration_since(now).unwrap_or_default(),
        Signer::Temporary => UNKNOWN_EXPIRY_LIFE,
    };
    wanted.min(honoured).min(PRESIGN_MAX)
}

/// The latest time every one of `links` still works.
pub fn links_expire_at<'a>(links: impl IntoIterator<Item = &'a Link>) -> Option<DateTime<Utc>> {
    links.into_iter().map(|l| l.expires_at).min()
}

/// Label and invoice files: stored under `labels/`, handed out as presigned links, and
/// fetched from Amazon's own presigned URLs.
#[async_trait]
pub trait LabelFiles: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()>;
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// A GET link for up to `wanted` ([`link_life`]: never longer than its signing credentials
    /// last), with the time it really stops working.
    async fn link(&self, key: &str, wanted: Duration) -> Result<Link>;
    /// Downloads Amazon's label file: bytes and `Content-Type`. `Error::NotFound` when the URL
    /// has expired or is refused (403/404): a new label must be asked for.
    async fn download(&self, url: &str) -> Result<(Vec<u8>, String)>;
}

pub struct S3LabelFiles {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub http: reqwest::Client,
    /// What signs links (the S3 client no longer tells its own).
    credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
}

impl S3LabelFiles {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            s3: crate::aws::s3_client(sdk),
            bucket: bucket.into(),
            http,
            credentials: sdk.credentials_provider(),
        })
    }
}

#[async_trait]
impl LabelFiles for S3LabelFiles {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| aws_error("s3", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_error("s3", e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| Error::aws("s3", e, true))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn link(&self, key: &str, wanted: Duration) -> Result<Link> {
        // The link is signed with exactly the credentials whose end is measured here (the
        // client's cache could hold older ones).
        let credentials = self
            .credentials
            .as_ref()
            .ok_or_else(|| Error::Config("no AWS credentials to sign a link with".into()))?
            .provide_credentials()
            .await
            .map_err(|e| Error::aws("sts", DisplayErrorContext(&e), true))?;
        let now = SystemTime::now();
        let life = link_life(wanted, Signer::of(&credentials), now);
        let config = PresigningConfig::builder()
            .start_time(now)
            .expires_in(life)
            .build()
            .map_err(|e| Error::Internal(format!("presigning: {e}")))?;
        let req = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().credentials_provider(credentials),
            )
            .presigned(config)
            .await
            .map_err(|e| aws_error("s3", e))?;
        Ok(Link {
            url: req.uri().to_string(),
            expires_at: DateTime::<Utc>::from(now + life),
        })
    }

    async fn download(&self, url: &str) -> Result<(Vec<u8>, String)> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            // without_url: the URL is presigned, and its signature must not reach a log line
            // or a dead letter's reason.
            .map_err(|e| Error::Transient {
                message: format!("label download: {}", e.without_url()),
                after: None,
            })?;
        let status = resp.status();
        if status.as_u16() == 403 || status.as_u16() == 404 {
            return Err(Error::NotFound(format!(
                "label URL answered {status} (expired or withdrawn)"
            )));
        }
        if !status.is_success() {
            return Err(Error::Transient {
                message: format!("label download answered {status}"),
                after: None,
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = resp.bytes().await.map_err(|e| Error::Transient {
            message: format!("label download: {}", e.without_url()),
            after: None,
        })?;
        Ok((bytes.to_vec(), content_type))
    }
}

/// The file extension for a label's `Content-Type` (Amazon: ZPL `x.application/zpl`,
/// `application/pdf`, `image/png`, `text/plain`).
pub fn extension(content_type: &str) -> &'static str {
    let ct = content_type.to_ascii_lowercase();
    if ct.contains("zpl") {
        "zpl"
    } else if ct.contains("pdf") {
        "pdf"
    } else if ct.contains("png") {
        "png"
    } else if ct.starts_with("text/") {
        "txt"
    } else {
        "bin"
    }
}

/// Where jobs go: LabelsQueue and CancellationsQueue.
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn send(&self, body: &serde_json::Value) -> Result<()>;
}

pub struct SqsJobQueue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send(&self, body: &serde_json::Value) -> Result<()> {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body.to_string())
            .send()
            .await
            .map_err(|e| aws_error("sqs", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_link_lives_no_longer_than_its_signing_credentials() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let week = 7 * 24 * HOUR;
        // Long-term keys: what is wanted, up to S3's 7 days.
        assert_eq!(link_life(HOUR, Signer::LongTerm, now), HOUR);
        assert_eq!(link_life(week, Signer::LongTerm, now), week);
        assert_eq!(link_life(2 * week, Signer::LongTerm, now), PRESIGN_MAX);
        // Credentials that say when they end: never past that.
        let soon = Signer::Until(now + 20 * 60 * Duration::from_secs(1));
        assert_eq!(link_life(week, soon, now), Duration::from_secs(20 * 60));
        assert_eq!(
            link_life(Duration::from_secs(60), soon, now),
            Duration::from_secs(60)
        );
        assert_eq!(
            link_life(HOUR, Signer::Until(now - HOUR), now),
            Duration::ZERO
        );
        // Lambda's role credentials (a session token, no expiry): an hour at most.
        assert_eq!(link_life(week, Signer::Temporary, now), UNKNOWN_EXPIRY_LIFE);
        assert_eq!(
            link_life(Duration::from_secs(600), Signer::Temporary, now),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn the_signer_is_read_from_the_credentials() {
        use aws_sdk_s3::config::Credentials;
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            Signer::of(&Credentials::new("AKIA", "s", None, None, "t")),
            Signer::LongTerm
        );
        assert_eq!(
            Signer::of(&Credentials::new(
                "ASIA",
                "s",
                Some("token".into()),
                None,
                "t"
            )),
            Signer::Temporary
        );
        assert_eq!(
            Signer::of(&Credentials::new(
                "ASIA",
                "s",
                Some("token".into()),
                Some(end),
                "t"
            )),
            Signer::Until(end)
        );
    }

    #[tokio::test]
    async fn a_link_says_when_it_really_expires() {
        use aws_sdk_s3::config::Credentials;
        let files = |credentials: Credentials| {
            let sdk = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                    credentials,
                ))
                .build();
            S3LabelFiles::new(&sdk, "b").unwrap()
        };
        let week = 7 * 24 * HOUR;
        let before = Utc::now();
        // Lambda's credentials: an hour, and the URL says so too.
        let link = files(Credentials::new(
            "ASIA",
            "s",
            Some("tok".into()),
            None,
            "env",
        ))
        .link("reports/health/2026-01-01.html", week)
        .await
        .unwrap();
        assert!(link.url.contains("X-Amz-Expires=3600"), "{}", link.url);
        let life = link.expires_at - before;
        assert!((3599..=3601).contains(&life.num_seconds()), "{life:?}");
        // Credentials ending in 10 minutes: 10 minutes.
        let end = SystemTime::now() + Duration::from_secs(600);
        let link = files(Credentials::new(
            "ASIA",
            "s",
            Some("tok".into()),
            Some(end),
            "sts",
        ))
        .link("labels/x.zpl", HOUR)
        .await
        .unwrap();
        let expires = link
            .url
            .split("X-Amz-Expires=")
            .nth(1)
            .and_then(|v| v.split('&').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
        assert!((598..=600).contains(&expires), "{}", link.url);
        assert!(link.expires_at <= DateTime::<Utc>::from(end));
    }

    #[tokio::test]
    async fn a_failed_label_download_names_no_presigned_signature() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let files = S3LabelFiles::new(&sdk, "b").unwrap();
        // Nothing listens on port 1: the request fails before any answer.
        let err = files
            .download(
                "http://127.0.0.1:1/label.zpl?X-Amz-Credential=AKIA1&X-Amz-Signature=deadbeef",
            )
            .await
            .expect_err("nothing listens");
        let text = err.to_string();
        assert!(text.contains("label download"), "{text}");
        assert!(
            !text.contains("deadbeef") && !text.contains("AKIA1"),
            "{text}"
        );
    }
}
