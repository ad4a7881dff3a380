//! The proxy's "limits mode": a registry that tries to make its client loop, wait or hold
//! memory without bound ([`super::Proxy::set_limits_mode`], [`LimitsMode`]).
//!
//! - **Listings** (`tags/list`, `_catalog`, referrers, [`ListingRule`]): pages that link
//!   to themselves, endless pagination (every page links to a new one), a raw (malformed,
//!   foreign, non-UTF-8) `Link` header, or a huge body (announced or chunked). Answered by
//!   the proxy itself; the upstream never sees them.
//! - **Slow bodies** ([`SlowBody`]): headers at once, then one byte per interval, never
//!   finishing (slow loris): each read arrives well inside a read timeout.
//! - **No mounts**: a cross-repository mount POST is forwarded without its `mount` and
//!   `from` parameters, so the upstream opens a plain upload session (what a registry
//!   without mount support does) and the client has to stream the blob.
//! - **Manifest GET concurrency**: each manifest GET can be held back a while, and the
//!   proxy counts how many are in flight at once (arrival to end of body) and the peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

use super::ecr_mode::Flow;
use super::forward::{BodyPlan, plain, relay, send_upstream};
use super::{PathKind, Proxy, RequestRecord, Shared, lock};

/// What a hostile listing answers.
#[derive(Debug, Clone)]
pub enum Listing {
    /// A valid page whose `Link` points at the very same URL.
    SelfLink,
    /// A valid page whose `Link` points at a new page (`last=p<k+1>`), forever.
    Endless,
    /// A valid page with this raw `Link` header value (any bytes but CR, LF and NUL).
    Link(Vec<u8>),
    /// A body of this many bytes (`{"tags":["aaaa…`), with `Content-Length` when
    /// `announced`, chunked otherwise.
    Huge {
        /// Body size.
        bytes: u64,
        /// Send `Content-Length`.
        announced: bool,
    },
}

/// Answer GETs of one listing endpoint as `listing` says.
#[derive(Debug, Clone)]
pub struct ListingRule {
    /// [`PathKind::Tags`], [`PathKind::Catalog`] or [`PathKind::Referrers`].
    pub kind: PathKind,
    /// The answer.
    pub listing: Listing,
}

/// Dribble GET bodies of one endpoint kind: `Content-Length: length`, then one byte per
/// `every`, never finishing.
#[derive(Debug, Clone)]
pub struct SlowBody {
    /// [`PathKind::Manifest`], [`PathKind::Blob`], a listing...
    pub kind: PathKind,
    /// Announced length.
    pub length: u64,
    /// Delay before each byte.
    pub every: Duration,
}

/// Forward GET bodies of one endpoint kind whole and correct, but `chunk` bytes per
/// `every` (a slow, steady registry).
#[derive(Debug, Clone)]
pub struct Throttle {
    /// [`PathKind::Blob`], ...
    pub kind: PathKind,
    /// Bytes per step.
    pub chunk: usize,
    /// Delay before each step.
    pub every: Duration,
}

/// Which hostile behaviours the proxy plays.
#[derive(Debug, Clone, Default)]
pub struct LimitsMode {
    /// Hostile listings.
    pub listings: Vec<ListingRule>,
    /// A slow-loris body.
    pub slow: Option<SlowBody>,
    /// A slow but steady body.
    pub throttle: Option<Throttle>,
    /// Forward mount POSTs as plain upload POSTs.
    pub refuse_mounts: bool,
    /// Hold each manifest GET this long before forwarding it.
    pub manifest_delay: Option<Duration>,
}

/// Limits mode state: the mode and its counters.
#[derive(Debug, Default)]
pub(super) struct LimitsState {
    mode: std::sync::Mutex<Option<LimitsMode>>,
    manifest_gets: Arc<InFlight>,
    /// Bytes of huge and slow bodies the client has taken so far.
    served: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Counts one request in flight until dropped.
struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    fn new(counter: &Arc<InFlight>) -> Self {
        let now = counter.now.fetch_add(1, Ordering::SeqCst) + 1;
        counter.peak.fetch_max(now, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Plays the hostile behaviours of `mode` (replacing any previous limits mode).
    pub fn set_limits_mode(&self, mode: LimitsMode) {
        *lock(&self.shared.limits.mode) = Some(mode);
    }

    /// The most manifest GETs in flight at once (arrival to the end of the body) since the
    /// limits mode started.
    pub fn peak_manifest_gets(&self) -> usize {
        self.shared.limits.manifest_gets.peak.load(Ordering::SeqCst)
    }

    /// Bytes of huge listing bodies and slow bodies the client has read so far.
    pub fn hostile_bytes_served(&self) -> u64 {
        self.shared.limits.served.load(Ordering::SeqCst)
    }
}

/// Looks at a request in limits mode: answers it, or lets it go on unchanged.
pub(super) async fn apply(shared: &Shared, record: &mut RequestRecord, request: Request) -> Flow {
    let Some(mode) = lock(&shared.limits.mode).clone() else {
        return Flow::Continue(request);
    };
    let is_get = request.method() == Method::GET;
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    if is_get && let Some(rule) = mode.listings.iter().find(|r| r.kind == record.kind) {
        return answer(
            record,
            "limits-listing",
            listing(shared, rule, &path, query),
        );
    }
    if is_get && let Some(slow) = mode.slow.as_ref().filter(|s| s.kind == record.kind) {
        return answer(record, "limits-slow", slow_body(shared, slow));
    }
    if is_get && let Some(t) = mode.throttle.as_ref().filter(|t| t.kind == record.kind) {
        record.fault = Some("limits-throttle");
        let pq = request
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
        let response = forward(shared, record, request, &pq).await;
        return Flow::Answer(throttled(response, t.clone()));
    }
    let mount = request.method() == Method::POST
        && record.kind == PathKind::BlobUpload
        && query.as_deref().is_some_and(|q| q.contains("mount="));
    if mount && mode.refuse_mounts {
        record.fault = Some("limits-no-mount");
        return Flow::Answer(forward(shared, record, request, &path).await);
    }
    if is_get && record.kind == PathKind::Manifest && mode.manifest_delay.is_some() {
        let guard = InFlightGuard::new(&shared.limits.manifest_gets);
        if let Some(delay) = mode.manifest_delay {
            tokio::time::sleep(delay).await;
        }
        let pq = request
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
        let response = forward(shared, record, request, &pq).await;
        let (parts, body) = response.into_parts();
        let stream = body.into_data_stream().map(move |chunk| {
            let _held = &guard;
            chunk
        });
        return Flow::Answer(Response::from_parts(parts, Body::from_stream(stream)));
    }
    Flow::Continue(request)
}

fn answer(record: &mut RequestRecord, label: &'static str, response: Response) -> Flow {
    record.status = response.status().as_u16();
    record.fault = Some(label);
    Flow::Answer(response)
}

async fn forward(
    shared: &Shared,
    record: &mut RequestRecord,
    request: Request,
    path_and_query: &str,
) -> Response {
    match send_upstream(shared, request, path_and_query).await {
        Ok(upstream) => {
            record.status = upstream.status().as_u16();
            relay(shared, upstream, BodyPlan::default())
        }
        Err(err) => {
            record.status = 502;
            plain(
                StatusCode::BAD_GATEWAY,
                format!("proxy: upstream failed: {err}"),
            )
        }
    }
}

/// The page number a listing URL asks for (`last=p<k>`), 0 for the first.
fn page_of(query: Option<&str>) -> u64 {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("last=p"))
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

fn listing(shared: &Shared, rule: &ListingRule, path: &str, query: Option<String>) -> Response {
    let page = page_of(query.as_deref());
    let (content_type, body) = match rule.kind {
        PathKind::Referrers => (
            "application/vnd.oci.image.index.v1+json",
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
                .to_string(),
        ),
        PathKind::Catalog => (
            "application/json",
            format!(r#"{{"repositories":["r{page}"]}}"#),
        ),
        _ => ("application/json", format!(r#"{{"tags":["p{page}"]}}"#)),
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type);
    let link = match &rule.listing {
        Listing::SelfLink => Some(
            match &query {
                Some(q) => format!("<{path}?{q}>; rel=\"next\""),
                None => format!("<{path}>; rel=\"next\""),
            }
            .into_bytes(),
        ),
        Listing::Endless => {
            Some(format!("<{path}?n=1000&last=p{}>; rel=\"next\"", page + 1).into_bytes())
        }
        Listing::Link(raw) => Some(raw.clone()),
        Listing::Huge { bytes, announced } => {
            if *announced {
                response = response.header(header::CONTENT_LENGTH, bytes.to_string());
            }
            return response
                .body(huge_body(shared, *bytes))
                .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()));
        }
    };
    if let Some(link) = link {
        match HeaderValue::from_bytes(&link) {
            Ok(value) => response = response.header(header::LINK, value),
            Err(err) => return plain(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        }
    }
    response
        .body(Body::from(body))
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
}

/// `{"tags":["aaaa…` up to `total` bytes, in 64 KiB chunks, counting what is taken.
fn huge_body(shared: &Shared, total: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let served = shared.limits.served.clone();
    let head = Bytes::from_static(br#"{"tags":[""#);
    let filler = Bytes::from(vec![b'a'; CHUNK as usize]);
    let stream = futures::stream::unfold(0u64, move |sent| {
        let (head, filler, served) = (head.clone(), filler.clone(), served.clone());
        async move {
            if sent >= total {
                return None;
            }
            let mut chunk = if sent == 0 { head } else { filler };
            let left = total - sent;
            if chunk.len() as u64 > left {
                chunk = chunk.slice(..usize::try_from(left).unwrap_or(0));
            }
            served.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            Some((
                Ok::<_, std::io::Error>(chunk.clone()),
                sent + chunk.len() as u64,
            ))
        }
    });
    Body::from_stream(stream)
}

fn slow_body(shared: &Shared, slow: &SlowBody) -> Response {
    let served = shared.limits.served.clone();
    let every = slow.every;
    let content_type = match slow.kind {
        PathKind::Manifest => "application/vnd.oci.image.manifest.v1+json",
        PathKind::Blob => "application/octet-stream",
        _ => "application/json",
    };
    let stream = futures::stream::unfold((), move |()| {
        let served = served.clone();
        async move {
            tokio::time::sleep(every).await;
            served.fetch_add(1, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, slow.length.to_string())
        .body(Body::from_stream(stream))
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
}

/// `response` with its body re-cut into `t.chunk`-byte pieces, one per `t.every`.
fn throttled(response: Response, t: Throttle) -> Response {
    let (parts, body) = response.into_parts();
    let pieces = body.into_data_stream().flat_map(move |chunk| {
        let pieces: Vec<Result<Bytes, axum::Error>> = match chunk {
            Ok(bytes) => (0..bytes.len())
                .step_by(t.chunk.max(1))
                .map(|at| Ok(bytes.slice(at..(at + t.chunk.max(1)).min(bytes.len()))))
                .collect(),
            Err(err) => vec![Err(err)],
        };
        futures::stream::iter(pieces)
    });
    let every = t.every;
    let paced = pieces.then(move |piece| async move {
        tokio::time::sleep(every).await;
        piece
    });
    Response::from_parts(parts, Body::from_stream(paced))
}
