//! Ferry engine: copies container images between OCI registries and Amazon ECR.
//!
//! The engine knows nothing of Lambda. It offers reference parsing, registry auth, a
//! streaming digest-verified registry client, the image graph copy, replication rules
//! and the ECR control plane.

pub mod config;
