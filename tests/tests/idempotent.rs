//! Re-copying an image that is already there costs almost nothing.

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures;
use ferry_e2e::registry::image_reference;
use ferry_e2e::{DockerConfig, Proxy, Sandbox, parse_report, scenario, verify_copy};

#[test]
fn second_copy_moves_no_blobs_and_makes_at_most_two_requests() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::signed_index(&sandbox.src, "app/again", "v1", 301).expect("fixture");
    let dst_ref = fixture.reference_at(&sandbox.dst.host());

    let first = sandbox
        .copy(&fixture.reference, &dst_ref, &[])
        .expect("ferry runs");
    assert!(first.status.success(), "first copy:\n{}", describe(&first));
    let first = parse_report(&first).expect("first report");
    let all_blobs = fixture.blobs.len() + fixture.referrer_blobs.len();
    assert_eq!(
        first.blobs.copied, all_blobs as u64,
        "image and signature blobs: {first:?}"
    );

    let second = sandbox
        .copy(&fixture.reference, &dst_ref, &[])
        .expect("ferry runs");
    assert!(
        second.status.success(),
        "second copy:\n{}",
        describe(&second)
    );
    let report = parse_report(&second).expect("second report");
    assert_eq!(report.blobs.copied, 0, "{report:?}");
    assert_eq!(report.manifests.copied, 0, "{report:?}");
    assert_eq!(report.bytes, 0, "{report:?}");
    assert!(
        report.requests.total <= 2,
        "warm copy made {} requests: {report:?}",
        report.requests.total
    );
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("still verified");
}

#[test]
fn reported_request_counts_match_what_the_registries_saw() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::oci_index(&sandbox.src, "app/counted", "v1", 302).expect("fixture");
    let src_proxy = Proxy::start(&sandbox.src).expect("source proxy");
    let dst_proxy = Proxy::start(&sandbox.dst).expect("destination proxy");
    let mut config = DockerConfig::new().expect("config");
    let creds = sandbox
        .dst
        .credentials()
        .expect("destination credentials")
        .clone();
    config
        .add(&dst_proxy.host(), &creds)
        .expect("add proxy credentials");
    let src_ref = image_reference(&src_proxy.host(), &fixture.repo, &fixture.tag);
    let dst_ref = image_reference(&dst_proxy.host(), &fixture.repo, &fixture.tag);
    let envs = vec![config.env()];

    for run in ["cold", "warm"] {
        src_proxy.reset_counts();
        dst_proxy.reset_counts();
        let output = scenario::copy_json(&src_ref, &dst_ref, &[], &envs).expect("ferry runs");
        assert!(
            output.status.success(),
            "{run} copy:\n{}",
            describe(&output)
        );
        let report = parse_report(&output).expect("report");
        let seen = (src_proxy.total_requests() + dst_proxy.total_requests()) as u64;
        assert_eq!(
            report.requests.total,
            seen,
            "{run}: report says {} requests, proxies saw {seen}: src {:?} dst {:?}",
            report.requests.total,
            src_proxy.counts(),
            dst_proxy.counts()
        );
        let by_method: u64 = report.requests.by_method.values().sum();
        assert_eq!(by_method, report.requests.total, "{run}: {report:?}");
        if run == "warm" {
            assert!(
                dst_proxy.total_requests() <= 2,
                "warm: {:?}",
                dst_proxy.counts()
            );
        }
    }
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("verified");
}
