//! `DescribeImageScanFindings`: what ECR's scan (basic, or enhanced through Amazon
//! Inspector) found in one image, for the scan gate.
//!
//! One API reads both kinds: basic scanning fills `findings`, enhanced scanning
//! `enhancedFindings`; both fill `findingSeverityCounts`
//! (<https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageScanFindings.html>).
//! The answer is untrusted: severities ECR does not document (`UNDEFINED`, `UNTRIAGED`)
//! count as unknown, names are capped in length, and the walk stops after
//! [`MAX_FINDING_PAGES`] pages or at a repeated page token.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use aws_sdk_ecr::types::{ImageIdentifier, ScanStatus};

use crate::aws::{AssumeRole, sdk_error};
use crate::config::FindingSeverity;
use crate::digest::Digest;
use crate::error::Error;
use crate::reference::EcrRegistry;

use super::{EcrControl, is_code};

/// Most pages of findings read for one image (1,000 findings a page).
pub const MAX_FINDING_PAGES: usize = 20;
/// Longest finding name kept (longer ones are cut).
const MAX_FINDING_NAME: usize = 256;

/// Where ECR's scan of one image stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanState {
    /// No scan of the image exists (yet): scan on push may not have started, or is off.
    NotFound,
    /// The scan is queued or running (`PENDING`, `IN_PROGRESS`).
    InProgress,
    /// The scan completed (`COMPLETE`, or enhanced scanning's `ACTIVE`): findings below.
    Complete,
    /// The scan cannot give findings (`FAILED`, `UNSUPPORTED_IMAGE`,
    /// `FINDINGS_UNAVAILABLE`, `SCAN_ELIGIBILITY_EXPIRED`, `LIMIT_EXCEEDED`, ...).
    Failed {
        /// ECR's status.
        status: String,
        /// ECR's description, when it gave one.
        description: Option<String>,
    },
}

/// One finding: its name (a CVE id for most) and severity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The finding's name (basic) or vulnerability id (enhanced).
    pub name: String,
    /// Its severity; `None` for one ECR gives no documented severity.
    pub severity: Option<FindingSeverity>,
}

/// ECR's scan of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanReport {
    /// Where the scan stands.
    pub state: ScanState,
    /// Findings by severity, as ECR counts them (documented severities only).
    pub counts: BTreeMap<FindingSeverity, u64>,
    /// Each finding (read only when asked for: to match `ignore`).
    pub findings: Vec<Finding>,
}

impl ScanReport {
    /// A report without findings in `state`.
    pub fn of(state: ScanState) -> ScanReport {
        ScanReport {
            state,
            counts: BTreeMap::new(),
            findings: Vec::new(),
        }
    }
}

impl EcrControl {
    /// ECR's scan of `digest` in `repository`. With `names`, every finding is read (all
    /// pages, up to [`MAX_FINDING_PAGES`]); without, the first page's counts suffice.
    pub async fn image_scan(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        digest: &Digest,
        names: bool,
    ) -> Result<ScanReport, Error> {
        let client = self.aws().ecr(registry, role).await;
        let mut report = ScanReport::of(ScanState::NotFound);
        let mut token: Option<String> = None;
        let mut tokens: HashSet<String> = HashSet::new();
        for page in 0.. {
            if page == MAX_FINDING_PAGES {
                return Err(refused(format!(
                    "more than {MAX_FINDING_PAGES} pages of findings for {repository}@{digest}"
                )));
            }
            let answer = client
                .describe_image_scan_findings()
                .registry_id(&registry.account)
                .repository_name(repository)
                .image_id(
                    ImageIdentifier::builder()
                        .image_digest(digest.as_str())
                        .build(),
                )
                .max_results(1000)
                .set_next_token(token.clone())
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(e) if is_code(&e, "ScanNotFoundException") => {
                    return Ok(ScanReport::of(ScanState::NotFound));
                }
                Err(e) => return Err(sdk_error("ecr", "DescribeImageScanFindings", e)),
            };
            if page == 0 {
                let status = answer.image_scan_status();
                report.state = state_of(
                    status.and_then(|s| s.status()),
                    status.and_then(|s| s.description()),
                );
                if report.state != ScanState::Complete {
                    return Ok(report);
                }
            }
            if let Some(found) = answer.image_scan_findings() {
                if page == 0 {
                    for (severity, count) in found.finding_severity_counts().into_iter().flatten() {
                        if let Some(severity) = FindingSeverity::from_name(severity.as_str()) {
                            *report.counts.entry(severity).or_default() +=
                                u64::try_from(*count).unwrap_or(0);
                        }
                    }
                }
                if names {
                    for f in found.findings() {
                        report
                            .findings
                            .push(finding(f.name(), f.severity().map(|s| s.as_str())));
                    }
                    for f in found.enhanced_findings() {
                        let id = f
                            .package_vulnerability_details()
                            .and_then(|d| d.vulnerability_id())
                            .or(f.title());
                        report.findings.push(finding(id, f.severity()));
                    }
                }
            }
            match answer.next_token() {
                Some(next) if names => {
                    if !tokens.insert(next.to_string()) {
                        return Err(refused(format!(
                            "repeated page token for {repository}@{digest}"
                        )));
                    }
                    token = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(report)
    }

    /// The tags of `digest` in `repository` (DescribeImages `imageTags`), those that
    /// read as tags only; empty when the image is untagged or gone.
    pub async fn image_tags(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        digest: &Digest,
    ) -> Result<Vec<String>, Error> {
        Ok(self
            .describe_image(registry, role, repository, digest)
            .await?
            .map(|d| {
                d.image_tags()
                    .iter()
                    .filter(|t| crate::reference::validate_tag(t).is_ok())
                    .take(crate::manifest::MAX_REFERENCES)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// When `digest` was pushed to `repository` (DescribeImages `imagePushedAt`); `None`
    /// when ECR does not say, or the image is gone.
    pub async fn image_pushed_at(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<SystemTime>, Error> {
        Ok(self
            .describe_image(registry, role, repository, digest)
            .await?
            .and_then(|d| {
                d.image_pushed_at()
                    .and_then(|t| SystemTime::try_from(*t).ok())
            }))
    }
}

/// The scan state ECR's `status` (and description) names.
pub(crate) fn state_of(status: Option<&ScanStatus>, description: Option<&str>) -> ScanState {
    match status {
        Some(ScanStatus::Complete | ScanStatus::Active) => ScanState::Complete,
        Some(ScanStatus::InProgress | ScanStatus::Pending) | None => ScanState::InProgress,
        Some(other) => ScanState::Failed {
            status: other.as_str().chars().take(64).collect(),
            description: description.map(|d| d.chars().take(512).collect()),
        },
    }
}

fn finding(name: Option<&str>, severity: Option<&str>) -> Finding {
    Finding {
        name: name
            .unwrap_or("(unnamed)")
            .chars()
            .take(MAX_FINDING_NAME)
            .collect(),
        severity: severity.and_then(FindingSeverity::from_name),
    }
}

/// A permanent error for an answer Ferry will not use.
fn refused(message: String) -> Error {
    Error::Aws {
        service: "ecr",
        operation: "DescribeImageScanFindings",
        message,
        retryable: false,
    }
}
