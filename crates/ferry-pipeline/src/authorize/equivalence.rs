//! Authorizing through the indexes answers as the linear search did, on generated configs
//! (pinned, account-only and open sources, organization destinations resolved, every job
//! action); and looks at the same few destinations for 100 as for 20,000.

use std::sync::Arc;

use chrono::Utc;
use ferry::Digest;
use ferry::config::{
    AccountQuery, AccountScope, OrgAccount, OrgAccounts, Registry, ReplicationConfig, Selection,
    Target,
};
use proptest::prelude::*;

use super::authorize_in;
use crate::authority::Authority;
use crate::dispatch::{copied_from, own_copy_in};
use crate::job::{Job, JobAction, JobSource, JobTarget, Origin};

const SOURCES: [&str; 3] = [
    r#""source": {"registryId": "111111111111", "region": "us-east-1"},"#,
    r#""source": {"registryId": "111111111111"},"#,
    "",
];
const DESTINATIONS: [&str; 7] = [
    r#"{"registryId": "222222222222", "region": "us-east-1"}"#,
    r#"{"registryId": "222222222222", "region": "eu-west-1", "repositoryName": "dr/{repository}"}"#,
    r#"{"registryId": "111111111111", "region": "eu-west-1", "repositoryName": "{region}/{repository}"}"#,
    r#"{"registryId": "111111111111", "region": "us-east-1"}"#,
    r#"{"registry": "ghcr.io", "repositoryName": "{registryId}/{repository}"}"#,
    r#"{"organization": true, "regions": ["us-east-1", "eu-west-1"], "repositoryName": "dr/{repository}"}"#,
    r#"{"organizationalUnit": "ou-ab12-34cd56ef", "regions": ["eu-west-1"]}"#,
];
const FILTERS: [&str; 4] = [
    "",
    r#""repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],"#,
    r#""tagFilters": [{"filter": "v", "filterType": "PREFIX_MATCH"}],"#,
    r#""excludeTagFilters": [{"filter": "*-dev", "filterType": "WILDCARD"}],"#,
];
const HOSTS: [&str; 7] = [
    "111111111111.dkr.ecr.us-east-1.amazonaws.com",
    "111111111111.dkr.ecr.eu-west-1.amazonaws.com",
    "222222222222.dkr.ecr.us-east-1.amazonaws.com",
    "222222222222.dkr.ecr.eu-west-1.amazonaws.com",
    "444444444444.dkr.ecr.eu-west-1.amazonaws.com",
    "ghcr.io",
    "999999999999.dkr.ecr.us-east-1.amazonaws.com",
];
const ACTIONS: [JobAction; 5] = [
    JobAction::Copy,
    JobAction::Delete,
    JobAction::Referrer,
    JobAction::Archive,
    JobAction::Restore,
];

type RuleSeed = (usize, u8, Vec<usize>);

/// The config of the seeds, its organization destinations resolved to three accounts
/// (one of them the source's).
fn config(source: usize, rules: &[RuleSeed]) -> ReplicationConfig {
    let rules: Vec<String> = rules
        .iter()
        .map(|(filters, flags, destinations)| {
            let list: Vec<&str> = destinations.iter().map(|&d| DESTINATIONS[d]).collect();
            format!(
                r#"{{{} "untagged": {}, "deletes": {}, "archive": "{}", {} "destinations": [{}]}}"#,
                FILTERS[*filters],
                flags & 1 != 0,
                flags & 2 != 0,
                if flags & 4 != 0 { "follow" } else { "ignore" },
                if flags & 8 != 0 {
                    r#""referrers": false,"#
                } else {
                    ""
                },
                list.join(", ")
            )
        })
        .collect();
    let document = ReplicationConfig::from_json(&format!(
        r#"{{{} "rules": [{}]}}"#,
        SOURCES[source],
        rules.join(", ")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let accounts: Vec<OrgAccount> = ["111111111111", "222222222222", "444444444444"]
        .into_iter()
        .map(OrgAccount::active)
        .collect();
    let mut answers = OrgAccounts::new();
    for query in document.account_queries() {
        answers.insert(query, accounts.clone());
    }
    document.resolve_accounts(&answers).unwrap().config
}

/// The linear search: every target of the bound config for the job's action, then the
/// one at the job's place; the codes `authorize` answers with.
fn oracle(job: &Job, config: &ReplicationConfig) -> Result<Target, &'static str> {
    let Some(bound) = config.for_source(&Registry::from_host(&job.source.registry)) else {
        return Err("not-source");
    };
    let place = Registry::from_host(&job.target.registry);
    let at = |action: JobAction, every_rule: bool, follow: bool| {
        let mut config = bound.clone().into_owned();
        for rule in &mut config.rules {
            rule.untagged |= every_rule;
            if follow {
                rule.archive = ferry::config::ArchiveMode::Follow;
            }
        }
        let tag = if every_rule {
            None
        } else {
            job.source.tag.as_deref()
        };
        config
            .destinations_for(&job.source.repository, tag)
            .map(|all| {
                all.into_iter().find(|t| {
                    t.destination.registry == place
                        && t.repository == job.target.repository
                        && match action {
                            JobAction::Copy => true,
                            JobAction::Delete => t.deletes,
                            JobAction::Referrer => t.referrers,
                            JobAction::Archive | JobAction::Restore => t.archive,
                        }
                })
            })
    };
    let any_tag = |action: JobAction| {
        action == JobAction::Referrer
            || ((action == JobAction::Delete || action.is_storage_class())
                && job.source.tag.is_none())
    };
    match at(job.action, any_tag(job.action), false) {
        Err(_) => return Err("config"),
        Ok(Some(target)) => return Ok(target),
        Ok(None) => {}
    }
    match job.action {
        JobAction::Delete if at(JobAction::Copy, false, false).is_ok_and(|t| t.is_some()) => {
            Err("no-deletes")
        }
        JobAction::Archive | JobAction::Restore
            if at(job.action, true, true).is_ok_and(|t| t.is_some()) =>
        {
            Err("no-archive")
        }
        _ => Err("not-configured"),
    }
}

/// The loop guard's linear search: a destination of `registry` some source repository is
/// rendered to, there.
fn own_copy_oracle(config: &ReplicationConfig, registry: &Registry, repository: &str) -> bool {
    let Ok(destinations) = config.destinations() else {
        return false;
    };
    destinations
        .iter()
        .filter(|d| d.registry == *registry)
        .any(|d| {
            let parts = match &d.template {
                None => Some(ferry::config::SourceParts {
                    repository: repository.into(),
                    ..Default::default()
                }),
                Some(t) => t.source_parts_of(repository),
            };
            parts.is_some_and(|parts| {
                let from = copied_from(config, registry, &parts);
                !(parts.repository == repository && from == *registry)
                    && config.bind_source(&from).is_some_and(|bound| {
                        bound
                            .destinations_for(&parts.repository, Some("v1"))
                            .is_ok_and(|all| {
                                all.iter().any(|t| {
                                    t.destination.registry == *registry
                                        && t.repository == repository
                                })
                            })
                    })
            })
        })
}

/// A job of `action` from `source` to `host`/`target`.
pub(super) fn job(
    action: JobAction,
    source: &str,
    repository: &str,
    tag: Option<&str>,
    host: &str,
    target: &str,
) -> Job {
    Job {
        version: crate::job::JOB_VERSION,
        action,
        source: JobSource {
            registry: source.into(),
            repository: repository.into(),
            tag: tag.map(str::to_owned),
            digest: Some(Digest::of(b"x")),
        },
        target: JobTarget {
            registry: host.into(),
            repository: target.into(),
            path: "rules[0].destinations[0]".into(),
        },
        more_targets: Vec::new(),
        event_id: "ev".into(),
        event_time: Utc::now(),
        origin: Origin::Event,
        enqueued_at: Utc::now(),
    }
}

fn rule_seed() -> impl Strategy<Value = RuleSeed> {
    (0usize..4, 0u8..16, prop::collection::vec(0usize..7, 1..4))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn indexed_authorization_answers_as_the_linear_search(
        source in 0usize..3,
        rules in prop::collection::vec(rule_seed(), 1..4),
    ) {
        let config = config(source, &rules);
        let authority = Authority::new(Arc::new(config.clone()));
        for action in ACTIONS {
            for from in &HOSTS[..2] {
                for repository in ["team/api", "app"] {
                    for tag in [Some("v1"), Some("v1-dev"), None] {
                        for host in HOSTS {
                            for target in [
                                repository.to_owned(),
                                format!("dr/{repository}"),
                                format!("eu-west-1/{repository}"),
                                format!("111111111111/{repository}"),
                                format!("wrong/{repository}"),
                            ] {
                                let job = job(action, from, repository, tag, host, &target);
                                let indexed = authorize_in(&job, &authority).map_err(|r| r.code);
                                prop_assert_eq!(indexed, oracle(&job, &config), "{:?}", job);
                            }
                        }
                    }
                }
            }
        }
        for host in HOSTS {
            let registry = Registry::from_host(host);
            for name in ["team/api", "dr/team/api", "eu-west-1/team/api", "111111111111/team/api"] {
                prop_assert_eq!(
                    own_copy_in(&authority, &registry, name, Some("v1")).unwrap_or(false),
                    own_copy_oracle(&config, &registry, name),
                    "{} {}", host, name
                );
            }
        }
    }
}

/// `accounts` accounts × 4 regions from one organization destination.
fn organization(accounts: usize) -> ReplicationConfig {
    let document = ReplicationConfig::from_json(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
                       "excludeTagFilters": [{"filter": "*-dev", "filterType": "WILDCARD"}],
                       "destinations": [{"organization": true, "repositoryName": "golden/{repository}",
                         "regions": ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]}]}]}"#,
    )
    .unwrap();
    let members: Vec<OrgAccount> = (0..accounts)
        .map(|a| OrgAccount::active(format!("{:012}", 200_000_000_000u64 + a as u64)))
        .collect();
    let query = AccountQuery {
        scope: AccountScope::Organization,
        role_arn: None,
    };
    document
        .resolve_accounts(&OrgAccounts::from([(query, members)]))
        .unwrap()
        .config
}

#[test]
fn authorizing_looks_at_the_same_few_destinations_for_100_as_for_20000() {
    let source = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
    let mut looked_at = Vec::new();
    for accounts in [25, 5_000] {
        let authority = Authority::new(Arc::new(organization(accounts)));
        let index = authority.for_source(&Registry::from_host(source)).unwrap();
        assert_eq!(index.len(), accounts * 4);
        let last = format!(
            "{:012}.dkr.ecr.ap-southeast-2.amazonaws.com",
            200_000_000_000u64 + accounts as u64 - 1
        );
        let before = index.examined();
        let copy = |tag, target: &str| {
            authorize_in(
                &job(
                    JobAction::Copy,
                    source,
                    "team/api",
                    Some(tag),
                    &last,
                    target,
                ),
                &authority,
            )
            .map_err(|r| r.code)
        };
        for _ in 0..10 {
            assert!(copy("v1", "golden/team/api").is_ok());
        }
        assert_eq!(
            copy("v1", "team/api").unwrap_err(),
            "not-configured",
            "wrong repository"
        );
        assert_eq!(
            copy("v1-dev", "golden/team/api").unwrap_err(),
            "not-configured",
            "excluded tag"
        );
        let stranger = job(
            JobAction::Copy,
            source,
            "team/api",
            Some("v1"),
            "999999999999.dkr.ecr.us-east-1.amazonaws.com",
            "golden/team/api",
        );
        assert_eq!(
            authorize_in(&stranger, &authority).unwrap_err().code,
            "not-configured"
        );
        looked_at.push(index.examined() - before);
        assert_eq!(
            authority.builds(),
            1,
            "the index is built once for every job"
        );
        assert_eq!(
            index
                .target(
                    "team/api",
                    Selection::Tag("v1"),
                    &Registry::from_host(&last),
                    "golden/team/api"
                )
                .unwrap()
                .map(|t| t.repository),
            Some("golden/team/api".to_owned())
        );
    }
    // 12 jobs, one destination each at the named registry (none at the stranger).
    assert_eq!(looked_at, [12, 12]);
}
