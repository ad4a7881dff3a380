//! The image graph copy: index → child manifests → config and layers, then referrers,
//! pushed children first, parents by digest next, tags last, so that no tag ever points
//! at an incomplete image.

mod blobs;
mod referrers;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Parsed};
use crate::reference::Reference;
use crate::registry::{RawManifest, RegistryClient, Repo, Stats};
use crate::report::{CopyReport, CopyStatus, RequestCounts, Tally};

/// How deep manifests may nest (index → manifest is 2; referrer indexes add one).
const MAX_DEPTH: usize = 4;

/// Copy tuning.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Copy referrers (signatures, SBOMs, attestations) of the image.
    pub referrers: bool,
    /// Blob transfers in flight at once, across every copy sharing the [`Copier`].
    pub blob_concurrency: usize,
    /// Child manifests of one index handled at once.
    pub manifest_concurrency: usize,
    /// Times a broken source body is resumed with `Range` within one transfer.
    pub max_resumes: usize,
    /// Start no new blob transfer after this instant (Lambda deadline); the copy then
    /// fails with [`Error::Deadline`], keeping what it already wrote.
    pub deadline: Option<Instant>,
    /// When the image is already in place, still look for referrers added at the source
    /// since it was copied (a few more source requests). Off: the warm path costs two
    /// requests.
    pub recheck_referrers: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            referrers: true,
            blob_concurrency: 8,
            manifest_concurrency: 4,
            max_resumes: 3,
            deadline: None,
            recheck_referrers: false,
        }
    }
}

/// One single-flight cell per destination repository and blob.
type Cells = HashMap<(Repo, Digest), Arc<tokio::sync::OnceCell<blobs::Placed>>>;
/// One single-flight cell per destination registry and blob: which repository brought it.
type RegistryCells = HashMap<(String, Digest), Arc<tokio::sync::OnceCell<(String, blobs::Placed)>>>;

/// Blob placement already done or under way, per destination repository; and which
/// repositories of each destination registry are known to hold a blob (mount sources).
#[derive(Default)]
struct BlobIndex {
    cells: Mutex<Cells>,
    registry_cells: Mutex<RegistryCells>,
    holders: Mutex<HashMap<(String, Digest), Vec<String>>>,
}

/// Copies images. Share one `Copier` across every copy of a run: the blob index then makes
/// a blob shared by several images cross the wire once per destination.
#[derive(Clone)]
pub struct Copier {
    client: RegistryClient,
    options: CopyOptions,
    slots: Arc<Semaphore>,
    index: Arc<BlobIndex>,
}

impl std::fmt::Debug for Copier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copier")
            .field("options", &self.options)
            .finish()
    }
}

/// One copy's context.
pub(crate) struct Job {
    pub client: RegistryClient,
    pub src: Repo,
    pub dst: Repo,
    pub tally: Tally,
    /// Blobs already counted in this copy.
    pub seen: Mutex<HashSet<Digest>>,
}

impl Copier {
    /// A copier over a client.
    pub fn new(client: RegistryClient, options: CopyOptions) -> Copier {
        let slots = Arc::new(Semaphore::new(options.blob_concurrency.max(1)));
        Copier {
            client,
            options,
            slots,
            index: Arc::default(),
        }
    }

    /// The client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The options.
    pub fn options(&self) -> &CopyOptions {
        &self.options
    }

    /// A copier sharing this one's blob index and slots, with other options (for example
    /// a per-invocation deadline or referrers off).
    pub fn with_options(&self, options: CopyOptions) -> Copier {
        Copier {
            client: self.client.clone(),
            options,
            slots: self.slots.clone(),
            index: self.index.clone(),
        }
    }

    /// Copy one image. `dst` without tag or digest keeps `src`'s tag; `src` by digest
    /// copies by digest (and applies `dst`'s tag if it has one).
    ///
    /// A re-copy of an image already present costs two requests: HEAD the source tag and
    /// HEAD the destination tag.
    pub async fn copy(&self, src: &Reference, dst: &Reference) -> Result<CopyReport, Error> {
        let span = tracing::info_span!("copy", source = %src, destination = %dst);
        self.copy_inner(src, dst).instrument(span).await
    }

    async fn copy_inner(&self, src: &Reference, dst: &Reference) -> Result<CopyReport, Error> {
        let started = Instant::now();
        let stats = Arc::new(Stats::child(self.client.stats()));
        let job = Job {
            client: self.client.with_stats(stats.clone()),
            src: Repo::new(&src.registry, &src.repository),
            dst: Repo::new(&dst.registry, &dst.repository),
            tally: Tally::default(),
            seen: Mutex::default(),
        };
        let tag = match (&dst.tag, &dst.digest) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => src.effective_tag(),
        };
        if let (Some(want), Some(_)) = (&dst.digest, &src.digest)
            && Some(want) != src.digest.as_ref()
        {
            return Err(Error::InvalidReference {
                input: dst.to_string(),
                reason: "the destination digest differs from the source digest".into(),
            });
        }

        // 1. Where does the source point now?
        let digest = match &src.digest {
            Some(d) => d.clone(),
            None => {
                let r = src.manifest_reference();
                job.client
                    .head_manifest(&job.src, &r)
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        registry: src.registry.clone(),
                        repository: src.repository.clone(),
                        what: format!("tag {r}"),
                    })?
                    .digest
            }
        };

        // 2. Is it already there?
        let dst_ref = tag.clone().unwrap_or_else(|| digest.to_string());
        let at_dst = job.client.head_manifest(&job.dst, &dst_ref).await?;
        if at_dst.as_ref().map(|h| &h.digest) == Some(&digest) {
            let mut status = CopyStatus::Skipped;
            if self.options.referrers && self.options.recheck_referrers {
                let root = job.client.get_manifest(&job.src, digest.as_str()).await?;
                self.copy_referrers(&job, &root).await?;
                if job.tally.manifests().copied > 0 {
                    status = CopyStatus::Copied;
                }
            }
            return Ok(self.report(&job, src, dst, digest, tag, status, started));
        }

        // 3. Content, children first, the root by digest.
        let root = job.client.get_manifest(&job.src, digest.as_str()).await?;
        self.copy_manifest(&job, root.clone(), 0, tag.is_some())
            .await?;

        // 4. Referrers, before the tag.
        if self.options.referrers {
            self.copy_referrers(&job, &root).await?;
        }

        // 5. The tag, last.
        if let Some(t) = &tag {
            job.client.put_manifest(&job.dst, t, &root).await?;
        }
        Ok(self.report(&job, src, dst, digest, tag, CopyStatus::Copied, started))
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        job: &Job,
        src: &Reference,
        dst: &Reference,
        digest: Digest,
        tag: Option<String>,
        status: CopyStatus,
        started: Instant,
    ) -> CopyReport {
        CopyReport {
            source: src.to_string(),
            destination: dst.to_string(),
            digest,
            tags: tag.into_iter().collect(),
            status,
            manifests: job.tally.manifests(),
            blobs: job.tally.blobs(),
            bytes: job.tally.bytes.load(std::sync::atomic::Ordering::Relaxed),
            referrers: job
                .tally
                .referrers
                .load(std::sync::atomic::Ordering::Relaxed),
            requests: RequestCounts::from_stats(job.client.stats()),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// Copy a manifest's content and then the manifest itself, by digest. `known_absent`
    /// skips the HEAD when the caller just learnt the destination lacks it.
    pub(crate) async fn copy_manifest(
        &self,
        job: &Job,
        m: RawManifest,
        depth: usize,
        check_first: bool,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidManifest {
                registry: job.src.registry.clone(),
                repository: job.src.repository.clone(),
                reference: m.digest.to_string(),
                reason: format!("manifests nest deeper than {MAX_DEPTH}"),
            });
        }
        if check_first
            && job
                .client
                .head_manifest(&job.dst, m.digest.as_str())
                .await?
                .is_some()
        {
            Tally::add(&job.tally.manifests_skipped, 1);
            return Ok(());
        }
        let parsed = manifest::parse(&m.bytes).map_err(|reason| Error::InvalidManifest {
            registry: job.src.registry.clone(),
            repository: job.src.repository.clone(),
            reference: m.digest.to_string(),
            reason,
        })?;
        match parsed {
            Parsed::Index { manifests, .. } => {
                futures::stream::iter(manifests)
                    .map(|child| async move {
                        if job
                            .client
                            .head_manifest(&job.dst, child.digest.as_str())
                            .await?
                            .is_some()
                        {
                            Tally::add(&job.tally.manifests_skipped, 1);
                            return Ok(());
                        }
                        let raw = job
                            .client
                            .get_manifest(&job.src, child.digest.as_str())
                            .await?;
                        Box::pin(self.copy_manifest(job, raw, depth + 1, false)).await
                    })
                    .buffer_unordered(self.options.manifest_concurrency.max(1))
                    .try_collect::<Vec<()>>()
                    .await?;
            }
            Parsed::Image { config, layers, .. } => {
                let blobs: Vec<_> = config.into_iter().chain(layers).collect();
                let mut unique = HashSet::new();
                let todo: Vec<_> = blobs
                    .into_iter()
                    .filter(|d| {
                        if d.is_foreign() {
                            Tally::add(&job.tally.blobs_foreign, 1);
                            return false;
                        }
                        unique.insert(d.digest.clone())
                    })
                    .collect();
                futures::stream::iter(todo)
                    .map(|d| async move { self.place_blob(job, &d).await })
                    .buffer_unordered(self.options.blob_concurrency.max(1))
                    .try_collect::<Vec<()>>()
                    .await?;
            }
        }
        job.client
            .put_manifest(&job.dst, m.digest.as_str(), &m)
            .await?;
        Tally::add(&job.tally.manifests_copied, 1);
        Ok(())
    }
}
