//! One image to many destinations with one source read per blob: before the copies run,
//! every blob of the image that two or more destination registries lack is read from the
//! source once and streamed to all of them at once (the [`tee`](super::tee)). The copies
//! that follow find those blobs in place and do the rest (manifests children first, tags
//! last) each on its own, so a destination's result stays its own.
//!
//! Only the first repository of each destination registry takes part: the other
//! repositories of that registry mount the blob from it during their copy, as they would
//! without a fan-out. A destination whose upload fails or falls behind is detached and its
//! copy places that blob again on its own.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::StreamExt;

use super::tee::{Source, Tee};
use super::{Copier, Job, MAX_DEPTH};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Descriptor, Parsed};
use crate::registry::Repo;
use crate::report::Tally;

/// One destination of a fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanOutParticipant {
    /// The destination repository.
    pub dst: Repo,
    /// The platforms its copy keeps (`os/architecture[/variant]`); empty: every platform.
    pub platforms: Vec<String>,
}

/// What a fan-out did before the copies.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FanOutReport {
    /// Blobs of the image read once for two or more destination registries.
    pub shared_blobs: u64,
    /// Source reads of those blobs (one per shared blob, unless nobody needed it).
    pub source_reads: u64,
    /// Uploads served from those reads.
    pub uploads: u64,
    /// Destinations detached from a read (behind, or their upload failed): each placed
    /// that blob on its own afterwards.
    pub detached: u64,
}

/// A blob of the image, with the platforms of the image manifests that hold it (`None`:
/// the root itself is an image manifest).
struct ImageBlob {
    blob: Descriptor,
    platforms: Vec<Option<serde_json::Value>>,
}

impl Copier {
    /// Put the blobs of the source image `digest` (in `src`) in place at the participants
    /// that lack them, each blob read from the source once for all of them. Reads the
    /// image's manifests (through the shared reads, when the options have them, so the
    /// copies that follow read none again). Failures of one destination are left to its
    /// copy; an error is returned only when the image itself cannot be read.
    pub async fn fan_out_blobs(
        &self,
        src: &Repo,
        digest: &Digest,
        participants: &[FanOutParticipant],
    ) -> Result<FanOutReport, Error> {
        // One participant per destination registry; the others mount from it later.
        let mut seen = HashSet::new();
        let participants: Vec<&FanOutParticipant> = participants
            .iter()
            .filter(|p| seen.insert(p.dst.registry.clone()))
            .collect();
        if participants.len() < 2 {
            return Ok(FanOutReport::default());
        }
        let blobs = self.image_blobs(src, digest).await?;
        let width = (self.options.blob_concurrency.max(1) * 8 / participants.len())
            .clamp(1, self.options.blob_concurrency.max(1));
        let report = Mutex::new(FanOutReport::default());
        futures::stream::iter(blobs)
            .map(|b| {
                let takers: Vec<&FanOutParticipant> = participants
                    .iter()
                    .copied()
                    .filter(|p| self.takes_part(p, &b))
                    .collect();
                let report = &report;
                async move {
                    if takers.len() < 2 {
                        return;
                    }
                    let tee = self.tee_for(src, &b.blob, takers.len());
                    let tickets = tee.tickets(takers.len());
                    futures::future::join_all(takers.into_iter().zip(tickets).map(|(p, ticket)| {
                        let job = Job {
                            client: self.client.clone(),
                            src: src.clone(),
                            dst: p.dst.clone(),
                            tally: Tally::default(),
                            seen: Mutex::default(),
                            filtered: std::sync::OnceLock::new(),
                            tee: Some(ticket),
                        };
                        let blob = &b.blob;
                        async move {
                            if let Err(e) = self.place_blob(&job, blob).await {
                                tracing::debug!(destination = %job.dst, digest = %blob.digest, error = %e, "fan-out: left to the copy");
                            }
                        }
                    }))
                    .await;
                    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                    r.shared_blobs += 1;
                    r.source_reads += tee.reads();
                    r.detached += tee.detached();
                    r.uploads += tee.served();
                }
            })
            .buffer_unordered(width)
            .collect::<Vec<()>>()
            .await;
        Ok(report.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    fn tee_for(&self, src: &Repo, blob: &Descriptor, takers: usize) -> std::sync::Arc<Tee> {
        Tee::new(
            takers,
            Source {
                client: self.client.clone(),
                repo: src.clone(),
                blob: blob.clone(),
                max_resumes: self.options.max_resumes,
                slots: self.slots.clone(),
            },
        )
    }

    /// Whether `p` takes part in the read of `b`: its copy keeps a platform that holds the
    /// blob, and no other copy is placing the blob at its registry already.
    fn takes_part(&self, p: &FanOutParticipant, b: &ImageBlob) -> bool {
        let wanted = p.platforms.is_empty()
            || b.platforms.iter().any(|platform| match platform {
                None => true,
                Some(v) => super::platforms::platform_matches(&p.platforms, v),
            });
        if !wanted {
            return false;
        }
        let key = (p.dst.registry.clone(), b.blob.digest.clone());
        !self
            .index
            .registry_cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key)
    }

    /// The config and layers of the image (of each image manifest of an index), largest
    /// first, foreign layers left out.
    async fn image_blobs(&self, src: &Repo, digest: &Digest) -> Result<Vec<ImageBlob>, Error> {
        let job = Job {
            client: self.client.clone(),
            src: src.clone(),
            dst: src.clone(),
            tally: Tally::default(),
            seen: Mutex::default(),
            filtered: std::sync::OnceLock::new(),
            tee: None,
        };
        let root = self.fetch_root(&job, digest).await?;
        let invalid = |reference: &Digest, reason: String| Error::InvalidManifest {
            registry: src.registry.clone(),
            repository: src.repository.clone(),
            reference: reference.to_string(),
            reason,
        };
        let mut images: Vec<(Vec<Descriptor>, Option<serde_json::Value>)> = Vec::new();
        match manifest::parse(&root.raw.bytes).map_err(|r| invalid(digest, r))? {
            Parsed::Image { config, layers, .. } => {
                images.push((config.into_iter().chain(layers).collect(), None));
            }
            Parsed::Index { manifests, .. } => {
                let children = futures::stream::iter(manifests)
                    .map(|child| {
                        let job = &job;
                        async move {
                            let held = self.fetch_child(job, &child, 1.min(MAX_DEPTH)).await?;
                            let parsed = manifest::parse(&held.raw.bytes)
                                .map_err(|r| invalid(&child.digest, r))?;
                            Ok::<_, Error>(match parsed {
                                Parsed::Image { config, layers, .. } => Some((
                                    config.into_iter().chain(layers).collect::<Vec<_>>(),
                                    child.platform.clone(),
                                )),
                                // Nested indexes are left to the copies.
                                Parsed::Index { .. } => None,
                            })
                        }
                    })
                    .buffer_unordered(self.options.manifest_concurrency.max(1))
                    .collect::<Vec<_>>()
                    .await;
                for child in children {
                    images.extend(child?);
                }
            }
        }
        let mut by_digest: HashMap<Digest, ImageBlob> = HashMap::new();
        for (blobs, platform) in images {
            for blob in blobs.into_iter().filter(|d| !d.is_foreign()) {
                by_digest
                    .entry(blob.digest.clone())
                    .or_insert_with(|| ImageBlob {
                        blob,
                        platforms: Vec::new(),
                    })
                    .platforms
                    .push(platform.clone());
            }
        }
        let mut out: Vec<ImageBlob> = by_digest.into_values().collect();
        out.sort_by(|a, b| {
            b.blob
                .size
                .cmp(&a.blob.size)
                .then_with(|| a.blob.digest.as_str().cmp(b.blob.digest.as_str()))
        });
        Ok(out)
    }

    /// What the fan-out placed at `dst`, taken once by the first copy there.
    pub(super) fn take_prefetched(
        &self,
        dst: &Repo,
        digest: &Digest,
    ) -> Option<super::blobs::Placed> {
        self.index
            .prefetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(dst.clone(), digest.clone()))
    }
}
