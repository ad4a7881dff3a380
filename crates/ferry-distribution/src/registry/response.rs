//! Reading registry answers: capped bodies, error bodies, `Retry-After`, and transport
//! errors described without their URLs.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::error::Error;
use crate::net::describe_reqwest;

/// Read a whole body of at most `limit` bytes: an announced `Content-Length` over it, or
/// more bytes than it, is `too_large(size seen)`, before anything more is read.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
    registry: &str,
    too_large: impl Fn(u64) -> Error,
) -> Result<Bytes, Error> {
    if let Some(len) = resp.content_length()
        && len > limit
    {
        return Err(too_large(len));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Unreachable {
        registry: registry.to_string(),
        message: describe_reqwest(&e),
    })? {
        let seen = buf.len() as u64 + chunk.len() as u64;
        if seen > limit {
            return Err(too_large(seen));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The path of a URL, without its query (never a pre-signed query string in messages).
pub(super) fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

/// Whether a 403 is ECR's `DENIED` "Your authorization token has expired", and the answer
/// as it came (its body, capped at 8 KiB like every error body, read and put back).
pub(super) async fn expired_token_answer(resp: reqwest::Response) -> (reqwest::Response, bool) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = read_bounded(resp, 8 * 1024).await;
    let (code, message) = parse_error_body(&body);
    let expired = crate::error::is_expired_token_denial(code.as_deref(), &message);
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    (reqwest::Response::from(rebuilt), expired)
}

/// Read at most `limit` bytes of a body, for error messages.
pub(super) async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// The first `{code, message}` of a distribution error body, else a text excerpt.
pub(super) fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body)
        && let Some(first) = e.errors.into_iter().next()
    {
        let msg = if first.message.is_empty() {
            first.code.clone()
        } else {
            format!("{}: {}", first.code, first.message)
        };
        return (Some(first.code), msg);
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.trim().chars().take(300).collect();
    (
        None,
        if excerpt.is_empty() {
            "no body".into()
        } else {
            excerpt
        },
    )
}

/// `Retry-After` in seconds (HTTP-date forms are rare on registries and ignored).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Whether a registry-endpoint answer to a pull says the image is archived.
///
/// ECR's wording is not documented (unverified, see `docs/ecr-notes.md`): Ferry matches
/// loosely, on any 4xx whose error code or message mentions an archive
/// (`ImageArchivedException`, `IMAGE_ARCHIVED`, "image is archived", ...).
pub fn is_archived_answer(status: u16, code: Option<&str>, message: &str) -> bool {
    (400..500).contains(&status)
        && [code.unwrap_or_default(), message]
            .iter()
            .any(|s| s.to_ascii_lowercase().contains("archiv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let (code, msg) = parse_error_body(
            br#"{"errors":[{"code":"TAG_INVALID","message":"The image tag 'v1' already exists in the 'a' repository and cannot be overwritten because the tag is immutable."}]}"#,
        );
        assert_eq!(code.as_deref(), Some("TAG_INVALID"));
        assert!(msg.starts_with("TAG_INVALID: "));
        let (code, msg) = parse_error_body(b"404 page not found\n");
        assert_eq!((code, msg.as_str()), (None, "404 page not found"));
    }

    #[test]
    fn retry_after() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "3".parse().expect("hv"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("hv"),
        );
        assert_eq!(parse_retry_after(&h), None);
    }
}
