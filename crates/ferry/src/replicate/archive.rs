//! Following ECR's archive storage class at a destination: archive or restore the copy of
//! an image as its source is archived or restored (a rule's `archive: "follow"`, see
//! `docs/ecr-notes.md`).

use super::{Replicator, role_of};
use crate::digest::Digest;
use crate::ecr::ImageStatus;
use crate::error::Error;
use crate::reference::EcrRegistry;

impl Replicator {
    /// Make the copy of `digest` at `target` follow the source's storage class: archive it
    /// (`archive`) or restore it. Only ECR destinations have an archive
    /// ([`Error::Unsupported`] otherwise). Returns the copy's status after the call.
    pub async fn follow_storage_class(
        &self,
        target: &crate::config::Target,
        digest: &Digest,
        archive: bool,
    ) -> Result<ImageStatus, Error> {
        let (Some(reg), Some(ecr)) = (ecr_of(&target.destination.registry), self.ecr()) else {
            return Err(no_archive(&target.destination.registry));
        };
        let role = role_of(&target.destination);
        ecr.update_storage_class(&reg, role.as_ref(), &target.repository, digest, archive)
            .await
    }

    /// An archive (`archive`) or restore of the image `digest` of `repository` at the ECR
    /// registry `source`, carried to `target`, guarded by what the registries hold when it
    /// runs: nothing happens (`false`) when the source image's status has moved on since
    /// (a late archive of an image restored since, or the reverse), when the copy is
    /// missing, or when it already is in the wanted class. An archive also waits while
    /// one of `others` (the other source repositories whose image lands in the same
    /// destination repository, [`crate::config::ReplicationConfig::fan_in_sources`])
    /// still holds the image active: the copy is theirs too.
    pub async fn follow_source_storage_class(
        &self,
        source: &crate::config::Registry,
        repository: &str,
        digest: &Digest,
        target: &crate::config::Target,
        archive: bool,
        others: &[(crate::config::Registry, String)],
    ) -> Result<bool, Error> {
        let Some(ecr) = self.ecr() else {
            return Err(no_archive(source));
        };
        let Some(src) = ecr_of(source) else {
            return Err(no_archive(source));
        };
        let Some(dst) = ecr_of(&target.destination.registry) else {
            return Err(no_archive(&target.destination.registry));
        };
        let now = ecr.image_status(&src, None, repository, digest).await?;
        // Archived at the source: archive the copy; active or being restored: restore it.
        if now.is_none_or(|s| (s == ImageStatus::Archived) != archive) {
            tracing::info!(%digest, repository, source = ?now, archive, "the source's storage class moved on (or the image is gone): nothing to follow");
            return Ok(false);
        }
        if archive {
            for (registry, other) in others {
                let Some(reg) = ecr_of(registry) else {
                    continue;
                };
                let status = ecr.image_status(&reg, None, other, digest).await?;
                if status.is_some_and(|s| s != ImageStatus::Archived) {
                    tracing::info!(%digest, repository, held_by = %other, "archive not followed: another source of this destination still holds the image active");
                    return Ok(false);
                }
            }
        }
        let role = role_of(&target.destination);
        let held = ecr
            .image_status(&dst, role.as_ref(), &target.repository, digest)
            .await?;
        let already = match held {
            None => true,
            Some(ImageStatus::Archived) => archive,
            Some(ImageStatus::Active | ImageStatus::Activating) => !archive,
        };
        if already {
            return Ok(false);
        }
        self.follow_storage_class(target, digest, archive).await?;
        Ok(true)
    }
}

fn ecr_of(r: &crate::config::Registry) -> Option<EcrRegistry> {
    match r {
        crate::config::Registry::Ecr {
            registry_id,
            region,
        } => Some(EcrRegistry::new(registry_id, region)),
        crate::config::Registry::Oci { .. } => None,
    }
}

fn no_archive(r: &crate::config::Registry) -> Error {
    Error::Unsupported(format!(
        "{} has no archive storage class (not an ECR registry reached through the ECR API)",
        r.host()
    ))
}
