//! The ECR test world: moto, one ECR-shaped registry (moto's default account and region)
//! and the test proxy's ECR mode in front of it, reached under its ECR host name through
//! `FERRY_REGISTRY_ENDPOINTS`, with no registry credentials anywhere (the password comes
//! from the AWS API).

use std::time::Duration;

use serde_json::Value;

use crate::moto::auth_token_password;
use crate::proxy::{EcrMode, Proxy};
use crate::{DockerConfig, EcrRegistry, Moto, Registry, run_ferry};

/// moto, one ECR-shaped registry, and the ECR-mode proxy in front of it.
pub struct EcrEnv {
    /// The ECR control plane.
    pub moto: Moto,
    /// The registry behind the proxy, named as moto's default account's ECR registry.
    pub ecr: EcrRegistry,
    /// The ECR-mode proxy in front of it.
    pub proxy: Proxy,
    /// An empty Docker config.
    pub docker: DockerConfig,
}

impl EcrEnv {
    /// Starts it all; `mode` adjusts the ECR behaviours the proxy plays.
    pub fn start(mode: impl FnOnce(EcrMode) -> EcrMode) -> Self {
        let moto = Moto::start().expect("moto");
        let ecr = EcrRegistry::start_default().expect("ECR-shaped registry");
        let proxy = Proxy::start(ecr.registry()).expect("proxy");
        proxy.set_ecr_mode(mode(EcrMode::new(
            &ecr.ecr_host(),
            &auth_token_password(ecr.account()),
        )));
        // No registry credentials anywhere: the ECR password must come from the AWS API.
        let docker = DockerConfig::new().expect("docker config");
        Self {
            moto,
            ecr,
            proxy,
            docker,
        }
    }

    /// moto's AWS settings, the ECR host sent to the proxy, and an empty Docker config.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.aws_env();
        env.push((
            crate::ecr::ENDPOINTS_ENV.to_string(),
            format!("{}={}", self.ecr.ecr_host(), self.proxy.url()),
        ));
        env.push(self.docker.env());
        env
    }

    /// `<ecr host>/REPO:TAG`.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        self.ecr.reference(repo, tag)
    }

    /// The registry behind the proxy, for direct checks.
    pub fn registry(&self) -> &Registry {
        self.ecr.registry()
    }

    /// `ferry copy SRC DST --output json`.
    pub fn copy(&self, src: &str, dst: &str) -> std::process::Output {
        run_ferry(["copy", src, dst, "--output", "json"], &self.env()).expect("ferry runs")
    }

    /// `ferry sync -c <config> --output json EXTRA…`, with the JSON report (`Null` when
    /// stdout is not JSON).
    pub fn sync(&self, config: &Value, extra: &[&str]) -> (std::process::Output, Value) {
        crate::run_with_config("sync", config, extra, &self.env()).expect("ferry runs")
    }
}

/// The moto API calls one `ferry` run makes: `run` is timed by the moto access log.
pub fn moto_calls_of<T>(moto: &Moto, run: impl FnOnce() -> T) -> (T, usize) {
    let before = moto.api_calls();
    let out = run();
    // The access log is written by another process: give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    (out, moto.api_calls() - before)
}
