//! The engine behind replicate's jobs: [`Replicator`] carries out each job kind, with the
//! checks that belong to the job and not to the copy (a delete only when no source of the
//! destination repository still holds the image).

use std::time::Instant;

use async_trait::async_trait;
use ferry::config::Target;
use ferry::copy::SharedReads;
use ferry::replicate::{Replicated, Replicator};

use super::{Engine, archive};
use crate::job::Job;

fn job_error(e: crate::error::PipelineError) -> ferry::Error {
    ferry::Error::InvalidReference {
        input: String::new(),
        reason: e.to_string(),
    }
}

/// A job's copy options: the replicator's, with the invocation's deadline and its shared
/// source reads.
fn job_options(
    replicator: &Replicator,
    deadline: Option<Instant>,
    shared: &SharedReads,
) -> ferry::copy::CopyOptions {
    ferry::copy::CopyOptions {
        deadline,
        shared_reads: Some(shared.clone()),
        // A job is made for an image the destination is missing (a push, or drift
        // reconcile found): its manifest is read while the destination is asked.
        expect_new: true,
        ..replicator.copier().options().clone()
    }
}

#[async_trait]
impl Engine for Replicator {
    async fn copy(
        &self,
        job: &Job,
        target: &Target,
        deadline: Option<Instant>,
        shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error> {
        let source = job.source_reference().map_err(job_error)?;
        let options = job_options(self, deadline, shared);
        self.replicate(&source, target, Some(options)).await
    }

    async fn copy_many(
        &self,
        jobs: &[Job],
        targets: &[Target],
        deadline: Option<Instant>,
        shared: &SharedReads,
    ) -> Vec<Result<Replicated, ferry::Error>> {
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        let source = match first.source_reference() {
            Ok(s) => s,
            Err(e) => {
                let why = e.to_string();
                let mut out = Vec::with_capacity(jobs.len());
                for _ in jobs {
                    out.push(Err(job_error(crate::error::PipelineError::Job(
                        why.clone(),
                    ))));
                }
                return out;
            }
        };
        let options = job_options(self, deadline, shared);
        let targets: Vec<&Target> = targets.iter().collect();
        let width = targets.len();
        let (results, fanned) = self
            .replicate_many(&source, &targets, Some(options), width)
            .await;
        tracing::info!(source = %source, destinations = width, shared_blobs = fanned.shared_blobs, source_reads = fanned.source_reads, uploads = fanned.uploads, detached = fanned.detached, "one read for many destinations");
        results
    }

    async fn referrer(
        &self,
        job: &Job,
        target: &Target,
        deadline: Option<Instant>,
        shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error> {
        let source = job.source_reference().map_err(job_error)?;
        let options = job_options(self, deadline, shared);
        self.replicate_referrer(&source, target, Some(options))
            .await
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
        // Fan-in: another source repository the rules send to the same destination
        // repository (in this registry, or in another region the config lists) still
        // holds the image (or the tag): the copy is its too, and stays.
        let reference = match (&source.tag, &source.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => return Ok(false),
        };
        let others = self.config().fan_in_sources(
            &ferry::config::Registry::from_host(&source.registry),
            &target.destination.registry,
            &target.repository,
            source.tag.as_deref(),
            &source.repository,
            &[],
        );
        for (registry, other) in others {
            let repo = ferry::registry::Repo::new(registry.host(), &other);
            if self
                .copier()
                .client()
                .head_manifest(&repo, &reference)
                .await?
                .is_some()
            {
                tracing::info!(destination = %job.destination(), held_by = %repo, "delete not propagated: another source of this destination still holds it");
                return Ok(false);
            }
        }
        Replicator::delete(
            self,
            target,
            source.tag.as_deref(),
            source.digest.as_ref(),
            &[],
        )
        .await?;
        Ok(true)
    }

    async fn storage_class(&self, job: &Job, target: &Target) -> Result<bool, ferry::Error> {
        archive::follow(self, job, target).await
    }

    fn gatekeeper(&self) -> Option<&dyn crate::gate::Gatekeeper> {
        Some(self)
    }
}
