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
        Ok(self
            .describe_image(registry, role, repository, digest)
            .await?
            .map(|d| ImageStatus::from_sdk(d.image_status())))
    }
}
