//! The loop guard with organization destinations and a source bound from each event: every
//! account of the organization is both a destination and (forwarding its events) a source,
//! so each copy Ferry writes comes back as a push. Played here as ECR would: every copy job
//! becomes a push event of the destination registry, dispatched again, until no job is left.

use std::collections::BTreeMap;

use ferry::Digest;
use ferry::config::{AccountState, OrgAccount, Registry, ReplicationConfig};

use super::*;

const A: &str = "111111111111";
const B: &str = "222222222222";
const C: &str = "333333333333";

/// A config with no pinned source and one organization destination, resolved to `accounts`.
fn organization_config(repository_name: &str, accounts: &[&str]) -> ReplicationConfig {
    let document = ReplicationConfig::from_json(&format!(
        r#"{{"rules": [{{"destinations": [{{"organization": true, "regions": ["us-east-1"],
             "repositoryName": "{repository_name}"}}]}}]}}"#
    ))
    .unwrap();
    let query = document.account_queries().pop().unwrap();
    let members = accounts
        .iter()
        .map(|id| OrgAccount {
            id: id.to_string(),
            name: format!("acct-{id}"),
            state: AccountState::Active,
            status: "ACTIVE".into(),
        })
        .collect();
    document
        .resolve_accounts(&BTreeMap::from([(query, members)]))
        .unwrap()
        .config
}

fn push(account: &str, repository: &str) -> ImageAction {
    ImageAction {
        event_id: format!("{account}/{repository}"),
        event_time: "2026-01-01T00:00:00Z".parse().unwrap(),
        registry: Registry::from_host(&format!("{account}.dkr.ecr.us-east-1.amazonaws.com")),
        action_type: ActionType::Push,
        succeeded: true,
        repository: repository.into(),
        tag: Some("v1".into()),
        digest: Some(Digest::of(b"image")),
        referrer: false,
        storage_class: None,
    }
}

/// Plays the pushes through dispatch, each copy job coming back as the destination's own
/// push, for at most `budget` events. Returns the copies made, by destination, and whether
/// the events ran out before the budget did.
fn play(
    config: &ReplicationConfig,
    first: ImageAction,
    budget: usize,
) -> (BTreeMap<String, usize>, bool) {
    let mut copies = BTreeMap::new();
    let mut events = vec![first];
    let mut played = 0;
    while let Some(event) = events.pop() {
        played += 1;
        if played > budget {
            return (copies, false);
        }
        let Ok(Ok(jobs)) = jobs_for(&event, config) else {
            continue;
        };
        for job in jobs.iter().filter(|j| j.action == JobAction::Copy) {
            *copies.entry(job.destination()).or_insert(0) += 1;
            let account = job.target.registry.split('.').next().unwrap().to_string();
            events.push(push(&account, &job.target.repository));
        }
    }
    (copies, true)
}

#[test]
fn a_copy_into_a_member_account_is_recognised_as_ferrys_own() {
    let config = organization_config("golden/{repository}", &[A, B]);
    let from_b = push(B, "golden/app");
    assert!(own_copy(&config, &from_b.registry, "golden/app", Some("v1")).unwrap());
    assert_eq!(jobs_for(&from_b, &config).unwrap(), Err(Ignored::OwnCopy));
    // An original push in B still goes to A.
    assert_eq!(
        jobs_for(&push(B, "app"), &config).unwrap().unwrap()[0].destination(),
        format!("{A}.dkr.ecr.us-east-1.amazonaws.com/golden/app")
    );
}

#[test]
fn a_two_account_loop_makes_exactly_one_copy_per_account() {
    let config = organization_config("golden/{repository}", &[A, B]);
    let (copies, ended) = play(&config, push(A, "app"), 100);
    assert!(ended, "the copies keep coming back: {copies:?}");
    assert_eq!(
        copies,
        BTreeMap::from([(format!("{B}.dkr.ecr.us-east-1.amazonaws.com/golden/app"), 1)])
    );
}

#[test]
fn copies_named_after_their_source_account_are_recognised_in_every_account() {
    // `{registryId}` is bound from each event: A's copy lands in B as `mirror/A/app`, and
    // B's event must be matched against A's binding, not B's.
    let config = organization_config("mirror/{registryId}/{repository}", &[A, B, C]);
    let (copies, ended) = play(&config, push(A, "app"), 100);
    assert!(ended, "the copies keep coming back: {copies:?}");
    assert_eq!(
        copies,
        BTreeMap::from([
            (
                format!("{B}.dkr.ecr.us-east-1.amazonaws.com/mirror/{A}/app"),
                1
            ),
            (
                format!("{C}.dkr.ecr.us-east-1.amazonaws.com/mirror/{A}/app"),
                1
            ),
        ])
    );
}
