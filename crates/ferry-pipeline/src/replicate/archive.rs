//! Archive and restore jobs (`archive: "follow"`): the destination copy follows the source
//! image's storage class. The job only names the image; the engine decides from the
//! registries as they are when it runs
//! ([`Replicator::follow_source_storage_class`]), so a late job never undoes a newer change.

use ferry::config::{Registry, Target};
use ferry::replicate::Replicator;

use crate::job::{Job, JobAction};

/// Carry out an archive or restore job; `false` when nothing was to change.
pub(super) async fn follow(
    replicator: &Replicator,
    job: &Job,
    target: &Target,
) -> Result<bool, ferry::Error> {
    let Some(digest) = &job.source.digest else {
        return Ok(false);
    };
    let source = Registry::from_host(&job.source.registry);
    // Fan-in: the other source repositories (in this registry, or another region the
    // config lists) whose image lands in the same destination repository.
    let others = replicator.config().fan_in_sources(
        &source,
        &target.destination.registry,
        &target.repository,
        None,
        &job.source.repository,
        &[],
    );
    replicator
        .follow_source_storage_class(
            &source,
            &job.source.repository,
            digest,
            target,
            job.action == JobAction::Archive,
            &others,
        )
        .await
}
