//! `ferry sync` to many destinations reads each source image's manifests once for the whole
//! run, not once per destination (issue #10: shared work is done once per push).

use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::proxy::{PathKind, Proxy};
use ferry_e2e::{Registry, fixtures, run_ferry, verify_copy};
use serde_json::json;

#[test]
fn one_sync_to_six_destinations_reads_the_source_manifests_once() {
    let src = Registry::start().expect("source");
    let proxy = Proxy::start(&src).expect("proxy");
    // An index of two platforms: three manifests.
    let f = fixtures::oci_index(&src, "team/api", "v1", 91).expect("fixture");
    let dsts: Vec<Registry> = (0..2)
        .map(|_| Registry::start().expect("destination"))
        .collect();
    let mut destinations = Vec::new();
    for d in &dsts {
        for j in 0..3 {
            destinations.push(
                json!({"registry": d.host(), "repositoryName": format!("fan{j}/{{repository}}")}),
            );
        }
    }
    let config = ConfigFile::write(&json!({
        "source": {"registry": proxy.host(), "repositories": ["team/api"]},
        "rules": [{"destinations": destinations}]
    }))
    .expect("config");
    let out = run_ferry(
        ["sync", "-c", config.arg(), "--output", "json"],
        &[] as &[(&str, &str)],
    )
    .expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    for d in &dsts {
        for j in 0..3 {
            verify_copy(&src, &f, d, &format!("fan{j}/team/api")).expect("a faithful copy");
        }
    }
    let seen = proxy.requests();
    let fetched = seen
        .iter()
        .filter(|r| r.kind == PathKind::Manifest && r.method == "GET" && r.status == 200)
        .count();
    assert_eq!(
        fetched,
        f.manifests.len(),
        "the graph's manifests once for six destinations: {seen:#?}"
    );
}
