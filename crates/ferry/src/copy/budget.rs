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

impl Held {
    /// Another manifest in this one's place, under its reservation (an index rewritten
    /// from this one, no larger than it but for a few bytes of number formatting).
    pub(crate) fn replaced(self, raw: RawManifest) -> Held {
        Held {
            raw,
            _permit: self._permit,
        }
    }
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
        let raw = self
            .read_manifest(job, &job.src, d.digest.as_str(), Some(d.size))
            .await?
            .ok_or_else(|| Error::NotFound {
                registry: job.src.registry.clone(),
                repository: job.src.repository.clone(),
                what: format!("manifest {}", d.digest),
            })?;
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
        let Some(raw) = self.read_manifest(job, repo, reference, None).await? else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_depth_has_its_own_share_and_a_full_depth_blocks_only_itself() {
        let budget = ManifestBudget::new(5 * MAX_MANIFEST_BYTES);
        let full = budget
            .reserve(1, MAX_MANIFEST_BYTES)
            .await
            .expect("depth 1");
        // Depth 1 is full: one more byte there waits...
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(1, 1)).await;
        assert!(waiting.is_err(), "depth 1 has no room left");
        // ...while its children at depth 2 still get theirs: no parent/child deadlock.
        let child = budget
            .reserve(2, MAX_MANIFEST_BYTES)
            .await
            .expect("depth 2");
        assert_eq!(child.num_permits(), MAX_MANIFEST_BYTES as usize);
        drop(full);
        let again = budget.reserve(1, 1).await.expect("room again");
        assert_eq!(again.num_permits(), 1);
    }

    #[tokio::test]
    async fn a_tiny_budget_still_admits_one_largest_manifest_per_depth() {
        let budget = ManifestBudget::new(1);
        assert_eq!(budget.per_level, MAX_MANIFEST_BYTES);
        let p = budget
            .reserve(MAX_DEPTH + 3, u64::MAX)
            .await
            .expect("clamped");
        assert_eq!(p.num_permits(), MAX_MANIFEST_BYTES as usize);
        assert_eq!(budget.reserve(0, 0).await.expect("zero").num_permits(), 1);
    }
}
