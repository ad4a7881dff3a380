//! Source reads shared by the copies of one unit of work (the jobs of one replicate
//! invocation): when N jobs copy the same source image to N destinations, its manifest
//! graph, its referrers listing and the HEAD of its tag are read from the source once, not
//! N times.
//!
//! - Entries are keyed by source registry, repository and reference (a digest, or a tag
//!   for the tag HEAD and the referrer tags a copy looks up), and single-flight: copies
//!   running at the same time wait for the one read under way.
//! - A manifest is kept as the verified raw bytes the source sent (never re-serialised);
//!   every read from the cache checks those bytes again against the digest they are kept
//!   under, and against the size the reader's descriptor announces.
//! - Failures are not kept: the next reader tries the source itself.
//! - The bytes kept are bounded ([`SharedReads::with_limit`]); past the bound, reads go to
//!   the source as if there were no cache.
//! - It is meant to live as long as one invocation: a tag read through it is the answer of
//!   that moment for every job of the batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::TryFutureExt;
use tokio::sync::OnceCell;

use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, MAX_MANIFEST_BYTES};
use crate::registry::{ManifestHead, RawManifest, RegistryClient, Repo};

/// Source registry, repository and reference.
type Key = (String, String, String);
type Cells<T> = Mutex<HashMap<Key, Arc<OnceCell<T>>>>;
/// Every tag of a source registry's repository.
type TagSets = Mutex<HashMap<(String, String), Arc<BTreeSet<String>>>>;

/// Default [`SharedReads::with_limit`]: 64 MiB of manifests.
pub const SHARED_READS_LIMIT: u64 = 64 * 1024 * 1024;

struct Inner {
    manifests: Cells<Option<RawManifest>>,
    heads: Cells<Option<ManifestHead>>,
    referrers: Cells<Option<Vec<Descriptor>>>,
    /// Every tag of a source repository, as the plan's listing read them.
    tags: TagSets,
    /// What the plan found at a destination tag (`None`: absent), taken by the copy.
    destinations: Mutex<HashMap<Key, Option<Digest>>>,
    kept: AtomicU64,
    limit: u64,
    fetched: AtomicU64,
    served: AtomicU64,
}

/// Source reads shared by the copies of one unit of work; cheap to clone (one shared
/// cache). Give it to the copies through [`super::CopyOptions::shared_reads`].
#[derive(Clone)]
pub struct SharedReads {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads")
            .field("fetched", &self.fetched())
            .field("served", &self.served())
            .finish()
    }
}

impl Default for SharedReads {
    fn default() -> Self {
        SharedReads::with_limit(SHARED_READS_LIMIT)
    }
}

fn key(repo: &Repo, reference: &str) -> Key {
    (
        repo.registry.clone(),
        repo.repository.clone(),
        reference.to_string(),
    )
}

fn cell<T>(cells: &Cells<T>, key: Key) -> Arc<OnceCell<T>> {
    cells
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

impl SharedReads {
    /// A cache keeping at most `limit` bytes of manifests.
    pub fn with_limit(limit: u64) -> SharedReads {
        SharedReads {
            inner: Arc::new(Inner {
                manifests: Mutex::default(),
                heads: Mutex::default(),
                referrers: Mutex::default(),
                tags: Mutex::default(),
                destinations: Mutex::default(),
                kept: AtomicU64::new(0),
                limit,
                fetched: AtomicU64::new(0),
                served: AtomicU64::new(0),
            }),
        }
    }

    /// Reads that went to the source.
    pub fn fetched(&self) -> u64 {
        self.inner.fetched.load(Ordering::Relaxed)
    }

    /// Reads answered from what another copy had read.
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// Keep what a listing already read: `reference` of the source `repo` points at
    /// `head`. Later HEADs of it through these reads are answered from it.
    pub(crate) fn seed_head(&self, repo: &Repo, reference: &str, head: ManifestHead) {
        self.inner
            .heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key(repo, reference))
            .or_insert_with(|| Arc::new(OnceCell::new_with(Some(Some(head)))));
    }

    /// Keep every tag the listing read of the source `repo`: referrer lookups by tag
    /// (`sha256-<hex>`, cosign's `.sig`, `.att`, `.sbom`) then ask only for the ones listed.
    pub(crate) fn seed_tags(&self, repo: &Repo, tags: BTreeSet<String>) {
        self.inner
            .tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (repo.registry.clone(), repo.repository.clone()),
                Arc::new(tags),
            );
    }

    /// The tags of the source `repo` the listing read, if it read them.
    pub(crate) fn tags_of(&self, repo: &Repo) -> Option<Arc<BTreeSet<String>>> {
        self.inner
            .tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(repo.registry.clone(), repo.repository.clone()))
            .cloned()
    }

    /// Keep what the plan found at the destination `repo`'s `tag` (`None`: absent), for the
    /// copy that follows to use instead of a HEAD of its own.
    pub(crate) fn seed_destination(&self, repo: &Repo, tag: &str, digest: Option<Digest>) {
        self.inner
            .destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(repo, tag), digest);
    }

    /// What the plan found at the destination `repo`'s `tag`, once (the first copy of that
    /// tag takes it; a retry asks the registry).
    pub(crate) fn take_destination(&self, repo: &Repo, tag: &str) -> Option<Option<Digest>> {
        self.inner
            .destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(repo, tag))
    }

    /// Run `read` once for `key` among every caller; the others wait and get its answer.
    async fn once<T, F, Fut>(&self, cells: &Cells<T>, key: Key, read: F) -> Result<T, Error>
    where
        T: Clone,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let cell = cell(cells, key);
        let mut ran = false;
        let value = cell
            .get_or_try_init(|| {
                ran = true;
                read()
            })
            .await?
            .clone();
        let counter = if ran {
            &self.inner.fetched
        } else {
            &self.inner.served
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    /// HEAD a source manifest (tag or digest), once.
    pub(crate) async fn head(
        &self,
        client: &RegistryClient,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<ManifestHead>, Error> {
        self.once(&self.inner.heads, key(repo, reference), || {
            client.head_manifest(repo, reference).map_err(Error::from)
        })
        .await
    }

    /// HEAD a source manifest afresh, and keep that answer for later readers (a job that
    /// finds the shared answer older than itself).
    pub(crate) async fn head_fresh(
        &self,
        client: &RegistryClient,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<ManifestHead>, Error> {
        let head = client.head_manifest(repo, reference).await?;
        self.inner.fetched.fetch_add(1, Ordering::Relaxed);
        let fresh = Arc::new(OnceCell::new_with(Some(head.clone())));
        self.inner
            .heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(repo, reference), fresh);
        Ok(head)
    }

    /// The source's referrers API answer for `digest`, once.
    pub(crate) async fn referrers(
        &self,
        client: &RegistryClient,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        self.once(&self.inner.referrers, key(repo, digest.as_str()), || {
            client.referrers_api(repo, digest).map_err(Error::from)
        })
        .await
    }

    /// GET a source manifest by tag or digest (`size`: the size a descriptor announces,
    /// read with [`RegistryClient::get_manifest_sized`]), once; the bytes are checked again
    /// on every read. `None` when it does not exist (only for unsized reads: a descriptor's
    /// manifest that is missing is an error, as without the cache).
    pub(crate) async fn manifest(
        &self,
        client: &RegistryClient,
        repo: &Repo,
        reference: &str,
        size: Option<u64>,
    ) -> Result<Option<RawManifest>, Error> {
        if let (Some(size), Ok(digest)) = (size, reference.parse::<Digest>())
            && size > MAX_MANIFEST_BYTES
        {
            // Refused before any request, as without the cache.
            return client
                .get_manifest_sized(repo, &digest, size)
                .await
                .map(Some)
                .map_err(Error::from);
        }
        let k = key(repo, reference);
        let found = self
            .once(&self.inner.manifests, k.clone(), || async {
                let m = match (size, reference.parse::<Digest>()) {
                    (Some(size), Ok(digest)) => {
                        Some(client.get_manifest_sized(repo, &digest, size).await?)
                    }
                    _ => client.get_manifest_opt(repo, reference).await?,
                };
                self.keep_or_forget(&k, m.as_ref());
                Ok(m)
            })
            .await?;
        match &found {
            Some(m) => check(repo, reference, size, m)?,
            None if size.is_some() => {
                return Err(Error::NotFound {
                    registry: repo.registry.clone(),
                    repository: repo.repository.clone(),
                    what: format!("manifest {reference}"),
                });
            }
            None => {}
        }
        Ok(found)
    }

    /// Count a manifest against the limit; past it, let the entry go once its readers
    /// have it (later readers fetch again).
    fn keep_or_forget(&self, k: &Key, m: Option<&RawManifest>) {
        let n = m.map_or(0, |m| m.bytes.len() as u64);
        let before = self.inner.kept.fetch_add(n, Ordering::Relaxed);
        if before + n > self.inner.limit {
            self.inner.kept.fetch_sub(n, Ordering::Relaxed);
            self.inner
                .manifests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(k);
        }
    }
}

impl super::Copier {
    /// HEAD a manifest of the source `repo`, through the shared reads when the options
    /// have them.
    pub async fn head_source(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<ManifestHead>, Error> {
        self.head_source_with(self.client(), repo, reference).await
    }

    /// HEAD a manifest of the source `repo` afresh, never from what another copy read; the
    /// answer replaces the shared one.
    pub async fn head_source_fresh(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<ManifestHead>, Error> {
        match &self.options().shared_reads {
            Some(shared) => shared.head_fresh(self.client(), repo, reference).await,
            None => Ok(self.client().head_manifest(repo, reference).await?),
        }
    }

    /// [`super::Copier::head_source`] with a copy's own client (its counters).
    pub(crate) async fn head_source_with(
        &self,
        client: &RegistryClient,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<ManifestHead>, Error> {
        match &self.options().shared_reads {
            Some(shared) => shared.head(client, repo, reference).await,
            None => Ok(client.head_manifest(repo, reference).await?),
        }
    }

    /// The referrers API answer of the source `repo` for `digest`, shared when the
    /// options say so.
    pub(crate) async fn source_referrers(
        &self,
        client: &RegistryClient,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        match &self.options().shared_reads {
            Some(shared) => shared.referrers(client, repo, digest).await,
            None => Ok(client.referrers_api(repo, digest).await?),
        }
    }

    /// GET a manifest of `repo`: shared when `repo` is the copy's source and the options
    /// have shared reads (a destination is always read afresh). `size` as in
    /// [`SharedReads::manifest`].
    pub(crate) async fn read_manifest(
        &self,
        job: &super::Job,
        repo: &Repo,
        reference: &str,
        size: Option<u64>,
    ) -> Result<Option<RawManifest>, Error> {
        match (&self.options().shared_reads, size) {
            (Some(shared), _) if *repo == job.src => {
                shared.manifest(&job.client, repo, reference, size).await
            }
            (_, Some(size)) => {
                let digest = reference.parse::<Digest>().map_err(|_| {
                    Error::Unsupported(format!("a sized read needs a digest, not {reference}"))
                })?;
                Ok(Some(
                    job.client.get_manifest_sized(repo, &digest, size).await?,
                ))
            }
            (_, None) => Ok(job.client.get_manifest_opt(repo, reference).await?),
        }
    }
}

/// Check a kept manifest again for one reader: its bytes hash to the digest it is kept
/// under (and the reference, when that is a digest), and are no larger than the reader's
/// descriptor says.
fn check(repo: &Repo, reference: &str, size: Option<u64>, m: &RawManifest) -> Result<(), Error> {
    let actual = Digest::of(&m.bytes);
    let expected = reference
        .parse::<Digest>()
        .unwrap_or_else(|_| m.digest.clone());
    if actual != expected || actual != m.digest {
        return Err(Error::DigestMismatch {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            expected,
            actual: actual.to_string(),
            detail: format!("shared manifest {reference}, {} bytes", m.bytes.len()),
        });
    }
    if let Some(size) = size
        && m.bytes.len() as u64 > size
    {
        return Err(Error::DigestMismatch {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            expected,
            actual: format!("size {}", m.bytes.len()),
            detail: format!("the manifest is larger than the {size} bytes its descriptor says"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(body: &str) -> RawManifest {
        let bytes = Bytes::from(body.to_string());
        RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type: crate::manifest::OCI_MANIFEST.to_string(),
        }
    }

    #[test]
    fn kept_bytes_are_checked_against_their_digest_and_the_readers_size() {
        let repo = Repo::new("r.io", "a");
        let m = raw(r#"{"schemaVersion":2}"#);
        let d = m.digest.to_string();
        check(&repo, &d, None, &m).expect("intact");
        check(&repo, &d, Some(m.bytes.len() as u64), &m).expect("announced size");
        check(&repo, "v1", None, &m).expect("by tag: its own digest");
        assert!(matches!(
            check(&repo, &d, Some(3), &m),
            Err(Error::DigestMismatch { .. })
        ));
        let mut tampered = m.clone();
        tampered.bytes = Bytes::from_static(b"{\"schemaVersion\":3}");
        assert!(matches!(
            check(&repo, &d, None, &tampered),
            Err(Error::DigestMismatch { .. })
        ));
        let other = raw(r#"{"schemaVersion":2,"x":1}"#);
        assert!(
            check(&repo, &d, None, &other).is_err(),
            "kept under another digest"
        );
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_read_and_failures_are_not_kept() {
        let shared = SharedReads::default();
        let cells = &shared.inner.heads;
        let k = key(&Repo::new("r.io", "a"), "v1");
        let calls = AtomicU64::new(0);
        let read = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(None)
        };
        let all = futures::future::join_all((0..8).map(|_| shared.once(cells, k.clone(), read)));
        for r in all.await {
            assert_eq!(r.expect("ok"), None);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!((shared.fetched(), shared.served()), (1, 7));

        let k2 = key(&Repo::new("r.io", "a"), "v2");
        let failed: Result<Option<ManifestHead>, Error> = shared
            .once(cells, k2.clone(), || async {
                Err(Error::Unsupported("boom".into()))
            })
            .await;
        assert!(failed.is_err());
        let again = shared
            .once(cells, k2, || async { Ok(None) })
            .await
            .expect("tried again");
        assert_eq!(again, None);
    }

    #[tokio::test]
    async fn a_fresh_head_replaces_the_shared_answer() {
        let shared = SharedReads::default();
        let k = key(&Repo::new("r.io", "a"), "v1");
        let old = shared
            .once(&shared.inner.heads, k.clone(), || async { Ok(None) })
            .await
            .expect("old");
        assert_eq!(old, None);
        let now = Some(ManifestHead {
            digest: Digest::of(b"new"),
            media_type: None,
            size: None,
        });
        shared
            .inner
            .heads
            .lock()
            .unwrap()
            .insert(k.clone(), Arc::new(OnceCell::new_with(Some(now.clone()))));
        let later = shared
            .once(&shared.inner.heads, k, || async { Ok(None) })
            .await
            .expect("later");
        assert_eq!(later, now, "later readers see the replacement");
    }

    #[test]
    fn past_the_limit_nothing_is_kept() {
        let shared = SharedReads::with_limit(10);
        let m = raw(r#"{"schemaVersion":2}"#);
        let k = key(&Repo::new("r.io", "a"), m.digest.as_str());
        cell(&shared.inner.manifests, k.clone());
        shared.keep_or_forget(&k, Some(&m));
        assert!(shared.inner.manifests.lock().unwrap().is_empty());
        assert_eq!(shared.inner.kept.load(Ordering::Relaxed), 0);
    }
}
