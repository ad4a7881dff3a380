//! The result event: one `Ferry Image Replication` event per finished job (its `detail`),
//! and the log line that carries the same JSON in the replicate function's log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::wire::{JobAction, JobSource, Origin};

/// `source` of result events.
pub const RESULT_SOURCE: &str = "ferry";
/// `detail-type` of result events.
pub const RESULT_DETAIL_TYPE: &str = "Ferry Image Replication";
/// `reason` of a `SKIPPED` result whose source image is archived (ECR's archive storage
/// class): not copied, and not retried.
pub const REASON_ARCHIVED: &str = "ARCHIVED";
/// `reason` of a `SKIPPED` delete: the destination deletes manifests, not tags, and other
/// tags still point at the manifest, so the tag was left in place.
pub const REASON_UNTAG_UNSUPPORTED: &str = "UNTAG_UNSUPPORTED";
/// The longest error message a result event carries (the rest is cut, marked `…`): one
/// registry's error body must not push a result over PutEvents' limit.
pub const MAX_ERROR_MESSAGE: usize = 4 * 1024;
/// The most tags and rejected referrers a result event names (the count is kept in the
/// message of a cut list).
pub const MAX_LISTED: usize = 100;

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Content or a tag was written (or a delete done).
    Succeeded,
    /// The destination already held the image: nothing written.
    Skipped,
    /// A permanent failure (source gone, access denied, digest mismatch, ...).
    Failed,
    /// The destination tag is immutable and holds another digest: left unchanged.
    Conflict,
    /// A retryable failure: the message goes back to the queue (metrics only, no event).
    Retry,
    /// The job asked for something the loaded config does not allow (or was not a job at
    /// all): acknowledged without any registry or ECR request, counted in `RejectedJobs`.
    Rejected,
    /// A promotion gate holds the image (its scan is not complete): no copy yet; the scan's
    /// completion event, or reconcile, releases it.
    Held,
    /// A promotion gate failed: the image is not copied.
    Blocked,
}

impl Status {
    /// The wire spelling, also the metric dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Skipped => "SKIPPED",
            Status::Failed => "FAILED",
            Status::Conflict => "CONFLICT",
            Status::Retry => "RETRY",
            Status::Rejected => "REJECTED",
            Status::Held => "HELD",
            Status::Blocked => "BLOCKED",
        }
    }
}

/// Where the image went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDestination {
    /// Registry host.
    pub registry: String,
    /// Repository.
    pub repository: String,
}

/// The `detail` of a result event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationResult {
    /// SUCCEEDED, SKIPPED, FAILED, CONFLICT, REJECTED, HELD or BLOCKED.
    pub status: Status,
    /// `copy`, `delete`, `referrer`, `archive` or `restore`.
    pub action: JobAction,
    /// The source image.
    pub source: JobSource,
    /// The destination.
    pub destination: ResultDestination,
    /// The digest written (the job's; see `supersededBy` for the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Tags set at the destination.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the source tag had moved on: the digest that took the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Blob bytes moved.
    pub bytes: u64,
    /// Blobs streamed.
    pub blobs_copied: u64,
    /// Blobs already there.
    pub blobs_skipped: u64,
    /// Blobs mounted from another repository of the destination registry.
    pub blobs_mounted: u64,
    /// Referrers the destination refused (`REFERRER_REJECTED`, e.g. ECR and a referrer of
    /// an index); the image itself was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers_rejected: Vec<ferry::report::RejectedReferrer>,
    /// Time in the engine (copy or delete).
    pub duration_ms: u64,
    /// From the push (the event's time) to the end of the job.
    pub latency_ms: i64,
    /// The ECR event id (or `reconcile:<run>`).
    pub event_id: String,
    /// The push time.
    pub event_time: DateTime<Utc>,
    /// When the job finished.
    pub completed_at: DateTime<Utc>,
    /// Who made the job.
    pub origin: Origin,
    /// Error code ([`ferry::Error::code`]) for FAILED and CONFLICT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Why a `SKIPPED` job wrote nothing, when it is not that the destination held the
    /// image: `ARCHIVED` ([`REASON_ARCHIVED`]), `UNTAG_UNSUPPORTED`
    /// ([`REASON_UNTAG_UNSUPPORTED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the rule copies only some `platforms` of an index: the digest of the index
    /// written (the copy's own; `digest` is the source's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_digest: Option<String>,
    /// For HELD and BLOCKED: the gate, its code (`scan-pending`, `severity`, ...), the
    /// reason and the scan's findings by severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<ferry::gate::GateReason>,
}

impl ReplicationResult {
    /// The result with every field that comes from outside cut to a size that keeps the
    /// event well under PutEvents' limit: the error message to [`MAX_ERROR_MESSAGE`] bytes,
    /// the tags and rejected referrers to [`MAX_LISTED`] entries.
    pub fn bounded(mut self) -> ReplicationResult {
        if let Some(message) = &mut self.error_message {
            cut(message, MAX_ERROR_MESSAGE);
        }
        if let Some(gate) = &mut self.gate {
            cut(&mut gate.reason, MAX_ERROR_MESSAGE);
        }
        self.tags.truncate(MAX_LISTED);
        self.referrers_rejected.truncate(MAX_LISTED);
        for rejected in &mut self.referrers_rejected {
            cut(&mut rejected.message, MAX_ERROR_MESSAGE / 4);
        }
        self
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, ending it with `…`.
pub(crate) fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}

/// The log field that carries a result event's JSON in the replicate function's log
/// (read back by [`crate::ResultsLog`]).
pub const RESULT_LOG_FIELD: &str = "result_event";
/// The message of the log line that carries a result event.
pub const RESULT_LOG_MESSAGE: &str = "result event";

/// Log a result event as one line (`result event`, its JSON in the
/// [`RESULT_LOG_FIELD`] field): the replicate function's log group is where `ferry status`
/// reads the last result back, since an EventBridge bus cannot be read.
pub fn log_result(r: &ReplicationResult) {
    let json = serde_json::to_string(r).expect("a result always serialises");
    tracing::info!(result_event = %json, "{RESULT_LOG_MESSAGE}");
}

/// Results for tests of the crates that publish and read them.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// A CONFLICT result with every field set.
    pub fn sample() -> ReplicationResult {
        ReplicationResult {
            status: Status::Conflict,
            action: JobAction::Copy,
            source: JobSource {
                registry: "s".into(),
                repository: "a".into(),
                tag: Some("v1".into()),
                digest: None,
            },
            destination: ResultDestination {
                registry: "d".into(),
                repository: "a".into(),
            },
            digest: Some("sha256:00".into()),
            tags: vec![],
            superseded_by: None,
            bytes: 1,
            blobs_copied: 2,
            blobs_skipped: 3,
            blobs_mounted: 4,
            referrers_rejected: Vec::new(),
            duration_ms: 5,
            latency_ms: 6,
            event_id: "e".into(),
            event_time: "2026-01-01T00:00:00Z".parse().unwrap(),
            completed_at: "2026-01-01T00:00:01Z".parse().unwrap(),
            origin: Origin::Event,
            error_code: Some("tag-conflict".into()),
            error_message: Some("m".into()),
            reason: None,
            written_digest: None,
            gate: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::sample;
    use super::*;

    #[test]
    fn an_oversized_result_is_bounded() {
        let mut huge = sample();
        huge.error_message = Some("é".repeat(200 * 1024));
        huge.tags = (0..2000).map(|i| format!("t{i}")).collect();
        let bounded = huge.clone().bounded();
        let message = bounded.error_message.as_deref().unwrap();
        assert!(message.len() <= MAX_ERROR_MESSAGE && message.ends_with('…'));
        assert_eq!(bounded.tags.len(), MAX_LISTED);
        let small = sample();
        assert_eq!(
            small.clone().bounded(),
            small,
            "a small result is unchanged"
        );
    }

    #[test]
    fn detail_wire_names() {
        let r = sample();
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "status",
            "action",
            "source",
            "destination",
            "digest",
            "tags",
            "bytes",
            "blobsCopied",
            "blobsSkipped",
            "blobsMounted",
            "durationMs",
            "latencyMs",
            "eventId",
            "eventTime",
            "completedAt",
            "errorCode",
            "errorMessage",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["status"], "CONFLICT");
        let back: ReplicationResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
