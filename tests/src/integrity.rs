//! "No tag ever points at an incomplete image", checked through a registry's own API
//! (never through a proxy or ferry): every tag of the given repositories resolves to a
//! manifest whose child manifests, config and layers are all present, and hash to their
//! digests.
//!
//! Verified (repository, digest) pairs are remembered, so checking again after each step
//! costs one `tags/list` per repository and one HEAD per tag, plus the full walk of what
//! is new.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use sha2::{Digest as _, Sha256};

use crate::http::{MANIFEST_ACCEPT, block_on};
use crate::registry::{Credentials, Registry};

/// What one pass saw.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Tags seen, with the digest each pointed at.
    pub tags: BTreeMap<(String, String), String>,
    /// Images walked in full for the first time in this pass.
    pub walked: usize,
}

/// Checks the tags of one registry, remembering what it already verified.
#[derive(Debug)]
pub struct TagAuditor {
    base: String,
    credentials: Option<Credentials>,
    client: reqwest::Client,
    verified_manifests: HashSet<(String, String)>,
    verified_blobs: HashSet<(String, String)>,
    passes: usize,
}

impl TagAuditor {
    /// An auditor of `registry` (talking to it directly).
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(Self {
            base: registry.url(),
            credentials: registry.credentials().cloned(),
            client: crate::http::client()?,
            verified_manifests: HashSet::new(),
            verified_blobs: HashSet::new(),
            passes: 0,
        })
    }

    /// Passes run so far.
    pub fn passes(&self) -> usize {
        self.passes
    }

    /// Checks every tag of `repos` now. Fails naming the first tag that points at an
    /// incomplete or corrupt image.
    pub fn check(&mut self, repos: &[String]) -> Result<Audit> {
        block_on(self.check_async(repos))?
    }

    async fn check_async(&mut self, repos: &[String]) -> Result<Audit> {
        self.passes += 1;
        let mut audit = Audit::default();
        for repo in repos {
            for tag in self.tags(repo).await? {
                let Some(digest) = self.head_tag(repo, &tag).await? else {
                    // Listed, then gone (or moved) before the HEAD: nothing points at it.
                    continue;
                };
                if !self
                    .verified_manifests
                    .contains(&(repo.clone(), digest.clone()))
                {
                    self.walk(repo, &digest, 0)
                        .await
                        .with_context(|| format!("tag {repo}:{tag} -> {digest} is incomplete"))?;
                    audit.walked += 1;
                }
                audit.tags.insert((repo.clone(), tag), digest);
            }
        }
        Ok(audit)
    }

    async fn walk(&mut self, repo: &str, digest: &str, depth: usize) -> Result<()> {
        if depth > 4 {
            bail!("{repo}@{digest}: manifests nest too deep");
        }
        if self
            .verified_manifests
            .contains(&(repo.to_string(), digest.to_string()))
        {
            return Ok(());
        }
        let body = self
            .get(&format!("/v2/{repo}/manifests/{digest}"), true)
            .await?
            .with_context(|| format!("manifest {repo}@{digest} missing"))?;
        let actual = sha256(&body);
        if actual != digest {
            bail!("manifest {repo}@{digest} hashes to {actual}");
        }
        let value: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("manifest {repo}@{digest} is not JSON"))?;
        if let Some(children) = value["manifests"].as_array() {
            for child in children {
                let d = child["digest"]
                    .as_str()
                    .with_context(|| format!("{repo}@{digest}: child without digest"))?
                    .to_string();
                Box::pin(self.walk(repo, &d, depth + 1)).await?;
            }
        } else {
            let blobs = std::iter::once(&value["config"])
                .chain(value["layers"].as_array().into_iter().flatten())
                .filter(|d| d.is_object());
            for blob in blobs {
                let d = blob["digest"]
                    .as_str()
                    .with_context(|| format!("{repo}@{digest}: blob without digest"))?
                    .to_string();
                if self.verified_blobs.contains(&(repo.to_string(), d.clone())) {
                    continue;
                }
                let bytes = self
                    .get(&format!("/v2/{repo}/blobs/{d}"), false)
                    .await?
                    .with_context(|| format!("blob {d} of {repo}@{digest} missing"))?;
                let actual = sha256(&bytes);
                if actual != d {
                    bail!("blob {d} of {repo}@{digest} hashes to {actual}");
                }
                self.verified_blobs.insert((repo.to_string(), d));
            }
        }
        self.verified_manifests
            .insert((repo.to_string(), digest.to_string()));
        Ok(())
    }

    async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let Some(body) = self.get(&format!("/v2/{repo}/tags/list"), false).await? else {
            return Ok(Vec::new());
        };
        let value: serde_json::Value =
            serde_json::from_slice(&body).context("parsing a tag list")?;
        Ok(value["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn head_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let response = self
            .request(Method::HEAD, &url, true)
            .send()
            .await
            .with_context(|| format!("HEAD {url}"))?;
        match response.status().as_u16() {
            200 => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            404 => Ok(None),
            status => bail!("HEAD {url}: status {status}"),
        }
    }

    async fn get(&self, path: &str, manifest: bool) -> Result<Option<Vec<u8>>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .request(Method::GET, &url, manifest)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        match response.status().as_u16() {
            200 => Ok(Some(
                response
                    .bytes()
                    .await
                    .with_context(|| format!("reading {url}"))?
                    .to_vec(),
            )),
            404 => Ok(None),
            status => bail!("GET {url}: status {status}"),
        }
    }

    fn request(&self, method: Method, url: &str, manifest: bool) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, url);
        if manifest {
            request = request.header("Accept", MANIFEST_ACCEPT);
        }
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        request
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
