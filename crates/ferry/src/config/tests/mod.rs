//! Cross-cutting tests of the configuration module.

mod errors;
mod examples;
mod extensions;
mod native;
mod partitions;
mod props;
mod schema;
mod validation;

use super::{Issue, ReplicationConfig, Severity};

/// Loads a configuration that must be valid.
fn load(json: &str) -> ReplicationConfig {
    ReplicationConfig::from_json(json).unwrap_or_else(|error| panic!("{error}"))
}

/// Every finding of a configuration that must decode.
fn issues(json: &str) -> Vec<Issue> {
    let config: ReplicationConfig =
        serde_json::from_str(json).unwrap_or_else(|error| panic!("{error}"));
    config.validate()
}

/// The findings of one severity, as `path: message`.
fn findings(json: &str, severity: Severity) -> Vec<String> {
    issues(json)
        .into_iter()
        .filter(|issue| issue.severity == severity)
        .map(|issue| format!("{}: {}", issue.path, issue.message))
        .collect()
}

/// `(host, repository)` of every target of an image.
fn targets(
    config: &ReplicationConfig,
    repository: &str,
    tag: Option<&str>,
) -> Vec<(String, String)> {
    let mut all: Vec<_> = config
        .destinations_for(repository, tag)
        .unwrap_or_else(|error| panic!("{error}"))
        .into_iter()
        .map(|target| (target.destination.registry_host(), target.repository))
        .collect();
    all.sort();
    all
}
