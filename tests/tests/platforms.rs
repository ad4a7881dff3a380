//! `rules[].platforms` against real registries: a sync that keeps one platform of a
//! two-platform index writes a new index listing only it, never reads nor writes the other
//! platform's manifest and blobs, and a second sync (and `verify`) finds it in place.

use std::collections::BTreeSet;

use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::fixtures;
use ferry_e2e::skopeo::{inspect_raw, sha256_digest};
use ferry_e2e::{Proxy, Registry, run_ferry};
use serde_json::{Value, json};

const REPO: &str = "app/multi";

fn ferry_json(args: &[&str]) -> (std::process::Output, Value) {
    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(args.iter().copied(), no_env).expect("ferry runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, value)
}

fn manifest_json(registry: &Registry, reference: &str) -> (Vec<u8>, Value) {
    let (_, bytes) = registry
        .manifest(REPO, reference)
        .expect("GET manifest")
        .unwrap_or_else(|| panic!("{reference} is missing"));
    let value = serde_json::from_slice(&bytes).expect("manifest JSON");
    (bytes, value)
}

/// The config and layer digests of an image manifest at `registry`.
fn blobs_of(registry: &Registry, digest: &str) -> BTreeSet<String> {
    let (_, m) = manifest_json(registry, digest);
    let mut blobs = BTreeSet::from([m["config"]["digest"].as_str().expect("config").to_string()]);
    for layer in m["layers"].as_array().expect("layers") {
        blobs.insert(layer["digest"].as_str().expect("layer digest").to_string());
    }
    blobs
}

#[test]
fn a_sync_of_one_platform_writes_an_index_of_it_alone_and_a_second_sync_does_nothing() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let sp = Proxy::start(&src).expect("source proxy");
    let dp = Proxy::start(&dst).expect("destination proxy");
    let fixture = fixtures::oci_index(&src, REPO, "v1", 301).expect("fixture");

    // The source index: which entry is kept, which is dropped, and their blobs.
    let (_, index) = manifest_json(&src, &fixture.digest);
    let entries = index["manifests"].as_array().expect("manifests").clone();
    let by_arch = |arch: &str| {
        entries
            .iter()
            .find(|e| e["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} entry in {index}"))
            .clone()
    };
    let (kept, dropped) = (by_arch("amd64"), by_arch("arm64"));
    let kept_digest = kept["digest"].as_str().expect("digest").to_string();
    let dropped_digest = dropped["digest"].as_str().expect("digest").to_string();
    let kept_blobs = blobs_of(&src, &kept_digest);
    let dropped_only: BTreeSet<String> = blobs_of(&src, &dropped_digest)
        .difference(&kept_blobs)
        .cloned()
        .collect();
    assert_eq!(
        dropped_only.len(),
        2,
        "the arm64 config and layer are its own"
    );

    let config = ConfigFile::write(&json!({
        "source": {"registry": sp.host(), "repositories": [REPO]},
        "rules": [{"destinations": [{"registry": dp.host()}], "platforms": ["linux/amd64"]}]
    }))
    .expect("config");

    // The plan already names the digest the copy will write.
    let (out, plan) = ferry_json(&["plan", "-c", config.arg(), "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(plan["summary"]["copy"], 1, "{plan}");
    let planned = plan["items"][0]["filtered_digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no filtered_digest in {plan}"))
        .to_string();
    assert_ne!(planned, fixture.digest);
    sp.reset_counts();
    dp.reset_counts();

    let (out, report) = ferry_json(&["sync", "-c", config.arg(), "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(report["totals"]["copied"], 1, "{report}");
    let copy = &report["items"][0]["report"];
    assert_eq!(copy["digest"], fixture.digest.as_str(), "{copy}");
    assert_eq!(copy["filtered_digest"], planned.as_str(), "{copy}");
    assert_eq!(copy["platforms"], json!(["linux/amd64"]), "{copy}");

    // The destination tag: the source index with only the amd64 entry, by its own digest,
    // as skopeo reads it too.
    let (bytes, written) = manifest_json(&dst, "v1");
    assert_eq!(sha256_digest(&bytes), planned);
    let mut expected = index.clone();
    expected["manifests"] = json!([kept]);
    assert_eq!(written, expected);
    let raw = inspect_raw(&dst.reference(REPO, "v1"), None).expect("skopeo inspect --raw");
    assert_eq!(raw, bytes, "skopeo reads the bytes Ferry wrote");
    assert!(
        dst.manifest(REPO, &kept_digest).expect("GET").is_some(),
        "the kept child is there"
    );
    for blob in &kept_blobs {
        assert!(dst.has_blob(REPO, blob).expect("HEAD"), "{blob} copied");
    }
    assert!(
        dst.manifest(REPO, &dropped_digest).expect("GET").is_none(),
        "the dropped child was not written"
    );
    assert!(
        dst.manifest(REPO, &fixture.digest).expect("GET").is_none(),
        "the source index was not written"
    );
    for blob in &dropped_only {
        assert!(
            !dst.has_blob(REPO, blob).expect("HEAD"),
            "{blob} not copied"
        );
    }
    // Nothing of the dropped platform was asked of the source, nor sent to the destination.
    let dropped_names: Vec<&String> = dropped_only.iter().chain([&dropped_digest]).collect();
    let src_requests = sp.requests();
    let dst_requests = dp.requests();
    assert!(!src_requests.is_empty() && !dst_requests.is_empty());
    for r in src_requests.iter().chain(&dst_requests) {
        for name in &dropped_names {
            assert!(
                !r.path.contains(name.as_str()),
                "{} {} names the dropped platform",
                r.method,
                r.path
            );
        }
    }
    // Only the kept blobs crossed: the amd64 config and its two layers.
    assert_eq!(copy["blobs"]["copied"], kept_blobs.len(), "{copy}");

    // A second sync finds it in place and writes nothing.
    sp.reset_counts();
    dp.reset_counts();
    let (out, again) = ferry_json(&["sync", "-c", config.arg(), "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(again["totals"]["copied"], 0, "{again}");
    assert_eq!(again["totals"]["skipped"], 1, "{again}");
    let writes: Vec<String> = dp
        .requests()
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "a second sync wrote {writes:?}");

    let (out, verify) = ferry_json(&["verify", "-c", config.arg(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        verify["drift"].as_array().map(Vec::len),
        Some(0),
        "{verify}"
    );

    // `ferry status` counts the filtered index as the complete copy.
    let image = format!("{}/{REPO}:v1", sp.host());
    let (out, status) = ferry_json(&["status", "-c", config.arg(), &image, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let destinations = status["destinations"].as_array().expect("destinations");
    assert_eq!(destinations.len(), 1, "{status}");
    assert_eq!(destinations[0]["state"], "COMPLETE", "{status}");
    assert_eq!(destinations[0]["digest"], planned.as_str(), "{status}");
}

#[test]
fn a_sync_of_a_platform_the_index_lacks_fails_and_writes_nothing() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let fixture = fixtures::oci_index(&src, REPO, "v1", 302).expect("fixture");
    let config = ConfigFile::write(&json!({
        "source": {"registry": src.host(), "repositories": [REPO]},
        "rules": [{"destinations": [{"registry": dst.host()}], "platforms": ["linux/s390x"]}]
    }))
    .expect("config");
    let (out, report) = ferry_json(&["sync", "-c", config.arg(), "--output", "json"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(report["totals"]["failed"], 1, "{report}");
    let error = report["items"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("no-matching-platform:") && error.contains("linux/amd64"),
        "{error}"
    );
    assert!(dst.manifest(REPO, "v1").expect("GET").is_none());
    assert!(dst.manifest(REPO, &fixture.digest).expect("GET").is_none());
}
