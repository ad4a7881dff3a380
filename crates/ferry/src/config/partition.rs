//! AWS partitions: which ECR registries Ferry's own identity can reach, and which need an
//! access key pair of their own partition (`credentialsSecretArn`).
//!
//! Credentials of one partition (`aws`, `aws-cn`, `aws-us-gov`) are not valid in another,
//! and no role can be assumed across partitions: an ECR source or destination outside
//! Ferry's partition is reached only with an access key pair of its own partition, kept in
//! a Secrets Manager secret that Ferry reads with its own identity (so every secret is in
//! Ferry's partition). Ferry's partition is the hub region's (`AWS_REGION`) in the
//! pipeline ([`ReplicationConfig::check_home_region`]); without it, the source's (the
//! CLI runs with the source's credentials), or, for a source with its own keys, the
//! secrets'.

use super::arn::arn_partition;
use super::destination::Destination;
use super::error::{ConfigError, Issue, Severity};
use super::model::ReplicationConfig;
use super::parse::child;
use super::registry::{Registry, partition_of};

/// The secret shape an ECR registry's `credentialsSecretArn` holds.
const KEYS: &str = r#"{"accessKeyId", "secretAccessKey"}"#;

impl ReplicationConfig {
    /// Checks the configuration against the partition of `region`, the region Ferry runs in
    /// (the hub's `AWS_REGION`): every ECR registry outside that partition needs
    /// `credentialsSecretArn`, and every secret must be in it.
    pub fn check_home_region(&self, region: &str) -> Result<(), ConfigError> {
        // Destinations read from AWS Organizations are not resolved yet: each resolves to
        // accounts of the organization's (Ferry's) partition, and the loaded document was
        // validated as a whole already.
        let mut resolved: Vec<(usize, Destination)> = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            for (d, spec) in rule.destinations.iter().enumerate() {
                let path = format!("rules[{r}].destinations[{d}]");
                if let Ok(destination) = Destination::resolve(spec, self.source.as_ref(), &path)
                    && !resolved.iter().any(|(_, seen)| {
                        seen.registry == destination.registry
                            && seen.template == destination.template
                    })
                {
                    resolved.push((r, destination));
                }
            }
        }
        let issues: Vec<Issue> = self
            .partition_issues(Some(partition_of(region)), &resolved)
            .into_iter()
            .filter(|issue| issue.severity == Severity::Error)
            .collect();
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { issues })
        }
    }

    /// Every `credentialsSecretArn` of the document: JSON path and ARN.
    fn secrets<'a>(&'a self, resolved: &'a [(usize, Destination)]) -> Vec<(String, &'a str)> {
        let source = self
            .source
            .as_ref()
            .and_then(|s| s.credentials_secret_arn.as_deref())
            .map(|arn| ("source.credentialsSecretArn".to_owned(), arn));
        let destinations = resolved.iter().filter_map(|(_, d)| {
            d.credentials_secret_arn
                .as_deref()
                .map(|arn| (child(&d.path, "credentialsSecretArn"), arn))
        });
        source.into_iter().chain(destinations).collect()
    }

    /// Partition findings. `home`: the partition Ferry runs in, when known; else it is
    /// inferred from the secrets (all read with Ferry's own identity), else the source.
    pub(crate) fn partition_issues(
        &self,
        home: Option<&str>,
        resolved: &[(usize, Destination)],
    ) -> Vec<Issue> {
        let mut issues = Vec::new();
        let secrets = self.secrets(resolved);
        let source = self.source_registry().filter(Registry::is_ecr);
        let source_secret = self
            .source
            .as_ref()
            .and_then(|s| s.credentials_secret_arn.as_deref());
        // Without a hub region: the CLI runs with the source's credentials, unless the
        // source has its own keys; then with those that read the secrets.
        let home: Option<String> = home.map(str::to_owned).or_else(|| {
            source
                .as_ref()
                .filter(|_| source_secret.is_none())
                .and_then(Registry::partition)
                .or_else(|| secrets.iter().find_map(|(_, arn)| arn_partition(arn)))
                .map(str::to_owned)
        });
        let Some(home) = home else {
            return unknown_home_issues(resolved);
        };
        for (path, arn) in &secrets {
            if let Some(partition) = arn_partition(arn)
                && partition != home
            {
                issues.push(Issue::error(
                    path,
                    format!(
                        "the secret is in partition `{partition}` but Ferry runs in `{home}` and reads every secret with \
                         its own identity, which is valid in `{home}` only: keep the secret in `{home}` (it holds the \
                         other partition's access keys)"
                    ),
                ));
            }
        }
        if let Some(registry) = &source
            && let Some(partition) = registry.partition()
            && partition != home
            && source_secret.is_none()
        {
            issues.push(foreign_issue("source", registry, partition, &home));
        }
        for (_, d) in resolved {
            if let Some(partition) = d.registry.partition()
                && partition != home
                && d.credentials_secret_arn.is_none()
            {
                issues.push(foreign_issue(&d.path, &d.registry, partition, &home));
            }
        }
        issues.extend(shared_registry_issues(resolved));
        issues
    }
}

/// An ECR registry outside Ferry's partition without credentials of its own.
fn foreign_issue(path: &str, registry: &Registry, partition: &str, home: &str) -> Issue {
    let field = child(path, "credentialsSecretArn");
    Issue::error(
        path,
        format!(
            "`{}` is in partition `{partition}` but Ferry runs in `{home}`: credentials of `{home}` are not valid in \
             `{partition}` and no role can be assumed across partitions; set `{field}` to a Secrets Manager secret in \
             `{home}` holding {KEYS} of an IAM identity in `{partition}` that may use this registry",
            registry.host()
        ),
    )
}

/// Without a known partition for Ferry itself: ECR destinations without secrets in two
/// partitions cannot all be reached with one identity.
fn unknown_home_issues(resolved: &[(usize, Destination)]) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut first: Option<(&str, &Destination)> = None;
    for (_, d) in resolved {
        let Some(partition) = d.registry.partition() else {
            continue;
        };
        if d.credentials_secret_arn.is_some() {
            continue;
        }
        match first {
            None => first = Some((partition, d)),
            Some((seen, earlier)) if seen != partition => issues.push(Issue::error(
                &d.path,
                format!(
                    "`{}` is in partition `{partition}` but {} is in `{seen}`: one identity is valid in one partition \
                     only and no role can be assumed across partitions; give the destinations outside Ferry's own \
                     partition `credentialsSecretArn` (a secret holding {KEYS} of their partition)",
                    d.registry.host(),
                    earlier.path,
                ),
            )),
            Some(_) => {}
        }
    }
    issues
}

/// The access keys of an ECR registry are bound to the registry (its token and every ECR
/// API call for it), so every destination on one ECR registry names the same secret.
fn shared_registry_issues(resolved: &[(usize, Destination)]) -> Vec<Issue> {
    let mut issues = Vec::new();
    for (i, (_, later)) in resolved.iter().enumerate() {
        if !later.registry.is_ecr() {
            continue;
        }
        let earlier = resolved[..i].iter().map(|(_, d)| d).find(|d| {
            d.registry == later.registry && d.credentials_secret_arn != later.credentials_secret_arn
        });
        if let Some(earlier) = earlier {
            issues.push(Issue::error(
                child(&later.path, "credentialsSecretArn"),
                format!(
                    "{} names registry `{}` with {}: an ECR registry's access keys serve its token and every ECR API \
                     call for it, so every destination on one ECR registry must name the same credentialsSecretArn",
                    earlier.path,
                    later.registry.host(),
                    match &earlier.credentials_secret_arn {
                        Some(arn) => format!("credentialsSecretArn `{arn}`"),
                        None => "no credentialsSecretArn".to_owned(),
                    }
                ),
            ));
        }
    }
    issues
}
