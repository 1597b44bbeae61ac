//! The object an upload is about and where its reports go: the ports every part of the
//! upload pipeline (and the price answers) shares, below the ingest.

use std::io::Read;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::order::UploadOrder;
use crate::error::Result;

/// The object one upload is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRef {
    pub key: String,
    /// S3's version ID, or `etag:<etag>` in a bucket without versioning.
    pub version_id: String,
    /// Where the upload stands among uploads (from its S3 notification); price uploads need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UploadOrder>,
}

impl UploadRef {
    pub fn new(key: impl Into<String>, version_id: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            version_id: version_id.into(),
            order: None,
        }
    }

    pub fn with_order(mut self, order: UploadOrder) -> Self {
        self.order = Some(order);
        self
    }

    pub fn label(&self) -> String {
        format!("{}@{}", self.key, self.version_id)
    }
}

#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The object's bytes as a blocking reader; it is read on a blocking thread.
    async fn open(&self, upload: &UploadRef) -> Result<Box<dyn Read + Send>>;
}

/// A report body: small ones in memory, the errors CSV from a temporary file.
pub enum ReportBody {
    Bytes(Vec<u8>),
    File(PathBuf),
}

#[async_trait]
pub trait ReportSink: Send + Sync {
    async fn put(&self, key: &str, body: ReportBody, content_type: &str) -> Result<()>;
}

/// In-memory twins of the object ports (unit tests, the benchmark's parse stage).
pub mod memory {
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::{ObjectSource, ReportBody, ReportSink, UploadRef};
    use crate::error::{Error, Result};

    #[derive(Default)]
    pub struct MemoryObjects {
        objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    }

    impl MemoryObjects {
        pub fn put(&self, key: &str, version: &str, body: impl Into<Vec<u8>>) {
            self.objects
                .lock()
                .expect("lock")
                .insert((key.into(), version.into()), body.into());
        }
    }

    #[async_trait]
    impl ObjectSource for MemoryObjects {
        async fn open(&self, upload: &UploadRef) -> Result<Box<dyn Read + Send>> {
            let body = self
                .objects
                .lock()
                .expect("lock")
                .get(&(upload.key.clone(), upload.version_id.clone()))
                .cloned()
                .ok_or_else(|| Error::NotFound(upload.label()))?;
            Ok(Box::new(std::io::Cursor::new(body)))
        }
    }

    #[derive(Default)]
    pub struct MemoryReports {
        pub reports: Mutex<BTreeMap<String, Vec<u8>>>,
    }

    impl MemoryReports {
        pub fn get(&self, key: &str) -> Option<String> {
            self.reports
                .lock()
                .expect("lock")
                .get(key)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        }
    }

    #[async_trait]
    impl ReportSink for MemoryReports {
        async fn put(&self, key: &str, body: ReportBody, _content_type: &str) -> Result<()> {
            let bytes = match body {
                ReportBody::Bytes(b) => b,
                ReportBody::File(p) => tokio::fs::read(&p)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?,
            };
            self.reports.lock().expect("lock").insert(key.into(), bytes);
            Ok(())
        }
    }
}
