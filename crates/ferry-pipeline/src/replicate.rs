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
//! - The jobs of one batch share their source reads ([`SharedReads`], one per invocation):
//!   N jobs copying one source image to N destinations read its manifests, referrers
//!   listing and tag from the source once (the ECR token is the client's, cached per
//!   registry: one for all of them).
//! - Permanent failures are recorded in the failure ledger, and a success clears its
//!   image's entry ([`crate::ledger`]): reconcile holds a failing image back until its
//!   backoff expires.
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
use ferry::copy::SharedReads;
use ferry::replicate::Replicated;

use crate::authority::AuthorityCell;
use crate::authorize::authorize_in;
use crate::gate::Gatekeeper;
use crate::job::{Job, JobAction};
use crate::ledger::Ledger;
use crate::metrics::{Metrics, Record, Unit};
use crate::result::{ReplicationResult, ResultPublisher, Status};
use ferry::gate::{GateName, GateReason, Verdict};

/// Executes jobs: the engine's [`Replicator`](ferry::replicate::Replicator), or a stand-in in tests. The target is the
/// config's ([`crate::authorize::authorize`]), never built from the message.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Copy the job's image to `target`; no new blob transfer starts after `deadline`.
    /// `shared` is the invocation's: the jobs of one batch that copy the same source image
    /// read its manifests from the source once through it.
    async fn copy(
        &self,
        job: &Job,
        target: &Target,
        deadline: Option<Instant>,
        shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error>;
    /// Propagate the job's delete to `target`; `false` when it was skipped because the
    /// source holds the tag (or digest) again, so a late delete never removes a newer push.
    async fn delete(&self, job: &Job, target: &Target) -> Result<bool, ferry::Error>;
    /// Bring the referrers of the job's image to `target` when the image is there (see
    /// [`Replicator::replicate_referrer`](ferry::replicate::Replicator::replicate_referrer)). Stand-ins copy.
    async fn referrer(
        &self,
        job: &Job,
        target: &Target,
        deadline: Option<Instant>,
        shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error> {
        self.copy(job, target, deadline, shared).await
    }

    /// Make `target`'s copy of the job's digest follow the source's storage class
    /// (archive or restore, [`JobAction::is_storage_class`]); `false` when nothing was to
    /// change (the source moved on since, or the copy is already there or absent).
    async fn storage_class(&self, job: &Job, target: &Target) -> Result<bool, ferry::Error> {
        let _ = (job, target);
        Err(ferry::Error::Unsupported(
            "this engine does not change storage classes".into(),
        ))
    }

    /// Copy the image of `jobs` (one job per destination, the same source image) to each
    /// of `targets`; each result is its own, in the order of `jobs`. The engine reads the
    /// image from the source once for all of them; stand-ins copy one by one.
    async fn copy_many(
        &self,
        jobs: &[Job],
        targets: &[Target],
        deadline: Option<Instant>,
        shared: &SharedReads,
    ) -> Vec<Result<Replicated, ferry::Error>> {
        let mut out = Vec::with_capacity(jobs.len());
        for (job, target) in jobs.iter().zip(targets) {
            out.push(self.copy(job, target, deadline, shared).await);
        }
        out
    }

    /// Judges promotion gates before a gated copy; `None` (stand-ins): every gated copy
    /// is blocked, never copied unjudged.
    fn gatekeeper(&self) -> Option<&dyn Gatekeeper> {
        None
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
    /// Organization scopes whose accounts could not be read for `config`: a job the config
    /// does not name may be for one of their accounts, so it is retried, not rejected.
    pub organizations_unread: Vec<String>,
    /// The failure ledger (`FERRY_LEDGER_TABLE`), if the hub has one: permanent failures
    /// are recorded there and successes clear them ([`crate::ledger::record`]).
    pub ledger: Option<Arc<dyn Ledger>>,
    /// The fingerprint of the loaded config's document
    /// ([`crate::ledger::config_fingerprint`]), recorded with each failure.
    pub config_fingerprint: String,
    /// The config's destination indexes, built on the first job and kept with the context
    /// (which is rebuilt when the config changes).
    pub authorities: AuthorityCell,
    /// The jobs queue (`FERRY_JOBS_QUEUE_URL`), if given: a job for several destinations
    /// sends the destinations to try again there as a job of their own, and the rest of
    /// the job is done. `None`: the whole job is returned to its queue.
    pub requeue: Option<Arc<dyn crate::queue::JobQueue>>,
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
    /// A RETRY of one destination of a job for several that was sent back to the queue as
    /// a job of its own: the message itself is acknowledged.
    pub requeued: bool,
}

impl JobOutcome {
    /// Whether the message goes back to the queue (in `batchItemFailures`).
    pub fn returned(&self) -> bool {
        self.status == Status::Retry && !self.requeued
    }
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
        let mut seen = std::collections::HashSet::new();
        r.batch_item_failures = self
            .outcomes
            .iter()
            .filter(|o| o.returned() && seen.insert(o.message_id.as_str()))
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
    // Per invocation: jobs of this batch share their source reads, and nothing read here
    // outlives it.
    let shared = SharedReads::default();
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
        .map(|msgs| run_group(msgs, copy_until, &shared, ctx));
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
    if let Some(ledger) = &ctx.ledger {
        let now = Utc::now();
        futures::future::join_all(results.iter().map(|r| {
            crate::ledger::record(
                ledger.as_ref(),
                &ctx.metrics,
                &ctx.config_fingerprint,
                r,
                now,
            )
        }))
        .await;
    }
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
    shared: &SharedReads,
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
        let body = m.body.as_deref().unwrap_or_default();
        let outcomes = run_one(&id, body, copy_until, shared, ctx).await;
        // A retryable failure holds back the group's later jobs; a rejected one never
        // succeeds and is acknowledged, so it holds nothing (nor does a part of a job for
        // several destinations that went back to the queue as a job of its own).
        blocked = outcomes.iter().any(JobOutcome::returned);
        out.extend(outcomes.into_iter().map(|o| (i, o)));
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
        requeued: false,
    }
}

async fn run_one(
    message_id: &str,
    body: &str,
    copy_until: Option<Instant>,
    shared: &SharedReads,
    ctx: &ReplicateContext,
) -> Vec<JobOutcome> {
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
            return vec![JobOutcome {
                message_id: message_id.to_string(),
                status: Status::Rejected,
                result: None,
                engine: Duration::ZERO,
                total: started.elapsed(),
                error: Some(e.to_string()),
                poison: true,
                requeued: false,
            }];
        }
    };
    if !job.more_targets.is_empty() {
        // Several destinations: see `fanout`.
        return fanout::run(message_id, &job, copy_until, shared, ctx, started).await;
    }
    let target = match admit(message_id, &job, copy_until, ctx, started).await {
        Ok(t) => t,
        Err(o) => return vec![*o],
    };
    let engine_start = Instant::now();
    let done = match job.action {
        JobAction::Copy => ctx
            .engine
            .copy(&job, &target, copy_until, shared)
            .await
            .map(|r| Done::Copied(Box::new(r))),
        JobAction::Referrer => ctx
            .engine
            .referrer(&job, &target, copy_until, shared)
            .await
            .map(|r| Done::Copied(Box::new(r))),
        JobAction::Delete => ctx
            .engine
            .delete(&job, &target)
            .await
            .map(|d| if d { Done::Changed } else { Done::Unchanged }),
        JobAction::Archive | JobAction::Restore => ctx
            .engine
            .storage_class(&job, &target)
            .await
            .map(|changed| {
                if changed {
                    Done::Changed
                } else {
                    Done::Unchanged
                }
            }),
    };
    vec![conclude(
        message_id,
        &job,
        done,
        engine_start.elapsed(),
        started,
        ctx,
    )]
}

/// Whether the config allows the job, there is time to start it, and its promotion gates
/// pass: the config's target, or the outcome that ends the job here.
async fn admit(
    message_id: &str,
    job: &Job,
    copy_until: Option<Instant>,
    ctx: &ReplicateContext,
    started: Instant,
) -> Result<Target, Box<JobOutcome>> {
    let job = job.clone();
    let target = match authorize_in(&job, &ctx.authorities.get(&ctx.config)) {
        Ok(t) => t,
        Err(why) if why.code == "not-configured" && !ctx.organizations_unread.is_empty() => {
            // Perhaps an account of an organization that cannot be read right now: the
            // queue's redrive decides, never a rejection that drops the job.
            let mut o = retry(
                message_id.to_string(),
                &format!(
                    "not in the config while the accounts of {} cannot be read",
                    ctx.organizations_unread.join(", ")
                ),
            );
            o.total = started.elapsed();
            emit_metrics(ctx, &job, Status::Retry, None, 0);
            return Err(Box::new(o));
        }
        Err(why) => return Err(Box::new(rejected(message_id, &job, &why, started, ctx))),
    };
    if copy_until.is_some_and(|d| Instant::now() >= d) {
        let mut o = retry(
            message_id.to_string(),
            "too close to the Lambda deadline to start",
        );
        o.total = started.elapsed();
        emit_metrics(ctx, &job, Status::Retry, None, 0);
        return Err(Box::new(o));
    }
    if crate::gate::gated(&job, &target) {
        let verdict = match ctx.engine.gatekeeper() {
            Some(keeper) => crate::gate::judge(keeper, &job, &target).await,
            None => Verdict::Blocked(GateReason::new(
                GateName::Scan,
                "gate-error",
                "this engine cannot judge promotion gates",
            )),
        };
        if let Some(result) = crate::gate::gate_result(&job, &verdict) {
            let status = result.status;
            tracing::info!(message_id, event_id = %job.event_id, destination = %job.destination(), status = status.as_str(), code = ?result.gate.as_ref().map(|g| g.code.as_str()), "promotion gate: not copied");
            emit_metrics(ctx, &job, status, Some(&result), 0);
            // As dispatch counts them: BlockedImagesAlarm watches this metric.
            ctx.metrics.emit(
                Record::new()
                    .dimension("status", status.as_str())
                    .metric("GateResults", Unit::Count, 1.0)
                    .property("destination", job.destination()),
            );
            return Err(Box::new(JobOutcome {
                message_id: message_id.to_string(),
                status,
                result: Some(result),
                engine: Duration::ZERO,
                total: started.elapsed(),
                error: None,
                poison: false,
                requeued: false,
            }));
        }
    }
    Ok(target)
}

mod archive;
mod engine;
mod fanout;
mod outcome;

#[cfg(test)]
use outcome::apply;
use outcome::{Done, conclude, emit_metrics, rejected};
#[cfg(test)]
mod fanout_tests;
#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod tests;
