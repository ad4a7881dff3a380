//! A temporary `DOCKER_CONFIG` directory with a `config.json` holding Basic credentials,
//! read by ferry (env `DOCKER_CONFIG=DIR`) and skopeo (`--authfile DIR/config.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use tempfile::TempDir;

use crate::registry::{Credentials, Registry};

/// A temp dir with `config.json`; removed on drop.
#[derive(Debug)]
pub struct DockerConfig {
    dir: TempDir,
    auths: BTreeMap<String, Credentials>,
}

impl DockerConfig {
    /// An empty config (`{"auths":{}}`), already written.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-docker-config-")
            .tempdir()
            .context("creating the DOCKER_CONFIG temp dir")?;
        let config = Self {
            dir,
            auths: BTreeMap::new(),
        };
        config.write()?;
        Ok(config)
    }

    /// A config holding the credentials of every given registry that has some.
    pub fn for_registries(registries: &[&Registry]) -> Result<Self> {
        let mut config = Self::new()?;
        for registry in registries {
            if let Some(creds) = registry.credentials() {
                config.add(&registry.host(), creds)?;
            }
        }
        Ok(config)
    }

    /// Adds (or replaces) the credentials for `host` (`127.0.0.1:PORT` or a host name)
    /// and rewrites the file.
    pub fn add(&mut self, host: &str, credentials: &Credentials) -> Result<&mut Self> {
        self.auths.insert(host.to_string(), credentials.clone());
        self.write()?;
        Ok(self)
    }

    /// The directory (the value of `DOCKER_CONFIG`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DIR/config.json` (skopeo's `--authfile`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// `("DOCKER_CONFIG", DIR)`.
    pub fn env(&self) -> (String, String) {
        (
            "DOCKER_CONFIG".to_string(),
            self.dir.path().display().to_string(),
        )
    }

    fn write(&self) -> Result<()> {
        let auths: serde_json::Map<String, serde_json::Value> = self
            .auths
            .iter()
            .map(|(host, creds)| {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", creds.username, creds.password));
                (host.clone(), serde_json::json!({ "auth": token }))
            })
            .collect();
        let body = serde_json::json!({ "auths": auths });
        let text = serde_json::to_string_pretty(&body).context("serialising config.json")?;
        std::fs::write(self.config_path(), text).context("writing config.json")
    }
}
