//! Replicate judges promotion gates again before it copies: a job message is untrusted,
//! and the config and the source's scan decide, not the sender.

use super::*;
use crate::job::{JobSource, Origin};
use crate::result::MemoryPublisher;
use ferry::config::ReplicationConfig;
use std::sync::Mutex;

const GATED: &str = r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
    "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}],
               "gates": {"scan": {"maxSeverity": "HIGH"}}}]}"#;

/// Copies whatever it is given (recording the tag); judges by tag when it has a keeper.
#[derive(Default)]
struct Copies {
    copied: Mutex<Vec<String>>,
    judges: bool,
}

#[async_trait]
impl Engine for Copies {
    async fn copy(
        &self,
        job: &Job,
        _target: &Target,
        _deadline: Option<Instant>,
        _shared: &SharedReads,
    ) -> Result<Replicated, ferry::Error> {
        self.copied
            .lock()
            .unwrap()
            .push(job.source.tag.clone().unwrap_or_default());
        Err(ferry::Error::Unsupported("copied (stand-in)".into()))
    }

    async fn delete(&self, _job: &Job, _target: &Target) -> Result<bool, ferry::Error> {
        Ok(true)
    }

    fn gatekeeper(&self) -> Option<&dyn Gatekeeper> {
        self.judges.then_some(self as &dyn Gatekeeper)
    }
}

#[async_trait]
impl Gatekeeper for Copies {
    async fn verdict(&self, job: &Job, _target: &Target) -> Result<Verdict, ferry::Error> {
        Ok(match job.source.tag.as_deref() {
            Some("held") => Verdict::Held(GateReason::new(
                GateName::Scan,
                "scan-pending",
                "scan in progress",
            )),
            Some("bad") => {
                Verdict::Blocked(GateReason::new(GateName::Scan, "severity", "CRITICAL"))
            }
            _ => Verdict::Pass,
        })
    }
}

fn run_ctx(engine: Arc<Copies>) -> (ReplicateContext, MemoryPublisher) {
    let results = MemoryPublisher::default();
    let ctx = ReplicateContext {
        config: Arc::new(ReplicationConfig::from_json(GATED).unwrap()),
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

fn message_for(id: &str, tag: &str) -> SqsMessage {
    let config = ReplicationConfig::from_json(GATED).unwrap();
    let target = &config.destinations_for("app", Some(tag)).unwrap()[0];
    let source = JobSource {
        registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
        repository: "app".into(),
        tag: Some(tag.into()),
        digest: Some(ferry::Digest::of(tag.as_bytes())),
    };
    let job = Job::new(
        JobAction::Copy,
        source,
        target,
        "ev",
        Utc::now(),
        Origin::Event,
    );
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(job.encode());
    m.attributes.insert("MessageGroupId".into(), id.into());
    m
}

#[tokio::test]
async fn a_gated_copy_is_judged_before_it_is_copied() {
    let engine = Arc::new(Copies {
        judges: true,
        ..Copies::default()
    });
    let (ctx, published) = run_ctx(engine.clone());
    let mut event = SqsEvent::default();
    event.records = vec![
        message_for("1", "held"),
        message_for("2", "bad"),
        message_for("3", "good"),
    ];
    let report = replicate(event, None, &ctx).await;
    let statuses: Vec<Status> = report.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses[..2], [Status::Held, Status::Blocked]);
    assert_eq!(
        *engine.copied.lock().unwrap(),
        ["good"],
        "only the passing job ran"
    );
    assert!(
        report.response().batch_item_failures.is_empty(),
        "held and blocked jobs are acknowledged"
    );
    let results = published.results();
    let blocked = results
        .iter()
        .find(|r| r.status == Status::Blocked)
        .unwrap();
    assert_eq!(
        blocked.gate.as_ref().map(|g| g.code.as_str()),
        Some("severity")
    );
    assert_eq!(ctx.metrics.sum("Jobs", &[("status", "HELD")]), 1.0);
    assert_eq!(ctx.metrics.sum("Jobs", &[("status", "BLOCKED")]), 1.0);
    assert_eq!(
        ctx.metrics.sum("GateResults", &[("status", "BLOCKED")]),
        1.0,
        "what BlockedImagesAlarm watches"
    );
}

#[tokio::test]
async fn an_engine_that_cannot_judge_blocks_every_gated_copy() {
    let engine = Arc::new(Copies::default());
    let (ctx, published) = run_ctx(engine.clone());
    let mut event = SqsEvent::default();
    event.records = vec![message_for("1", "good")];
    let report = replicate(event, None, &ctx).await;
    assert_eq!(report.outcomes[0].status, Status::Blocked);
    assert!(engine.copied.lock().unwrap().is_empty());
    assert_eq!(
        published.results()[0]
            .gate
            .as_ref()
            .map(|g| g.code.as_str()),
        Some("gate-error")
    );
}
