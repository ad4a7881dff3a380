//! Test harness for Ferry's end-to-end tests.
//!
//! Everything runs for real on loopback: Debian's `docker-registry` (CNCF distribution
//! 2.8) instances, moto's AWS mock, skopeo as the independent client, a fault-injecting
//! HTTP proxy, and the built `ferry` binary. Each service binds a free port under its own
//! temp dir and is killed when its handle drops, so tests can run in parallel processes.
//!
//! The API is synchronous: tests are plain `#[test]` functions.

pub mod calls;
pub mod deploy;
pub mod docker_config;
pub mod ecr;
pub mod ecr_env;
pub mod ferry;
pub mod fixtures;
pub mod http;
pub mod imageset;
pub mod integrity;
pub mod lambda_runtime;
pub mod moto;
pub mod organizations;
pub mod process;
pub mod proxy;
pub mod registry;
pub mod results;
pub mod scans;
pub mod scenario;
pub mod skopeo;
pub mod synthetic;
pub mod tls;
pub mod verify;

pub use docker_config::DockerConfig;
pub use ecr::EcrRegistry;
pub use ferry::{
    Report, error_codes, ferry_bin, parse_report, run_ferry, run_with_config, workspace_bin,
};
pub use fixtures::Fixture;
pub use moto::Moto;
pub use proxy::{CutRule, InjectRule, PathKind, Proxy};
pub use registry::{Credentials, Registry};
pub use scenario::Sandbox;
pub use skopeo::{copy_to_oci_dir, inspect_raw_digest};
pub use verify::{verify_absent, verify_copy};

/// Runs `f` to completion on a fresh current-thread runtime (for SDK calls in the
/// synchronous tests).
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}
