//! skopeo, the independent client used to push fixtures and to verify copies.
//!
//! Verified with skopeo 1.9.3 (Debian 12): `--preserve-digests` is supported and pushes
//! OCI manifests, OCI indexes, Docker schema-2 manifests and manifest lists, artifacts with
//! custom config media types, `subject` fields and zero layers byte for byte, also by
//! digest (`docker://host/repo@sha256:…`). It cannot push an OCI index whose descriptors
//! carry `artifactType` (its image-spec predates 1.1 and re-serialises the index), so the
//! referrers fallback index is pushed with [`crate::fixtures::RawPusher`] instead.

use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::process;
use crate::registry::Credentials;

fn skopeo() -> Result<Command> {
    let mut command = Command::new(process::require_tool("skopeo")?);
    // The harness never relies on the machine's /etc/containers/policy.json.
    command.arg("--insecure-policy");
    Ok(command)
}

fn run(mut command: Command) -> Result<Vec<u8>> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

fn creds_arg(flag: &str, credentials: Option<&Credentials>) -> Vec<String> {
    credentials
        .map(|c| vec![flag.to_string(), format!("{}:{}", c.username, c.password)])
        .unwrap_or_default()
}

/// `skopeo inspect --raw docker://REFERENCE`: the manifest bytes exactly as served.
pub fn inspect_raw(reference: &str, credentials: Option<&Credentials>) -> Result<Vec<u8>> {
    let mut command = skopeo()?;
    command
        .args(["inspect", "--raw", "--tls-verify=false"])
        .args(creds_arg("--creds", credentials))
        .arg(format!("docker://{reference}"));
    run(command)
}

/// `sha256:` digest of `skopeo inspect --raw` output.
pub fn inspect_raw_digest(reference: &str, credentials: Option<&Credentials>) -> Result<String> {
    Ok(sha256_digest(&inspect_raw(reference, credentials)?))
}

/// `skopeo copy --all docker://REFERENCE oci:DIR`: succeeds only if every manifest and
/// blob is present and matches its digest. Returns the OCI layout directory.
pub fn copy_to_oci_dir(reference: &str, credentials: Option<&Credentials>) -> Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("ferry-skopeo-oci-")
        .tempdir()
        .context("creating the OCI output dir")?;
    let mut command = skopeo()?;
    command
        .args(["copy", "--all", "--quiet", "--src-tls-verify=false"])
        .args(creds_arg("--src-creds", credentials))
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}", dir.path().join("image").display()));
    run(command)?;
    Ok(dir)
}

/// Pushes `source` (`oci:DIR:NAME`, see [`crate::fixtures::OciLayout::source`]) to
/// `docker://DESTINATION` with `--preserve-digests` (`--all` too when `all`), so the
/// registry stores the bytes as built.
pub fn push_layout(
    source: &str,
    destination: &str,
    credentials: Option<&Credentials>,
    all: bool,
) -> Result<()> {
    let mut command = skopeo()?;
    command.args([
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
    ]);
    if all {
        command.arg("--all");
    }
    command
        .args(creds_arg("--dest-creds", credentials))
        .arg(source)
        .arg(format!("docker://{destination}"));
    run(command).map(drop)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
