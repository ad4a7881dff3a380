//! Referrers added at the source after an image was copied: the two-request warm path
//! does not look for them; `--recheck-referrers` does.

use ferry_e2e::ferry::describe;
use ferry_e2e::{Registry, fixtures, parse_report, run_ferry};

#[test]
fn a_signature_added_later_arrives_with_recheck_referrers() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let fixture = fixtures::signed_index(&src, "team/app", "v1", 901).expect("fixture");
    let sig_tag = fixture
        .extra_tags
        .iter()
        .find(|t| t.ends_with(".sig"))
        .expect("signature tag")
        .clone();
    let dst_ref = dst.reference("team/app", "v1");
    let no_env: &[(&str, &str)] = &[];

    // First copy without referrers: as if the image was copied before it was signed.
    let out = run_ferry(
        [
            "copy",
            &fixture.reference,
            &dst_ref,
            "--no-referrers",
            "--output",
            "json",
        ],
        no_env,
    )
    .expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        dst.manifest_digest("team/app", &sig_tag).expect("head"),
        None
    );

    // The warm path: two requests, the signature is not looked for.
    let out = run_ferry(
        ["copy", &fixture.reference, &dst_ref, "--output", "json"],
        no_env,
    )
    .expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    let warm = parse_report(&out).expect("report");
    assert_eq!(warm.requests.total, 2);
    assert_eq!(
        dst.manifest_digest("team/app", &sig_tag).expect("head"),
        None
    );

    // With --recheck-referrers the signature follows.
    let out = run_ferry(
        [
            "copy",
            &fixture.reference,
            &dst_ref,
            "--recheck-referrers",
            "--output",
            "json",
        ],
        no_env,
    )
    .expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    let rechecked = parse_report(&out).expect("report");
    assert_eq!(rechecked.referrers, 1, "{}", describe(&out));
    assert_eq!(
        rechecked.blobs.copied as usize,
        fixture.referrer_blobs.len()
    );
    assert_eq!(
        dst.manifest_digest("team/app", &sig_tag).expect("head"),
        src.manifest_digest("team/app", &sig_tag).expect("head")
    );
    // And the image itself was not moved again.
    assert_eq!(
        dst.manifest_digest("team/app", "v1")
            .expect("head")
            .as_deref(),
        Some(fixture.digest.as_str())
    );
}
