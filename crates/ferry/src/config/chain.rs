//! Chain and loop detection.
//!
//! Ferry sees its own pushes: an image it writes into the source registry under a new name
//! (a destination in the source registry with a `repositoryName` template) arrives as a new
//! push and is matched again. If a rule then sends the copy into the source registry once
//! more, names grow without end (`dr/x`, `dr/dr/x`, ...): a **loop**, reported as an error.
//! If a rule sends it onward to another registry, the image travels twice (A→A'→C next to
//! A→C), which ECR's native replication never does: a **chain**, reported as a warning.
//!
//! Repository names cannot be enumerated, so each rule is probed with sample names built
//! from its filters: `<prefix>sample` for `PREFIX_MATCH`, the pattern with every `*`
//! replaced for `WILDCARD`, and `sample` for a rule without filters. `REGEX` filters give no
//! sample, so rules selecting only by regular expression are not probed. Tag filters are
//! ignored (a chain through some tags is still a chain).

use super::destination::Destination;
use super::error::Issue;
use super::filter::RepositoryFilterType;
use super::model::{ReplicationConfig, Rule};
use super::template::RepositoryTemplate;

const SAMPLE: &str = "sample";

/// Loop errors and chain warnings, each at the path of the destination that writes into the
/// source registry. `resolved` pairs each resolved destination with its rule index.
pub(crate) fn chain_issues(
    config: &ReplicationConfig,
    resolved: &[(usize, Destination)],
) -> Vec<Issue> {
    let mut issues = Vec::new();
    let into_source = |destination: &Destination| {
        destination.template.is_some() && config.is_source(&destination.registry)
    };
    for (rule_index, destination) in resolved.iter().filter(|(_, d)| into_source(d)) {
        let Some(template) = &destination.template else {
            continue;
        };
        let mut reported = Vec::new();
        for original in sample_names(&config.rules[*rule_index]) {
            let copy = template.render(&original);
            if copy == original {
                continue;
            }
            for (k, rule) in config.rules.iter().enumerate() {
                if reported.contains(&k) || !rule.repository_selected(&copy) {
                    continue;
                }
                reported.push(k);
                let back = resolved
                    .iter()
                    .filter(|(r, d)| *r == k && into_source(d))
                    .filter_map(|(_, d)| d.template.as_ref().map(|t| t.render(&copy)))
                    .find(|again| *again != copy);
                issues.push(match back {
                    Some(again) => Issue::error(
                        &destination.path,
                        format!(
                            "replication loop: `{original}` is copied to `{copy}` in the source registry, which \
                             rules[{k}] copies into the source registry again as `{again}`, without end; narrow \
                             the repository filters so copies are not selected"
                        ),
                    ),
                    None => Issue::warning(
                        &destination.path,
                        format!(
                            "replication chain: `{original}` is copied to `{copy}` in the source registry, which \
                             rules[{k}] selects and copies onward, so images travel twice"
                        ),
                    ),
                });
            }
        }
    }
    issues
}

/// Warnings for organization destinations of a configuration whose source account is bound
/// from each event (no `source.registryId`): every account they write into may forward its
/// own pushes too, so each copy comes back as a push of that account.
/// - Renamed copies (`golden/{repository}`) that a rule selects again are recognised by the
///   loop guard as Ferry's own and never copied on; but an account's own push to such a name
///   is taken for a copy too, and not replicated.
/// - Copies under the source's name are offered to every other account again (each holds
///   the image already, so nothing is written, but each copy makes jobs).
///
/// Pinning `source.registryId` (or narrowing the repository filters) ends both.
pub(crate) fn organization_loop_issues(config: &ReplicationConfig) -> Vec<Issue> {
    let source = config.source.as_ref();
    if source.is_some_and(|s| s.registry.is_some() || s.registry_id.is_some()) {
        return Vec::new();
    }
    let mut issues = Vec::new();
    for (r, rule) in config.rules.iter().enumerate() {
        for (d, spec) in rule.destinations.iter().enumerate() {
            if !spec.is_organization() {
                continue;
            }
            let template = match spec
                .repository_name
                .as_deref()
                .map(RepositoryTemplate::parse)
            {
                None => None,
                Some(Ok(t)) => Some(t.bind_known(Some("123456789012"), Some("us-east-1"))),
                Some(Err(_)) => continue,
            };
            for original in sample_names(rule) {
                let copy = template
                    .as_ref()
                    .map_or_else(|| original.clone(), |t| t.render(&original));
                let Some(k) = config
                    .rules
                    .iter()
                    .position(|again| again.repository_selected(&copy))
                else {
                    continue;
                };
                let path = format!("rules[{r}].destinations[{d}]");
                let message = if copy == original {
                    format!(
                        "replication chain: with no `source.registryId`, every account of the organization is also a \
                         source, and `{original}` arrives in each as `{copy}`, which rules[{k}] offers to every \
                         other account again; pin `source.registryId` to the account that publishes"
                    )
                } else {
                    format!(
                        "replication loop cut: with no `source.registryId`, every account of the organization is also a \
                         source, and `{original}` arrives in each as `{copy}`, which rules[{k}] selects again; Ferry \
                         takes pushes to such names for its own copies and never replicates them, so an account's own \
                         push to `{copy}` is not replicated either; pin `source.registryId` or narrow the repository filters"
                    )
                };
                issues.push(Issue::warning(&path, message));
                break;
            }
        }
    }
    issues
}

/// Repository names `rule` selects, one per filter that can produce one.
fn sample_names(rule: &Rule) -> Vec<String> {
    if rule.repository_filters.is_empty() {
        return vec![SAMPLE.to_owned()];
    }
    rule.repository_filters
        .iter()
        .filter_map(|filter| match filter.filter_type() {
            RepositoryFilterType::PrefixMatch => Some(format!("{}{SAMPLE}", filter.filter())),
            RepositoryFilterType::Wildcard => Some(filter.filter().replace('*', SAMPLE)),
            RepositoryFilterType::Regex => None,
        })
        .collect()
}
