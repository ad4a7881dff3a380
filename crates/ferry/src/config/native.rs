//! ECR native replication beside Ferry: where a native rule (read with `DescribeRegistry`
//! at the source) and a Ferry rule send the same repository to the same destination
//! repository, both write it: every image twice, and tags that race.
//!
//! Pure logic: the caller reads the native rules and lists the source repositories.

use std::collections::BTreeMap;

use serde::Serialize;

use super::destination::Destination;
use super::model::ReplicationConfig;
use super::registry::{Registry, check_region, check_registry_id};

/// One native replication rule as `DescribeRegistry` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeRule {
    /// Destination registries: (registry ID, region).
    pub destinations: Vec<(String, String)>,
    /// `PREFIX_MATCH` filters; empty means every repository.
    pub prefixes: Vec<String>,
}

impl NativeRule {
    /// Whether the rule replicates `repository` (ECR's meaning: no filter, or a prefix).
    pub fn selects(&self, repository: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| repository.starts_with(p))
    }

    /// The destination registries whose ID and region are well formed (the answer comes
    /// from outside: anything else cannot be a registry Ferry writes to, and is ignored).
    fn registries(&self) -> impl Iterator<Item = Registry> + '_ {
        self.destinations
            .iter()
            .filter(|(id, region)| check_registry_id(id).is_ok() && check_region(region).is_ok())
            .map(|(id, region)| Registry::Ecr {
                registry_id: id.clone(),
                region: region.clone(),
            })
    }
}

/// A native rule and a Ferry rule that both write the same repositories of one
/// destination registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeOverlap {
    /// Index of the native rule in the registry's replication configuration.
    pub native_rule: usize,
    /// Index of the Ferry rule in the config.
    pub ferry_rule: usize,
    /// The destination registry host.
    pub destination: String,
    /// How many source repositories both send there.
    pub repositories: usize,
    /// Up to [`NativeOverlap::EXAMPLES`] of them, sorted.
    pub examples: Vec<String>,
}

impl NativeOverlap {
    /// Repository names kept per overlap.
    pub const EXAMPLES: usize = 5;

    /// The warning, naming what to remove.
    pub fn message(&self) -> String {
        let more = self.repositories.saturating_sub(self.examples.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "ECR native replication rule {n} and Ferry rule {f} both send {count} repositories \
             ({examples}{more}) to {dst}: every image is written twice and tags race. Remove \
             {dst} from native rule {n} (aws ecr put-replication-configuration): Ferry's rule \
             also backfills, filters tags and replicates deletes. Or remove it from Ferry's \
             rules[{f}] to keep native replication.",
            n = self.native_rule,
            f = self.ferry_rule,
            count = self.repositories,
            examples = self.examples.join(", "),
            dst = self.destination,
        )
    }
}

impl ReplicationConfig {
    /// Every (native rule, Ferry rule, destination) pair that writes the same repository,
    /// over the source's `repositories`: a Ferry destination counts when it is an ECR
    /// registry of the native rule and keeps the repository's name (a renamed copy lands
    /// elsewhere). Organization destinations count once resolved; unresolved ones are not
    /// compared.
    pub fn native_overlaps(
        &self,
        native: &[NativeRule],
        repositories: &[String],
    ) -> Vec<NativeOverlap> {
        let mut found: BTreeMap<(usize, usize, String), Vec<&str>> = BTreeMap::new();
        for (f, rule) in self.rules.iter().enumerate() {
            let destinations: Vec<Destination> = rule
                .destinations
                .iter()
                .filter(|spec| !spec.is_organization())
                .filter_map(|spec| Destination::resolve(spec, self.source.as_ref(), "").ok())
                .filter(|d| d.registry.is_ecr())
                .collect();
            for repository in repositories.iter().filter(|r| rule.repository_selected(r)) {
                for destination in &destinations {
                    if destination.repository_for(repository).ok().as_deref() != Some(repository) {
                        continue;
                    }
                    for (n, native_rule) in native.iter().enumerate() {
                        if native_rule.selects(repository)
                            && native_rule.registries().any(|r| r == destination.registry)
                        {
                            found
                                .entry((n, f, destination.registry.host()))
                                .or_default()
                                .push(repository);
                        }
                    }
                }
            }
        }
        found
            .into_iter()
            .map(|((native_rule, ferry_rule, destination), mut names)| {
                names.sort_unstable();
                names.dedup();
                NativeOverlap {
                    native_rule,
                    ferry_rule,
                    destination,
                    repositories: names.len(),
                    examples: names
                        .iter()
                        .take(NativeOverlap::EXAMPLES)
                        .map(|s| s.to_string())
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(destinations: &[(&str, &str)], prefixes: &[&str]) -> NativeRule {
        NativeRule {
            destinations: destinations
                .iter()
                .map(|(a, r)| (a.to_string(), r.to_string()))
                .collect(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// Every repository of 111111111111 in us-east-1 to 222222222222 in eu-west-1.
    fn everything_to_222() -> ReplicationConfig {
        ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
        )
        .unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn same_repository_same_destination_is_an_overlap_and_renames_are_not() {
        let config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [
                  {"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}],
                   "repositoryFilters": [{"filter": "prod/*", "filterType": "WILDCARD"}]},
                  {"destinations": [{"registryId": "222222222222", "region": "eu-west-1",
                                     "repositoryName": "mirror/{repository}"},
                                    {"registry": "ghcr.io"}]}
                ]}"#,
        )
        .unwrap();
        let native = [
            native(
                &[("222222222222", "eu-west-1"), ("333333333333", "eu-west-1")],
                &["prod/"],
            ),
            native(&[("222222222222", "us-west-2")], &[]),
        ];
        let repos = names(&["prod/api", "prod/web", "dev/api", "production"]);
        let found = config.native_overlaps(&native, &repos);
        assert_eq!(
            found,
            [NativeOverlap {
                native_rule: 0,
                ferry_rule: 0,
                destination: "222222222222.dkr.ecr.eu-west-1.amazonaws.com".into(),
                repositories: 2,
                examples: names(&["prod/api", "prod/web"]),
            }]
        );
        let message = found[0].message();
        assert!(
            message
                .contains("Remove 222222222222.dkr.ecr.eu-west-1.amazonaws.com from native rule 0"),
            "{message}"
        );
        assert!(config.native_overlaps(&[], &repos).is_empty());
    }

    #[test]
    fn a_malformed_native_destination_is_never_a_registry() {
        let config = everything_to_222();
        // A hostile or broken answer: an ID that is a host name, a region with a path.
        let hostile = [native(
            &[
                ("evil.example/x", "eu-west-1"),
                ("222222222222", "eu-west-1/../x"),
            ],
            &[],
        )];
        assert!(
            config
                .native_overlaps(&hostile, &names(&["app"]))
                .is_empty()
        );
        let honest = [native(&[("222222222222", "eu-west-1")], &[])];
        assert_eq!(config.native_overlaps(&honest, &names(&["app"])).len(), 1);
    }

    #[test]
    fn many_repositories_keep_a_few_examples() {
        let config = everything_to_222();
        let repos: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
        let found =
            config.native_overlaps(&[native(&[("222222222222", "eu-west-1")], &[])], &repos);
        assert_eq!(found[0].repositories, 40);
        assert_eq!(found[0].examples.len(), NativeOverlap::EXAMPLES);
        assert!(found[0].message().contains("and 35 more"));
    }
}
