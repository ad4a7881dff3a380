//! A job for several destinations (`moreTargets`): each destination is authorized and gated
//! on its own, the image is copied to every allowed one with one source read
//! ([`Engine::copy_many`]), and each destination gets its own result event, metrics and
//! ledger entry.
//!
//! When some destinations must be tried again and others are done, the ones to try again
//! go back to the jobs queue as a job of their own ([`ReplicateContext::requeue`]) and the
//! message is acknowledged: only their part is retried. When every destination must be
//! tried again, or the queue cannot take the new job, the whole message is returned (a
//! destination already done then finds its copy in place and is skipped).

use std::time::Instant;

use ferry::copy::SharedReads;

use super::{Done, JobOutcome, ReplicateContext, admit, conclude};
use crate::job::Job;
use crate::result::Status;

/// Run a job for several destinations: one outcome per destination, in the job's order.
pub(super) async fn run(
    message_id: &str,
    job: &Job,
    copy_until: Option<Instant>,
    shared: &SharedReads,
    ctx: &ReplicateContext,
    started: Instant,
) -> Vec<JobOutcome> {
    let parts = job.parts();
    let admitted = futures::future::join_all(
        parts
            .iter()
            .map(|part| admit(message_id, part, copy_until, ctx, started)),
    )
    .await;
    let mut outcomes: Vec<Option<JobOutcome>> = vec![None; parts.len()];
    let (mut jobs, mut targets, mut at) = (Vec::new(), Vec::new(), Vec::new());
    for (i, a) in admitted.into_iter().enumerate() {
        match a {
            Ok(target) => {
                jobs.push(parts[i].clone());
                targets.push(target);
                at.push(i);
            }
            Err(o) => outcomes[i] = Some(*o),
        }
    }
    if !jobs.is_empty() {
        let engine_start = Instant::now();
        let results = ctx
            .engine
            .copy_many(&jobs, &targets, copy_until, shared)
            .await;
        let engine = engine_start.elapsed();
        for ((i, job), done) in at.into_iter().zip(&jobs).zip(results) {
            let done = done.map(|r| Done::Copied(Box::new(r)));
            outcomes[i] = Some(conclude(message_id, job, done, engine, started, ctx));
        }
    }
    let mut outcomes: Vec<JobOutcome> = outcomes.into_iter().flatten().collect();
    let again: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].status == Status::Retry)
        .collect();
    if again.is_empty() || again.len() == outcomes.len() {
        return outcomes;
    }
    let Some(queue) = &ctx.requeue else {
        return outcomes;
    };
    let part = job.for_targets(again.iter().map(|&i| parts[i].target.clone()).collect());
    match queue.send(std::slice::from_ref(&part)).await {
        Ok(()) => {
            tracing::info!(message_id, event_id = %job.event_id, again = again.len(), of = outcomes.len(), "destinations to try again sent as a job of their own");
            for i in again {
                outcomes[i].requeued = true;
            }
        }
        Err(e) => {
            tracing::warn!(message_id, event_id = %job.event_id, error = %e, "the destinations to try again could not be queued: the whole job goes back");
        }
    }
    outcomes
}
