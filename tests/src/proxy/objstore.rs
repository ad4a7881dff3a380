//! A stand-in for S3 pre-signed URLs: serves blob bytes fetched from the upstream
//! registry, and, like S3, refuses a request that carries an `Authorization` header on
//! top of the URL's signature (400 "Only one auth mechanism allowed").

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::TryStreamExt;

use super::forward::{header_text, plain};
use super::{Shared, lock};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(serve).with_state(shared)
}

const ONE_AUTH: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidArgument</Code>\
<Message>Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature \
query string parameter or the Authorization header should be specified</Message>\
<ArgumentName>Authorization</ArgumentName></Error>";

async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if request.headers().contains_key(header::AUTHORIZATION) {
        lock(&shared.objstore_stats).rejected_auth += 1;
        return xml(StatusCode::BAD_REQUEST, ONE_AUTH);
    }
    let signed = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("X-Amz-Signature="));
    if !signed {
        lock(&shared.objstore_stats).unsigned += 1;
        return xml(
            StatusCode::FORBIDDEN,
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
    }
    let url = format!("{}/v2{}", shared.upstream, request.uri().path());
    let mut upstream = shared.client.request(request.method().clone(), url);
    if let Some(creds) = &shared.upstream_credentials {
        upstream = upstream.basic_auth(&creds.username, Some(&creds.password));
    }
    if let Some(range) = header_text(request.headers(), header::RANGE) {
        upstream = upstream.header(header::RANGE, range);
    }
    let upstream = match upstream.send().await {
        Ok(response) => response,
        Err(err) => return plain(StatusCode::BAD_GATEWAY, format!("object store: {err}")),
    };
    if !upstream.status().is_success() {
        return xml(
            StatusCode::NOT_FOUND,
            "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        );
    }
    lock(&shared.objstore_stats).served += 1;
    let mut response = Response::builder()
        .status(upstream.status().as_u16())
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes");
    for name in [header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ETAG] {
        if let Some(value) = upstream.headers().get(&name) {
            response = response.header(name, value);
        }
    }
    let body = Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other));
    response.body(body).unwrap_or_else(|err| {
        plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("object store: {err}"),
        )
    })
}

fn xml(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Body::from(text))
        .unwrap_or_else(|err| {
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("object store: {err}"),
            )
        })
}
