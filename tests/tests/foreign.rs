//! Foreign (non-distributable) layers stay where they are: the manifest is copied byte for
//! byte, the layer blob is not.

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::{RawPusher, Target};
use ferry_e2e::{Registry, parse_report, run_ferry};
use serde_json::json;

#[test]
fn foreign_layers_are_left_behind_and_the_manifest_is_copied_as_is() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let pusher = RawPusher::new(&Target::from(&src));
    let config = br#"{"architecture":"amd64","os":"windows"}"#;
    let config_digest = pusher.push_blob("win/base", config).expect("config");
    let layer = vec![7u8; 4096];
    let layer_digest = pusher.push_blob("win/base", &layer).expect("layer");
    // A Windows base layer: it carries `urls` and a foreign media type; its digest is not
    // present anywhere (as on a real registry, which never receives it).
    let foreign = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": foreign,
             "size": 1234, "urls": ["https://mcr.microsoft.com/v2/windows/blobs/sha256:0001"]},
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": layer.len()}
        ]
    }))
    .expect("json");
    let digest = pusher
        .push_manifest(
            "win/base",
            "ltsc",
            "application/vnd.docker.distribution.manifest.v2+json",
            &manifest,
        )
        .expect("manifest with a foreign layer");

    let no_env: &[(&str, &str)] = &[];
    let out = run_ferry(
        [
            "copy",
            &src.reference("win/base", "ltsc"),
            &dst.reference("win/base", "ltsc"),
            "--output",
            "json",
        ],
        no_env,
    )
    .expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    let report = parse_report(&out).expect("report");
    assert_eq!(report.digest, digest);
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(raw["blobs"]["foreign"], 1);
    assert_eq!(raw["blobs"]["copied"], 2);
    let (_, bytes) = dst
        .manifest("win/base", "ltsc")
        .expect("get")
        .expect("present");
    assert_eq!(bytes, manifest, "the manifest is copied byte for byte");
    assert!(
        !dst.has_blob("win/base", foreign).expect("head"),
        "the foreign layer is not pushed"
    );
}
