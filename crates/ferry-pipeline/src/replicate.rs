//! The replicate handler: one SQS batch of jobs in, `batchItemFailures` out.
//!
//! - Each body is decoded on its own, then checked against the loaded config
//!   ([`crate::authorize`]): the config, not the message, decides what may be copied or
//!   deleted where, and supplies every setting of the destination. A body that is not a job,
//!   or a job the config does not allow, is acknowledged as `REJECTED` (counted in
//!   `RejectedJobs`) without any registry or ECR request: it could never succeed, so it must
//!   not hold its FIFO group until the DLQ.
//! - Messages of one FIFO group run in order, one at a time; groups run concurrently under
//!   a bound. After a retryable failure the rest of that group is returned unprocessed, so
//!   SQS redelivers the group in order.
//! - Retryable failures ([`ferry::Error::is_retryable`]) go to `batchItemFailures`; permanent
//!   ones are acknowledged with a FAILED (or, for an immutable tag, CONFLICT) result event.
//!   Only transient failures are retried.
//! - Near the Lambda deadline no new blob transfer starts: the job returns as retryable and
//!   its retry resumes from what was written (content-addressed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use futures::StreamExt;

use ferry::config::{ReplicationConfig, Target};
use ferry::replicate::{Replicated, Replicator};
use ferry::report::CopyStatus;

use crate::authorize::{Rejected, authorize};
use crate::job::{Job, JobAction};
use crate::metrics::{Metrics, Record, Unit};
use crate::result::{ReplicationResult, ResultDestination, ResultPublisher, Status};

/// Executes jobs: the engine's [`Replicator`], or a stand-in in tests. The target is the
/// config's ([`crate::authorize::authorize`]), never built from the message.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Copy the job's image to `target`; no new blob transfer starts after `deadline`.
    async fn copy(
        &self,
        job: &Job,
        target: &Target,
        deadline: Option<Instant>,
    ) -> Result<Replicated, ferry::Error>;
    /// Propagate the job's delete to `target`; `false` when it was skipped because the
    /// source holds the tag (or digest) again, so a late delete never removes a newer push.
    async fn delete(&self, job: &Job, target: &Target) -> Result<bool, ferry::Error>;
}

fn job_error(e: crate::error::PipelineError) -> ferry::Error {
    ferry::Error::InvalidReference {
        input: String::new(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl Engine for Replicator {
    async fn copy(
        &self,
        job: &Job,
        target: &Target,
        deadline: Option<Instant>,
    ) -> Result<Replicated, ferry::Error> {
        let source = job.source_reference().map_err(job_error)?;
        let mut options = self.copier().options().clone();
        options.deadline = deadline;
        self.replicate(&source, target, Some(options)).await
    }

    async fn delete(&self, job: &Job, target: &Target) -> Result<bool, ferry::Error> {
        let source = job.source_reference().map_err(job_error)?;
        let repo = ferry::registry::Repo::new(&source.registry, &source.repository);
        let still = match (&source.tag, &source.digest) {
            (Some(tag), _) => self
                .copier()
                .client()
                .head_manifest(&repo, tag)
                .await?
                .is_some(),
            (None, Some(d)) => self
                .copier()
                .client()
                .head_manifest(&repo, d.as_str())
                .await?
                .is_some(),
            (None, None) => false,
        };
        if still {
            return Ok(false);
        }
        Replicator::delete(self, target, source.tag.as_deref(), source.digest.as_ref()).await?;
        Ok(true)
    }
}

/// What the replicate handler needs, built once per process.
#[derive(Clone)]
pub struct ReplicateContext {
    /// The loaded config: the authority on what a job may do.
    pub config: Arc<ReplicationConfig>,
    /// Runs the jobs.
    pub engine: Arc<dyn Engine>,
    /// Publishes result events.
    pub results: Arc<dyn ResultPublisher>,
    /// EMF metrics.
    pub metrics: Metrics,
    /// FIFO groups of one batch handled at once (`FERRY_JOB_CONCURRENCY`).
    pub concurrency: usize,
}

/// How one message ended, with timings for the overhead measurement.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    /// The SQS message id.
    pub message_id: String,
    /// The status (RETRY: returned in `batchItemFailures`; every other status is
    /// acknowledged).
    pub status: Status,
    /// The result event, for every status but RETRY.
    pub result: Option<ReplicationResult>,
    /// Time inside the engine.
    pub engine: Duration,
    /// Time from picking the message up to having its outcome (decode, engine, result).
    pub total: Duration,
    /// The error, if any.
    pub error: Option<String>,
    /// The body was not a job (a poison message): acknowledged as REJECTED, no result
    /// event (there is no image to name).
    pub poison: bool,
}

/// What one invocation did.
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// One outcome per message, in batch order.
    pub outcomes: Vec<JobOutcome>,
    /// Time spent publishing result events.
    pub publish: Duration,
}

impl BatchReport {
    /// The Lambda response: every RETRY message as a batch item failure.
    pub fn response(&self) -> SqsBatchResponse {
        let mut r = SqsBatchResponse::default();
        r.batch_item_failures = self
            .outcomes
            .iter()
            .filter(|o| o.status == Status::Retry)
            .map(|o| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = o.message_id.clone();
                f
            })
            .collect();
        r
    }
}

/// How long before the Lambda deadline new blob transfers stop: 15 % of the time left,
/// between 5 and 60 seconds.
pub fn copy_deadline(deadline: Instant, now: Instant) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let margin = (left / 100 * 15).clamp(Duration::from_secs(5), Duration::from_secs(60));
    deadline.checked_sub(margin).unwrap_or(now).max(now)
}

/// Handle one SQS batch. `deadline` is the invocation's deadline, if any.
pub async fn replicate(
    event: SqsEvent,
    deadline: Option<Instant>,
    ctx: &ReplicateContext,
) -> BatchReport {
    let copy_until = deadline.map(|d| copy_deadline(d, Instant::now()));
    // FIFO groups in first-seen order; messages without a group are groups of one.
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<(usize, SqsMessage)>> = HashMap::new();
    for (i, m) in event.records.into_iter().enumerate() {
        let key = m
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_else(|| format!("\u{0}{i}"));
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push((i, m));
    }
    let runs = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .map(|msgs| run_group(msgs, copy_until, ctx));
    let mut outcomes: Vec<(usize, JobOutcome)> = futures::stream::iter(runs)
        .buffer_unordered(ctx.concurrency.max(1))
        .concat()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<JobOutcome> = outcomes.into_iter().map(|(_, o)| o).collect();

    let started = Instant::now();
    let results: Vec<ReplicationResult> =
        outcomes.iter().filter_map(|o| o.result.clone()).collect();
    results.iter().for_each(crate::result::log_result);
    if let Err(e) = ctx.results.publish(&results).await {
        tracing::error!(error = %e, count = results.len(), "result events lost");
        ctx.metrics.emit(Record::new().metric(
            "ResultEventsLost",
            Unit::Count,
            results.len() as f64,
        ));
    }
    BatchReport {
        outcomes,
        publish: started.elapsed(),
    }
}

async fn run_group(
    msgs: Vec<(usize, SqsMessage)>,
    copy_until: Option<Instant>,
    ctx: &ReplicateContext,
) -> Vec<(usize, JobOutcome)> {
    let mut out = Vec::with_capacity(msgs.len());
    let mut blocked = false;
    for (i, m) in msgs {
        let id = m.message_id.clone().unwrap_or_default();
        if blocked {
            out.push((
                i,
                retry(
                    id,
                    "an earlier job of its FIFO group failed: returned unprocessed",
                ),
            ));
            continue;
        }
        let o = run_one(&id, m.body.as_deref().unwrap_or_default(), copy_until, ctx).await;
        // A retryable failure holds back the group's later jobs; a rejected one never
        // succeeds and is acknowledged, so it holds nothing.
        blocked = o.status == Status::Retry;
        out.push((i, o));
    }
    out
}

fn retry(message_id: String, why: &str) -> JobOutcome {
    JobOutcome {
        message_id,
        status: Status::Retry,
        result: None,
        engine: Duration::ZERO,
        total: Duration::ZERO,
        error: Some(why.to_string()),
        poison: false,
    }
}

async fn run_one(
    message_id: &str,
    body: &str,
    copy_until: Option<Instant>,
    ctx: &ReplicateContext,
) -> JobOutcome {
    let started = Instant::now();
    let job = match Job::decode(body) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(message_id, error = %e, "poison message: acknowledged, not retried");
            ctx.metrics.emit(
                Record::new()
                    .metric("MalformedEvents", Unit::Count, 1.0)
                    .metric("RejectedJobs", Unit::Count, 1.0)
                    .property("reason", "malformed-job")
                    .property("messageId", message_id),
            );
            return JobOutcome {
                message_id: message_id.to_string(),
                status: Status::Rejected,
                result: None,
                engine: Duration::ZERO,
                total: started.elapsed(),
                error: Some(e.to_string()),
                poison: true,
            };
        }
    };
    let target = match authorize(&job, &ctx.config) {
        Ok(t) => t,
        Err(why) => return rejected(message_id, &job, &why, started, ctx),
    };
    if copy_until.is_some_and(|d| Instant::now() >= d) {
        let mut o = retry(
            message_id.to_string(),
            "too close to the Lambda deadline to start",
        );
        o.total = started.elapsed();
        emit_metrics(ctx, &job, Status::Retry, None, 0);
        return o;
    }
    let engine_start = Instant::now();
    let done = match job.action {
        JobAction::Copy => ctx
            .engine
            .copy(&job, &target, copy_until)
            .await
            .map(|r| Done::Copied(Box::new(r))),
        JobAction::Delete => ctx.engine.delete(&job, &target).await.map(|d| {
            if d {
                Done::Deleted
            } else {
                Done::DeleteSkipped
            }
        }),
    };
    let engine = engine_start.elapsed();
    let mut result = result_for(&job, Status::Succeeded);
    result.duration_ms = engine.as_millis() as u64;
    let mut throttles = 0;
    let (status, error) = match done {
        Ok(Done::Copied(r)) => {
            apply(&mut result, &r);
            throttles = r.report.requests.throttled
                + r.superseded_by.as_ref().map_or(0, |s| s.requests.throttled);
            (result.status, None)
        }
        Ok(Done::Deleted) => (Status::Succeeded, None),
        Ok(Done::DeleteSkipped) => (Status::Skipped, None),
        Err(e) if e.is_retryable() => {
            throttles = u64::from(e.code() == "throttled");
            (Status::Retry, Some(e))
        }
        Err(e) if matches!(e, ferry::Error::TagConflict { .. }) => (Status::Conflict, Some(e)),
        Err(e) => (Status::Failed, Some(e)),
    };
    result.status = status;
    if let Some(e) = &error {
        result.error_code = Some(e.code().to_string());
        result.error_message = Some(e.to_string());
        tracing::warn!(message_id, event_id = %job.event_id, destination = %job.destination(), status = status.as_str(), code = e.code(), error = %e, "job failed");
    } else {
        tracing::info!(message_id, event_id = %job.event_id, destination = %job.destination(), status = status.as_str(), bytes = result.bytes, latency_ms = result.latency_ms, "job done");
    }
    emit_metrics(ctx, &job, status, Some(&result), throttles);
    JobOutcome {
        message_id: message_id.to_string(),
        status,
        result: (status != Status::Retry).then_some(result),
        engine,
        total: started.elapsed(),
        error: error.map(|e| e.to_string()),
        poison: false,
    }
}

/// A result event for `job` with `status`, nothing written yet.
fn result_for(job: &Job, status: Status) -> ReplicationResult {
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
        duration_ms: 0,
        latency_ms: (completed_at - job.event_time).num_milliseconds(),
        event_id: job.event_id.clone(),
        event_time: job.event_time,
        completed_at,
        origin: job.origin,
        error_code: None,
        error_message: None,
    }
}

/// A job the config does not allow: acknowledged, reported, counted; nothing sent.
fn rejected(
    message_id: &str,
    job: &Job,
    why: &Rejected,
    started: Instant,
    ctx: &ReplicateContext,
) -> JobOutcome {
    tracing::warn!(message_id, event_id = %job.event_id, destination = %job.destination(), code = why.code, reason = %why.reason, "job rejected: the config does not allow it");
    emit_metrics(ctx, job, Status::Rejected, None, 0);
    let mut result = result_for(job, Status::Rejected);
    result.error_code = Some("rejected".into());
    result.error_message = Some(why.to_string());
    ctx.metrics.emit(
        Record::new()
            .metric("RejectedJobs", Unit::Count, 1.0)
            .property("reason", why.code)
            .property("eventId", job.event_id.clone())
            .property("destination", job.destination()),
    );
    JobOutcome {
        message_id: message_id.to_string(),
        status: Status::Rejected,
        result: Some(result),
        engine: Duration::ZERO,
        total: started.elapsed(),
        error: Some(why.to_string()),
        poison: false,
    }
}

/// What the engine did.
enum Done {
    Copied(Box<Replicated>),
    Deleted,
    /// The source holds the tag (or digest) again: the delete was not propagated.
    DeleteSkipped,
}

fn apply(result: &mut ReplicationResult, r: &Replicated) {
    let reports = std::iter::once(&r.report).chain(r.superseded_by.as_ref());
    let mut copied = false;
    for rep in reports {
        copied |= rep.status == CopyStatus::Copied;
        result.bytes += rep.bytes;
        result.blobs_copied += rep.blobs.copied;
        result.blobs_skipped += rep.blobs.skipped;
        result.blobs_mounted += rep.blobs.mounted;
        result.tags.extend(rep.tags.iter().cloned());
    }
    result.digest = Some(r.report.digest.to_string());
    result.superseded_by = r.superseded_by.as_ref().map(|s| s.digest.to_string());
    result.status = if copied {
        Status::Succeeded
    } else {
        Status::Skipped
    };
}

fn emit_metrics(
    ctx: &ReplicateContext,
    job: &Job,
    status: Status,
    result: Option<&ReplicationResult>,
    throttles: u64,
) {
    let mut rec = Record::new()
        .dimension("destination", &job.destination())
        .dimension("status", status.as_str())
        .metric("Jobs", Unit::Count, 1.0)
        .metric("Throttles", Unit::Count, throttles as f64)
        .property("eventId", job.event_id.clone());
    if let Some(r) = result.filter(|_| status != Status::Retry) {
        rec = rec
            .metric(
                "ReplicationLatency",
                Unit::Milliseconds,
                r.latency_ms.max(0) as f64,
            )
            .metric("BytesCopied", Unit::Bytes, r.bytes as f64)
            .metric("BlobsCopied", Unit::Count, r.blobs_copied as f64)
            .metric("BlobsSkipped", Unit::Count, r.blobs_skipped as f64)
            .metric("BlobsMounted", Unit::Count, r.blobs_mounted as f64);
    }
    ctx.metrics.emit(rec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSource, Origin};
    use crate::result::MemoryPublisher;
    use ferry::config::ReplicationConfig;
    use std::sync::Mutex;

    /// Answers each job by its tag: `perm` a permanent error, `busy` a retryable one,
    /// `conflict` an immutable tag; anything else succeeds.
    #[derive(Default)]
    struct Scripted {
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Engine for Scripted {
        async fn copy(
            &self,
            job: &Job,
            _target: &Target,
            _deadline: Option<Instant>,
        ) -> Result<Replicated, ferry::Error> {
            let tag = job.source.tag.clone().unwrap_or_default();
            self.calls.lock().unwrap().push(tag.clone());
            let digest = job.source.digest.clone().unwrap();
            match tag.as_str() {
                "perm" => Err(ferry::Error::Auth {
                    registry: "r".into(),
                    repository: "a".into(),
                    status: 403,
                    message: "denied".into(),
                }),
                "busy" => Err(ferry::Error::Registry {
                    registry: "r".into(),
                    method: "PUT".into(),
                    url: "/v2/".into(),
                    status: 429,
                    message: "TOOMANYREQUESTS".into(),
                    retry_after: None,
                }),
                "conflict" => Err(ferry::Error::TagConflict {
                    registry: "r".into(),
                    repository: "a".into(),
                    tag,
                    existing: "sha256:old".into(),
                    wanted: digest,
                }),
                _ => Ok(Replicated {
                    report: ferry::CopyReport {
                        source: String::new(),
                        destination: String::new(),
                        digest,
                        tags: vec![tag],
                        status: CopyStatus::Copied,
                        manifests: Default::default(),
                        blobs: ferry::report::BlobCounts {
                            copied: 2,
                            skipped: 1,
                            mounted: 0,
                            foreign: 0,
                        },
                        bytes: 100,
                        referrers: 0,
                        requests: Default::default(),
                        duration_ms: 1,
                    },
                    superseded_by: None,
                    created_repository: false,
                }),
            }
        }

        async fn delete(&self, job: &Job, _target: &Target) -> Result<bool, ferry::Error> {
            self.calls.lock().unwrap().push(format!(
                "delete {}",
                job.source.tag.clone().unwrap_or_default()
            ));
            Ok(true)
        }
    }

    fn message(id: &str, group: &str, body: String) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m.attributes.insert("MessageGroupId".into(), group.into());
        m
    }

    const CONFIG: &str = r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
        "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#;

    fn config() -> ReplicationConfig {
        ReplicationConfig::from_json(CONFIG).unwrap()
    }

    fn job_of(action: JobAction, repository: &str, tag: &str) -> Job {
        let target = &config().destinations_for(repository, Some(tag)).unwrap()[0];
        let source = JobSource {
            registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
            repository: repository.into(),
            tag: Some(tag.into()),
            digest: Some(ferry::Digest::of(tag.as_bytes())),
        };
        Job::new(action, source, target, "ev", Utc::now(), Origin::Event)
    }

    fn job(repository: &str, tag: &str) -> String {
        job_of(JobAction::Copy, repository, tag).encode()
    }

    fn ctx(engine: Arc<Scripted>) -> (ReplicateContext, MemoryPublisher) {
        let results = MemoryPublisher::default();
        let ctx = ReplicateContext {
            config: Arc::new(config()),
            engine,
            results: Arc::new(results.clone()),
            metrics: Metrics::memory(),
            concurrency: 2,
        };
        (ctx, results)
    }

    #[tokio::test]
    async fn outcomes_by_error_class() {
        let engine = Arc::new(Scripted::default());
        let (ctx, published) = ctx(engine.clone());
        let mut event = SqsEvent::default();
        event.records = vec![
            message("1", "a", job("a", "ok")),
            message("2", "b", job("b", "perm")),
            message("3", "c", job("c", "conflict")),
            message("4", "d", job("d", "busy")),
            message("5", "d", job("d", "after-busy")),
            message("6", "e", "not json".into()),
            message("7", "e", job("e", "after-poison")),
        ];
        let report = replicate(event, None, &ctx).await;
        let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
        use Status::*;
        assert_eq!(
            statuses,
            [
                Succeeded, Failed, Conflict, Retry, Retry, Rejected, Succeeded
            ]
        );
        let failures: Vec<String> = report
            .response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(failures, ["4", "5"], "the poison message is acknowledged");
        assert!(
            !engine
                .calls
                .lock()
                .unwrap()
                .contains(&"after-busy".to_string()),
            "held back behind a retryable failure"
        );
        let results = published.results();
        assert_eq!(results.len(), 4, "no result event for retries");
        let failed = results.iter().find(|r| r.status == Failed).unwrap();
        assert_eq!(failed.error_code.as_deref(), Some("auth"));
        let ok = results
            .iter()
            .find(|r| r.source.tag.as_deref() == Some("ok"))
            .unwrap();
        assert_eq!((ok.bytes, ok.blobs_copied, ok.blobs_skipped), (100, 2, 1));
        assert_eq!(ctx.metrics.sum("Throttles", &[]), 1.0);
        assert_eq!(ctx.metrics.sum("MalformedEvents", &[]), 1.0);
        assert_eq!(ctx.metrics.sum("RejectedJobs", &[]), 1.0);
        assert_eq!(
            ctx.metrics.sum("Jobs", &[("status", "RETRY")]),
            1.0,
            "the held-back job never ran"
        );
    }

    #[tokio::test]
    async fn jobs_the_config_does_not_allow_are_rejected_unexecuted() {
        let engine = Arc::new(Scripted::default());
        let (ctx, published) = ctx(engine.clone());
        // A copy to a repository the config does not render, a copy from another account,
        // a delete where no rule propagates deletes, and one good job after them in the
        // same FIFO group.
        let mut elsewhere = job_of(JobAction::Copy, "app", "v1");
        elsewhere.target.repository = "other/repo".into();
        let mut foreign = job_of(JobAction::Copy, "app", "v2");
        foreign.source.registry = "999999999999.dkr.ecr.us-east-1.amazonaws.com".into();
        let delete = job_of(JobAction::Delete, "app", "v3");
        let mut event = SqsEvent::default();
        event.records = vec![
            message("1", "g", elsewhere.encode()),
            message("2", "g", foreign.encode()),
            message("3", "g", delete.encode()),
            message("4", "g", job("app", "ok")),
        ];
        let report = replicate(event, None, &ctx).await;
        let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
        use Status::*;
        assert_eq!(statuses, [Rejected, Rejected, Rejected, Succeeded]);
        assert!(report.response().batch_item_failures.is_empty());
        assert_eq!(
            *engine.calls.lock().unwrap(),
            ["ok"],
            "no rejected job reached the engine"
        );
        let results = published.results();
        let rejected: Vec<&ReplicationResult> =
            results.iter().filter(|r| r.status == Rejected).collect();
        assert_eq!(rejected.len(), 3);
        assert!(
            rejected
                .iter()
                .all(|r| r.error_code.as_deref() == Some("rejected"))
        );
        let reasons: Vec<&str> = rejected
            .iter()
            .map(|r| r.error_message.as_deref().unwrap_or_default())
            .collect();
        assert!(reasons[0].starts_with("not-configured:"), "{reasons:?}");
        assert!(reasons[1].starts_with("not-source:"), "{reasons:?}");
        assert!(reasons[2].starts_with("no-deletes:"), "{reasons:?}");
        assert_eq!(ctx.metrics.sum("RejectedJobs", &[]), 3.0);
    }

    #[tokio::test]
    async fn allowed_deletes_run_with_the_configs_target() {
        let engine = Arc::new(Scripted::default());
        let (mut ctx, _) = ctx(engine.clone());
        let mut with_deletes = config();
        with_deletes.rules[0].deletes = true;
        ctx.config = Arc::new(with_deletes);
        let mut event = SqsEvent::default();
        event.records = vec![message(
            "1",
            "g",
            job_of(JobAction::Delete, "app", "v3").encode(),
        )];
        let report = replicate(event, None, &ctx).await;
        assert_eq!(report.outcomes[0].status, Status::Succeeded);
        assert_eq!(*engine.calls.lock().unwrap(), ["delete v3"]);
    }

    #[tokio::test]
    async fn near_the_deadline_jobs_are_returned_unstarted() {
        let engine = Arc::new(Scripted::default());
        let (ctx, published) = ctx(engine.clone());
        let mut event = SqsEvent::default();
        event.records = vec![message("1", "a", job("a", "ok"))];
        let report = replicate(event, Some(Instant::now() + Duration::from_secs(2)), &ctx).await;
        assert_eq!(report.outcomes[0].status, Status::Retry);
        assert!(engine.calls.lock().unwrap().is_empty());
        assert!(published.results().is_empty());
    }

    #[test]
    fn copy_deadline_margin() {
        let now = Instant::now();
        assert_eq!(
            copy_deadline(now + Duration::from_secs(900), now),
            now + Duration::from_secs(840)
        );
        assert_eq!(
            copy_deadline(now + Duration::from_secs(100), now),
            now + Duration::from_secs(85)
        );
        assert_eq!(
            copy_deadline(now + Duration::from_secs(10), now),
            now + Duration::from_secs(5)
        );
        assert_eq!(copy_deadline(now + Duration::from_secs(3), now), now);
    }
}
