//! Ferry's OCI Distribution client, the lowest layer of the workspace: image names and
//! formats, registry authentication (Docker config, the Bearer token flow, ECR tokens
//! through the AWS SDK), the transport guard, and the streaming, digest-verified registry
//! client with its limits, quotas and retries.
//!
//! It depends on no other crate of the workspace: the engine (`ferry`) builds on it and
//! re-exports its modules under their old paths (`ferry::registry`, `ferry::Digest`, ...).
//! Its failures are its own [`Error`], which the engine converts into its own.

pub mod auth;
pub mod aws;
pub mod digest;
pub mod error;
pub mod host;
pub mod manifest;
pub mod net;
pub mod reference;
pub mod registry;
pub mod secret;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
