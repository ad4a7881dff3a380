//! The scan gate's judgement over ECR's scan reports: pure, no network.
//!
//! - An image passes when its scan is complete and no finding (outside `ignore`) is more
//!   severe than `maxSeverity`. Findings ECR gives no documented severity (`UNDEFINED`,
//!   `UNTRIAGED`) never block.
//! - An index passes when every platform image it selects passes; the first platform that
//!   blocks decides, then the first that is not scanned yet.
//! - No scan yet, or one in progress: held, until `waitMinutes` after the push; then
//!   blocked, `scan-timeout`.
//! - A scan that cannot give findings (`FAILED`, `UNSUPPORTED_IMAGE`, ...): blocked,
//!   `scan-failed`; so is an index that lists no platform image to judge.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{FindingSeverity, ScanGate};
use crate::ecr::scan::{ScanReport, ScanState};

use super::{GateName, GateReason, Verdict};

/// The scan of one image of what is judged: its platform (`None` for a single image).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformScan {
    /// `os/architecture[/variant]` of an index's child; `None` for a single image.
    pub platform: Option<String>,
    /// ECR's scan of that image.
    pub report: ScanReport,
}

/// The scan gate's verdict on `scans` (one per platform image), `waited` after the push
/// (`None`: unknown, never timed out).
pub fn judge(gate: &ScanGate, scans: &[PlatformScan], waited: Option<Duration>) -> Verdict {
    // Nothing scanned is nothing passed: an index listing no platform image (only
    // attestations, or none of the rule's platforms) never passes unjudged.
    if scans.is_empty() {
        return Verdict::Blocked(GateReason::new(
            GateName::Scan,
            "scan-failed",
            "the index lists no platform image to judge",
        ));
    }
    let mut pending: Option<GateReason> = None;
    for scan in scans {
        let of = scan
            .platform
            .as_deref()
            .map(|p| format!(" of {p}"))
            .unwrap_or_default();
        match &scan.report.state {
            ScanState::NotFound | ScanState::InProgress => {
                let what = if scan.report.state == ScanState::NotFound {
                    "not scanned yet"
                } else {
                    "scan in progress"
                };
                pending.get_or_insert_with(|| {
                    GateReason::new(GateName::Scan, "scan-pending", format!("image{of}: {what}"))
                });
            }
            ScanState::Failed {
                status,
                description,
            } => {
                let detail = description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                return Verdict::Blocked(GateReason::new(
                    GateName::Scan,
                    "scan-failed",
                    format!("image{of}: scan {status}{detail}"),
                ));
            }
            ScanState::Complete => {
                let counts = counted(gate, &scan.report);
                if let Some((worst, _)) = counts.iter().next_back()
                    && *worst > gate.max_severity
                {
                    let over: u64 = counts
                        .iter()
                        .filter(|(s, _)| **s > gate.max_severity)
                        .map(|(_, n)| n)
                        .sum();
                    let mut reason = GateReason::new(
                        GateName::Scan,
                        "severity",
                        format!(
                            "image{of}: {over} finding(s) above {}, the most severe {}",
                            gate.max_severity.name(),
                            worst.name()
                        ),
                    );
                    reason.findings = counts;
                    return Verdict::Blocked(reason);
                }
            }
        }
    }
    match pending {
        None => Verdict::Pass,
        Some(reason) => {
            let limit = Duration::from_secs(u64::from(gate.wait_minutes()) * 60);
            match waited {
                Some(waited) if waited >= limit => Verdict::Blocked(GateReason::new(
                    GateName::Scan,
                    "scan-timeout",
                    format!(
                        "{}; waited {} min, waitMinutes is {}",
                        reason.reason,
                        waited.as_secs() / 60,
                        gate.wait_minutes()
                    ),
                )),
                _ => Verdict::Held(reason),
            }
        }
    }
}

/// Findings by severity, `ignore` left out: ECR's counts when nothing is ignored, else
/// counted from the findings themselves.
fn counted(gate: &ScanGate, report: &ScanReport) -> BTreeMap<FindingSeverity, u64> {
    if gate.ignore.is_empty() {
        return report
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (*s, *n))
            .collect();
    }
    let mut counts = BTreeMap::new();
    for finding in &report.findings {
        if gate.ignore.iter().any(|name| name == &finding.name) {
            continue;
        }
        if let Some(severity) = finding.severity {
            *counts.entry(severity).or_default() += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecr::scan::Finding;

    fn gate(max: FindingSeverity, ignore: &[&str]) -> ScanGate {
        ScanGate {
            max_severity: max,
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
            wait_minutes: Some(60),
        }
    }

    fn complete(findings: &[(&str, FindingSeverity)]) -> ScanReport {
        let mut report = ScanReport::of(ScanState::Complete);
        for (name, severity) in findings {
            *report.counts.entry(*severity).or_default() += 1;
            report.findings.push(Finding {
                name: name.to_string(),
                severity: Some(*severity),
            });
        }
        report
    }

    fn single(report: ScanReport) -> Vec<PlatformScan> {
        vec![PlatformScan {
            platform: None,
            report,
        }]
    }

    #[test]
    fn findings_at_or_below_the_threshold_pass_above_it_block_with_counts() {
        use FindingSeverity::*;
        let scans = single(complete(&[("CVE-1", High), ("CVE-2", Medium)]));
        assert_eq!(judge(&gate(High, &[]), &scans, None), Verdict::Pass);
        let Verdict::Blocked(reason) = judge(&gate(Medium, &[]), &scans, None) else {
            panic!("a HIGH finding over MEDIUM must block");
        };
        assert_eq!(reason.code, "severity");
        assert_eq!(reason.findings, BTreeMap::from([(Medium, 1), (High, 1)]));
        assert!(
            reason.reason.contains("1 finding(s) above MEDIUM"),
            "{}",
            reason.reason
        );
    }

    #[test]
    fn ignored_findings_never_block() {
        use FindingSeverity::*;
        let scans = single(complete(&[("CVE-2024-1234", Critical), ("CVE-3", Low)]));
        assert!(matches!(
            judge(&gate(High, &[]), &scans, None),
            Verdict::Blocked(_)
        ));
        assert_eq!(
            judge(&gate(High, &["CVE-2024-1234"]), &scans, None),
            Verdict::Pass
        );
    }

    #[test]
    fn an_unscanned_image_is_held_until_wait_minutes_then_blocked() {
        let scans = single(ScanReport::of(ScanState::NotFound));
        let gate = gate(FindingSeverity::High, &[]);
        let held = judge(&gate, &scans, Some(Duration::from_secs(59 * 60)));
        assert!(
            matches!(&held, Verdict::Held(r) if r.code == "scan-pending"),
            "{held:?}"
        );
        assert!(matches!(judge(&gate, &scans, None), Verdict::Held(_)));
        let late = judge(&gate, &scans, Some(Duration::from_secs(60 * 60)));
        assert!(
            matches!(&late, Verdict::Blocked(r) if r.code == "scan-timeout"),
            "{late:?}"
        );
    }

    #[test]
    fn a_failed_scan_blocks() {
        let scans = single(ScanReport::of(ScanState::Failed {
            status: "UNSUPPORTED_IMAGE".into(),
            description: Some("The operating system is not supported".into()),
        }));
        let verdict = judge(&gate(FindingSeverity::Critical, &[]), &scans, None);
        assert!(
            matches!(&verdict, Verdict::Blocked(r) if r.code == "scan-failed" && r.reason.contains("UNSUPPORTED_IMAGE")),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_index_passes_only_when_every_platform_passes() {
        use FindingSeverity::*;
        let scans = vec![
            PlatformScan {
                platform: Some("linux/amd64".into()),
                report: complete(&[("CVE-1", Low)]),
            },
            PlatformScan {
                platform: Some("linux/arm64".into()),
                report: complete(&[("CVE-9", Critical)]),
            },
        ];
        let verdict = judge(&gate(High, &[]), &scans, None);
        assert!(
            matches!(&verdict, Verdict::Blocked(r) if r.reason.contains("linux/arm64")),
            "{verdict:?}"
        );
        assert_eq!(judge(&gate(High, &[]), &scans[..1], None), Verdict::Pass);
        // One platform still scanning holds the index; a blocked one decides first.
        let mut pending = scans.clone();
        pending[0].report = ScanReport::of(ScanState::InProgress);
        assert!(matches!(
            judge(&gate(High, &[]), &pending, None),
            Verdict::Blocked(_)
        ));
        pending.truncate(1);
        assert!(matches!(
            judge(&gate(High, &[]), &pending, None),
            Verdict::Held(_)
        ));
    }
}
