//! `plan`, `sync` (backfill) and `verify` (drift) over a replication config.

mod archive;
#[cfg(test)]
mod archive_tests;
mod bytes;
mod ecr_notes;
mod filtered;
mod gates;
mod listing;
mod native;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

pub use ecr_notes::{CacheLeftOut, SelfSigned};
pub use listing::{InvalidName, ListedImage, RepoState};
pub use native::native_overlaps;
pub use plan::{Action, Plan, PlanItem, PlanSummary, plan, plan_for_drift, plan_for_sync};

use crate::copy::CopyOptions;
use crate::error::Error;
use crate::replicate::Replicator;
use crate::report::{CopyReport, RequestCounts};

/// How one plan item ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Copied.
    Copied,
    /// Already there (in the plan, or found so when copying).
    Skipped,
    /// Deleted at the destination.
    Deleted,
    /// Immutable tag holds another digest; left alone.
    Conflict,
    /// Failed; see the error.
    Failed,
    /// Destination-only tag, left alone (deletes not propagated by the rule).
    Extra,
    /// Archived (or being restored) at the source: not copied.
    Archived,
    /// The destination copy was archived, following the source (`archive: "follow"`).
    #[serde(rename = "copy-archived")]
    CopyArchived,
    /// The destination copy was restored, following the source (`archive: "follow"`).
    #[serde(rename = "copy-restored")]
    CopyRestored,
    /// A tag the source removed, left in place: the destination deletes manifests, not
    /// tags, and other tags still point at its manifest.
    #[serde(rename = "untag-unsupported")]
    UntagUnsupported,
    /// A promotion gate holds the image (its scan is not complete): not copied yet.
    Held,
    /// A promotion gate blocks the image: not copied.
    Blocked,
}

/// One item's result.
#[derive(Clone, Debug, Serialize)]
pub struct ItemResult {
    /// The plan item.
    pub item: PlanItem,
    /// How it ended.
    pub outcome: Outcome,
    /// The copy report, for copies.
    pub report: Option<CopyReport>,
    /// Error code and message, for failures and conflicts.
    pub error: Option<String>,
}

/// Totals of a sync.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncTotals {
    /// Images copied.
    pub copied: usize,
    /// Images already in place.
    pub skipped: usize,
    /// Tags deleted.
    pub deleted: usize,
    /// Tags the source removed that were left in place (the destination cannot untag
    /// without removing other tags of the same manifest).
    pub untag_unsupported: usize,
    /// Immutable-tag conflicts.
    pub conflicts: usize,
    /// Failures.
    pub failed: usize,
    /// Source images not copied because they are archived.
    pub archived: usize,
    /// Destination copies archived or restored to follow the source.
    pub storage_class_changes: usize,
    /// Copies a promotion gate holds (scan not complete yet).
    pub held: usize,
    /// Copies a promotion gate blocks.
    pub blocked: usize,
    /// Blob bytes moved.
    pub bytes: u64,
    /// Blobs streamed.
    pub blobs_copied: u64,
    /// Blobs mounted inside a destination registry.
    pub blobs_mounted: u64,
    /// Blobs already present.
    pub blobs_skipped: u64,
}

/// The report of a sync run.
#[derive(Clone, Debug, Serialize)]
pub struct SyncReport {
    /// Totals.
    pub totals: SyncTotals,
    /// The plan's summary.
    pub plan: PlanSummary,
    /// Every registry request of the run, listing included.
    pub requests: RequestCounts,
    /// Wall time.
    pub duration_ms: u64,
    /// Items (skips included).
    pub items: Vec<ItemResult>,
    /// Listed names that were refused and skipped (see [`InvalidName`]).
    pub invalid_names: Vec<InvalidName>,
}

impl SyncReport {
    /// Whether anything failed or conflicted.
    pub fn ok(&self) -> bool {
        self.totals.failed == 0 && self.totals.conflicts == 0
    }
}

/// Execute a plan with `concurrency` images in flight; `progress` is told of every item
/// as it ends. Copies share the replicator's copier, so a blob shared by several images
/// crosses the wire once per destination, and the plan's source reads
/// ([`crate::copy::SharedReads`]), so each source
/// image's manifests are read once however many destinations it goes to.
pub async fn sync(
    replicator: &Replicator,
    plan: Plan,
    concurrency: usize,
    progress: Arc<dyn Fn(&ItemResult) + Send + Sync>,
) -> SyncReport {
    let started = Instant::now();
    let source = plan.source.clone();
    let summary = plan.summary.clone();
    let invalid_names = plan.invalid_names.clone();
    // The run reads each source image's manifests, referrers and tag once for all its
    // destinations (the plan is the snapshot the run acts on anyway).
    let options = CopyOptions {
        shared_reads: Some(plan.shared.clone()),
        ..replicator.copier().options().clone()
    };
    // Tags deleted in this run, by destination repository: a tag delete at a registry
    // that deletes whole manifests does not count them as tags that still need it.
    let mut deletes: HashMap<String, Vec<String>> = HashMap::new();
    for item in plan.items.iter().filter(|i| i.action == Action::Delete) {
        if let Some(tag) = &item.tag {
            deletes
                .entry(item.destination_repo_key())
                .or_default()
                .push(tag.clone());
        }
    }
    let deletes = &deletes;
    let results: Vec<ItemResult> = futures::stream::iter(units(plan.items, &source))
        .map(|unit| {
            let source = &source;
            let progress = progress.clone();
            let options = options.clone();
            async move {
                let items = match unit {
                    Unit::One(item) => {
                        let item = *item;
                        let deleting = deletes
                            .get(&item.destination_repo_key())
                            .cloned()
                            .unwrap_or_default();
                        vec![run_item(replicator, source, item, options, deleting).await]
                    }
                    Unit::Copies(items) => {
                        run_copies(replicator, source, items, options, concurrency).await
                    }
                };
                items.iter().for_each(|r| progress(r));
                futures::stream::iter(items)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .flatten()
        .collect()
        .await;
    let mut totals = SyncTotals::default();
    for r in &results {
        match r.outcome {
            Outcome::Copied => totals.copied += 1,
            Outcome::Skipped | Outcome::Extra => totals.skipped += 1,
            Outcome::UntagUnsupported => totals.untag_unsupported += 1,
            Outcome::Deleted => totals.deleted += 1,
            Outcome::Conflict => totals.conflicts += 1,
            Outcome::Failed => totals.failed += 1,
            Outcome::Archived => totals.archived += 1,
            Outcome::Held => totals.held += 1,
            Outcome::Blocked => totals.blocked += 1,
            Outcome::CopyArchived | Outcome::CopyRestored => totals.storage_class_changes += 1,
        }
        if let Some(rep) = &r.report {
            totals.bytes += rep.bytes;
            totals.blobs_copied += rep.blobs.copied;
            totals.blobs_mounted += rep.blobs.mounted;
            totals.blobs_skipped += rep.blobs.skipped;
        }
    }
    let mut items = results;
    items.sort_by_key(|r| r.item.destination_display());
    SyncReport {
        totals,
        plan: summary,
        requests: RequestCounts::from_stats(replicator.copier().client().stats()),
        duration_ms: started.elapsed().as_millis() as u64,
        items,
        invalid_names,
    }
}

/// What the run does at once: one item, or the copies of one source image to several
/// destinations (one source read per blob for all of them).
enum Unit {
    One(Box<PlanItem>),
    Copies(Vec<PlanItem>),
}

/// The plan's items as units: copies of the same source image grouped, in the order each
/// image first appears.
fn units(items: Vec<PlanItem>, source: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut groups: HashMap<String, usize> = HashMap::new();
    for item in items {
        if item.action != Action::Copy {
            out.push(Unit::One(Box::new(item)));
            continue;
        }
        let key = item.source_ref(source).to_string();
        match groups.get(&key) {
            Some(&i) => match &mut out[i] {
                Unit::Copies(v) => v.push(item),
                Unit::One(_) => {
                    let Unit::One(first) = std::mem::replace(&mut out[i], Unit::Copies(Vec::new()))
                    else {
                        unreachable!()
                    };
                    out[i] = Unit::Copies(vec![*first, item]);
                }
            },
            None => {
                groups.insert(key, out.len());
                out.push(Unit::One(Box::new(item)));
            }
        }
    }
    out
}

/// The copies of one source image: [`Replicator::replicate_many`].
async fn run_copies(
    replicator: &Replicator,
    source: &str,
    items: Vec<PlanItem>,
    options: CopyOptions,
    width: usize,
) -> Vec<ItemResult> {
    let src = items[0].source_ref(source);
    let targets: Vec<&crate::config::Target> = items.iter().map(|i| i.target.as_ref()).collect();
    let (results, fanned) = replicator
        .replicate_many(&src, &targets, Some(options), width)
        .await;
    if fanned.shared_blobs > 0 {
        tracing::debug!(source = %src, shared_blobs = fanned.shared_blobs, reads = fanned.source_reads, uploads = fanned.uploads, detached = fanned.detached, "fan-out");
    }
    items
        .into_iter()
        .zip(results)
        .map(|(item, r)| copied(item, r))
        .collect()
}

/// A copy's item result.
fn copied(item: PlanItem, r: Result<crate::replicate::Replicated, Error>) -> ItemResult {
    let done = |item, outcome, report, error| ItemResult {
        item,
        outcome,
        report,
        error,
    };
    match r {
        Ok(r) => {
            let outcome = match r.report.status {
                crate::report::CopyStatus::Copied => Outcome::Copied,
                crate::report::CopyStatus::Skipped => Outcome::Skipped,
            };
            done(item, outcome, Some(r.report), None)
        }
        Err(e @ Error::TagConflict { .. }) => done(
            item,
            Outcome::Conflict,
            None,
            Some(format!("{}: {e}", e.code())),
        ),
        Err(e) => done(
            item,
            Outcome::Failed,
            None,
            Some(format!("{}: {e}", e.code())),
        ),
    }
}

async fn run_item(
    replicator: &Replicator,
    source: &str,
    item: PlanItem,
    options: CopyOptions,
    deleting: Vec<String>,
) -> ItemResult {
    let done = |item, outcome, report, error| ItemResult {
        item,
        outcome,
        report,
        error,
    };
    match item.action {
        Action::Skip => done(item, Outcome::Skipped, None, None),
        Action::Extra => done(item, Outcome::Extra, None, None),
        Action::Archived => done(item, Outcome::Archived, None, None),
        Action::Held | Action::Blocked => {
            let outcome = if item.action == Action::Held {
                Outcome::Held
            } else {
                Outcome::Blocked
            };
            let reason = item.gate.as_ref().map(|g| g.to_string());
            done(item, outcome, None, reason)
        }
        Action::Archive | Action::Restore => {
            let archive = item.action == Action::Archive;
            // The copy at the destination: a filtered index's own digest, else the source's.
            let Some(digest) = item.filtered_digest.clone().or_else(|| item.digest.clone()) else {
                return done(item, Outcome::Skipped, None, None);
            };
            match replicator
                .follow_storage_class(&item.target, &digest, archive)
                .await
            {
                Ok(_) if archive => done(item, Outcome::CopyArchived, None, None),
                Ok(_) => done(item, Outcome::CopyRestored, None, None),
                Err(e) => done(
                    item,
                    Outcome::Failed,
                    None,
                    Some(format!("{}: {e}", e.code())),
                ),
            }
        }
        Action::Conflict => {
            let msg = format!(
                "tag-conflict: {} is immutable and holds {}",
                item.destination_display(),
                item.existing
                    .as_ref()
                    .map_or("another digest".to_string(), |d| d.to_string())
            );
            done(item, Outcome::Conflict, None, Some(msg))
        }
        Action::Delete => match replicator
            .delete(
                &item.target,
                item.tag.as_deref(),
                item.existing.as_ref(),
                &deleting,
            )
            .await
        {
            Ok(()) => done(item, Outcome::Deleted, None, None),
            Err(e @ Error::UntagUnsupported { .. }) => done(
                item,
                Outcome::UntagUnsupported,
                None,
                Some(format!("{}: {e}", e.code())),
            ),
            Err(e) => done(
                item,
                Outcome::Failed,
                None,
                Some(format!("{}: {e}", e.code())),
            ),
        },
        Action::Copy => {
            let src = item.source_ref(source);
            let r = replicator
                .replicate(&src, &item.target, Some(options))
                .await;
            copied(item, r)
        }
    }
}

/// One drift finding.
#[derive(Clone, Debug, Serialize)]
pub struct Drift {
    /// `missing`, `different`, `extra`, or (`archive: "follow"`) `archive` / `restore`
    /// for a copy whose storage class differs from the source's. Archived source images
    /// are no drift.
    pub kind: &'static str,
    /// Destination `registry/repository:tag`.
    pub destination: String,
    /// Source digest, if any.
    pub source_digest: Option<crate::digest::Digest>,
    /// Destination digest, if any.
    pub destination_digest: Option<crate::digest::Digest>,
}

/// Drift between source and destinations: missing, different, or extra at the
/// destination.
pub fn drift(plan: &Plan) -> Vec<Drift> {
    drift_iter(plan).collect()
}

/// [`drift`], one item at a time (a report of 100,000 images need not hold a second copy
/// of the plan).
pub fn drift_iter(plan: &Plan) -> impl Iterator<Item = Drift> + '_ {
    plan.items.iter().filter_map(|i| {
        let kind = match i.action {
            // Held and blocked copies wait for (or failed) their gates: not drift.
            Action::Skip | Action::Archived | Action::Held | Action::Blocked => return None,
            Action::Archive => "archive",
            Action::Restore => "restore",
            Action::Copy | Action::Conflict if i.existing.is_none() => "missing",
            Action::Copy | Action::Conflict => "different",
            Action::Delete | Action::Extra => "extra",
        };
        Some(Drift {
            kind,
            destination: i.destination_display(),
            source_digest: i.digest.clone(),
            destination_digest: i.existing.clone(),
        })
    })
}
