//! Replication configuration (see issue #3): which images go where.
//!
//! Ferry reads ECR's native replication configuration as-is (the bare
//! `{"rules": [...]}` or the whole `aws ecr describe-registry` output) with the same
//! meaning, and adds extensions: tag filters, wildcard and regex filters, renaming, OCI
//! registries, assume-role, KMS keys, delete propagation. This module is pure logic: no
//! network, no AWS calls.
//!
//! ```
//! use ferry::config::ReplicationConfig;
//!
//! let config = ReplicationConfig::from_json(r#"{
//!   "source": {"registryId": "111122223333", "region": "us-east-1"},
//!   "rules": [{
//!     "destinations": [{"region": "eu-west-1", "registryId": "111122223333",
//!                       "repositoryName": "dr/{repository}"}],
//!     "repositoryFilters": [{"filter": "prod/", "filterType": "PREFIX_MATCH"}],
//!     "excludeTagFilters": [{"filter": "*-dev", "filterType": "WILDCARD"}]
//!   }]
//! }"#)?;
//! let targets = config.destinations_for("prod/api", Some("1.4.2"))?;
//! assert_eq!(targets[0].destination.registry_host(), "111122223333.dkr.ecr.eu-west-1.amazonaws.com");
//! assert_eq!(targets[0].repository, "dr/prod/api");
//! assert!(config.destinations_for("prod/api", Some("1.4.2-dev"))?.is_empty());
//! # Ok::<(), ferry::config::ConfigError>(())
//! ```

mod archive;
mod arn;
mod bind;
mod ca;
mod chain;
mod destination;
mod endpoint_checks;
mod error;
mod fan_in;
mod filter;
mod gates;
mod index;
mod model;
mod native;
mod organization;
mod parse;
mod partition;
mod pull_through;
mod registry;
mod select;
mod signature_check;
mod template;
mod validate;
mod wildcard;

#[cfg(test)]
mod tests;

pub use ca::{MAX_CA_CERTIFICATES, parse_ca_certificate};
pub use destination::{Destination, Endpoint, Target};
pub use error::{ConfigError, Issue, Severity};
pub use filter::{
    RepositoryFilter, RepositoryFilterType, TagFilter, TagFilterType, parse_version_tag,
};
pub use gates::{
    CosignVerifier, DEFAULT_WAIT_MINUTES, FindingSeverity, GateChoice, Gates, MAX_IGNORED_FINDINGS,
    MAX_PLATFORMS, MAX_TRUST_ENTRIES, MAX_WAIT_MINUTES, NotationVerifier, ScanGate, SignatureGate,
};
pub use index::{DestinationIndex, Selection};
pub use model::{
    ApiRates, ArchiveMode, DestinationSpec, RegistryEndpoint, ReplicationConfig, Rule, SourceSpec,
};
pub use native::{NativeOverlap, NativeRule};
pub use organization::{
    AccountQuery, AccountScope, AccountState, OrgAccount, OrgAccounts, Resolution,
    ResolvedOrganization, Skipped,
};
pub use parse::Loaded;
pub use pull_through::{cache_prefix, rule_names_cache};
pub use registry::Registry;
pub(crate) use signature_check::{TrustedIdentity, cosign_key, trusted_identity, trusted_root};
pub use template::{MAX_REPOSITORY_NAME, RepositoryTemplate, SourceParts, check_repository_name};
pub use validate::{
    ECR_MAX_DESTINATIONS, ECR_MAX_REPOSITORY_FILTERS, ECR_MAX_RULES, MAX_ORGANIZATION_REGIONS,
};
pub use wildcard::{tag_immutable, wildcard};

/// The JSON schema of the configuration document (both accepted shapes), generated from the
/// types. The committed copy is `schema/ferry-config.schema.json`.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(model::ConfigDocument).to_value()
}
