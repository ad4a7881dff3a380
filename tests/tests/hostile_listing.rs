//! Names a registry lists are untrusted input: a `_catalog` or `tags/list` that names
//! `../../other/manifests/v1`, `x?y=1`, a 200-character tag or a control character is
//! reported (`invalid-name`, `tag-too-long`) and skipped, the rest of the sync goes on, and
//! no request leaves the repository the name was listed in.

use ferry_e2e::ferry::{describe, run_ferry};
use ferry_e2e::proxy::{Canned, Proxy};
use ferry_e2e::registry::Registry;
use serde_json::{Value, json};

/// Every path a proxy saw stays inside `/v2/`, `/v2/_catalog` or `/v2/<repo>/…`, and names
/// none of the hostile values.
fn assert_confined(proxy: &Proxy, repo: &str, side: &str) {
    for r in proxy.requests() {
        let path = r.path.split('?').next().unwrap_or_default();
        let inside =
            path == "/v2/" || path == "/v2/_catalog" || path.starts_with(&format!("/v2/{repo}/"));
        assert!(inside, "{side}: {} {} outside {repo}", r.method, r.path);
        for bad in ["other", "evil", "..", "%2e", "%2E", "y=1", "%3F", "%3f"] {
            assert!(
                !r.path.contains(bad),
                "{side}: {} {} carries a listed name",
                r.method,
                r.path
            );
        }
    }
}

#[test]
fn hostile_listings_are_reported_skipped_and_never_reach_a_url() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let image = ferry_e2e::fixtures::single_image(&src, "app", "v1", 4242).expect("fixture");
    let src_proxy = Proxy::start(&src).expect("source proxy");
    let dst_proxy = Proxy::start(&dst).expect("destination proxy");

    let long = "a".repeat(200);
    src_proxy.answer(Canned::json(
        "/v2/_catalog",
        &json!({"repositories": ["app", "../evil", "Evil", "app/../../evil"]}),
    ));
    src_proxy.answer(Canned::json(
        "/v2/app/tags/list",
        &json!({"name": "app", "tags": ["v1", "../../other/manifests/v1", "x?y=1", long, "ctl\u{1}", ".evil"]}),
    ));
    // The destination lists hostile tags too: with deletes on, each would be a delete.
    dst_proxy.answer(Canned::json(
        "/v2/app/tags/list",
        &json!({"name": "app", "tags": ["../../../v2/evil/manifests/x", "evil?n=1"]}),
    ));

    let dir = tempfile::tempdir().expect("tmp");
    let config = json!({
        "source": {"registry": src_proxy.host()},
        "rules": [{"deletes": true, "destinations": [{"registry": dst_proxy.host()}]}]
    });
    let path = dir.path().join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");
    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(
        [
            "sync",
            "-c",
            path.to_str().expect("utf-8"),
            "--output",
            "json",
        ],
        no_env,
    )
    .expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["totals"]["copied"], 1, "v1 is copied: {report}");
    assert_eq!(report["totals"]["deleted"], 0, "{report}");
    assert_eq!(report["totals"]["failed"], 0, "{report}");
    assert_eq!(
        dst.manifest_digest("app", "v1").expect("head").as_deref(),
        Some(image.digest.as_str())
    );

    let invalid = report["invalid_names"].as_array().expect("invalid_names");
    let mut seen: Vec<(String, String)> = invalid
        .iter()
        .map(|n| {
            (
                n["code"].as_str().unwrap_or_default().to_string(),
                n["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut want: Vec<(String, String)> = [
        ("invalid-name", "../evil"),
        ("invalid-name", "Evil"),
        ("invalid-name", "app/../../evil"),
        ("invalid-name", "../../other/manifests/v1"),
        ("invalid-name", "x?y=1"),
        ("invalid-name", "ctl\\u{1}"),
        ("invalid-name", ".evil"),
        ("invalid-name", "../../../v2/evil/manifests/x"),
        ("invalid-name", "evil?n=1"),
        ("tag-too-long", long.as_str()),
    ]
    .iter()
    .map(|(c, v)| (c.to_string(), v.to_string()))
    .collect();
    want.sort();
    assert_eq!(seen, want, "each refused name once: {invalid:#?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning[invalid-name]: ") && stderr.contains("warning[tag-too-long]: "),
        "{stderr}"
    );

    assert_confined(&src_proxy, "app", "source");
    assert_confined(&dst_proxy, "app", "destination");
    assert!(
        dst_proxy.requests().iter().all(|r| r.method != "DELETE"),
        "no delete of a listed name"
    );
}
