//! A tiny proxy giving a docker-registry ECR's immutable tags (distribution has none): a
//! manifest PUT by tag, when the tag exists with another digest, is answered 400
//! `TAG_INVALID` as ECR answers it. Everything else is forwarded unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use sha2::{Digest as _, Sha256};

struct Shared {
    upstream: String,
    client: reqwest::Client,
    refused: AtomicUsize,
}

/// The running proxy; stops when dropped.
pub(crate) struct ImmutableProxy {
    shared: Arc<Shared>,
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ImmutableProxy {
    /// In front of the registry at `upstream` (`http://127.0.0.1:PORT`).
    pub(crate) fn start(upstream: &str) -> Result<ImmutableProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()?,
            refused: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(async move { axum::serve(listener, app).await });
            anyhow::Ok(())
        })?;
        Ok(ImmutableProxy {
            shared,
            port,
            runtime: Some(runtime),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Manifest PUTs refused so far.
    pub(crate) fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for ImmutableProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn copy_headers(from: &HeaderMap, skip_host: bool) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for (k, v) in from {
        if skip_host && k == "host" {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    out
}

async fn forward(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path_q = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body: Bytes = axum::body::to_bytes(body, 256 << 20)
        .await
        .unwrap_or_default();
    let headers = copy_headers(&parts.headers, true);
    if parts.method == Method::PUT
        && let Some((repo, reference)) = parts
            .uri
            .path()
            .strip_prefix("/v2/")
            .and_then(|p| p.rsplit_once("/manifests/"))
        && !reference.starts_with("sha256:")
    {
        let wanted = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let mut head_headers = headers.clone();
        head_headers.remove("content-type");
        head_headers.remove("content-length");
        head_headers.insert("accept", reqwest::header::HeaderValue::from_static(ACCEPT));
        let head = s
            .client
            .head(format!("{}/v2/{repo}/manifests/{reference}", s.upstream))
            .headers(head_headers)
            .send()
            .await;
        if let Ok(h) = head
            && h.status() == 200
            && let Some(existing) = h
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
            && existing != wanted
        {
            s.refused.fetch_add(1, Ordering::SeqCst);
            let msg = format!(
                "The image tag '{reference}' already exists in the '{repo}' repository and cannot be overwritten because the tag is immutable."
            );
            let body = serde_json::json!({"errors": [{"code": "TAG_INVALID", "message": msg}]})
                .to_string();
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap_or_default();
        }
    }
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let resp = s
        .client
        .request(method, format!("{}{path_q}", s.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(resp) = resp else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    let head = parts.method == Method::HEAD;
    for (k, v) in resp.headers() {
        if (k == "content-length" && !head) || k == "transfer-encoding" {
            continue;
        }
        let value = v.to_str().unwrap_or_default().replace(&s.upstream, "");
        out = out.header(k.as_str(), value);
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).unwrap_or_default()
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
