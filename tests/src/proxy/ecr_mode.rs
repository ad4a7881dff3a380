//! The proxy's "ECR mode": what ECR's registry endpoint is documented or reported to do
//! (see `docs/ecr-notes.md`), in front of a plain distribution registry.
//!
//! - **Auth**: only Basic `AWS:<password>` is accepted; anything else gets 401 with a
//!   Basic challenge. [`super::Proxy::expire_token`] makes the next matching request(s)
//!   carrying the token get 401 "Your authorization token has expired" (moto always
//!   mints the same token, so expiry is a count of refusals, not a token generation).
//! - **Redirected blob GETs**: 307 to the object-store stand-in, which answers 400 to any
//!   request carrying `Authorization`.
//! - **Chunked upload**: PATCH answers 201 (not 202); the body of every PATCH after the
//!   first of a session is dropped while the answer claims it was stored.
//! - **Manifest PUT throttling**: a token bucket of N PUTs per second (burst N) per
//!   registry; above it 429 `TOOMANYREQUESTS` with ECR's error body and no `Retry-After`.
//! - **Immutable tags**: a manifest PUT by tag where the tag holds another digest gets
//!   400 `TAG_INVALID`.
//! - **Manifest DELETE**: 405 `UNSUPPORTED`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use futures::StreamExt;

use super::forward::{BodyPlan, drain, header_text, plain, relay_with_status, send_upstream};
use super::{PathKind, RequestRecord, Shared, lock};
use crate::http::MANIFEST_ACCEPT;
use crate::skopeo::sha256_digest;

/// Which ECR behaviours the proxy plays.
#[derive(Debug, Clone)]
pub struct EcrMode {
    /// `<account>.dkr.ecr.<region>.amazonaws.com`, for the challenge realm.
    pub registry_host: String,
    /// The token password (`<account>-auth-token` with moto): only `Basic AWS:<it>` is
    /// accepted. `None` leaves authentication to the upstream.
    pub password: Option<String>,
    /// 307 blob GETs to the object-store stand-in.
    pub redirect_blobs: bool,
    /// PATCH answers 201 and drops the body of every PATCH after a session's first.
    pub broken_chunked_upload: bool,
    /// Manifest PUTs per second (and burst) before 429 `TOOMANYREQUESTS`.
    pub manifest_puts_per_second: Option<u32>,
    /// Tags cannot be moved: 400 `TAG_INVALID`.
    pub immutable_tags: bool,
    /// Manifest DELETE answers 405 `UNSUPPORTED`.
    pub manifest_delete_unsupported: bool,
}

impl EcrMode {
    /// Every behaviour on (ECR's 10 manifest PUTs per second), tags mutable.
    pub fn new(registry_host: &str, password: &str) -> Self {
        Self {
            registry_host: registry_host.to_string(),
            password: Some(password.to_string()),
            redirect_blobs: true,
            broken_chunked_upload: true,
            manifest_puts_per_second: Some(10),
            immutable_tags: false,
            manifest_delete_unsupported: true,
        }
    }

    /// The same, with immutable tags.
    pub fn immutable(mut self) -> Self {
        self.immutable_tags = true;
        self
    }
}

/// Refuse the next `times` requests matching `method` and `kind` that carry a valid token
/// with 401 "expired" (or, with `denied`, 403 `DENIED` "expired").
#[derive(Debug, Clone)]
pub struct ExpireRule {
    /// Only this method; `None` matches any.
    pub method: Option<Method>,
    /// Only this endpoint kind; `None` matches any.
    pub kind: Option<PathKind>,
    /// How many requests to refuse.
    pub times: u32,
    /// Answer 403 `DENIED` "Your authorization token has expired" with no challenge, as
    /// ECR's registry endpoint also does, instead of 401.
    pub denied: bool,
}

/// What ECR mode did, counted from the request log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EcrCounts {
    /// 401 for missing or wrong credentials.
    pub unauthorized: usize,
    /// 401 for an "expired" token.
    pub expired: usize,
    /// 429 `TOOMANYREQUESTS` for manifest PUTs over the rate.
    pub throttled: usize,
    /// 400 `TAG_INVALID` for immutable tags.
    pub tag_invalid: usize,
    /// 405 `UNSUPPORTED` for manifest DELETEs.
    pub delete_unsupported: usize,
    /// PATCHes forwarded (answered 201).
    pub patches_forwarded: usize,
    /// PATCHes whose body was dropped.
    pub patches_dropped: usize,
}

impl EcrCounts {
    pub(super) fn from_log(log: &[RequestRecord]) -> Self {
        let mut counts = Self::default();
        for record in log {
            match record.fault {
                Some("ecr-unauthorized") => counts.unauthorized += 1,
                Some("ecr-expired") => counts.expired += 1,
                Some("ecr-throttled") => counts.throttled += 1,
                Some("ecr-tag-invalid") => counts.tag_invalid += 1,
                Some("ecr-delete-unsupported") => counts.delete_unsupported += 1,
                Some("ecr-patch-201") => counts.patches_forwarded += 1,
                Some("ecr-patch-dropped") => counts.patches_dropped += 1,
                _ => {}
            }
        }
        counts
    }
}

/// One upload session seen by PATCH.
#[derive(Debug, Clone)]
pub(super) struct Session {
    location: Option<HeaderValue>,
    uuid: Option<HeaderValue>,
    /// Last byte the client was told is stored.
    claimed_end: Option<u64>,
}

/// Mutable ECR-mode state.
#[derive(Debug, Default)]
pub(super) struct EcrState {
    pub(super) sessions: std::collections::HashMap<String, Session>,
    /// Manifest PUT tokens left and when they were last refilled.
    pub(super) bucket: Option<(f64, Instant)>,
}

/// What to do after ECR mode looked at a request.
pub(super) enum Flow {
    /// Answer this, do not forward.
    Answer(Response),
    /// Go on with (possibly rebuilt) request.
    Continue(Request),
}

fn answer(record: &mut RequestRecord, label: &'static str, response: Response) -> Flow {
    record.status = response.status().as_u16();
    record.fault = Some(label);
    Flow::Answer(response)
}

pub(super) async fn apply(
    shared: &Shared,
    mode: &EcrMode,
    record: &mut RequestRecord,
    request: Request,
) -> Flow {
    let method = request.method().clone();
    let kind = record.kind;

    if let Some(password) = &mode.password {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"))
        );
        let given = header_text(request.headers(), header::AUTHORIZATION);
        if given.as_deref() != Some(expected.as_str()) {
            drain(request.into_body()).await;
            return answer(
                record,
                "ecr-unauthorized",
                unauthorized(mode, "Not Authorized"),
            );
        }
        if let Some(denied) = shared.take_expire(&method, kind) {
            drain(request.into_body()).await;
            let message = "Your authorization token has expired. Reauthenticate and try again.";
            let refusal = if denied {
                error(StatusCode::FORBIDDEN, "DENIED", message)
            } else {
                unauthorized(mode, message)
            };
            return answer(record, "ecr-expired", refusal);
        }
    }

    if mode.manifest_delete_unsupported && method == Method::DELETE && kind == PathKind::Manifest {
        return answer(
            record,
            "ecr-delete-unsupported",
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "The operation is unsupported.",
            ),
        );
    }

    if mode.broken_chunked_upload && method == Method::PATCH && kind == PathKind::BlobUpload {
        return Flow::Answer(patch(shared, record, request).await);
    }

    let mut request = request;
    if method == Method::PUT && kind == PathKind::Manifest {
        if let Some(rate) = mode.manifest_puts_per_second
            && !take_put_token(shared, rate)
        {
            drain(request.into_body()).await;
            return answer(
                record,
                "ecr-throttled",
                error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "Rate exceeded",
                ),
            );
        }
        if mode.immutable_tags
            && let Some((name, reference)) = manifest_target(&record.path)
            && !reference.starts_with("sha256:")
        {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, 8 * 1024 * 1024).await else {
                return answer(
                    record,
                    "ecr-manifest-invalid",
                    error(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_INVALID",
                        "manifest body unreadable",
                    ),
                );
            };
            let digest = sha256_digest(&bytes);
            let existing = tag_digest(shared, &parts.headers, &name, &reference).await;
            if let Some(existing) = existing
                && existing != digest
            {
                let message = format!(
                    "The image tag '{reference}' already exists in the '{name}' repository and cannot be overwritten because the tag is immutable."
                );
                return answer(
                    record,
                    "ecr-tag-invalid",
                    error(StatusCode::BAD_REQUEST, "TAG_INVALID", &message),
                );
            }
            request = Request::from_parts(parts, Body::from(bytes));
        }
    }
    Flow::Continue(request)
}

/// `/v2/<name>/manifests/<reference>` → (name, reference).
fn manifest_target(path: &str) -> Option<(String, String)> {
    let path = path.split('?').next()?;
    let rest = path.strip_prefix("/v2/")?;
    let at = rest.rfind("/manifests/")?;
    Some((
        rest[..at].to_string(),
        rest[at + "/manifests/".len()..].to_string(),
    ))
}

/// The digest a tag points at upstream, asked with the client's own credentials.
async fn tag_digest(
    shared: &Shared,
    headers: &axum::http::HeaderMap,
    name: &str,
    reference: &str,
) -> Option<String> {
    let url = format!("{}/v2/{name}/manifests/{reference}", shared.upstream);
    let mut request = shared
        .client
        .head(url)
        .header(header::ACCEPT, MANIFEST_ACCEPT);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn take_put_token(shared: &Shared, rate: u32) -> bool {
    let rate = f64::from(rate.max(1));
    let mut state = lock(&shared.ecr_state);
    let now = Instant::now();
    let (tokens, last) = state.bucket.get_or_insert((rate, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
    *last = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

/// ECR's broken chunked upload: the first PATCH of a session is forwarded and answered
/// 201; later ones are answered 201 as if stored, and their bodies dropped.
async fn patch(shared: &Shared, record: &mut RequestRecord, request: Request) -> Response {
    let session = record
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let seen = lock(&shared.ecr_state).sessions.get(&session).cloned();
    if let Some(seen) = seen {
        let mut dropped = 0u64;
        let mut stream = request.into_body().into_data_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            dropped += chunk.len() as u64;
        }
        let end = seen
            .claimed_end
            .map_or(dropped.saturating_sub(1), |e| e + dropped);
        if let Some(s) = lock(&shared.ecr_state).sessions.get_mut(&session) {
            s.claimed_end = Some(end);
        }
        record.status = 201;
        record.fault = Some("ecr-patch-dropped");
        let mut response = Response::builder()
            .status(StatusCode::CREATED)
            .header(header::CONTENT_LENGTH, "0")
            .header(header::RANGE, format!("0-{end}"));
        if let Some(location) = &seen.location {
            response = response.header(header::LOCATION, location);
        }
        if let Some(uuid) = &seen.uuid {
            response = response.header("docker-upload-uuid", uuid);
        }
        return response.body(Body::empty()).unwrap_or_else(|err| {
            plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {err}"))
        });
    }
    let path_and_query = record.path.clone();
    let upstream = match send_upstream(shared, request, &path_and_query).await {
        Ok(upstream) => upstream,
        Err(err) => {
            record.status = 502;
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("proxy: upstream failed: {err}"),
            );
        }
    };
    if !upstream.status().is_success() {
        record.status = upstream.status().as_u16();
        return relay_with_status(shared, upstream, BodyPlan::default(), None);
    }
    let location = upstream
        .headers()
        .get(header::LOCATION)
        .map(|v| super::forward::rewrite_location(shared, v));
    let claimed_end = upstream
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('-').next())
        .and_then(|v| v.parse().ok());
    let uuid = upstream.headers().get("docker-upload-uuid").cloned();
    lock(&shared.ecr_state).sessions.insert(
        session,
        Session {
            location,
            uuid,
            claimed_end,
        },
    );
    record.status = 201;
    record.fault = Some("ecr-patch-201");
    relay_with_status(shared, upstream, BodyPlan::default(), Some(201))
}

fn unauthorized(mode: &EcrMode, message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "DENIED", message);
    let challenge = format!(
        "Basic realm=\"https://{}/\",service=\"ecr.amazonaws.com\"",
        mode.registry_host
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A distribution error body, in the shape ECR sends.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body))
        .unwrap_or_else(|err| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {err}")))
}
