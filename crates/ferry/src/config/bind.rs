//! Binding a configuration to the registry an image comes from.
//!
//! An ECR replication configuration applies to the registry it is set on, so a document
//! may leave its `source` out (a bare `{"rules": …}`) or name it in part (the
//! `describe-registry` output names the account but not the region). Where the document
//! names a field, an image from a registry with another value is not the config's to
//! replicate; where it leaves a field out, the image's registry supplies it, so
//! `{registryId}` and `{region}` in `repositoryName` render as that registry's.

use std::borrow::Cow;

use super::model::{ReplicationConfig, SourceSpec};
use super::registry::Registry;

impl ReplicationConfig {
    /// The configuration as it applies to images of `registry`, or `None` when its `source`
    /// names another registry. A fully pinned source comes back borrowed; otherwise a copy
    /// whose `source` is completed from `registry`.
    ///
    /// ```
    /// use ferry::config::{Registry, ReplicationConfig};
    ///
    /// let config = ReplicationConfig::from_json(r#"{"source": {"registryId": "111111111111"},
    ///   "rules": [{"destinations": [{"registry": "ghcr.io", "repositoryName": "{region}/{repository}"}]}]}"#)?;
    /// let home = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
    /// let bound = config.for_source(&home).expect("the config's account");
    /// assert_eq!(bound.destinations_for("app", Some("v1"))?[0].repository, "eu-west-1/app");
    /// let other = Registry::from_host("222222222222.dkr.ecr.eu-west-1.amazonaws.com");
    /// assert!(config.for_source(&other).is_none());
    /// # Ok::<(), ferry::config::ConfigError>(())
    /// ```
    pub fn for_source(&self, registry: &Registry) -> Option<Cow<'_, ReplicationConfig>> {
        let bound = self.bind_source(registry)?;
        let account = match registry {
            Registry::Ecr { registry_id, .. } if self.source_registry().is_none() => registry_id,
            _ => return Some(bound),
        };
        let mut config = bound.into_owned();
        config.drop_resolved_account(account);
        Some(Cow::Owned(config))
    }

    /// The configuration with its `source` completed from `registry`, as
    /// [`ReplicationConfig::for_source`] but keeping every destination: also those resolved
    /// from an organization in `registry`'s own account. This is the configuration that
    /// says where images of *other* sources go, so the loop guard asks it whether an image
    /// in `registry` is Ferry's own copy.
    pub fn bind_source(&self, registry: &Registry) -> Option<Cow<'_, ReplicationConfig>> {
        let spec = self.source.clone().unwrap_or_default();
        let bound = match (&spec.registry, registry) {
            (Some(host), _) => {
                return (Registry::from_host(host) == *registry).then_some(Cow::Borrowed(self));
            }
            (
                None,
                Registry::Ecr {
                    registry_id,
                    region,
                },
            ) => {
                let same = |pinned: &Option<String>, actual: &String| {
                    pinned.as_ref().is_none_or(|p| p == actual)
                };
                if !same(&spec.registry_id, registry_id)
                    || !same(&spec.region, region)
                    || !(spec.regions.is_empty() || spec.regions.contains(region))
                {
                    return None;
                }
                if spec.registry_id.is_some() && spec.region.is_some() {
                    return Some(Cow::Borrowed(self));
                }
                SourceSpec {
                    registry_id: Some(registry_id.clone()),
                    region: Some(region.clone()),
                    regions: Vec::new(),
                    ..spec
                }
            }
            (None, Registry::Oci { host }) => {
                if spec.registry_id.is_some() || spec.region.is_some() {
                    return None;
                }
                SourceSpec {
                    registry: Some(host.clone()),
                    ..spec
                }
            }
        };
        let mut config = self.clone();
        config.source = Some(bound);
        if let Some(prefixes) = self.pull_through_by_registry.get(&registry.host()) {
            config.pull_through_prefixes = prefixes.clone();
        }
        Some(Cow::Owned(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_EAST: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
    const A_WEST: &str = "111111111111.dkr.ecr.eu-west-1.amazonaws.com";
    const B_EAST: &str = "222222222222.dkr.ecr.us-east-1.amazonaws.com";

    fn config(source: &str) -> ReplicationConfig {
        ReplicationConfig::from_json(&format!(
            r#"{{{source} "rules": [{{"destinations": [{{"registry": "mirror.example",
                 "repositoryName": "{{registryId}}/{{region}}/{{repository}}"}}]}}]}}"#
        ))
        .unwrap()
    }

    fn rendered(config: &ReplicationConfig, host: &str) -> Option<String> {
        let bound = config.for_source(&Registry::from_host(host))?;
        Some(
            bound.destinations_for("app", Some("v1")).unwrap()[0]
                .repository
                .clone(),
        )
    }

    #[test]
    fn pinned_fields_must_match_and_missing_ones_come_from_the_image() {
        let account = config(r#""source": {"registryId": "111111111111"},"#);
        assert_eq!(
            rendered(&account, A_WEST).as_deref(),
            Some("111111111111/eu-west-1/app")
        );
        assert_eq!(
            rendered(&account, B_EAST),
            None,
            "another account's image is not this config's"
        );
        let pinned = config(r#""source": {"registryId": "111111111111", "region": "us-east-1"},"#);
        assert!(matches!(
            pinned.for_source(&Registry::from_host(A_EAST)),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(rendered(&pinned, A_WEST), None, "another region");
        let listed =
            config(r#""source": {"registryId": "111111111111", "regions": ["us-east-1"]},"#);
        assert_eq!(
            rendered(&listed, A_EAST).as_deref(),
            Some("111111111111/us-east-1/app")
        );
        assert_eq!(rendered(&listed, A_WEST), None, "a region not listed");
        let open = config("");
        assert_eq!(
            rendered(&open, B_EAST).as_deref(),
            Some("222222222222/us-east-1/app"),
            "no source: the image's registry is the source"
        );
        assert!(
            open.destinations_for("app", Some("v1")).is_err(),
            "unbound placeholders never render"
        );
    }

    #[test]
    fn oci_sources() {
        let oci = ReplicationConfig::from_json(
            r#"{"source": {"registry": "registry.example:5000"},
                "rules": [{"destinations": [{"registry": "mirror.example"}]}]}"#,
        )
        .unwrap();
        assert!(
            oci.for_source(&Registry::from_host("registry.example:5000"))
                .is_some()
        );
        assert!(oci.for_source(&Registry::from_host(A_EAST)).is_none());
        let account = config(r#""source": {"registryId": "111111111111"},"#);
        assert!(
            account
                .for_source(&Registry::from_host("registry.example"))
                .is_none()
        );
    }

    #[test]
    fn binding_picks_the_registrys_own_pull_through_prefixes() {
        let mut open = config(r#""source": {"registryId": "111111111111"},"#);
        open.pull_through_by_registry
            .insert(A_EAST.into(), vec!["docker-hub".into()]);
        let east = open.for_source(&Registry::from_host(A_EAST)).unwrap();
        assert_eq!(east.pull_through_prefixes, ["docker-hub"]);
        assert!(
            east.destinations_for("docker-hub/library/nginx", Some("v1"))
                .unwrap()
                .is_empty(),
            "a cache repository no rule names goes nowhere"
        );
        let west = open.for_source(&Registry::from_host(A_WEST)).unwrap();
        assert!(
            west.pull_through_prefixes.is_empty(),
            "another registry's rules"
        );
    }
}
