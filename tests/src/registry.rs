//! A real CNCF distribution registry (Debian `docker-registry`) on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use tempfile::TempDir;

use crate::http::{self, MANIFEST_ACCEPT};
use crate::process::{self, ChildGuard};

/// A user name and password for HTTP Basic auth.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl Credentials {
    /// Builds credentials from borrowed strings.
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            username: username.to_string(),
            password: password.to_string(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A running `docker-registry` with filesystem storage in its own temp dir, killed on drop.
#[derive(Debug)]
pub struct Registry {
    // Field order matters: the process must die before its directory is removed.
    child: ChildGuard,
    port: u16,
    credentials: Option<Credentials>,
    dir: TempDir,
}

impl Registry {
    /// Starts a registry that allows anonymous pushes and pulls.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// Starts a registry protected by htpasswd with one user.
    pub fn start_with_auth(username: &str, password: &str) -> Result<Self> {
        Self::start_with(Some(Credentials::new(username, password)))
    }

    /// Starts a registry, with htpasswd auth when `credentials` is set.
    pub fn start_with(credentials: Option<Credentials>) -> Result<Self> {
        let binary = process::require_tool("docker-registry")?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-registry-")
            .tempdir()
            .context("creating the registry temp dir")?;
        if let Some(creds) = &credentials {
            write_htpasswd(dir.path(), creds)?;
        }
        let mut last_error = None;
        // The free port may be taken between probing and binding: retry with another.
        for _ in 0..5 {
            let port = process::free_port()?;
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                config_yaml(dir.path(), port, credentials.is_some()),
            )
            .context("writing the registry config")?;
            let mut command = Command::new(&binary);
            command.arg("serve").arg(&config);
            let log = dir.path().join("registry.log");
            let mut child = ChildGuard::spawn("docker-registry", command, &log)?;
            let url = format!("http://127.0.0.1:{port}/v2/");
            let pid = child.pid();
            let ready = child.wait_ready(Duration::from_secs(20), || {
                process::port_open(port)
                    && process::port_held_by(pid, port)
                    && http::send(Method::GET, &url, None, &[], None)
                        .map(|r| r.status == 200 || r.status == 401)
                        .unwrap_or(false)
            });
            match ready {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        port,
                        credentials,
                        dir,
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("registry never started")))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The htpasswd user, when the registry has auth.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Process id of the registry.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Root of the filesystem storage driver.
    pub fn storage_root(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps a blob's bytes: `<root>/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage_root()
            .join("docker/registry/v2/blobs/sha256")
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// Overwrites a stored blob with different bytes of the same size, so the registry
    /// serves content that no longer matches its digest.
    pub fn corrupt_blob(&self, digest: &str) -> Result<()> {
        let path = self.blob_path(digest);
        let mut bytes =
            std::fs::read(&path).with_context(|| format!("reading blob {}", path.display()))?;
        if bytes.is_empty() {
            bail!("blob {digest} is empty: nothing to corrupt");
        }
        for byte in bytes.iter_mut() {
            *byte ^= 0x5a;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing blob {}", path.display()))
    }

    /// `127.0.0.1:PORT/REPO:TAG`, or `…/REPO@sha256:…` when `reference` is a digest.
    pub fn reference(&self, repo: &str, reference: &str) -> String {
        image_reference(&self.host(), repo, reference)
    }

    /// The digest the registry reports for a manifest (HEAD with every manifest type
    /// accepted), or `None` when it has no such manifest.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Result<Option<String>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.url());
        let response = http::send(
            Method::HEAD,
            &url,
            self.credentials(),
            &[("Accept", MANIFEST_ACCEPT)],
            None,
        )?;
        match response.status {
            200 => Ok(response.header("Docker-Content-Digest").map(str::to_string)),
            404 => Ok(None),
            status => bail!("HEAD {url}: unexpected status {status}"),
        }
    }

    /// A manifest's media type and raw bytes, or `None` when absent.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<Option<(String, Vec<u8>)>> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.url());
        let response = http::send(
            Method::GET,
            &url,
            self.credentials(),
            &[("Accept", MANIFEST_ACCEPT)],
            None,
        )?;
        match response.status {
            200 => {
                let media_type = response
                    .header("Content-Type")
                    .unwrap_or_default()
                    .to_string();
                Ok(Some((media_type, response.body)))
            }
            404 => Ok(None),
            status => bail!("GET {url}: unexpected status {status}"),
        }
    }

    /// True when the repository has the blob.
    pub fn has_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.url());
        let response = http::send(Method::HEAD, &url, self.credentials(), &[], None)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            status => bail!("HEAD {url}: unexpected status {status}"),
        }
    }

    /// The repository's tags (empty when the repository does not exist).
    pub fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let url = format!("{}/v2/{repo}/tags/list", self.url());
        let response = http::send(Method::GET, &url, self.credentials(), &[], None)?;
        match response.status {
            200 => {
                let body: serde_json::Value =
                    serde_json::from_slice(&response.body).context("parsing the tag list")?;
                let tags = body["tags"]
                    .as_array()
                    .map(|tags| {
                        tags.iter()
                            .filter_map(|t| t.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(tags)
            }
            404 => Ok(Vec::new()),
            status => bail!("GET {url}: unexpected status {status}"),
        }
    }
}

/// `HOST/REPO:TAG`, or `HOST/REPO@sha256:…` when `reference` is a digest.
pub fn image_reference(host: &str, repo: &str, reference: &str) -> String {
    if reference.starts_with("sha256:") {
        format!("{host}/{repo}@{reference}")
    } else {
        format!("{host}/{repo}:{reference}")
    }
}

fn write_htpasswd(dir: &Path, creds: &Credentials) -> Result<()> {
    let htpasswd = process::require_tool("htpasswd")?;
    let output = Command::new(htpasswd)
        .args(["-Bbn", &creds.username, &creds.password])
        .output()
        .context("running htpasswd")?;
    if !output.status.success() {
        bail!(
            "htpasswd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(dir.join("htpasswd"), output.stdout).context("writing htpasswd")
}

fn config_yaml(dir: &Path, port: u16, auth: bool) -> String {
    storage_yaml(
        &dir.join("storage"),
        port,
        auth.then(|| dir.join("htpasswd")).as_deref(),
        None,
    )
}

/// A registry config serving the storage at `root` on `port`, with htpasswd auth from
/// `htpasswd` and TLS from `tls` (certificate and key files) when given.
pub(crate) fn storage_yaml(
    root: &Path,
    port: u16,
    htpasswd: Option<&Path>,
    tls: Option<(&Path, &Path)>,
) -> String {
    let mut yaml = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: ferry-test-secret-{port}
{tls}validation:
  manifests:
    urls:
      allow:
        - '^https?://'
",
        root = root.display(),
        tls = match tls {
            Some((certificate, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ),
            None => String::new(),
        }
    );
    if let Some(htpasswd) = htpasswd {
        yaml.push_str(&format!(
            "auth:
  htpasswd:
    realm: ferry-test
    path: {}
",
            htpasswd.display()
        ));
    }
    yaml
}
