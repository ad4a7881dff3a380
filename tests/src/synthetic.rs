//! A generated registry for scale runs: `repos` repositories (`r00000/svc`, …) of `tags`
//! tags each (`1.<t>.0`), every manifest made on the fly from its repository and tag
//! numbers, so 100,000 images cost no storage and no push. It answers what a listing and
//! a plan read — `/v2/`, `_catalog` and `tags/list` (paginated with `Link`, as
//! distribution does), HEAD and GET of manifests by tag or digest — and counts every
//! request (`GET /_stats`: the counts as JSON, not counted). Blobs are not served: a plan
//! reads manifests only.
//!
//! Two instances with the same shape hold the same images (a warm destination); one with
//! `repos: 0` holds nothing (a cold one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use crate::skopeo::sha256_digest;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The shape of a generated registry.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Repositories.
    pub repos: usize,
    /// Tags per repository.
    pub tags: usize,
}

struct Inner {
    shape: Shape,
    counts: Mutex<BTreeMap<String, u64>>,
}

/// A running generated registry; dropping it stops it.
pub struct Synthetic {
    url: String,
    inner: Arc<Inner>,
    _runtime: tokio::runtime::Runtime,
}

impl Synthetic {
    /// Start one on a free loopback port.
    pub fn start(shape: Shape) -> Result<Synthetic> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("runtime")?;
        let inner = Arc::new(Inner {
            shape,
            counts: Mutex::default(),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("bind")?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(inner.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Ok(Synthetic {
            url,
            inner,
            _runtime: runtime,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Requests answered, by `METHOD kind` (`GET catalog`, `HEAD manifest`, …).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every request answered.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }
}

/// Repository `i`'s name.
pub fn repo_name(i: usize) -> String {
    format!("r{i:05}/svc")
}

/// Tag `t`.
pub fn tag_name(t: usize) -> String {
    format!("1.{t}.0")
}

/// The manifest of repository `i`, tag `t`: a config and two layers (one shared by
/// every image), valid OCI.
pub fn manifest(i: usize, t: usize) -> Vec<u8> {
    let blob = |seed: String| sha256_digest(seed.as_bytes());
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(format!("config {i} {t}")), "size": 1024},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": blob("base".into()), "size": 4 * 1024 * 1024},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": blob(format!("layer {i} {t}")), "size": 64 * 1024}
        ]
    }))
    .unwrap_or_default()
}

fn parse_repo(name: &str, shape: Shape) -> Option<usize> {
    let i: usize = name.strip_prefix('r')?.strip_suffix("/svc")?.parse().ok()?;
    (i < shape.repos).then_some(i)
}

fn parse_tag(tag: &str, shape: Shape) -> Option<usize> {
    let t: usize = tag.strip_prefix("1.")?.strip_suffix(".0")?.parse().ok()?;
    (t < shape.tags).then_some(t)
}

fn query(q: Option<&str>, key: &str) -> Option<String> {
    q?.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.replace("%2F", "/").replace("%2f", "/"))
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}),
    )
}

/// A page of `names` after `last`, at most `n`, with a `Link` to the next one.
fn page(path: &str, names: &[String], key: &str, q: Option<&str>, what: String) -> Response {
    let n: usize = query(q, "n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let start = match query(q, "last") {
        Some(last) => names.partition_point(|x| *x <= last),
        None => 0,
    };
    let chunk: Vec<&String> = names.iter().skip(start).take(n).collect();
    let body = match key {
        "repositories" => serde_json::json!({"repositories": chunk}),
        _ => serde_json::json!({"name": what, "tags": chunk}),
    };
    let mut r = json(StatusCode::OK, body);
    if start + chunk.len() < names.len()
        && let Some(last) = chunk.last()
        && let Ok(v) = HeaderValue::from_str(&format!("<{path}?last={last}&n={n}>; rel=\"next\""))
    {
        r.headers_mut().insert(header::LINK, v);
    }
    r
}

async fn answer(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let shape = inner.shape;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = req.uri().query().map(str::to_string);
    if path == "/_stats" {
        let counts = inner
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        return json(StatusCode::OK, serde_json::json!({"requests": counts}));
    }
    let kind = if path == "/v2/" {
        "base"
    } else if path == "/v2/_catalog" {
        "catalog"
    } else if path.ends_with("/tags/list") {
        "tags"
    } else if path.contains("/manifests/") {
        "manifest"
    } else {
        "other"
    };
    *inner
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(format!("{method} {kind}"))
        .or_default() += 1;
    match kind {
        "base" => json(StatusCode::OK, serde_json::json!({})),
        "catalog" => {
            let names: Vec<String> = (0..shape.repos).map(repo_name).collect();
            page(&path, &names, "repositories", q.as_deref(), String::new())
        }
        "tags" => {
            let name = path
                .trim_start_matches("/v2/")
                .trim_end_matches("/tags/list");
            if parse_repo(name, shape).is_none() {
                return json(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "unknown"}]}),
                );
            }
            let tags: Vec<String> = {
                let mut t: Vec<String> = (0..shape.tags).map(tag_name).collect();
                t.sort();
                t
            };
            page(&path, &tags, "tags", q.as_deref(), name.to_string())
        }
        "manifest" => {
            let rest = path.trim_start_matches("/v2/");
            let Some((name, reference)) = rest.split_once("/manifests/") else {
                return not_found();
            };
            let Some(i) = parse_repo(name, shape) else {
                return not_found();
            };
            let t = match parse_tag(reference, shape) {
                Some(t) => Some(t),
                // By digest: the tag whose manifest has it (a scan of one repository).
                None => (0..shape.tags).find(|t| sha256_digest(&manifest(i, *t)) == reference),
            };
            let Some(t) = t else { return not_found() };
            let bytes = manifest(i, t);
            let digest = sha256_digest(&bytes);
            let len = bytes.len();
            let mut r = Response::new(if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes)
            });
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MANIFEST));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if let Ok(v) = HeaderValue::from_str(&digest) {
                h.insert("docker-content-digest", v);
            }
            r
        }
        _ => not_found(),
    }
}
