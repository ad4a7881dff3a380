//! The EventBridge "ECR Image Action" and "ECR Referrer Action" events, typed
//! (`aws_lambda_events` has no type for their detail), and their validation into an
//! [`ImageAction`] the dispatcher can act on.
//!
//! An ECR Referrer Action (a signature ECR managed signing pushed, or any referrer) has the
//! detail of an Image Action. Its `image-digest` names the referrer (or, read either way,
//! its subject): the job it makes is resolved at the source by `replicate`, which copies
//! the subject's referrers only where the subject already is.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use ferry::Digest;
use ferry::config::Registry;

use crate::error::PipelineError;

mod scan;

pub use scan::{
    ECR_IMAGE_SCAN, INSPECTOR_SCAN, INSPECTOR_SOURCE, MAX_SCAN_TAGS, ScanCompleted, is_scan_event,
};

/// Longest tag ECR accepts.
pub const ECR_MAX_TAG_LEN: usize = 300;
/// `source` of ECR's events.
pub const ECR_SOURCE: &str = "aws.ecr";
/// `detail-type` of ECR's push, delete and storage-class events.
pub const ECR_IMAGE_ACTION: &str = "ECR Image Action";
/// `detail-type` of ECR's referrer events (signatures, attestations pushed to a subject).
pub const ECR_REFERRER_ACTION: &str = "ECR Referrer Action";

/// `action-type` of an ECR Image Action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionType {
    /// An image was pushed.
    Push,
    /// An image (a tag, or a digest) was deleted.
    Delete,
    /// An image was archived or restored.
    UpdateStorageClass,
    /// Any action type this version does not know.
    #[serde(other)]
    Other,
}

/// `target-storage-class` of an `UPDATE_STORAGE_CLASS` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    /// The image was archived.
    Archive,
    /// The image was restored from the archive.
    Standard,
    /// A storage class this version does not know.
    #[serde(other)]
    Other,
}

/// The `detail` of an ECR Image Action event, field names as ECR spells them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcrImageAction {
    /// PUSH, DELETE, UPDATE_STORAGE_CLASS, ...
    #[serde(rename = "action-type")]
    pub action_type: ActionType,
    /// `SUCCESS` or `FAILURE`.
    pub result: String,
    /// The repository.
    #[serde(rename = "repository-name")]
    pub repository_name: String,
    /// The manifest digest.
    #[serde(
        rename = "image-digest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_digest: Option<String>,
    /// The tag; absent on digest-only pushes (each child of a multi-arch push).
    #[serde(rename = "image-tag", default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    /// The manifest's media type.
    #[serde(
        rename = "manifest-media-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub manifest_media_type: Option<String>,
    /// The artifact's media type, for artifacts.
    #[serde(
        rename = "artifact-media-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_media_type: Option<String>,
    /// `ARCHIVE` or `STANDARD`, for `UPDATE_STORAGE_CLASS`.
    #[serde(
        rename = "target-storage-class",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_storage_class: Option<StorageClass>,
    /// When a restored image became pullable again (restores only).
    #[serde(
        rename = "last-activated-at",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_activated_at: Option<String>,
}

/// The whole event: the EventBridge envelope with the typed detail.
pub type EcrEvent = EventBridgeEvent<EcrImageAction>;

/// A validated image action: where it happened (from the envelope, so forwarded events from
/// other regions and accounts work) and what it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageAction {
    /// The event id.
    pub event_id: String,
    /// When ECR emitted the event.
    pub event_time: DateTime<Utc>,
    /// The registry the image was pushed to or deleted from.
    pub registry: Registry,
    /// The action.
    pub action_type: ActionType,
    /// Whether ECR reported `SUCCESS`.
    pub succeeded: bool,
    /// The repository.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest (required for PUSH, DELETE and UPDATE_STORAGE_CLASS).
    pub digest: Option<Digest>,
    /// An ECR Referrer Action: `digest` is a referrer (or its subject), not an image to
    /// copy by the rules' tag filters.
    pub referrer: bool,
    /// For UPDATE_STORAGE_CLASS: the class the image moved to (`ARCHIVE` or `STANDARD`).
    pub storage_class: Option<StorageClass>,
}

/// What an incoming event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// An ECR Image Action, validated.
    Image(ImageAction),
    /// A well-formed ECR event Ferry cannot act on: a tag ECR accepts (up to 300
    /// characters) but the distribution grammar, and so every job, does not (over 128).
    /// Reported and skipped, never turned into a job that could never succeed.
    TagTooLong {
        /// The event id.
        id: String,
        /// The repository.
        repository: String,
        /// The tag's length.
        length: usize,
    },
    /// A scan completed (ECR Image Scan, Inspector2 Scan): images a scan gate holds may
    /// be released.
    Scan(ScanCompleted),
    /// Some other event (another source or detail type): not for Ferry.
    Other {
        /// Its id, if it had one.
        id: Option<String>,
        /// `source` / `detail-type`.
        kind: String,
    },
}

/// Where and when an event happened, from its envelope.
struct Origin {
    event_id: String,
    event_time: DateTime<Utc>,
    /// The registry of the envelope's account and region.
    registry: Registry,
}

/// The envelope's id, time, and the ECR registry of its `account` and `region`: each
/// required, the registry one ECR serves.
fn origin(
    envelope: &EventBridgeEvent<serde_json::Value>,
    malformed: &impl Fn(String) -> PipelineError,
) -> Result<Origin, PipelineError> {
    let event_id = envelope
        .id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("no `id`".into()))?;
    let event_time = envelope.time.ok_or_else(|| malformed("no `time`".into()))?;
    let account = envelope.account.as_deref().unwrap_or_default();
    let region = envelope.region.as_deref().unwrap_or_default();
    let registry = Registry::from_host(&format!("{account}.dkr.ecr.{region}.amazonaws.com"));
    if !registry.is_ecr() {
        return Err(malformed(format!(
            "bad `account` {account:?} or `region` {region:?}"
        )));
    }
    Ok(Origin {
        event_id,
        event_time,
        registry,
    })
}

/// Read an event as it arrives at the dispatch function. An ECR Image Action with missing
/// or invalid fields is [`PipelineError::Malformed`]; an event of another kind is
/// [`Incoming::Other`].
pub fn parse_event(value: serde_json::Value) -> Result<Incoming, PipelineError> {
    let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
    let malformed = |reason: String| PipelineError::Malformed {
        id: id.clone().unwrap_or_else(|| "unknown".into()),
        reason,
    };
    let envelope: EventBridgeEvent<serde_json::Value> = serde_json::from_value(value)
        .map_err(|e| malformed(format!("not an EventBridge event: {e}")))?;
    if scan::is_scan_event(&envelope.source, &envelope.detail_type) {
        let at = origin(&envelope, &malformed)?;
        return scan::parse_scan(envelope, at.event_id, at.event_time, at.registry, malformed)
            .map(Incoming::Scan);
    }
    let referrer = envelope.detail_type == ECR_REFERRER_ACTION;
    if envelope.source != ECR_SOURCE || !(envelope.detail_type == ECR_IMAGE_ACTION || referrer) {
        return Ok(Incoming::Other {
            id,
            kind: format!("{} / {}", envelope.source, envelope.detail_type),
        });
    }
    let detail: EcrImageAction = serde_json::from_value(envelope.detail.clone())
        .map_err(|e| malformed(format!("bad {} detail: {e}", envelope.detail_type)))?;
    let Origin {
        event_id,
        event_time,
        registry,
    } = origin(&envelope, &malformed)?;
    // Check the fields themselves: a name holding `:` or `@` must not turn into a tag.
    ferry::reference::validate_repository(&detail.repository_name)
        .map_err(|e| malformed(format!("`repository-name`: {e}")))?;
    if let Some(t) = detail.image_tag.as_deref() {
        let ecr_valid = t.len() <= ECR_MAX_TAG_LEN
            && t.is_ascii()
            && t.len() > ferry::reference::MAX_TAG_LEN
            && ferry::reference::validate_tag(&t[..ferry::reference::MAX_TAG_LEN]).is_ok()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ecr_valid {
            return Ok(Incoming::TagTooLong {
                id: event_id,
                repository: detail.repository_name,
                length: t.len(),
            });
        }
        ferry::reference::validate_tag(t).map_err(|e| malformed(format!("`image-tag`: {e}")))?;
    }
    let digest = match &detail.image_digest {
        Some(d) => Some(d.parse::<Digest>().map_err(|e| malformed(e.to_string()))?),
        None => None,
    };
    if matches!(
        detail.action_type,
        ActionType::Push | ActionType::Delete | ActionType::UpdateStorageClass
    ) && digest.is_none()
    {
        return Err(malformed("no `image-digest`".into()));
    }
    if detail.action_type == ActionType::UpdateStorageClass
        && !matches!(
            detail.target_storage_class,
            Some(StorageClass::Archive | StorageClass::Standard)
        )
    {
        return Err(malformed(
            "UPDATE_STORAGE_CLASS without a `target-storage-class` of ARCHIVE or STANDARD".into(),
        ));
    }
    Ok(Incoming::Image(ImageAction {
        event_id,
        event_time,
        registry,
        action_type: detail.action_type,
        succeeded: detail.result == "SUCCESS",
        repository: detail.repository_name,
        tag: detail.image_tag,
        digest,
        referrer,
        storage_class: detail.target_storage_class,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "version": "0",
            "id": "4f1d2c1e-0000-4a7b-9c3e-f00000000001",
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": "123456789012",
            "time": "2026-11-23T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "result": "SUCCESS",
                "repository-name": "team/api",
                "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234abcd",
                "action-type": "PUSH",
                "image-tag": "v1.3.0",
                "manifest-media-type": "application/vnd.oci.image.index.v1+json"
            }
        })
    }

    #[test]
    fn the_documented_sample_parses() {
        let Incoming::Image(a) = parse_event(sample()).unwrap() else {
            panic!("not an image action")
        };
        assert_eq!(
            a.registry.host(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(a.action_type, ActionType::Push);
        assert!(a.succeeded);
        assert_eq!(a.repository, "team/api");
        assert_eq!(a.tag.as_deref(), Some("v1.3.0"));
        assert_eq!(a.event_time.to_rfc3339(), "2026-11-23T10:00:00+00:00");
    }

    #[test]
    fn the_recorded_sample_event_parses() {
        // A push event as ECR sends it, kept in the repository (testdata/events).
        let text = include_str!("../../../testdata/events/ecr-image-action-push.json");
        assert!(matches!(
            parse_event(serde_json::from_str(text).unwrap()).unwrap(),
            Incoming::Image(_)
        ));
    }

    #[test]
    fn the_referrer_action_sample_parses_as_a_referrer() {
        // Built from the published event schema (testdata/events/README.md).
        let text = include_str!("../../../testdata/events/ecr-referrer-action.json");
        let Incoming::Image(a) = parse_event(serde_json::from_str(text).unwrap()).unwrap() else {
            panic!("not an image action")
        };
        assert!(a.referrer);
        assert_eq!(a.action_type, ActionType::Push);
        assert_eq!(a.repository, "team/api");
        assert_eq!(
            a.digest.as_ref().map(|d| d.as_str()),
            Some("sha256:3b7e1f0a5c2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7")
        );
        // Its fields are checked like an Image Action's.
        let mut hostile: serde_json::Value = serde_json::from_str(text).unwrap();
        hostile["detail"]["repository-name"] = json!("team/api/../../other");
        assert!(matches!(
            parse_event(hostile),
            Err(PipelineError::Malformed { .. })
        ));
        let mut hostile: serde_json::Value = serde_json::from_str(text).unwrap();
        hostile["detail"]["image-digest"] = json!("sha256:../../x");
        assert!(matches!(
            parse_event(hostile),
            Err(PipelineError::Malformed { .. })
        ));
        assert!(!matches!(
            parse_event(sample()).unwrap(),
            Incoming::Image(ImageAction { referrer: true, .. })
        ));
    }

    #[test]
    fn the_recorded_delete_child_push_scan_and_replication_events_are_read_as_ecr_sends_them() {
        // Shapes as AWS documents them (testdata/events/README.md).
        let read = |text: &str| parse_event(serde_json::from_str(text).unwrap()).unwrap();
        let Incoming::Image(delete) = read(include_str!(
            "../../../testdata/events/ecr-image-action-delete.json"
        )) else {
            panic!("the delete is an image action")
        };
        assert_eq!(delete.action_type, ActionType::Delete);
        assert_eq!(delete.tag.as_deref(), Some("v1.3.0"));
        assert!(delete.succeeded && delete.digest.is_some());

        let Incoming::Image(child) = read(include_str!(
            "../../../testdata/events/ecr-image-action-child-push.json"
        )) else {
            panic!("the child push is an image action")
        };
        assert_eq!(child.action_type, ActionType::Push);
        assert_eq!(child.tag, None, "a child manifest is pushed by digest only");
        assert!(child.digest.is_some());

        // Scans release images a scan gate holds; native replication results are not
        // Ferry's to act on.
        assert!(matches!(
            read(include_str!("../../../testdata/events/ecr-image-scan.json")),
            Incoming::Scan(_)
        ));
        let text = include_str!("../../../testdata/events/ecr-replication-action.json");
        assert!(matches!(read(text), Incoming::Other { .. }), "{text}");
    }

    #[test]
    fn the_recorded_storage_class_events_parse() {
        // UPDATE_STORAGE_CLASS events shaped as AWS documents them (testdata/events/README.md).
        for (text, class) in [
            (
                include_str!("../../../testdata/events/ecr-image-action-archive.json"),
                StorageClass::Archive,
            ),
            (
                include_str!("../../../testdata/events/ecr-image-action-restore.json"),
                StorageClass::Standard,
            ),
        ] {
            let Incoming::Image(a) = parse_event(serde_json::from_str(text).unwrap()).unwrap()
            else {
                panic!("not an image action: {text}")
            };
            assert_eq!(a.action_type, ActionType::UpdateStorageClass);
            assert_eq!(a.storage_class, Some(class));
            assert_eq!(a.tag, None, "storage-class events name a digest only");
            assert!(a.digest.is_some() && a.succeeded);
            assert_eq!(a.repository, "team/api");
        }
        let mut e: serde_json::Value = serde_json::from_str(include_str!(
            "../../../testdata/events/ecr-image-action-archive.json"
        ))
        .unwrap();
        e["detail"]
            .as_object_mut()
            .unwrap()
            .remove("target-storage-class");
        assert!(
            parse_event(e)
                .unwrap_err()
                .to_string()
                .contains("target-storage-class")
        );
    }

    #[test]
    fn detail_round_trips_with_ecr_names() {
        let detail: EcrImageAction = serde_json::from_value(sample()["detail"].clone()).unwrap();
        let back = serde_json::to_value(&detail).unwrap();
        assert_eq!(back, sample()["detail"]);
        let other: EcrImageAction = serde_json::from_value(
            json!({"action-type": "REPLICATE", "result": "SUCCESS", "repository-name": "a"}),
        )
        .unwrap();
        assert_eq!(other.action_type, ActionType::Other);
    }

    #[test]
    fn malformed_events_name_the_id_and_the_problem() {
        let mut e = sample();
        e["detail"]["image-digest"] = json!("sha256:nothex");
        let err = parse_event(e).unwrap_err().to_string();
        assert!(
            err.starts_with("malformed event 4f1d2c1e-0000-4a7b-9c3e-f00000000001:"),
            "{err}"
        );

        let mut e = sample();
        e["detail"]
            .as_object_mut()
            .unwrap()
            .remove("repository-name");
        assert!(
            parse_event(e)
                .unwrap_err()
                .to_string()
                .contains("repository-name")
        );

        let mut e = sample();
        e["account"] = json!("12");
        assert!(parse_event(e).unwrap_err().to_string().contains("account"));

        let mut e = sample();
        e["detail"]["image-tag"] = json!("bad tag!");
        assert!(matches!(
            parse_event(e),
            Err(PipelineError::Malformed { .. })
        ));

        // A tag ECR accepts but the grammar does not (129..=300 characters): skipped, not
        // malformed; past ECR's own limit it is malformed.
        let mut e = sample();
        e["detail"]["image-tag"] = json!("v".repeat(200));
        assert_eq!(
            parse_event(e).unwrap(),
            Incoming::TagTooLong {
                id: "4f1d2c1e-0000-4a7b-9c3e-f00000000001".into(),
                repository: sample()["detail"]["repository-name"]
                    .as_str()
                    .unwrap()
                    .into(),
                length: 200
            }
        );
        let mut e = sample();
        e["detail"]["image-tag"] = json!("v".repeat(301));
        assert!(matches!(
            parse_event(e),
            Err(PipelineError::Malformed { .. })
        ));

        let err = parse_event(json!("just a string")).unwrap_err().to_string();
        assert!(
            err.starts_with("malformed event unknown: not an EventBridge event"),
            "{err}"
        );
    }

    #[test]
    fn other_events_are_not_errors() {
        for kind in ["ECR Scan Resource Change", "ECR Pull Through Cache Action"] {
            let mut e = sample();
            e["detail-type"] = json!(kind);
            assert!(
                matches!(parse_event(e).unwrap(), Incoming::Other { .. }),
                "{kind}"
            );
        }
        // Inspector's other events (findings) are not scans of an image.
        let mut e = sample();
        e["source"] = json!("aws.inspector2");
        e["detail-type"] = json!("Inspector2 Finding");
        assert!(matches!(parse_event(e).unwrap(), Incoming::Other { .. }));
    }
}
