//! Pull-through cache repositories (ECR's `<prefix>/<upstream name>`): their content is
//! someone else's, cached on pull. They are sources only when a rule *names* them: one of
//! its repository filters matches the repository and that filter's literal start (a
//! `PREFIX_MATCH` filter's whole text, a `WILDCARD` filter's text before its first `*`) is
//! the cache prefix itself or lies inside it. A rule without repository filters, a bare
//! `*`, a `REGEX` filter, or a prefix that merely overlaps (`docker` for `docker-hub`) does
//! not name it.
//!
//! The prefixes are a fact of the source registry, read at run time
//! ([`ReplicationConfig::pull_through_prefixes`]); every path that selects images (plan,
//! dispatch, authorize) applies the same rule through [`ReplicationConfig::destinations_for`].

use super::filter::RepositoryFilterType;
use super::model::{ReplicationConfig, Rule};

/// The cache prefix `repository` lies under, if any.
pub fn cache_prefix<'a>(prefixes: &'a [String], repository: &str) -> Option<&'a str> {
    prefixes
        .iter()
        .find(|p| {
            repository
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .map(String::as_str)
}

/// Whether `rule` names the cache repository `repository` under `prefix` (see the module
/// documentation).
pub fn rule_names_cache(rule: &Rule, prefix: &str, repository: &str) -> bool {
    rule.repository_filters.iter().any(|f| {
        let literal = match f.filter_type() {
            RepositoryFilterType::PrefixMatch => f.filter(),
            RepositoryFilterType::Wildcard => f.filter().split('*').next().unwrap_or_default(),
            RepositoryFilterType::Regex => return false,
        };
        let inside = literal == prefix
            || literal
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        inside && f.matches(repository)
    })
}

impl ReplicationConfig {
    /// Whether `rule` may not select `repository` because it is a pull-through cache
    /// repository of the source that the rule does not name.
    pub(crate) fn leaves_out_cache(&self, rule: &Rule, repository: &str) -> bool {
        cache_prefix(&self.pull_through_prefixes, repository)
            .is_some_and(|prefix| !rule_names_cache(rule, prefix, repository))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_cache_repository_goes_nowhere_a_named_one_goes_where_its_rule_says() {
        let mut config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [
                  {"destinations": [{"registryId": "222222222222", "region": "us-east-1"}]},
                  {"repositoryFilters": [{"filter": "docker-hub/library/", "filterType": "PREFIX_MATCH"}],
                   "destinations": [{"registryId": "333333333333", "region": "us-east-1"}]}
                ]}"#,
        )
        .unwrap();
        let accounts = |config: &ReplicationConfig, repository: &str| -> Vec<String> {
            config
                .destinations_for(repository, Some("v1"))
                .unwrap()
                .iter()
                .map(|t| t.destination.registry_host()[..12].to_string())
                .collect()
        };
        assert_eq!(
            accounts(&config, "docker-hub/library/nginx"),
            ["222222222222", "333333333333"]
        );
        config.pull_through_prefixes = vec!["docker-hub".into()];
        assert_eq!(
            accounts(&config, "docker-hub/library/nginx"),
            ["333333333333"],
            "only the rule that names the cache"
        );
        assert!(accounts(&config, "docker-hub/other/x").is_empty());
        assert!(!config.repository_selected("docker-hub/other/x"));
        assert_eq!(accounts(&config, "team/app"), ["222222222222"]);
        assert_eq!(accounts(&config, "docker-hubby/x"), ["222222222222"]);
    }
}
