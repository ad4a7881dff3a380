//! Organization destinations in the pipeline, against moto's Organizations: dispatch makes
//! one job per active account of the OU, the next push after an account joins makes a job
//! for it too, and replicate authorizes a job against its own, fresh resolution: a job for
//! an account that left the OU is rejected.

use std::sync::Arc;
use std::time::Duration;

use ferry::aws::AwsContext;
use ferry::config::ReplicationConfig;
use ferry::organizations::AwsOrganizations;
use ferry_e2e::Moto;
use ferry_e2e::organizations::Organization;
use ferry_pipeline::authorize::authorize;
use ferry_pipeline::dispatch::dispatch;
use ferry_pipeline::live::LiveConfig;
use ferry_pipeline::queue::MemoryQueue;
use ferry_pipeline::{Job, Metrics};
use serde_json::{Value, json};

const SOURCE: &str = ferry_e2e::moto::DEFAULT_ACCOUNT;

fn push_event(tag: &str) -> Value {
    ferry_e2e::ecr::push_event(SOURCE, "us-east-1", "golden/base", tag)
}

fn accounts_of(jobs: &[Job]) -> Vec<String> {
    let mut out: Vec<String> = jobs
        .iter()
        .map(|j| {
            j.target
                .registry
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn jobs_follow_the_units_membership_and_replicate_checks_it_again() {
    let moto = Moto::start().expect("moto");
    let org = Organization::create(&moto).expect("organization");
    let golden = org.unit(&org.root, "golden").expect("ou");
    let elsewhere = org.unit(&org.root, "elsewhere").expect("ou");
    let mut members = org.accounts(&golden, "member", 2).expect("accounts");
    let newcomer = org.account(&elsewhere, "newcomer").expect("account");
    let document = Arc::new(
        ReplicationConfig::from_json(
            &json!({
                "source": {"registryId": SOURCE, "region": "us-east-1"},
                "rules": [{"destinations": [{
                    "organizationalUnit": golden, "regions": ["eu-west-1"],
                    "roleArn": "arn:aws:iam::{accountId}:role/ferry-writer"
                }]}]
            })
            .to_string(),
        )
        .expect("config"),
    );
    let aws = AwsContext::new(moto.sdk_config("us-east-1"));
    // TTL zero: every call asks Organizations again, as the next push after the TTL does.
    let live = LiveConfig::new(
        document,
        Arc::new(AwsOrganizations::new(aws)),
        Duration::ZERO,
    );
    let queue = MemoryQueue::default();
    let metrics = Metrics::stdout();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let (before, _) = rt.block_on(live.current()).expect("resolved");
    let first = rt
        .block_on(dispatch(push_event("1.0"), &before, &queue, &metrics))
        .expect("dispatched");
    members.sort();
    assert_eq!(accounts_of(&first.jobs), members);
    for job in &first.jobs {
        let target = authorize(job, &before).expect("allowed");
        let account = &target.destination.registry.host()[..12];
        let role = format!("arn:aws:iam::{account}:role/ferry-writer");
        assert_eq!(target.destination.role_arn.as_deref(), Some(role.as_str()));
    }

    org.move_account(&newcomer, &elsewhere, &golden)
        .expect("move in");
    org.move_account(&members[0], &golden, &elsewhere)
        .expect("move out");
    let (after, changed) = rt.block_on(live.current()).expect("resolved");
    assert!(changed, "the membership changed");
    let second = rt
        .block_on(dispatch(push_event("1.1"), &after, &queue, &metrics))
        .expect("dispatched");
    let mut now = vec![members[1].clone(), newcomer.clone()];
    now.sort();
    assert_eq!(accounts_of(&second.jobs), now);

    // A job made before the move, for the account that left, is refused by replicate's
    // own resolution; the newcomer's job would have been refused before it joined.
    let leaver = first
        .jobs
        .iter()
        .find(|j| j.target.registry.starts_with(&members[0]))
        .expect("the leaver's job");
    assert_eq!(
        authorize(leaver, &after).unwrap_err().code,
        "not-configured"
    );
    let joiner = second
        .jobs
        .iter()
        .find(|j| j.target.registry.starts_with(&newcomer))
        .expect("the newcomer's job");
    assert!(authorize(joiner, &after).is_ok());
    assert_eq!(
        authorize(joiner, &before).unwrap_err().code,
        "not-configured"
    );
}
