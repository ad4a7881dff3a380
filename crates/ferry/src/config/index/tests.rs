//! The index answers exactly as the linear search over the configuration
//! ([`ReplicationConfig::destinations_for`]), on generated configurations; and the number of
//! destinations it looks at per target does not grow with the configuration.

use proptest::prelude::*;

use super::*;
use crate::config::{
    ArchiveMode, DestinationSpec, RepositoryFilter, RepositoryFilterType, SourceSpec, TagFilter,
    TagFilterType,
};

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const TEMPLATES: [Option<&str>; 5] = [
    None,
    Some("dr/{repository}"),
    Some("{region}/{repository}"),
    Some("golden/{registryId}/{repository}"),
    // Renders a name over 256 characters for the long repository: a render error.
    Some("{repository}/{repository}/{repository}"),
];
const REPOSITORIES: [&str; 5] = [
    "team/api",
    "app",
    "docker-hub/library/nginx",
    "other",
    "team/a-repository-name-long-enough-that-three-copies-of-it-joined-by-slashes-are-longer-than-the-two-hundred-and-fifty-six-characters-ecr-allows",
];

/// A destination from the pools: an ECR registry (one of them the source), an OCI
/// registry, or one that cannot be resolved (no region).
fn destination(kind: usize, template: usize) -> DestinationSpec {
    let mut spec = match kind {
        0..=5 => DestinationSpec::ecr(ACCOUNTS[kind % 3], REGIONS[kind / 3]),
        6 => DestinationSpec::oci("ghcr.io"),
        _ => DestinationSpec {
            region: None,
            ..DestinationSpec::ecr("444444444444", "x")
        },
    };
    spec.repository_name = TEMPLATES[template].map(str::to_owned);
    spec
}

type RuleSeed = (
    usize,
    usize,
    bool,
    Option<bool>,
    bool,
    bool,
    Vec<(usize, usize)>,
);

fn rule(seed: &RuleSeed) -> Rule {
    let (repos, tags, untagged, referrers, deletes, follow, destinations) = seed;
    let repository = |text: &str, kind| RepositoryFilter::new(text, kind).unwrap();
    let tag = |text: &str, kind| TagFilter::new(text, kind).unwrap();
    Rule {
        destinations: destinations
            .iter()
            .map(|&(k, t)| destination(k, t))
            .collect(),
        repository_filters: match repos {
            0 => vec![],
            1 => vec![repository("team/", RepositoryFilterType::PrefixMatch)],
            2 => vec![repository("docker-hub/*", RepositoryFilterType::Wildcard)],
            _ => vec![
                repository("app", RepositoryFilterType::PrefixMatch),
                repository("other", RepositoryFilterType::PrefixMatch),
            ],
        },
        tag_filters: match tags {
            1 => vec![tag("v", TagFilterType::PrefixMatch)],
            _ => vec![],
        },
        exclude_tag_filters: match tags {
            2 => vec![tag("*-dev", TagFilterType::Wildcard)],
            _ => vec![],
        },
        untagged: *untagged,
        referrers: *referrers,
        deletes: *deletes,
        delete_replication: None,
        archive: if *follow {
            ArchiveMode::Follow
        } else {
            ArchiveMode::Ignore
        },
        gates: None,
        platforms: vec![],
    }
}

fn rule_seed() -> impl Strategy<Value = RuleSeed> {
    (
        0usize..4,
        0usize..3,
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        any::<bool>(),
        any::<bool>(),
        // Mostly resolvable destinations; now and then one that is not.
        prop::collection::vec(
            (prop_oneof![9 => 0usize..7, 1 => Just(7usize)], 0usize..5),
            0..6,
        ),
    )
}

fn config(rules: &[RuleSeed], cache: bool) -> ReplicationConfig {
    ReplicationConfig {
        source: Some(SourceSpec {
            registry_id: Some(ACCOUNTS[0].into()),
            region: Some(REGIONS[0].into()),
            ..SourceSpec::default()
        }),
        rules: rules.iter().map(rule).collect(),
        pull_through_prefixes: if cache {
            vec!["docker-hub".into()]
        } else {
            Vec::new()
        },
        ..ReplicationConfig::default()
    }
}

/// The linear search's answer for `selection` (`AnyTag`: every rule taken as `untagged`,
/// as the pipeline asked it before the index).
fn linear(
    config: &ReplicationConfig,
    repository: &str,
    selection: Selection<'_>,
) -> Result<Vec<Target>, ConfigError> {
    match selection {
        Selection::Tag(tag) => config.destinations_for(repository, Some(tag)),
        Selection::Untagged => config.destinations_for(repository, None),
        Selection::AnyTag => {
            let mut all = config.clone();
            for rule in &mut all.rules {
                rule.untagged = true;
            }
            all.destinations_for(repository, None)
        }
    }
}

/// Every registry of the pools, and one no rule names.
fn registries() -> Vec<Registry> {
    let mut all: Vec<Registry> = (0..6)
        .map(|k| Registry::Ecr {
            registry_id: ACCOUNTS[k % 3].into(),
            region: REGIONS[k / 3].into(),
        })
        .collect();
    all.push(Registry::from_host("ghcr.io"));
    all.push(Registry::from_host(
        "999999999999.dkr.ecr.us-east-1.amazonaws.com",
    ));
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_index_answers_as_the_linear_search(
        rules in prop::collection::vec(rule_seed(), 0..5),
        cache in any::<bool>(),
    ) {
        let config = config(&rules, cache);
        let index = DestinationIndex::new(&config);
        for repository in REPOSITORIES {
            for selection in [
                Selection::Tag("v1"),
                Selection::Tag("v1-dev"),
                Selection::Tag("latest"),
                Selection::Untagged,
                Selection::AnyTag,
            ] {
                let expected = linear(&config, repository, selection);
                prop_assert_eq!(&index.targets(repository, selection), &expected);
                // Each place a job could name: the right repository, a wrong one, and
                // the source's own name.
                let mut names: Vec<String> = vec![
                    repository.to_owned(),
                    format!("dr/{repository}"),
                    format!("wrong/{repository}"),
                ];
                if let Ok(targets) = &expected {
                    names.extend(targets.iter().map(|t| t.repository.clone()));
                }
                for registry in registries() {
                    for name in &names {
                        let want = expected.clone().map(|targets| {
                            targets.into_iter().find(|t| {
                                t.destination.registry == registry && t.repository == *name
                            })
                        });
                        prop_assert_eq!(
                            index.target(repository, selection, &registry, name),
                            want,
                            "{} {:?} at {} {}", repository, selection, registry.host(), name
                        );
                    }
                }
            }
        }
        for registry in registries() {
            let expected = config.destinations().map(|all| {
                all.into_iter().filter(|d| d.registry == registry).collect::<Vec<_>>()
            });
            let got = index
                .destinations_at(&registry)
                .map(|found| found.into_iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(got, expected);
        }
    }
}

/// One rule sending `team/` to `accounts` accounts × 4 regions (as an organization
/// destination resolves), tags `*-dev` excluded, renamed under `golden/`.
fn organization_like(accounts: usize) -> ReplicationConfig {
    let regions = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"];
    let mut destinations = Vec::with_capacity(accounts * regions.len());
    for a in 0..accounts {
        for region in regions {
            let mut spec =
                DestinationSpec::ecr(format!("{:012}", 200_000_000_000u64 + a as u64), region);
            spec.repository_name = Some("golden/{repository}".into());
            destinations.push(spec);
        }
    }
    ReplicationConfig {
        source: Some(SourceSpec {
            registry_id: Some("111111111111".into()),
            region: Some("us-east-1".into()),
            ..SourceSpec::default()
        }),
        rules: vec![Rule {
            destinations,
            repository_filters: vec![
                RepositoryFilter::new("team/", RepositoryFilterType::PrefixMatch).unwrap(),
            ],
            exclude_tag_filters: vec![TagFilter::new("*-dev", TagFilterType::Wildcard).unwrap()],
            ..Rule::default()
        }],
        ..ReplicationConfig::default()
    }
}

#[test]
fn a_target_looks_at_its_registrys_destinations_only_however_many_there_are() {
    let mut looked_at = Vec::new();
    for accounts in [25, 5_000] {
        let config = organization_like(accounts);
        let index = DestinationIndex::new(&config);
        assert_eq!(index.len(), accounts * 4);
        let last = Registry::Ecr {
            registry_id: format!("{:012}", 200_000_000_000u64 + accounts as u64 - 1),
            region: "ap-southeast-2".into(),
        };
        let before = index.examined();
        let found = index
            .target("team/api", Selection::Tag("v1"), &last, "golden/team/api")
            .unwrap()
            .expect("configured");
        assert_eq!(found.destination.registry, last);
        // Rejections look at no more: a wrong repository, an excluded tag, a registry
        // the configuration does not name.
        assert!(
            index
                .target("team/api", Selection::Tag("v1"), &last, "team/api")
                .unwrap()
                .is_none()
        );
        assert!(
            index
                .target(
                    "team/api",
                    Selection::Tag("v1-dev"),
                    &last,
                    "golden/team/api"
                )
                .unwrap()
                .is_none()
        );
        let stranger = Registry::from_host("999999999999.dkr.ecr.us-east-1.amazonaws.com");
        assert!(
            index
                .target(
                    "team/api",
                    Selection::Tag("v1"),
                    &stranger,
                    "golden/team/api"
                )
                .unwrap()
                .is_none()
        );
        looked_at.push(index.examined() - before);
    }
    // 100 and 20,000 destinations: the same three destinations looked at, one per
    // question that names a configured registry (the linear search looked at all).
    assert_eq!(looked_at, [3, 3]);
    let index = DestinationIndex::new(&organization_like(25));
    assert_eq!(
        index
            .targets("team/api", Selection::Tag("v1"))
            .unwrap()
            .len(),
        100
    );
    assert_eq!(
        index.examined(),
        100,
        "every target of a push: each destination once"
    );
}
