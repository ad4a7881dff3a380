//! The job's own fields a result event repeats: what was done, to which source image, and
//! who asked (the job message itself is `ferry-pipeline`'s).

use ferry::Digest;
use serde::{Deserialize, Serialize};

/// What to do at the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    /// Copy the image (by digest, then move the tag under the ordering guard).
    Copy,
    /// Delete the tag (or, without a tag, the image by digest).
    Delete,
    /// Bring the referrers of an image (the digest: a referrer, or its subject) to a
    /// destination that already holds the image (an ECR Referrer Action).
    Referrer,
    /// Archive the destination copy of the image `source.digest` (the source image was
    /// archived; rules with `archive: "follow"`).
    Archive,
    /// Restore the destination copy of the image `source.digest` from the archive (the
    /// source image was restored; rules with `archive: "follow"`).
    Restore,
}

impl JobAction {
    /// `copy`, `delete`, `referrer`, `archive` or `restore`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Copy => "copy",
            JobAction::Delete => "delete",
            JobAction::Referrer => "referrer",
            JobAction::Archive => "archive",
            JobAction::Restore => "restore",
        }
    }

    /// Whether the action changes the destination copy's storage class.
    pub fn is_storage_class(self) -> bool {
        matches!(self, JobAction::Archive | JobAction::Restore)
    }
}

/// Who made the job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// dispatch, from an ECR event.
    #[default]
    Event,
    /// reconcile, from drift between source and destination.
    Reconcile,
}

/// The source image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSource {
    /// Registry host, e.g. `111111111111.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// Tag, absent for digest-only images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Manifest digest (required for `copy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}
