//! The reconcile handler: runs the sync plan over the whole config and enqueues a job for
//! every image missing or different at a destination (and every delete to propagate), as
//! the same job messages dispatch sends. It heals events EventBridge dropped and backfills
//! a newly added destination.
//!
//! A run enqueues at most `FERRY_MAX_JOBS_PER_RUN` jobs and continues where the last one
//! stopped (a cursor in the failure ledger's table), so every image is reached within a
//! bounded number of runs; images the ledger holds back after a permanent failure wait
//! for their backoff without using the cap ([`Pacing`]).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use ferry::config::{Registry, ReplicationConfig, Target};
use ferry::gate::Verdict;
use ferry::replicate::Replicator;
use ferry::sync::{Action, plan_for_drift};

use crate::error::PipelineError;
use crate::job::{Job, JobAction, JobSource, Origin};
use crate::ledger::{Ledger, LedgerEntry, LedgerKey, ledger_error};
use crate::metrics::{Metrics, Record, Unit};
use crate::queue::JobQueue;

/// One difference between a source image and a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftItem {
    /// Copy (missing or different) or delete (gone at the source).
    pub action: JobAction,
    /// The source image.
    pub source: JobSource,
    /// The destination.
    pub target: Target,
    /// The destination tag is immutable and holds another digest: reported, not enqueued.
    pub conflict: bool,
    /// A promotion gate holds or blocks the copy: reported, not enqueued (the next run
    /// judges it again, so a release lost with its event is only delayed).
    pub gate: Option<Verdict>,
}

/// Finds drift: the engine's plan, or a stand-in in tests. Not `Send`: the engine's plan
/// future is not provably `Send` (closure lifetimes), and a Lambda handler need not be.
#[async_trait(?Send)]
pub trait DriftSource {
    /// Every difference, in a stable order.
    async fn drift(&self) -> Result<Vec<DriftItem>, PipelineError>;
}

#[async_trait(?Send)]
impl DriftSource for Replicator {
    async fn drift(&self) -> Result<Vec<DriftItem>, PipelineError> {
        let p = plan_for_drift(self).await?;
        let mut out = Vec::new();
        for item in p.items {
            let gate = match (&item.action, item.gate.clone()) {
                (Action::Held, Some(reason)) => Some(Verdict::Held(reason)),
                (Action::Blocked, Some(reason)) => Some(Verdict::Blocked(reason)),
                _ => None,
            };
            let (action, conflict) = match item.action {
                Action::Copy | Action::Held | Action::Blocked => (JobAction::Copy, false),
                Action::Delete => (JobAction::Delete, false),
                Action::Conflict => (JobAction::Copy, true),
                Action::Archive => (JobAction::Archive, false),
                Action::Restore => (JobAction::Restore, false),
                Action::Skip | Action::Extra | Action::Archived => continue,
            };
            out.push(DriftItem {
                action,
                source: JobSource {
                    registry: p.source.clone(),
                    repository: item.source_repository.to_string(),
                    // A storage-class job names the image by digest alone, as ECR's event
                    // does: one job per image however many tags it has (one deduplication
                    // id).
                    tag: if action.is_storage_class() {
                        None
                    } else {
                        item.tag.clone()
                    },
                    digest: if action == JobAction::Copy || action.is_storage_class() {
                        item.digest.clone()
                    } else {
                        None
                    },
                },
                target: ferry::config::Target::clone(&item.target),
                conflict,
                gate,
            });
        }
        Ok(out)
    }
}

/// The config a reconcile run plans over. A config whose source is bound from each event
/// (a bare `describe-registry` output, or no `source`) names no registry to list, so the
/// hub reconciles its own registry (its account and region): the registry the
/// configuration is set on. Other registries that forward their events are reconciled by
/// the hub of their own account and region. A config pinned to another registry is
/// refused.
pub fn bind_to_hub(
    config: &std::sync::Arc<ReplicationConfig>,
    account: &str,
    region: &str,
) -> Result<std::sync::Arc<ReplicationConfig>, PipelineError> {
    if config.source_registry().is_some() {
        return Ok(config.clone());
    }
    // STS's answer becomes part of a registry host name: only a 12-digit account ID does.
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PipelineError::Config(format!(
            "the hub's account ID {:?} from STS is not 12 digits",
            account.escape_debug().to_string()
        )));
    }
    let hub = Registry::Ecr {
        registry_id: account.to_string(),
        region: region.to_string(),
    };
    match config.for_source(&hub) {
        Some(bound) => Ok(std::sync::Arc::new(bound.into_owned())),
        None => Err(PipelineError::Config(format!(
            "the config's source names another registry than the hub's own ({}): pin `source` to the registry to reconcile",
            hub.host()
        ))),
    }
}

/// What one reconcile run did (the function's response).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciled {
    /// The run id (`eventId` of its jobs is `reconcile:<run id>`).
    pub run_id: String,
    /// Images to copy or delete, over every destination.
    pub drift: usize,
    /// Immutable-tag conflicts found (not enqueued).
    pub conflicts: usize,
    /// Drift the failure ledger holds back (a permanent failure whose backoff has not
    /// expired): not enqueued, and not counted against the cap.
    pub held: usize,
    /// Copies a promotion gate holds (scan not complete): not enqueued, judged again next
    /// run.
    pub gate_held: usize,
    /// Copies a promotion gate blocks: not enqueued.
    pub gate_blocked: usize,
    /// Jobs sent.
    pub enqueued: usize,
    /// Whether drift was left for later runs (the cap, or drift before the cursor).
    pub capped: bool,
    /// Where the next run continues (the drift key of the last job sent), when this run
    /// stopped before the end of the drift order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Jobs already in the queue when the run started, when the queue could tell: they
    /// count against the cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<usize>,
    /// Drift by destination registry/repository.
    pub by_destination: BTreeMap<String, usize>,
}

/// How much one run enqueues, and what holds drift back.
#[derive(Clone, Copy)]
pub struct Pacing<'a> {
    /// Jobs one run enqueues at most (`FERRY_MAX_JOBS_PER_RUN`).
    pub max_jobs: usize,
    /// The failure ledger (and the cursor it keeps), if the hub has one.
    pub ledger: Option<&'a dyn Ledger>,
    /// The fingerprint of the loaded config ([`crate::ledger::config_fingerprint`]): an
    /// entry recorded under another config holds nothing back.
    pub fingerprint: &'a str,
    /// The run's time (backoffs expire against it).
    pub now: DateTime<Utc>,
}

impl Pacing<'_> {
    /// At most `max_jobs` a run, no ledger, always from the start.
    pub fn capped(max_jobs: usize) -> Pacing<'static> {
        Pacing {
            max_jobs,
            ledger: None,
            fingerprint: "",
            now: Utc::now(),
        }
    }
}

/// The drift key of an item: its destination, then its action and source image (the
/// ledger key's two halves). Drift is enqueued in the order of these keys.
pub fn drift_key(item: &DriftItem) -> String {
    let key = item_ledger_key(item);
    format!("{} {}", key.pk, key.sk)
}

fn item_ledger_key(item: &DriftItem) -> LedgerKey {
    LedgerKey::new(
        &item.target.destination.registry_host(),
        &item.target.repository,
        item.action,
        &item.source,
    )
}

/// Find drift, emit the `Drift` metric, and enqueue at most `pacing.max_jobs` jobs: the
/// drift after the ledger's cursor, passing over what the ledger holds back
/// ([`select::select`]). The cursor is moved once the jobs are sent. The ledger's errors
/// are logged and counted (`LedgerErrors`): the run then goes on without it.
pub async fn reconcile(
    run_id: &str,
    source: &dyn DriftSource,
    queue: &dyn JobQueue,
    metrics: &Metrics,
    pacing: &Pacing<'_>,
) -> Result<Reconciled, PipelineError> {
    let items = source.drift().await?;
    let (entries, cursor) = read_ledger(pacing.ledger, metrics).await;
    let now = pacing.now;
    let event_id = format!("reconcile:{run_id}");
    let mut out = Reconciled {
        run_id: run_id.to_string(),
        ..Default::default()
    };
    let mut keyed: Vec<(String, DriftItem)> =
        items.into_iter().map(|i| (drift_key(&i), i)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut eligible = vec![false; keyed.len()];
    for (i, (_, item)) in keyed.iter().enumerate() {
        let destination = format!(
            "{}/{}",
            item.target.destination.registry_host(),
            item.target.repository
        );
        if item.conflict {
            out.conflicts += 1;
            tracing::warn!(%destination, tag = ?item.source.tag, "immutable tag holds another digest: not enqueued");
            continue;
        }
        if let Some(verdict) = &item.gate {
            let reason = verdict.reason();
            match verdict {
                Verdict::Held(_) => out.gate_held += 1,
                _ => out.gate_blocked += 1,
            }
            tracing::info!(%destination, tag = ?item.source.tag, digest = ?item.source.digest, verdict = verdict.as_str(), gate = ?reason.map(|r| r.gate.as_str()), code = ?reason.map(|r| r.code.as_str()), reason = ?reason.map(|r| r.reason.as_str()), "promotion gate: not enqueued");
            continue;
        }
        out.drift += 1;
        *out.by_destination.entry(destination).or_default() += 1;
        let held = entries
            .get(&item_ledger_key(item))
            .is_some_and(|e| e.holds(pacing.fingerprint, item.source.digest.as_ref(), now));
        if held {
            out.held += 1;
        } else {
            eligible[i] = true;
        }
    }
    let (keys, keyed): (Vec<String>, Vec<DriftItem>) = keyed.into_iter().unzip();
    // The jobs still queued from earlier runs count against this run's cap: the fleet has
    // not worked them off, and enqueueing more would only queue copies twice.
    let backlog = match queue.backlog().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, code = e.code(), "jobs queue backlog unknown: the whole cap is used");
            None
        }
    };
    out.backlog = backlog;
    let room = pacing.max_jobs.saturating_sub(backlog.unwrap_or(0));
    if room == 0 {
        out.capped = out.drift > out.held;
        out.cursor = cursor;
        tracing::info!(run_id, drift = out.drift, backlog = ?backlog, "the jobs queue holds a full run's jobs: nothing enqueued, the cursor stays");
        emit_drift(metrics, run_id, &out);
        return Ok(out);
    }
    let selection = select::select(&keys, |i| eligible[i], cursor.as_deref(), room);
    let jobs: Vec<Job> = selection
        .chosen
        .iter()
        .map(|&i| {
            let item = &keyed[i];
            Job::new(
                item.action,
                item.source.clone(),
                &item.target,
                &event_id,
                now,
                Origin::Reconcile,
            )
        })
        .collect();
    out.capped = out.drift - out.held > jobs.len();
    queue.send(&jobs).await?;
    out.enqueued = jobs.len();
    out.cursor = selection.next_cursor;
    if let Some(ledger) = pacing.ledger
        && (out.cursor.is_some() || cursor.is_some())
        && let Err(e) = ledger.set_cursor(out.cursor.as_deref()).await
    {
        ledger_error(metrics, &e);
    }
    // Per destination in the log (and the run's answer), never as a metric dimension:
    // the number of metric series stays the same however many destinations there are.
    for (destination, n) in &out.by_destination {
        tracing::info!(%destination, drift = *n, "drift at this destination");
    }
    emit_drift(metrics, run_id, &out);
    tracing::info!(
        run_id,
        drift = out.drift,
        enqueued = out.enqueued,
        conflicts = out.conflicts,
        held = out.held,
        capped = out.capped,
        restarted = selection.restarted,
        "reconciled"
    );
    Ok(out)
}

fn emit_drift(metrics: &Metrics, run_id: &str, out: &Reconciled) {
    metrics.emit(
        Record::new()
            .metric("Drift", Unit::Count, out.drift as f64)
            .metric("DriftConflicts", Unit::Count, out.conflicts as f64)
            .metric("DriftHeld", Unit::Count, out.held as f64)
            .metric("GateHeld", Unit::Count, out.gate_held as f64)
            .metric("GateBlocked", Unit::Count, out.gate_blocked as f64)
            .property("runId", run_id),
    );
}

/// The ledger's entries and cursor; each empty when there is no ledger or it cannot be
/// read (logged and counted).
async fn read_ledger(
    ledger: Option<&dyn Ledger>,
    metrics: &Metrics,
) -> (HashMap<LedgerKey, LedgerEntry>, Option<String>) {
    let Some(ledger) = ledger else {
        return (HashMap::new(), None);
    };
    let entries = ledger.entries().await.unwrap_or_else(|e| {
        ledger_error(metrics, &e);
        HashMap::new()
    });
    let cursor = ledger.cursor().await.unwrap_or_else(|e| {
        ledger_error(metrics, &e);
        None
    });
    (entries, cursor)
}

pub mod select;
#[cfg(test)]
mod tests;
