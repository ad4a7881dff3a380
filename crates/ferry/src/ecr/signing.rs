//! ECR managed signing at a destination (`GetSigningConfiguration`): a registry whose
//! signing rules select a repository signs every image pushed there itself (AWS Signer,
//! Notation signatures pushed by ECR as referrers). Ferry then does not copy the source's
//! signatures as well, unless the rule says `referrers: true` explicitly.
//!
//! The configuration comes from outside: rules and filters are capped, and a filter that
//! is not a repository-name wildcard (characters of the distribution grammar and `*`) is
//! dropped, so it can never widen what a rule selects.

use crate::aws::{AssumeRole, sdk_error};
use crate::config::wildcard;
use crate::error::Error;
use crate::reference::EcrRegistry;

use super::{EcrControl, is_code};

/// Artifact type of a Notation signature (what ECR managed signing pushes).
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";

/// Most signing rules read from one configuration (ECR allows 10).
pub const MAX_SIGNING_RULES: usize = 100;
/// Most repository filters read per signing rule (ECR allows 100).
pub const MAX_SIGNING_FILTERS: usize = 100;
/// Longest repository filter or profile ARN kept.
const MAX_FIELD_LEN: usize = 2048;

/// One signing rule: the AWS Signer profile, and the repositories it signs (empty: all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningRule {
    /// The AWS Signer signing profile ARN (for reports only; never called).
    pub profile_arn: String,
    /// Wildcard filters (`*` any run of characters); empty means every repository.
    pub filters: Vec<String>,
}

/// A registry's managed signing configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningConfig {
    /// The rules, as far as they were usable.
    pub rules: Vec<SigningRule>,
}

impl SigningConfig {
    /// The profile of the first rule that signs `repository`, if any does.
    pub fn profile_for(&self, repository: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.filters.is_empty() || r.filters.iter().any(|f| wildcard(f, repository)))
            .map(|r| r.profile_arn.as_str())
    }
}

/// Whether `filter` may be used as a repository wildcard: non-empty, not too long, and
/// only characters a repository name can hold, plus `*`.
fn filter_ok(filter: &str) -> bool {
    !filter.is_empty()
        && filter.len() <= MAX_FIELD_LEN
        && filter
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
}

/// A profile ARN as it may be shown in a report: printable ASCII, bounded.
fn profile_ok(arn: &str) -> bool {
    arn.starts_with("arn:")
        && arn.len() <= MAX_FIELD_LEN
        && arn.bytes().all(|b| b.is_ascii_graphic())
}

impl EcrControl {
    /// The registry's managed signing configuration; `None` when it has none, or when it
    /// cannot be read for this registry: GetSigningConfiguration has no registry ID and
    /// answers for the caller's own registry, so an answer naming another account (a
    /// destination written through a registry policy, without a `roleArn` into it) is
    /// not this registry's and is not used.
    pub async fn signing_configuration(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Result<Option<SigningConfig>, Error> {
        let client = self.aws().ecr(registry, role).await;
        let out = match client.get_signing_configuration().send().await {
            Ok(o) => o,
            Err(e) if is_code(&e, "SigningConfigurationNotFoundException") => return Ok(None),
            Err(e) => return Err(sdk_error("ecr", "GetSigningConfiguration", e)),
        };
        if out.registry_id() != Some(registry.account.as_str()) {
            tracing::warn!(registry = %registry.host(), answered_for = ?out.registry_id(), "GetSigningConfiguration answered for another registry: its signing configuration is unknown");
            return Ok(None);
        }
        let Some(config) = out.signing_configuration() else {
            return Ok(None);
        };
        let mut rules = Vec::new();
        for rule in config.rules().iter().take(MAX_SIGNING_RULES) {
            let profile_arn = if profile_ok(rule.signing_profile_arn()) {
                rule.signing_profile_arn().to_string()
            } else {
                "<invalid profile ARN>".to_string()
            };
            let given = rule.repository_filters();
            let filters: Vec<String> = given
                .iter()
                .take(MAX_SIGNING_FILTERS)
                .map(|f| f.filter())
                .filter(|f| {
                    let ok = filter_ok(f);
                    if !ok {
                        tracing::warn!(registry = %registry.host(), filter = %f.escape_debug(), "signing rule filter is not a repository wildcard: ignored");
                    }
                    ok
                })
                .map(str::to_string)
                .collect();
            if !given.is_empty() && filters.is_empty() {
                // Every filter was refused: the rule must not turn into "all repositories".
                continue;
            }
            rules.push(SigningRule {
                profile_arn,
                filters,
            });
        }
        Ok(Some(SigningConfig { rules }))
    }
}
