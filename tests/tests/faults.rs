//! Failures on the way: corrupted source blobs, redirects to pre-signed URLs, cut
//! connections, transient errors.

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures;
use ferry_e2e::proxy::{CutRule, InjectRule, PathKind, Proxy};
use ferry_e2e::registry::image_reference;
use ferry_e2e::{
    DockerConfig, Registry, Sandbox, error_codes, parse_report, scenario, verify_absent,
    verify_copy,
};
use reqwest::Method;

#[test]
fn corrupted_source_blob_is_a_digest_mismatch_and_commits_nothing() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/corrupt", "v1", 401).expect("fixture");
    let layer = fixture.largest_blob().expect("layer").clone();
    sandbox
        .src
        .corrupt_blob(&layer.digest)
        .expect("corrupt the layer on disk");
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let output = sandbox
        .copy(&fixture.reference, &dst_ref, &[])
        .expect("ferry runs");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        error_codes(&output).contains(&"digest-mismatch".to_string()),
        "{}",
        describe(&output)
    );
    verify_absent(&fixture, &sandbox.dst, &fixture.repo).expect("no manifest at the destination");
    assert!(
        !sandbox
            .dst
            .has_blob(&fixture.repo, &layer.digest)
            .expect("HEAD blob"),
        "the corrupted blob was committed at the destination"
    );
}

#[test]
fn redirected_blob_gets_never_carry_the_registry_authorization() {
    let src = Registry::start_with_auth("source-user", "source-pass").expect("source registry");
    let dst = Registry::start_with_auth("dest-user", "dest-pass").expect("destination registry");
    let fixture = fixtures::oci_index(&src, "app/redirected", "v1", 402).expect("fixture");
    let proxy = Proxy::start(&src).expect("proxy");
    proxy.set_redirect_blobs(true);
    let mut config = DockerConfig::for_registries(&[&dst]).expect("config");
    config
        .add(
            &proxy.host(),
            src.credentials().expect("source credentials"),
        )
        .expect("proxy credentials");
    let src_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let dst_ref = fixture.reference_at(&dst.host());
    let output = scenario::copy_json(&src_ref, &dst_ref, &[], &[config.env()]).expect("ferry runs");
    let stats = proxy.object_store_stats();
    assert!(
        output.status.success(),
        "{}\nobject store: {stats:?}",
        describe(&output)
    );
    assert_eq!(
        stats.rejected_auth, 0,
        "Authorization reached the object store: {stats:?}"
    );
    assert!(
        stats.served >= fixture.blobs.len() as u64,
        "blobs not fetched through the redirect: {stats:?}"
    );
    assert!(proxy.requests().iter().any(|r| r.fault == Some("redirect")));
    verify_copy(&src, &fixture, &dst, &fixture.repo).expect("verified");
}

#[test]
fn interrupted_copy_resumes_on_the_next_run() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::oci_index(&sandbox.src, "app/interrupted", "v1", 403).expect("fixture");
    let proxy = Proxy::start(&sandbox.src).expect("proxy");
    let victim = fixture.largest_blob().expect("layer").clone();
    proxy.cut_blob_body(CutRule {
        digest: Some(victim.digest.clone()),
        after_bytes: 64 * 1024,
        attempts: 10_000,
    });
    let src_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let dst_ref = fixture.reference_at(&sandbox.dst.host());

    let first = sandbox.copy(&src_ref, &dst_ref, &[]).expect("ferry runs");
    assert_eq!(
        first.status.code(),
        Some(1),
        "first copy must fail:\n{}",
        describe(&first)
    );
    verify_absent(&fixture, &sandbox.dst, &fixture.repo).expect("no tag after a failed copy");
    let cut = proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("cut"))
        .count();
    assert!(cut >= 1, "the proxy never cut the blob");

    proxy.heal();
    let second = sandbox.copy(&src_ref, &dst_ref, &[]).expect("ferry runs");
    assert!(
        second.status.success(),
        "second copy:\n{}",
        describe(&second)
    );
    let report = parse_report(&second).expect("report");
    assert!(
        report.blobs.skipped >= 1,
        "nothing was kept from the first run: {report:?}"
    );
    assert!(
        report.blobs.copied >= 1,
        "the cut blob must be copied now: {report:?}"
    );
    // Blobs under a child manifest that the first run completed are not even looked at
    // again, so copied + skipped may be less than the image's blob count.
    assert!(
        report.blobs.copied + report.blobs.skipped <= fixture.blobs.len() as u64,
        "{report:?}"
    );
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("verified");
}

#[test]
fn blob_cut_once_mid_body_is_resumed_with_range() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/ranged", "v1", 404).expect("fixture");
    let proxy = Proxy::start(&sandbox.src).expect("proxy");
    let victim = fixture.largest_blob().expect("layer").clone();
    proxy.cut_blob_body(CutRule {
        digest: Some(victim.digest.clone()),
        after_bytes: 300 * 1024,
        attempts: 1,
    });
    let src_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let output = sandbox.copy(&src_ref, &dst_ref, &[]).expect("ferry runs");
    let gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&victim.digest))
        .collect();
    assert!(
        output.status.success(),
        "{}\nblob GETs: {gets:#?}",
        describe(&output)
    );
    assert!(
        gets.iter().any(|r| r.fault == Some("cut")),
        "never cut: {gets:#?}"
    );
    assert!(
        gets.iter().any(|r| r.range.is_some()),
        "the retry did not ask for a Range: {gets:#?}"
    );
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("verified");
}

#[test]
fn transient_errors_are_retried() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/flaky", "v1", 405).expect("fixture");
    let proxy = Proxy::start(&sandbox.dst).expect("proxy");
    proxy.inject(InjectRule {
        method: Some(Method::PUT),
        kind: Some(PathKind::BlobUpload),
        status: 503,
        retry_after: None,
        times: 1,
    });
    proxy.inject(InjectRule {
        method: None,
        kind: Some(PathKind::Manifest),
        status: 429,
        retry_after: Some(1),
        times: 1,
    });
    let mut config = DockerConfig::new().expect("config");
    config
        .add(
            &proxy.host(),
            sandbox.dst.credentials().expect("credentials"),
        )
        .expect("proxy credentials");
    let dst_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let output = scenario::copy_json(&fixture.reference, &dst_ref, &[], &[config.env()])
        .expect("ferry runs");
    assert!(
        output.status.success(),
        "{}\n{:#?}",
        describe(&output),
        proxy.requests()
    );
    let injected = proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("inject"))
        .count();
    assert_eq!(injected, 2, "{:#?}", proxy.requests());
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("verified");
}
