//! Ferry engine: copies container images between OCI registries and Amazon ECR.
//!
//! The engine knows nothing of Lambda. It offers the image graph copy, replication rules,
//! the ECR control plane and plan/sync/status over the distribution client below it
//! (reference parsing, registry auth, a streaming digest-verified registry client:
//! [`ferry_distribution`], whose modules are re-exported here under their old paths).

pub use ferry_distribution as distribution;
pub use ferry_distribution::{auth, digest, manifest, net, reference, registry, secret};

pub mod aws;
pub mod config;
pub mod copy;
pub mod ecr;
pub mod error;
pub mod gate;
pub mod organizations;
pub mod replicate;
pub mod report;
pub mod setup;
pub mod status;
pub mod sync;

pub use copy::{Copier, CopyOptions};
pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use report::CopyReport;

/// Targets whose TRACE events every binary drops: the AWS SDK logs whole responses at
/// TRACE, and `GetAuthorizationToken`'s response carries the registry password (ECR's
/// model does not mark it sensitive).
pub const LOG_CAPPED_TARGETS: &[&str] = &["aws_smithy_runtime", "aws_smithy_runtime_api"];

/// The log cap every binary installs as a second filter beside the user's level: it only
/// ever *lowers* what the level lets through (the capped targets never above DEBUG), so
/// the default verbosity stays quiet. (Adding `aws_smithy_runtime=debug` as a directive
/// instead would raise those targets to DEBUG under a `warn` default.)
pub fn log_allowed(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() != tracing::Level::TRACE
        || !LOG_CAPPED_TARGETS.iter().any(|t| {
            metadata.target() == *t
                || metadata
                    .target()
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}
