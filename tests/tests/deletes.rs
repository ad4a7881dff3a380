//! Deletes remove exactly what the source removed. An OCI distribution registry deletes
//! manifests, not tags (a DELETE by digest removes every tag of that manifest), so a tag the
//! source removed is deleted at such a destination only when no other tag still points at
//! its manifest; otherwise it is reported `untag-unsupported` and left in place.

use std::path::Path;

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::{RawPusher, Target, single_image};
use ferry_e2e::{Registry, run_ferry};
use serde_json::{Value, json};

const REPO: &str = "apps/web";

fn ferry_json(args: &[&str]) -> (std::process::Output, Value) {
    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(args.iter().copied(), no_env).expect("ferry runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, value)
}

/// Removes `tag` at a `docker-registry` source the way a registry that untags would: its
/// tag link in the filesystem storage goes, the manifest and other tags stay.
fn untag_at_source(src: &Registry, tag: &str) {
    let link = src
        .storage_root()
        .join("docker/registry/v2/repositories")
        .join(REPO)
        .join("_manifests/tags")
        .join(tag);
    std::fs::remove_dir_all(&link).expect("the tag's link in the registry's storage");
}

fn write_config(dir: &Path, src: &Registry, dst: &Registry) -> String {
    let config = json!({
        "source": {"registry": src.host()},
        "rules": [{"deletes": true, "destinations": [{"registry": dst.host()}]}]
    });
    let path = dir.join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write config");
    path.display().to_string()
}

fn total(report: &Value, name: &str) -> u64 {
    report["totals"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("totals.{name} missing in {report}"))
}

#[test]
fn a_tag_removed_at_the_source_never_takes_the_destinations_other_tags_with_it() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let image = single_image(&src, REPO, "v1", 961).expect("fixture");
    let (media_type, bytes) = src.manifest(REPO, "v1").expect("get").expect("manifest");
    let pusher = RawPusher::new(&Target::from(&src));
    for tag in ["latest", "stable"] {
        pusher
            .push_manifest(REPO, tag, &media_type, &bytes)
            .expect("same image, another tag");
    }
    single_image(&src, REPO, "v2", 962).expect("another image");
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &src, &dst);
    let (out, first) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(total(&first, "copied"), 4, "{}", first["totals"]);

    // The source drops v1 but still holds the same image as `latest` and `stable`.
    untag_at_source(&src, "v1");
    let (out, second) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        (
            total(&second, "deleted"),
            total(&second, "untag_unsupported")
        ),
        (0, 1),
        "{}",
        second["totals"]
    );
    let item = second["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["outcome"] == "untag-unsupported")
        .expect("the refused delete is reported");
    let error = item["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("untag-unsupported:") && error.contains("latest, stable"),
        "{error}"
    );
    for tag in ["v1", "latest", "stable"] {
        assert_eq!(
            dst.manifest_digest(REPO, tag).expect("head").as_deref(),
            Some(image.digest.as_str()),
            "{tag} stays at the destination"
        );
    }

    // When the source drops every tag of that image, the manifest goes at the destination,
    // and the other image stays.
    untag_at_source(&src, "latest");
    untag_at_source(&src, "stable");
    let (out, third) = ferry_json(&["sync", "-c", &config, "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        (total(&third, "deleted"), total(&third, "untag_unsupported")),
        (3, 0),
        "{}",
        third["totals"]
    );
    assert_eq!(dst.tags(REPO).expect("tags"), ["v2"]);
}
