//! Promotion gates through the pipeline: a push of a gated image is judged by dispatch
//! (the engine reading ECR's scan through moto's DescribeImageScanFindings), held with a
//! HELD result event on the result bus and no job; the scan's completion event (ECR Image
//! Scan) releases it, and replicate, judging again, copies it.

mod support;

use ferry_e2e::fixtures;
use ferry_e2e::scans::{complete_scan, register_image};
use ferry_pipeline::Status;
use serde_json::{Value, json};
use support::{Options, Sandbox, detail};

/// A sandbox whose rule has `gates`.
fn gated(gates: Value) -> Sandbox {
    Sandbox::start_with(
        Options {
            rule: json!({ "gates": gates }),
            ..Options::default()
        },
        &Default::default(),
    )
    .unwrap()
}

fn register(sb: &Sandbox, repo: &str, reference: &str, tag: Option<&str>) -> String {
    register_image(&sb.moto, sb.src.registry(), repo, reference, tag).unwrap()
}

fn scanned(sb: &Sandbox, repo: &str, digest: &str, findings: &[(&str, &str)]) {
    complete_scan(&sb.moto, repo, digest, findings).unwrap();
}

#[test]
fn an_index_with_one_failing_platform_and_a_scan_that_never_comes_are_blocked() {
    let sb = gated(json!({"scan": {"maxSeverity": "HIGH", "waitMinutes": 60}}));
    let index = fixtures::oci_index(&sb.src, "team/multi", "v1", 91).unwrap();
    let index_digest = register(&sb, "team/multi", "v1", Some("v1"));
    assert_eq!(index_digest, index.digest);
    // ECR scans each platform image: amd64 clean, arm64 with a CRITICAL finding.
    let (amd64, arm64) = (&index.manifests[1], &index.manifests[2]);
    // Tagged in moto only: its canned answers match an untagged image to any result
    // without a tag (None == None), whatever the digest.
    register(&sb, "team/multi", amd64, Some("moto-amd64"));
    register(&sb, "team/multi", arm64, Some("moto-arm64"));
    scanned(&sb, "team/multi", amd64, &[("CVE-2026-0100", "LOW")]);
    scanned(&sb, "team/multi", arm64, &[("CVE-2026-0101", "CRITICAL")]);

    let source = ferry::config::Registry::from_host(&sb.src.ecr_host());
    let judge = |repo: &str, digest: &str, at: std::time::SystemTime| {
        let target = &sb.config.destinations_for(repo, Some("v1")).unwrap()[0];
        let check = ferry::gate::GateCheck::new(
            sb.replicator.copier().client().clone(),
            sb.replicator.ecr().cloned(),
        )
        .at(at);
        let digest: ferry::Digest = digest.parse().unwrap();
        let image = ferry::gate::GateImage {
            registry: &source,
            repository: repo,
            digest: &digest,
        };
        sb.rt
            .block_on(check.verdict(target.gates.as_ref(), image, &target.platforms))
            .unwrap()
    };
    let now = std::time::SystemTime::now();
    let verdict = judge("team/multi", &index.digest, now);
    let ferry::gate::Verdict::Blocked(reason) = &verdict else {
        panic!("one failing platform blocks the index: {verdict:?}");
    };
    assert_eq!(reason.code, "severity");
    assert!(reason.reason.contains("linux/arm64"), "{}", reason.reason);

    // Never scanned: held within waitMinutes of its push (moto's imagePushedAt), then
    // blocked, scan-timeout.
    let late = fixtures::single_image(&sb.src, "team/late", "v1", 92).unwrap();
    register(&sb, "team/late", "v1", Some("v1"));
    let held = judge("team/late", &late.digest, now);
    assert!(
        matches!(&held, ferry::gate::Verdict::Held(r) if r.code == "scan-pending"),
        "{held:?}"
    );
    let later = now + std::time::Duration::from_secs(61 * 60);
    let timed_out = judge("team/late", &late.digest, later);
    assert!(
        matches!(&timed_out, ferry::gate::Verdict::Blocked(r) if r.code == "scan-timeout"),
        "{timed_out:?}"
    );
}

fn envelope(id: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": detail_type, "source": "aws.ecr",
        "account": support::ACCOUNT_A, "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    })
}

#[test]
fn a_held_push_is_released_by_its_scan_event_and_then_copied() {
    let sb = gated(json!({"scan": {"maxSeverity": "HIGH"}}));
    let image = fixtures::single_image(&sb.src, "team/api", "v1", 81).unwrap();
    // ECR's control plane knows the image (moto), with its real digest.
    register(&sb, "team/api", "v1", Some("v1"));

    // The push: not scanned yet, so held at every destination; no job.
    let push = envelope(
        "push-1",
        "ECR Image Action",
        detail(
            "PUSH",
            "team/api",
            Some("v1"),
            &image.digest,
            &image.media_type,
        ),
    );
    let d = sb.dispatch_gated_raw(push).unwrap();
    let destinations = sb.destinations().len();
    assert_eq!(
        (d.jobs.len(), d.held, d.blocked),
        (0, destinations, 0),
        "{d:?}"
    );
    let held = sb.results().unwrap();
    assert_eq!(held.len(), destinations);
    assert!(
        held.iter().all(|r| r.status == Status::Held
            && r.gate.as_ref().is_some_and(|g| g.code == "scan-pending"))
    );

    // The scan completes clean; its event releases the copies.
    scanned(&sb, "team/api", &image.digest, &[]);
    let mut scan: Value =
        serde_json::from_str(include_str!("../../../testdata/events/ecr-image-scan.json")).unwrap();
    scan["account"] = json!(support::ACCOUNT_A);
    scan["detail"]["repository-name"] = json!("team/api");
    scan["detail"]["image-digest"] = json!(image.digest);
    scan["detail"]["image-tags"] = json!(["v1"]);
    let d = sb.dispatch_gated_raw(scan).unwrap();
    assert_eq!((d.jobs.len(), d.held), (destinations, 0), "{d:?}");
    sb.run_replicate(1).unwrap();
    let copied = sb.results().unwrap();
    assert_eq!(copied.len(), destinations, "{copied:?}");
    assert!(
        copied.iter().all(|r| r.status == Status::Succeeded),
        "{copied:?}"
    );
    for dst in sb.destinations() {
        assert_eq!(
            dst.registry()
                .manifest_digest("team/api", "v1")
                .unwrap()
                .as_deref(),
            Some(image.digest.as_str())
        );
    }
}

#[test]
fn a_referrer_pushed_after_a_lost_scan_event_releases_the_held_image() {
    let sb = gated(json!({"scan": {"maxSeverity": "HIGH"}}));
    sb.record_calls().unwrap();
    let mut image = fixtures::single_image(&sb.src, "team/api", "v2", 93).unwrap();
    register(&sb, "team/api", "v2", Some("v2"));
    let push = envelope(
        "push-2",
        "ECR Image Action",
        detail(
            "PUSH",
            "team/api",
            Some("v2"),
            &image.digest,
            &image.media_type,
        ),
    );
    assert_eq!(sb.dispatch_gated_raw(push).unwrap().jobs.len(), 0, "held");
    // The scan completes, but its event is lost.
    scanned(&sb, "team/api", &image.digest, &[]);
    // A signature is pushed (as ECR managed signing does after the push): its event
    // releases the held copies, the subject and its tag read from the source (the
    // registry and moto's DescribeImages).
    let (_, subject) = sb
        .src
        .registry()
        .manifest("team/api", &image.digest)
        .unwrap()
        .unwrap();
    fixtures::attach_referrer(
        &fixtures::Target::from(&sb.src),
        &mut image,
        subject.len() as u64,
        fixtures::media::NOTATION_SIGNATURE,
        &json!({"payload": "e30", "signature": "ZmFrZQ"}),
    )
    .unwrap();
    let signature = image.referrers.last().unwrap().clone();
    let event = envelope(
        "referrer-1",
        "ECR Referrer Action",
        detail(
            "PUSH",
            "team/api",
            None,
            &signature,
            "application/vnd.oci.image.manifest.v1+json",
        ),
    );
    let d = sb.dispatch_gated_raw(event).unwrap();
    let copies: Vec<_> = d
        .jobs
        .iter()
        .filter(|j| j.action == ferry_pipeline::job::JobAction::Copy)
        .collect();
    assert_eq!(copies.len(), sb.destinations().len(), "{d:?}");
    assert!(copies.iter().all(|j| j.source.tag.as_deref() == Some("v2")
        && j.source.digest.as_ref().map(|d| d.as_str()) == Some(image.digest.as_str())));
    sb.run_replicate(1).unwrap();
    for dst in sb.destinations() {
        assert_eq!(
            dst.registry()
                .manifest_digest("team/api", "v2")
                .unwrap()
                .as_deref(),
            Some(image.digest.as_str())
        );
    }
    // Every AWS call dispatch made to judge the gates (and replicate's) is in the IAM
    // table evaluated against the templates. (Manifest reads go to the registry
    // endpoint, not to moto: BatchGetImage is granted by the table, not recorded here.)
    let calls = sb.calls_in_table().unwrap();
    let dispatch: Vec<String> = calls["DispatchRole"]
        .iter()
        .filter_map(|c| c.iam_action())
        .collect();
    for action in [
        "ecr:DescribeImageScanFindings",
        "ecr:DescribeImages",
        "events:PutEvents",
    ] {
        assert!(
            dispatch.iter().any(|a| a == action),
            "dispatch made no {action}: {dispatch:?}"
        );
    }
}
