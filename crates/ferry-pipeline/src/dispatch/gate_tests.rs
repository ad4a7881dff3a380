//! Dispatch and promotion gates: a gated copy is judged before it is sent, a scan's
//! completion event releases it. The gatekeeper is a stand-in answering per tag; the
//! engine's judgement (ECR's findings read through moto) is tested end to end in
//! `tests/tests/gates.rs`.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::gate::Gatekeeper;
use crate::queue::MemoryQueue;
use crate::result::{MemoryPublisher, Status};
use ferry::gate::{GateName, GateReason};

const DIGEST: &str = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234abcd";

/// The first rule is gated (to eu-west-1), the second is not (to us-west-2).
fn authority() -> Authority {
    let config = ReplicationConfig::from_json(
        r#"{"source": {"registryId": "123456789012", "region": "us-east-1"},
            "rules": [
              {"destinations": [{"registryId": "123456789012", "region": "eu-west-1"}],
               "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
               "gates": {"scan": {"maxSeverity": "HIGH"}}},
              {"destinations": [{"registryId": "123456789012", "region": "us-west-2"}],
               "repositoryFilters": [{"filter": "team/api", "filterType": "PREFIX_MATCH"}],
               "tagFilters": [{"filter": "release-*", "filterType": "WILDCARD"}]}
            ]}"#,
    )
    .unwrap();
    Authority::new(Arc::new(config))
}

/// Answers by tag: one naming `held` is held, one naming `bad` blocked, anything else passes; counts calls.
#[derive(Default)]
struct ByTag {
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl Gatekeeper for ByTag {
    async fn verdict(&self, job: &Job, target: &Target) -> Result<Verdict, ferry::Error> {
        assert!(target.gates.is_some(), "only gated targets are judged");
        let tag = job.source.tag.clone().unwrap_or_default();
        self.asked.lock().unwrap().push(job.destination());
        Ok(if tag.contains("held") {
            Verdict::Held(GateReason::new(
                GateName::Scan,
                "scan-pending",
                "not scanned yet",
            ))
        } else if tag.contains("bad") {
            let mut reason = GateReason::new(GateName::Scan, "severity", "1 finding above HIGH");
            reason
                .findings
                .insert(ferry::config::FindingSeverity::Critical, 1);
            Verdict::Blocked(reason)
        } else {
            Verdict::Pass
        })
    }

    async fn subject_of(
        &self,
        _registry: &Registry,
        _repository: &str,
        referrer: &ferry::Digest,
    ) -> Result<Option<(ferry::Digest, Vec<String>)>, ferry::Error> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("subject of {referrer}"));
        Ok(Some((
            DIGEST.parse().unwrap(),
            vec!["release-signed".into()],
        )))
    }
}

fn push(tag: &str) -> serde_json::Value {
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../testdata/events/ecr-image-action-push.json"
    ))
    .unwrap();
    event["account"] = json!("123456789012");
    event["region"] = json!("us-east-1");
    event["detail"]["repository-name"] = json!("team/api");
    event["detail"]["image-tag"] = json!(tag);
    event["detail"]["image-digest"] = json!(DIGEST);
    event
}

fn scan(kind: &str, tags: &[&str]) -> serde_json::Value {
    let text = match kind {
        "ecr" => include_str!("../../../../testdata/events/ecr-image-scan.json"),
        _ => include_str!("../../../../testdata/events/inspector2-scan.json"),
    };
    let mut event: serde_json::Value = serde_json::from_str(text).unwrap();
    event["detail"]["image-tags"] = json!(tags);
    event
}

async fn run(
    event: serde_json::Value,
    keeper: &ByTag,
) -> (Dispatched, Vec<Job>, Vec<crate::result::ReplicationResult>) {
    let queue = MemoryQueue::default();
    let results = MemoryPublisher::default();
    let stage = GateStage {
        keeper,
        results: Some(&results),
    };
    let d = dispatch_gated(event, &authority(), &queue, &Metrics::memory(), Some(stage))
        .await
        .unwrap();
    (d, queue.jobs(), results.results())
}

#[tokio::test]
async fn a_held_push_sends_only_its_ungated_copies_and_reports_held() {
    let keeper = ByTag::default();
    let (d, jobs, results) = run(push("release-held"), &keeper).await;
    let sent: Vec<String> = jobs.iter().map(Job::destination).collect();
    assert_eq!(
        sent,
        ["123456789012.dkr.ecr.us-west-2.amazonaws.com/team/api"],
        "the ungated rule's copy goes at once"
    );
    assert_eq!((d.held, d.blocked), (1, 0));
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, Status::Held);
    assert_eq!(
        results[0].destination.registry,
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    );
    let gate = results[0].gate.as_ref().unwrap();
    assert_eq!(
        (gate.gate, gate.code.as_str()),
        (GateName::Scan, "scan-pending")
    );
    assert_eq!(
        keeper.asked.lock().unwrap().len(),
        1,
        "one gated target, one verdict"
    );
}

#[tokio::test]
async fn a_blocked_push_reports_blocked_with_its_counts_and_a_passing_one_is_sent() {
    let keeper = ByTag::default();
    let (d, jobs, results) = run(push("bad-1"), &keeper).await;
    assert!(jobs.is_empty(), "{jobs:?}");
    assert_eq!((d.held, d.blocked), (0, 1));
    assert_eq!(results[0].status, Status::Blocked);
    let detail = serde_json::to_value(&results[0]).unwrap();
    assert_eq!(detail["status"], "BLOCKED");
    assert_eq!(detail["gate"]["gate"], "scan");
    assert_eq!(detail["gate"]["findings"]["CRITICAL"], 1);

    let (d, jobs, results) = run(push("v2"), &keeper).await;
    assert_eq!(jobs.len(), 1);
    assert!(results.is_empty());
    assert_eq!((d.held, d.blocked), (0, 0));
}

#[tokio::test]
async fn a_scan_completion_releases_only_the_gated_copies() {
    for kind in ["ecr", "inspector"] {
        let keeper = ByTag::default();
        let (d, jobs, results) = run(scan(kind, &["release-1"]), &keeper).await;
        let sent: Vec<String> = jobs.iter().map(Job::destination).collect();
        assert_eq!(
            sent,
            ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api"],
            "{kind}: the ungated copy went with the push and is not sent again"
        );
        assert_eq!(jobs[0].source.tag.as_deref(), Some("release-1"));
        assert_eq!(
            jobs[0].source.digest.as_ref().map(|d| d.as_str()),
            Some(DIGEST)
        );
        assert!(results.is_empty() && d.ignored.is_none(), "{kind}");
    }
    // Still blocked after the scan: reported again, not sent.
    let (d, jobs, _) = run(scan("ecr", &["bad-2"]), &ByTag::default()).await;
    assert!(jobs.is_empty());
    assert_eq!(d.blocked, 1);
}

#[tokio::test]
async fn a_scan_of_an_image_no_gated_rule_selects_makes_nothing() {
    let mut event = scan("ecr", &["v1"]);
    event["detail"]["repository-name"] = json!("other/app");
    let (d, jobs, _) = run(event, &ByTag::default()).await;
    assert!(jobs.is_empty());
    assert_eq!(d.ignored, Some(Ignored::NoGatedRule));
}

#[tokio::test]
async fn without_a_stage_gated_copies_are_sent_for_replicate_to_judge() {
    let queue = MemoryQueue::default();
    let d = dispatch_in(
        push("release-held"),
        &authority(),
        &queue,
        &Metrics::memory(),
    )
    .await
    .unwrap();
    assert_eq!(d.jobs.len(), 2);
    assert_eq!((d.held, d.blocked), (0, 0));
}

#[tokio::test]
async fn a_signature_pushed_after_its_image_releases_the_images_gated_copies() {
    let keeper = ByTag::default();
    let event: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../testdata/events/ecr-referrer-action.json"
    ))
    .unwrap();
    let (d, jobs, results) = run(event, &keeper).await;
    let copies: Vec<(String, Option<String>)> = jobs
        .iter()
        .filter(|j| j.action == crate::job::JobAction::Copy)
        .map(|j| (j.destination(), j.source.tag.clone()))
        .collect();
    assert_eq!(
        copies,
        [(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api".to_string(),
            Some("release-signed".to_string())
        )],
        "the subject's gated copy, by its tag; the ungated copy went with the push"
    );
    assert_eq!(
        jobs.iter()
            .find(|j| j.action == crate::job::JobAction::Copy)
            .unwrap()
            .source
            .digest
            .as_ref()
            .map(|d| d.as_str()),
        Some(DIGEST)
    );
    assert!(results.is_empty() && d.held == 0);
    assert!(
        jobs.iter()
            .any(|j| j.action == crate::job::JobAction::Referrer),
        "the referrer's own jobs are still sent"
    );
}
