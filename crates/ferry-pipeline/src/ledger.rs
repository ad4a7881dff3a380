//! The failure ledger: replicate records each image that failed permanently at a
//! destination ([`record`]), reconcile holds it back until its backoff expires, and a
//! success clears it. The item format, the backoff and the reader `ferry failures` uses are
//! [`ferry_results::ledger`]'s.
//!
//! The ledger only paces reconcile: a push (dispatch's job) is always tried, and nothing
//! here changes a job's outcome. A ledger that cannot be read or written is logged and
//! counted (`LedgerErrors`); reconcile then enqueues as if it were empty.
//!
//! The same table holds reconcile's cursor ([`Ledger::cursor`]): where the last run stopped
//! in the drift order, so that the next one continues from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use ferry_results::ledger::{ENTRY_TTL, MAX_FIELD};
pub use ferry_results::ledger::{LedgerEntry, LedgerKey, backoff};

use crate::error::PipelineError;
use crate::metrics::{Metrics, Record, Unit};
use crate::result::{ReplicationResult, Status};

mod dynamo;
pub use dynamo::DynamoLedger;

/// `FERRY_LEDGER_TABLE`: the DynamoDB table of the failure ledger (replicate, reconcile).
pub const ENV_LEDGER_TABLE: &str = "FERRY_LEDGER_TABLE";

/// Where failures (and reconcile's cursor) are kept: DynamoDB, or memory in tests.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The entry of `key`, if any.
    async fn get(&self, key: &LedgerKey) -> Result<Option<LedgerEntry>, PipelineError>;
    /// Write `entry` (replacing the one of its key).
    async fn put(&self, entry: &LedgerEntry) -> Result<(), PipelineError>;
    /// Remove the entry of `key` (nothing when there is none).
    async fn clear(&self, key: &LedgerKey) -> Result<(), PipelineError>;
    /// Every entry (not the cursor), by key.
    async fn entries(&self) -> Result<HashMap<LedgerKey, LedgerEntry>, PipelineError>;
    /// Reconcile's cursor: the drift key of the last job the last capped run enqueued.
    async fn cursor(&self) -> Result<Option<String>, PipelineError>;
    /// Set the cursor; `None`: the next run starts at the beginning.
    async fn set_cursor(&self, position: Option<&str>) -> Result<(), PipelineError>;
}

/// The longest cursor position a ledger accepts (written or read back).
pub const MAX_CURSOR: usize = 4 * MAX_FIELD;

/// A ledger in memory (tests, benchmarks).
#[derive(Clone, Debug, Default)]
pub struct MemoryLedger {
    entries: Arc<Mutex<HashMap<LedgerKey, LedgerEntry>>>,
    cursor: Arc<Mutex<Option<String>>>,
}

impl MemoryLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LedgerKey, LedgerEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn get(&self, key: &LedgerKey) -> Result<Option<LedgerEntry>, PipelineError> {
        Ok(self.lock().get(key).cloned())
    }
    async fn put(&self, entry: &LedgerEntry) -> Result<(), PipelineError> {
        self.lock().insert(entry.key(), entry.clone());
        Ok(())
    }
    async fn clear(&self, key: &LedgerKey) -> Result<(), PipelineError> {
        self.lock().remove(key);
        Ok(())
    }
    async fn entries(&self) -> Result<HashMap<LedgerKey, LedgerEntry>, PipelineError> {
        Ok(self.lock().clone())
    }
    async fn cursor(&self) -> Result<Option<String>, PipelineError> {
        Ok(self
            .cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
    async fn set_cursor(&self, position: Option<&str>) -> Result<(), PipelineError> {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = position.map(str::to_owned);
        Ok(())
    }
}

/// The fingerprint of a config: a hash of its canonical JSON (keys sorted), the same in
/// every function and process for the same document.
pub fn config_fingerprint(config: &ferry::config::ReplicationConfig) -> String {
    let value = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
    let mut h = Sha256::new();
    canonical(&value, &mut h);
    hex::encode(h.finalize())[..32].to_string()
}

fn canonical(v: &serde_json::Value, h: &mut Sha256) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                h.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
                h.update(b":");
                canonical(&map[k], h);
                h.update(b",");
            }
            h.update(b"}");
        }
        serde_json::Value::Array(items) => {
            h.update(b"[");
            for item in items {
                canonical(item, h);
                h.update(b",");
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

/// The ledger key of a result: its destination, action and source image.
pub fn result_key(result: &ReplicationResult) -> LedgerKey {
    LedgerKey::new(
        &result.destination.registry,
        &result.destination.repository,
        result.action,
        &result.source,
    )
}

/// What a job's result does to the ledger: a permanent failure (`FAILED`, `CONFLICT`,
/// `REJECTED`: [`ferry::Error::is_retryable`] said no, or the config refused the job) is
/// recorded, counting failures in a row with the same config and source digest; a success
/// or skip clears the entry; a retry (which has no result event) leaves it alone. Errors
/// of the ledger are logged and counted in `LedgerErrors`, never the job's.
pub async fn record(
    ledger: &dyn Ledger,
    metrics: &Metrics,
    fingerprint: &str,
    result: &ReplicationResult,
    now: DateTime<Utc>,
) {
    let key = result_key(result);
    let done = match result.status {
        Status::Succeeded | Status::Skipped => ledger.clear(&key).await,
        Status::Failed | Status::Conflict | Status::Rejected => {
            let previous = match ledger.get(&key).await {
                Ok(p) => p.filter(|p| p.is_current(fingerprint, result.source.digest.as_ref())),
                Err(e) => {
                    ledger_error(metrics, &e);
                    None
                }
            };
            let entry = failure_entry(previous.as_ref(), fingerprint, result, now);
            ledger.put(&entry).await
        }
        // A gate's verdict is judged afresh by every run: nothing to hold back.
        Status::Retry | Status::Held | Status::Blocked => Ok(()),
    };
    if let Err(e) = done {
        ledger_error(metrics, &e);
    }
}

/// The entry after one more permanent failure (`previous`: the current entry, if any):
/// the count goes up, the next attempt waits [`backoff`] of it.
pub fn failure_entry(
    previous: Option<&LedgerEntry>,
    fingerprint: &str,
    result: &ReplicationResult,
    now: DateTime<Utc>,
) -> LedgerEntry {
    let count = previous.map_or(1, |p| {
        p.count
            .saturating_add(1)
            .min(ferry_results::ledger::MAX_COUNT)
    });
    let wait = chrono::Duration::from_std(backoff(count)).unwrap_or(chrono::Duration::MAX);
    let ttl = chrono::Duration::from_std(ENTRY_TTL).unwrap_or(chrono::Duration::MAX);
    let mut code = result
        .error_code
        .as_deref()
        .filter(|c| !c.is_empty())
        .unwrap_or(result.status.as_str())
        .to_string();
    if code.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !code.is_char_boundary(end) {
            end -= 1;
        }
        code.truncate(end);
    }
    LedgerEntry {
        destination: result.destination.registry.clone(),
        repository: result.destination.repository.clone(),
        action: result.action,
        source: result.source.clone(),
        status: result.status,
        error_code: code,
        error_message: result.error_message.clone(),
        count,
        first_seen: previous.map_or(now, |p| p.first_seen),
        last_seen: now,
        next_attempt: now + wait,
        config_fingerprint: fingerprint.to_string(),
        expires_at: now + ttl,
    }
}

/// Log and count a ledger error (`LedgerErrors`).
pub fn ledger_error(metrics: &Metrics, e: &PipelineError) {
    tracing::warn!(error = %e, code = e.code(), "failure ledger: the job's outcome stands, the ledger was not updated");
    metrics.emit(Record::new().metric("LedgerErrors", Unit::Count, 1.0));
}

#[cfg(test)]
mod tests;
