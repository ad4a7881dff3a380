//! Scan completion events: ECR's `ECR Image Scan` (basic scanning) and Amazon Inspector's
//! `Inspector2 Scan` (enhanced scanning), which release images a scan gate holds.
//!
//! Both name the image by `repository-name`, `image-digest` and `image-tags`; Inspector's
//! `repository-name` is the repository's ARN, whose account and region must be the
//! envelope's. The fields are checked like an Image Action's: a repository name or tag
//! outside the distribution grammar is malformed, never a job.
//! Shapes: the Amazon ECR User Guide, "Amazon ECR events and EventBridge" and "EventBridge
//! events sent for enhanced scanning in Amazon ECR" (samples in `testdata/events/`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use ferry::Digest;
use ferry::config::Registry;

use crate::error::PipelineError;

/// `detail-type` of ECR's basic scan completion.
pub const ECR_IMAGE_SCAN: &str = "ECR Image Scan";
/// `source` of Amazon Inspector's events.
pub const INSPECTOR_SOURCE: &str = "aws.inspector2";
/// `detail-type` of Amazon Inspector's initial scan of a resource.
pub const INSPECTOR_SCAN: &str = "Inspector2 Scan";
/// Most tags one scan event may name (ECR allows 1,000 per image).
pub const MAX_SCAN_TAGS: usize = 1_000;

/// A completed scan of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanCompleted {
    /// The event id.
    pub event_id: String,
    /// When the event was sent.
    pub event_time: DateTime<Utc>,
    /// The image's registry (the envelope's account and region).
    pub registry: Registry,
    /// The repository.
    pub repository: String,
    /// The image's digest.
    pub digest: Digest,
    /// Its tags when it was scanned (empty: an untagged image).
    pub tags: Vec<String>,
    /// The scan's status as the event gives it (`COMPLETE`, `FAILED`,
    /// `INITIAL_SCAN_COMPLETE`, ...): informative only, the gate reads the findings.
    pub status: String,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "repository-name")]
    repository_name: String,
    #[serde(rename = "image-digest")]
    image_digest: Option<String>,
    #[serde(rename = "image-tags", default)]
    image_tags: Vec<String>,
    #[serde(rename = "scan-status", default)]
    scan_status: Option<String>,
}

/// Whether `source` / `detail_type` is a scan completion event.
pub fn is_scan_event(source: &str, detail_type: &str) -> bool {
    (source == crate::event::ECR_SOURCE && detail_type == ECR_IMAGE_SCAN)
        || (source == INSPECTOR_SOURCE && detail_type == INSPECTOR_SCAN)
}

/// Reads a scan completion event (the caller checked [`is_scan_event`] and read the
/// envelope's id, time and registry).
pub(crate) fn parse_scan(
    envelope: EventBridgeEvent<serde_json::Value>,
    event_id: String,
    event_time: DateTime<Utc>,
    registry: Registry,
    malformed: impl Fn(String) -> PipelineError,
) -> Result<ScanCompleted, PipelineError> {
    let detail: Detail = serde_json::from_value(envelope.detail.clone())
        .map_err(|e| malformed(format!("bad {} detail: {e}", envelope.detail_type)))?;
    let account = envelope.account.as_deref().unwrap_or_default();
    let region = envelope.region.as_deref().unwrap_or_default();
    let repository = match detail.repository_name.strip_prefix("arn:") {
        // arn:<partition>:ecr:<region>:<account>:repository/<name>
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts.as_slice() {
                [_, "ecr", r, a, resource] if *r == region && *a == account => resource
                    .strip_prefix("repository/")
                    .ok_or_else(|| malformed("`repository-name` is no repository ARN".into()))?
                    .to_string(),
                _ => {
                    return Err(malformed(
                        "`repository-name` names a repository of another account or region".into(),
                    ));
                }
            }
        }
        None => detail.repository_name.clone(),
    };
    ferry::reference::validate_repository(&repository)
        .map_err(|e| malformed(format!("`repository-name`: {e}")))?;
    let digest: Digest = detail
        .image_digest
        .as_deref()
        .ok_or_else(|| malformed("no `image-digest`".into()))?
        .parse()
        .map_err(|e: ferry::digest::InvalidDigest| malformed(e.to_string()))?;
    if detail.image_tags.len() > MAX_SCAN_TAGS {
        return Err(malformed(format!(
            "{} `image-tags` (at most {MAX_SCAN_TAGS})",
            detail.image_tags.len()
        )));
    }
    for tag in &detail.image_tags {
        ferry::reference::validate_tag(tag).map_err(|e| malformed(format!("`image-tags`: {e}")))?;
    }
    let mut tags = detail.image_tags;
    tags.sort();
    tags.dedup();
    Ok(ScanCompleted {
        event_id,
        event_time,
        registry,
        repository,
        digest,
        tags,
        status: detail
            .scan_status
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Incoming, parse_event};

    fn sample(name: &str) -> serde_json::Value {
        let text = match name {
            "ecr" => include_str!("../../../../testdata/events/ecr-image-scan.json"),
            _ => include_str!("../../../../testdata/events/inspector2-scan.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn both_documented_scan_events_parse() {
        for name in ["ecr", "inspector"] {
            let Incoming::Scan(scan) = parse_event(sample(name)).unwrap() else {
                panic!("{name}: not a scan event");
            };
            assert_eq!(scan.repository, "team/api", "{name}");
            assert_eq!(scan.tags, vec!["v1.3.0".to_string()], "{name}");
            assert_eq!(
                scan.registry.host(),
                "123456789012.dkr.ecr.us-east-1.amazonaws.com"
            );
        }
    }

    #[test]
    fn hostile_scan_events_are_malformed() {
        let cases: Vec<(&str, &str, serde_json::Value)> = vec![
            (
                "inspector",
                "repository-name",
                serde_json::json!("arn:aws:ecr:us-east-1:999999999999:repository/team/api"),
            ),
            (
                "inspector",
                "repository-name",
                serde_json::json!("arn:aws:ecr:eu-west-1:123456789012:repository/team/api"),
            ),
            (
                "inspector",
                "repository-name",
                serde_json::json!("arn:aws:s3:us-east-1:123456789012:bucket/x"),
            ),
            ("ecr", "repository-name", serde_json::json!("team/../other")),
            ("ecr", "image-digest", serde_json::json!("sha256:nothex")),
            ("ecr", "image-tags", serde_json::json!(["ok", "bad tag"])),
            (
                "ecr",
                "image-tags",
                serde_json::json!(vec!["t"; MAX_SCAN_TAGS + 1]),
            ),
        ];
        for (name, field, value) in cases {
            let mut event = sample(name);
            event["detail"][field] = value.clone();
            assert!(
                matches!(parse_event(event), Err(PipelineError::Malformed { .. })),
                "{name} {field} = {value}"
            );
        }
        let mut no_digest = sample("ecr");
        no_digest["detail"]
            .as_object_mut()
            .unwrap()
            .remove("image-digest");
        assert!(parse_event(no_digest).is_err());
    }
}
