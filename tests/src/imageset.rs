//! Many small images at once, pushed straight through the registry API (no skopeo, so
//! hundreds take seconds): repositories of tags sharing a base layer and a few runtime
//! layers, some tags two-platform OCI indexes, every byte derived from a seed.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;

use crate::fixtures::{Descriptor, Fixture, media};
use crate::registry::{self, Credentials, Registry};
use crate::skopeo::sha256_digest;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SetSpec {
    /// Repository names are `<prefix><n>/svc`.
    pub repo_prefix: String,
    /// Number of repositories.
    pub repos: usize,
    /// Tags per repository (`1.<t>.0`).
    pub tags_per_repo: usize,
    /// Every n-th tag (counting from 0) is a two-platform OCI index; 0 for none.
    pub index_every: usize,
    /// Size of the base layer every image shares.
    pub base_size: usize,
    /// Size of each of the four runtime layers (images share them by repository).
    pub runtime_size: usize,
    /// Size of each image's own layer.
    pub own_size: usize,
    /// Seed of every byte.
    pub seed: u64,
}

impl SetSpec {
    /// `repos` × `tags` images: 1 MiB base, 128 KiB runtimes, 32 KiB own layers, every
    /// fourth tag an index.
    pub fn small(prefix: &str, repos: usize, tags: usize, seed: u64) -> Self {
        Self {
            repo_prefix: prefix.to_string(),
            repos,
            tags_per_repo: tags,
            index_every: 4,
            base_size: 1024 * 1024,
            runtime_size: 128 * 1024,
            own_size: 32 * 1024,
            seed,
        }
    }

    /// The repository names.
    pub fn repositories(&self) -> Vec<String> {
        (0..self.repos)
            .map(|r| format!("{}{r}/svc", self.repo_prefix))
            .collect()
    }
}

/// Deterministic bytes: distinct content per seed (xorshift).
pub fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Pushes the set to `registry` (four repositories at a time, over one HTTP client) and
/// returns one [`Fixture`] per tag, in repository and tag order.
pub fn push_image_set(registry: &Registry, spec: &SetSpec) -> Result<Vec<Fixture>> {
    let pusher = Pusher {
        base: registry.url(),
        host: registry.host(),
        credentials: registry.credentials().cloned(),
        client: crate::http::client()?,
    };
    let repos = spec.repositories();
    crate::http::block_on(async {
        let pushed: Vec<Result<Vec<Fixture>>> = futures::stream::iter(repos.iter().enumerate())
            .map(|(r, repo)| pusher.push_repo(spec, r, repo))
            .buffered(4)
            .collect()
            .await;
        let mut out = Vec::new();
        for images in pushed {
            out.extend(images?);
        }
        Ok(out)
    })?
}

/// Blob and manifest pushes over one client (POST + one PUT per blob, PUT per manifest).
struct Pusher {
    base: String,
    host: String,
    credentials: Option<Credentials>,
    client: reqwest::Client,
}

impl Pusher {
    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.credentials {
            Some(c) => request.basic_auth(&c.username, Some(&c.password)),
            None => request,
        }
    }

    /// Uploads a blob whose digest is known, unless the repository has it.
    async fn blob(&self, repo: &str, bytes: &[u8], digest: &str) -> Result<()> {
        let head = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        if self.request(Method::HEAD, &head).send().await?.status() == 200 {
            return Ok(());
        }
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self.request(Method::POST, &start).send().await?;
        if response.status() != 202 {
            bail!("POST {start}: status {}", response.status());
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("upload session without Location")?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let response = self
            .request(Method::PUT, &put)
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await?;
        if response.status() != 201 {
            bail!("PUT blob {digest} to {repo}: status {}", response.status());
        }
        Ok(())
    }

    /// Puts a manifest under `reference`; returns its digest.
    async fn manifest(
        &self,
        repo: &str,
        reference: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let digest = sha256_digest(bytes);
        let reference = reference.unwrap_or(&digest);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let response = self
            .request(Method::PUT, &url)
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .await?;
        if response.status() != 201 {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("PUT {url}: status {status}: {body}");
        }
        Ok(digest)
    }

    async fn push_repo(&self, spec: &SetSpec, r: usize, repo: &str) -> Result<Vec<Fixture>> {
        let seed = spec.seed.wrapping_mul(1_000_003);
        let base = bytes_of(seed ^ 1, spec.base_size);
        let base_digest = sha256_digest(&base);
        let runtime = bytes_of(seed ^ (2 + (r % 4) as u64), spec.runtime_size);
        let runtime_digest = sha256_digest(&runtime);
        let mut out = Vec::new();
        for t in 0..spec.tags_per_repo {
            let tag = format!("1.{t}.0");
            let own_seed = seed ^ (1000 + (r * spec.tags_per_repo + t) as u64 * 16);
            let index = spec.index_every > 0 && t % spec.index_every == 0;
            let archs: &[&str] = if index {
                &["amd64", "arm64"]
            } else {
                &["amd64"]
            };
            let mut manifests = Vec::new();
            let mut blobs: Vec<Descriptor> = Vec::new();
            let mut children = Vec::new();
            for (a, arch) in archs.iter().enumerate() {
                let own = bytes_of(own_seed + a as u64, spec.own_size);
                let own_digest = sha256_digest(&own);
                let mut layers = Vec::new();
                for (bytes, digest) in [
                    (&base, &base_digest),
                    (&runtime, &runtime_digest),
                    (&own, &own_digest),
                ] {
                    self.blob(repo, bytes, digest)
                        .await
                        .with_context(|| format!("pushing a layer to {repo}"))?;
                    layers.push(Descriptor::new(
                        media::OCI_LAYER,
                        digest.clone(),
                        bytes.len() as u64,
                    ));
                }
                let config = serde_json::to_vec(&json!({
                    "architecture": arch,
                    "os": "linux",
                    "config": {"Env": ["PATH=/usr/bin"], "Labels": {"repo": repo, "tag": tag}},
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": layers.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
                    },
                }))?;
                let config_digest = sha256_digest(&config);
                self.blob(repo, &config, &config_digest).await?;
                let config = Descriptor::new(media::OCI_CONFIG, config_digest, config.len() as u64);
                let manifest = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": media::OCI_MANIFEST,
                    "config": config.to_json(),
                    "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
                }))?;
                for d in std::iter::once(config).chain(layers) {
                    if !blobs.iter().any(|b| b.digest == d.digest) {
                        blobs.push(d);
                    }
                }
                let reference = (!index).then_some(tag.as_str());
                let digest = self
                    .manifest(repo, reference, media::OCI_MANIFEST, &manifest)
                    .await?;
                manifests.push(digest.clone());
                children.push(
                    Descriptor::new(media::OCI_MANIFEST, digest, manifest.len() as u64)
                        .with_platform(arch),
                );
            }
            let (digest, media_type) = if index {
                let bytes = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": media::OCI_INDEX,
                    "manifests": children.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
                }))?;
                let digest = self
                    .manifest(repo, Some(&tag), media::OCI_INDEX, &bytes)
                    .await?;
                manifests.insert(0, digest.clone());
                (digest, media::OCI_INDEX)
            } else {
                (manifests[0].clone(), media::OCI_MANIFEST)
            };
            out.push(Fixture {
                repo: repo.to_string(),
                tag: tag.clone(),
                reference: registry::image_reference(&self.host, repo, &tag),
                digest,
                media_type: media_type.to_string(),
                manifests,
                blobs,
                referrers: Vec::new(),
                referrer_blobs: Vec::new(),
                extra_tags: Vec::new(),
            });
        }
        Ok(out)
    }
}
