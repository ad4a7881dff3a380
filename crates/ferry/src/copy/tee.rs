//! One source read of a blob for many destinations: a tee.
//!
//! The destinations that lack a blob each hold a [`Ticket`]. A destination that gets as far
//! as uploading the blob starts its upload session and joins; one that finds the blob
//! present, mounts it, or fails before that gives its ticket back. Once every ticket is
//! joined or given back (or [`GATHER`] after the first join, whichever comes first), one
//! task reads the blob from the source, verifies it as every transfer does (digest and size,
//! resumed with `Range`, the last chunk held back until the digest matches), and sends each
//! chunk to every joined destination through a bounded channel ([`CHANNEL_CHUNKS`]).
//!
//! - **Backpressure:** the read waits for a destination whose channel is full, at most
//!   [`STALL`] per chunk. A destination that falls further behind, or whose upload ended,
//!   is detached: its upload body ends with an error (the registry commits nothing) and that
//!   destination reads the blob again on its own. The others carry on.
//! - **Failures are the destination's own:** a source failure ends every joined upload
//!   unfinished, and each destination then falls back to a transfer of its own, with its
//!   own retries; nothing a destination does fails another.
//! - **Memory:** chunks are reference-counted ([`Bytes`]): a chunk held for several
//!   destinations is one allocation. At most [`CHANNEL_CHUNKS`] chunks wait per destination.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc};

use super::blobs::{body_stream, reopen};
use super::verify::{self, Expect, FailureSlot};
use crate::manifest::Descriptor;
use crate::registry::{RegistryClient, Repo};

/// Chunks that may wait for one destination.
pub(crate) const CHANNEL_CHUNKS: usize = 64;
/// How long a destination whose channel is full may hold the read back, per chunk, before
/// it is detached.
pub(crate) const STALL: Duration = Duration::from_secs(2);
/// How long the read waits, after the first destination joined, for the others to join or
/// give their ticket back.
pub(crate) const GATHER: Duration = Duration::from_secs(10);

/// What the read needs: where the blob is, and the copier's limits.
pub(crate) struct Source {
    pub client: RegistryClient,
    pub repo: Repo,
    pub blob: Descriptor,
    pub max_resumes: usize,
    /// The copier's blob transfer slots: the read takes one, as one transfer.
    pub slots: Arc<Semaphore>,
}

/// One destination's end of the tee.
#[derive(Default)]
struct Seat {
    /// Every chunk was sent, the last one after the digest matched.
    complete: AtomicBool,
    /// Why the destination's body ended early.
    reason: Mutex<Option<String>>,
}

impl Seat {
    fn end(&self, why: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        r.get_or_insert_with(|| why.to_string());
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "the shared read ended".into())
    }
}

struct Gather {
    /// Tickets joined or given back.
    arrived: usize,
    joined: Vec<Attached>,
    started: bool,
    source: Option<Source>,
}

/// One blob's tee.
pub(crate) struct Tee {
    expected: usize,
    gather: Mutex<Gather>,
    /// Destinations detached (behind by more than [`STALL`], or their upload ended).
    detached: AtomicU64,
    /// Source reads started (0 or 1).
    reads: AtomicU64,
    /// Destinations that received every byte.
    served: AtomicU64,
}

/// A destination's place at a [`Tee`]: join it once, or drop it to give it back.
pub(crate) struct Ticket {
    tee: Arc<Tee>,
    used: AtomicBool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish()
    }
}

/// A destination's upload body from the tee, and whether it received every byte.
pub(crate) struct Joined {
    seat: Arc<Seat>,
    rx: mpsc::Receiver<Bytes>,
}

impl Tee {
    /// A tee for `expected` tickets over `source`.
    pub(crate) fn new(expected: usize, source: Source) -> Arc<Tee> {
        Arc::new(Tee {
            expected,
            gather: Mutex::new(Gather {
                arrived: 0,
                joined: Vec::new(),
                started: false,
                source: Some(source),
            }),
            detached: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            served: AtomicU64::new(0),
        })
    }

    /// `n` tickets.
    pub(crate) fn tickets(self: &Arc<Tee>, n: usize) -> Vec<Ticket> {
        (0..n)
            .map(|_| Ticket {
                tee: self.clone(),
                used: AtomicBool::new(false),
            })
            .collect()
    }

    /// Destinations detached so far.
    pub(crate) fn detached(&self) -> u64 {
        self.detached.load(Ordering::Relaxed)
    }

    /// Destinations that received every byte of the read.
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Source reads started: 1 when any destination joined, else 0.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn arrive(self: &Arc<Tee>, join: bool) -> Option<Joined> {
        let mut g = self.gather.lock().unwrap_or_else(|p| p.into_inner());
        g.arrived += 1;
        let joined = if join && !g.started {
            let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
            let seat = Arc::new(Seat::default());
            g.joined.push((tx, seat.clone()));
            if g.joined.len() == 1 && g.arrived < self.expected {
                // Do not wait forever for a destination stuck before its upload.
                let tee = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(GATHER).await;
                    if let Some(tee) = tee.upgrade() {
                        let mut g = tee.gather.lock().unwrap_or_else(|p| p.into_inner());
                        tee.start(&mut g);
                    }
                });
            }
            Some(Joined { seat, rx })
        } else {
            None
        };
        if g.arrived >= self.expected {
            self.start(&mut g);
        }
        joined
    }

    /// Start the read for whoever joined (once).
    fn start(self: &Arc<Tee>, g: &mut Gather) {
        if g.started {
            return;
        }
        g.started = true;
        let seats = std::mem::take(&mut g.joined);
        let Some(source) = g.source.take() else {
            return;
        };
        if seats.is_empty() {
            return;
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(read(self.clone(), source, seats));
    }
}

impl Ticket {
    /// Join the tee: the body of this destination's upload. `None` when the read has
    /// started without it (or the ticket was used): the destination reads on its own.
    pub(crate) fn join(&self) -> Option<Joined> {
        if self.used.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.tee.arrive(true)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.used.swap(true, Ordering::AcqRel) {
            self.tee.arrive(false);
        }
    }
}

impl Joined {
    /// The upload body: the chunks, then an error if the read ended before the last one
    /// reached this destination (the upload is then never complete, so nothing is
    /// committed).
    fn body(
        rx: mpsc::Receiver<Bytes>,
        seat: Arc<Seat>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures::stream::unfold((rx, seat, false), |(mut rx, seat, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(chunk) => Some((Ok(chunk), (rx, seat, false))),
                None if seat.complete.load(Ordering::Acquire) => None,
                None => Some((Err(std::io::Error::other(seat.reason())), (rx, seat, true))),
            }
        })
    }

    /// Split into the body and what tells afterwards whether it was complete and why not.
    pub(crate) fn into_body(
        self,
    ) -> (
        impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        JoinedEnd,
    ) {
        let end = JoinedEnd {
            seat: self.seat.clone(),
        };
        (Joined::body(self.rx, self.seat), end)
    }
}

/// After the upload: did the body receive everything, and if not, why.
pub(crate) struct JoinedEnd {
    seat: Arc<Seat>,
}

impl JoinedEnd {
    /// Every byte arrived.
    pub(crate) fn complete(&self) -> bool {
        self.seat.complete.load(Ordering::Acquire)
    }

    /// Why the body ended early.
    pub(crate) fn reason(&self) -> String {
        self.seat.reason()
    }
}

/// A destination still receiving the read.
type Attached = (mpsc::Sender<Bytes>, Arc<Seat>);

/// The read: GET the blob once, verify it, send each chunk to every seat still attached.
async fn read(tee: Arc<Tee>, source: Source, seats: Vec<Attached>) {
    let mut live: Vec<Option<Attached>> = seats.into_iter().map(Some).collect();
    let fail_all = |live: &mut Vec<Option<Attached>>, why: &str| {
        for (_, seat) in live.iter_mut().filter_map(Option::take) {
            seat.end(why);
        }
    };
    let Ok(_slot) = source.slots.clone().acquire_owned().await else {
        fail_all(&mut live, "blob transfer slots closed");
        return;
    };
    let (client, repo, blob) = (&source.client, &source.repo, &source.blob);
    let first = match client
        .retrying(|| client.get_blob(repo, &blob.digest, 0, blob.size))
        .await
    {
        Ok(resp) => body_stream(resp, &repo.registry),
        Err(e) => {
            fail_all(&mut live, &format!("the shared read failed: {e}"));
            return;
        }
    };
    let failure = FailureSlot::default();
    let body = verify::verified(
        first,
        reopen(client.clone(), repo.clone(), blob.clone()),
        source.max_resumes,
        Expect {
            digest: blob.digest.clone(),
            size: blob.size,
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
        },
        failure.clone(),
    );
    send_all(&tee, body, failure, live).await;
}

/// Send every chunk of `body` to every seat still attached; at the end, mark the seats
/// that received everything complete.
async fn send_all(
    tee: &Tee,
    body: impl Stream<Item = Result<Bytes, std::io::Error>>,
    failure: FailureSlot,
    mut live: Vec<Option<Attached>>,
) {
    let mut body = std::pin::pin!(body);
    while let Some(item) = body.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                let why = failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .map_or_else(|| e.to_string(), |e| e.to_string());
                for (_, seat) in live.iter_mut().filter_map(Option::take) {
                    seat.end(&format!("the shared read failed: {why}"));
                }
                return;
            }
        };
        let mut full = Vec::new();
        for (i, slot) in live.iter_mut().enumerate() {
            let Some((tx, seat)) = slot else { continue };
            match tx.try_send(chunk.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => full.push(i),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    seat.end("its upload ended");
                    *slot = None;
                    tee.detached.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !full.is_empty() {
            let waits = full.iter().map(|&i| {
                let tx = live[i].as_ref().map(|(tx, _)| tx.clone());
                let chunk = chunk.clone();
                async move {
                    match tx {
                        Some(tx) => matches!(
                            tokio::time::timeout(STALL, tx.send(chunk)).await,
                            Ok(Ok(()))
                        ),
                        None => true,
                    }
                }
            });
            let sent = futures::future::join_all(waits).await;
            for (&i, ok) in full.iter().zip(sent) {
                if !ok && let Some((_, seat)) = live[i].take() {
                    seat.end(&format!(
                        "fell more than {} s behind the shared read",
                        STALL.as_secs()
                    ));
                    tee.detached.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if live.iter().all(Option::is_none) {
            return;
        }
    }
    for (_, seat) in live.iter().flatten() {
        seat.complete.store(true, Ordering::Release);
        tee.served.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare() -> Tee {
        Tee {
            expected: 0,
            gather: Mutex::new(Gather {
                arrived: 0,
                joined: Vec::new(),
                started: true,
                source: None,
            }),
            detached: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }

    #[tokio::test]
    async fn a_destination_that_stops_reading_is_detached_and_the_others_get_every_chunk() {
        let tee = bare();
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..(3 * CHANNEL_CHUNKS))
            .map(|i| Ok(Bytes::from(vec![i as u8; 1024])))
            .collect();
        let seat = || Arc::new(Seat::default());
        let (fast_tx, fast_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (slow_tx, slow_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (gone_tx, gone_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (fast, slow, gone) = (seat(), seat(), seat());
        drop(gone_rx);
        let reader = tokio::spawn(Joined::body(fast_rx, fast.clone()).collect::<Vec<_>>());
        send_all(
            &tee,
            futures::stream::iter(chunks),
            FailureSlot::default(),
            vec![
                Some((fast_tx, fast.clone())),
                Some((slow_tx, slow.clone())),
                Some((gone_tx, gone.clone())),
            ],
        )
        .await;
        let got = reader.await.unwrap();
        assert_eq!(
            got.len(),
            3 * CHANNEL_CHUNKS,
            "every chunk, then a clean end"
        );
        assert!(got.iter().all(Result::is_ok));
        assert!(fast.complete.load(Ordering::Acquire));
        assert!(!slow.complete.load(Ordering::Acquire));
        assert!(slow.reason().contains("behind"), "{}", slow.reason());
        assert!(gone.reason().contains("upload ended"), "{}", gone.reason());
        assert_eq!((tee.detached(), tee.served()), (2, 1));
        // The slow one's body ends with an error after what it was sent.
        let slow_items: Vec<_> = Joined::body(slow_rx, slow).collect().await;
        assert_eq!(slow_items.len(), CHANNEL_CHUNKS + 1);
        assert!(slow_items.last().unwrap().is_err());
    }

    #[tokio::test]
    async fn a_source_failure_ends_every_body_unfinished() {
        let tee = bare();
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let seat = Arc::new(Seat::default());
        let body = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("digest mismatch")),
        ]);
        send_all(
            &tee,
            body,
            FailureSlot::default(),
            vec![Some((tx, seat.clone()))],
        )
        .await;
        let items: Vec<_> = Joined::body(rx, seat.clone()).collect().await;
        assert_eq!(items.len(), 2);
        assert!(
            items[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("digest mismatch")
        );
        assert_eq!(tee.served(), 0);
    }

    #[tokio::test]
    async fn a_body_ends_with_an_error_unless_every_chunk_arrived() {
        let (tx, rx) = mpsc::channel(4);
        let seat = Arc::new(Seat::default());
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        seat.end("fell more than 2 s behind the shared read");
        drop(tx);
        let items: Vec<_> = Joined::body(rx, seat).collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().as_ref(), b"ab");
        let e = items[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("behind"), "{e}");

        let (tx, rx) = mpsc::channel(4);
        let seat = Arc::new(Seat::default());
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        seat.complete.store(true, Ordering::Release);
        drop(tx);
        let items: Vec<_> = Joined::body(rx, seat).collect().await;
        assert_eq!(items.len(), 1, "a complete body ends cleanly");
    }
}
