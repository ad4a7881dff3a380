//! The proxy's request handler: ECR behaviours, then faults, then streaming forwarding.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use super::chaos::{FaultKind, attempt_key};
use super::conn::ConnHandle;
use super::ecr_mode::{self, Flow};
use super::{PathKind, RequestRecord, Shared, hostile};

/// How long a body that is about to break waits, so the bytes before the break are
/// flushed to the client first.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// Headers that belong to one connection and are never forwarded.
pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
) -> Response {
    let slot = conn.wan.clone();
    super::wan::around(shared.clone(), &slot, request, |request| {
        answer(shared, conn, request)
    })
    .await
}

/// Everything but the WAN mode ([`super::wan::around`]).
async fn answer(shared: Arc<Shared>, conn: ConnHandle, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    let kind = PathKind::classify(&path);
    let range = header_text(request.headers(), header::RANGE);
    let authorization = request.headers().contains_key(header::AUTHORIZATION);
    let authorization_value = header_text(request.headers(), header::AUTHORIZATION);
    let amz_target = header_text(request.headers(), HeaderName::from_static("x-amz-target"));
    let key = attempt_key(method.as_str(), &path, query.as_deref(), range.as_deref());
    let attempt = shared.next_attempt(&key);
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path_and_query.clone(),
        kind,
        range,
        authorization,
        authorization_value,
        amz_target,
        status: 0,
        fault: None,
        key,
        mid_body: false,
        at: shared.started.elapsed(),
    };

    let mut request = request;
    if let Some(mode) = shared.ecr_mode() {
        match ecr_mode::apply(&shared, &mode, &mut record, request).await {
            Flow::Answer(response) => {
                shared.record(record);
                return response;
            }
            Flow::Continue(r) => request = r,
        }
    }
    match hostile::apply(&shared, &mut record, request).await {
        Flow::Answer(response) => {
            shared.record(record);
            return response;
        }
        Flow::Continue(r) => request = r,
    }

    if let Some(canned) = shared.canned(&method, &path) {
        record.status = canned.status;
        record.fault = Some("canned");
        shared.record(record);
        return canned.response();
    }

    match super::limits::apply(&shared, &mut record, request).await {
        Flow::Answer(response) => {
            shared.record(record);
            return response;
        }
        Flow::Continue(r) => request = r,
    }

    if let Some(rule) = shared.take_inject(&method, kind) {
        record.status = rule.status;
        record.fault = Some("inject");
        shared.record(record);
        return injected(rule.status, rule.retry_after);
    }

    let fault = shared.decide(&record.key, kind, attempt);
    if let Some(fault) = fault {
        record.fault = Some(fault.label());
    }
    let mut after = None;
    match fault {
        Some(FaultKind::Slow) => tokio::time::sleep(shared.slow_delay()).await,
        Some(
            k @ (FaultKind::Status500
            | FaultKind::Status502
            | FaultKind::Status503
            | FaultKind::Throttle),
        ) => {
            // Read the request body first, so the client gets the answer and not a
            // broken pipe while it is still sending.
            drain(request.into_body()).await;
            let (status, retry_after) = match k {
                FaultKind::Status500 => (500, None),
                FaultKind::Status502 => (502, None),
                FaultKind::Status503 => (503, None),
                _ => (429, Some(shared.retry_after_secs())),
            };
            record.status = status;
            shared.record(record);
            return injected(status, retry_after);
        }
        Some(FaultKind::Reset) if has_request_body(request.headers()) => {
            // Mid-way through the request body: nothing is forwarded.
            read_part(request).await;
            conn.reset();
            shared.record(record);
            return plain(StatusCode::BAD_GATEWAY, "proxy: reset".into());
        }
        Some(k @ (FaultKind::Reset | FaultKind::Truncate)) => after = Some(k),
        None => {}
    }

    let is_blob_get = method == axum::http::Method::GET && kind == PathKind::Blob;
    if is_blob_get && shared.redirect_blobs() {
        record.status = 307;
        record.fault = record.fault.or(Some("redirect"));
        shared.record(record);
        break_before_headers(&conn, after);
        return redirect(&shared, &path);
    }
    let cut = if is_blob_get {
        shared.take_cut(&path)
    } else {
        None
    };
    let corrupt = is_blob_get && shared.corrupts(&path);

    let upstream = match send_upstream(&shared, request, &path_and_query).await {
        Ok(upstream) => upstream,
        Err(err) => {
            record.status = 502;
            shared.record(record);
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("proxy: upstream failed: {err}"),
            );
        }
    };
    let status = upstream.status();
    record.status = status.as_u16();
    let mut plan = BodyPlan::default();
    if let Some(limit) = cut.filter(|_| status.is_success()) {
        record.fault = Some("cut");
        plan.stop = Some((limit, Stop::Cut));
    }
    if corrupt && status.is_success() {
        record.fault = Some("corrupt");
        plan.flip_at = flip_offset(upstream.headers());
    }
    if let Some(k) = after {
        let has_body = method != axum::http::Method::HEAD
            && status != StatusCode::NO_CONTENT
            && status != StatusCode::NOT_MODIFIED
            && upstream.content_length() != Some(0);
        if has_body {
            let at = upstream.content_length().map_or(1, |len| len / 2);
            let stop = match k {
                FaultKind::Reset => Stop::Reset(conn.clone()),
                _ => Stop::Close,
            };
            plan.stop = Some((at, stop));
            record.mid_body = true;
        } else {
            break_before_headers(&conn, after);
        }
    }
    shared.record(record);
    relay(&shared, upstream, plan)
}

/// Makes the connection fail before the response headers go out.
fn break_before_headers(conn: &ConnHandle, fault: Option<FaultKind>) {
    match fault {
        Some(FaultKind::Reset) => conn.reset(),
        Some(FaultKind::Truncate) => conn.close(),
        _ => {}
    }
}

fn has_request_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || header_text(headers, header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Reads and drops a request body (bounded).
pub(super) async fn drain(body: Body) {
    let _ = axum::body::to_bytes(body, 256 * 1024 * 1024).await;
}

/// Reads about half of a request body (at least one chunk).
async fn read_part(request: Request) {
    let half = header_text(request.headers(), header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(1, |n| (n / 2).max(1));
    let mut stream = request.into_body().into_data_stream();
    let mut read = 0u64;
    while read < half {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => break,
        }
    }
}

/// The absolute offset of the byte to flip in a blob body: the middle of the blob.
fn flip_offset(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let total = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('/').next())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| {
            headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        })?;
    (total > 0).then_some(total / 2)
}

/// Forwards the request to the upstream registry, streaming its body.
pub(super) async fn send_upstream(
    shared: &Shared,
    request: Request,
    path_and_query: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let url = format!("{}{path_and_query}", shared.upstream);
    send_to(shared, request, &url).await
}

/// Forwards the request to `url`, streaming its body.
pub(super) async fn send_to(
    shared: &Shared,
    request: Request,
    url: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let mut builder = shared.client.request(parts.method.clone(), url);
    for (name, value) in parts.headers.iter() {
        if !is_hop_by_hop(name) {
            builder = builder.header(name, value);
        }
    }
    let has_body = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if has_body {
        builder = builder.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    builder.send().await
}

/// What to do to a relayed body.
#[derive(Default)]
pub(super) struct BodyPlan {
    /// Flip the byte at this absolute blob offset.
    flip_at: Option<u64>,
    /// Stop after this many bytes of this response, and how.
    stop: Option<(u64, Stop)>,
}

/// How a body stops early.
pub(super) enum Stop {
    /// Fail the stream at once (the server aborts the connection).
    Cut,
    /// Flush, then fail the stream: the connection is closed (FIN).
    Close,
    /// Flush, then reset the connection (RST).
    Reset(ConnHandle),
}

/// Turns the upstream response into ours: same status and headers (with `Location`
/// pointed back at the proxy), streamed body, changed as `plan` says.
pub(super) fn relay(shared: &Shared, upstream: reqwest::Response, plan: BodyPlan) -> Response {
    relay_with_status(shared, upstream, plan, None)
}

/// [`relay`], answering `status` instead of the upstream's.
pub(super) fn relay_with_status(
    shared: &Shared,
    upstream: reqwest::Response,
    plan: BodyPlan,
    status: Option<u16>,
) -> Response {
    let mut response =
        Response::builder().status(status.unwrap_or_else(|| upstream.status().as_u16()));
    for (name, value) in upstream.headers() {
        if is_hop_by_hop(name) {
            continue;
        }
        if name == header::LOCATION {
            response = response.header(name, rewrite_location(shared, value));
        } else {
            response = response.header(name, value);
        }
    }
    let start = upstream
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let stream = upstream.bytes_stream().map_err(std::io::Error::other);
    let body = if plan.flip_at.is_none() && plan.stop.is_none() {
        Body::from_stream(stream)
    } else {
        Body::from_stream(shape(stream, start, plan))
    };
    response
        .body(body)
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {err}")))
}

pub(super) fn rewrite_location(shared: &Shared, value: &HeaderValue) -> HeaderValue {
    match value.to_str() {
        Ok(text) if text.starts_with(&shared.upstream) => {
            let rewritten = format!("{}{}", shared.public, &text[shared.upstream.len()..]);
            HeaderValue::from_str(&rewritten).unwrap_or_else(|_| value.clone())
        }
        _ => value.clone(),
    }
}

struct Shaping<S> {
    inner: S,
    /// Absolute offset of the next byte.
    offset: u64,
    /// Bytes of this response sent so far.
    sent: u64,
    plan: BodyPlan,
    /// The stop point was reached with more to come: fail on the next poll.
    stopping: bool,
    done: bool,
}

/// Passes the body through, flipping a byte and stopping early as `plan` says. Stopping
/// fails the stream, which makes the server abort the connection mid-body (the client
/// sees fewer bytes than `Content-Length`); a body no longer than the stop point passes
/// whole.
fn shape<S>(stream: S, start: u64, plan: BodyPlan) -> impl Stream<Item = std::io::Result<Bytes>>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    let state = Shaping {
        inner: Box::pin(stream),
        offset: start,
        sent: 0,
        plan,
        stopping: false,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if st.stopping {
            st.done = true;
            match &st.plan.stop {
                Some((_, Stop::Close)) => tokio::time::sleep(FLUSH_PAUSE).await,
                Some((_, Stop::Reset(conn))) => {
                    tokio::time::sleep(FLUSH_PAUSE).await;
                    conn.reset();
                }
                _ => {}
            }
            return Some((Err(std::io::Error::other("proxy: body cut on purpose")), st));
        }
        match st.inner.next().await {
            None => None,
            Some(Err(err)) => {
                st.done = true;
                Some((Err(err), st))
            }
            Some(Ok(mut chunk)) => {
                if let Some((limit, _)) = &st.plan.stop {
                    let room = limit.saturating_sub(st.sent);
                    if chunk.len() as u64 > room {
                        chunk = chunk.slice(..usize::try_from(room).unwrap_or(chunk.len()));
                        st.stopping = true;
                    }
                }
                let len = chunk.len() as u64;
                if let Some(at) = st.plan.flip_at
                    && at >= st.offset
                    && at < st.offset + len
                {
                    let mut bytes = chunk.to_vec();
                    let i = usize::try_from(at - st.offset).unwrap_or(0);
                    bytes[i] ^= 0xff;
                    chunk = Bytes::from(bytes);
                }
                st.offset += len;
                st.sent += len;
                if chunk.is_empty() && st.stopping {
                    // Nothing left to send before the stop: fail now.
                    st.done = true;
                    return Some((Err(std::io::Error::other("proxy: body cut on purpose")), st));
                }
                Some((Ok(chunk), st))
            }
        }
    })
}

fn redirect(shared: &Shared, path: &str) -> Response {
    // /v2/<name>/blobs/<digest> -> <objstore>/<name>/blobs/<digest>?X-Amz-…, like ECR's
    // redirect to a pre-signed S3 URL.
    let object = path.strip_prefix("/v2").unwrap_or(path);
    let location = format!(
        "{}{object}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=TEST%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef",
        shared.objstore
    );
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(header::LOCATION, location)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {err}")))
}

fn injected(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status.as_u16() {
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    let body =
        format!(r#"{{"errors":[{{"code":"{code}","message":"injected by the test proxy"}}]}}"#);
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(seconds) = retry_after {
        response = response.header(header::RETRY_AFTER, seconds.to_string());
    }
    response
        .body(Body::from(body))
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {err}")))
}

pub(super) fn plain(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

pub(super) fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
