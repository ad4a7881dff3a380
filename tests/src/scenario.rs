//! The common end-to-end setup: a plain source registry, an htpasswd destination, and a
//! `DOCKER_CONFIG` holding the destination's credentials.

use std::process::Output;

use anyhow::Result;

use crate::docker_config::DockerConfig;
use crate::ferry;
use crate::registry::Registry;

/// User of the destination registry.
pub const DST_USER: &str = "ferry";
/// Password of the destination registry.
pub const DST_PASSWORD: &str = "ferry-secret";

/// Two registries and a Docker config, all torn down on drop.
#[derive(Debug)]
pub struct Sandbox {
    /// Anonymous source registry.
    pub src: Registry,
    /// htpasswd-protected destination registry.
    pub dst: Registry,
    /// Credentials ferry reads (the destination's; add more with `config.add`).
    pub config: DockerConfig,
}

impl Sandbox {
    /// Starts both registries and writes the Docker config.
    pub fn start() -> Result<Self> {
        let src = Registry::start()?;
        let dst = Registry::start_with_auth(DST_USER, DST_PASSWORD)?;
        let config = DockerConfig::for_registries(&[&dst])?;
        Ok(Self { src, dst, config })
    }

    /// Environment for ferry: `DOCKER_CONFIG`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![self.config.env()]
    }

    /// `ferry copy SRC DST --output json [extra…]` with this sandbox's environment.
    pub fn copy(&self, src: &str, dst: &str, extra: &[&str]) -> Result<Output> {
        copy_json(src, dst, extra, &self.env())
    }
}

/// `ferry copy SRC DST --output json [extra…]` with `envs`.
pub fn copy_json(
    src: &str,
    dst: &str,
    extra: &[&str],
    envs: &[(String, String)],
) -> Result<Output> {
    let mut args = vec!["copy", src, dst, "--output", "json"];
    args.extend_from_slice(extra);
    ferry::run_ferry(args, envs)
}
