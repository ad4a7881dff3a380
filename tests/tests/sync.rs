//! `ferry sync`, `plan` and `verify` over a replication config, against real registries:
//! 50 tags over 10 repositories sharing base layers, fanned out to two destinations.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::RawPusher;
use ferry_e2e::fixtures::Target;
use ferry_e2e::{Registry, run_ferry};
use serde_json::{Value, json};

const REPOS: usize = 10;
const TAGS: usize = 5;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What was pushed: every unique blob with its size, and each tag's digest.
struct Pushed {
    blobs: BTreeSet<(String, u64)>,
    tags: Vec<(String, String, String)>,
}

fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    // A cheap deterministic generator: distinct content per seed.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// 10 repositories × 5 tags; every image has the shared base layer, one of two "runtime"
/// layers, and a layer and config of its own.
fn push_many(src: &Registry) -> Pushed {
    let pusher = RawPusher::new(&Target::from(src));
    let base = bytes_of(1, 256 * 1024);
    let runtimes = [bytes_of(2, 128 * 1024), bytes_of(3, 128 * 1024)];
    let mut blobs = BTreeSet::new();
    let mut tags = Vec::new();
    for r in 0..REPOS {
        let repo = format!("team{r}/svc");
        for t in 0..TAGS {
            let own = bytes_of(100 + (r * TAGS + t) as u64, 16 * 1024);
            let config =
                serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","repo":r,"tag":t}))
                    .expect("config json");
            let runtime = &runtimes[r % 2];
            let mut layers = Vec::new();
            for layer in [&base, runtime, &own] {
                let d = pusher.push_blob(&repo, layer).expect("push layer");
                blobs.insert((d.clone(), layer.len() as u64));
                layers.push(json!({"mediaType": LAYER, "digest": d, "size": layer.len()}));
            }
            let cd = pusher.push_blob(&repo, &config).expect("push config");
            blobs.insert((cd.clone(), config.len() as u64));
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
                "layers": layers,
            }))
            .expect("manifest json");
            let tag = format!("1.{t}.0");
            let digest = pusher
                .push_manifest(&repo, &tag, OCI_MANIFEST, &manifest)
                .expect("push manifest");
            tags.push((repo.clone(), tag, digest));
        }
    }
    Pushed { blobs, tags }
}

fn write_config(dir: &Path, src: &Registry, d1: &Registry, d2: &Registry) -> String {
    let config = json!({
        "source": {"registry": src.host()},
        "rules": [{
            "repositoryFilters": [{"filter": "team", "filterType": "PREFIX_MATCH"}],
            "destinations": [
                {"registry": d1.host()},
                {"registry": d2.host(), "repositoryName": "mirror/{repository}"}
            ]
        }]
    });
    let path = dir.join("ferry.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write config");
    path.display().to_string()
}

fn ferry_json(args: &[&str]) -> (std::process::Output, Value) {
    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(args.iter().copied(), no_env).expect("ferry runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, value)
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[test]
fn sync_moves_each_unique_blob_once_per_destination_and_a_second_sync_moves_nothing() {
    let src = Registry::start().expect("source");
    let d1 = Registry::start().expect("destination 1");
    let d2 = Registry::start().expect("destination 2");
    let pushed = push_many(&src);
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &src, &d1, &d2);
    let unique_bytes: u64 = pushed.blobs.iter().map(|(_, s)| s).sum();

    let (out, plan) = ferry_json(&["plan", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&plan, &["summary", "copy"]), (2 * REPOS * TAGS) as u64);
    assert_eq!(u(&plan, &["summary", "bytes_to_move"]), 2 * unique_bytes);

    let (out, report) = ferry_json(&[
        "sync",
        "-c",
        &config,
        "--output",
        "json",
        "--concurrency",
        "8",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let totals = &report["totals"];
    assert_eq!(u(totals, &["copied"]), (2 * REPOS * TAGS) as u64);
    assert_eq!(u(totals, &["failed"]), 0);
    // Each unique blob streamed exactly once per destination registry; every other
    // repository that needed it mounted it inside the destination.
    assert_eq!(
        u(totals, &["blobs_copied"]),
        2 * pushed.blobs.len() as u64,
        "{totals}"
    );
    assert_eq!(u(totals, &["bytes"]), 2 * unique_bytes);
    // Per image 4 blobs; base and runtime layers are mounted (or found) in the other repos.
    let placed = u(totals, &["blobs_copied"])
        + u(totals, &["blobs_mounted"])
        + u(totals, &["blobs_skipped"]);
    assert_eq!(placed, (2 * REPOS * TAGS * 4) as u64);

    for (repo, tag, digest) in &pushed.tags {
        assert_eq!(
            d1.manifest_digest(repo, tag).expect("head").as_deref(),
            Some(digest.as_str())
        );
        let mirrored = format!("mirror/{repo}");
        assert_eq!(
            d2.manifest_digest(&mirrored, tag).expect("head").as_deref(),
            Some(digest.as_str())
        );
    }

    let (out, again) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&again, &["totals", "copied"]), 0);
    assert_eq!(u(&again, &["totals", "skipped"]), (2 * REPOS * TAGS) as u64);
    assert_eq!(u(&again, &["totals", "bytes"]), 0);
    // Warm: source catalog + tags/list per repo + one HEAD per tag; per destination exactly
    // one HEAD per tag. Nothing else.
    let requests = u(&again, &["requests", "total"]);
    let expected = 1 + REPOS + REPOS * TAGS + 2 * (REPOS * TAGS);
    assert_eq!(requests, expected as u64, "{}", again["requests"]);
}

#[test]
fn verify_reports_a_deleted_and_a_moved_tag_and_exits_3() {
    let src = Registry::start().expect("source");
    let d1 = Registry::start().expect("destination 1");
    let d2 = Registry::start().expect("destination 2");
    let pushed = push_many(&src);
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &src, &d1, &d2);
    let (out, _) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let (out, clean) = ferry_json(&["verify", "-c", &config, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(clean["drift"].as_array().map(Vec::len), Some(0));

    // Drift 1: a tag deleted at destination 1.
    let (repo, tag, digest) = &pushed.tags[0];
    let status = ferry_e2e::http::send(
        reqwest::Method::DELETE,
        &format!("{}/v2/{repo}/manifests/{digest}", d1.url()),
        None,
        &[],
        None,
    )
    .expect("delete")
    .status;
    assert_eq!(status, 202);
    // Drift 2: a tag moved at destination 2 (points at another image).
    let (other_repo, other_tag, other_digest) = &pushed.tags[1];
    let (media, bytes) = src
        .manifest(other_repo, other_tag)
        .expect("get")
        .expect("exists");
    let moved = format!("mirror/{}", pushed.tags[7].0);
    let moved_tag = pushed.tags[7].1.clone();
    let dst2 = RawPusher::new(&Target::from(&d2));
    let manifest: Value = serde_json::from_slice(&bytes).expect("manifest json");
    for blob in
        std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().expect("layers"))
    {
        let d = blob["digest"].as_str().expect("digest");
        let data = ferry_e2e::http::send(
            reqwest::Method::GET,
            &format!("{}/v2/{other_repo}/blobs/{d}", src.url()),
            None,
            &[],
            None,
        )
        .expect("get blob")
        .body;
        dst2.push_blob(&moved, &data).expect("push blob");
    }
    dst2.push_manifest(&moved, &moved_tag, &media, &bytes)
        .expect("move tag");

    let (out, drift) = ferry_json(&["verify", "-c", &config, "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let mut found: Vec<(String, String)> = drift["drift"]
        .as_array()
        .expect("drift list")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or("").to_string(),
                d["destination"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    found.sort();
    let mut expected = vec![
        ("missing".to_string(), format!("{}/{repo}:{tag}", d1.host())),
        (
            "different".to_string(),
            format!("{}/{moved}:{moved_tag}", d2.host()),
        ),
    ];
    expected.sort();
    assert_eq!(found, expected, "{drift}");
    assert_ne!(other_digest, &pushed.tags[7].2);

    // sync repairs both, and verify is clean again.
    let (out, _) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let (out, _) = ferry_json(&["verify", "-c", &config, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        d2.manifest_digest(&moved, &moved_tag)
            .expect("head")
            .as_deref(),
        Some(pushed.tags[7].2.as_str())
    );
}

#[test]
fn validate_names_the_json_path_and_exits_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{"rules":[{"destinations":[{"region":"eu-west-1","registryId":"111122223333"}],
            "tagFilters":[{"filter":"(","filterType":"REGEX"}]}]}"#,
    )
    .expect("write");
    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(["validate", path.to_str().expect("utf8")], no_env).expect("ferry runs");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rules[0].tagFilters[0]"), "{stderr}");
}

#[test]
fn deletes_propagate_only_where_the_rule_says_so() {
    let src = Registry::start().expect("source");
    let d1 = Registry::start().expect("destination 1");
    let d2 = Registry::start().expect("destination 2");
    let pushed = push_many(&src);
    let dir = tempfile::tempdir().expect("tmp");
    // Destination 1 propagates deletes; destination 2 does not.
    let config = json!({
        "source": {"registry": src.host()},
        "rules": [
            {"repositoryFilters": [{"filter": "team0/", "filterType": "PREFIX_MATCH"}],
             "deletes": true, "destinations": [{"registry": d1.host()}]},
            {"repositoryFilters": [{"filter": "team0/", "filterType": "PREFIX_MATCH"}],
             "destinations": [{"registry": d2.host()}]}
        ]
    });
    let path = dir.path().join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");
    let config = path.display().to_string();
    let (out, first) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&first, &["totals", "copied"]), (2 * TAGS) as u64);

    let (repo, tag, digest) = &pushed.tags[0];
    let status = ferry_e2e::http::send(
        reqwest::Method::DELETE,
        &format!("{}/v2/{repo}/manifests/{digest}", src.url()),
        None,
        &[],
        None,
    )
    .expect("delete at source")
    .status;
    assert_eq!(status, 202);

    let (out, plan) = ferry_json(&["plan", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&plan, &["summary", "delete"]), 1, "{}", plan["summary"]);
    assert_eq!(u(&plan, &["summary", "extra"]), 1, "{}", plan["summary"]);

    let (out, second) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&second, &["totals", "deleted"]), 1);
    assert_eq!(
        d1.manifest_digest(repo, tag).expect("head"),
        None,
        "deleted where deletes: true"
    );
    assert_eq!(
        d2.manifest_digest(repo, tag).expect("head").as_deref(),
        Some(digest.as_str()),
        "kept elsewhere"
    );
}

#[test]
fn source_repositories_named_in_config_replace_the_catalog() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let named = ferry_e2e::fixtures::single_image(&src, "apps/named", "v1", 951).expect("fixture");
    ferry_e2e::fixtures::single_image(&src, "apps/other", "v1", 952).expect("fixture");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("ferry.json");
    let config = json!({
        "source": {"registry": src.host(), "repositories": ["apps/named"]},
        "rules": [{"destinations": [{"registry": dst.host()}]}]
    });
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");
    let (out, report) = ferry_json(&[
        "sync",
        "-c",
        path.to_str().expect("utf8"),
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&report, &["totals", "copied"]), 1);
    assert_eq!(
        dst.manifest_digest("apps/named", "v1")
            .expect("head")
            .as_deref(),
        Some(named.digest.as_str())
    );
    assert_eq!(dst.manifest_digest("apps/other", "v1").expect("head"), None);
}

#[test]
fn two_rules_rendering_one_destination_repository_copy_each_image_from_its_own_source_and_delete_nothing()
 {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let a = ferry_e2e::fixtures::single_image(&src, "a", "v1", 961).expect("a:v1");
    let xa = ferry_e2e::fixtures::single_image(&src, "x/a", "v2", 962).expect("x/a:v2");
    let dir = tempfile::tempdir().expect("tmp");
    // `a` renders as `x/a` through the first rule; `x/a` keeps its name through the second:
    // both land in `x/a`, and both rules propagate deletes.
    let config = json!({
        "source": {"registry": src.host()},
        "rules": [
            {"repositoryFilters": [{"filter": "a", "filterType": "PREFIX_MATCH"}], "deletes": true,
             "destinations": [{"registry": dst.host(), "repositoryName": "x/{repository}"}]},
            {"repositoryFilters": [{"filter": "x/", "filterType": "PREFIX_MATCH"}], "deletes": true,
             "destinations": [{"registry": dst.host()}]}
        ]
    });
    let path = dir.path().join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");
    let config = path.display().to_string();
    for run in 0..2 {
        let (out, report) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
        assert!(out.status.success(), "run {run}: {}", describe(&out));
        assert_eq!(u(&report, &["totals", "failed"]), 0, "run {run}: {report}");
        assert_eq!(u(&report, &["totals", "deleted"]), 0, "run {run}: {report}");
        assert_eq!(
            dst.manifest_digest("x/a", "v1").expect("head").as_deref(),
            Some(a.digest.as_str()),
            "run {run}: v1 from `a`"
        );
        assert_eq!(
            dst.manifest_digest("x/a", "v2").expect("head").as_deref(),
            Some(xa.digest.as_str()),
            "run {run}: v2 from `x/a`, and never deleted as `a`'s leftover"
        );
    }
    let (out, plan) = ferry_json(&["plan", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&plan, &["summary", "delete"]), 0, "{}", plan["summary"]);
}
