//! The reconcile handler: runs the sync plan over the whole config and enqueues a job for
//! every image missing or different at a destination (and every delete to propagate), as
//! the same job messages dispatch sends. It heals events EventBridge dropped and backfills
//! a newly added destination.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use ferry::config::{Registry, ReplicationConfig, Target};
use ferry::replicate::Replicator;
use ferry::sync::{Action, plan_for_drift};

use crate::error::PipelineError;
use crate::job::{Job, JobAction, JobSource, Origin};
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
            let (action, conflict) = match item.action {
                Action::Copy => (JobAction::Copy, false),
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
    /// Jobs sent.
    pub enqueued: usize,
    /// Whether `FERRY_MAX_JOBS_PER_RUN` held jobs back for the next run.
    pub capped: bool,
    /// Drift by destination registry/repository.
    pub by_destination: BTreeMap<String, usize>,
}

/// Find drift, emit the `Drift` metric per destination, and enqueue at most `max_jobs`
/// jobs (the rest waits for the next run).
pub async fn reconcile(
    run_id: &str,
    source: &dyn DriftSource,
    queue: &dyn JobQueue,
    metrics: &Metrics,
    max_jobs: usize,
) -> Result<Reconciled, PipelineError> {
    let items = source.drift().await?;
    let now = Utc::now();
    let event_id = format!("reconcile:{run_id}");
    let mut out = Reconciled {
        run_id: run_id.to_string(),
        ..Default::default()
    };
    let mut jobs = Vec::new();
    for item in &items {
        let key = format!(
            "{}/{}",
            item.target.destination.registry_host(),
            item.target.repository
        );
        if item.conflict {
            out.conflicts += 1;
            tracing::warn!(destination = %key, tag = ?item.source.tag, "immutable tag holds another digest: not enqueued");
            continue;
        }
        out.drift += 1;
        *out.by_destination.entry(key).or_default() += 1;
        if jobs.len() < max_jobs {
            jobs.push(Job::new(
                item.action,
                item.source.clone(),
                &item.target,
                &event_id,
                now,
                Origin::Reconcile,
            ));
        }
    }
    out.capped = out.drift > jobs.len();
    queue.send(&jobs).await?;
    out.enqueued = jobs.len();
    // Per destination in the log (and the run's answer), never as a metric dimension:
    // the number of metric series stays the same however many destinations there are.
    for (destination, n) in &out.by_destination {
        tracing::info!(%destination, drift = *n, "drift at this destination");
    }
    metrics.emit(
        Record::new()
            .metric("Drift", Unit::Count, out.drift as f64)
            .metric("DriftConflicts", Unit::Count, out.conflicts as f64)
            .property("runId", run_id),
    );
    tracing::info!(
        run_id,
        drift = out.drift,
        enqueued = out.enqueued,
        conflicts = out.conflicts,
        capped = out.capped,
        "reconciled"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::MemoryQueue;
    use ferry::Digest;
    use ferry::config::ReplicationConfig;

    struct Fixed(Vec<DriftItem>);

    #[async_trait(?Send)]
    impl DriftSource for Fixed {
        async fn drift(&self) -> Result<Vec<DriftItem>, PipelineError> {
            Ok(self.0.clone())
        }
    }

    fn item(tag: &str, conflict: bool) -> DriftItem {
        let config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#,
        )
        .unwrap();
        DriftItem {
            action: JobAction::Copy,
            source: JobSource {
                registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
                repository: "app".into(),
                tag: Some(tag.into()),
                digest: Some(Digest::of(tag.as_bytes())),
            },
            target: config.destinations_for("app", Some(tag)).unwrap().remove(0),
            conflict,
        }
    }

    #[tokio::test]
    async fn caps_jobs_and_counts_drift() {
        let q = MemoryQueue::default();
        let m = Metrics::memory();
        let src = Fixed(vec![
            item("a", false),
            item("b", false),
            item("c", true),
            item("d", false),
        ]);
        let r = reconcile("run-1", &src, &q, &m, 2).await.unwrap();
        assert_eq!(
            (r.drift, r.conflicts, r.enqueued, r.capped),
            (3, 1, 2, true)
        );
        let jobs = q.jobs();
        assert_eq!(
            jobs.iter()
                .map(|j| j.source.tag.clone().unwrap())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(
            jobs.iter()
                .all(|j| j.origin == Origin::Reconcile && j.event_id == "reconcile:run-1")
        );
        assert_ne!(jobs[0].deduplication_id(), jobs[1].deduplication_id());
        assert_eq!(
            r.by_destination
                .get("222222222222.dkr.ecr.us-west-2.amazonaws.com/app"),
            Some(&3)
        );
        assert_eq!(m.sum("Drift", &[]), 3.0, "the run's total, once");
        assert!(
            m.series().iter().all(|(_, dims)| dims.is_empty()),
            "no destination dimension"
        );
    }

    #[test]
    fn an_unpinned_config_reconciles_the_hubs_own_registry() {
        let unpinned = std::sync::Arc::new(
            ReplicationConfig::from_json(
                r#"{"registryId": "111111111111", "replicationConfiguration": {"rules": [
                    {"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}}"#,
            )
            .unwrap(),
        );
        assert!(
            unpinned.source_registry().is_none(),
            "the region is left to each event"
        );
        let bound = bind_to_hub(&unpinned, "111111111111", "us-east-1").unwrap();
        assert_eq!(
            bound.source_registry().map(|r| r.host()).as_deref(),
            Some("111111111111.dkr.ecr.us-east-1.amazonaws.com")
        );
        let hostile = bind_to_hub(&unpinned, "evil.example/x", "us-east-1").unwrap_err();
        assert!(hostile.to_string().contains("not 12 digits"), "{hostile}");
        let error = bind_to_hub(&unpinned, "333333333333", "us-east-1").unwrap_err();
        assert!(error.to_string().contains("another registry"), "{error}");
        let pinned = std::sync::Arc::new(
            ReplicationConfig::from_json(
                r#"{"source": {"registryId": "444444444444", "region": "eu-west-1"},
                    "rules": [{"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
            )
            .unwrap(),
        );
        assert!(std::sync::Arc::ptr_eq(
            &bind_to_hub(&pinned, "111111111111", "us-east-1").unwrap(),
            &pinned
        ));
    }
}
