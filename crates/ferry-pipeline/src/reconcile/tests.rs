use super::*;
use crate::ledger::{Ledger, MemoryLedger, failure_entry, result_key};
use crate::queue::MemoryQueue;
use crate::result::ResultDestination;
use crate::result::Status;
use ferry::Digest;
use ferry::config::ReplicationConfig;

struct Fixed(Vec<DriftItem>);

#[async_trait(?Send)]
impl DriftSource for Fixed {
    async fn drift(&self) -> Result<Vec<DriftItem>, PipelineError> {
        Ok(self.0.clone())
    }
}

fn item(tag: &str, conflict: bool) -> DriftItem {
    let config = ReplicationConfig::from_json(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#,
    )
    .unwrap();
    DriftItem {
        action: JobAction::Copy,
        source: JobSource {
            registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
            repository: "app".into(),
            tag: Some(tag.into()),
            digest: Some(Digest::of(tag.as_bytes())),
        },
        target: config.destinations_for("app", Some(tag)).unwrap().remove(0),
        conflict,
        gate: None,
    }
}

#[tokio::test]
async fn caps_jobs_and_counts_drift() {
    let q = MemoryQueue::default();
    let m = Metrics::memory();
    let src = Fixed(vec![
        item("a", false),
        item("b", false),
        item("c", true),
        item("d", false),
    ]);
    let r = reconcile("run-1", &src, &q, &m, &Pacing::capped(2))
        .await
        .unwrap();
    assert_eq!(
        (r.drift, r.conflicts, r.enqueued, r.capped),
        (3, 1, 2, true)
    );
    let jobs = q.jobs();
    assert_eq!(
        jobs.iter()
            .map(|j| j.source.tag.clone().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(
        jobs.iter()
            .all(|j| j.origin == Origin::Reconcile && j.event_id == "reconcile:run-1")
    );
    assert_ne!(jobs[0].deduplication_id(), jobs[1].deduplication_id());
    assert_eq!(
        r.by_destination
            .get("222222222222.dkr.ecr.us-west-2.amazonaws.com/app"),
        Some(&3)
    );
    assert_eq!(m.sum("Drift", &[]), 3.0, "the run's total, once");
    assert!(
        m.series().iter().all(|(_, dims)| dims.is_empty()),
        "no destination dimension"
    );
}

#[test]
fn an_unpinned_config_reconciles_the_hubs_own_registry() {
    let unpinned = std::sync::Arc::new(
        ReplicationConfig::from_json(
            r#"{"registryId": "111111111111", "replicationConfiguration": {"rules": [
                {"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}}"#,
        )
        .unwrap(),
    );
    assert!(
        unpinned.source_registry().is_none(),
        "the region is left to each event"
    );
    let bound = bind_to_hub(&unpinned, "111111111111", "us-east-1").unwrap();
    assert_eq!(
        bound.source_registry().map(|r| r.host()).as_deref(),
        Some("111111111111.dkr.ecr.us-east-1.amazonaws.com")
    );
    let hostile = bind_to_hub(&unpinned, "evil.example/x", "us-east-1").unwrap_err();
    assert!(hostile.to_string().contains("not 12 digits"), "{hostile}");
    let error = bind_to_hub(&unpinned, "333333333333", "us-east-1").unwrap_err();
    assert!(error.to_string().contains("another registry"), "{error}");
    let pinned = std::sync::Arc::new(
        ReplicationConfig::from_json(
            r#"{"source": {"registryId": "444444444444", "region": "eu-west-1"},
                "rules": [{"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
        )
        .unwrap(),
    );
    assert!(std::sync::Arc::ptr_eq(
        &bind_to_hub(&pinned, "111111111111", "us-east-1").unwrap(),
        &pinned
    ));
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn pacing<'a>(max_jobs: usize, ledger: &'a dyn Ledger, now: &str) -> Pacing<'a> {
    Pacing {
        max_jobs,
        ledger: Some(ledger),
        fingerprint: "config-1",
        now: at(now),
    }
}

fn tags(q: &MemoryQueue) -> Vec<String> {
    q.jobs()
        .iter()
        .map(|j| j.source.tag.clone().unwrap())
        .collect()
}

/// One run: what it did and the tags it enqueued.
async fn run(src: &Fixed, m: &Metrics, pacing: &Pacing<'_>) -> (Reconciled, Vec<String>) {
    let q = MemoryQueue::default();
    let r = reconcile("run", src, &q, m, pacing).await.unwrap();
    (r, tags(&q))
}

/// Drift of 2,500 images, tags `t0000` to `t2499`.
fn items_t0000_to_t2499() -> Fixed {
    Fixed(
        (0..2500)
            .map(|i| item(&format!("t{i:04}"), false))
            .collect(),
    )
}

/// 2,500 drift items and a cap of 1,000: through the ledger's cursor, three runs enqueue
/// every item exactly once, and the fourth starts over.
#[tokio::test]
async fn the_cursor_covers_2500_items_in_three_runs_then_wraps() {
    let src = items_t0000_to_t2499();
    let ledger = MemoryLedger::default();
    let m = Metrics::memory();
    let p = pacing(1000, &ledger, "2026-01-01T00:00:00Z");
    let mut counts = std::collections::HashMap::<String, usize>::new();
    let mut per_run = Vec::new();
    for _ in 0..3 {
        let (r, tags) = run(&src, &m, &p).await;
        per_run.push((r.enqueued, r.capped, r.cursor.is_some()));
        for t in tags {
            *counts.entry(t).or_default() += 1;
        }
    }
    assert_eq!(
        per_run,
        [(1000, true, true), (1000, true, true), (500, true, false)]
    );
    assert_eq!(counts.len(), 2500);
    assert!(counts.values().all(|&n| n == 1), "each item exactly once");
    assert_eq!(ledger.cursor().await.unwrap(), None);
    let (r, tags) = run(&src, &m, &p).await;
    assert_eq!(r.enqueued, 1000);
    assert_eq!(tags.first().map(String::as_str), Some("t0000"), "wraps");
    assert_eq!(
        ledger.cursor().await.unwrap().as_deref(),
        Some(drift_key(&item("t0999", false)).as_str())
    );
}

/// Jobs still queued count against the cap: with 400 queued a run of cap 1,000 enqueues
/// 600 and continues after them; with a full run's jobs queued it enqueues none and the
/// cursor stays; a queue that cannot tell leaves the whole cap.
#[tokio::test]
async fn jobs_still_queued_count_against_the_cap() {
    let src = items_t0000_to_t2499();
    let ledger = MemoryLedger::default();
    let m = Metrics::memory();
    let p = pacing(1000, &ledger, "2026-01-01T00:00:00Z");
    let q = MemoryQueue::default();
    q.set_backlog(Some(400));
    let r = reconcile("run-1", &src, &q, &m, &p).await.unwrap();
    assert_eq!((r.enqueued, r.backlog, r.capped), (600, Some(400), true));
    let cursor = ledger.cursor().await.unwrap();
    assert_eq!(
        cursor.as_deref(),
        Some(drift_key(&item("t0599", false)).as_str())
    );

    let full = MemoryQueue::default();
    full.set_backlog(Some(1000));
    let r = reconcile("run-2", &src, &full, &m, &p).await.unwrap();
    assert_eq!((r.enqueued, r.backlog, r.capped), (0, Some(1000), true));
    assert!(full.jobs().is_empty());
    assert_eq!(ledger.cursor().await.unwrap(), cursor, "the cursor stays");

    let unknown = MemoryQueue::default();
    let r = reconcile("run-3", &src, &unknown, &m, &p).await.unwrap();
    assert_eq!((r.enqueued, r.backlog), (1000, None));
    assert_eq!(
        tags(&unknown).first().map(String::as_str),
        Some("t0600"),
        "continues after the last job sent"
    );
}

/// A permanent failure holds its image back until its backoff expires, without using the
/// cap; a change of config or source digest makes the entry stale.
#[tokio::test]
async fn a_ledgered_image_waits_for_its_backoff_and_a_change_frees_it() {
    let ledger = MemoryLedger::default();
    let m = Metrics::memory();
    let failed = item("b", false);
    let mut result = ferry_results::testing::sample();
    result.status = Status::Failed;
    result.action = failed.action;
    result.source = failed.source.clone();
    result.destination = ResultDestination {
        registry: failed.target.destination.registry_host(),
        repository: failed.target.repository.clone(),
    };
    result.error_code = Some("auth".into());
    let entry = failure_entry(None, "config-1", &result, at("2026-01-01T00:00:00Z"));
    assert_eq!(entry.next_attempt, at("2026-01-01T00:15:00Z"));
    assert_eq!(result_key(&result), entry.key());
    ledger.put(&entry).await.unwrap();
    let src = Fixed(vec![item("a", false), failed.clone(), item("c", false)]);

    // Within the backoff: held, and the cap of 2 goes to a and c.
    let (r, tags) = run(&src, &m, &pacing(2, &ledger, "2026-01-01T00:14:59Z")).await;
    assert_eq!((r.drift, r.held, r.enqueued, r.capped), (3, 1, 2, false));
    assert_eq!(tags, ["a", "c"]);
    assert_eq!(m.sum("DriftHeld", &[]), 1.0);

    // The backoff expired: enqueued again.
    let (r, tags) = run(&src, &m, &pacing(5, &ledger, "2026-01-01T00:15:00Z")).await;
    assert_eq!(
        (r.held, tags),
        (0, vec!["a".into(), "b".into(), "c".into()])
    );

    // Another config: stale, not held.
    let mut other = pacing(5, &ledger, "2026-01-01T00:01:00Z");
    other.fingerprint = "config-2";
    assert_eq!(run(&src, &m, &other).await.0.held, 0);

    // Another source digest (the tag was pushed again): stale, not held.
    let mut moved = failed.clone();
    moved.source.digest = Some(Digest::of(b"b, pushed again"));
    let (r, _) = run(
        &Fixed(vec![moved]),
        &m,
        &pacing(5, &ledger, "2026-01-01T00:01:00Z"),
    )
    .await;
    assert_eq!((r.held, r.enqueued), (0, 1));
}

/// A ledger that fails every call.
struct Broken;

#[async_trait::async_trait]
impl Ledger for Broken {
    async fn get(&self, _: &LedgerKey) -> Result<Option<LedgerEntry>, PipelineError> {
        Err(broken("GetItem"))
    }
    async fn put(&self, _: &LedgerEntry) -> Result<(), PipelineError> {
        Err(broken("PutItem"))
    }
    async fn clear(&self, _: &LedgerKey) -> Result<(), PipelineError> {
        Err(broken("DeleteItem"))
    }
    async fn entries(&self) -> Result<HashMap<LedgerKey, LedgerEntry>, PipelineError> {
        Err(broken("Scan"))
    }
    async fn cursor(&self) -> Result<Option<String>, PipelineError> {
        Err(broken("GetItem"))
    }
    async fn set_cursor(&self, _: Option<&str>) -> Result<(), PipelineError> {
        Err(broken("PutItem"))
    }
}

fn broken(operation: &'static str) -> PipelineError {
    PipelineError::Ledger {
        table: "ferry-ledger".into(),
        operation,
        message: "AccessDeniedException: no".into(),
    }
}

/// A ledger that cannot be read or written does not stop the run: it enqueues from the
/// start as if the ledger were empty, and counts the errors.
#[tokio::test]
async fn a_broken_ledger_is_counted_and_the_run_goes_on() {
    let m = Metrics::memory();
    let src = Fixed(vec![item("a", false), item("b", false), item("c", false)]);
    let (r, tags) = run(&src, &m, &pacing(2, &Broken, "2026-01-01T00:00:00Z")).await;
    assert_eq!((r.enqueued, r.capped), (2, true));
    assert_eq!(tags, ["a", "b"]);
    // Scan, the cursor's GetItem and its PutItem.
    assert_eq!(m.sum("LedgerErrors", &[]), 3.0);
}

#[tokio::test]
async fn gated_copies_are_counted_and_never_enqueued() {
    use ferry::gate::{GateName, GateReason, Verdict};
    let mut held = item("held", false);
    held.gate = Some(Verdict::Held(GateReason::new(
        GateName::Scan,
        "scan-pending",
        "not scanned yet",
    )));
    let mut blocked = item("blocked", false);
    blocked.gate = Some(Verdict::Blocked(GateReason::new(
        GateName::Scan,
        "scan-timeout",
        "waited 121 min",
    )));
    let q = MemoryQueue::default();
    let m = Metrics::memory();
    let src = Fixed(vec![held, item("released", false), blocked]);
    let r = reconcile("run-1", &src, &q, &m, &Pacing::capped(10))
        .await
        .unwrap();
    assert_eq!(
        (r.gate_held, r.gate_blocked, r.enqueued, r.drift),
        (1, 1, 1, 1)
    );
    let tags: Vec<String> = q
        .jobs()
        .iter()
        .filter_map(|j| j.source.tag.clone())
        .collect();
    assert_eq!(
        tags,
        ["released"],
        "only the copy whose gates passed is sent"
    );
    assert_eq!(m.sum("GateHeld", &[]), 1.0);
    assert_eq!(m.sum("GateBlocked", &[]), 1.0);
}
