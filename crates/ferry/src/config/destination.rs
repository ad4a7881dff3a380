//! Resolved destinations and sources: the document's fields turned into a [`Registry`] and a
//! bound repository name template.

use super::error::{ConfigError, Issue};
use super::gates::GateChoice;
use super::model::{DestinationSpec, RegistryEndpoint, ReplicationConfig, SourceSpec};
use super::registry::Registry;
use super::template::{RepositoryTemplate, check_repository_name};

/// A destination ready to use, ECR or OCI alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The registry written to.
    pub registry: Registry,
    /// The `repositoryName` template with the source registry bound; `None` keeps the
    /// source repository name.
    pub template: Option<RepositoryTemplate>,
    /// IAM role to assume for writing (ECR only).
    pub role_arn: Option<String>,
    /// IAM role to assume for reading (ECR only): reconcile and the CLI's reads.
    pub read_role_arn: Option<String>,
    /// External ID for assuming `role_arn` (and `read_role_arn`).
    pub external_id: Option<String>,
    /// KMS key ARN for repositories Ferry creates (ECR only).
    pub kms_key: Option<String>,
    /// Leave new repositories to the destination's repository creation template (ECR only).
    pub use_creation_template: bool,
    /// Secrets Manager secret with the registry's credentials: `{"username", "password"}`
    /// for an OCI registry, an access key pair for ECR (used instead of Ferry's own identity
    /// and of any role). `None`: Docker's config.json (OCI), Ferry's identity or
    /// `roleArn` (ECR).
    pub credentials_secret_arn: Option<String>,
    /// JSON path of the destination in the configuration, e.g. `rules[0].destinations[1]`.
    pub path: String,
}

impl Destination {
    /// `host[:port]` of the destination registry:
    /// `<account>.dkr.ecr.<region>.amazonaws.com` for ECR.
    pub fn registry_host(&self) -> String {
        self.registry.host()
    }

    /// The destination repository for `source_repository`, rendered from the template and
    /// checked against the repository name grammar.
    pub fn repository_for(&self, source_repository: &str) -> Result<String, ConfigError> {
        let name = match &self.template {
            Some(template) => template.render(source_repository),
            None => source_repository.to_owned(),
        };
        check_repository_name(&name).map_err(|reason| ConfigError::RepositoryName {
            path: self.path.clone(),
            source_repository: source_repository.to_owned(),
            name: name.clone(),
            reason,
        })?;
        Ok(name)
    }

    /// Resolves one destination of the document. `source` supplies `{registryId}` and
    /// `{region}`. Fails with the first structural problem; field formats are checked by
    /// validation.
    pub(crate) fn resolve(
        spec: &DestinationSpec,
        source: Option<&SourceSpec>,
        path: &str,
    ) -> Result<Self, Issue> {
        if let Some(query) = spec.account_query() {
            return Err(Issue::error(
                path,
                format!(
                    "names {}, whose accounts are read from AWS Organizations at run time: this destination \
                     was used before they were read",
                    query.scope
                ),
            ));
        }
        let path = match &spec.resolved_from {
            Some(from) => format!(
                "{} (account {}, {})",
                from.path,
                spec.registry_id.as_deref().unwrap_or_default(),
                spec.region.as_deref().unwrap_or_default()
            ),
            None => path.to_owned(),
        };
        let path = path.as_str();
        let registry = match (&spec.registry, &spec.registry_id, &spec.region) {
            (Some(host), None, None) => Registry::from_host(host),
            (Some(_), _, _) => {
                return Err(Issue::error(
                    path,
                    "give either `registry` or `registryId` and `region`, not both",
                ));
            }
            (None, Some(id), Some(region)) => Registry::Ecr {
                registry_id: id.clone(),
                region: region.clone(),
            },
            (None, None, Some(_)) => return Err(Issue::error(path, "missing field `registryId`")),
            (None, Some(_), None) => return Err(Issue::error(path, "missing field `region`")),
            (None, None, None) => {
                return Err(Issue::error(
                    path,
                    "a destination needs `registryId` and `region` (ECR) or `registry` (OCI)",
                ));
            }
        };
        let template = match &spec.repository_name {
            None => None,
            Some(text) => {
                let at = format!("{path}.repositoryName");
                let template = RepositoryTemplate::parse(text)
                    .map_err(|message| Issue::error(&at, message))?;
                let (registry_id, region) = source_registry_parts(source);
                if source.is_some_and(|s| s.registry.is_some()) {
                    // A source named by host: what it lacks (an OCI registry has no account
                    // or region) no image can supply.
                    let bound = template.bind(registry_id.as_deref(), region.as_deref()).map_err(|missing| {
                        Issue::error(&at, format!("uses {{{missing}}} but the source registry `{}` has no {missing}", source.and_then(|s| s.registry.as_deref()).unwrap_or_default()))
                    })?;
                    Some(bound)
                } else {
                    // Fields the source leaves out are bound from each image's registry
                    // (`ReplicationConfig::for_source`).
                    Some(template.bind_known(registry_id.as_deref(), region.as_deref()))
                }
            }
        };
        let placeholders = |text: &Option<String>| {
            text.as_ref()
                .map(|t| render_account_placeholders(t, &registry))
        };
        Ok(Self {
            role_arn: placeholders(&spec.role_arn),
            read_role_arn: placeholders(&spec.read_role_arn),
            kms_key: placeholders(&spec.kms_key),
            registry,
            template,
            external_id: spec.external_id.clone(),
            use_creation_template: spec.use_creation_template,
            credentials_secret_arn: spec.credentials_secret_arn.clone(),
            path: path.to_owned(),
        })
    }
}

/// `{accountId}` and `{region}` in a destination's `roleArn` or `kmsKey`: the destination
/// registry's own (the way one organization destination names each account's role).
pub(crate) fn render_account_placeholders(text: &str, registry: &Registry) -> String {
    match registry {
        Registry::Ecr {
            registry_id,
            region,
        } => text
            .replace("{accountId}", registry_id)
            .replace("{region}", region),
        Registry::Oci { .. } => text.to_owned(),
    }
}

/// The account ID and region of an ECR source, as far as they are known.
fn source_registry_parts(source: Option<&SourceSpec>) -> (Option<String>, Option<String>) {
    match source {
        Some(SourceSpec {
            registry: Some(host),
            ..
        }) => match Registry::from_host(host) {
            Registry::Ecr {
                registry_id,
                region,
            } => (Some(registry_id), Some(region)),
            Registry::Oci { .. } => (None, None),
        },
        Some(spec) => (spec.registry_id.clone(), spec.region.clone()),
        None => (None, None),
    }
}

/// One place an image goes: the destination and the rendered repository, with the flags of
/// every matching rule merged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Where to write (from the first rule, in document order, that names it).
    pub destination: Destination,
    /// The destination repository name.
    pub repository: String,
    /// Copy referrers: true when any matching rule says so.
    pub referrers: bool,
    /// Some matching rule says `referrers: true` explicitly: then the source's signatures
    /// are copied even to a destination that signs images itself (ECR managed signing).
    pub referrers_explicit: bool,
    /// Propagate deletes: true when any matching rule says so.
    pub deletes: bool,
    /// Follow the source's archive storage class (`archive: "follow"`): true when any
    /// matching rule says so.
    pub archive: bool,
    /// The gates the image must pass first; `None` when any matching rule has none.
    pub gates: Option<GateChoice>,
    /// The platforms of an index to copy (the union over the matching rules); empty, when
    /// any matching rule names none: the image as it is.
    pub platforms: Vec<String>,
}

/// How to reach a registry: base URL and whether plain HTTP is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Base URL without a trailing slash, e.g. `https://ghcr.io` or `http://127.0.0.1:5000`.
    pub url: String,
    /// Whether the URL is plain HTTP.
    pub plain_http: bool,
}

impl ReplicationConfig {
    /// The source registry, when the configuration (or the defaults it was loaded with)
    /// names it completely.
    pub fn source_registry(&self) -> Option<Registry> {
        match self.source.as_ref()? {
            SourceSpec {
                registry: Some(host),
                ..
            } => Some(Registry::from_host(host)),
            SourceSpec {
                registry_id: Some(id),
                region: Some(region),
                ..
            } => Some(Registry::Ecr {
                registry_id: id.clone(),
                region: region.clone(),
            }),
            _ => None,
        }
    }

    /// Whether `registry` is the source registry (false when the source is not fully known).
    pub fn is_source(&self, registry: &Registry) -> bool {
        self.source_registry().as_ref() == Some(registry)
    }

    /// Every distinct destination of every rule, in document order (the first spelling of
    /// each registry and template wins).
    pub fn destinations(&self) -> Result<Vec<Destination>, ConfigError> {
        let mut all: Vec<Destination> = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            for (d, spec) in rule.destinations.iter().enumerate() {
                let path = format!("rules[{r}].destinations[{d}]");
                let destination =
                    Destination::resolve(spec, self.source.as_ref(), &path).map_err(|issue| {
                        ConfigError::Invalid {
                            issues: vec![issue],
                        }
                    })?;
                if !all.iter().any(|seen| {
                    seen.registry == destination.registry && seen.template == destination.template
                }) {
                    all.push(destination);
                }
            }
        }
        Ok(all)
    }

    /// The endpoint override for `registry` from `registries`, if any.
    pub fn registry_endpoint(&self, registry: &Registry) -> Option<&RegistryEndpoint> {
        self.registries
            .iter()
            .find(|(host, _)| Registry::from_host(host) == *registry)
            .map(|(_, endpoint)| endpoint)
    }

    /// How to reach `registry`: its `registries` override, else `https://<host>`.
    pub fn endpoint_for(&self, registry: &Registry) -> Endpoint {
        let host = registry.host();
        match self.registry_endpoint(registry) {
            Some(RegistryEndpoint {
                endpoint: Some(url),
                plain_http,
                ..
            }) => Endpoint {
                url: url.trim_end_matches('/').to_owned(),
                plain_http: *plain_http,
            },
            Some(RegistryEndpoint {
                endpoint: None,
                plain_http: true,
                ..
            }) => Endpoint {
                url: format!("http://{host}"),
                plain_http: true,
            },
            _ => Endpoint {
                url: format!("https://{host}"),
                plain_http: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceSpec {
        SourceSpec {
            registry_id: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            regions: Vec::new(),
            registry: None,
            repositories: Vec::new(),
            credentials_secret_arn: None,
        }
    }

    #[test]
    fn ecr_destination_host_and_template() {
        let mut spec = DestinationSpec::ecr("444455556666", "eu-west-1");
        spec.repository_name = Some("dr/{registryId}/{repository}".into());
        let destination =
            Destination::resolve(&spec, Some(&source()), "rules[0].destinations[0]").unwrap();
        assert_eq!(
            destination.registry_host(),
            "444455556666.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            destination.repository_for("team/api").unwrap(),
            "dr/111122223333/team/api"
        );
    }

    #[test]
    fn rendered_name_is_checked() {
        let mut spec = DestinationSpec::oci("ghcr.io");
        spec.repository_name = Some("org/{repository}".into());
        let destination = Destination::resolve(&spec, None, "rules[2].destinations[0]").unwrap();
        let error = destination.repository_for(&"a".repeat(253)).unwrap_err();
        assert_eq!(error.path(), "rules[2].destinations[0]");
        assert!(error.to_string().contains("longer than 256"), "{error}");
    }

    #[test]
    fn structural_errors() {
        let both = DestinationSpec {
            registry: Some("ghcr.io".into()),
            ..DestinationSpec::ecr("444455556666", "eu-west-1")
        };
        assert!(
            Destination::resolve(&both, None, "d")
                .unwrap_err()
                .message
                .contains("not both")
        );
        let no_region = DestinationSpec {
            region: None,
            ..DestinationSpec::ecr("444455556666", "x")
        };
        assert_eq!(
            Destination::resolve(&no_region, None, "d")
                .unwrap_err()
                .message,
            "missing field `region`"
        );
        let mut unbound = DestinationSpec::oci("ghcr.io");
        unbound.repository_name = Some("{region}/{repository}".into());
        let oci_source = SourceSpec {
            registry: Some("registry.example".into()),
            ..SourceSpec::default()
        };
        let issue = Destination::resolve(&unbound, Some(&oci_source), "d").unwrap_err();
        assert_eq!(issue.path, "d.repositoryName");
        assert!(issue.message.contains("has no region"), "{}", issue.message);
        // Without a source the placeholder waits for the image's registry; rendering it
        // unbound is refused by the grammar, never sent anywhere.
        let later = Destination::resolve(&unbound, None, "d").unwrap();
        assert!(later.repository_for("app").is_err());
    }

    #[test]
    fn ecr_host_source_binds_template() {
        let source = SourceSpec {
            registry: Some("111122223333.dkr.ecr.eu-west-1.amazonaws.com".into()),
            ..SourceSpec::default()
        };
        let mut spec = DestinationSpec::oci("ghcr.io");
        spec.repository_name = Some("{region}/{registryId}/{repository}".into());
        let destination = Destination::resolve(&spec, Some(&source), "d").unwrap();
        assert_eq!(
            destination.repository_for("x").unwrap(),
            "eu-west-1/111122223333/x"
        );
    }

    #[test]
    fn endpoints() {
        let mut config = ReplicationConfig::default();
        config.registries.insert(
            "localhost:5000".into(),
            RegistryEndpoint {
                endpoint: Some("http://127.0.0.1:5000/".into()),
                plain_http: true,
                ..Default::default()
            },
        );
        config.registries.insert(
            "Insecure.Example".into(),
            RegistryEndpoint {
                endpoint: None,
                plain_http: true,
                ..Default::default()
            },
        );
        let local = config.endpoint_for(&Registry::from_host("localhost:5000"));
        assert_eq!(
            local,
            Endpoint {
                url: "http://127.0.0.1:5000".into(),
                plain_http: true
            }
        );
        assert_eq!(
            config
                .endpoint_for(&Registry::from_host("insecure.example"))
                .url,
            "http://insecure.example"
        );
        assert_eq!(
            config.endpoint_for(&Registry::from_host("ghcr.io")).url,
            "https://ghcr.io"
        );
    }
}
