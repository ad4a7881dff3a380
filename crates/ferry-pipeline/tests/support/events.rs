//! ECR Image Action event details as ECR emits them for the sandbox's pushes.

use serde_json::{Value, json};

/// An ECR Image Action detail for a push (or delete) in the source registry.
pub(crate) fn detail(
    action: &str,
    repo: &str,
    tag: Option<&str>,
    digest: &str,
    media_type: &str,
) -> Value {
    let mut d = json!({
        "result": "SUCCESS",
        "repository-name": repo,
        "image-digest": digest,
        "action-type": action,
        "manifest-media-type": media_type,
    });
    if let Some(t) = tag {
        d["image-tag"] = json!(t);
    }
    d
}

/// What ECR emits for a push of a fixture: one digest-only event per child manifest
/// (multi-arch), then the tagged one.
pub(crate) fn push_details(f: &ferry_e2e::Fixture) -> Vec<Value> {
    let mut out: Vec<Value> = f
        .manifests
        .iter()
        .skip(1)
        .map(|d| {
            detail(
                "PUSH",
                &f.repo,
                None,
                d,
                "application/vnd.oci.image.manifest.v1+json",
            )
        })
        .collect();
    out.push(detail(
        "PUSH",
        &f.repo,
        Some(&f.tag),
        &f.digest,
        &f.media_type,
    ));
    out
}
