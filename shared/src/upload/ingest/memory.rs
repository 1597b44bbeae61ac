//! In-memory twins of the ingest's ports (unit tests, the benchmark's parse stage); the
//! object and report twins are [`crate::upload::object::memory`]'s, re-exported here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Checkpoint, CheckpointStore, PriceQueue};
use crate::error::Result;
use crate::prices::PriceUpdate;
pub use crate::upload::object::memory::{MemoryObjects, MemoryReports};
use crate::upload::UploadRef;

#[derive(Default)]
pub struct MemoryPriceQueue {
    pub sent: Mutex<Vec<PriceUpdate>>,
}

#[async_trait]
impl PriceQueue for MemoryPriceQueue {
    async fn send(&self, updates: &[PriceUpdate]) -> Result<()> {
        self.sent.lock().expect("lock").extend_from_slice(updates);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryCheckpoints {
    pub saved: Mutex<BTreeMap<String, Checkpoint>>,
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn get(&self, upload: &UploadRef) -> Result<Option<Checkpoint>> {
        Ok(self
            .saved
            .lock()
            .expect("lock")
            .get(&upload.label())
            .cloned())
    }
    async fn put(&self, upload: &UploadRef, checkpoint: &Checkpoint) -> Result<()> {
        self.saved
            .lock()
            .expect("lock")
            .insert(upload.label(), checkpoint.clone());
        Ok(())
    }
}
