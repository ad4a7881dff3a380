//! Promotion gates (`rules[].gates`) and platform selection (`rules[].platforms`): the
//! document types and their validation. Evaluating a gate (reading scan findings, verifying
//! signatures) is the `gate` module's work; this one stays pure.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::Issue;
use super::model::{ReplicationConfig, Rule};
use super::registry::Registry;

/// Most `ignore` entries of one scan gate.
pub const MAX_IGNORED_FINDINGS: usize = 1_000;
/// Longest `waitMinutes` (one week).
pub const MAX_WAIT_MINUTES: u32 = 7 * 24 * 60;
/// Default `waitMinutes`: how long an image may wait for its scan.
pub const DEFAULT_WAIT_MINUTES: u32 = 120;
/// Most keys, roots or identities in one signature verifier.
pub const MAX_TRUST_ENTRIES: usize = 32;
/// Most entries in `platforms`.
pub const MAX_PLATFORMS: usize = 32;

/// The gates an image must pass before a rule copies it; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gates {
    /// ECR's scan of the image (basic or enhanced) must be complete, with no finding more
    /// severe than `maxSeverity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanGate>,
    /// The image must carry a signature one of the listed verifiers accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureGate>,
}

impl Gates {
    /// Whether no gate is set.
    pub fn is_empty(&self) -> bool {
        self.scan.is_none() && self.signature.is_none()
    }
}

/// Severity of a scan finding, in ECR's words, least severe first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingSeverity {
    /// `INFORMATIONAL`.
    Informational,
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`.
    Critical,
}

impl FindingSeverity {
    /// Every severity, least severe first.
    pub const ALL: [FindingSeverity; 5] = [
        FindingSeverity::Informational,
        FindingSeverity::Low,
        FindingSeverity::Medium,
        FindingSeverity::High,
        FindingSeverity::Critical,
    ];

    /// ECR's name of this severity (`HIGH`).
    pub fn name(self) -> &'static str {
        match self {
            FindingSeverity::Informational => "INFORMATIONAL",
            FindingSeverity::Low => "LOW",
            FindingSeverity::Medium => "MEDIUM",
            FindingSeverity::High => "HIGH",
            FindingSeverity::Critical => "CRITICAL",
        }
    }

    /// The severity ECR names `name` (`UNDEFINED`, and names it does not document, are
    /// `None`).
    pub fn from_name(name: &str) -> Option<FindingSeverity> {
        FindingSeverity::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The scan gate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanGate {
    /// The most severe finding an image may have and still pass.
    pub max_severity: FindingSeverity,
    /// Findings (CVE or finding names) that never block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// How long (minutes after the push) an image may wait for its scan to complete
    /// before it is blocked (`scan-timeout`). Default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10080), extend("default" = 120))]
    pub wait_minutes: Option<u32>,
}

impl ScanGate {
    /// `waitMinutes`, or its default.
    pub fn wait_minutes(&self) -> u32 {
        self.wait_minutes.unwrap_or(DEFAULT_WAIT_MINUTES)
    }
}

/// The signature gate: an image passes when any listed verifier accepts a signature whose
/// signed payload names exactly its digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignatureGate {
    /// Cosign signatures made with one of these keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign: Option<CosignVerifier>,
    /// Notation signatures chaining to one of these roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notation: Option<NotationVerifier>,
}

/// Key-based cosign verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CosignVerifier {
    /// Public keys (PEM, `-----BEGIN PUBLIC KEY-----`), ECDSA P-256 as `cosign
    /// generate-key-pair` makes them.
    pub public_keys: Vec<String>,
}

/// Notation (Notary Project) verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotationVerifier {
    /// Root certificates (PEM) a signing chain must end in, e.g. the AWS Signer root.
    pub trusted_roots: Vec<String>,
    /// Identities a signing certificate's subject must match, as Notation's trust policy
    /// writes them (`x509.subject: C=..., ST=..., O=...`), or `*` for any subject under
    /// the roots.
    pub trusted_identities: Vec<String>,
    /// Verification plugins (`io.cncf.notary.verificationPlugin`) whose signatures are
    /// verified without the plugin, e.g. `com.amazonaws.signer.notation.plugin` for AWS
    /// Signer and ECR managed signing. Ferry checks the chain, the signature, the expiry
    /// and the identity as for any signature; the plugin's own checks (AWS Signer's
    /// revocation check) are not made. Empty: such signatures are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_plugins: Vec<String>,
}

/// The gates an image must pass for one target: one set per rule that selects the image
/// for it, and it passes when any set passes (rules combine with OR, the gates of one rule
/// with AND). A target selected by any rule without gates has no `GateChoice` at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GateChoice {
    /// The gate sets, in rule order, without repetitions.
    pub alternatives: Vec<Arc<Gates>>,
}

impl GateChoice {
    /// The choice of a target first selected by a rule with `gates` (`None`: ungated).
    pub(crate) fn first(gates: Option<&Arc<Gates>>) -> Option<GateChoice> {
        gates.map(|gates| GateChoice {
            alternatives: vec![gates.clone()],
        })
    }

    /// Adds a further rule's `gates` to a target's choice: an ungated rule makes the
    /// target ungated.
    pub(crate) fn merge(choice: &mut Option<GateChoice>, gates: Option<&Arc<Gates>>) {
        match (choice.as_mut(), gates) {
            (None, _) => {}
            (Some(_), None) => *choice = None,
            (Some(current), Some(gates)) => {
                if !current.alternatives.iter().any(|g| g == gates) {
                    current.alternatives.push(gates.clone());
                }
            }
        }
    }
}

/// Adds a further rule's `platforms` to a target's (empty: every platform).
pub(crate) fn merge_platforms(platforms: &mut Vec<String>, rule: &[String]) {
    if platforms.is_empty() {
        return;
    }
    if rule.is_empty() {
        platforms.clear();
        return;
    }
    for platform in rule {
        if !platforms.contains(platform) {
            platforms.push(platform.clone());
        }
    }
}

impl ReplicationConfig {
    /// Whether the source is, or may turn out to be, an ECR registry: anything but an
    /// OCI `source.registry` on a host that is not ECR's.
    pub(crate) fn source_may_be_ecr(&self) -> bool {
        match self.source.as_ref().and_then(|s| s.registry.as_deref()) {
            Some(host) => matches!(Registry::from_host(host), Registry::Ecr { .. }),
            None => true,
        }
    }
}

impl Rule {
    /// The rule's gates, when it has any.
    pub fn gates(&self) -> Option<&Gates> {
        self.gates.as_ref().filter(|gates| !gates.is_empty())
    }

    /// The rule's gates, shared, for the targets it selects.
    pub(crate) fn shared_gates(&self) -> Option<Arc<Gates>> {
        self.gates().cloned().map(Arc::new)
    }
}

/// Findings about `rule.gates` and `rule.platforms` (rule at `path`); `ecr_source` says
/// whether the source is (or may be) an ECR registry.
pub(crate) fn gate_issues(rule: &Rule, path: &str, ecr_source: bool) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(gates) = &rule.gates {
        let at = format!("{path}.gates");
        if gates.is_empty() {
            issues.push(Issue::warning(
                &at,
                "no gate given: the rule copies every image",
            ));
        }
        if let Some(scan) = &gates.scan {
            let at = format!("{at}.scan");
            if !ecr_source {
                issues.push(Issue::error(
                    &at,
                    "a scan gate needs an ECR source: only ECR reports scan findings",
                ));
            }
            if scan.ignore.len() > MAX_IGNORED_FINDINGS {
                issues.push(Issue::error(
                    format!("{at}.ignore"),
                    format!("at most {MAX_IGNORED_FINDINGS} entries"),
                ));
            }
            for (i, name) in scan.ignore.iter().enumerate() {
                if name.trim().is_empty() || name.len() > 256 {
                    issues.push(Issue::error(
                        format!("{at}.ignore[{i}]"),
                        "a finding name (such as CVE-2024-1234), 1 to 256 characters",
                    ));
                }
            }
            if let Some(minutes) = scan.wait_minutes
                && !(1..=MAX_WAIT_MINUTES).contains(&minutes)
            {
                issues.push(Issue::error(
                    format!("{at}.waitMinutes"),
                    format!("between 1 and {MAX_WAIT_MINUTES} minutes"),
                ));
            }
        }
        if let Some(signature) = &gates.signature {
            let at = format!("{at}.signature");
            if signature.cosign.is_none() && signature.notation.is_none() {
                issues.push(Issue::error(
                    &at,
                    "names no verifier: give `cosign`, `notation` or both",
                ));
            }
            issues.extend(super::signature_check::signature_issues(signature, &at));
        }
    }
    if !rule.platforms.is_empty() {
        let at = format!("{path}.platforms");
        if rule.platforms.len() > MAX_PLATFORMS {
            issues.push(Issue::error(
                &at,
                format!("at most {MAX_PLATFORMS} platforms"),
            ));
        }
        for (i, platform) in rule.platforms.iter().enumerate() {
            if let Err(message) = check_platform(platform) {
                issues.push(Issue::error(format!("{at}[{i}]"), message));
            }
        }
    }
    issues
}

/// Checks one `platforms` entry: `os/architecture[/variant]`, lowercase, as OCI image
/// indexes name them (`linux/amd64`, `linux/arm64/v8`).
fn check_platform(platform: &str) -> Result<(), String> {
    let parts: Vec<&str> = platform.split('/').collect();
    let well_formed = (2..=3).contains(&parts.len())
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.len() <= 32
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "`{platform}` is not a platform: write os/architecture[/variant], e.g. linux/arm64"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_as_ecr_ranks_them() {
        assert!(FindingSeverity::Informational < FindingSeverity::Low);
        assert!(FindingSeverity::High < FindingSeverity::Critical);
        assert_eq!(
            FindingSeverity::from_name("HIGH"),
            Some(FindingSeverity::High)
        );
        assert_eq!(FindingSeverity::from_name("UNDEFINED"), None);
    }

    fn errors(json: &str) -> Vec<String> {
        ReplicationConfig::from_json(json)
            .map(|c| c.validate())
            .unwrap_or_else(|e| match e {
                super::super::ConfigError::Invalid { issues } => issues,
                other => panic!("{other}"),
            })
            .into_iter()
            .filter(|i| i.severity == super::super::Severity::Error)
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn gate_mistakes_are_errors_with_their_path() {
        let ecr = r#""source": {"registryId": "111111111111", "region": "us-east-1"}"#;
        let oci = r#""source": {"registry": "ghcr.io"}"#;
        let rule = |source: &str, gates: &str| {
            format!(
                r#"{{{source}, "rules": [{{"destinations": [{{"registryId": "222222222222", "region": "us-west-2"}}], "gates": {gates}}}]}}"#
            )
        };
        assert!(
            errors(&rule(
                ecr,
                r#"{"scan": {"maxSeverity": "HIGH", "waitMinutes": 30}}"#
            ))
            .is_empty()
        );
        let found = errors(&rule(oci, r#"{"scan": {"maxSeverity": "HIGH"}}"#));
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("rules[0].gates.scan: a scan gate needs an ECR source")),
            "{found:?}"
        );
        let found = errors(&rule(
            ecr,
            r#"{"scan": {"maxSeverity": "HIGH", "waitMinutes": 0}}"#,
        ));
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("rules[0].gates.scan.waitMinutes")),
            "{found:?}"
        );
        let found = errors(&rule(
            ecr,
            r#"{"scan": {"maxSeverity": "HIGH", "ignore": [""]}}"#,
        ));
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("rules[0].gates.scan.ignore[0]")),
            "{found:?}"
        );
        let found = errors(&rule(ecr, r#"{"signature": {}}"#));
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("rules[0].gates.signature: names no verifier")),
            "{found:?}"
        );
        assert!(
            ReplicationConfig::from_json(&rule(ecr, r#"{"scan": {"maxSeverity": "SEVERE"}}"#))
                .is_err()
        );
    }

    #[test]
    fn platforms_are_os_slash_architecture() {
        assert!(check_platform("linux/amd64").is_ok());
        assert!(check_platform("linux/arm64/v8").is_ok());
        for bad in [
            "linux",
            "Linux/amd64",
            "linux//amd64",
            "a/b/c/d",
            "linux/amd64 ",
        ] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
    }
}
