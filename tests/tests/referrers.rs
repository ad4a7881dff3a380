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

/// A referrers listing is untrusted: a referrer whose own `subject` is another image is
/// not copied, through the referrers API or the tag-schema fallback, and no index at the
/// destination lists it.
#[test]
fn a_listed_referrer_of_another_image_is_refused() {
    use ferry_e2e::proxy::{Canned, Proxy};
    use serde_json::json;

    let src = Registry::start().expect("source");
    let plain = fixtures::single_image(&src, "app", "v1", 911).expect("image a");
    let signed = fixtures::image_with_referrer(&src, "app", "v2", 912).expect("image b");
    let referrer = signed.referrers[0].clone();
    let (media_type, bytes) = src
        .manifest("app", &referrer)
        .expect("get")
        .expect("referrer");
    let foreign = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": media_type, "digest": referrer, "size": bytes.len(),
                       "artifactType": "application/spdx+json"}]});
    let a_hex = plain.digest.trim_start_matches("sha256:");
    let no_env: &[(&str, &str)] = &[];

    for (how, path) in [
        (
            "referrers API",
            format!("/v2/app/referrers/{}", plain.digest),
        ),
        ("fallback tag", format!("/v2/app/manifests/sha256-{a_hex}")),
    ] {
        let dst = Registry::start().expect("destination");
        let proxy = Proxy::start(&src).expect("proxy");
        proxy.answer(Canned {
            content_type: "application/vnd.oci.image.index.v1+json".into(),
            ..Canned::json(&path, &foreign)
        });
        if how == "fallback tag" {
            // Referrer tags are looked up only when the tag list names them.
            proxy.answer(Canned::json(
                "/v2/app/tags/list",
                &json!({"name": "app", "tags": ["v1", "v2", format!("sha256-{a_hex}")]}),
            ));
        }
        let out = run_ferry(
            [
                "copy",
                &format!("{}/app:v1", proxy.host()),
                &dst.reference("app", "v1"),
                "--output",
                "json",
            ],
            no_env,
        )
        .expect("ferry runs");
        assert!(out.status.success(), "{how}: {}", describe(&out));
        assert!(
            proxy
                .requests()
                .iter()
                .any(|r| r.path.split('?').next() == Some(path.as_str())),
            "{how}: the hostile listing was read"
        );
        assert_eq!(
            dst.manifest_digest("app", &plain.digest)
                .expect("head")
                .as_deref(),
            Some(plain.digest.as_str()),
            "{how}: the image itself is copied"
        );
        assert_eq!(
            dst.manifest_digest("app", &referrer).expect("head"),
            None,
            "{how}: another image's referrer is not copied"
        );
        assert_eq!(
            dst.manifest_digest("app", &format!("sha256-{a_hex}"))
                .expect("head"),
            None,
            "{how}: no index lists it"
        );
        let report = parse_report(&out).expect("report");
        assert_eq!(report.referrers, 0, "{how}");
    }
}
