//! ECR's archive storage class, as far as real local services can play it: moto 5.2 has no
//! `imageStatus` and no UpdateImageStorageClass (those are stand-ins in
//! `crates/ferry/src/ecr/archive_tests.rs` and `crates/ferry/src/sync/archive_tests.rs`), but it answers DescribeImages with Ferry's
//! `imageStatus: ANY` filter, and a proxy in front of a real registry can answer a pull the
//! way ECR's registry endpoint is assumed to answer one of an archived image
//! (docs/ecr-notes.md, unverified wording).

use ferry_e2e::block;
use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures;
use ferry_e2e::proxy::{Canned, Proxy};
use ferry_e2e::registry::image_reference;
use ferry_e2e::{Moto, Sandbox, error_codes, verify_absent};
use serde_json::json;

#[test]
fn listing_with_every_image_status_works_against_moto_and_lists_active_images() {
    let moto = Moto::start().expect("moto");
    let config = moto.sdk_config("us-east-1");
    let client = aws_sdk_ecr::Client::new(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []
    })
    .to_string();
    block(async {
        client
            .create_repository()
            .repository_name("team/archive")
            .send()
            .await
            .expect("create");
        client
            .put_image()
            .repository_name("team/archive")
            .image_manifest(&manifest)
            .image_tag("v1")
            .send()
            .await
            .expect("put image");
    });
    let ecr = ferry::ecr::EcrControl::new(ferry::aws::AwsContext::new(config));
    let registry = ferry::reference::EcrRegistry::new("123456789012", "us-east-1");
    let images = block(ecr.list_images(&registry, None, "team/archive")).expect("list");
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].tags, ["v1"]);
    assert_eq!(
        images[0].archived, None,
        "an image without imageStatus is active"
    );
    let digest = images[0].digest.clone();
    let status = block(ecr.image_status(&registry, None, "team/archive", &digest)).expect("status");
    assert_eq!(status, Some(ferry::ecr::ImageStatus::Active));
    let gone = ferry::Digest::of(b"never pushed");
    assert_eq!(
        block(ecr.image_status(&registry, None, "team/archive", &gone)).expect("status"),
        None,
        "a missing image has no status"
    );
}

#[test]
fn an_archived_pull_answer_is_a_permanent_archived_error_tried_once() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture =
        fixtures::single_image(&sandbox.src, "app/archived", "v1", 1301).expect("fixture");
    let proxy = Proxy::start(&sandbox.src).expect("proxy");
    // The pull of the manifest, by tag or by digest, answers as an archived image.
    let paths: Vec<String> = [fixture.tag.as_str(), fixture.digest.as_str()]
        .iter()
        .map(|r| format!("/v2/{}/manifests/{r}", fixture.repo))
        .collect();
    for path in &paths {
        proxy.answer(Canned {
            path: path.clone(),
            status: 400,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&json!({"errors": [{
                "code": "IMAGE_ARCHIVED",
                "message": "The image is archived and must be restored before it can be pulled"
            }]}))
            .expect("json"),
        });
    }
    let src_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let out = sandbox.copy(&src_ref, &dst_ref, &[]).expect("ferry runs");
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(error_codes(&out), ["archived"], "{}", describe(&out));
    let gets = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && paths.iter().any(|p| r.path.split('?').next() == Some(p)))
        .count();
    assert_eq!(gets, 1, "a permanent error is not retried");
    verify_absent(&fixture, &sandbox.dst, &fixture.repo).expect("nothing written");
}
