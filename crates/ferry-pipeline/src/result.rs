//! Result events: one `Ferry Image Replication` event per finished job, published to
//! EventBridge with PutEvents in batches of at most ten, failed entries retried.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, aws_error};
use crate::job::{JobAction, JobSource, Origin};

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
/// PutEvents takes at most this many entries.
pub const PUT_EVENTS_MAX: usize = 10;
/// PutEvents takes at most this many bytes in one request, entries counted as AWS counts
/// them (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html>).
pub const PUT_EVENTS_MAX_BYTES: usize = 256 * 1024;
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
    /// SUCCEEDED, SKIPPED, FAILED, CONFLICT or REJECTED.
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
}

impl ReplicationResult {
    /// The result with every field that comes from outside cut to a size that keeps the
    /// event well under PutEvents' limit: the error message to [`MAX_ERROR_MESSAGE`] bytes,
    /// the tags and rejected referrers to [`MAX_LISTED`] entries.
    pub fn bounded(mut self) -> ReplicationResult {
        if let Some(message) = &mut self.error_message {
            cut(message, MAX_ERROR_MESSAGE);
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
fn cut(text: &mut String, max: usize) {
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

/// The size PutEvents counts for an entry: source, detail type, detail and resources, plus
/// 14 bytes for the time.
fn entry_size(entry: &aws_sdk_eventbridge::types::PutEventsRequestEntry) -> usize {
    14 + entry.source().map_or(0, str::len)
        + entry.detail_type().map_or(0, str::len)
        + entry.detail().map_or(0, str::len)
        + entry.resources().iter().map(String::len).sum::<usize>()
}

/// Groups entries of the given sizes into PutEvents requests: at most [`PUT_EVENTS_MAX`]
/// entries and [`PUT_EVENTS_MAX_BYTES`] each, in order. An entry over the limit by itself
/// goes alone (PutEvents refuses it alone, and nothing else with it).
fn batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == PUT_EVENTS_MAX || bytes + size > PUT_EVENTS_MAX_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Publishes result events.
#[async_trait]
pub trait ResultPublisher: Send + Sync {
    /// Publish every result; fails only when some could not be published after retries.
    async fn publish(&self, results: &[ReplicationResult]) -> Result<(), PipelineError>;
}

/// PutEvents to one event bus.
#[derive(Clone, Debug)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    attempts: u32,
}

impl EventBridgePublisher {
    /// Over a client and the bus name or ARN (`FERRY_EVENT_BUS_NAME`).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str) -> EventBridgePublisher {
        EventBridgePublisher {
            client,
            bus: bus.to_string(),
            attempts: 4,
        }
    }

    fn entry(&self, r: &ReplicationResult) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
        let resources = r.digest.iter().map(|d| {
            format!(
                "{}/{}@{d}",
                r.destination.registry, r.destination.repository
            )
        });
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(RESULT_SOURCE)
            .detail_type(RESULT_DETAIL_TYPE)
            .detail(serde_json::to_string(r).expect("a result always serialises"))
            .set_resources(Some(resources.collect()))
            .build()
    }
}

#[async_trait]
impl ResultPublisher for EventBridgePublisher {
    async fn publish(&self, results: &[ReplicationResult]) -> Result<(), PipelineError> {
        let entries: Vec<_> = results
            .iter()
            .map(|r| self.entry(&r.clone().bounded()))
            .collect();
        let sizes: Vec<usize> = entries.iter().map(entry_size).collect();
        let mut unpublished = 0;
        let mut last = String::new();
        for range in batches(&sizes) {
            let mut pending: Vec<_> = entries[range].to_vec();
            for attempt in 0..self.attempts {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| aws_error("events", "PutEvents", e));
                let out = match out {
                    Ok(o) => o,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                };
                if out.failed_entry_count() == 0 {
                    pending.clear();
                    break;
                }
                // Entries answer in request order; keep the failed ones.
                let failed: Vec<_> = out
                    .entries()
                    .iter()
                    .zip(pending.iter())
                    .filter(|(res, _)| res.error_code().is_some())
                    .map(|(res, e)| {
                        last = format!(
                            "{}: {}",
                            res.error_code().unwrap_or_default(),
                            res.error_message().unwrap_or_default()
                        );
                        e.clone()
                    })
                    .collect();
                pending = failed;
            }
            // The other requests still go: one refused entry never drops the rest.
            unpublished += pending.len();
        }
        if unpublished > 0 {
            return Err(PipelineError::Aws {
                service: "events",
                operation: "PutEvents",
                message: format!("{unpublished} result events not published: {last}"),
            });
        }
        Ok(())
    }
}

/// Keeps results in memory (tests, the demo).
#[derive(Clone, Debug, Default)]
pub struct MemoryPublisher {
    results: std::sync::Arc<std::sync::Mutex<Vec<ReplicationResult>>>,
}

impl MemoryPublisher {
    /// What was published so far.
    pub fn results(&self) -> Vec<ReplicationResult> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl ResultPublisher for MemoryPublisher {
    async fn publish(&self, results: &[ReplicationResult]) -> Result<(), PipelineError> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(results);
        Ok(())
    }
}

/// The log field that carries a result event's JSON in the replicate function's log
/// (read back by [`crate::results_log`]).
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_oversized_result_is_cut_and_never_takes_the_others_with_it() {
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

        let publisher = EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::Config::builder()
                    .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                    .build(),
            ),
            "bus",
        );
        let size = |r: &ReplicationResult| entry_size(&publisher.entry(&r.clone().bounded()));
        assert!(size(&huge) < 16 * 1024, "{}", size(&huge));
        // Eleven results of 40 KB each: grouped by bytes as well as by count.
        let sizes = [40 * 1024; 11];
        let groups = batches(&sizes);
        assert_eq!(groups, vec![0..6, 6..11]);
        assert!(
            groups
                .iter()
                .all(|g| sizes[g.clone()].iter().sum::<usize>() <= PUT_EVENTS_MAX_BYTES)
        );
        // An entry over the limit by itself goes alone; its neighbours go without it.
        assert_eq!(batches(&[10, 300 * 1024, 10]), vec![0..1, 1..2, 2..3]);
        assert_eq!(batches(&[1; 25]), vec![0..10, 10..20, 20..25]);
    }

    /// A CONFLICT result with every field set.
    pub(crate) fn sample() -> ReplicationResult {
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
        }
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
