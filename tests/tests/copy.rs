//! `ferry copy` of every fixture kind from a plain registry to an htpasswd registry,
//! verified with skopeo and the registry API.

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::{self, Fixture};
use ferry_e2e::{Report, Sandbox, error_codes, parse_report, verify_copy};

/// Copies `fixture` to the same repository and tag at the destination and verifies it.
fn copy_and_verify(sandbox: &Sandbox, fixture: &Fixture) -> Report {
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let output = sandbox
        .copy(&fixture.reference, &dst_ref, &[])
        .expect("ferry runs");
    assert!(
        output.status.success(),
        "copy failed:\n{}",
        describe(&output)
    );
    let report = parse_report(&output).expect("JSON report");
    assert_eq!(report.digest, fixture.digest, "report digest");
    verify_copy(&sandbox.src, fixture, &sandbox.dst, &fixture.repo)
        .unwrap_or_else(|err| panic!("verification failed: {err:#}\n{}", describe(&output)));
    report
}

#[test]
fn copies_a_single_platform_image() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/single", "v1", 101).expect("fixture");
    let report = copy_and_verify(&sandbox, &fixture);
    assert_eq!(
        report.blobs.copied,
        fixture.blobs.len() as u64,
        "{report:?}"
    );
    assert_eq!(report.manifests.copied, 1, "{report:?}");
    assert_eq!(report.bytes, fixture.blob_bytes(), "{report:?}");
    assert_eq!(report.tags, vec!["v1".to_string()], "{report:?}");
}

#[test]
fn copies_a_two_platform_oci_index() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::oci_index(&sandbox.src, "app/oci-index", "v2", 102).expect("fixture");
    let report = copy_and_verify(&sandbox, &fixture);
    assert_eq!(report.manifests.copied, 3, "{report:?}");
    // The layer shared by both platforms crosses the wire once.
    assert_eq!(
        report.blobs.copied,
        fixture.blobs.len() as u64,
        "{report:?}"
    );
    assert_eq!(report.bytes, fixture.blob_bytes(), "{report:?}");
}

#[test]
fn copies_a_docker_manifest_list() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::docker_manifest_list(&sandbox.src, "app/docker-list", "v3", 103)
        .expect("fixture");
    let report = copy_and_verify(&sandbox, &fixture);
    assert_eq!(report.manifests.copied, 3, "{report:?}");
}

#[test]
fn copies_a_cosign_signature_tag() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::signed_index(&sandbox.src, "app/signed", "v1", 104).expect("fixture");
    let report = copy_and_verify(&sandbox, &fixture);
    assert!(
        report.referrers >= 1,
        "signature counted as a referrer: {report:?}"
    );
}

#[test]
fn copies_an_oci_referrer_and_its_fallback_tag() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture =
        fixtures::image_with_referrer(&sandbox.src, "app/referred", "v1", 105).expect("fixture");
    let report = copy_and_verify(&sandbox, &fixture);
    assert_eq!(report.referrers, 1, "{report:?}");
}

#[test]
fn no_referrers_flag_leaves_signatures_behind() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::signed_index(&sandbox.src, "app/unsigned", "v1", 106).expect("fixture");
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let output = sandbox
        .copy(&fixture.reference, &dst_ref, &["--no-referrers"])
        .expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        sandbox
            .dst
            .manifest_digest(&fixture.repo, &fixture.tag)
            .expect("HEAD")
            .as_deref(),
        Some(fixture.digest.as_str())
    );
    assert!(
        !sandbox
            .dst
            .tags(&fixture.repo)
            .expect("tags")
            .contains(&fixture.extra_tags[0]),
        "signature tag copied despite --no-referrers"
    );
}

#[test]
fn copies_a_config_only_artifact() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture =
        fixtures::config_only_artifact(&sandbox.src, "app/artifact", "v1", 107).expect("fixture");
    let report = copy_and_verify(&sandbox, &fixture);
    assert_eq!(report.blobs.copied, 1, "only the config: {report:?}");
}

#[test]
fn destination_without_tag_keeps_the_source_tag() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture =
        fixtures::single_image(&sandbox.src, "app/keep", "release-1", 108).expect("fixture");
    let dst_ref = format!("{}/mirror/keep", sandbox.dst.host());
    let output = sandbox
        .copy(&fixture.reference, &dst_ref, &[])
        .expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, "mirror/keep")
        .expect("copied under the source tag");
}

#[test]
fn copy_by_digest_reaches_the_destination_by_digest() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::oci_index(&sandbox.src, "app/bydigest", "v1", 109).expect("fixture");
    let src_ref = fixture.digest_reference(&sandbox.src.host());
    let dst_ref = format!("{}/app/bydigest", sandbox.dst.host());
    let output = sandbox.copy(&src_ref, &dst_ref, &[]).expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    for manifest in &fixture.manifests {
        assert_eq!(
            sandbox
                .dst
                .manifest_digest("app/bydigest", manifest)
                .expect("HEAD")
                .as_deref(),
            Some(manifest.as_str())
        );
    }
}

#[test]
fn missing_credentials_are_an_auth_error() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/noauth", "v1", 110).expect("fixture");
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let empty = ferry_e2e::DockerConfig::new().expect("empty config");
    let output = ferry_e2e::scenario::copy_json(&fixture.reference, &dst_ref, &[], &[empty.env()])
        .expect("ferry runs");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        error_codes(&output).contains(&"auth".to_string()),
        "{}",
        describe(&output)
    );
}

#[test]
fn missing_source_tag_is_not_found() {
    let sandbox = Sandbox::start().expect("sandbox");
    let src_ref = format!("{}/app/nothing:v9", sandbox.src.host());
    let dst_ref = format!("{}/app/nothing:v9", sandbox.dst.host());
    let output = sandbox.copy(&src_ref, &dst_ref, &[]).expect("ferry runs");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        error_codes(&output).contains(&"not-found".to_string()),
        "{}",
        describe(&output)
    );
}

#[test]
fn bad_usage_exits_2() {
    let output = ferry_e2e::run_ferry(["copy", "only-one-argument"], &[] as &[(&str, &str)])
        .expect("ferry runs");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}
