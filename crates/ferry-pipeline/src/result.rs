//! Result events: one `Ferry Image Replication` event per finished job, published to
//! EventBridge with PutEvents in batches of at most ten, failed entries retried. The event's
//! format and its log line are `ferry-results`'.

use std::time::Duration;

use async_trait::async_trait;

pub use ferry_results::{
    MAX_ERROR_MESSAGE, MAX_LISTED, REASON_ARCHIVED, REASON_UNTAG_UNSUPPORTED, RESULT_DETAIL_TYPE,
    RESULT_LOG_FIELD, RESULT_LOG_MESSAGE, RESULT_SOURCE, ReplicationResult, ResultDestination,
    Status, log_result,
};

use chrono::Utc;

use crate::error::{PipelineError, aws_error};
use crate::job::Job;

/// PutEvents takes at most this many entries.
pub const PUT_EVENTS_MAX: usize = 10;
/// PutEvents takes at most this many bytes in one request, entries counted as AWS counts
/// them (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html>).
pub const PUT_EVENTS_MAX_BYTES: usize = 256 * 1024;
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

/// A result event for `job` with `status`, nothing written yet.
pub fn result_for(job: &Job, status: Status) -> ReplicationResult {
    let completed_at = Utc::now();
    ReplicationResult {
        status,
        action: job.action,
        source: job.source.clone(),
        destination: ResultDestination {
            registry: job.target.registry.clone(),
            repository: job.target.repository.clone(),
        },
        digest: job.source.digest.as_ref().map(|d| d.to_string()),
        tags: Vec::new(),
        superseded_by: None,
        bytes: 0,
        blobs_copied: 0,
        blobs_skipped: 0,
        blobs_mounted: 0,
        referrers_rejected: Vec::new(),
        duration_ms: 0,
        latency_ms: (completed_at - job.event_time).num_milliseconds(),
        event_id: job.event_id.clone(),
        event_time: job.event_time,
        completed_at,
        origin: job.origin,
        error_code: None,
        error_message: None,
        reason: None,
        written_digest: None,
        gate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_results::testing::sample;

    #[test]
    fn an_oversized_result_is_cut_and_never_takes_the_others_with_it() {
        let mut huge = sample();
        huge.error_message = Some("é".repeat(200 * 1024));
        huge.tags = (0..2000).map(|i| format!("t{i}")).collect();
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
}
