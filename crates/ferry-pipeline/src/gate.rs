//! Promotion gates in the pipeline.
//!
//! - Dispatch judges every copy job whose target is gated before it sends it: a job that
//!   passes is sent, a held or blocked one is not; it becomes a `HELD` or `BLOCKED`
//!   result event instead (with the gate, its code and reason, and the scan's counts) and
//!   the `GateResults` metric (dimension `status`).
//! - A scan's completion event (ECR Image Scan, Inspector2 Scan) judges the image's gated
//!   targets again and sends the jobs that now pass: the release.
//! - Replicate judges again before it copies (the job message is untrusted; the config and
//!   the source's scan decide), and reconcile's plan judges every gated copy it finds
//!   missing, so a release whose event was lost is only delayed.
//! - A signature pushed after its image (an ECR Referrer Action: ECR managed signing signs
//!   after the push) judges the subject's gated copies again, as a scan's completion does.
//! - A verdict that cannot be reached (the source unreachable, the image gone) holds the
//!   job (`gate-error`): nothing is copied, and reconcile judges it again later.

use async_trait::async_trait;

use ferry::config::{Registry, Target};
use ferry::gate::{GateImage, GateName, GateReason, Verdict};
use ferry::replicate::Replicator;

use crate::job::{Job, JobAction};
use crate::metrics::{Metrics, Record, Unit};
use crate::result::{ReplicationResult, ResultPublisher, Status, log_result, result_for};

/// Judges a job's gates: the engine's [`Replicator`], or a stand-in in tests.
#[async_trait]
pub trait Gatekeeper: Send + Sync {
    /// The verdict of `target`'s gates on the job's source image.
    async fn verdict(&self, job: &Job, target: &Target) -> Result<Verdict, ferry::Error>;

    /// The image a referrer pushed to `repository` of `registry` is about: its subject's
    /// digest and tags. `None` when `referrer` has no subject, is gone, or the tags cannot
    /// be known (a source that is not ECR).
    async fn subject_of(
        &self,
        registry: &Registry,
        repository: &str,
        referrer: &ferry::Digest,
    ) -> Result<Option<(ferry::Digest, Vec<String>)>, ferry::Error> {
        let _ = (registry, repository, referrer);
        Ok(None)
    }
}

#[async_trait]
impl Gatekeeper for Replicator {
    async fn verdict(&self, job: &Job, target: &Target) -> Result<Verdict, ferry::Error> {
        let registry = Registry::from_host(&job.source.registry);
        let digest = match (&job.source.digest, &job.source.tag) {
            (Some(digest), _) => digest.clone(),
            (None, Some(tag)) => {
                let repo = ferry::registry::Repo::new(registry.host(), &job.source.repository);
                match self.copier().client().head_manifest(&repo, tag).await? {
                    Some(head) => head.digest,
                    None => {
                        return Ok(Verdict::Held(GateReason::new(
                            GateName::Scan,
                            "gate-error",
                            format!("{repo}:{tag} is not at the source"),
                        )));
                    }
                }
            }
            (None, None) => {
                return Ok(Verdict::Blocked(GateReason::new(
                    GateName::Scan,
                    "gate-error",
                    "the job names no image",
                )));
            }
        };
        let image = GateImage {
            registry: &registry,
            repository: &job.source.repository,
            digest: &digest,
        };
        self.gate_check()
            .verdict(target.gates.as_ref(), image, &target.platforms)
            .await
    }

    async fn subject_of(
        &self,
        registry: &Registry,
        repository: &str,
        referrer: &ferry::Digest,
    ) -> Result<Option<(ferry::Digest, Vec<String>)>, ferry::Error> {
        let (
            Registry::Ecr {
                registry_id,
                region,
            },
            Some(ecr),
        ) = (registry, self.ecr())
        else {
            return Ok(None);
        };
        let repo = ferry::registry::Repo::new(registry.host(), repository);
        let Some(manifest) = self
            .copier()
            .client()
            .get_manifest_opt(&repo, referrer.as_str())
            .await?
        else {
            return Ok(None);
        };
        let Some(subject) = ferry::manifest::parse(&manifest.bytes)
            .ok()
            .and_then(|p| p.subject().map(|s| s.digest.clone()))
        else {
            return Ok(None);
        };
        let ecr_registry = ferry::reference::EcrRegistry::new(registry_id, region);
        let tags = ecr
            .image_tags(&ecr_registry, None, repository, &subject)
            .await?;
        Ok(Some((subject, tags)))
    }
}

/// Whether `job` must pass `target`'s gates: a copy to a gated target. (Referrers follow
/// their subject, which is only at a destination once it passed; deletes and storage-class
/// changes never copy.)
pub fn gated(job: &Job, target: &Target) -> bool {
    job.action == JobAction::Copy && target.gates.is_some()
}

/// The verdict, or a hold when it cannot be reached (see the module documentation).
pub async fn judge(keeper: &dyn Gatekeeper, job: &Job, target: &Target) -> Verdict {
    match keeper.verdict(job, target).await {
        Ok(verdict) => verdict,
        Err(e) => {
            tracing::warn!(event_id = %job.event_id, destination = %job.destination(), code = e.code(), error = %e, "promotion gate could not be judged: held");
            Verdict::Held(GateReason::new(
                GateName::Scan,
                "gate-error",
                format!("{}: {e}", e.code()),
            ))
        }
    }
}

/// The HELD or BLOCKED result of `job` (`None` for a pass).
pub fn gate_result(job: &Job, verdict: &Verdict) -> Option<ReplicationResult> {
    let status = match verdict {
        Verdict::Pass => return None,
        Verdict::Held(_) => Status::Held,
        Verdict::Blocked(_) => Status::Blocked,
    };
    let mut result = result_for(job, status);
    result.gate = verdict.reason().cloned();
    Some(result.bounded())
}

/// Jobs a gate stopped: counted, logged with their result line, and published when a
/// publisher is given. A result that cannot be published is logged and counted
/// (`ResultsUnpublished`): the job is not sent either way.
pub async fn report(
    stopped: &[ReplicationResult],
    results: Option<&dyn ResultPublisher>,
    metrics: &Metrics,
) {
    for r in stopped {
        log_result(r);
        metrics.emit(
            Record::new()
                .dimension("status", r.status.as_str())
                .metric("GateResults", Unit::Count, 1.0)
                .property(
                    "destination",
                    format!("{}/{}", r.destination.registry, r.destination.repository),
                )
                .property("gate", r.gate.as_ref().map_or("", |g| g.gate.as_str()))
                .property(
                    "code",
                    r.gate.as_ref().map_or(String::new(), |g| g.code.clone()),
                )
                .property("eventId", r.event_id.clone()),
        );
    }
    if let Some(results) = results
        && !stopped.is_empty()
        && let Err(e) = results.publish(stopped).await
    {
        tracing::error!(error = %e, "gate results not published");
        metrics.emit(Record::new().metric("ResultsUnpublished", Unit::Count, stopped.len() as f64));
    }
}
