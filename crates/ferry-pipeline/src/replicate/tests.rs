//! Unit tests of the replicate handler, over a scripted engine.

use super::*;
use crate::job::{JobSource, Origin};
use crate::result::MemoryPublisher;
use crate::result::result_for;
use ferry::config::ReplicationConfig;
use ferry::report::CopyStatus;
use std::sync::Mutex;

/// Answers each job by its tag: `perm` a permanent error, `busy` a retryable one,
/// `conflict` an immutable tag, `archived` an archived source image; anything else
/// succeeds. Archive and restore jobs are recorded and change the copy.
#[derive(Default)]
struct Scripted {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Engine for Scripted {
    async fn copy(
        &self,
        job: &Job,
        _target: &Target,
        _deadline: Option<Instant>,
        _shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error> {
        let tag = job.source.tag.clone().unwrap_or_default();
        self.calls.lock().unwrap().push(tag.clone());
        let digest = job.source.digest.clone().unwrap();
        match tag.as_str() {
            "perm" => Err(ferry::Error::Auth {
                registry: "r".into(),
                repository: "a".into(),
                status: 403,
                message: "denied".into(),
            }),
            "busy" => Err(ferry::Error::Registry {
                registry: "r".into(),
                method: "PUT".into(),
                url: "/v2/".into(),
                status: 429,
                message: "TOOMANYREQUESTS".into(),
                retry_after: None,
            }),
            "archived" => Err(ferry::Error::Archived {
                registry: "r".into(),
                repository: "a".into(),
                reference: tag,
                message: "ImageArchivedException: the image is archived".into(),
            }),
            "conflict" => Err(ferry::Error::TagConflict {
                registry: "r".into(),
                repository: "a".into(),
                tag,
                existing: "sha256:old".into(),
                wanted: digest,
            }),
            _ => Ok(Replicated {
                report: ferry::CopyReport {
                    source: String::new(),
                    destination: String::new(),
                    digest,
                    filtered_digest: None,
                    platforms: Vec::new(),
                    tags: vec![tag],
                    status: CopyStatus::Copied,
                    manifests: Default::default(),
                    blobs: ferry::report::BlobCounts {
                        copied: 2,
                        skipped: 1,
                        mounted: 0,
                        foreign: 0,
                    },
                    bytes: 100,
                    referrers: 0,
                    referrers_rejected: Vec::new(),
                    requests: Default::default(),
                    duration_ms: 1,
                },
                superseded_by: None,
                created_repository: false,
            }),
        }
    }

    async fn delete(&self, job: &Job, _target: &Target) -> Result<bool, ferry::Error> {
        self.calls.lock().unwrap().push(format!(
            "delete {}",
            job.source.tag.clone().unwrap_or_default()
        ));
        Ok(true)
    }

    async fn storage_class(&self, job: &Job, _target: &Target) -> Result<bool, ferry::Error> {
        self.calls.lock().unwrap().push(format!(
            "{} {}",
            job.action.as_str(),
            job.source
                .digest
                .as_ref()
                .map(|d| d.as_str())
                .unwrap_or("-")
        ));
        Ok(true)
    }
}

fn message(id: &str, group: &str, body: String) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(body);
    m.attributes.insert("MessageGroupId".into(), group.into());
    m
}

const CONFIG: &str = r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
    "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#;

fn config() -> ReplicationConfig {
    ReplicationConfig::from_json(CONFIG).unwrap()
}

fn job_of(action: JobAction, repository: &str, tag: &str) -> Job {
    let target = &config().destinations_for(repository, Some(tag)).unwrap()[0];
    let source = JobSource {
        registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
        repository: repository.into(),
        tag: Some(tag.into()),
        digest: Some(ferry::Digest::of(tag.as_bytes())),
    };
    Job::new(action, source, target, "ev", Utc::now(), Origin::Event)
}

fn job(repository: &str, tag: &str) -> String {
    job_of(JobAction::Copy, repository, tag).encode()
}

fn ctx(engine: Arc<Scripted>) -> (ReplicateContext, MemoryPublisher) {
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
        requeue: None,
    };
    (ctx, results)
}

#[tokio::test]
async fn outcomes_by_error_class() {
    let engine = Arc::new(Scripted::default());
    let (ctx, published) = ctx(engine.clone());
    let mut event = SqsEvent::default();
    event.records = vec![
        message("1", "a", job("a", "ok")),
        message("2", "b", job("b", "perm")),
        message("3", "c", job("c", "conflict")),
        message("4", "d", job("d", "busy")),
        message("5", "d", job("d", "after-busy")),
        message("6", "e", "not json".into()),
        message("7", "e", job("e", "after-poison")),
    ];
    let report = replicate(event, None, &ctx).await;
    let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
    use Status::*;
    assert_eq!(
        statuses,
        [
            Succeeded, Failed, Conflict, Retry, Retry, Rejected, Succeeded
        ]
    );
    let failures: Vec<String> = report
        .response()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    assert_eq!(failures, ["4", "5"], "the poison message is acknowledged");
    assert!(
        !engine
            .calls
            .lock()
            .unwrap()
            .contains(&"after-busy".to_string()),
        "held back behind a retryable failure"
    );
    let results = published.results();
    assert_eq!(results.len(), 4, "no result event for retries");
    let failed = results.iter().find(|r| r.status == Failed).unwrap();
    assert_eq!(failed.error_code.as_deref(), Some("auth"));
    let ok = results
        .iter()
        .find(|r| r.source.tag.as_deref() == Some("ok"))
        .unwrap();
    assert_eq!((ok.bytes, ok.blobs_copied, ok.blobs_skipped), (100, 2, 1));
    assert_eq!(ctx.metrics.sum("Throttles", &[]), 1.0);
    assert_eq!(ctx.metrics.sum("MalformedEvents", &[]), 1.0);
    assert_eq!(ctx.metrics.sum("RejectedJobs", &[]), 1.0);
    assert_eq!(
        ctx.metrics.sum("Jobs", &[("status", "RETRY")]),
        1.0,
        "the held-back job never ran"
    );
}

#[tokio::test]
async fn jobs_the_config_does_not_allow_are_rejected_unexecuted() {
    let engine = Arc::new(Scripted::default());
    let (ctx, published) = ctx(engine.clone());
    // A copy to a repository the config does not render, a copy from another account,
    // a delete where no rule propagates deletes, and one good job after them in the
    // same FIFO group.
    let mut elsewhere = job_of(JobAction::Copy, "app", "v1");
    elsewhere.target.repository = "other/repo".into();
    let mut foreign = job_of(JobAction::Copy, "app", "v2");
    foreign.source.registry = "999999999999.dkr.ecr.us-east-1.amazonaws.com".into();
    let delete = job_of(JobAction::Delete, "app", "v3");
    let mut event = SqsEvent::default();
    event.records = vec![
        message("1", "g", elsewhere.encode()),
        message("2", "g", foreign.encode()),
        message("3", "g", delete.encode()),
        message("4", "g", job("app", "ok")),
    ];
    let report = replicate(event, None, &ctx).await;
    let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
    use Status::*;
    assert_eq!(statuses, [Rejected, Rejected, Rejected, Succeeded]);
    assert!(report.response().batch_item_failures.is_empty());
    assert_eq!(
        *engine.calls.lock().unwrap(),
        ["ok"],
        "no rejected job reached the engine"
    );
    let results = published.results();
    let rejected: Vec<&ReplicationResult> =
        results.iter().filter(|r| r.status == Rejected).collect();
    assert_eq!(rejected.len(), 3);
    assert!(
        rejected
            .iter()
            .all(|r| r.error_code.as_deref() == Some("rejected"))
    );
    let reasons: Vec<&str> = rejected
        .iter()
        .map(|r| r.error_message.as_deref().unwrap_or_default())
        .collect();
    assert!(reasons[0].starts_with("not-configured:"), "{reasons:?}");
    assert!(reasons[1].starts_with("not-source:"), "{reasons:?}");
    assert!(reasons[2].starts_with("no-deletes:"), "{reasons:?}");
    assert_eq!(ctx.metrics.sum("RejectedJobs", &[]), 3.0);
}

#[tokio::test]
async fn allowed_deletes_run_with_the_configs_target() {
    let engine = Arc::new(Scripted::default());
    let (mut ctx, _) = ctx(engine.clone());
    let mut with_deletes = config();
    with_deletes.rules[0].deletes = true;
    ctx.config = Arc::new(with_deletes);
    let mut event = SqsEvent::default();
    event.records = vec![message(
        "1",
        "g",
        job_of(JobAction::Delete, "app", "v3").encode(),
    )];
    let report = replicate(event, None, &ctx).await;
    assert_eq!(report.outcomes[0].status, Status::Succeeded);
    assert_eq!(*engine.calls.lock().unwrap(), ["delete v3"]);
}

#[tokio::test]
async fn near_the_deadline_jobs_are_returned_unstarted() {
    let engine = Arc::new(Scripted::default());
    let (ctx, published) = ctx(engine.clone());
    let mut event = SqsEvent::default();
    event.records = vec![message("1", "a", job("a", "ok"))];
    let report = replicate(event, Some(Instant::now() + Duration::from_secs(2)), &ctx).await;
    assert_eq!(report.outcomes[0].status, Status::Retry);
    assert!(engine.calls.lock().unwrap().is_empty());
    assert!(published.results().is_empty());
}

#[test]
fn copy_deadline_margin() {
    let now = Instant::now();
    assert_eq!(
        copy_deadline(now + Duration::from_secs(900), now),
        now + Duration::from_secs(840)
    );
    assert_eq!(
        copy_deadline(now + Duration::from_secs(100), now),
        now + Duration::from_secs(85)
    );
    assert_eq!(
        copy_deadline(now + Duration::from_secs(10), now),
        now + Duration::from_secs(5)
    );
    assert_eq!(copy_deadline(now + Duration::from_secs(3), now), now);
}

#[tokio::test]
async fn an_archived_source_image_is_skipped_with_reason_archived_not_retried() {
    let engine = Arc::new(Scripted::default());
    let (ctx, published) = ctx(engine.clone());
    let mut event = SqsEvent::default();
    event.records = vec![message("1", "g", job("app", "archived"))];
    let report = replicate(event, None, &ctx).await;
    assert_eq!(report.outcomes[0].status, Status::Skipped);
    assert!(
        report.response().batch_item_failures.is_empty(),
        "acknowledged, never retried"
    );
    let results = published.results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, Status::Skipped);
    assert_eq!(results[0].reason.as_deref(), Some("ARCHIVED"));
    assert_eq!(results[0].error_code.as_deref(), Some("archived"));
    let wire = serde_json::to_value(&results[0]).unwrap();
    assert_eq!(wire["reason"], "ARCHIVED");
    assert_eq!(*engine.calls.lock().unwrap(), ["archived"], "tried once");
}

#[tokio::test]
async fn archive_jobs_run_only_where_the_config_follows_the_archive() {
    let digest = ferry::Digest::of(b"img");
    let storage_job = |action| {
        let mut j = job_of(action, "app", "v1");
        j.source.tag = None;
        j.source.digest = Some(digest.clone());
        j.encode()
    };
    let engine = Arc::new(Scripted::default());
    let (mut ctx, published) = ctx(engine.clone());
    let mut event = SqsEvent::default();
    event.records = vec![
        message("1", "g", storage_job(JobAction::Archive)),
        message("2", "g", storage_job(JobAction::Restore)),
    ];
    // The config ignores the archive (the default): both rejected, nothing run.
    let report = replicate(event.clone(), None, &ctx).await;
    let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [Status::Rejected, Status::Rejected]);
    assert!(engine.calls.lock().unwrap().is_empty());
    assert!(
        published.results().iter().all(|r| r
            .error_message
            .as_deref()
            .unwrap_or_default()
            .starts_with("no-archive:")),
        "{:?}",
        published.results()
    );
    // With archive: follow, both run, in order.
    let mut follow = config();
    follow.rules[0].archive = ferry::config::ArchiveMode::Follow;
    ctx.config = Arc::new(follow);
    let report = replicate(event, None, &ctx).await;
    let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [Status::Succeeded, Status::Succeeded]);
    assert_eq!(
        *engine.calls.lock().unwrap(),
        [format!("archive {digest}"), format!("restore {digest}")]
    );
}

/// 600 destinations (one repository each at one registry), with every kind of outcome:
/// the metric series stay as few as with one destination, and at most 50.
#[tokio::test]
async fn the_number_of_metric_series_does_not_grow_with_the_destinations() {
    let series_for = |destinations: usize| async move {
        let engine = Arc::new(Scripted::default());
        let (ctx, _) = ctx(engine);
        let tags = ["ok", "perm", "conflict", "archived", "busy"];
        let records = (0..destinations)
            .map(|i| {
                let tag = tags[i % tags.len()];
                message(
                    &i.to_string(),
                    &format!("g{i}"),
                    job(&format!("team/app{i}"), tag),
                )
            })
            .collect();
        let mut event = SqsEvent::default();
        event.records = records;
        let _ = replicate(event, None, &ctx).await;
        ctx.metrics.series()
    };
    let one = series_for(5).await;
    let many = series_for(600).await;
    assert_eq!(one, many, "the same series for 5 and 600 destinations");
    assert!(many.len() <= 50, "{} series: {many:?}", many.len());
    assert!(
        many.iter()
            .all(|(_, dims)| dims.iter().all(|(name, _)| name == "status")),
        "{many:?}"
    );
}

/// Permanent failures go to the ledger (counted in a row, with a doubling backoff), a
/// retry leaves it alone, and a success clears its image's entry.
#[tokio::test]
async fn permanent_failures_are_ledgered_and_a_success_clears_them() {
    use crate::ledger::{Ledger, MemoryLedger, failure_entry, result_key};
    let engine = Arc::new(Scripted::default());
    let (mut ctx, published) = ctx(engine);
    let ledger = MemoryLedger::default();
    ctx.ledger = Some(Arc::new(ledger.clone()));
    let batch = |id: &str| {
        let mut event = SqsEvent::default();
        event.records = vec![
            message(&format!("{id}-1"), "a", job("a", "perm")),
            message(&format!("{id}-2"), "b", job("b", "conflict")),
            message(&format!("{id}-3"), "c", job("c", "busy")),
            message(&format!("{id}-4"), "d", job("d", "ok")),
        ];
        event
    };
    // An earlier failure of the image that now succeeds.
    let mut earlier = ferry_results::testing::sample();
    earlier.status = Status::Failed;
    earlier.source = job_of(JobAction::Copy, "d", "ok").source;
    earlier.destination = crate::result::ResultDestination {
        registry: "222222222222.dkr.ecr.us-west-2.amazonaws.com".into(),
        repository: "d".into(),
    };
    ledger
        .put(&failure_entry(None, "config-1", &earlier, Utc::now()))
        .await
        .unwrap();

    replicate(batch("1"), None, &ctx).await;
    let entries = ledger.entries().await.unwrap();
    let mut found: Vec<(String, String, u32)> = entries
        .values()
        .map(|e| (e.repository.clone(), e.error_code.clone(), e.count))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("a".to_string(), "auth".to_string(), 1),
            ("b".to_string(), "tag-conflict".to_string(), 1)
        ],
        "the retry is not ledgered, the success cleared d"
    );
    let perm = published
        .results()
        .into_iter()
        .find(|r| r.status == Status::Failed)
        .unwrap();
    let first = entries[&result_key(&perm)].clone();
    assert_eq!(first.source.digest, perm.source.digest);
    assert_eq!(first.config_fingerprint, "config-1");
    assert_eq!(
        first.next_attempt - first.last_seen,
        chrono::Duration::minutes(15)
    );

    // The same failure again: counted, the backoff doubles, first seen kept.
    replicate(batch("2"), None, &ctx).await;
    let second = ledger.get(&result_key(&perm)).await.unwrap().unwrap();
    assert_eq!(second.count, 2);
    assert_eq!(second.first_seen, first.first_seen);
    assert_eq!(
        second.next_attempt - second.last_seen,
        chrono::Duration::minutes(30)
    );

    // Under another config, the count starts again.
    ctx.config_fingerprint = "config-2".into();
    replicate(batch("3"), None, &ctx).await;
    let third = ledger.get(&result_key(&perm)).await.unwrap().unwrap();
    assert_eq!(
        (third.count, third.config_fingerprint.as_str()),
        (1, "config-2")
    );
    assert_eq!(ctx.metrics.sum("LedgerErrors", &[]), 0.0);
}

#[test]
fn a_filtered_copy_names_the_digest_it_wrote() {
    let job = job_of(JobAction::Copy, "a", "v1");
    let mut result = result_for(&job, Status::Succeeded);
    let source = ferry::Digest::of(b"index");
    let written = ferry::Digest::of(b"filtered index");
    let r = Replicated {
        report: ferry::CopyReport {
            source: String::new(),
            destination: String::new(),
            digest: source.clone(),
            filtered_digest: Some(written.clone()),
            platforms: vec!["linux/amd64".into()],
            tags: vec!["v1".into()],
            status: CopyStatus::Copied,
            manifests: Default::default(),
            blobs: Default::default(),
            bytes: 0,
            referrers: 0,
            referrers_rejected: Vec::new(),
            requests: Default::default(),
            duration_ms: 0,
        },
        superseded_by: None,
        created_repository: false,
    };
    apply(&mut result, &r);
    assert_eq!(result.digest.as_deref(), Some(source.as_str()));
    assert_eq!(result.written_digest.as_deref(), Some(written.as_str()));
    let detail = serde_json::to_value(&result).unwrap();
    assert_eq!(detail["writtenDigest"], written.as_str());
}
