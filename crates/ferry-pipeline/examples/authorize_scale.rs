//! Authorizing jobs and dispatching a push at organization scale, in process: one
//! organization destination resolved to `--accounts` accounts × `--regions` regions
//! (default 5,000 × 4 = 20,000 destinations). Prints one JSON object:
//!
//! - `index_build_ms`: building the config's index (once per config and source registry);
//! - `authorize_us_per_job`: authorizing `--jobs` jobs, each for a different destination,
//!   through the kept index (the replicate function's case), beside `goal_ms_per_job`;
//! - `dispatch_ms`: one push dispatched to every destination, the jobs sent to the memory
//!   queue (the dispatch function's case, its index built before);
//! - `linear_destinations_for_ms`: the linear search (`destinations_for`) for one image,
//!   what authorizing one job cost before the index.
//!
//! `cargo run --release -p ferry-pipeline --example authorize_scale -- --accounts 5000`
//! (`make bench` runs it as the `authorize` scenario).

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use ferry::Digest;
use ferry::config::{OrgAccount, OrgAccounts, Registry, ReplicationConfig};
use ferry_pipeline::authority::Authority;
use ferry_pipeline::authorize::authorize_in;
use ferry_pipeline::dispatch::dispatch_in;
use ferry_pipeline::job::{Job, JobAction, JobSource, JobTarget, Origin};
use ferry_pipeline::metrics::Metrics;
use ferry_pipeline::queue::MemoryQueue;

const REGIONS: [&str; 8] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
];
const SOURCE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
const GOAL_MS_PER_JOB: f64 = 1.0;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
        .unwrap_or(default)
}

fn account(a: usize) -> String {
    format!("{:012}", 200_000_000_000u64 + a as u64)
}

fn config(accounts: usize, regions: usize) -> ReplicationConfig {
    let regions: Vec<&str> = REGIONS[..regions].to_vec();
    let document = ReplicationConfig::from_json(&format!(
        r#"{{"source": {{"registryId": "111111111111", "region": "us-east-1"}},
            "rules": [
              {{"repositoryFilters": [{{"filter": "golden/", "filterType": "PREFIX_MATCH"}}],
                "excludeTagFilters": [{{"filter": "*-dev", "filterType": "WILDCARD"}}],
                "destinations": [{{"organization": true, "regions": {},
                  "roleArn": "arn:aws:iam::{{accountId}}:role/ferry-destination-{{region}}"}}]}},
              {{"destinations": [{{"registryId": "111111111111", "region": "eu-west-1",
                  "repositoryName": "dr/{{repository}}"}}], "deletes": true}}]}}"#,
        serde_json::to_string(&regions).expect("regions")
    ))
    .expect("config");
    let members: Vec<OrgAccount> = (0..accounts)
        .map(|a| OrgAccount::active(account(a)))
        .collect();
    let answers: OrgAccounts = document
        .account_queries()
        .into_iter()
        .map(|query| (query, members.clone()))
        .collect();
    document
        .resolve_accounts(&answers)
        .expect("resolved")
        .config
}

fn job(a: usize, region: &str) -> Job {
    Job {
        version: ferry_pipeline::job::JOB_VERSION,
        action: JobAction::Copy,
        source: JobSource {
            registry: SOURCE.into(),
            repository: "golden/base".into(),
            tag: Some("2026.12".into()),
            digest: Some(Digest::of(b"golden/base:2026.12")),
        },
        target: JobTarget {
            registry: format!("{}.dkr.ecr.{region}.amazonaws.com", account(a)),
            repository: "golden/base".into(),
            path: "rules[0].destinations[0]".into(),
        },
        more_targets: Vec::new(),
        event_id: "bench".into(),
        event_time: Utc::now(),
        origin: Origin::Event,
        enqueued_at: Utc::now(),
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let accounts = arg("--accounts", 5_000);
    let regions = arg("--regions", 4).clamp(1, REGIONS.len());
    let jobs = arg("--jobs", 10_000);
    let config = Arc::new(config(accounts, regions));
    let source = Registry::from_host(SOURCE);

    let authority = Authority::new(config.clone());
    let started = Instant::now();
    let index = authority.for_source(&source).expect("the source");
    let index_build_ms = ms(started);
    let destinations = index.len();

    let examined = index.examined();
    let started = Instant::now();
    let mut authorized = 0usize;
    for i in 0..jobs {
        let a = (i * 7_919) % accounts;
        let j = job(a, REGIONS[i % regions]);
        authorized += usize::from(authorize_in(&j, &authority).is_ok());
    }
    let authorize_ms = ms(started);
    assert_eq!(authorized, jobs, "every job is the config's");
    let examined_per_job = (index.examined() - examined) as f64 / jobs as f64;

    // One push of golden/base:2026.12 to every destination.
    let push = serde_json::json!({
        "version": "0", "id": "bench-push", "detail-type": "ECR Image Action",
        "source": "aws.ecr", "account": "111111111111", "time": "2026-12-01T00:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "golden/base",
                   "image-digest": Digest::of(b"golden/base:2026.12").to_string(),
                   "action-type": "PUSH", "image-tag": "2026.12"}
    });
    let queue = MemoryQueue::default();
    let metrics = Metrics::stdout();
    let started = Instant::now();
    let dispatched = dispatch_in(push, &authority, &queue, &metrics)
        .await
        .expect("dispatched");
    let dispatch_ms = ms(started);
    assert_eq!(dispatched.jobs.len(), queue.jobs().len());

    let started = Instant::now();
    let linear = config
        .destinations_for("golden/base", Some("2026.12"))
        .expect("targets");
    let linear_ms = ms(started);
    assert_eq!(linear.len(), dispatched.jobs.len());

    let per_job_ms = authorize_ms / jobs as f64;
    let out = serde_json::json!({
        "destinations": destinations,
        "accounts": accounts,
        "regions": regions,
        "index_build_ms": index_build_ms,
        "authorize_jobs": jobs,
        "authorize_ms_per_job": per_job_ms,
        "authorize_us_per_job": per_job_ms * 1000.0,
        "destinations_examined_per_job": examined_per_job,
        "goal_ms_per_job": GOAL_MS_PER_JOB,
        "within_goal": per_job_ms <= GOAL_MS_PER_JOB,
        "dispatch_jobs": dispatched.jobs.len(),
        "dispatch_ms": dispatch_ms,
        "linear_destinations_for_ms": linear_ms,
        "index_builds": authority.builds(),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
