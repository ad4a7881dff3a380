//! What a copy did, as numbers a person or a script can check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::registry::Stats;

/// Whether anything had to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyStatus {
    /// Content or tags were written.
    Copied,
    /// The destination already held the image under the tag: nothing was written.
    Skipped,
}

/// Manifest counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCounts {
    /// Manifests pushed (by digest; tags are not counted again).
    pub copied: u64,
    /// Manifests the destination already had.
    pub skipped: u64,
}

/// Blob counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCounts {
    /// Blobs streamed from source to destination.
    pub copied: u64,
    /// Blobs the destination already had.
    pub skipped: u64,
    /// Blobs mounted from another repository of the destination registry.
    pub mounted: u64,
    /// Foreign / non-distributable layers left where they are.
    pub foreign: u64,
}

/// Request counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Every HTTP request made to any registry, retries and redirects included.
    pub total: u64,
    /// By method.
    pub by_method: BTreeMap<String, u64>,
    /// Retries made.
    pub retries: u64,
    /// 429 answers seen.
    pub throttled: u64,
}

impl RequestCounts {
    /// Read the counters.
    pub fn from_stats(s: &Stats) -> RequestCounts {
        RequestCounts {
            total: s.total(),
            by_method: s.by_method(),
            retries: s.retries(),
            throttled: s.throttled(),
        }
    }
}

/// The report of one image copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyReport {
    /// Source reference as given.
    pub source: String,
    /// Destination reference.
    pub destination: String,
    /// The image's digest at the source.
    pub digest: Digest,
    /// The digest written at the destination when it differs from [`CopyReport::digest`]:
    /// the index of the selected platforms only (`rules[].platforms`), which the tags
    /// point at. `None`: the source's manifest, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered_digest: Option<Digest>,
    /// With [`CopyReport::filtered_digest`]: the platforms the written index keeps
    /// (`os/architecture[/variant]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Tags set at the destination.
    pub tags: Vec<String>,
    /// Copied or skipped.
    pub status: CopyStatus,
    /// Manifests.
    pub manifests: ManifestCounts,
    /// Blobs.
    pub blobs: BlobCounts,
    /// Blob bytes moved.
    pub bytes: u64,
    /// Referrer manifests (signatures, SBOMs, attestations) found for the image.
    pub referrers: u64,
    /// Referrers the destination refused to store (the image itself was copied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers_rejected: Vec<RejectedReferrer>,
    /// HTTP requests.
    pub requests: RequestCounts,
    /// Wall time.
    pub duration_ms: u64,
}

/// A referrer manifest the destination refused (its PUT answered 400, 405 or 415): ECR,
/// for one, refuses a referrer whose subject is an image index (aws/containers-roadmap#2783).
/// The image copy completes without it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedReferrer {
    /// The referrer's digest.
    pub digest: Digest,
    /// Always `REFERRER_REJECTED`.
    pub code: String,
    /// The destination's HTTP status.
    pub status: u16,
    /// The destination's error message.
    pub message: String,
}

/// Counters a copy updates from many tasks.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub manifests_copied: AtomicU64,
    pub manifests_skipped: AtomicU64,
    pub blobs_copied: AtomicU64,
    pub blobs_skipped: AtomicU64,
    pub blobs_mounted: AtomicU64,
    pub blobs_foreign: AtomicU64,
    pub bytes: AtomicU64,
    pub referrers: AtomicU64,
    pub referrers_rejected: std::sync::Mutex<Vec<RejectedReferrer>>,
}

impl Tally {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn manifests(&self) -> ManifestCounts {
        ManifestCounts {
            copied: self.manifests_copied.load(Ordering::Relaxed),
            skipped: self.manifests_skipped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn blobs(&self) -> BlobCounts {
        BlobCounts {
            copied: self.blobs_copied.load(Ordering::Relaxed),
            skipped: self.blobs_skipped.load(Ordering::Relaxed),
            mounted: self.blobs_mounted.load(Ordering::Relaxed),
            foreign: self.blobs_foreign.load(Ordering::Relaxed),
        }
    }
}
