//! WAN mode: the proxy plays a cross-region link ([`Proxy::set_wan`](super::Proxy::set_wan)).
//!
//! - **Delay.** Every request waits [`WanMode::delay`] once before its answer's headers go
//!   out (one round trip; 40 ms by default, i.e. between two AWS regions), whatever the
//!   proxy answers (forwarded, injected, ECR mode).
//! - **Bandwidth.** Body bytes go through token buckets both ways (request bodies
//!   upstream, response bodies downstream): one per connection
//!   ([`WanMode::per_connection_bps`]) and one shared by the whole proxy
//!   ([`WanMode::per_proxy_bps`]). A bucket holds at most its burst (50 ms of its rate,
//!   at least 64 KiB) and refills at its rate; a chunk larger than the burst is sent in
//!   burst-sized pieces.
//!
//! Everything is counted on the proxy's own clock ([`WanStats`]): delayed requests, the
//! delay slept, bytes throttled each way, and per bucket the bytes granted against
//! `rate × t + burst`, so tests assert behaviour and counts, not wall-clock times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::lock;

/// The cross-region round trip the WAN mode adds by default.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(40);

/// A bucket's burst: this much of its rate …
const BURST_TIME: Duration = Duration::from_millis(50);
/// … but at least this many bytes.
const MIN_BURST: u64 = 64 * 1024;

/// How the proxy plays a WAN link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WanMode {
    /// Added once per request, before the answer's headers.
    pub delay: Duration,
    /// Bandwidth cap of each client connection, in bits per second (`None`: no cap).
    pub per_connection_bps: Option<u64>,
    /// Bandwidth cap of the whole proxy, all connections and both directions together, in
    /// bits per second (`None`: no cap).
    pub per_proxy_bps: Option<u64>,
}

impl Default for WanMode {
    /// 40 ms per request, no bandwidth cap.
    fn default() -> Self {
        Self {
            delay: DEFAULT_DELAY,
            per_connection_bps: None,
            per_proxy_bps: None,
        }
    }
}

impl WanMode {
    /// `delay` per request and the same cap of `mbit` Mbit/s per connection and per proxy.
    pub fn capped(delay: Duration, mbit: u64) -> Self {
        let bps = Some(mbit * 1_000_000);
        Self {
            delay,
            per_connection_bps: bps,
            per_proxy_bps: bps,
        }
    }
}

/// What one token bucket granted, on its own clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketStats {
    /// Refill rate, bytes per second.
    pub rate: u64,
    /// Capacity (and initial fill), bytes.
    pub burst: u64,
    /// Bytes granted so far.
    pub granted: u64,
    /// Time since the bucket was created, when these stats were taken.
    pub elapsed: Duration,
    /// Grants that had to wait for tokens.
    pub waits: u64,
    /// Grants after which `granted` exceeded `rate × elapsed + burst` (always 0 unless
    /// the bucket is broken).
    pub over_limit: u64,
}

impl BucketStats {
    /// The most the bucket may have granted by [`BucketStats::elapsed`]: `rate × t + burst`.
    pub fn limit(&self) -> u64 {
        (self.rate as f64 * self.elapsed.as_secs_f64()) as u64 + self.burst
    }
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
    granted: u64,
    waits: u64,
    over_limit: u64,
}

/// A token bucket over body bytes.
#[derive(Debug)]
pub(super) struct TokenBucket {
    bps: u64,
    rate: u64,
    burst: u64,
    created: Instant,
    state: Mutex<BucketState>,
}

impl TokenBucket {
    /// A full bucket refilling at `bps` bits per second.
    pub(super) fn new(bps: u64) -> Self {
        let rate = (bps / 8).max(1);
        let burst = ((rate as f64 * BURST_TIME.as_secs_f64()) as u64).max(MIN_BURST);
        let now = Instant::now();
        Self {
            bps,
            rate,
            burst,
            created: now,
            state: Mutex::new(BucketState {
                tokens: burst as f64,
                last: now,
                granted: 0,
                waits: 0,
                over_limit: 0,
            }),
        }
    }

    /// Waits until `n` bytes (at most the burst) may pass, and takes them.
    async fn acquire(&self, n: u64) {
        let n = n.min(self.burst);
        let mut waited = false;
        loop {
            let wait = {
                let mut st = lock(&self.state);
                let now = Instant::now();
                let refill = now.duration_since(st.last).as_secs_f64() * self.rate as f64;
                st.tokens = (st.tokens + refill).min(self.burst as f64);
                st.last = now;
                if st.tokens >= n as f64 {
                    st.tokens -= n as f64;
                    st.granted += n;
                    if waited {
                        st.waits += 1;
                    }
                    let limit = self.rate as f64 * now.duration_since(self.created).as_secs_f64()
                        + self.burst as f64;
                    if st.granted as f64 > limit {
                        st.over_limit += 1;
                    }
                    return;
                }
                Duration::from_secs_f64((n as f64 - st.tokens) / self.rate as f64)
            };
            waited = true;
            tokio::time::sleep(wait).await;
        }
    }

    pub(super) fn stats(&self) -> BucketStats {
        let st = lock(&self.state);
        BucketStats {
            rate: self.rate,
            burst: self.burst,
            granted: st.granted,
            elapsed: self.created.elapsed(),
            waits: st.waits,
            over_limit: st.over_limit,
        }
    }
}

/// A bucket slot that follows the mode: recreated when the cap changes.
#[derive(Debug, Default)]
pub(super) struct BucketSlot(Mutex<Option<Arc<TokenBucket>>>);

impl BucketSlot {
    /// The bucket for a cap of `bps` (none without a cap).
    pub(super) fn get(&self, bps: Option<u64>) -> Option<Arc<TokenBucket>> {
        let bps = bps?;
        let mut slot = lock(&self.0);
        match slot.as_ref() {
            Some(bucket) if bucket.bps == bps => Some(bucket.clone()),
            _ => {
                let bucket = Arc::new(TokenBucket::new(bps));
                *slot = Some(bucket.clone());
                Some(bucket)
            }
        }
    }

    fn stats(&self) -> Option<BucketStats> {
        lock(&self.0).as_ref().map(|b| b.stats())
    }
}

/// What the WAN mode did, since the proxy started or the WAN mode was last set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WanStats {
    /// Requests delayed.
    pub delayed_requests: u64,
    /// Total delay slept, on the proxy's clock.
    pub delayed: Duration,
    /// Request-body bytes passed upstream through the buckets.
    pub bytes_up: u64,
    /// Response-body bytes passed downstream through the buckets.
    pub bytes_down: u64,
    /// Connections that got a bucket of their own.
    pub connection_buckets: u64,
    /// Every connection bucket, in the order the connections first sent a body.
    pub connections: Vec<BucketStats>,
    /// The proxy's shared bucket, if it is capped.
    pub proxy_bucket: Option<BucketStats>,
}

/// The WAN mode's state inside the proxy.
#[derive(Debug, Default)]
pub(super) struct WanState {
    mode: Mutex<Option<WanMode>>,
    proxy_bucket: BucketSlot,
    delayed_requests: AtomicU64,
    delayed_nanos: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    connection_buckets: AtomicU64,
    /// Every connection bucket, kept for its stats (a few hundred bytes each).
    connections: Mutex<Vec<Arc<TokenBucket>>>,
    /// Every request delayed, with when it came and when its answer went out.
    exchanges: Mutex<Vec<WanExchange>>,
}

/// One request through the WAN mode: when it reached the proxy and when its answer's
/// headers left it (after the delay), on the process's monotonic clock, so the exchanges
/// of several proxies in one process compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanExchange {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// When the request came.
    pub sent: Instant,
    /// When its answer went out.
    pub answered: Instant,
}

/// Each exchange with its place on the longest chain of round trips that leads to it:
/// 1 for a request sent before any answer came, else one more than the deepest exchange
/// answered before it was sent. With a delay much longer than the local work, requests
/// sent together land on one step, so the last request's step counts the sequential
/// round trips of the work, as an order of events, not a time. Sorted by `sent`.
pub fn round_trips(exchanges: &[WanExchange]) -> Vec<(WanExchange, usize)> {
    let mut sorted = exchanges.to_vec();
    sorted.sort_by_key(|e| e.sent);
    let mut out: Vec<(WanExchange, usize)> = Vec::with_capacity(sorted.len());
    for e in sorted {
        let step = 1 + out
            .iter()
            .filter(|(q, _)| q.answered <= e.sent)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        out.push((e, step));
    }
    out
}

impl super::Proxy {
    /// Every request the WAN mode delayed since it was last set ([`round_trips`]).
    pub fn wan_exchanges(&self) -> Vec<WanExchange> {
        lock(&self.shared.wan.exchanges).clone()
    }
}

impl WanState {
    /// Sets (or with `None` clears) the mode and starts the counts again.
    pub(super) fn set(&self, mode: Option<WanMode>) {
        *lock(&self.mode) = mode;
        self.delayed_requests.store(0, Ordering::SeqCst);
        self.delayed_nanos.store(0, Ordering::SeqCst);
        self.bytes_up.store(0, Ordering::SeqCst);
        self.bytes_down.store(0, Ordering::SeqCst);
        self.connection_buckets.store(0, Ordering::SeqCst);
        lock(&self.connections).clear();
        lock(&self.exchanges).clear();
        *lock(&self.proxy_bucket.0) = None;
    }

    pub(super) fn mode(&self) -> Option<WanMode> {
        *lock(&self.mode)
    }

    pub(super) fn stats(&self) -> WanStats {
        WanStats {
            delayed_requests: self.delayed_requests.load(Ordering::SeqCst),
            delayed: Duration::from_nanos(self.delayed_nanos.load(Ordering::SeqCst)),
            bytes_up: self.bytes_up.load(Ordering::SeqCst),
            bytes_down: self.bytes_down.load(Ordering::SeqCst),
            connection_buckets: self.connection_buckets.load(Ordering::SeqCst),
            connections: lock(&self.connections).iter().map(|b| b.stats()).collect(),
            proxy_bucket: self.proxy_bucket.stats(),
        }
    }

    /// The buckets a body on connection `conn` goes through.
    fn buckets(&self, mode: &WanMode, conn: &BucketSlot) -> Vec<Arc<TokenBucket>> {
        let mut buckets = Vec::new();
        if let Some(bps) = mode.per_connection_bps {
            let before = lock(&conn.0).clone();
            if let Some(bucket) = conn.get(Some(bps)) {
                let fresh = before.as_ref().is_none_or(|b| !Arc::ptr_eq(b, &bucket));
                if fresh {
                    self.connection_buckets.fetch_add(1, Ordering::SeqCst);
                    lock(&self.connections).push(bucket.clone());
                }
                buckets.push(bucket);
            }
        }
        if let Some(bucket) = self.proxy_bucket.get(mode.per_proxy_bps) {
            buckets.push(bucket);
        }
        buckets
    }
}

/// Runs `answer` for `request` as the WAN mode says: the request body throttled on its
/// way upstream, the delay before the answer's headers, the response body throttled on
/// its way down. Without a WAN mode, `answer` runs as it is.
pub(super) async fn around<F, Fut>(
    state: Arc<super::Shared>,
    conn: &BucketSlot,
    request: Request,
    answer: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some(mode) = state.wan.mode() else {
        return answer(request).await;
    };
    let sent = Instant::now();
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_string(),
    );
    let buckets = state.wan.buckets(&mode, conn);
    let request = if buckets.is_empty() {
        request
    } else {
        let (parts, body) = request.into_parts();
        let body = throttle(state.clone(), buckets.clone(), body, Direction::Up);
        Request::from_parts(parts, body)
    };
    let response = answer(request).await;
    let started = Instant::now();
    tokio::time::sleep(mode.delay).await;
    let slept = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    state.wan.delayed_requests.fetch_add(1, Ordering::SeqCst);
    state.wan.delayed_nanos.fetch_add(slept, Ordering::SeqCst);
    lock(&state.wan.exchanges).push(WanExchange {
        method,
        path,
        sent,
        answered: Instant::now(),
    });
    if buckets.is_empty() {
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, throttle(state, buckets, body, Direction::Down))
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// `body`, each chunk let through `buckets` in pieces of at most the smallest burst.
fn throttle(
    state: Arc<super::Shared>,
    buckets: Vec<Arc<TokenBucket>>,
    body: Body,
    direction: Direction,
) -> Body {
    let piece = buckets.iter().map(|b| b.burst).min().unwrap_or(MIN_BURST) as usize;
    let stream = body.into_data_stream().flat_map(move |chunk| {
        let pieces: Vec<Result<Bytes, axum::Error>> = match chunk {
            Ok(bytes) => (0..bytes.len())
                .step_by(piece.max(1))
                .map(|at| Ok(bytes.slice(at..(at + piece).min(bytes.len()))))
                .collect(),
            Err(err) => vec![Err(err)],
        };
        futures::stream::iter(pieces)
    });
    Body::from_stream(paced(state, buckets, stream, direction))
}

fn paced<S>(
    state: Arc<super::Shared>,
    buckets: Vec<Arc<TokenBucket>>,
    stream: S,
    direction: Direction,
) -> impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Send + 'static,
{
    stream.then(move |chunk| {
        let buckets = buckets.clone();
        let state = state.clone();
        async move {
            if let Ok(bytes) = &chunk {
                let n = bytes.len() as u64;
                for bucket in &buckets {
                    bucket.acquire(n).await;
                }
                let counter = match direction {
                    Direction::Up => &state.wan.bytes_up,
                    Direction::Down => &state.wan.bytes_down,
                };
                counter.fetch_add(n, Ordering::SeqCst);
            }
            chunk
        }
    })
}
