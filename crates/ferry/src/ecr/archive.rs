//! ECR's archive storage class: the `imageStatus` of listed images, the
//! `UpdateImageStorageClass` call that archives or restores an image, and how an archived
//! image's pull answer is recognised.
//!
//! An image moves to the archive through a lifecycle rule (`transition` to `archive`) or
//! `UpdateImageStorageClass`; while `ARCHIVED` (and while `ACTIVATING`, being restored) it
//! cannot be pulled. Ferry neither copies nor counts it as drift, and never copies over
//! one held by a destination. With a rule's `archive: "follow"`, the destination copy
//! follows the source's storage class (see `docs/ecr-notes.md`).

use aws_sdk_ecr::types::{ImageIdentifier, TargetStorageClass};
use serde::Serialize;

use super::{EcrControl, is_code};
use crate::aws::{AssumeRole, sdk_error};
use crate::digest::Digest;
use crate::error::Error;
use crate::reference::EcrRegistry;

/// Where an image is stored, as `DescribeImages` reports it (`imageStatus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatus {
    /// Standard storage: pullable. Also what an image without `imageStatus` is (moto, and
    /// ECR before archiving existed).
    #[default]
    Active,
    /// In the archive storage class: not pullable until restored.
    Archived,
    /// Being restored from the archive: not pullable yet.
    Activating,
}

impl ImageStatus {
    /// Whether the image is (still) in the archive: `ARCHIVED` or `ACTIVATING`.
    pub fn is_archived(self) -> bool {
        self != ImageStatus::Active
    }

    /// From the SDK's value; an unknown status is taken as not pullable (archived), so
    /// Ferry never copies over or from an image in a state it does not understand.
    pub fn from_sdk(status: Option<&aws_sdk_ecr::types::ImageStatus>) -> ImageStatus {
        match status.map(|s| s.as_str()) {
            None | Some("ACTIVE") => ImageStatus::Active,
            Some("ACTIVATING") => ImageStatus::Activating,
            Some(_) => ImageStatus::Archived,
        }
    }
}

/// An image that is not active: its status and when it was archived.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveState {
    /// `ARCHIVED` or `ACTIVATING`.
    pub status: ImageStatus,
    /// `lastArchivedAt`, RFC 3339, when ECR reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_archived_at: Option<String>,
}

impl ArchiveState {
    /// The archive state of a `DescribeImages` entry; `None` for an active image.
    pub(crate) fn of(d: &aws_sdk_ecr::types::ImageDetail) -> Option<ArchiveState> {
        let status = ImageStatus::from_sdk(d.image_status());
        status.is_archived().then(|| ArchiveState {
            status,
            last_archived_at: d
                .last_archived_at()
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        })
    }
}

impl std::fmt::Display for ArchiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            ImageStatus::Activating => "activating",
            _ => "archived",
        };
        match &self.last_archived_at {
            Some(at) => write!(f, "{status} since {at}"),
            None => f.write_str(status),
        }
    }
}

/// Whether a registry-endpoint answer to a pull says the image is archived.
///
/// ECR's wording is not documented (unverified, see `docs/ecr-notes.md`): Ferry matches
/// loosely, on any 4xx whose error code or message mentions an archive
/// (`ImageArchivedException`, `IMAGE_ARCHIVED`, "image is archived", ...).
pub fn is_archived_answer(status: u16, code: Option<&str>, message: &str) -> bool {
    (400..500).contains(&status)
        && [code.unwrap_or_default(), message]
            .iter()
            .any(|s| s.to_ascii_lowercase().contains("archiv"))
}

impl EcrControl {
    /// Move the image `digest` of `repository` to the archive (`archive`) or back to
    /// standard storage (UpdateImageStorageClass). Returns the status ECR reports after
    /// the call (a restore answers `ACTIVATING` until the image is pullable again).
    pub async fn update_storage_class(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        digest: &Digest,
        archive: bool,
    ) -> Result<ImageStatus, Error> {
        let client = self.aws().ecr(registry, role).await;
        let class = if archive {
            TargetStorageClass::Archive
        } else {
            TargetStorageClass::Standard
        };
        let out = client
            .update_image_storage_class()
            .registry_id(&registry.account)
            .repository_name(repository)
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .target_storage_class(class)
            .send()
            .await;
        match out {
            Ok(o) => Ok(ImageStatus::from_sdk(o.image_status())),
            Err(e) if is_code(&e, "ImageNotFoundException") => Err(Error::NotFound {
                registry: registry.host(),
                repository: repository.to_string(),
                what: format!("manifest {digest}"),
            }),
            Err(e) => Err(sdk_error("ecr", "UpdateImageStorageClass", e)),
        }
    }
}

impl EcrControl {
    /// The storage status of the image `digest` in `repository` (DescribeImages by
    /// digest); `None` when the image or the repository does not exist.
    pub async fn image_status(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<ImageStatus>, Error> {
        let client = self.aws().ecr(registry, role).await;
        let out = client
            .describe_images()
            .registry_id(&registry.account)
            .repository_name(repository)
            .image_ids(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .send()
            .await;
        match out {
            Ok(o) => Ok(o
                .image_details()
                .first()
                .map(|d| ImageStatus::from_sdk(d.image_status()))),
            Err(e)
                if is_code(&e, "ImageNotFoundException")
                    || is_code(&e, "RepositoryNotFoundException") =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("ecr", "DescribeImages", e)),
        }
    }
}

impl crate::replicate::Replicator {
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
        let role = crate::replicate::role_of(&target.destination);
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
        let role = crate::replicate::role_of(&target.destination);
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
