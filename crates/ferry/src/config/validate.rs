//! Validation: every finding at once, each with its JSON path and severity.
//!
//! ECR's native limits (10 rules, 25 unique destinations, 100 repository filters per rule)
//! are **warnings**: Ferry replicates beyond them, but such a configuration can no longer be
//! applied with `aws ecr put-replication-configuration`. Anything Ferry cannot act on
//! correctly is an error.

use super::arn::{
    arn_partition, check_external_id, check_kms_key, check_role_arn, check_secret_arn,
};
use super::chain::{chain_issues, organization_loop_issues};
use super::destination::Destination;
use super::endpoint_checks::{check_api_endpoint, check_ecr_spelling, check_endpoint};
use super::error::Issue;
use super::filter::{RepositoryFilterType, TagFilter, TagFilterType};
use super::model::{DestinationSpec, ReplicationConfig, Rule};
use super::parse::child;
use super::registry::{Registry, check_host, check_region, check_registry_id, partition_of};
use super::template::check_repository_name;

/// ECR's limit on rules per replication configuration.
pub const ECR_MAX_RULES: usize = 10;
/// ECR's limit on unique destinations over all rules.
pub const ECR_MAX_DESTINATIONS: usize = 25;
/// ECR's limit on repository filters per rule.
pub const ECR_MAX_REPOSITORY_FILTERS: usize = 100;
/// The most regions one organization destination may name (each is one destination per
/// account; AWS has fewer regions in any partition).
pub const MAX_ORGANIZATION_REGIONS: usize = 40;

/// Repository name used to try templates.
const SAMPLE_REPOSITORY: &str = "sample";

impl ReplicationConfig {
    /// Every finding in the configuration, in document order: errors (it cannot be used)
    /// and warnings. Paths are relative to the replication configuration.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        self.check_source(&mut issues);
        let resolved = self.check_rules(&mut issues);
        self.check_registries(&resolved, &mut issues);
        self.check_shared_destinations(&resolved, &mut issues);
        issues.extend(self.partition_issues(None, &resolved));
        issues.extend(chain_issues(self, &resolved));
        issues.extend(organization_loop_issues(self));
        issues.extend(self.archive_issues(&resolved));
        issues.extend(super::fan_in::unknown_fan_in_issues(self));
        issues
    }

    fn check_source(&self, issues: &mut Vec<Issue>) {
        let Some(source) = &self.source else { return };
        if let Some(host) = &source.registry {
            if source.registry_id.is_some() || source.region.is_some() {
                issues.push(Issue::error(
                    "source",
                    "give either `registry` or `registryId` and `region`, not both",
                ));
            }
            push_err(issues, "source.registry", check_host(host));
            push_err(issues, "source.registry", check_ecr_spelling(host));
        }
        if let Some(arn) = &source.credentials_secret_arn {
            push_err(issues, "source.credentialsSecretArn", check_secret_arn(arn));
            if self.source_registry().is_none() {
                issues.push(Issue::error(
                    "source.credentialsSecretArn",
                    "needs a complete source (`registryId` and `region`, or `registry`): the secret's credentials \
                     are bound to that one registry",
                ));
            }
        }
        if let Some(id) = &source.registry_id {
            push_err(issues, "source.registryId", check_registry_id(id));
        }
        if let Some(region) = &source.region {
            push_err(issues, "source.region", check_region(region));
        }
        for (i, region) in source.regions.iter().enumerate() {
            push_err(
                issues,
                &format!("source.regions[{i}]"),
                check_region(region),
            );
        }
        if !source.regions.is_empty() && (source.region.is_some() || source.registry.is_some()) {
            issues.push(Issue::error(
                "source.regions",
                "lists the regions of a source whose `region` is left out: give `region` or `regions`, and                  no `regions` with `registry`",
            ));
        }
    }

    /// Checks every rule; returns the destinations that resolved, with their rule index.
    fn check_rules(&self, issues: &mut Vec<Issue>) -> Vec<(usize, Destination)> {
        if self.rules.is_empty() {
            issues.push(Issue::warning("rules", "no rules: nothing is replicated"));
        }
        if self.rules.len() > ECR_MAX_RULES {
            issues.push(Issue::warning(
                "rules",
                format!(
                    "{} rules: ECR native replication allows at most {ECR_MAX_RULES}; Ferry accepts more, \
                     but this configuration cannot be applied to ECR itself",
                    self.rules.len()
                ),
            ));
        }
        let mut resolved = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let path = format!("rules[{r}]");
            check_filters(rule, &path, issues);
            issues.extend(super::gates::gate_issues(
                rule,
                &path,
                self.source_may_be_ecr(),
            ));
            if rule.destinations.is_empty() {
                issues.push(Issue::warning(
                    child(&path, "destinations"),
                    "no destinations: this rule does nothing",
                ));
            }
            let first = resolved.len();
            for (d, spec) in rule.destinations.iter().enumerate() {
                let at = format!("{path}.destinations[{d}]");
                if spec.is_organization() {
                    self.check_organization(spec, &at, rule.deletes, issues);
                    continue;
                }
                check_not_organization(spec, &at, issues);
                match Destination::resolve(spec, self.source.as_ref(), &at) {
                    Err(issue) => issues.push(issue),
                    Ok(destination) => {
                        self.check_destination(spec, &destination, rule.deletes, issues);
                        let twin =
                            resolved[first..]
                                .iter()
                                .find(|(_, seen): &&(usize, Destination)| {
                                    seen.registry == destination.registry
                                        && seen.template == destination.template
                                });
                        if let Some((_, twin)) = twin {
                            issues.push(Issue::warning(
                                &at,
                                format!("same destination as {}", twin.path),
                            ));
                        } else {
                            resolved.push((r, destination));
                        }
                    }
                }
            }
        }
        let mut registries: Vec<&Registry> = resolved.iter().map(|(_, d)| &d.registry).collect();
        registries.sort();
        registries.dedup();
        if registries.len() > ECR_MAX_DESTINATIONS {
            issues.push(Issue::warning(
                "rules",
                format!(
                    "{} unique destinations: ECR native replication allows at most {ECR_MAX_DESTINATIONS}; \
                     Ferry accepts more, but this configuration cannot be applied to ECR itself",
                    registries.len()
                ),
            ));
        }
        resolved
    }

    fn check_destination(
        &self,
        spec: &DestinationSpec,
        destination: &Destination,
        deletes: bool,
        issues: &mut Vec<Issue>,
    ) {
        let path = destination.path.as_str();
        let at = |field: &str| child(path, field);
        match &destination.registry {
            Registry::Ecr {
                registry_id,
                region,
            } => {
                push_err(issues, &at("registryId"), check_registry_id(registry_id));
                push_err(issues, &at("region"), check_region(region));
                if let Some(arn) = &spec.credentials_secret_arn {
                    push_err(issues, &at("credentialsSecretArn"), check_secret_arn(arn));
                    if spec.role_arn.is_some() {
                        issues.push(Issue::error(
                            at("roleArn"),
                            "give either roleArn or credentialsSecretArn, not both: the secret's access keys are \
                             this registry's identity for its token and every ECR API call, and Ferry never assumes \
                             a role with them (no role can be assumed across partitions, which is what the keys are for)",
                        ));
                    }
                }
                if let Some(role) = &spec.role_arn
                    && let Some(partition) = arn_partition(role)
                    && partition != partition_of(region)
                {
                    issues.push(Issue::error(
                        at("roleArn"),
                        format!(
                            "the role is in partition `{partition}` but the destination region `{region}` is in `{}`:                              a role is assumed and used in its own partition only",
                            partition_of(region)
                        ),
                    ));
                }
                if let Some(key) = &destination.kms_key {
                    push_err(issues, &at("kmsKey"), check_kms_key(key, region));
                    if spec.use_creation_template {
                        issues.push(Issue::warning(
                            at("kmsKey"),
                            "ignored: useCreationTemplate leaves encryption to the destination's creation template",
                        ));
                    }
                }
            }
            Registry::Oci { host } => {
                push_err(issues, &at("registry"), check_host(host));
                push_err(issues, &at("registry"), check_ecr_spelling(host));
                for (field, set) in [
                    ("roleArn", spec.role_arn.is_some()),
                    ("readRoleArn", spec.read_role_arn.is_some()),
                    ("externalId", spec.external_id.is_some()),
                    ("kmsKey", spec.kms_key.is_some()),
                    ("useCreationTemplate", spec.use_creation_template),
                ] {
                    if set {
                        issues.push(Issue::error(at(field), "applies to ECR destinations only"));
                    }
                }
                if let Some(arn) = &spec.credentials_secret_arn {
                    push_err(issues, &at("credentialsSecretArn"), check_secret_arn(arn));
                }
            }
        }
        if let Some(role) = &destination.role_arn {
            push_err(issues, &at("roleArn"), check_role_arn(role));
        }
        if let Some(role) = &destination.read_role_arn {
            push_err(issues, &at("readRoleArn"), check_role_arn(role));
            if spec.credentials_secret_arn.is_some() && destination.registry.is_ecr() {
                issues.push(Issue::error(
                    at("readRoleArn"),
                    "give either readRoleArn or credentialsSecretArn, not both: the secret's access keys are this registry's identity",
                ));
            }
        }
        if let Some(id) = &spec.external_id {
            if spec.role_arn.is_none() && spec.read_role_arn.is_none() {
                issues.push(Issue::error(at("externalId"), "externalId needs roleArn"));
            }
            push_err(issues, &at("externalId"), check_external_id(id));
        }
        self.check_template(destination, deletes, issues);
    }

    /// An `organizationalUnit` / `organization` destination: its own fields, then the
    /// settings every resolved account gets, tried on a sample account in each region.
    fn check_organization(
        &self,
        spec: &DestinationSpec,
        at: &str,
        deletes: bool,
        issues: &mut Vec<Issue>,
    ) {
        let field = |name: &str| child(at, name);
        if let Some(id) = &spec.organizational_unit {
            if spec.organization {
                issues.push(Issue::error(
                    field("organization"),
                    "give either `organizationalUnit` or `organization: true`, not both",
                ));
            }
            push_err(issues, &field("organizationalUnit"), check_unit_id(id));
        } else if !spec.recursive {
            issues.push(Issue::error(
                field("recursive"),
                "applies to `organizationalUnit` only: `organization` is every account",
            ));
        }
        for (name, set) in [
            ("registryId", spec.registry_id.is_some()),
            ("registry", spec.registry.is_some()),
            (
                "credentialsSecretArn",
                spec.credentials_secret_arn.is_some(),
            ),
        ] {
            if set {
                issues.push(Issue::error(
                    field(name),
                    "an organization destination's accounts come from AWS Organizations: remove this field",
                ));
            }
        }
        let regions = spec.organization_regions();
        if regions.is_empty() {
            issues.push(Issue::error(
                at,
                "an organization destination needs `regions`: the regions of each account to replicate to",
            ));
        }
        if regions.len() > MAX_ORGANIZATION_REGIONS {
            issues.push(Issue::error(
                field("regions"),
                format!(
                    "{} regions: an organization destination takes at most {MAX_ORGANIZATION_REGIONS} \
                     (each is one destination per account); split it, nothing is ever cut silently",
                    regions.len()
                ),
            ));
        }
        for (i, region) in spec.regions.iter().enumerate() {
            push_err(issues, &format!("{at}.regions[{i}]"), check_region(region));
        }
        for (i, id) in spec.exclude_accounts.iter().enumerate() {
            push_err(
                issues,
                &format!("{at}.excludeAccounts[{i}]"),
                check_registry_id(id),
            );
        }
        if let Some(role) = &spec.organization_role_arn {
            push_err(issues, &field("organizationRoleArn"), check_role_arn(role));
        }
        // What each account gets: try the settings on a sample account.
        for region in regions {
            let sample = DestinationSpec {
                registry_id: Some("123456789012".into()),
                region: Some(region.clone()),
                credentials_secret_arn: None,
                ..spec.account_settings()
            };
            if check_region(&region).is_err() {
                continue;
            }
            match Destination::resolve(&sample, self.source.as_ref(), at) {
                Ok(destination) => self.check_destination(&sample, &destination, deletes, issues),
                Err(issue) => issues.push(issue),
            }
        }
    }

    /// `deletes`: the rule propagates deletes, so a template that maps several source
    /// repositories onto one destination repository would delete one repository's tags
    /// whenever another lacks them.
    fn check_template(&self, destination: &Destination, deletes: bool, issues: &mut Vec<Issue>) {
        let at = child(&destination.path, "repositoryName");
        match &destination.template {
            Some(template) => {
                if template.uses_source_registry() {
                    issues.push(Issue::warning(
                        &at,
                        "uses {registryId} or {region}, which the source does not name: they are bound from each \
                         image's registry at run time (the event's account and region); `ferry plan`, `sync` and \
                         `verify` need a complete source",
                    ));
                }
                // Try the grammar with sample values for what is bound later.
                let sample = template
                    .bind_known(Some("123456789012"), Some("us-east-1"))
                    .render(SAMPLE_REPOSITORY);
                if let Err(reason) = check_repository_name(&sample) {
                    issues.push(Issue::error(
                        &at,
                        format!("renders `{sample}` for repository `{SAMPLE_REPOSITORY}`, which is {reason}"),
                    ));
                } else if !template.uses_repository() && deletes {
                    issues.push(Issue::error(
                        &at,
                        format!("has no {{repository}}, so every selected repository is written to `{sample}`, and the rule \
                                 propagates deletes: each source repository's deletes would remove the others' tags there; \
                                 add {{repository}} to the template or drop `deletes`"),
                    ));
                } else if !template.uses_repository() {
                    issues.push(Issue::warning(
                        &at,
                        format!("has no {{repository}}: every selected repository is written to `{sample}`"),
                    ));
                }
            }
            None if self.is_source(&destination.registry) => issues.push(Issue::warning(
                &destination.path,
                "is the source registry and keeps repository names, so every image is already there: it is always skipped",
            )),
            None => {}
        }
        let same_account = match (&destination.registry, &self.source) {
            (Registry::Ecr { registry_id, .. }, Some(source)) => {
                source.region.is_none()
                    && source.registry.is_none()
                    && source.registry_id.as_ref() == Some(registry_id)
            }
            _ => false,
        };
        if same_account {
            issues.push(Issue::warning(
                &destination.path,
                "is in the source account but source.region is unknown, so Ferry cannot tell whether it is the \
                 source registry: set source.region",
            ));
        }
    }

    fn check_registries(&self, resolved: &[(usize, Destination)], issues: &mut Vec<Issue>) {
        for (host, endpoint) in &self.registries {
            let path = child("registries", host);
            push_err(issues, &path, check_host(host));
            if let Some(url) = &endpoint.endpoint {
                push_err(
                    issues,
                    &child(&path, "endpoint"),
                    check_endpoint(url, endpoint.plain_http),
                );
            }
            super::ca::check_ca_certificates(&endpoint.ca_certificates, &path, issues);
            let registry = Registry::from_host(host);
            for (key, rate) in endpoint.rates.iter().flat_map(|r| r.given()) {
                if rate == 0 {
                    issues.push(Issue::error(
                        child(&child(&path, "rates"), key),
                        "must be at least 1 (requests per second)",
                    ));
                }
            }
            if let Some(url) = &endpoint.api_endpoint {
                let at = child(&path, "apiEndpoint");
                if registry.is_ecr() {
                    push_err(issues, &at, check_api_endpoint(url, endpoint.plain_http));
                } else {
                    issues.push(Issue::error(
                        at,
                        "applies to ECR registries only (`<account>.dkr.ecr.<region>.amazonaws.com`): it is where that \
                         registry's ECR API calls go",
                    ));
                }
            }
            let used =
                self.is_source(&registry) || resolved.iter().any(|(_, d)| d.registry == registry);
            if !used {
                issues.push(Issue::warning(
                    path,
                    "not the source nor a destination: this entry is unused",
                ));
            }
        }
    }

    /// Warns when rules name the same destination with different settings: the settings of
    /// the first rule (in document order) are used for images several rules select.
    fn check_shared_destinations(
        &self,
        resolved: &[(usize, Destination)],
        issues: &mut Vec<Issue>,
    ) {
        for (i, (_, later)) in resolved.iter().enumerate() {
            let earlier = resolved[..i]
                .iter()
                .map(|(_, d)| d)
                .find(|d| d.registry == later.registry && d.template == later.template);
            if let Some(earlier) = earlier
                && settings(earlier) != settings(later)
            {
                issues.push(Issue::warning(
                    &later.path,
                    format!(
                        "same destination as {0} with different settings; images both rules select use the settings of {0}",
                        earlier.path
                    ),
                ));
            }
        }
    }
}

/// The settings of a destination besides its registry and template.
#[allow(clippy::type_complexity)]
fn settings(
    d: &Destination,
) -> (
    &Option<String>,
    &Option<String>,
    &Option<String>,
    bool,
    &Option<String>,
) {
    (
        &d.role_arn,
        &d.external_id,
        &d.kms_key,
        d.use_creation_template,
        &d.credentials_secret_arn,
    )
}

/// The organization-only fields on a destination that names its account.
fn check_not_organization(spec: &DestinationSpec, at: &str, issues: &mut Vec<Issue>) {
    for (name, set) in [
        ("regions", !spec.regions.is_empty()),
        ("excludeAccounts", !spec.exclude_accounts.is_empty()),
        ("organizationRoleArn", spec.organization_role_arn.is_some()),
        ("recursive", !spec.recursive),
    ] {
        if set {
            issues.push(Issue::error(
                child(at, name),
                "applies to `organizationalUnit` / `organization` destinations only (give one destination per region otherwise)",
            ));
        }
    }
}

/// An organizational unit (`ou-…`) or root (`r-…`) ID.
fn check_unit_id(id: &str) -> Result<(), String> {
    static UNIT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$")
            .expect("a valid pattern")
    });
    if UNIT.is_match(id) {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not an organizational unit or root ID (expected e.g. `ou-ab12-34cd56ef` or `r-ab12`)"
        ))
    }
}

fn check_filters(rule: &Rule, path: &str, issues: &mut Vec<Issue>) {
    let filters_path = child(path, "repositoryFilters");
    if rule.repository_filters.len() > ECR_MAX_REPOSITORY_FILTERS {
        issues.push(Issue::warning(
            &filters_path,
            format!(
                "{} filters: ECR native replication allows at most {ECR_MAX_REPOSITORY_FILTERS} per rule; Ferry \
                 accepts more, but this configuration cannot be applied to ECR itself",
                rule.repository_filters.len()
            ),
        ));
    }
    for (f, filter) in rule.repository_filters.iter().enumerate() {
        let at = format!("{filters_path}[{f}]");
        push_err(issues, &at, filter.check());
        let literal = match filter.filter_type() {
            RepositoryFilterType::PrefixMatch => Some(filter.filter().to_owned()),
            RepositoryFilterType::Wildcard => Some(filter.filter().replace('*', "")),
            RepositoryFilterType::Regex => None,
        };
        if let Some(text) = literal
            && let Some(bad) = text
                .chars()
                .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/'))
        {
            issues.push(Issue::warning(
                child(&at, "filter"),
                format!("`{bad}` cannot occur in a repository name (lower-case letters, digits, `._-/`): this filter never matches"),
            ));
        }
    }
    for (field, filters) in [
        ("tagFilters", &rule.tag_filters),
        ("excludeTagFilters", &rule.exclude_tag_filters),
    ] {
        for (f, filter) in filters.iter().enumerate() {
            let at = format!("{}[{f}]", child(path, field));
            push_err(issues, &at, filter.check());
            check_tag_literal(filter, &at, issues);
        }
    }
}

fn check_tag_literal(filter: &TagFilter, at: &str, issues: &mut Vec<Issue>) {
    let text = match filter.filter_type() {
        TagFilterType::PrefixMatch => filter.filter().to_owned(),
        TagFilterType::Wildcard => filter.filter().replace('*', ""),
        TagFilterType::Regex | TagFilterType::Semver => return,
    };
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        issues.push(Issue::warning(
            child(at, "filter"),
            format!(
                "`{bad}` cannot occur in a tag (letters, digits, `_.-`): this filter never matches"
            ),
        ));
    }
}

fn push_err(issues: &mut Vec<Issue>, path: &str, result: Result<(), String>) {
    if let Err(message) = result {
        issues.push(Issue::error(path, message));
    }
}
