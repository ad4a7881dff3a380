//! Promotion gates through the pipeline: a push of a gated image is judged by dispatch
//! (the engine reading ECR's scan through moto's DescribeImageScanFindings), held with a
//! HELD result event on the result bus and no job; the scan's completion event (ECR Image
//! Scan) releases it, and replicate, judging again, copies it.

mod support;

use ferry_e2e::fixtures;
use ferry_pipeline::Status;
use serde_json::{Value, json};
use support::{Options, Sandbox, detail};

fn envelope(id: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": detail_type, "source": "aws.ecr",
        "account": support::ACCOUNT_A, "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    })
}

#[test]
fn a_held_push_is_released_by_its_scan_event_and_then_copied() {
    let sb = Sandbox::start_with(
        Options {
            rule: json!({"gates": {"scan": {"maxSeverity": "HIGH"}}}),
            ..Options::default()
        },
        &Default::default(),
    )
    .unwrap();
    let image = fixtures::single_image(&sb.src, "team/api", "v1", 81).unwrap();
    // ECR's control plane knows the image (moto), with its real digest.
    let ecr = aws_sdk_ecr::Client::new(&sb.sdk);
    let (media_type, manifest) = sb
        .src
        .registry()
        .manifest("team/api", "v1")
        .unwrap()
        .unwrap();
    sb.rt.block_on(async {
        ecr.create_repository()
            .repository_name("team/api")
            .send()
            .await
            .unwrap();
        ecr.put_image()
            .repository_name("team/api")
            .image_manifest(String::from_utf8(manifest).unwrap())
            .image_manifest_media_type(media_type)
            .image_tag("v1")
            .image_digest(&image.digest)
            .send()
            .await
            .unwrap();
    });

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
    sb.rt.block_on(async {
        ecr.start_image_scan()
            .repository_name("team/api")
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(&image.digest)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let canned = json!({
        "results": [{
            "registryId": support::ACCOUNT_A, "repositoryName": "team/api",
            "imageId": {"imageDigest": image.digest},
            "imageScanStatus": {"status": "COMPLETE"},
            "imageScanFindings": {"findings": [], "findingSeverityCounts": {"LOW": 0}},
        }],
        "region": "us-east-1",
    });
    let response = ferry_e2e::http::send(
        reqwest::Method::POST,
        &format!(
            "{}/moto-api/static/ecr/scan-finding-results",
            sb.moto.endpoint()
        ),
        None,
        &[("Content-Type", "application/json")],
        Some(canned.to_string().into_bytes()),
    )
    .unwrap();
    assert_eq!(response.status, 201);
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
