//! Fan-in: several source repositories rendering one destination repository (two rules, or
//! a `repositoryName` without `{repository}`). A delete or an archive that one source makes
//! must not act on a copy another selecting source still holds; this finds those sources.

use super::model::ReplicationConfig;
use super::registry::Registry;
use super::template::SourceParts;

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
}
