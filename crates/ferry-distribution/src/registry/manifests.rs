//! Manifest, tag and referrer requests.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use url::Url;

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
        let too_large = |size: u64| Error::ManifestTooLarge {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            reference: reference.to_string(),
            size,
            limit: MAX_MANIFEST_BYTES,
        };
        self.fetch_manifest(repo, reference, MAX_MANIFEST_BYTES, too_large)
            .await
    }

    /// GET a manifest by the digest and size a descriptor gives: at most `size` bytes are
    /// read (a body larger than its descriptor says is [`Error::DigestMismatch`], one
    /// larger than 4 MiB [`Error::ManifestTooLarge`]), so that a caller can budget
    /// memory by the announced size before the request.
    pub async fn get_manifest_sized(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
    ) -> Result<RawManifest, Error> {
        if size > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestTooLarge {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                reference: digest.to_string(),
                size,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let too_large = |seen: u64| Error::DigestMismatch {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            expected: digest.clone(),
            actual: format!("size {seen}"),
            detail: format!("the manifest is larger than the {size} bytes its descriptor says"),
        };
        self.fetch_manifest(repo, digest.as_str(), size, too_large)
            .await?
            .ok_or_else(|| Error::NotFound {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                what: format!("manifest {digest}"),
            })
    }

    async fn fetch_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        limit: u64,
        too_large: impl Fn(u64) -> Error,
    ) -> Result<Option<RawManifest>, Error> {
        let call = Call {
            repo,
            method: Method::GET,
            target: Target::Repo(format!("manifests/{reference}")),
            headers: accept_headers(),
            access: Access::Pull,
            mount_from: None,
        };
        let read = || async {
            let resp = self.send_once(&call, None, &[200, 404]).await?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let announced = header_digest(resp.headers());
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = super::read_capped(resp, limit, &repo.registry, &too_large).await?;
            Ok::<_, Error>(Some((bytes, announced, content_type)))
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

    /// List every tag of a repository, following `Link` pagination: at most
    /// [`super::MAX_LISTING_PAGES`] pages of [`super::MAX_LISTING_PAGE_BYTES`], each link
    /// checked by [`super::next_page`]. A missing repository has no tags.
    pub async fn list_tags(&self, repo: &Repo) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let base = self.inner.endpoints.base_url(&repo.registry);
        let first = listing_url(&format!("{base}/v2/{}/tags/list?n=1000", repo.repository))?;
        let mut tags = Vec::new();
        let call = |u: &Url| Call {
            repo,
            method: Method::GET,
            target: Target::Repo(match u.query() {
                Some(q) => format!("tags/list?{q}"),
                None => "tags/list".into(),
            }),
            headers: HeaderMap::new(),
            access: Access::Pull,
            mount_from: None,
        };
        self.paginate(first, &[200, 404], call, |page| {
            if page.status == 404 {
                return Ok(false);
            }
            let list: TagList = serde_json::from_slice(page.body).map_err(|e| Error::Registry {
                registry: repo.registry.clone(),
                method: "GET".into(),
                url: format!("/v2/{}/tags/list", repo.repository),
                status: 200,
                message: format!("invalid tag list: {e}"),
                retry_after: None,
            })?;
            tags.extend(list.tags.unwrap_or_default());
            Ok(true)
        })
        .await?;
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
        let first = listing_url(&format!("{base}/v2/_catalog?n=1000"))?;
        let mut out = Vec::new();
        let call = |u: &Url| Call {
            repo: &repo,
            method: Method::GET,
            target: Target::Url(u.to_string()),
            headers: HeaderMap::new(),
            access: Access::Pull,
            mount_from: None,
        };
        self.paginate(first, &[200], call, |page| {
            let list: Catalog = serde_json::from_slice(page.body).map_err(|e| Error::Registry {
                registry: registry.to_string(),
                method: "GET".into(),
                url: "/v2/_catalog".into(),
                status: 200,
                message: format!("invalid catalog: {e}"),
                retry_after: None,
            })?;
            out.extend(list.repositories.unwrap_or_default());
            Ok(true)
        })
        .await?;
        Ok(out)
    }

    /// The OCI 1.1 referrers API: `Some(descriptors)` when the registry supports it,
    /// `None` when it does not (the caller falls back to the tag schema). Its pages are
    /// followed like a listing's.
    ///
    /// Whether the registry has the API is learnt from its first answer and remembered for
    /// this client's life: a registry that answered "no API" (404, 400, 405, or anything
    /// but an OCI index) is not asked again, and concurrent first questions wait for one
    /// answer. A registry that has the API must answer 200 for every subject (OCI
    /// distribution spec 1.1), so one "no" is final.
    pub async fn referrers_api(
        &self,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let cell = self
            .inner
            .referrers_support
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(repo.registry.clone())
            .or_default()
            .clone();
        let mut answer = None;
        let supported = *cell
            .get_or_try_init(|| async {
                let listed = self.referrers_api_once(repo, digest).await?;
                let supported = listed.is_some();
                answer = Some(listed);
                Ok::<_, Error>(supported)
            })
            .await?;
        match answer {
            Some(listed) => Ok(listed),
            None if supported => self.referrers_api_once(repo, digest).await,
            None => Ok(None),
        }
    }

    /// Whether the registry `host` is known to have no referrers API.
    pub fn referrers_api_absent(&self, host: &str) -> bool {
        self.inner
            .referrers_support
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .and_then(|c| c.get().copied())
            == Some(false)
    }

    async fn referrers_api_once(
        &self,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let base = self.inner.endpoints.base_url(&repo.registry);
        let first = listing_url(&format!("{base}/v2/{}/referrers/{digest}", repo.repository))?;
        let call = |u: &Url| Call {
            repo,
            method: Method::GET,
            target: Target::Repo(match u.query() {
                Some(q) => format!("referrers/{digest}?{q}"),
                None => format!("referrers/{digest}"),
            }),
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
        let mut found: Option<Vec<Descriptor>> = None;
        let mut first_page = true;
        self.paginate(first, &[200, 400, 404, 405], call, |page| {
            let was_first = std::mem::replace(&mut first_page, false);
            let is_index = page
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with(manifest::OCI_INDEX));
            let parsed = match manifest::parse(page.body) {
                Ok(manifest::Parsed::Index { manifests, .. }) if page.status == 200 && is_index => {
                    Some(manifests)
                }
                _ => None,
            };
            match (parsed, was_first) {
                // The first answer tells whether the API exists.
                (None, true) => Ok(false),
                (Some(m), _) => {
                    found.get_or_insert_with(Vec::new).extend(m);
                    Ok(true)
                }
                (None, false) => Err(Error::Registry {
                    registry: repo.registry.clone(),
                    method: "GET".into(),
                    url: format!("/v2/{}/referrers/{digest}", repo.repository),
                    status: page.status,
                    message: "a later page of the referrers listing is not an OCI index".into(),
                    retry_after: None,
                }),
            }
        })
        .await?;
        Ok(found)
    }
}

/// The first page's URL of a listing.
fn listing_url(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|_| Error::Unsupported(format!("bad listing URL {url}")))
}
