//! The proxy's request handler: faults first, then streaming forwarding.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use super::{PathKind, RequestRecord, Shared};

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

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    let kind = PathKind::classify(&path);
    let range = header_text(request.headers(), header::RANGE);
    let authorization = request.headers().contains_key(header::AUTHORIZATION);
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path_and_query.clone(),
        kind,
        range,
        authorization,
        status: 0,
        fault: None,
    };

    if let Some(rule) = shared.take_inject(&method, kind) {
        record.status = rule.status;
        record.fault = Some("inject");
        shared.record(record);
        return injected(rule.status, rule.retry_after);
    }

    let is_blob_get = method == axum::http::Method::GET && kind == PathKind::Blob;
    if is_blob_get && shared.redirect_blobs() {
        record.status = 307;
        record.fault = Some("redirect");
        shared.record(record);
        return redirect(&shared, &path);
    }
    let cut = if is_blob_get {
        shared.take_cut(&path)
    } else {
        None
    };

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
    record.status = upstream.status().as_u16();
    if cut.is_some() && upstream.status().is_success() {
        record.fault = Some("cut");
    }
    shared.record(record);
    let cut = cut.filter(|_| upstream.status().is_success());
    relay(&shared, upstream, cut)
}

/// Forwards the request to the upstream registry, streaming its body.
async fn send_upstream(
    shared: &Shared,
    request: Request,
    path_and_query: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let url = format!("{}{path_and_query}", shared.upstream);
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

/// Turns the upstream response into ours: same status and headers (with `Location`
/// pointed back at the proxy), streamed body, optionally cut after some bytes.
fn relay(shared: &Shared, upstream: reqwest::Response, cut: Option<u64>) -> Response {
    let mut response = Response::builder().status(upstream.status().as_u16());
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
    let stream = upstream.bytes_stream().map_err(std::io::Error::other);
    let body = match cut {
        Some(limit) => Body::from_stream(cut_after(stream, limit)),
        None => Body::from_stream(stream),
    };
    response
        .body(body)
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {err}")))
}

fn rewrite_location(shared: &Shared, value: &HeaderValue) -> HeaderValue {
    match value.to_str() {
        Ok(text) if text.starts_with(&shared.upstream) => {
            let rewritten = format!("{}{}", shared.public, &text[shared.upstream.len()..]);
            HeaderValue::from_str(&rewritten).unwrap_or_else(|_| value.clone())
        }
        _ => value.clone(),
    }
}

/// Passes `limit` bytes through, then fails the stream, which makes the server abort the
/// connection mid-body (the client sees fewer bytes than `Content-Length`).
fn cut_after<S>(stream: S, limit: u64) -> impl Stream<Item = std::io::Result<Bytes>>
where
    S: Stream<Item = std::io::Result<Bytes>>,
{
    stream
        .scan(0u64, move |sent, item| {
            let items: Vec<std::io::Result<Bytes>> = match item {
                Err(err) => vec![Err(err)],
                Ok(chunk) => {
                    let remaining = limit.saturating_sub(*sent);
                    let len = chunk.len() as u64;
                    if len <= remaining {
                        *sent += len;
                        vec![Ok(chunk)]
                    } else {
                        let keep = usize::try_from(remaining).unwrap_or(chunk.len());
                        *sent += remaining;
                        let mut out = Vec::new();
                        if keep > 0 {
                            out.push(Ok(chunk.slice(..keep)));
                        }
                        out.push(Err(std::io::Error::other("proxy: body cut on purpose")));
                        out
                    }
                }
            };
            futures::future::ready(Some(futures::stream::iter(items)))
        })
        .flatten()
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
