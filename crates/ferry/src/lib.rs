//! Ferry engine: copies container images between OCI registries and Amazon ECR.
//!
//! The engine knows nothing of Lambda. It offers reference parsing, registry auth, a
//! streaming digest-verified registry client, the image graph copy, replication rules
//! and the ECR control plane.

pub mod auth;
pub mod aws;
pub mod config;
pub mod copy;
pub mod digest;
pub mod ecr;
pub mod error;
pub mod manifest;
pub mod organizations;
pub mod reference;
pub mod registry;
pub mod replicate;
pub mod report;
pub mod setup;
pub mod sync;

pub use copy::{Copier, CopyOptions};
pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use report::CopyReport;

/// Log filter directives every binary adds last: the AWS SDK logs whole responses at
/// TRACE, and `GetAuthorizationToken`'s response carries the registry password (ECR's
/// model does not mark it sensitive). Capping the SDK's runtime at DEBUG keeps it out.
pub const LOG_CAPS: &[&str] = &["aws_smithy_runtime=debug", "aws_smithy_runtime_api=debug"];
