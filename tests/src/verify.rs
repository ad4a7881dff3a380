//! Checks that a copy arrived whole, using the registry API and skopeo (not ferry).

use anyhow::{Context, Result, bail, ensure};

use crate::fixtures::Fixture;
use crate::registry::Registry;
use crate::skopeo;

/// Verifies that `fixture` (pushed to `src`) is at `dst` under `dst_repo:<fixture tag>`:
/// - `skopeo inspect --raw` digests are equal at source and destination, and equal the
///   digest the fixture was built with;
/// - `skopeo copy --all docker://DST oci:DIR` succeeds (every blob present and verified);
/// - every child manifest, referrer manifest and referrer blob is present;
/// - every extra tag exists: a cosign `.sig` tag with the source's digest, a referrers
///   fallback tag as an index listing every referrer.
pub fn verify_copy(
    src: &Registry,
    fixture: &Fixture,
    dst: &Registry,
    dst_repo: &str,
) -> Result<()> {
    let dst_ref = dst.reference(dst_repo, &fixture.tag);
    let src_digest = skopeo::inspect_raw_digest(&fixture.reference, src.credentials())
        .context("skopeo inspect at the source")?;
    let dst_digest = skopeo::inspect_raw_digest(&dst_ref, dst.credentials())
        .context("skopeo inspect at the destination")?;
    ensure!(
        src_digest == dst_digest,
        "{dst_ref}: destination digest {dst_digest} != source {src_digest}"
    );
    ensure!(
        dst_digest == fixture.digest,
        "{dst_ref}: digest {dst_digest} != fixture as built {}",
        fixture.digest
    );
    skopeo::copy_to_oci_dir(&dst_ref, dst.credentials())
        .with_context(|| format!("skopeo copy docker://{dst_ref} oci:DIR"))?;

    for manifest in fixture.manifests.iter().chain(&fixture.referrers) {
        let found = dst.manifest_digest(dst_repo, manifest)?;
        ensure!(
            found.as_deref() == Some(manifest.as_str()),
            "{dst_repo}@{manifest} missing at the destination"
        );
    }
    for blob in &fixture.referrer_blobs {
        ensure!(
            dst.has_blob(dst_repo, &blob.digest)?,
            "referrer blob {} missing in {dst_repo}",
            blob.digest
        );
    }
    for tag in &fixture.extra_tags {
        verify_extra_tag(src, fixture, dst, dst_repo, tag)?;
    }
    Ok(())
}

fn verify_extra_tag(
    src: &Registry,
    fixture: &Fixture,
    dst: &Registry,
    dst_repo: &str,
    tag: &str,
) -> Result<()> {
    let Some((_, bytes)) = dst.manifest(dst_repo, tag)? else {
        bail!("tag {dst_repo}:{tag} missing at the destination");
    };
    let dst_digest = skopeo::sha256_digest(&bytes);
    let src_digest = src.manifest_digest(&fixture.repo, tag)?;
    if src_digest.as_deref() == Some(dst_digest.as_str()) {
        return Ok(());
    }
    if tag.ends_with(".sig") || tag.ends_with(".att") || tag.ends_with(".sbom") {
        bail!("{dst_repo}:{tag} is {dst_digest}, source has {src_digest:?}");
    }
    // A referrers fallback tag may be rewritten by the copier; it must still list
    // every referrer.
    let index: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{dst_repo}:{tag} is not JSON"))?;
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .map(|m| m.iter().filter_map(|d| d["digest"].as_str()).collect())
        .unwrap_or_default();
    for referrer in &fixture.referrers {
        ensure!(
            listed.contains(&referrer.as_str()),
            "{dst_repo}:{tag} does not list referrer {referrer}: {listed:?}"
        );
    }
    Ok(())
}

/// Fails if `dst` has a manifest for the fixture's tag or digest (a failed copy must
/// leave nothing behind that a pull could find).
pub fn verify_absent(fixture: &Fixture, dst: &Registry, dst_repo: &str) -> Result<()> {
    for reference in [fixture.tag.as_str(), fixture.digest.as_str()] {
        if let Some(found) = dst.manifest_digest(dst_repo, reference)? {
            bail!("{dst_repo}:{reference} exists at the destination ({found})");
        }
    }
    Ok(())
}
