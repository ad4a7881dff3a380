//! Unit tests of jobs for several destinations, over a scripted engine.

use super::*;
use crate::job::{JobSource, JobTarget, Origin};
use crate::queue::MemoryQueue;
use crate::result::MemoryPublisher;
use ferry::config::ReplicationConfig;
use ferry::report::CopyStatus;
use std::sync::Mutex;

/// Fails retryably at the destination registries listed in `busy`; records each
/// `copy_many` call's destination registries.
#[derive(Default)]
struct Registries {
    busy: Vec<&'static str>,
    calls: Mutex<Vec<Vec<String>>>,
}

fn copied(digest: ferry::Digest) -> Replicated {
    Replicated {
        report: ferry::CopyReport {
            source: String::new(),
            destination: String::new(),
            digest,
            filtered_digest: None,
            platforms: Vec::new(),
            tags: vec!["v1".into()],
            status: CopyStatus::Copied,
            manifests: Default::default(),
            blobs: Default::default(),
            bytes: 10,
            referrers: 0,
            referrers_rejected: Vec::new(),
            requests: Default::default(),
            duration_ms: 1,
        },
        superseded_by: None,
        created_repository: false,
    }
}

#[async_trait]
impl Engine for Registries {
    async fn copy(
        &self,
        _job: &Job,
        _target: &Target,
        _deadline: Option<Instant>,
        _shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error> {
        unreachable!("a job for several destinations goes through copy_many")
    }

    async fn copy_many(
        &self,
        jobs: &[Job],
        targets: &[Target],
        _deadline: Option<Instant>,
        _shared: &SharedReads,
    ) -> Vec<Result<Replicated, ferry::Error>> {
        self.calls.lock().unwrap().push(
            targets
                .iter()
                .map(|t| t.destination.registry_host())
                .collect(),
        );
        let mut out = Vec::new();
        for (job, t) in jobs.iter().zip(targets) {
            let host = t.destination.registry_host();
            out.push(if self.busy.iter().any(|b| host.starts_with(b)) {
                Err(ferry::Error::Unreachable {
                    registry: host,
                    message: "connection reset".into(),
                })
            } else {
                Ok(copied(job.source.digest.clone().unwrap()))
            });
        }
        out
    }

    async fn delete(&self, _job: &Job, _target: &Target) -> Result<bool, ferry::Error> {
        Ok(true)
    }
}

const ACCOUNTS: [&str; 3] = ["222222222222", "333333333333", "444444444444"];

fn config() -> ReplicationConfig {
    let destinations: Vec<_> = ACCOUNTS
        .iter()
        .map(|a| serde_json::json!({"registryId": a, "region": "us-west-2"}))
        .collect();
    ReplicationConfig::from_json(
        &serde_json::json!({
            "source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": destinations}]
        })
        .to_string(),
    )
    .unwrap()
}

/// One job for every configured destination, plus `extra` targets.
fn fan_job(extra: &[JobTarget]) -> Job {
    let config = config();
    let targets = config.destinations_for("team/api", Some("v1")).unwrap();
    let source = JobSource {
        registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
        repository: "team/api".into(),
        tag: Some("v1".into()),
        digest: Some(ferry::Digest::of(b"image")),
    };
    let jobs: Vec<Job> = targets
        .iter()
        .map(|t| {
            Job::new(
                JobAction::Copy,
                source.clone(),
                t,
                "ev",
                Utc::now(),
                Origin::Event,
            )
        })
        .collect();
    let mut job = Job::combine(jobs, 50).remove(0);
    job.more_targets.extend(extra.iter().cloned());
    job
}

fn context(
    engine: Arc<Registries>,
    requeue: Option<MemoryQueue>,
) -> (ReplicateContext, MemoryPublisher) {
    let results = MemoryPublisher::default();
    let ctx = ReplicateContext {
        config: Arc::new(config()),
        engine,
        results: Arc::new(results.clone()),
        metrics: Metrics::memory(),
        concurrency: 2,
        organizations_unread: Vec::new(),
        ledger: None,
        config_fingerprint: "config-1".into(),
        authorities: Default::default(),
        requeue: requeue.map(|q| Arc::new(q) as Arc<dyn crate::queue::JobQueue>),
    };
    (ctx, results)
}

fn event(job: &Job) -> SqsEvent {
    let mut m = SqsMessage::default();
    m.message_id = Some("m1".into());
    m.body = Some(job.encode());
    m.attributes.insert("MessageGroupId".into(), job.group_id());
    let mut e = SqsEvent::default();
    e.records = vec![m];
    e
}

#[tokio::test]
async fn each_destination_is_authorized_and_reported_alone_and_only_the_failed_one_is_queued_again()
{
    let engine = Arc::new(Registries {
        busy: vec!["333333333333"],
        ..Default::default()
    });
    let queue = MemoryQueue::default();
    let (ctx, published) = context(engine.clone(), Some(queue.clone()));
    // A destination the config does not name rides along: refused, alone.
    let forged = JobTarget {
        registry: "999999999999.dkr.ecr.us-west-2.amazonaws.com".into(),
        repository: "team/api".into(),
        path: String::new(),
    };
    let job = fan_job(std::slice::from_ref(&forged));
    assert_eq!(job.version, crate::job::FANOUT_JOB_VERSION);
    let report = replicate(event(&job), None, &ctx).await;

    let statuses: Vec<(String, Status, bool)> = report
        .outcomes
        .iter()
        .map(|o| {
            let r = o.result.as_ref().map(|r| format!("{:?}", r.destination));
            (r.unwrap_or_default(), o.status, o.requeued)
        })
        .collect();
    assert_eq!(
        statuses.iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(),
        vec![
            (Status::Succeeded, false),
            (Status::Retry, true),
            (Status::Succeeded, false),
            (Status::Rejected, false)
        ],
        "{statuses:?}"
    );
    // One copy for the three allowed destinations; the forged one reached no engine.
    let calls = engine.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].len(), 3);
    assert!(!calls[0].iter().any(|h| h.starts_with("999")));
    // The failed destination went back alone, and the message is done.
    let again = queue.jobs();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].version, crate::job::JOB_VERSION);
    assert!(again[0].more_targets.is_empty());
    assert!(again[0].target.registry.starts_with("333333333333"));
    assert_eq!(again[0].event_id, job.event_id);
    assert!(report.response().batch_item_failures.is_empty());
    // Results: two successes and the rejection, each naming its own destination.
    let results = published.results();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == Status::Succeeded)
            .count(),
        2
    );
}

#[tokio::test]
async fn without_a_queue_or_when_every_destination_failed_the_whole_message_goes_back() {
    // No queue to send the part to: the message is returned, once.
    let engine = Arc::new(Registries {
        busy: vec!["333333333333"],
        ..Default::default()
    });
    let (ctx, _) = context(engine, None);
    let report = replicate(event(&fan_job(&[])), None, &ctx).await;
    let failures = report.response().batch_item_failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].item_identifier, "m1");

    // Every destination failed: nothing is split off, the message is returned.
    let engine = Arc::new(Registries {
        busy: vec!["2", "3", "4"],
        ..Default::default()
    });
    let queue = MemoryQueue::default();
    let (ctx, _) = context(engine, Some(queue.clone()));
    let report = replicate(event(&fan_job(&[])), None, &ctx).await;
    assert_eq!(report.response().batch_item_failures.len(), 1);
    assert!(queue.jobs().is_empty());
}
