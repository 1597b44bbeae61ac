//! The narrow views fulfilment needs of Amazon, the bucket and the queues, with the
//! production implementations (SP-API client, S3, SQS).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

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

/// Label and invoice files: stored under `labels/`, handed out as presigned links, and
/// fetched from Amazon's own presigned URLs.
#[async_trait]
pub trait LabelFiles: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()>;
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// A GET link valid for `ttl`.
    async fn link(&self, key: &str, ttl: Duration) -> Result<String>;
    /// Downloads Amazon's label file: bytes and `Content-Type`. `Error::NotFound` when the URL
    /// has expired or is refused (403/404): a new label must be asked for.
    async fn download(&self, url: &str) -> Result<(Vec<u8>, String)>;
}

pub struct S3LabelFiles {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub http: reqwest::Client,
}

impl S3LabelFiles {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            s3,
            bucket: bucket.into(),
            http,
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

    async fn link(&self, key: &str, ttl: Duration) -> Result<String> {
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| Error::Internal(format!("presigning: {e}")))?;
        let req = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| aws_error("s3", e))?;
        Ok(req.uri().to_string())
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

    #[tokio::test]
    async fn a_failed_label_download_names_no_presigned_signature() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let files = S3LabelFiles::new(aws_sdk_s3::Client::new(&sdk), "b").unwrap();
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
