//! Fan-in: several source repositories rendering one destination repository (two rules, or
//! a `repositoryName` without `{repository}`). A delete or an archive that one source makes
//! must not act on a copy another selecting source still holds; this finds those sources.

use super::error::Issue;
use super::model::{ArchiveMode, ReplicationConfig};
use super::registry::Registry;
use super::template::{RepositoryTemplate, SourceParts};

impl ReplicationConfig {
    /// The source repositories (of this configuration's source registry, which must be
    /// bound) whose image `tag` (`None`: by digest) the rules send to `repository` at
    /// `registry`, besides `except`. Found by inverting each destination's template; a
    /// template without `{repository}` renders every repository the same, so its rule's
    /// other sources cannot be named from the destination alone: `candidates` (repositories
    /// listed at the source, when the caller has them) are tried for those.
    pub fn other_sources_of(
        &self,
        registry: &Registry,
        repository: &str,
        tag: Option<&str>,
        except: &str,
        candidates: &[String],
    ) -> Vec<String> {
        let Ok(destinations) = self.destinations() else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for d in destinations.iter().filter(|d| d.registry == *registry) {
            match &d.template {
                None => names.push(repository.to_owned()),
                Some(t) if t.uses_repository() => {
                    if let Some(SourceParts { repository, .. }) = t.source_parts_of(repository) {
                        names.push(repository);
                    }
                }
                Some(_) => names.extend(candidates.iter().cloned()),
            }
        }
        names.sort();
        names.dedup();
        names.retain(|name| {
            name != except
                && self.destinations_for(name, tag).is_ok_and(|targets| {
                    targets
                        .iter()
                        .any(|t| t.destination.registry == *registry && t.repository == repository)
                })
        });
        names
    }
}

impl ReplicationConfig {
    /// The source repositories, in every source registry this configuration replicates
    /// from, whose image `tag` (`None`: by digest) the rules send to `repository` at
    /// `registry`, besides `except` of `source`: [`ReplicationConfig::other_sources_of`] of
    /// `source` and of each other registry a partial source binds to (the other
    /// `source.regions` of the same account). Call it on the loaded (unbound)
    /// configuration.
    pub fn fan_in_sources(
        &self,
        source: &Registry,
        registry: &Registry,
        repository: &str,
        tag: Option<&str>,
        except: &str,
        candidates: &[String],
    ) -> Vec<(Registry, String)> {
        let mut out = Vec::new();
        for from in std::iter::once(source.clone()).chain(self.sibling_sources(source)) {
            let Some(bound) = self.for_source(&from) else {
                continue;
            };
            let except = if from == *source { except } else { "" };
            for name in bound.other_sources_of(registry, repository, tag, except, candidates) {
                out.push((from.clone(), name));
            }
        }
        out
    }

    /// The other registries this configuration replicates from besides `source`: with a
    /// source whose region is left out, the same account in the other `source.regions`.
    fn sibling_sources(&self, source: &Registry) -> Vec<Registry> {
        let (
            Some(spec),
            Registry::Ecr {
                registry_id,
                region,
            },
        ) = (self.source.as_ref(), source)
        else {
            return Vec::new();
        };
        if spec.region.is_some() {
            return Vec::new();
        }
        spec.regions
            .iter()
            .filter(|r| *r != region)
            .map(|r| Registry::Ecr {
                registry_id: registry_id.clone(),
                region: r.clone(),
            })
            .collect()
    }
}

/// Warnings for deletes and archives that could act on a copy another source registry
/// still holds, with no way to ask that registry: a source bound from each event (its
/// account or region left out, and no `source.regions`) feeding a destination repository
/// whose name does not tell the source registries apart. A warning, not an error: an ECR
/// replication configuration with `deleteReplication` has this shape, and ECR applies it
/// to the one registry it is set on; Ferry then checks only the event's own registry.
pub(super) fn unknown_fan_in_issues(config: &ReplicationConfig) -> Vec<Issue> {
    let spec = config.source.clone().unwrap_or_default();
    if spec.registry.is_some() {
        return Vec::new();
    }
    let open_account = spec.registry_id.is_none();
    let open_region = spec.region.is_none() && spec.regions.is_empty();
    if !open_account && !open_region {
        return Vec::new();
    }
    let mut issues = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let acts = match (rule.deletes, rule.archive == ArchiveMode::Follow) {
            (true, _) => "deletes",
            (false, true) => "archive: \"follow\"",
            (false, false) => continue,
        };
        for (j, d) in rule.destinations.iter().enumerate() {
            let template = d
                .repository_name
                .as_deref()
                .and_then(|t| RepositoryTemplate::parse(t).ok());
            let region_apart = template
                .as_ref()
                .is_some_and(RepositoryTemplate::uses_region);
            let account_apart = template
                .as_ref()
                .is_some_and(RepositoryTemplate::uses_registry_id);
            let missing = match (open_account && !account_apart, open_region && !region_apart) {
                (true, _) => "{registryId}",
                (false, true) => "{region}",
                (false, false) => continue,
            };
            issues.push(Issue::warning(
                format!("rules[{i}].destinations[{j}].repositoryName"),
                format!(
                    "the source is bound from each event and this name does not contain {missing}: if events of \
                     several source registries reach this configuration, the rule's {acts} in one of them act on a \
                     copy the others may still hold. Pin the source (`source.registryId` and `source.region`), list \
                     its regions in `source.regions` (each delete then asks the others), or add {missing} to \
                     repositoryName"
                ),
            ));
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rules_rendering_one_repository_name_each_other() {
        let config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [
                  {"repositoryFilters": [{"filter": "a", "filterType": "PREFIX_MATCH"}],
                   "destinations": [{"registryId": "222222222222", "region": "us-east-1", "repositoryName": "x/{repository}"}]},
                  {"repositoryFilters": [{"filter": "x/", "filterType": "PREFIX_MATCH"}],
                   "destinations": [{"registryId": "222222222222", "region": "us-east-1"}]},
                  {"repositoryFilters": [{"filter": "solo", "filterType": "PREFIX_MATCH"}],
                   "destinations": [{"registryId": "222222222222", "region": "us-east-1", "repositoryName": "merged"}]}
                ]}"#,
        )
        .unwrap();
        let dst = Registry::from_host("222222222222.dkr.ecr.us-east-1.amazonaws.com");
        // `a` lands in `x/a`, and so does the source's own `x/a`.
        assert_eq!(
            config.other_sources_of(&dst, "x/a", Some("v1"), "a", &[]),
            ["x/a"]
        );
        assert_eq!(
            config.other_sources_of(&dst, "x/a", Some("v1"), "x/a", &[]),
            ["a"]
        );
        assert!(
            config
                .other_sources_of(&dst, "x/b", Some("v1"), "x/b", &[])
                .is_empty()
        );
        // A fixed name: only listed candidates can be named.
        let listed = [
            "solo1".to_string(),
            "solo2".to_string(),
            "other".to_string(),
        ];
        assert_eq!(
            config.other_sources_of(&dst, "merged", Some("v1"), "solo1", &listed),
            ["solo2"]
        );
    }

    #[test]
    fn forwarded_regions_feed_one_destination_repository() {
        let config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "regions": ["us-east-1", "eu-west-1"]},
                "rules": [{"deletes": true, "destinations": [{"registry": "mirror.example"}]},
                          {"repositoryFilters": [{"filter": "r/", "filterType": "PREFIX_MATCH"}],
                           "deletes": true,
                           "destinations": [{"registry": "regional.example", "repositoryName": "{region}/{repository}"}]}]}"#,
        )
        .unwrap();
        let east = Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com");
        let west = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
        let mirror = Registry::from_host("mirror.example");
        // `app` of either region lands in `mirror.example/app`.
        assert_eq!(
            config.fan_in_sources(&east, &mirror, "app", Some("v1"), "app", &[]),
            [(west.clone(), "app".to_string())]
        );
        assert_eq!(
            config.fan_in_sources(&west, &mirror, "app", Some("v1"), "app", &[]),
            [(east.clone(), "app".to_string())]
        );
        // A template naming the region keeps the regions apart.
        let regional = Registry::from_host("regional.example");
        assert!(
            config
                .fan_in_sources(&east, &regional, "us-east-1/r/app", None, "r/app", &[])
                .is_empty()
        );
        // A pinned source has no other registry.
        let pinned = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"deletes": true, "destinations": [{"registry": "mirror.example"}]}]}"#,
        )
        .unwrap();
        assert!(
            pinned
                .fan_in_sources(&east, &mirror, "app", Some("v1"), "app", &[])
                .is_empty()
        );
    }

    #[test]
    fn deletes_from_sources_bound_per_event_need_names_that_tell_them_apart() {
        let errors = |source: &str, name: &str| {
            let config: ReplicationConfig = serde_json::from_str(&format!(
                r#"{{{source} "rules": [{{"deletes": true, "destinations": [{{"registry": "mirror.example"{name}}}]}}]}}"#
            ))
            .unwrap();
            unknown_fan_in_issues(&config)
                .into_iter()
                .map(|i| i.message)
                .collect::<Vec<_>>()
        };
        let open_region = errors(r#""source": {"registryId": "111111111111"},"#, "");
        assert_eq!(open_region.len(), 1);
        assert!(open_region[0].contains("{region}"), "{open_region:?}");
        assert!(
            errors(
                r#""source": {"registryId": "111111111111"},"#,
                r#", "repositoryName": "{region}/{repository}""#
            )
            .is_empty()
        );
        assert!(
            errors(
                r#""source": {"registryId": "111111111111", "regions": ["us-east-1", "eu-west-1"]},"#,
                ""
            )
            .is_empty(),
            "the regions are listed: each delete asks the others"
        );
        let open = errors("", r#", "repositoryName": "{region}/{repository}""#);
        assert!(open[0].contains("{registryId}"), "{open:?}");
        assert!(
            errors(
                r#""source": {"registryId": "111111111111", "region": "us-east-1"},"#,
                ""
            )
            .is_empty()
        );
    }
}
