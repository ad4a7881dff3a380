//! Pull-through cache repositories at an ECR source (`DescribePullThroughCacheRules`):
//! their content is someone else's (Docker Hub, Quay, another registry), cached on pull.
//! They are sources only when a rule *names* them.
//!
//! A rule names the cache repository `<prefix>/<name>` when one of its repository filters
//! matches it and that filter's literal start (a `PREFIX_MATCH` filter's whole text, a
//! `WILDCARD` filter's text before its first `*`) is the cache prefix itself or lies inside
//! it (`<prefix>/…`). A rule without repository filters, a bare `*`, a `REGEX` filter, or a
//! prefix that merely overlaps (`docker` for the cache `docker-hub`) does not name it: the
//! repository is left out of the plan and reported as such.
//!
//! The prefixes come from outside: each must be a valid repository name (else it is
//! ignored and reported), and at most [`MAX_CACHE_RULES`] are read.

use crate::aws::{AssumeRole, sdk_error};
use crate::error::Error;
use crate::reference::{EcrRegistry, validate_repository};

use super::EcrControl;

/// Most pull-through cache rules read from one registry (ECR allows 50).
pub const MAX_CACHE_RULES: usize = 1000;

impl EcrControl {
    /// The registry's pull-through cache repository prefixes, each a valid repository
    /// name (others are logged and ignored: they could never be a repository's start).
    pub async fn pull_through_prefixes(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Result<Vec<String>, Error> {
        let client = self.aws().ecr(registry, role).await;
        let mut pages = client
            .describe_pull_through_cache_rules()
            .registry_id(&registry.account)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut read = 0usize;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ecr", "DescribePullThroughCacheRules", e))?;
            for rule in page.pull_through_cache_rules() {
                read += 1;
                if read > MAX_CACHE_RULES {
                    return Err(Error::Aws {
                        service: "ecr",
                        operation: "DescribePullThroughCacheRules",
                        message: format!("more than {MAX_CACHE_RULES} rules: listing not used"),
                        retryable: false,
                    });
                }
                let Some(prefix) = rule.ecr_repository_prefix() else {
                    continue;
                };
                match validate_repository(prefix) {
                    Ok(()) if !out.iter().any(|p| p == prefix) => out.push(prefix.to_string()),
                    Ok(()) => {}
                    Err(reason) => {
                        tracing::warn!(registry = %registry.host(), prefix = %prefix.escape_debug(), "pull-through cache prefix ignored: {reason}");
                    }
                }
            }
        }
        Ok(out)
    }
}

pub use crate::config::{cache_prefix, rule_names_cache};

/// Where the pull-through cache prefixes of a source registry come from (the functions keep
/// them beside the configuration, so dispatch and replicate select as `ferry plan` does).
#[async_trait::async_trait]
pub trait CachePrefixes: Send + Sync + std::fmt::Debug {
    /// The registry's pull-through cache prefixes.
    async fn prefixes(&self, registry: &EcrRegistry) -> Result<Vec<String>, Error>;
}

#[async_trait::async_trait]
impl CachePrefixes for EcrControl {
    async fn prefixes(&self, registry: &EcrRegistry) -> Result<Vec<String>, Error> {
        self.pull_through_prefixes(registry, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RepositoryFilter, RepositoryFilterType, Rule};

    fn rule(filters: &[(&str, RepositoryFilterType)]) -> Rule {
        Rule {
            repository_filters: filters
                .iter()
                .map(|(f, t)| RepositoryFilter::new(*f, *t).unwrap())
                .collect(),
            ..Rule::default()
        }
    }

    #[test]
    fn only_a_filter_inside_the_cache_prefix_names_it() {
        use RepositoryFilterType::*;
        let repo = "docker-hub/library/nginx";
        assert!(rule_names_cache(
            &rule(&[("docker-hub/", PrefixMatch)]),
            "docker-hub",
            repo
        ));
        assert!(rule_names_cache(
            &rule(&[("docker-hub", PrefixMatch)]),
            "docker-hub",
            repo
        ));
        assert!(rule_names_cache(
            &rule(&[("docker-hub/library/*", Wildcard)]),
            "docker-hub",
            repo
        ));
        // Not named: everything, an overlapping prefix, a bare `*`, a regex, or a filter
        // inside the prefix that does not match this repository.
        assert!(!rule_names_cache(&rule(&[]), "docker-hub", repo));
        assert!(!rule_names_cache(
            &rule(&[("docker", PrefixMatch)]),
            "docker-hub",
            repo
        ));
        assert!(!rule_names_cache(
            &rule(&[("*", Wildcard)]),
            "docker-hub",
            repo
        ));
        assert!(!rule_names_cache(
            &rule(&[("*/nginx", Wildcard)]),
            "docker-hub",
            repo
        ));
        assert!(!rule_names_cache(
            &rule(&[("docker-hub/.*", Regex)]),
            "docker-hub",
            repo
        ));
        assert!(!rule_names_cache(
            &rule(&[("docker-hub/other/", PrefixMatch)]),
            "docker-hub",
            repo
        ));
    }

    #[test]
    fn cache_prefix_is_a_whole_path_segment() {
        let prefixes = vec!["docker-hub".to_string(), "quay".to_string()];
        assert_eq!(
            cache_prefix(&prefixes, "docker-hub/library/nginx"),
            Some("docker-hub")
        );
        assert_eq!(cache_prefix(&prefixes, "quay/x"), Some("quay"));
        assert_eq!(cache_prefix(&prefixes, "docker-hubby/x"), None);
        assert_eq!(cache_prefix(&prefixes, "docker-hub"), None);
        assert_eq!(cache_prefix(&prefixes, "team/app"), None);
    }
}
