//! The image graph copy: index → child manifests → config and layers, then referrers,
//! pushed children first, parents by digest next, tags last, so that no tag ever points
//! at an incomplete image.

mod blobs;
mod budget;
mod fanout;
pub mod platforms;
mod referrers;
mod shared;
mod tee;
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
use crate::registry::{RegistryClient, Repo, Stats};
use crate::report::{CopyReport, CopyStatus, RequestCounts, Tally};

pub use fanout::{FanOutParticipant, FanOutReport};
use referrers::Subject;
pub use shared::{SHARED_READS_LIMIT, SharedReads};

/// How deep manifests may nest below the root (index → manifest is depth 1; referrer
/// indexes add one): deeper is an error in copies and plans alike.
pub(crate) const MAX_DEPTH: usize = 4;

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
    /// Bytes of manifests held at once across every copy sharing the [`Copier`] (the
    /// graph walk fetches children concurrently). Default [`MANIFEST_BUDGET`].
    pub manifest_budget: u64,
    /// Source reads shared with the other copies of one unit of work (the jobs of one
    /// replicate invocation): each source manifest, referrers listing and tag HEAD read
    /// once for all of them. `None`: every copy reads for itself.
    pub shared_reads: Option<SharedReads>,
    /// The ECR control plane, for an ECR source's `ListImageReferrers` when its registry
    /// endpoint has no referrers answer (before the tag-schema fallback). `None`: the
    /// registry endpoint and the tag schema only.
    pub ecr: Option<crate::ecr::EcrControl>,
    /// Leave the source's signatures behind (Notation signature referrers and cosign
    /// `.sig` tags): the destination signs images itself (ECR managed signing) and the
    /// rule did not ask for `referrers: true` explicitly. Other referrers are copied.
    pub skip_signatures: bool,
    /// The image is expected not to be at the destination yet (the event of a fresh
    /// push): its manifest is read while the destination is asked whether it holds it,
    /// one round trip sooner when it does not, one GET more when it does.
    pub expect_new: bool,
    /// Copy only these platforms (`os/architecture[/variant]`) of an image index: the
    /// destination gets a new index listing only the matching entries (and the Docker
    /// attestations of those), with a digest of its own, and the source index's referrers
    /// are not copied (their `subject` is the source index). Not an index: copied as it
    /// is. Empty (the default): every platform, byte for byte. See [`platforms`].
    pub platforms: Vec<String>,
}

/// Default [`CopyOptions::manifest_budget`]: 64 MiB.
pub const MANIFEST_BUDGET: u64 = 64 * 1024 * 1024;

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            referrers: true,
            blob_concurrency: 8,
            manifest_concurrency: 4,
            max_resumes: 3,
            deadline: None,
            recheck_referrers: false,
            manifest_budget: MANIFEST_BUDGET,
            shared_reads: None,
            ecr: None,
            skip_signatures: false,
            expect_new: false,
            platforms: Vec::new(),
        }
    }
}

/// The answer a tag waits for in [`Copier::copy_confirmed`]: may it be applied?
pub type Confirm<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, Error>> + Send + 'a>>;

/// Where a copy's walk left it.
enum Walked {
    /// The destination already holds the image.
    Present {
        /// The image.
        digest: Digest,
        /// Skipped, or copied when referrers added since were copied.
        status: CopyStatus,
    },
    /// Everything but the root's own PUT is at the destination.
    Ready {
        /// The root manifest.
        root: budget::Held,
        /// Whether it already went out by digest (before a referrer).
        pushed: bool,
    },
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
    /// Destination registries where no cross-repository mount is tried.
    no_mounts: Mutex<HashSet<String>>,
    /// Mounts that did not mount, per destination registry.
    mount_misses: Mutex<HashMap<String, usize>>,
    /// Per destination registry: mounts one at a time until one has worked.
    mount_gates: Mutex<HashMap<String, Arc<blobs::MountGate>>>,
    /// Blobs the fan-out put in place ahead of the copies, per destination repository:
    /// the first copy there counts the work as its own.
    prefetched: Mutex<HashMap<(Repo, Digest), blobs::Placed>>,
}

/// Copies images. Share one `Copier` across every copy of a run: the blob index then makes
/// a blob shared by several images cross the wire once per destination.
#[derive(Clone)]
pub struct Copier {
    client: RegistryClient,
    options: CopyOptions,
    slots: Arc<Semaphore>,
    index: Arc<BlobIndex>,
    budget: Arc<budget::ManifestBudget>,
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
    /// When an index is written in place of the source's (platform selection): the
    /// source's digest, and the platforms the written index keeps.
    pub filtered: std::sync::OnceLock<(Digest, Vec<String>)>,
    /// The fan-out's shared read of the blob being placed, when this copy is one of its
    /// destinations.
    pub tee: Option<tee::Ticket>,
}

impl Copier {
    /// A copier over a client.
    pub fn new(client: RegistryClient, options: CopyOptions) -> Copier {
        let slots = Arc::new(Semaphore::new(options.blob_concurrency.max(1)));
        let budget = Arc::new(budget::ManifestBudget::new(options.manifest_budget));
        Copier {
            client,
            options,
            slots,
            index: Arc::default(),
            budget,
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

    /// Whether to try cross-repository mounts at the destination registry `host` (default:
    /// yes). Off for an ECR registry whose account has no `BLOB_MOUNTING` setting, or where
    /// the config says so: blobs are then uploaded without a mount attempt.
    pub fn set_blob_mounting(&self, host: &str, allowed: bool) {
        let mut off = self
            .index
            .no_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if allowed {
            off.remove(host);
        } else {
            off.insert(host.to_owned());
        }
    }

    /// Whether mounts are tried at the destination registry `host`.
    pub fn mounts_allowed(&self, host: &str) -> bool {
        !self
            .index
            .no_mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(host)
    }

    /// A copier sharing this one's blob index, slots and manifest budget, with other
    /// options (for example a per-invocation deadline or referrers off; the shared budget
    /// keeps its size).
    pub fn with_options(&self, options: CopyOptions) -> Copier {
        Copier {
            client: self.client.clone(),
            options,
            slots: self.slots.clone(),
            index: self.index.clone(),
            budget: self.budget.clone(),
        }
    }

    /// Copy one image. `dst` without tag or digest keeps `src`'s tag; `src` by digest
    /// copies by digest (and applies `dst`'s tag if it has one).
    ///
    /// A re-copy of an image already present costs two requests: HEAD the source tag and
    /// HEAD the destination tag.
    pub async fn copy(&self, src: &Reference, dst: &Reference) -> Result<CopyReport, Error> {
        let span = tracing::info_span!("copy", source = %src, destination = %dst);
        let (report, _) = self.copy_inner(src, dst, None).instrument(span).await?;
        Ok(report)
    }

    /// [`Copier::copy`] whose tag is applied only if `confirm` says so: `confirm` runs
    /// while the content is copied, and only the tag waits for its answer. `false` leaves
    /// the image at the destination by digest only, untagged (the report names no tag).
    /// The second value is whether the tag was applied.
    pub async fn copy_confirmed(
        &self,
        src: &Reference,
        dst: &Reference,
        confirm: Confirm<'_>,
    ) -> Result<(CopyReport, bool), Error> {
        let span = tracing::info_span!("copy", source = %src, destination = %dst);
        let (report, confirmed) = self
            .copy_inner(src, dst, Some(confirm))
            .instrument(span)
            .await?;
        Ok((report, confirmed.unwrap_or(true)))
    }

    async fn copy_inner(
        &self,
        src: &Reference,
        dst: &Reference,
        confirm: Option<Confirm<'_>>,
    ) -> Result<(CopyReport, Option<bool>), Error> {
        let started = Instant::now();
        let stats = Arc::new(Stats::child(self.client.stats()));
        let job = Job {
            client: self.client.with_stats(stats.clone()),
            src: Repo::new(&src.registry, &src.repository),
            dst: Repo::new(&dst.registry, &dst.repository),
            tally: Tally::default(),
            seen: Mutex::default(),
            filtered: std::sync::OnceLock::new(),
            tee: None,
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
        let confirm = async {
            match confirm {
                Some(c) => c.await.map(Some),
                None => Ok(None),
            }
        };
        let (confirmed, walked) = futures::join!(confirm, self.walk(&job, src, tag.as_deref()));
        let confirmed = confirmed?;
        let walked = walked?;
        let tag = tag.filter(|_| confirmed != Some(false));
        let (digest, status) = match walked {
            Walked::Present { digest, status } => (digest, status),
            Walked::Ready { root, pushed } => {
                // The root, last: one PUT by tag when no referrer made it go out by digest
                // already (the tag still lands after everything it points at), else the
                // tag; untagged, by digest once.
                match &tag {
                    Some(t) => job.client.put_manifest(&job.dst, t, &root.raw).await?,
                    None if !pushed => {
                        job.client
                            .put_manifest(&job.dst, root.raw.digest.as_str(), &root.raw)
                            .await?
                    }
                    None => {}
                }
                Tally::add(&job.tally.manifests_copied, 1);
                (root.raw.digest.clone(), CopyStatus::Copied)
            }
        };
        let mut report = self.report(&job, src, dst, digest, tag, status, started);
        if let Some((source, kept)) = job.filtered.get().cloned() {
            // The report names the source's digest; the filtered index's own beside it.
            report.filtered_digest = Some(std::mem::replace(&mut report.digest, source));
            report.platforms = kept;
        }
        Ok((report, confirmed))
    }

    /// Everything of a copy but the root's own PUT: where the source points, whether the
    /// destination already holds it, the content children first, the referrers.
    async fn walk(&self, job: &Job, src: &Reference, tag: Option<&str>) -> Result<Walked, Error> {
        // 1. Where does the source point now?
        let digest = match &src.digest {
            Some(d) => d.clone(),
            None => {
                let r = src.manifest_reference();
                self.head_source_with(&job.client, &job.src, &r)
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        registry: src.registry.clone(),
                        repository: src.repository.clone(),
                        what: format!("tag {r}"),
                    })?
                    .digest
            }
        };

        // 1b. Platforms selected: the index to write is the source's, filtered; the
        //     destination is compared with that one.
        let (want, early) = if self.options.platforms.is_empty() {
            (digest.clone(), None)
        } else {
            let root = self.fetch_root(job, &digest).await?;
            let root = self.select_platforms(job, root)?;
            (root.raw.digest.clone(), Some(Ok(root)))
        };
        let filtered = want != digest;

        // 2. Is it already there? (The plan may have just looked: then its answer.) An
        //    image expected to be new has its manifest read meanwhile.
        let dst_ref = tag.map_or_else(|| want.to_string(), str::to_string);
        let known = self
            .options
            .shared_reads
            .as_ref()
            .and_then(|s| s.take_destination(&job.dst, &dst_ref));
        let (at_dst, early) = match known {
            Some(found) => (found, early),
            None if early.is_some() => (
                job.client
                    .head_manifest(&job.dst, &dst_ref)
                    .await?
                    .map(|h| h.digest),
                early,
            ),
            None if self.options.expect_new => {
                let (at, root) = futures::join!(
                    job.client.head_manifest(&job.dst, &dst_ref),
                    self.fetch_root(job, &digest)
                );
                (at?.map(|h| h.digest), Some(root))
            }
            None => (
                job.client
                    .head_manifest(&job.dst, &dst_ref)
                    .await?
                    .map(|h| h.digest),
                None,
            ),
        };
        if at_dst.as_ref() == Some(&want) {
            let mut status = CopyStatus::Skipped;
            // A filtered index has no referrers to look for: the source's name the source
            // index.
            if self.options.referrers && self.options.recheck_referrers && !filtered {
                let root = match early {
                    Some(root) => root?,
                    None => self.fetch_root(job, &digest).await?,
                };
                self.copy_referrers(job, &Subject::present(&root.raw))
                    .await?;
                if job.tally.manifests().copied > 0 {
                    status = CopyStatus::Copied;
                }
            }
            return Ok(Walked::Present {
                digest: want,
                status,
            });
        }

        // 3. Content, children first; meanwhile, what referrers the source holds.
        let root = match early {
            Some(root) => root?,
            None => self.fetch_root(job, &digest).await?,
        };
        let subject = Subject::new(&root.raw);
        // The source index's referrers do not go with a filtered index: their `subject` is
        // the source index's digest, which the destination never gets.
        if self.options.referrers && !filtered {
            let (content, found) = futures::join!(
                self.copy_content(job, &root, 0),
                self.discover_referrers(job, &digest)
            );
            content?;
            // 4. Referrers, before the tag; the root goes out by digest before the first
            //    one (a registry may refuse a referrer whose subject it does not hold).
            self.copy_discovered(job, &subject, found?).await?;
        } else {
            self.copy_content(job, &root, 0).await?;
        }
        let pushed = subject.is_pushed();
        drop(subject);
        Ok(Walked::Ready { root, pushed })
    }

    /// The root manifest by digest, held in the budget at depth 0.
    async fn fetch_root(&self, job: &Job, digest: &Digest) -> Result<budget::Held, Error> {
        self.fetch_unsized(job, &job.src, digest.as_str(), 0)
            .await?
            .ok_or_else(|| Error::NotFound {
                registry: job.src.registry.clone(),
                repository: job.src.repository.clone(),
                what: format!("manifest {digest}"),
            })
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
            filtered_digest: None,
            platforms: Vec::new(),
            tags: tag.into_iter().collect(),
            status,
            manifests: job.tally.manifests(),
            blobs: job.tally.blobs(),
            bytes: job.tally.bytes.load(std::sync::atomic::Ordering::Relaxed),
            referrers: job
                .tally
                .referrers
                .load(std::sync::atomic::Ordering::Relaxed),
            referrers_rejected: job
                .tally
                .referrers_rejected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            requests: RequestCounts::from_stats(job.client.stats()),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// Copy a manifest's content and then the manifest itself, by digest. `check_first`
    /// HEADs the destination first and stops there when it holds the manifest. `m` stays
    /// held in the manifest budget until its walk is done; its children are fetched at
    /// `depth + 1`, never deeper than [`MAX_DEPTH`].
    pub(crate) async fn copy_manifest(
        &self,
        job: &Job,
        held: &budget::Held,
        depth: usize,
        check_first: bool,
    ) -> Result<(), Error> {
        let m = &held.raw;
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
        self.copy_content(job, held, depth).await?;
        job.client
            .put_manifest(&job.dst, m.digest.as_str(), m)
            .await?;
        Tally::add(&job.tally.manifests_copied, 1);
        Ok(())
    }

    /// Copy what a manifest points at (child manifests of an index, each with its own
    /// content, or an image's config and layers), not the manifest itself.
    pub(crate) async fn copy_content(
        &self,
        job: &Job,
        held: &budget::Held,
        depth: usize,
    ) -> Result<(), Error> {
        let m = &held.raw;
        if depth > MAX_DEPTH {
            return Err(Error::InvalidManifest {
                registry: job.src.registry.clone(),
                repository: job.src.repository.clone(),
                reference: m.digest.to_string(),
                reason: format!("manifests nest deeper than {MAX_DEPTH}"),
            });
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
                        if depth + 1 > MAX_DEPTH {
                            return Err(Error::InvalidManifest {
                                registry: job.src.registry.clone(),
                                repository: job.src.repository.clone(),
                                reference: m.digest.to_string(),
                                reason: format!("manifests nest deeper than {MAX_DEPTH}"),
                            });
                        }
                        let raw = self.fetch_child(job, &child, depth + 1).await?;
                        Box::pin(self.copy_manifest(job, &raw, depth + 1, false)).await
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
        Ok(())
    }
}
