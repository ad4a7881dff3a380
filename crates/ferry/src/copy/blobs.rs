//! Putting one blob in place at the destination: HEAD, else mount from a repository of
//! the destination registry known to hold it, else stream it (GET and POST at once, then
//! one PUT).
//! Single-flight per destination repository and digest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use tracing::Instrument;

use super::verify::{self, ByteStream, Expect, FailureSlot, Reopen};
use super::{Copier, Job};
use crate::error::Error;
use crate::manifest::Descriptor;
use crate::registry::{MountOutcome, RegistryClient, Repo};
use crate::report::Tally;

/// Mounts at one registry that may fail to mount before no more are tried there.
pub(crate) const MOUNT_MISSES_ALLOWED: usize = 3;

/// What a mount attempt gave.
enum Mount {
    /// The blob is in the repository now.
    Mounted,
    /// Not mounted; an upload session to use instead of a new one.
    Session(String),
    /// Not mounted (refused, or mounts are off at that registry).
    No,
}

/// Mount attempts at one registry: one at a time until one has worked.
#[derive(Default)]
pub(crate) struct MountGate {
    lock: tokio::sync::Mutex<()>,
    proven: AtomicBool,
}

/// How an upload through the fan-out's shared read ended.
enum Shared {
    /// Uploaded: this many bytes.
    Done(u64),
    /// The read started without this destination; the upload session it had started.
    NotJoined(Option<String>),
    /// The upload did not complete; why.
    Failed(String),
}

/// How a blob got to the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Already there.
    Present,
    /// Mounted from another repository.
    Mounted,
    /// Streamed: this many bytes.
    Copied(u64),
}

impl Copier {
    /// Make sure the destination repository holds the blob, doing the work at most once
    /// per destination repository across every copy sharing this copier.
    pub(crate) async fn place_blob(&self, job: &Job, d: &Descriptor) -> Result<(), Error> {
        let key = (job.dst.clone(), d.digest.clone());
        let cell = {
            let mut cells = self.index.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(key).or_default().clone()
        };
        let mut ran = false;
        let placed = *cell
            .get_or_try_init(|| {
                ran = true;
                let span = tracing::debug_span!("blob", registry = %job.dst.registry, repository = %job.dst.repository, digest = %d.digest, size = d.size);
                self.place_blob_once(job, d).instrument(span)
            })
            .await?;
        if ran && job.tee.is_some() {
            // The fan-out's placement: the copy that follows counts it.
            self.index
                .prefetched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((job.dst.clone(), d.digest.clone()), placed);
        }
        let first_in_job = job
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.digest.clone());
        if !first_in_job {
            return Ok(());
        }
        // Placed ahead by the fan-out for this repository: its work counts here.
        let (ran, placed) = match ran {
            false => self
                .take_prefetched(&job.dst, &d.digest)
                .map_or((false, placed), |p| (true, p)),
            true => (true, placed),
        };
        match (ran, placed) {
            (true, Placed::Copied(n)) => {
                Tally::add(&job.tally.blobs_copied, 1);
                Tally::add(&job.tally.bytes, n);
            }
            (true, Placed::Mounted) => Tally::add(&job.tally.blobs_mounted, 1),
            _ => Tally::add(&job.tally.blobs_skipped, 1),
        }
        Ok(())
    }

    /// One transfer per destination registry: the first repository to need the blob
    /// checks its own copy (HEAD) and brings it in; every other repository of that
    /// registry waits for it and mounts it from there, with no HEAD of its own (a mount of
    /// a blob the repository already holds answers 201 too).
    async fn place_blob_once(&self, job: &Job, d: &Descriptor) -> Result<Placed, Error> {
        let cell = {
            let mut cells = self
                .index
                .registry_cells
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cells
                .entry((job.dst.registry.clone(), d.digest.clone()))
                .or_default()
                .clone()
        };
        let mut ran = false;
        let (holder, placed) = cell
            .get_or_try_init(|| {
                ran = true;
                async {
                    let placed = if job.client.blob_exists(&job.dst, &d.digest).await?.is_some() {
                        self.remember(&job.dst, d);
                        Placed::Present
                    } else {
                        self.bring(job, d).await?
                    };
                    Ok::<_, Error>((job.dst.repository.clone(), placed))
                }
            })
            .await?
            .clone();
        if ran || holder == job.dst.repository {
            return Ok(placed);
        }
        if !self.mounts_allowed(&job.dst.registry) {
            if job.client.blob_exists(&job.dst, &d.digest).await?.is_some() {
                self.remember(&job.dst, d);
                return Ok(Placed::Present);
            }
            let bytes = self.transfer(job, d, None).await?;
            self.remember(&job.dst, d);
            return Ok(Placed::Copied(bytes));
        }
        let session = match self.mount(job, d, &holder).await? {
            Mount::Mounted => {
                self.remember(&job.dst, d);
                return Ok(Placed::Mounted);
            }
            Mount::Session(loc) => Some(loc),
            Mount::No => None,
        };
        let bytes = self.transfer(job, d, session).await?;
        self.remember(&job.dst, d);
        Ok(Placed::Copied(bytes))
    }

    /// Try to mount the blob from `from`. Until one mount has worked at a registry, its
    /// mounts go one at a time, so that a registry where none works costs exactly
    /// [`MOUNT_MISSES_ALLOWED`] of them, however many copies run at once.
    async fn mount(&self, job: &Job, d: &Descriptor, from: &str) -> Result<Mount, Error> {
        let host = &job.dst.registry;
        if !self.mounts_allowed(host) {
            return Ok(Mount::No);
        }
        let gate = self
            .index
            .mount_gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.clone())
            .or_default()
            .clone();
        let _one_at_a_time = if gate.proven.load(Ordering::Acquire) {
            None
        } else {
            Some(gate.lock.lock().await)
        };
        if !self.mounts_allowed(host) {
            return Ok(Mount::No);
        }
        match job.client.mount_blob(&job.dst, &d.digest, from).await {
            Ok(MountOutcome::Mounted) => {
                gate.proven.store(true, Ordering::Release);
                Ok(Mount::Mounted)
            }
            Ok(MountOutcome::Upload(loc)) => {
                // Not mounted, but an upload session: the transfer uses it.
                self.mount_missed(host);
                Ok(Mount::Session(loc))
            }
            Err(e) if e.is_retryable() => Err(e.into()),
            // A refused mount (no access to `from`, mounting disabled) is no failure:
            // the blob is transferred.
            Err(e) => {
                tracing::debug!(error = %e, "mount refused");
                self.mount_missed(host);
                Ok(Mount::No)
            }
        }
    }

    /// A mount at `host` that did not mount (an upload session instead, as ECR answers
    /// without the `BLOB_MOUNTING` account setting, or a refusal). After
    /// [`MOUNT_MISSES_ALLOWED`] of them no more mounts are tried there: each would cost a
    /// request and bring nothing.
    fn mount_missed(&self, host: &str) {
        let misses = {
            let mut m = self
                .index
                .mount_misses
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = m.entry(host.to_owned()).or_default();
            *n += 1;
            *n
        };
        if misses == MOUNT_MISSES_ALLOWED {
            tracing::info!(registry = %host, misses, "cross-repository mounts do not work at this registry: no more are tried");
            self.set_blob_mounting(host, false);
        }
    }

    /// Bring a blob into the destination repository: mount from a known holder in the
    /// same registry, else stream it.
    async fn bring(&self, job: &Job, d: &Descriptor) -> Result<Placed, Error> {
        let mut session = None;
        for from in self.mount_candidates(job, d) {
            match self.mount(job, d, &from).await? {
                Mount::Mounted => {
                    self.remember(&job.dst, d);
                    return Ok(Placed::Mounted);
                }
                Mount::Session(loc) => {
                    session = Some(loc);
                    break;
                }
                Mount::No => {}
            }
        }
        let bytes = self.transfer(job, d, session).await?;
        self.remember(&job.dst, d);
        Ok(Placed::Copied(bytes))
    }

    /// Repositories of the destination registry believed to hold the blob: ones this
    /// copier put it in, and the source repository when source and destination share a
    /// registry. None where mounts are off.
    fn mount_candidates(&self, job: &Job, d: &Descriptor) -> Vec<String> {
        if !self.mounts_allowed(&job.dst.registry) {
            return Vec::new();
        }
        let holders = self.index.holders.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = holders
            .get(&(job.dst.registry.clone(), d.digest.clone()))
            .map(|v| {
                v.iter()
                    .filter(|r| **r != job.dst.repository)
                    .take(2)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if job.src.registry == job.dst.registry && job.src.repository != job.dst.repository {
            out.insert(0, job.src.repository.clone());
        }
        out.dedup();
        out
    }

    fn remember(&self, repo: &Repo, d: &Descriptor) {
        let mut holders = self.index.holders.lock().unwrap_or_else(|p| p.into_inner());
        let v = holders
            .entry((repo.registry.clone(), d.digest.clone()))
            .or_default();
        if !v.contains(&repo.repository) && v.len() < 8 {
            v.push(repo.repository.clone());
        }
    }

    /// Stream the blob: GET at the source while an upload session is POSTed, then one PUT
    /// with the whole verified body. Retried as a whole; a digest mismatch is final.
    async fn transfer(
        &self,
        job: &Job,
        d: &Descriptor,
        session: Option<String>,
    ) -> Result<u64, Error> {
        if let Some(deadline) = self.options.deadline
            && Instant::now() >= deadline
        {
            return Err(Error::Deadline(format!(
                "blob {} for {} not started: the deadline is near",
                d.digest, job.dst
            )));
        }
        let mut session = session;
        // One source read for every destination of a fan-out that lacks the blob.
        if let Some(ticket) = &job.tee {
            match self.transfer_shared(job, d, session.take(), ticket).await {
                Shared::Done(n) => return Ok(n),
                Shared::NotJoined(given) => session = given,
                Shared::Failed(why) => {
                    tracing::debug!(digest = %d.digest, destination = %job.dst, reason = %why, "the shared read did not complete here: reading on its own");
                }
            }
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| Error::Unsupported("blob transfer slots closed".into()))?;
        let attempt = || {
            let given = session.take();
            async move {
                // The upload session and the source's answer at once: one round trip,
                // not two (each request gives its slot back once answered).
                let location = async {
                    match given {
                        Some(l) => Ok(l),
                        None => job.client.start_upload(&job.dst).await,
                    }
                };
                let (location, resp) = futures::try_join!(
                    location,
                    job.client.get_blob(&job.src, &d.digest, 0, d.size)
                )?;
                let first = body_stream(resp, &job.src.registry);
                let failure = FailureSlot::default();
                let body = verify::verified(
                    first,
                    reopen(job.client.clone(), job.src.clone(), d.clone()),
                    self.options.max_resumes,
                    Expect {
                        digest: d.digest.clone(),
                        size: d.size,
                        registry: job.src.registry.clone(),
                        repository: job.src.repository.clone(),
                    },
                    failure.clone(),
                );
                let put = job
                    .client
                    .put_blob(
                        &job.dst,
                        &location,
                        &d.digest,
                        d.size,
                        reqwest::Body::wrap_stream(body),
                    )
                    .await;
                // The verifier's reason beats the transport's "body aborted".
                if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(e);
                }
                put.map(|()| d.size).map_err(Error::from)
            }
        };
        let mut attempt = attempt;
        match job.client.retrying(&mut attempt).await {
            // A 401 (or ECR's 403 "token has expired") on the upload PUT, token expired
            // mid-copy, has already refreshed the credentials: one more round with them.
            Err(e) if e.is_expired_credential() => job.client.retrying(&mut attempt).await,
            other => other,
        }
    }
}

impl Copier {
    /// Upload the blob with the body of the fan-out's shared read: start the upload
    /// session, join the tee, PUT what it sends. When the upload did not complete
    /// (detached, the source failed, or this destination's PUT failed), or the read started
    /// without this destination, the caller reads on its own.
    async fn transfer_shared(
        &self,
        job: &Job,
        d: &Descriptor,
        session: Option<String>,
        ticket: &super::tee::Ticket,
    ) -> Shared {
        let location = match session {
            Some(l) => l,
            None => match job.client.start_upload(&job.dst).await {
                Ok(l) => l,
                // The ticket is given back when the copy drops it: the read does not wait
                // for this destination.
                Err(e) => return Shared::Failed(e.to_string()),
            },
        };
        let Some(joined) = ticket.join() else {
            return Shared::NotJoined(Some(location));
        };
        let (body, end) = joined.into_body();
        let put = job
            .client
            .put_blob(
                &job.dst,
                &location,
                &d.digest,
                d.size,
                reqwest::Body::wrap_stream(body),
            )
            .await;
        match put {
            Ok(()) if end.complete() => Shared::Done(d.size),
            // The registry accepted a body the read did not finish: never expected (the
            // last chunk comes only after the digest matched), and never trusted.
            Ok(()) => Shared::Failed(format!(
                "the upload ended before the shared read: {}",
                end.reason()
            )),
            Err(_) if !end.complete() => Shared::Failed(end.reason()),
            Err(e) => Shared::Failed(e.to_string()),
        }
    }
}

pub(super) fn body_stream(resp: reqwest::Response, registry: &str) -> ByteStream {
    let registry = registry.to_string();
    resp.bytes_stream()
        .map(move |r| {
            r.map_err(|e| Error::Unreachable {
                registry: registry.clone(),
                message: crate::registry::describe_reqwest(&e),
            })
        })
        .boxed()
}

/// Re-open the source blob from an offset with `Range`; `None` when the source answers
/// with the whole body (no range support), which means starting over. This runs inside
/// the upload PUT, which holds a slot of the destination's host limit: the resume takes
/// none ([`RegistryClient::resume_blob`]), or with source and destination on one
/// registry limited to 1 it would wait for its own PUT forever.
pub(super) fn reopen(client: RegistryClient, src: Repo, blob: Descriptor) -> Reopen {
    let client = Arc::new(client);
    Box::new(move |offset| {
        let client = client.clone();
        let src = src.clone();
        let (digest, size) = (blob.digest.clone(), blob.size);
        async move {
            let resp = client.resume_blob(&src, &digest, offset, size).await?;
            if resp.status().as_u16() != 206 || !range_starts_at(&resp, offset) {
                return Ok(None);
            }
            Ok(Some(body_stream(resp, &src.registry)))
        }
        .boxed()
    })
}

fn range_starts_at(resp: &reqwest::Response, offset: u64) -> bool {
    resp.headers()
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok())
        == Some(offset)
}
