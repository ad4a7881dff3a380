//! How a job ends: its status, result event and metrics, from what the engine did or why
//! the job was refused.

use std::time::{Duration, Instant};

use ferry::replicate::Replicated;
use ferry::report::CopyStatus;

use super::{JobOutcome, ReplicateContext};
use crate::authorize::Rejected;
use crate::job::Job;
use crate::metrics::{Record, Unit};
use crate::result::{ReplicationResult, Status, result_for};

/// The outcome of a job the engine ran: its status, result event and metrics.
pub(super) fn conclude(
    message_id: &str,
    job: &Job,
    done: Result<Done, ferry::Error>,
    engine: Duration,
    started: Instant,
    ctx: &ReplicateContext,
) -> JobOutcome {
    let mut result = result_for(job, Status::Succeeded);
    result.duration_ms = engine.as_millis() as u64;
    let mut throttles = 0;
    let (status, error) = match done {
        Ok(Done::Copied(r)) => {
            apply(&mut result, &r);
            throttles = r.report.requests.throttled
                + r.superseded_by.as_ref().map_or(0, |s| s.requests.throttled);
            (result.status, None)
        }
        Ok(Done::Changed) => (Status::Succeeded, None),
        Ok(Done::Unchanged) => (Status::Skipped, None),
        Err(e) if e.is_retryable() => {
            throttles = u64::from(e.code() == "throttled");
            (Status::Retry, Some(e))
        }
        Err(e) if matches!(e, ferry::Error::TagConflict { .. }) => (Status::Conflict, Some(e)),
        // Archived at the source: nothing to copy until it is restored (then a restore
        // event, or reconcile, copies it). Acknowledged, never retried.
        Err(e) if matches!(e, ferry::Error::Archived { .. }) => {
            result.reason = Some(crate::result::REASON_ARCHIVED.into());
            (Status::Skipped, Some(e))
        }
        // A tag other tags share, at a registry that cannot untag: left in place.
        Err(e) if matches!(e, ferry::Error::UntagUnsupported { .. }) => {
            result.reason = Some(crate::result::REASON_UNTAG_UNSUPPORTED.into());
            (Status::Skipped, Some(e))
        }
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
    emit_metrics(ctx, job, status, Some(&result), throttles);
    JobOutcome {
        message_id: message_id.to_string(),
        status,
        result: (status != Status::Retry).then_some(result),
        engine,
        total: started.elapsed(),
        error: error.map(|e| e.to_string()),
        poison: false,
        requeued: false,
    }
}

/// A job the config does not allow: acknowledged, reported, counted; nothing sent.
pub(super) fn rejected(
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
        requeued: false,
    }
}

/// What the engine did.
pub(super) enum Done {
    Copied(Box<Replicated>),
    /// Deleted, or (archive, restore) the copy's storage class changed.
    Changed,
    /// The source holds the tag (or digest) again: the delete was not propagated; or
    /// (archive, restore) nothing was to change.
    Unchanged,
}

pub(super) fn apply(result: &mut ReplicationResult, r: &Replicated) {
    let reports = std::iter::once(&r.report).chain(r.superseded_by.as_ref());
    let mut copied = false;
    for rep in reports {
        copied |= rep.status == CopyStatus::Copied;
        result.bytes += rep.bytes;
        result.blobs_copied += rep.blobs.copied;
        result.blobs_skipped += rep.blobs.skipped;
        result.blobs_mounted += rep.blobs.mounted;
        result.tags.extend(rep.tags.iter().cloned());
        result
            .referrers_rejected
            .extend(rep.referrers_rejected.iter().cloned());
    }
    result.digest = Some(r.report.digest.to_string());
    result.written_digest = r.report.filtered_digest.as_ref().map(|d| d.to_string());
    result.superseded_by = r.superseded_by.as_ref().map(|s| s.digest.to_string());
    result.status = if copied {
        Status::Succeeded
    } else {
        Status::Skipped
    };
}

pub(super) fn emit_metrics(
    ctx: &ReplicateContext,
    job: &Job,
    status: Status,
    result: Option<&ReplicationResult>,
    throttles: u64,
) {
    // Dimensions stay bounded (status only): the destination is a property.
    let destination = job.destination();
    ctx.metrics.emit(
        Record::new()
            .dimension("status", status.as_str())
            .metric("Jobs", Unit::Count, 1.0)
            .property("destination", destination.clone())
            .property("eventId", job.event_id.clone()),
    );
    let mut totals = Record::new()
        .metric("Throttles", Unit::Count, throttles as f64)
        .property("destination", destination)
        .property("status", status.as_str())
        .property("eventId", job.event_id.clone());
    if let Some(r) = result.filter(|_| status != Status::Retry) {
        totals = totals
            .metric("BytesCopied", Unit::Bytes, r.bytes as f64)
            .metric("BlobsCopied", Unit::Count, r.blobs_copied as f64)
            .metric("BlobsSkipped", Unit::Count, r.blobs_skipped as f64)
            .metric("BlobsMounted", Unit::Count, r.blobs_mounted as f64);
        // Replication lag: from the event (or reconcile's finding) to the replica.
        if status == Status::Succeeded {
            totals = totals.metric(
                "ReplicationLag",
                Unit::Seconds,
                r.latency_ms.max(0) as f64 / 1000.0,
            );
        }
    }
    ctx.metrics.emit(totals);
}
