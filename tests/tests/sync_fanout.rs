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
    fan_sync(&proxy.host(), destinations);
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

/// Source blob GETs the proxy answered in full (200), per blob path.
fn blob_reads(proxy: &Proxy) -> std::collections::BTreeMap<String, usize> {
    let mut reads = std::collections::BTreeMap::new();
    for r in proxy.requests() {
        if r.kind == PathKind::Blob && r.method == "GET" && r.status == 200 {
            let digest = r.path.rsplit('/').next().unwrap_or_default().to_string();
            *reads.entry(digest).or_insert(0) += 1;
        }
    }
    reads
}

/// `ferry sync --output json` from `source` to the given destinations; it must succeed.
fn fan_sync(source: &str, destinations: Vec<serde_json::Value>) -> std::process::Output {
    let config = ConfigFile::write(&json!({
        "source": {"registry": source, "repositories": ["team/api"]},
        "rules": [{"destinations": destinations}]
    }))
    .expect("config");
    let out = run_ferry(
        ["sync", "-c", config.arg(), "--output", "json"],
        &[] as &[(&str, &str)],
    )
    .expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    out
}

#[test]
fn one_sync_to_five_registries_reads_each_blob_from_the_source_once() {
    let src = Registry::start().expect("source");
    let proxy = Proxy::start(&src).expect("proxy");
    let f = fixtures::oci_index(&src, "team/api", "v1", 92).expect("fixture");
    let dsts: Vec<Registry> = (0..5)
        .map(|_| Registry::start().expect("destination"))
        .collect();
    // Five registries, and a second repository in the first: it mounts from the first.
    let mut destinations: Vec<_> = dsts
        .iter()
        .map(|d| json!({"registry": d.host(), "repositoryName": "fan/{repository}"}))
        .collect();
    destinations.push(json!({"registry": dsts[0].host(), "repositoryName": "again/{repository}"}));
    let out = fan_sync(&proxy.host(), destinations);
    for d in &dsts {
        verify_copy(&src, &f, d, "fan/team/api").expect("a faithful copy");
    }
    verify_copy(&src, &f, &dsts[0], "again/team/api").expect("a faithful copy");

    // Every blob of the image crossed from the source exactly once, for six destinations.
    let reads = blob_reads(&proxy);
    let expected: std::collections::BTreeMap<String, usize> =
        f.blobs.iter().map(|b| (b.digest.clone(), 1)).collect();
    assert_eq!(reads, expected, "each blob read once");

    // Each destination's report counts its own uploads: the five registries each uploaded
    // every blob; the second repository of the first registry mounted them.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let blobs = f.blobs.len() as u64;
    let mut copied = Vec::new();
    for item in report["items"].as_array().expect("items") {
        let r = &item["report"]["blobs"];
        copied.push((
            r["copied"].as_u64().unwrap_or(0),
            r["mounted"].as_u64().unwrap_or(0),
        ));
    }
    copied.sort();
    let mut want = vec![(blobs, 0); 5];
    want.insert(0, (0, blobs));
    assert_eq!(copied, want, "{report:#}");
    assert_eq!(report["totals"]["bytes"].as_u64(), Some(5 * f.blob_bytes()));
}

#[test]
fn a_destination_whose_upload_fails_reads_again_on_its_own_and_the_others_are_not_held() {
    use ferry_e2e::proxy::InjectRule;
    let src = Registry::start().expect("source");
    let proxy = Proxy::start(&src).expect("proxy");
    let f = fixtures::oci_index(&src, "team/api", "v1", 93).expect("fixture");
    let dsts: Vec<Registry> = (0..3)
        .map(|_| Registry::start().expect("destination"))
        .collect();
    // The third destination refuses its first blob upload (a 500 on the PUT).
    let bad = Proxy::start(&dsts[2]).expect("destination proxy");
    bad.inject(InjectRule {
        method: Some(reqwest::Method::PUT),
        kind: Some(PathKind::BlobUpload),
        status: 500,
        retry_after: None,
        times: 1,
    });
    let mut destinations: Vec<_> = dsts[..2]
        .iter()
        .map(|d| json!({"registry": d.host(), "repositoryName": "fan/{repository}"}))
        .collect();
    destinations.push(json!({"registry": bad.host(), "repositoryName": "fan/{repository}"}));
    fan_sync(&proxy.host(), destinations);
    for d in &dsts {
        verify_copy(&src, &f, d, "fan/team/api").expect("a faithful copy");
    }
    // One blob was read a second time, for the destination that refused it; every other
    // read served all three.
    let reads = blob_reads(&proxy);
    let total: usize = reads.values().sum();
    assert_eq!(reads.len(), f.blobs.len(), "{reads:?}");
    assert_eq!(total, f.blobs.len() + 1, "{reads:?}");
    assert_eq!(bad.fault_counts().get("inject"), Some(&1));
}
