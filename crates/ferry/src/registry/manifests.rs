//! Manifest, tag and referrer requests.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

use super::{Access, Call, RegistryClient, Repo, Target};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Descriptor, MAX_MANIFEST_BYTES};

/// A manifest as stored: raw bytes, media type and digest (verified).
#[derive(Clone, Debug)]
pub struct RawManifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// Media type.
    pub media_type: String,
    /// SHA-256 of `bytes`.
    pub digest: Digest,
}

/// What a HEAD told about a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Digest the registry announced.
    pub digest: Digest,
    /// Media type, if sent.
    pub media_type: Option<String>,
    /// Size, if sent.
    pub size: Option<u64>,
}

fn accept_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::ACCEPT,
        HeaderValue::from_static(manifest::ACCEPT),
    );
    h
}

fn header_digest(h: &HeaderMap) -> Option<Digest> {
    h.get("docker-content-digest")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl RegistryClient {
    /// HEAD a manifest by tag or digest: `None` when it does not exist.
    pub async fn head_manifest(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<ManifestHead>, Error> {
        let call = Call {
            repo,
            method: Method::HEAD,
            target: Target::Repo(format!("manifests/{reference}")),
            headers: accept_headers(),
            access: Access::Pull,
            mount_from: None,
        };
        let resp = self.send(&call, None, &[200, 404]).await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let h = resp.headers();
        match header_digest(h) {
            Some(digest) => Ok(Some(ManifestHead {
                digest,
                media_type: h
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                size: h
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            })),
            // A registry that does not announce digests on HEAD: GET and hash.
            None => match self.get_manifest_opt(repo, reference).await? {
                Some(m) => Ok(Some(ManifestHead {
                    digest: m.digest,
                    media_type: Some(m.media_type),
                    size: Some(m.bytes.len() as u64),
                })),
                None => Ok(None),
            },
        }
    }

    /// GET a manifest and verify its digest against the reference (when it is a digest)
    /// and against the registry's `Docker-Content-Digest`.
    pub async fn get_manifest(&self, repo: &Repo, reference: &str) -> Result<RawManifest, Error> {
        self.get_manifest_opt(repo, reference)
            .await?
            .ok_or_else(|| Error::NotFound {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                what: format!("manifest {reference}"),
            })
    }

    /// Like [`RegistryClient::get_manifest`], `None` when it does not exist.
    pub async fn get_manifest_opt(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> Result<Option<RawManifest>, Error> {
        let call = Call {
            repo,
            method: Method::GET,
            target: Target::Repo(format!("manifests/{reference}")),
            headers: accept_headers(),
            access: Access::Pull,
            mount_from: None,
        };
        let too_large = |size: u64| Error::ManifestTooLarge {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            reference: reference.to_string(),
            size,
            limit: MAX_MANIFEST_BYTES,
        };
        let read = || async {
            let mut resp = self.send_once(&call, None, &[200, 404]).await?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            if let Some(len) = resp.content_length()
                && len > MAX_MANIFEST_BYTES
            {
                return Err(too_large(len));
            }
            let announced = header_digest(resp.headers());
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut buf = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Unreachable {
                registry: repo.registry.clone(),
                message: super::describe_reqwest(&e),
            })? {
                if buf.len() as u64 + chunk.len() as u64 > MAX_MANIFEST_BYTES {
                    return Err(too_large(buf.len() as u64 + chunk.len() as u64));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Some((Bytes::from(buf), announced, content_type)))
        };
        // Body reads can break after the status line: retry the whole read.
        let Some((bytes, announced, content_type)) = self.retrying(read).await? else {
            return Ok(None);
        };
        let digest = Digest::of(&bytes);
        let expected = reference.parse::<Digest>().ok().or(announced);
        if let Some(exp) = expected
            && exp != digest
        {
            return Err(Error::DigestMismatch {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                expected: exp,
                actual: digest.to_string(),
                detail: format!("manifest {reference}, {} bytes", bytes.len()),
            });
        }
        let media_type =
            manifest::media_type_of(&bytes, content_type.as_deref()).ok_or_else(|| {
                Error::InvalidManifest {
                    registry: repo.registry.clone(),
                    repository: repo.repository.clone(),
                    reference: reference.to_string(),
                    reason: "not a JSON manifest with a known media type".into(),
                }
            })?;
        Ok(Some(RawManifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// PUT a manifest's exact bytes under a tag or its digest. An immutable tag that
    /// already holds other content gives [`Error::TagConflict`].
    pub async fn put_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        m: &RawManifest,
    ) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        let ct = HeaderValue::from_str(&m.media_type).map_err(|_| Error::InvalidManifest {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            reference: reference.to_string(),
            reason: format!("media type {:?} is not a valid header value", m.media_type),
        })?;
        headers.insert(http::header::CONTENT_TYPE, ct);
        let call = Call {
            repo,
            method: Method::PUT,
            target: Target::Repo(format!("manifests/{reference}")),
            headers,
            access: Access::Push,
            mount_from: None,
        };
        let resp = self
            .send(
                &call,
                Some(m.bytes.clone()),
                &[200, 201, 202, 204, 400, 409],
            )
            .await?;
        let status = resp.status().as_u16();
        if matches!(status, 400 | 409) {
            let (err, code) = self.status_error(&call, resp).await;
            let immutable = code.as_deref() == Some("TAG_INVALID")
                || code.as_deref() == Some("ImageTagAlreadyExistsException")
                || err.to_string().to_ascii_lowercase().contains("immutable");
            if immutable && reference.parse::<Digest>().is_err() {
                let existing = match self.head_manifest(repo, reference).await {
                    Ok(Some(h)) => h.digest.to_string(),
                    _ => "unknown".to_string(),
                };
                return Err(Error::TagConflict {
                    registry: repo.registry.clone(),
                    repository: repo.repository.clone(),
                    tag: reference.to_string(),
                    existing,
                    wanted: m.digest.clone(),
                });
            }
            return Err(err);
        }
        if let Some(d) = header_digest(resp.headers())
            && d != m.digest
        {
            return Err(Error::DigestMismatch {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                expected: m.digest.clone(),
                actual: d.to_string(),
                detail: "the destination stored the manifest under another digest".into(),
            });
        }
        Ok(())
    }

    /// DELETE a manifest by digest (OCI registries; ECR needs BatchDeleteImage).
    pub async fn delete_manifest(&self, repo: &Repo, digest: &Digest) -> Result<bool, Error> {
        let call = Call {
            repo,
            method: Method::DELETE,
            target: Target::Repo(format!("manifests/{digest}")),
            headers: HeaderMap::new(),
            access: Access::Push,
            mount_from: None,
        };
        let resp = self.send(&call, None, &[200, 202, 204, 404]).await?;
        Ok(resp.status().as_u16() != 404)
    }

    /// List every tag of a repository, following `Link` pagination. A missing repository
    /// has no tags.
    pub async fn list_tags(&self, repo: &Repo) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut next = Some("tags/list?n=1000".to_string());
        while let Some(path) = next.take() {
            let call = Call {
                repo,
                method: Method::GET,
                target: Target::Repo(path),
                headers: HeaderMap::new(),
                access: Access::Pull,
                mount_from: None,
            };
            let (status, headers, body) = self.get_document(&call, &[200, 404]).await?;
            if status == 404 {
                break;
            }
            next = next_link(&headers, &repo.repository);
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Registry {
                registry: repo.registry.clone(),
                method: "GET".into(),
                url: format!("/v2/{}/tags/list", repo.repository),
                status: 200,
                message: format!("invalid tag list: {e}"),
                retry_after: None,
            })?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
    }

    /// Every repository of a registry from `/v2/_catalog`, following pagination.
    pub async fn list_catalog(&self, registry: &str) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let repo = Repo::new(registry, "");
        let base = self.inner.endpoints.base_url(registry);
        let mut out = Vec::new();
        let mut next = Some(format!("{base}/v2/_catalog?n=1000"));
        while let Some(url) = next.take() {
            let call = Call {
                repo: &repo,
                method: Method::GET,
                target: Target::Url(url),
                headers: HeaderMap::new(),
                access: Access::Pull,
                mount_from: None,
            };
            let (_, headers, body) = self.get_document(&call, &[200]).await?;
            next = headers
                .get(http::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| Some(&l[l.find('<')? + 1..l.find('>')?]))
                .and_then(|p| p.find("/v2/_catalog").map(|i| format!("{base}{}", &p[i..])));
            let page: Catalog = serde_json::from_slice(&body).map_err(|e| Error::Registry {
                registry: registry.to_string(),
                method: "GET".into(),
                url: "/v2/_catalog".into(),
                status: 200,
                message: format!("invalid catalog: {e}"),
                retry_after: None,
            })?;
            out.extend(page.repositories.unwrap_or_default());
        }
        Ok(out)
    }

    /// The OCI 1.1 referrers API: `Some(descriptors)` when the registry supports it,
    /// `None` when it does not (the caller falls back to the tag schema).
    pub async fn referrers_api(
        &self,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let call = Call {
            repo,
            method: Method::GET,
            target: Target::Repo(format!("referrers/{digest}")),
            headers: {
                let mut h = HeaderMap::new();
                h.insert(
                    http::header::ACCEPT,
                    HeaderValue::from_static(manifest::OCI_INDEX),
                );
                h
            },
            access: Access::Pull,
            mount_from: None,
        };
        let (status, headers, body) = self.get_document(&call, &[200, 400, 404, 405]).await?;
        if status != 200 {
            return Ok(None);
        }
        let is_index = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with(manifest::OCI_INDEX));
        if !is_index {
            return Ok(None);
        }
        match manifest::parse(&body) {
            Ok(manifest::Parsed::Index { manifests, .. }) => Ok(Some(manifests)),
            _ => Ok(None),
        }
    }
}

/// The path of the next page from a `Link: </v2/<repo>/tags/list?n=..&last=..>; rel="next"`.
fn next_link(h: &HeaderMap, repository: &str) -> Option<String> {
    let link = h.get(http::header::LINK)?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    let target = &link[start..end];
    let path = match target.find("/v2/") {
        Some(i) => &target[i..],
        None => target,
    };
    let prefix = format!("/v2/{repository}/");
    path.strip_prefix(&prefix).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_links() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            HeaderValue::from_static("</v2/team/api/tags/list?last=v9&n=1000>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h, "team/api").as_deref(),
            Some("tags/list?last=v9&n=1000")
        );
        h.insert(
            http::header::LINK,
            HeaderValue::from_static("<http://other/v2/evil/tags/list?n=1>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h, "team/api"),
            None,
            "never follow a link to another repository"
        );
    }
}
