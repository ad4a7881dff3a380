//! The failure ledger's format: one DynamoDB item per image that failed permanently at a
//! destination (written by replicate, read by reconcile and `ferry failures`), and the
//! backoff that decides when reconcile tries it again.
//!
//! Keys: the partition key `pk` is the destination (`registry/repository`), the sort key
//! `sk` the job's action and source image (`copy#registry/repository:tag`, or
//! `…@digest` for an image without a tag). Items whose `pk` starts with `#` are not
//! failures (reconcile's cursor, [`CURSOR_PK`]). The table's TTL attribute is
//! [`ATTR_EXPIRES_AT`].
//!
//! An item read back is untrusted: [`LedgerEntry::from_item`] parses it strictly (every
//! field present with its type, sizes capped, the key equal to the one its fields make),
//! and a reader skips what does not parse.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use ferry::Digest;
use serde::Serialize;

use crate::event::{MAX_ERROR_MESSAGE, Status, cut};
use crate::wire::{JobAction, JobSource};

/// Partition key attribute.
pub const ATTR_PK: &str = "pk";
/// Sort key attribute.
pub const ATTR_SK: &str = "sk";
/// The TTL attribute (epoch seconds): DynamoDB removes an entry some time after it.
pub const ATTR_EXPIRES_AT: &str = "expiresAt";
/// The partition key of reconcile's cursor item (no destination starts with `#`).
pub const CURSOR_PK: &str = "#reconcile";
/// The sort key of reconcile's cursor item.
pub const CURSOR_SK: &str = "cursor";
/// The attribute holding the cursor's position.
pub const ATTR_POSITION: &str = "position";

/// The first wait after a permanent failure.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(15 * 60);
/// The longest wait: a failure that persists is tried again once a day.
pub const BACKOFF_MAX: Duration = Duration::from_secs(24 * 3600);
/// How long an entry is kept after its last failure (the TTL): several retries at the
/// longest backoff.
pub const ENTRY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest text field (names, codes, fingerprint) an item may hold.
pub const MAX_FIELD: usize = 1024;
/// The highest count an item may hold.
pub const MAX_COUNT: u32 = 1_000_000;

/// The wait after the `count`-th failure in a row: 15 minutes doubling, at most 24 hours.
pub fn backoff(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

/// The key of one image at one destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerKey {
    /// `registry/repository` of the destination.
    pub pk: String,
    /// `action#registry/repository:tag` (or `@digest`) of the source image.
    pub sk: String,
}

impl LedgerKey {
    /// The key of `action` on `source` at `registry/repository`.
    pub fn new(registry: &str, repository: &str, action: JobAction, source: &JobSource) -> Self {
        LedgerKey {
            pk: format!("{registry}/{repository}"),
            sk: format!("{}#{}", action.as_str(), image_name(source)),
        }
    }
}

/// The source image as people name it: `registry/repository:tag`, or `@digest` without
/// a tag.
pub fn image_name(source: &JobSource) -> String {
    let base = format!("{}/{}", source.registry, source.repository);
    match (&source.tag, &source.digest) {
        (Some(tag), _) => format!("{base}:{tag}"),
        (None, Some(d)) => format!("{base}@{d}"),
        (None, None) => base,
    }
}

/// One image that failed permanently at one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Destination registry host.
    pub destination: String,
    /// Destination repository.
    pub repository: String,
    /// The job's action.
    pub action: JobAction,
    /// The source image (its digest: the one that failed).
    pub source: JobSource,
    /// The failure's status: `FAILED`, `CONFLICT` or `REJECTED`.
    pub status: Status,
    /// The error code of the last failure.
    pub error_code: String,
    /// Its message, at most [`MAX_ERROR_MESSAGE`] bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Failures in a row with this config and source digest.
    pub count: u32,
    /// The first of them.
    pub first_seen: DateTime<Utc>,
    /// The last of them.
    pub last_seen: DateTime<Utc>,
    /// Reconcile does not enqueue the image again before this time.
    pub next_attempt: DateTime<Utc>,
    /// Fingerprint of the config the failure happened under.
    pub config_fingerprint: String,
    /// When DynamoDB may remove the entry (TTL).
    pub expires_at: DateTime<Utc>,
}

impl LedgerEntry {
    /// The entry's key.
    pub fn key(&self) -> LedgerKey {
        LedgerKey::new(
            &self.destination,
            &self.repository,
            self.action,
            &self.source,
        )
    }

    /// Whether the entry is about this config and source digest: a change of either makes
    /// it stale (the image is tried again at once).
    pub fn is_current(&self, fingerprint: &str, digest: Option<&Digest>) -> bool {
        self.config_fingerprint == fingerprint && self.source.digest.as_ref() == digest
    }

    /// Whether reconcile holds the image back at `now`: the entry is current and its
    /// backoff has not expired.
    pub fn holds(&self, fingerprint: &str, digest: Option<&Digest>, now: DateTime<Utc>) -> bool {
        self.is_current(fingerprint, digest) && now < self.next_attempt
    }

    /// The DynamoDB item.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let key = self.key();
        let s = |v: &str| AttributeValue::S(v.to_string());
        let n = |v: i64| AttributeValue::N(v.to_string());
        let mut item = HashMap::from([
            (ATTR_PK.to_string(), s(&key.pk)),
            (ATTR_SK.to_string(), s(&key.sk)),
            ("destination".to_string(), s(&self.destination)),
            ("repository".to_string(), s(&self.repository)),
            ("action".to_string(), s(self.action.as_str())),
            ("sourceRegistry".to_string(), s(&self.source.registry)),
            ("sourceRepository".to_string(), s(&self.source.repository)),
            ("status".to_string(), s(self.status.as_str())),
            ("errorCode".to_string(), s(&self.error_code)),
            ("count".to_string(), n(i64::from(self.count))),
            ("firstSeen".to_string(), n(self.first_seen.timestamp())),
            ("lastSeen".to_string(), n(self.last_seen.timestamp())),
            ("nextAttempt".to_string(), n(self.next_attempt.timestamp())),
            ("configFingerprint".to_string(), s(&self.config_fingerprint)),
            (ATTR_EXPIRES_AT.to_string(), n(self.expires_at.timestamp())),
        ]);
        if let Some(tag) = &self.source.tag {
            item.insert("tag".into(), s(tag));
        }
        if let Some(d) = &self.source.digest {
            item.insert("digest".into(), s(d.as_str()));
        }
        if let Some(m) = &self.error_message {
            let mut m = m.clone();
            cut(&mut m, MAX_ERROR_MESSAGE);
            item.insert("errorMessage".into(), s(&m));
        }
        item
    }

    /// Parse an item strictly; the error says which attribute is wrong.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<LedgerEntry, String> {
        let text = |name: &str| -> Result<String, String> {
            match item.get(name) {
                Some(AttributeValue::S(v)) if v.is_empty() => Err(format!("`{name}` is empty")),
                Some(AttributeValue::S(v)) if v.len() <= MAX_FIELD => Ok(v.clone()),
                Some(AttributeValue::S(_)) => Err(format!("`{name}` over {MAX_FIELD} bytes")),
                Some(_) => Err(format!("`{name}` is not a string")),
                None => Err(format!("no `{name}`")),
            }
        };
        let optional = |name: &str| item.contains_key(name).then(|| text(name)).transpose();
        let number = |name: &str, max: i64| -> Result<i64, String> {
            match item.get(name) {
                Some(AttributeValue::N(v)) => match v.parse::<i64>() {
                    Ok(n) if (0..=max).contains(&n) => Ok(n),
                    _ => Err(format!("`{name}` {v:?} is not an integer in 0..={max}")),
                },
                Some(_) => Err(format!("`{name}` is not a number")),
                None => Err(format!("no `{name}`")),
            }
        };
        // Until the year 2100: a time past it is not one Ferry wrote.
        let time = |name: &str| -> Result<DateTime<Utc>, String> {
            let secs = number(name, 4_102_444_800)?;
            DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("`{name}` is not a time"))
        };
        let wire = |name: &str| -> Result<serde_json::Value, String> {
            Ok(serde_json::Value::String(text(name)?))
        };
        let action: JobAction = serde_json::from_value(wire("action")?)
            .map_err(|_| "`action` is not a job action".to_string())?;
        let status: Status = serde_json::from_value(wire("status")?)
            .map_err(|_| "`status` is not a status".to_string())?;
        if !matches!(status, Status::Failed | Status::Conflict | Status::Rejected) {
            return Err(format!("`status` {} is not a failure", status.as_str()));
        }
        let digest = optional("digest")?
            .map(|d| d.parse::<Digest>())
            .transpose()
            .map_err(|e| format!("`digest`: {e}"))?;
        let error_message = match item.get("errorMessage") {
            None => None,
            Some(AttributeValue::S(m)) if m.len() <= MAX_ERROR_MESSAGE => Some(m.clone()),
            Some(_) => return Err("`errorMessage` is not a string of at most 4 KiB".into()),
        };
        let entry = LedgerEntry {
            destination: text("destination")?,
            repository: text("repository")?,
            action,
            source: JobSource {
                registry: text("sourceRegistry")?,
                repository: text("sourceRepository")?,
                tag: optional("tag")?,
                digest,
            },
            status,
            error_code: text("errorCode")?,
            error_message,
            count: u32::try_from(number("count", i64::from(MAX_COUNT))?)
                .map_err(|_| "`count` out of range".to_string())?,
            first_seen: time("firstSeen")?,
            last_seen: time("lastSeen")?,
            next_attempt: time("nextAttempt")?,
            config_fingerprint: text("configFingerprint")?,
            expires_at: time(ATTR_EXPIRES_AT)?,
        };
        if entry.count == 0 {
            return Err("`count` is 0".into());
        }
        if entry.source.tag.is_none() && entry.source.digest.is_none() {
            return Err("neither `tag` nor `digest`".into());
        }
        let key = entry.key();
        if text(ATTR_PK)? != key.pk || text(ATTR_SK)? != key.sk {
            return Err("the key is not the one its fields make".into());
        }
        Ok(entry)
    }
}

/// Whether an item is a failure (not the cursor or another bookkeeping item).
pub fn is_entry(item: &HashMap<String, AttributeValue>) -> bool {
    !matches!(item.get(ATTR_PK), Some(AttributeValue::S(pk)) if pk.starts_with('#'))
}

/// What a scan of the ledger found.
#[derive(Clone, Debug, Default)]
pub struct LedgerScan {
    /// The entries that parsed.
    pub entries: Vec<LedgerEntry>,
    /// Items that did not parse (skipped, each logged).
    pub malformed: usize,
    /// Whether pages were left unread ([`MAX_SCAN_PAGES`]).
    pub truncated: bool,
}

/// The ledger table, read by `ferry failures --ledger-table`.
#[derive(Clone, Debug)]
pub struct LedgerTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl LedgerTable {
    /// The table `table` with the SDK config `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, table: &str) -> LedgerTable {
        LedgerTable {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: table.to_string(),
        }
    }

    /// Every entry ([`scan`]), the soonest next attempt first.
    pub async fn entries(&self) -> Result<LedgerScan, ferry::Error> {
        let mut found = scan(&self.client, &self.table).await?;
        found.entries.sort_by_key(|e| (e.next_attempt, e.key()));
        Ok(found)
    }
}

/// Pages of `Scan` (1 MB each) read at most.
pub const MAX_SCAN_PAGES: usize = 1000;

/// Every entry of `table`, at most [`MAX_SCAN_PAGES`] pages; items that do not parse are
/// logged and skipped.
pub async fn scan(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<LedgerScan, ferry::Error> {
    let mut out = LedgerScan::default();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    for _ in 0..MAX_SCAN_PAGES {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| ferry::aws::sdk_error("dynamodb", "Scan", e))?;
        for item in page.items().iter().filter(|i| is_entry(i)) {
            match LedgerEntry::from_item(item) {
                Ok(entry) => out.entries.push(entry),
                Err(reason) => {
                    out.malformed += 1;
                    tracing::warn!(table, %reason, "ledger item skipped: not one Ferry writes");
                }
            }
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
    out.truncated = true;
    Ok(out)
}

#[cfg(test)]
mod tests;
