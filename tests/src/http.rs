//! Blocking HTTP helpers over async `reqwest` (the harness API is synchronous, so tests
//! are plain `#[test]` functions that can also run child processes).

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::registry::Credentials;

/// Every manifest media type the harness asks registries for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.artifact.manifest.v1+json";

/// Runs `fut` to completion on a fresh current-thread runtime.
///
/// Must not be called from inside an async context.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    Ok(runtime.block_on(fut))
}

/// A reqwest client that never follows redirects and ignores proxy settings.
pub fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .context("building an HTTP client")
}

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Sends one request and reads the whole response.
pub fn send(
    method: Method,
    url: &str,
    credentials: Option<&Credentials>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Response> {
    block_on(send_async(method, url, credentials, headers, body))?
}

/// Async form of [`send`].
pub async fn send_async(
    method: Method,
    url: &str,
    credentials: Option<&Credentials>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Response> {
    let mut request = client()?.request(method.clone(), url);
    if let Some(creds) = credentials {
        request = request.basic_auth(&creds.username, Some(&creds.password));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the body of {method} {url}"))?
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}
