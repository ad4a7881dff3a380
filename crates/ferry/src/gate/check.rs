//! Evaluating a target's gates against the source image: the reads (the source manifest,
//! ECR's scan of each platform image, the push time) and the verdict.
//!
//! A check serves one unit of work (a plan, one event, one job batch): verdicts are
//! remembered per image and gate choice, so 600 destinations selected by one gated rule
//! cost one evaluation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{GateChoice, Gates, Registry, ScanGate, SignatureGate};
use crate::digest::Digest;
use crate::ecr::EcrControl;
use crate::ecr::scan::ScanReport;
use crate::error::Error;
use crate::manifest::{self, Parsed};
use crate::reference::EcrRegistry;
use crate::registry::{RegistryClient, Repo};

use super::scan::{PlatformScan, judge};
use super::signature::{Outcome, Verifiers};
use super::{GateName, GateReason, Verdict};

/// The source image a verdict is about.
#[derive(Clone, Copy, Debug)]
pub struct GateImage<'a> {
    /// The source registry.
    pub registry: &'a Registry,
    /// The source repository.
    pub repository: &'a str,
    /// The image's manifest digest.
    pub digest: &'a Digest,
}

type Key = (String, String, Digest, GateChoice, Vec<String>);

/// Evaluates gates; see the module documentation.
pub struct GateCheck {
    client: RegistryClient,
    ecr: Option<EcrControl>,
    /// Judge as of this time; `None`: the clock's time at each verdict.
    now: Option<SystemTime>,
    /// How long a verdict is remembered; `None`: for the check's life.
    memory: Option<Duration>,
    verdicts: Mutex<HashMap<Key, (Instant, Verdict)>>,
}

impl std::fmt::Debug for GateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateCheck")
            .field("now", &self.now)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl GateCheck {
    /// A check reading the source through `client` and, for scan gates, `ecr`.
    pub fn new(client: RegistryClient, ecr: Option<EcrControl>) -> GateCheck {
        GateCheck {
            client,
            ecr,
            now: None,
            memory: None,
            verdicts: Mutex::default(),
        }
    }

    /// The same check judging as of `now` (scan timeouts, signature expiry).
    pub fn at(mut self, now: SystemTime) -> GateCheck {
        self.now = Some(now);
        self
    }

    /// The same check remembering each verdict for `memory` only, and a hold not at all:
    /// a long-lived check (one per process) judges a held image afresh each time, and
    /// sees any other verdict change within `memory`.
    pub fn remembering(mut self, memory: Duration) -> GateCheck {
        self.memory = Some(memory);
        self
    }

    fn now(&self) -> SystemTime {
        self.now.unwrap_or_else(SystemTime::now)
    }

    /// The verdict for a target with `choice` (`None`: ungated, passes without a read)
    /// and `platforms` (the platforms of an index it copies; empty: all).
    pub async fn verdict(
        &self,
        choice: Option<&GateChoice>,
        image: GateImage<'_>,
        platforms: &[String],
    ) -> Result<Verdict, Error> {
        let Some(choice) = choice else {
            return Ok(Verdict::Pass);
        };
        let key: Key = (
            image.registry.host(),
            image.repository.to_string(),
            image.digest.clone(),
            choice.clone(),
            platforms.to_vec(),
        );
        if let Some(known) = self.remembered(&key) {
            return Ok(known);
        }
        let mut verdict: Option<Verdict> = None;
        for gates in &choice.alternatives {
            let this = self.gates(gates, image, platforms).await?;
            let passes = this.passes();
            verdict = Some(match verdict {
                None => this,
                Some(before) => before.or(this),
            });
            if passes {
                break;
            }
        }
        let verdict = verdict.unwrap_or(Verdict::Pass);
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(memory) = self.memory {
            verdicts.retain(|_, (at, _)| at.elapsed() < memory);
            // A hold waits for a change (the scan completing): a long-lived check never
            // answers from memory that an image is still held, or the completion event
            // that follows within the memory would release nothing.
            if matches!(verdict, Verdict::Held(_)) {
                return Ok(verdict);
            }
        }
        verdicts.insert(key, (Instant::now(), verdict.clone()));
        Ok(verdict)
    }

    fn remembered(&self, key: &Key) -> Option<Verdict> {
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .filter(|(at, _)| self.memory.is_none_or(|m| at.elapsed() < m))
            .map(|(_, v)| v.clone())
    }

    /// One rule's gates (AND).
    async fn gates(
        &self,
        gates: &Gates,
        image: GateImage<'_>,
        platforms: &[String],
    ) -> Result<Verdict, Error> {
        let mut verdict = Verdict::Pass;
        if let Some(scan) = &gates.scan {
            verdict = verdict.and(self.scan(scan, image, platforms).await?);
            if matches!(verdict, Verdict::Blocked(_)) {
                return Ok(verdict);
            }
        }
        if let Some(signature) = &gates.signature {
            verdict = verdict.and(self.signature(signature, image).await?);
        }
        Ok(verdict)
    }

    /// The scan gate: ECR's scan of the image, or of each platform image of an index.
    async fn scan(
        &self,
        gate: &ScanGate,
        image: GateImage<'_>,
        platforms: &[String],
    ) -> Result<Verdict, Error> {
        let (
            Registry::Ecr {
                registry_id,
                region,
            },
            Some(ecr),
        ) = (image.registry, &self.ecr)
        else {
            // Validation refuses a scan gate on a source that is not ECR; a source bound
            // at run time to another registry still never passes unscanned.
            return Ok(Verdict::Blocked(GateReason::new(
                GateName::Scan,
                "scan-failed",
                format!(
                    "{} is not an ECR registry: no scan to read",
                    image.registry.host()
                ),
            )));
        };
        let registry = EcrRegistry::new(registry_id, region);
        let repo = Repo::new(image.registry.host(), image.repository);
        let manifest = self
            .client
            .get_manifest(&repo, image.digest.as_str())
            .await?;
        let images: Vec<(Option<String>, Digest)> =
            match manifest::parse(&manifest.bytes).map_err(|reason| Error::InvalidManifest {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                reference: image.digest.to_string(),
                reason,
            })? {
                Parsed::Index { manifests, .. } => manifests
                    .iter()
                    .filter_map(|child| {
                        let platform = platform_of(child)?;
                        selected(&platform, platforms)
                            .then(|| (Some(platform), child.digest.clone()))
                    })
                    .collect(),
                Parsed::Image { .. } => vec![(None, image.digest.clone())],
            };
        let names = !gate.ignore.is_empty();
        let mut scans = Vec::with_capacity(images.len());
        for (platform, digest) in images {
            let report: ScanReport = ecr
                .image_scan(&registry, None, image.repository, &digest, names)
                .await?;
            scans.push(PlatformScan { platform, report });
        }
        let mut verdict = judge(gate, &scans, None);
        if matches!(verdict, Verdict::Held(_)) {
            let pushed = ecr
                .image_pushed_at(&registry, None, image.repository, image.digest)
                .await?;
            let waited = pushed.and_then(|at| self.now().duration_since(at).ok());
            verdict = judge(gate, &scans, waited);
        }
        Ok(verdict)
    }
}

impl GateCheck {
    /// The signature gate: a signature of exactly this digest that a listed verifier
    /// accepts (cosign `.sig` tag or referrers, Notation referrers).
    async fn signature(
        &self,
        gate: &SignatureGate,
        image: GateImage<'_>,
    ) -> Result<Verdict, Error> {
        let verifiers = match Verifiers::new(gate) {
            Ok(v) => v,
            Err(reason) => {
                return Ok(Verdict::Blocked(GateReason::new(
                    GateName::Signature,
                    "config",
                    reason,
                )));
            }
        };
        let repo = Repo::new(image.registry.host(), image.repository);
        let outcome =
            super::signature::check(&verifiers, &self.client, &repo, image.digest, self.now())
                .await?;
        Ok(match outcome {
            Outcome::Trusted { .. } => Verdict::Pass,
            Outcome::Rejected { reasons } => {
                let code = if reasons.iter().all(|r| r == "no signature") || reasons.is_empty() {
                    "no-signature"
                } else {
                    "untrusted"
                };
                Verdict::Blocked(GateReason::new(
                    GateName::Signature,
                    code,
                    reasons.join("; "),
                ))
            }
        })
    }
}

/// An index child's `os/architecture[/variant]`; `None` for an entry that is no platform
/// image (attestation manifests, `unknown/unknown`, no platform at all).
pub(crate) fn platform_of(child: &manifest::Descriptor) -> Option<String> {
    let annotated_attestation = child
        .annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest");
    if annotated_attestation {
        return None;
    }
    let platform = child.platform.as_ref()?;
    let os = platform.get("os")?.as_str()?;
    let architecture = platform.get("architecture")?.as_str()?;
    if os == "unknown" || architecture == "unknown" {
        return None;
    }
    Some(match platform.get("variant").and_then(|v| v.as_str()) {
        Some(variant) => format!("{os}/{architecture}/{variant}"),
        None => format!("{os}/{architecture}"),
    })
}

/// Whether `platform` (`os/arch[/variant]`) is among `wanted` (empty: all): a wanted
/// `linux/arm64` takes every variant of it.
fn selected(platform: &str, wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| {
            w == platform
                || platform
                    .strip_prefix(w.as_str())
                    .is_some_and(|rest| rest.starts_with('/') && w.matches('/').count() == 1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_without_variant_takes_every_variant() {
        let wanted = vec!["linux/arm64".to_string()];
        assert!(selected("linux/arm64/v8", &wanted));
        assert!(selected("linux/arm64", &wanted));
        assert!(!selected("linux/amd64", &wanted));
        assert!(!selected("linux/arm", &["linux/arm/v7".to_string()]));
        assert!(selected("anything/at", &[]));
    }

    #[test]
    fn attestations_and_unknown_platforms_are_no_platform_images() {
        let child =
            |platform: serde_json::Value, annotations: Option<(&str, &str)>| manifest::Descriptor {
                media_type: manifest::OCI_MANIFEST.into(),
                digest: Digest::of(b"x"),
                size: 1,
                urls: Vec::new(),
                artifact_type: None,
                platform: Some(platform),
                annotations: annotations.map(|(k, v)| [(k.to_string(), v.to_string())].into()),
            };
        let amd64 = child(
            serde_json::json!({"os": "linux", "architecture": "amd64"}),
            None,
        );
        assert_eq!(platform_of(&amd64).as_deref(), Some("linux/amd64"));
        let unknown = child(
            serde_json::json!({"os": "unknown", "architecture": "unknown"}),
            None,
        );
        assert_eq!(platform_of(&unknown), None);
        let attestation = child(
            serde_json::json!({"os": "linux", "architecture": "amd64"}),
            Some(("vnd.docker.reference.type", "attestation-manifest")),
        );
        assert_eq!(platform_of(&attestation), None);
    }
}
