//! ECR's scan state in moto, for the promotion gate tests: an image registered in moto's
//! ECR under its real digest (moto's `PutImage` with `imageDigest`), and a scan started and
//! answered with canned findings (moto's `/moto-api/static/ecr/scan-finding-results`).

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::moto::{DEFAULT_ACCOUNT, DEFAULT_REGION, Moto};
use crate::registry::Registry;
use crate::{block, http};

/// Registers `repo@reference` (as pushed to `registry`) in moto's ECR (moto's default
/// account and region), creating the repository if needed, under its real digest and
/// `tag`. Tag images whose scans are canned: moto matches an untagged image to any
/// canned result without a tag, whatever its digest.
pub fn register_image(
    moto: &Moto,
    registry: &Registry,
    repo: &str,
    reference: &str,
    tag: Option<&str>,
) -> Result<String> {
    let (media_type, manifest) = registry
        .manifest(repo, reference)?
        .with_context(|| format!("{repo}@{reference} is not in the registry"))?;
    let digest = ferry::Digest::of(&manifest).to_string();
    let client = aws_sdk_ecr::Client::new(&moto.sdk_config(DEFAULT_REGION));
    block(async {
        let _ = client
            .create_repository()
            .repository_name(repo)
            .send()
            .await;
        client
            .put_image()
            .repository_name(repo)
            .image_manifest(String::from_utf8(manifest)?)
            .image_manifest_media_type(media_type)
            .set_image_tag(tag.map(str::to_string))
            .image_digest(&digest)
            .send()
            .await?;
        anyhow::Ok(())
    })?;
    Ok(digest)
}

/// Starts the scan of `repo@digest` in moto and makes it answer COMPLETE with `findings`
/// (name, severity).
pub fn complete_scan(
    moto: &Moto,
    repo: &str,
    digest: &str,
    findings: &[(&str, &str)],
) -> Result<()> {
    let client = aws_sdk_ecr::Client::new(&moto.sdk_config(DEFAULT_REGION));
    block(
        client
            .start_image_scan()
            .repository_name(repo)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send(),
    )?;
    let mut counts = serde_json::Map::new();
    for (_, severity) in findings {
        let n = counts.get(*severity).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(severity.to_string(), json!(n + 1));
    }
    let canned = json!({
        "results": [{
            "registryId": DEFAULT_ACCOUNT,
            "repositoryName": repo,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
            "imageScanFindings": {
                "findings": findings.iter().map(|(name, severity)| json!({"name": name, "severity": severity})).collect::<Vec<_>>(),
                "findingSeverityCounts": counts,
            },
        }],
        "region": DEFAULT_REGION,
    });
    let response = http::send(
        reqwest::Method::POST,
        &format!(
            "{}/moto-api/static/ecr/scan-finding-results",
            moto.endpoint()
        ),
        None,
        &[("Content-Type", "application/json")],
        Some(canned.to_string().into_bytes()),
    )?;
    ensure!(
        response.status == 201,
        "moto refused the canned findings: {}",
        response.status
    );
    Ok(())
}
