//! The byte budget for manifests held at once across every graph walk sharing a
//! [`super::Copier`]: a manifest's bytes are reserved before its GET (by the size its
//! descriptor announces, or 4 MiB when fetched by tag and then cut down to its real size)
//! and released when the walk is done with it.
//!
//! A walk holds a parent while its children are fetched, so one pool could deadlock
//! (every byte held by parents waiting for children). The budget is split into one pool
//! per nesting depth instead: a manifest at depth `d` only ever waits for the pool of
//! depth `d + 1`, the deepest pool waits for nothing, so every walk makes progress.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Copier, Job, MAX_DEPTH};
use crate::error::Error;
use crate::manifest::{Descriptor, MAX_MANIFEST_BYTES};
use crate::registry::{RawManifest, Repo};

/// One pool per depth, `0..=MAX_DEPTH`.
pub(crate) struct ManifestBudget {
    levels: Vec<Arc<Semaphore>>,
    per_level: u64,
}

/// A manifest and its reservation in the budget, released on drop.
pub(crate) struct Held {
    /// The manifest.
    pub raw: RawManifest,
    _permit: OwnedSemaphorePermit,
}

impl ManifestBudget {
    /// `total` bytes shared by the depths, each depth holding at least one manifest of
    /// the largest size allowed.
    pub(crate) fn new(total: u64) -> ManifestBudget {
        let per_level = (total / (MAX_DEPTH as u64 + 1))
            .max(MAX_MANIFEST_BYTES)
            .min(u64::from(u32::MAX));
        let permits = usize::try_from(per_level).unwrap_or(usize::MAX >> 4);
        ManifestBudget {
            levels: (0..=MAX_DEPTH)
                .map(|_| Arc::new(Semaphore::new(permits)))
                .collect(),
            per_level,
        }
    }

    /// Wait until `bytes` (at least 1, at most one depth's share) are free at `depth`.
    async fn reserve(&self, depth: usize, bytes: u64) -> Result<OwnedSemaphorePermit, Error> {
        let pool = self.levels[depth.min(MAX_DEPTH)].clone();
        let n = u32::try_from(bytes.clamp(1, self.per_level)).unwrap_or(u32::MAX);
        pool.acquire_many_owned(n)
            .await
            .map_err(|_| Error::Unsupported("manifest budget closed".into()))
    }
}

impl Copier {
    /// GET the manifest a descriptor names, at `depth`, with its announced size reserved
    /// first (a body larger than announced is refused by the client).
    pub(crate) async fn fetch_child(
        &self,
        job: &Job,
        d: &Descriptor,
        depth: usize,
    ) -> Result<Held, Error> {
        let permit = self.budget.reserve(depth, d.size).await?;
        let raw = job
            .client
            .get_manifest_sized(&job.src, &d.digest, d.size)
            .await?;
        Ok(Held {
            raw,
            _permit: permit,
        })
    }

    /// GET a manifest by tag or digest without a descriptor, at `depth`: 4 MiB reserved
    /// for the GET, then only its real size kept. `None` when it does not exist.
    pub(crate) async fn fetch_unsized(
        &self,
        job: &Job,
        repo: &Repo,
        reference: &str,
        depth: usize,
    ) -> Result<Option<Held>, Error> {
        let mut permit = self.budget.reserve(depth, MAX_MANIFEST_BYTES).await?;
        let Some(raw) = job.client.get_manifest_opt(repo, reference).await? else {
            return Ok(None);
        };
        let keep = raw.bytes.len().max(1);
        if permit.num_permits() > keep {
            drop(permit.split(permit.num_permits() - keep));
        }
        Ok(Some(Held {
            raw,
            _permit: permit,
        }))
    }
}
