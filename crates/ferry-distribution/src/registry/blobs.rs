//! Blob requests: HEAD, cross-repository mount, upload session, one monolithic PUT, and
//! GET with redirects. The registry's credentials never go to another origin (an upload
//! `Location` or a redirect elsewhere gets no `Authorization`), and URLs the registry
//! sends are checked before use ([`super::netguard`]): no https → http, no loopback or
//! link-local address the registry is not on.

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::{Access, Call, RegistryClient, Repo, Slot, Target};
use crate::digest::Digest;
use crate::error::Error;

/// Most redirects followed for one blob GET.
const MAX_REDIRECTS: usize = 5;

/// What a mount request did.
#[derive(Debug)]
pub enum MountOutcome {
    /// The blob is now in the repository.
    Mounted,
    /// The registry could not mount and opened an upload session instead (its URL).
    Upload(String),
}

impl RegistryClient {
    /// HEAD a blob: its size when present, `None` when absent.
    pub async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<Option<u64>, Error> {
        let call = Call {
            repo,
            method: Method::HEAD,
            target: Target::Repo(format!("blobs/{digest}")),
            headers: HeaderMap::new(),
            access: Access::Push,
            mount_from: None,
        };
        // Some registries redirect HEAD too; a redirect means the blob exists.
        let resp = self.send(&call, None, &[200, 404, 307, 302]).await?;
        match resp.status().as_u16() {
            404 => Ok(None),
            _ => Ok(Some(resp.content_length().unwrap_or(0))),
        }
    }

    /// Ask the registry to mount a blob from another repository of the same registry.
    pub async fn mount_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        from: &str,
    ) -> Result<MountOutcome, Error> {
        let call = Call {
            repo,
            method: Method::POST,
            target: Target::Repo(format!("blobs/uploads/?mount={digest}&from={from}")),
            headers: HeaderMap::new(),
            access: Access::Push,
            mount_from: Some(from),
        };
        let resp = self.send(&call, None, &[201, 202]).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(MountOutcome::Mounted);
        }
        Ok(MountOutcome::Upload(self.location(repo, resp.headers())?))
    }

    /// Open an upload session: its URL.
    pub async fn start_upload(&self, repo: &Repo) -> Result<String, Error> {
        let call = Call {
            repo,
            method: Method::POST,
            target: Target::Repo("blobs/uploads/".into()),
            headers: HeaderMap::new(),
            access: Access::Push,
            mount_from: None,
        };
        let resp = self.send(&call, None, &[202]).await?;
        self.location(repo, resp.headers())
    }

    /// Finish an upload session with one PUT holding the whole blob. The body is a stream:
    /// this is one attempt, not retried here (the caller restarts the whole transfer).
    pub async fn put_blob(
        &self,
        repo: &Repo,
        location: &str,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), Error> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let parsed = self.upload_url(repo, &url, "PUT")?;
        let (client, own) =
            self.client_for(&repo.registry, &self.endpoint(&repo.registry)?, &parsed)?;
        let limit = self.host_limit(&repo.registry);
        let (_permit, _) = self
            .admit(
                &repo.registry,
                &Method::PUT,
                super::quota::Endpoint::Upload,
                &limit,
                Slot::Take,
            )
            .await;
        let scope = format!("repository:{}:pull,push", repo.repository);
        // The upload client (no read timeout, the blob deadline instead) on the
        // registry's own origin; another origin's guarded client otherwise.
        let client = if own {
            self.inner.upload.clone()
        } else {
            client
        };
        let mut req = client
            .put(parsed.clone())
            .timeout(self.blob_deadline(size))
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::CONTENT_LENGTH, size.to_string())
            .body(body);
        if own && let Some(h) = self.inner.auth.header(&repo.registry, &scope).await? {
            req = req.header(http::header::AUTHORIZATION, h.expose());
        }
        self.stats.request(&Method::PUT);
        let unreachable = parsed.host_str().unwrap_or(&repo.registry).to_string();
        let resp = req
            .send()
            .await
            .map_err(|e| Self::transport_error(&repo.registry, &parsed, &unreachable, &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED && own {
            // The body stream is spent: refresh the credentials now (an expired ECR token)
            // so that the caller's restart of the whole transfer sends fresh ones.
            self.refresh_auth(&repo.registry, &scope, &resp).await?;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            limit.throttled();
            self.stats.throttle();
        }
        if status == StatusCode::CREATED
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::OK
        {
            limit.success();
            return Ok(());
        }
        let call = Call {
            repo,
            method: Method::PUT,
            target: Target::Url(url),
            headers: HeaderMap::new(),
            access: Access::Push,
            mount_from: None,
        };
        let (err, code) = self.status_error(&call, resp).await;
        if status == StatusCode::FORBIDDEN
            && own
            && err.is_expired_credential()
            && crate::reference::EcrRegistry::from_host(&repo.registry).is_some()
        {
            // ECR's 403 "token has expired": as for a 401, refresh now for the restart.
            self.inner.auth.reissue(&repo.registry, &scope).await?;
        }
        if code.as_deref() == Some("DIGEST_INVALID") || code.as_deref() == Some("SIZE_INVALID") {
            return Err(Error::DigestMismatch {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                expected: digest.clone(),
                actual: "rejected by the destination".into(),
                detail: err.to_string(),
            });
        }
        Err(err)
    }

    /// GET a blob of `size` bytes from `offset` on (a `Range` request when `offset > 0`),
    /// following redirects, within the blob deadline for its size. The registry's
    /// `Authorization` goes only to the registry's own origin: ECR redirects to
    /// pre-signed S3 URLs, which refuse a second auth mechanism. Answers 200, or 206 for
    /// a honoured range; retried as a whole.
    pub async fn get_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        offset: u64,
        size: u64,
    ) -> Result<reqwest::Response, Error> {
        self.blob_get(repo, digest, offset, size, Slot::Take).await
    }

    /// [`RegistryClient::get_blob`] for a resume inside an upload that already holds a
    /// slot of the host limit (the verified PUT body re-opening its source): it takes no
    /// slot, so a PUT and its own resume never wait for each other, even when source and
    /// destination are one registry whose limit has shrunk to 1.
    pub async fn resume_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        offset: u64,
        size: u64,
    ) -> Result<reqwest::Response, Error> {
        self.blob_get(repo, digest, offset, size, Slot::Held).await
    }

    async fn blob_get(
        &self,
        repo: &Repo,
        digest: &Digest,
        offset: u64,
        size: u64,
        slot: Slot,
    ) -> Result<reqwest::Response, Error> {
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let v = HeaderValue::from_str(&format!("bytes={offset}-"))
                .map_err(|_| Error::Unsupported("range".into()))?;
            headers.insert(http::header::RANGE, v);
        }
        let call = Call {
            repo,
            method: Method::GET,
            target: Target::Repo(format!("blobs/{digest}")),
            headers: headers.clone(),
            access: Access::Pull,
            mount_from: None,
        };
        let deadline = self.blob_deadline(size.saturating_sub(offset));
        let once = || async {
            let resp = self.attempt_with(&call, None, slot, Some(deadline)).await?;
            let resp = self
                .follow_redirects(repo, resp, &headers, deadline)
                .await?;
            match resp.status().as_u16() {
                200 | 206 => Ok(resp),
                _ => Err(self.status_error(&call, resp).await.0),
            }
        };
        self.retrying(once).await
    }

    async fn follow_redirects(
        &self,
        repo: &Repo,
        mut resp: reqwest::Response,
        headers: &HeaderMap,
        deadline: std::time::Duration,
    ) -> Result<reqwest::Response, Error> {
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(loc) = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Ok(resp);
            };
            let next = resp.url().join(loc).map_err(|_| Error::Registry {
                registry: repo.registry.clone(),
                method: "GET".into(),
                url: format!("/v2/{}/blobs", repo.repository),
                status: resp.status().as_u16(),
                message: "redirect to an invalid location".into(),
                retry_after: None,
            })?;
            let (client, own) = self.client_for(&repo.registry, resp.url(), &next)?;
            let mut req = client
                .get(next.clone())
                .headers(headers.clone())
                .timeout(deadline);
            if own {
                let scope = format!("repository:{}:pull", repo.repository);
                if let Some(h) = self.auth_header(&repo.registry, &scope).await? {
                    req = req.header(http::header::AUTHORIZATION, h.expose());
                }
            }
            self.stats.request(&Method::GET);
            let origin = next.host_str().unwrap_or_default().to_string();
            resp = req
                .send()
                .await
                .map_err(|e| Self::transport_error(&repo.registry, &next, &origin, &e))?;
        }
        Err(Error::Registry {
            registry: repo.registry.clone(),
            method: "GET".into(),
            url: format!("/v2/{}/blobs", repo.repository),
            status: resp.status().as_u16(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
            retry_after: None,
        })
    }

    /// The absolute URL of an upload session from a `Location` header.
    fn location(&self, repo: &Repo, headers: &HeaderMap) -> Result<String, Error> {
        let loc = headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Registry {
                registry: repo.registry.clone(),
                method: "POST".into(),
                url: format!("/v2/{}/blobs/uploads/", repo.repository),
                status: 202,
                message: "upload session without a Location header".into(),
                retry_after: None,
            })?;
        self.upload_url(repo, loc, "POST").map(String::from)
    }

    /// An upload `Location` (relative to the registry's endpoint) as an absolute URL,
    /// checked: one that downgrades an https registry to http, or leads to an address
    /// class the registry is not on, is refused.
    fn upload_url(&self, repo: &Repo, loc: &str, method: &str) -> Result<url::Url, Error> {
        let base = self.endpoint(&repo.registry)?;
        let url = base.join(loc).map_err(|_| Error::Registry {
            registry: repo.registry.clone(),
            method: method.into(),
            url: format!("/v2/{}/blobs/uploads/", repo.repository),
            status: 202,
            message: "upload session Location is not a URL".into(),
            retry_after: None,
        })?;
        self.client_for(&repo.registry, &base, &url)?;
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;
    use crate::registry::{ClientOptions, Endpoints};

    fn client() -> RegistryClient {
        let endpoints =
            Endpoints::parse("reg.test=https://reg.test,local.test=http://127.0.0.1:5000")
                .expect("endpoints");
        RegistryClient::new(
            Authenticator::anonymous(),
            endpoints,
            ClientOptions::default(),
        )
        .expect("client")
    }

    /// Upload `Location`s are checked when they arrive (no request is made here).
    #[test]
    fn upload_locations_are_checked() {
        let c = client();
        let https = Repo::new("reg.test", "team/app");
        let refused = |repo: &Repo, loc: &str| match c.upload_url(repo, loc, "POST") {
            Err(Error::Refused { target, reason, .. }) => (target, reason),
            other => panic!("{loc}: {other:?}"),
        };
        let url = c
            .upload_url(&https, "/v2/team/app/blobs/uploads/u1?_state=x", "POST")
            .expect("relative");
        assert_eq!(
            url.as_str(),
            "https://reg.test/v2/team/app/blobs/uploads/u1?_state=x"
        );
        let (target, reason) = refused(&https, "http://reg.test/v2/team/app/blobs/uploads/u1");
        assert_eq!(target, "http://reg.test");
        assert!(reason.contains("downgrades https"), "{reason}");
        let (_, reason) = refused(&https, "https://169.254.169.254/upload");
        assert!(reason.contains("link-local"), "{reason}");
        let (_, reason) = refused(&https, "https://[::1]/upload");
        assert!(reason.contains("loopback"), "{reason}");
        // Another https origin is allowed (without the registry's Authorization).
        let other = url::Url::parse("https://uploads.example/s/1").expect("url");
        let base = c.endpoint("reg.test").expect("endpoint");
        let (_, own) = c.client_for("reg.test", &base, &other).expect("allowed");
        assert!(!own, "another origin never counts as the registry's");
        let (_, own) = c.client_for("reg.test", &base, &url).expect("allowed");
        assert!(own);
        let e = Error::Refused {
            registry: "r".into(),
            target: "t".into(),
            reason: "x".into(),
        };
        assert!(!e.is_retryable());
        assert_eq!(e.code(), "refused");
        // A loopback registry may send uploads to another loopback port, not link-local.
        let local = Repo::new("local.test", "a");
        c.upload_url(&local, "http://127.0.0.1:6000/upload/1", "POST")
            .expect("loopback");
        refused(&local, "http://169.254.169.254/upload");
    }
}
