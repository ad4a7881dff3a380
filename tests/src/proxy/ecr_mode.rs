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
//! - **Request quotas** ([`EcrQuotas`]): a token bucket per ECR API action, each
//!   registry request counted against its action's (manifest PUT → PutImage, upload
//!   POST → InitiateLayerUpload, PATCH → UploadLayerPart, upload PUT →
//!   CompleteLayerUpload, blob HEAD → BatchCheckLayerAvailability, blob GET →
//!   GetDownloadUrlForLayer, manifest GET/HEAD → BatchGetImage) at ECR's default rates
//!   unless set otherwise. ECR does not document its burst: each bucket holds one
//!   second's worth and starts full. Above it 429 `TOOMANYREQUESTS` with ECR's error body
//!   and no `Retry-After`. [`super::Proxy::ecr_admitted`] gives when each request an
//!   action's bucket let through arrived.
//! - **Immutable tags**: a manifest PUT by tag where the tag holds another digest gets
//!   400 `TAG_INVALID`.
//! - **Manifest DELETE**: 405 `UNSUPPORTED`.
//! - **Referrers of an index** (with `reject_index_referrers`): a manifest PUT whose
//!   `subject` is an image index or manifest list gets 405 `UNSUPPORTED`
//!   (aws/containers-roadmap#2783).

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
pub use ferry::registry::ApiClass;

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
    /// Requests per second (and burst) per ECR API action before 429 `TOOMANYREQUESTS`;
    /// `None`: no quota at all.
    pub quotas: Option<EcrQuotas>,
    /// Tags cannot be moved: 400 `TAG_INVALID`.
    pub immutable_tags: bool,
    /// Manifest DELETE answers 405 `UNSUPPORTED`.
    pub manifest_delete_unsupported: bool,
    /// A manifest PUT whose `subject` is an index answers 405 `UNSUPPORTED`.
    pub reject_index_referrers: bool,
}

impl EcrMode {
    /// Every behaviour on (ECR's default request quotas), tags mutable.
    pub fn new(registry_host: &str, password: &str) -> Self {
        Self {
            registry_host: registry_host.to_string(),
            password: Some(password.to_string()),
            redirect_blobs: true,
            broken_chunked_upload: true,
            quotas: Some(EcrQuotas::default()),
            immutable_tags: false,
            manifest_delete_unsupported: true,
            reject_index_referrers: false,
        }
    }

    /// The same, with immutable tags.
    pub fn immutable(mut self) -> Self {
        self.immutable_tags = true;
        self
    }

    /// The same, with `api` allowing `rate` requests per second (quotas on).
    pub fn with_rate(mut self, api: ApiClass, rate: u32) -> Self {
        self.quotas = Some(self.quotas.unwrap_or_default().with(api, rate));
        self
    }
}

/// Requests per second per ECR API action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrQuotas {
    rates: HashMap<ApiClass, u32>,
}

impl Default for EcrQuotas {
    /// ECR's documented defaults.
    fn default() -> Self {
        Self {
            rates: ApiClass::ALL
                .into_iter()
                .map(|api| (api, api.ecr_default()))
                .collect(),
        }
    }
}

impl EcrQuotas {
    /// The same, with `api` at `rate` per second.
    pub fn with(mut self, api: ApiClass, rate: u32) -> Self {
        self.rates.insert(api, rate.max(1));
        self
    }

    /// The rate of `api`.
    pub fn rate(&self, api: ApiClass) -> u32 {
        self.rates
            .get(&api)
            .copied()
            .unwrap_or_else(|| api.ecr_default())
    }
}

/// The ECR API action a request to the registry endpoint counts against (the proxy's own
/// reading of `docs/ecr-notes.md`, not the engine's).
pub fn api_of(method: &str, kind: PathKind) -> Option<ApiClass> {
    Some(match (method, kind) {
        ("PUT", PathKind::Manifest) => ApiClass::PutImage,
        ("GET" | "HEAD", PathKind::Manifest) => ApiClass::BatchGetImage,
        ("POST", PathKind::BlobUpload) => ApiClass::InitiateLayerUpload,
        ("PATCH", PathKind::BlobUpload) => ApiClass::UploadLayerPart,
        ("PUT", PathKind::BlobUpload) => ApiClass::CompleteLayerUpload,
        ("HEAD", PathKind::Blob) => ApiClass::BatchCheckLayerAvailability,
        ("GET", PathKind::Blob) => ApiClass::GetDownloadUrlForLayer,
        _ => return None,
    })
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
    /// 429 `TOOMANYREQUESTS` for requests over their action's rate (every action).
    pub throttled: usize,
    /// The same by action, in the order of [`ApiClass::ALL`] (see
    /// [`EcrCounts::throttled_of`]).
    pub throttled_by_api: [usize; ApiClass::ALL.len()],
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
                Some("ecr-throttled") => {
                    counts.throttled += 1;
                    if let Some(api) = api_of(&record.method, record.kind) {
                        counts.throttled_by_api[index(api)] += 1;
                    }
                }
                Some("ecr-tag-invalid") => counts.tag_invalid += 1,
                Some("ecr-delete-unsupported") => counts.delete_unsupported += 1,
                Some("ecr-patch-201") => counts.patches_forwarded += 1,
                Some("ecr-patch-dropped") => counts.patches_dropped += 1,
                _ => {}
            }
        }
        counts
    }

    /// 429s for requests counted against `api`.
    pub fn throttled_of(&self, api: ApiClass) -> usize {
        self.throttled_by_api[index(api)]
    }
}

fn index(api: ApiClass) -> usize {
    ApiClass::ALL
        .iter()
        .position(|a| *a == api)
        .unwrap_or_default()
}

impl super::Proxy {
    /// When each request that `api`'s bucket let through arrived (since the proxy
    /// started, as [`RequestRecord::at`]), in order, since the last
    /// [`super::Proxy::reset_counts`]: every request of that action the ECR mode did not
    /// refuse before its bucket (credentials, expiry, unsupported DELETE) or throttle.
    pub fn ecr_admitted(&self, api: ApiClass) -> Vec<Duration> {
        lock(&self.shared.log)
            .iter()
            .filter(|r| api_of(&r.method, r.kind) == Some(api))
            .filter(|r| {
                !matches!(
                    r.fault,
                    Some(
                        "ecr-throttled"
                            | "ecr-unauthorized"
                            | "ecr-expired"
                            | "ecr-delete-unsupported"
                    )
                )
            })
            .map(|r| r.at)
            .collect()
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
    /// Tokens left per action and when they were last refilled.
    pub(super) buckets: HashMap<ApiClass, (f64, Instant)>,
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

    if let Some(quotas) = &mode.quotas
        && let Some(api) = api_of(method.as_str(), kind)
        && !take_token(shared, api, quotas.rate(api))
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

    if mode.broken_chunked_upload && method == Method::PATCH && kind == PathKind::BlobUpload {
        return Flow::Answer(patch(shared, record, request).await);
    }

    let mut request = request;
    if method == Method::PUT && kind == PathKind::Manifest {
        if mode.reject_index_referrers {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, 8 * 1024 * 1024)
                .await
                .unwrap_or_default();
            let subject_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|m| m["subject"]["mediaType"].as_str().map(str::to_owned));
            if subject_type.is_some_and(|t| t.contains("index") || t.contains("manifest.list")) {
                return answer(
                    record,
                    "ecr-referrer-rejected",
                    error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "UNSUPPORTED",
                        "The referrer's subject is an image index.",
                    ),
                );
            }
            request = Request::from_parts(parts, Body::from(bytes));
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

/// One token of `api`'s bucket (one second's worth, starting full), if there is one.
fn take_token(shared: &Shared, api: ApiClass, rate: u32) -> bool {
    let rate = f64::from(rate.max(1));
    let mut state = lock(&shared.ecr_state);
    let now = Instant::now();
    let (tokens, last) = state.buckets.entry(api).or_insert((rate, now));
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
