//! The proxy's hostile-registry mode for trust boundaries ([`super::Proxy::set_hostile`]):
//! a registry whose answers try to send Ferry (and its credentials) somewhere else.
//!
//! - **Upload elsewhere**: a `202` upload-session answer (`POST …/blobs/uploads/`, mount
//!   attempts included) gets a `Location` on a *foreign origin* (another loopback
//!   listener, [`super::Proxy::start_foreign`]), which records what arrives (above all
//!   whether `Authorization` did) and forwards it to the real upload session with the
//!   upstream's own credentials, so the copy can succeed.
//! - **Blob redirects**: blob GETs answer `307` to a fixed URL (a link-local or
//!   loopback target, a downgrade).
//! - **Bearer realm**: every `/v2/` request without `Authorization: Bearer <token>` gets
//!   401 with a `WWW-Authenticate: Bearer` challenge whose realm is any URL (a foreign
//!   origin, or the proxy's own `/token`); the realm answers [`TokenReply`] (a normal
//!   token, an `expires_in` of `u64::MAX`, a body over 1 MiB). With the right token, the
//!   request is forwarded with the upstream's credentials instead.
//!
//! The foreign listeners also serve as an HTTP forward proxy (`HTTP_PROXY`) that records
//! and refuses (502) every absolute-form request: a test that points `HTTP_PROXY` at one
//! can never send a packet beyond loopback, whatever Ferry does.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;

use super::ecr_mode::Flow;
use super::forward::{BodyPlan, plain, relay, send_to};
use super::{PathKind, Proxy, RequestRecord, Shared, lock};

/// Which hostile behaviours the proxy plays (all off by default).
#[derive(Debug, Clone, Default)]
pub struct HostileMode {
    /// Upload-session `Location`s on this foreign origin (from [`Proxy::start_foreign`]).
    pub upload_origin: Option<String>,
    /// Blob GETs answer 307 to this URL.
    pub blob_redirect: Option<String>,
    /// Demand a Bearer token obtained from this challenge.
    pub bearer: Option<BearerMode>,
}

/// A Bearer challenge and what its realm answers.
#[derive(Debug, Clone)]
pub struct BearerMode {
    /// The challenge's `realm` URL.
    pub realm: String,
    /// The token the realm hands out and the proxy accepts.
    pub token: String,
    /// What the realm answers.
    pub reply: TokenReply,
}

/// A token endpoint's answer.
#[derive(Debug, Clone)]
pub enum TokenReply {
    /// `{"token": …, "expires_in": <this JSON text>}` (no `expires_in` when `None`).
    Token {
        /// The raw JSON value of `expires_in`, such as `"18446744073709551615"`.
        expires_in: Option<String>,
    },
    /// A JSON body of this many bytes, holding the token padded with spaces.
    Huge(usize),
}

/// One request a foreign listener (or the proxy's own `/token`) received.
#[derive(Debug, Clone)]
pub struct ForeignRequest {
    /// `http://IP:PORT` of the listener that received it.
    pub origin: String,
    /// HTTP method.
    pub method: String,
    /// The request target as received (absolute-form when sent to it as a proxy).
    pub target: String,
    /// The `Authorization` scheme (`Basic`, `Bearer`), if one was sent.
    pub authorization: Option<String>,
    /// A form body holding `refresh_token=` (an OAuth2 identity token) was sent.
    pub refresh_token: bool,
}

/// Mutable hostile-mode state.
#[derive(Debug, Default)]
pub(super) struct HostileState {
    mode: Option<HostileMode>,
    /// Upstream upload-session URLs, by index in `/upload/<index>`.
    sessions: Vec<String>,
    log: Vec<ForeignRequest>,
}

#[derive(Clone)]
struct Foreign {
    shared: Arc<Shared>,
    origin: String,
}

impl Proxy {
    /// Plays the hostile registry as `mode` says (replacing any previous mode).
    pub fn set_hostile(&self, mode: HostileMode) {
        lock(&self.shared.hostile).mode = Some(mode);
    }

    /// Starts a foreign listener on `ip` (a loopback address such as `127.0.0.1` or
    /// `127.0.0.2`): its origin `http://IP:PORT`. It serves upload sessions handed out
    /// by [`HostileMode::upload_origin`], `/token` for [`HostileMode::bearer`], and
    /// records and refuses anything else.
    pub fn start_foreign(&self, ip: &str) -> Result<String> {
        let runtime = self.runtime.as_ref().context("proxy stopped")?;
        let listener = std::net::TcpListener::bind((ip, 0))
            .with_context(|| format!("binding a foreign listener on {ip}"))?;
        listener.set_nonblocking(true)?;
        let origin = format!("http://{}", listener.local_addr()?);
        let app = Router::new().fallback(foreign).with_state(Foreign {
            shared: self.shared.clone(),
            origin: origin.clone(),
        });
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(async move { axum::serve(listener, app).await });
            anyhow::Ok(())
        })?;
        Ok(origin)
    }

    /// Every request the foreign listeners and the proxy's own `/token` received.
    pub fn foreign_requests(&self) -> Vec<ForeignRequest> {
        lock(&self.shared.hostile).log.clone()
    }
}

/// The proxy's hook: answer as the hostile mode says, or go on.
pub(super) async fn apply(shared: &Shared, record: &mut RequestRecord, request: Request) -> Flow {
    let Some(mode) = lock(&shared.hostile).mode.clone() else {
        return Flow::Continue(request);
    };
    let path = request.uri().path().to_string();
    let mut request = request;
    if let Some(bearer) = &mode.bearer {
        if path == "/token" {
            let answer = token_endpoint(shared, &shared.public, bearer, request).await;
            return done(record, "hostile-token", answer);
        }
        let wanted = format!("Bearer {}", bearer.token);
        let presented = request.headers().get(header::AUTHORIZATION);
        if presented.and_then(|v| v.to_str().ok()) != Some(wanted.as_str()) {
            return done(record, "hostile-challenge", challenge(bearer, &path));
        }
        let headers = request.headers_mut();
        headers.remove(header::AUTHORIZATION);
        if let Some(basic) = upstream_basic(shared) {
            headers.insert(header::AUTHORIZATION, basic);
        }
    }
    let method = request.method().clone();
    let kind = record.kind;
    if let Some(target) = &mode.blob_redirect
        && method == Method::GET
        && kind == PathKind::Blob
    {
        let answer = Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, target.as_str())
            .header(header::CONTENT_LENGTH, "0")
            .body(Body::empty());
        return done(record, "hostile-redirect", built(answer));
    }
    if let Some(origin) = &mode.upload_origin
        && method == Method::POST
        && kind == PathKind::BlobUpload
    {
        let pq = request
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
        let url = format!("{}{pq}", shared.upstream);
        let upstream = match send_to(shared, request, &url).await {
            Ok(u) => u,
            Err(e) => return done(record, "hostile-location", bad_gateway(&e)),
        };
        let location = upstream
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (StatusCode::ACCEPTED, Some(location)) = (upstream.status(), location) else {
            record.status = upstream.status().as_u16();
            return Flow::Answer(relay(shared, upstream, BodyPlan::default()));
        };
        let absolute = if location.starts_with('/') {
            format!("{}{location}", shared.upstream)
        } else {
            location
        };
        let index = {
            let mut st = lock(&shared.hostile);
            st.sessions.push(absolute);
            st.sessions.len() - 1
        };
        let mut answer = Response::builder()
            .status(StatusCode::ACCEPTED)
            .header(header::LOCATION, format!("{origin}/upload/{index}"))
            .header(header::CONTENT_LENGTH, "0");
        for name in ["docker-upload-uuid", "range"] {
            if let Some(v) = upstream.headers().get(name) {
                answer = answer.header(name, v);
            }
        }
        return done(
            record,
            "hostile-location",
            built(answer.body(Body::empty())),
        );
    }
    Flow::Continue(request)
}

fn done(record: &mut RequestRecord, label: &'static str, response: Response) -> Flow {
    record.status = response.status().as_u16();
    record.fault = Some(label);
    Flow::Answer(response)
}

fn built(response: Result<Response, axum::http::Error>) -> Response {
    response.unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("proxy: {e}")))
}

fn bad_gateway(e: &reqwest::Error) -> Response {
    plain(
        StatusCode::BAD_GATEWAY,
        format!("proxy: upstream failed: {e}"),
    )
}

fn upstream_basic(shared: &Shared) -> Option<HeaderValue> {
    let c = shared.upstream_credentials.as_ref()?;
    let raw = format!("{}:{}", c.username, c.password);
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    HeaderValue::from_str(&value).ok()
}

fn challenge(bearer: &BearerMode, path: &str) -> Response {
    let repository = path
        .strip_prefix("/v2/")
        .and_then(|p| {
            ["/manifests/", "/blobs/", "/tags/", "/referrers/"]
                .iter()
                .find_map(|m| p.find(m).map(|i| &p[..i]))
        })
        .unwrap_or("");
    let value = format!(
        r#"Bearer realm="{}",service="hostile.test",scope="repository:{repository}:pull""#,
        bearer.realm
    );
    built(
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, value)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )),
    )
}

/// Records the request at `origin` and answers as a token endpoint.
async fn token_endpoint(
    shared: &Shared,
    origin: &str,
    bearer: &BearerMode,
    request: Request,
) -> Response {
    log(shared, origin, request).await;
    let body = match &bearer.reply {
        TokenReply::Token { expires_in } => match expires_in {
            Some(e) => format!(r#"{{"token":"{}","expires_in":{e}}}"#, bearer.token),
            None => format!(r#"{{"token":"{}"}}"#, bearer.token),
        },
        TokenReply::Huge(size) => {
            let mut b = format!(r#"{{"token":"{}""#, bearer.token);
            let pad = size.saturating_sub(b.len() + 1);
            b.push_str(&" ".repeat(pad));
            b.push('}');
            b
        }
    };
    let answer = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body));
    built(answer)
}

/// Records a request (reading a form body for `refresh_token`).
async fn log(shared: &Shared, origin: &str, request: Request) -> Request {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(' ').next().unwrap_or_default().to_string());
    let refresh_token = String::from_utf8_lossy(&bytes).contains("refresh_token=");
    lock(&shared.hostile).log.push(ForeignRequest {
        origin: origin.to_string(),
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        authorization,
        refresh_token,
    });
    Request::from_parts(parts, Body::from(bytes))
}

async fn foreign(State(f): State<Foreign>, request: Request) -> Response {
    let mode = lock(&f.shared.hostile).mode.clone().unwrap_or_default();
    let path = request.uri().path().to_string();
    let absolute = request.uri().scheme().is_some();
    if path == "/token"
        && !absolute
        && let Some(bearer) = &mode.bearer
    {
        return token_endpoint(&f.shared, &f.origin, bearer, request).await;
    }
    let mut request = log(&f.shared, &f.origin, request).await;
    let session = path
        .strip_prefix("/upload/")
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| lock(&f.shared.hostile).sessions.get(i).cloned());
    let Some(session) = session.filter(|_| !absolute) else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "foreign listener: refused (recorded)".into(),
        );
    };
    let url = match request.uri().query() {
        Some(q) if session.contains('?') => format!("{session}&{q}"),
        Some(q) => format!("{session}?{q}"),
        None => session,
    };
    let headers = request.headers_mut();
    headers.remove(header::AUTHORIZATION);
    if let Some(basic) = upstream_basic(&f.shared) {
        headers.insert(header::AUTHORIZATION, basic);
    }
    match send_to(&f.shared, request, &url).await {
        Ok(upstream) => relay(&f.shared, upstream, BodyPlan::default()),
        Err(e) => bad_gateway(&e),
    }
}
