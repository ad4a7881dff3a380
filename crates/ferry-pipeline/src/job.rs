//! The replication job message: what dispatch and reconcile put on the SQS FIFO queue and
//! replicate executes. Versioned JSON, documented in `docs/job-schema.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use ferry::Reference;
use ferry::config::Target;

use crate::error::PipelineError;

/// The schema version this code writes and reads.
pub const JOB_VERSION: u32 = 1;

/// SQS's limit on `MessageGroupId`.
const MAX_GROUP_ID: usize = 128;

pub use ferry_results::{JobAction, JobSource, Origin};

/// The destination the job asks for. Only where: `replicate` takes everything else (role,
/// external ID, KMS key, creation template, referrers, deletes) from its own config's
/// target for this image and destination, and refuses a job its config does not allow
/// ([`crate::authorize`]). Fields that version 1 messages of older dispatchers carry
/// (`referrers`, `deletes`, `roleArn`, `kmsKey`, `useCreationTemplate`) are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTarget {
    /// Destination registry host.
    pub registry: String,
    /// Destination repository (the rendered `repositoryName`).
    pub repository: String,
    /// JSON path of the destination in the config, e.g. `rules[0].destinations[1]`
    /// (informational).
    #[serde(default)]
    pub path: String,
}

/// One replication job: one image, one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Schema version, [`JOB_VERSION`].
    pub version: u32,
    /// Copy or delete.
    pub action: JobAction,
    /// The source image.
    pub source: JobSource,
    /// The destination.
    pub target: JobTarget,
    /// The ECR event id (or `reconcile:<run id>`).
    pub event_id: String,
    /// When the push happened (the event's time; for reconcile, when drift was found).
    pub event_time: DateTime<Utc>,
    /// Who made the job.
    #[serde(default)]
    pub origin: Origin,
    /// When the job was enqueued.
    pub enqueued_at: DateTime<Utc>,
}

impl JobTarget {
    /// The job target of a config target.
    pub fn from_target(t: &Target) -> JobTarget {
        JobTarget {
            registry: t.destination.registry_host(),
            repository: t.repository.clone(),
            path: t.destination.path.clone(),
        }
    }
}

impl Job {
    /// A new job for `target`, stamped now.
    pub fn new(
        action: JobAction,
        source: JobSource,
        target: &Target,
        event_id: &str,
        event_time: DateTime<Utc>,
        origin: Origin,
    ) -> Job {
        Job {
            version: JOB_VERSION,
            action,
            source,
            target: JobTarget::from_target(target),
            event_id: event_id.to_string(),
            event_time,
            origin,
            enqueued_at: Utc::now(),
        }
    }

    /// Decode and check a message body.
    pub fn decode(body: &str) -> Result<Job, PipelineError> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| PipelineError::Job(format!("not JSON: {e}")))?;
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(JOB_VERSION) => {}
            Some(v) => {
                return Err(PipelineError::Job(format!(
                    "unsupported version {v} (this replicate reads {JOB_VERSION})"
                )));
            }
            None => return Err(PipelineError::Job("no `version`".into())),
        }
        let job: Job =
            serde_json::from_value(value).map_err(|e| PipelineError::Job(e.to_string()))?;
        match (job.action, &job.source.tag, &job.source.digest) {
            (JobAction::Copy | JobAction::Referrer, _, None) => {
                return Err(PipelineError::Job(format!(
                    "a {} job needs `source.digest`",
                    job.action.as_str()
                )));
            }
            (JobAction::Archive | JobAction::Restore, _, None) => {
                return Err(PipelineError::Job(format!(
                    "{} needs `source.digest`",
                    job.action.as_str()
                )));
            }
            (JobAction::Delete, None, None) => {
                return Err(PipelineError::Job(
                    "a delete needs `source.tag` or `source.digest`".into(),
                ));
            }
            _ => {}
        }
        job.source_reference()?;
        ferry::reference::validate_repository(&job.target.repository)
            .map_err(|e| PipelineError::Job(format!("`target.repository`: {e}")))?;
        if job.target.registry.is_empty() || job.target.registry.contains(['/', ' ', '@']) {
            return Err(PipelineError::Job(format!(
                "`target.registry` {:?} is not a registry host",
                job.target.registry
            )));
        }
        Ok(job)
    }

    /// The message body.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a job always serialises")
    }

    /// SQS `MessageGroupId`: destination registry and repository, so the updates of one
    /// destination repository stay ordered. Over 128 characters: a prefix and a hash.
    pub fn group_id(&self) -> String {
        let id = format!("{}/{}", self.target.registry, self.target.repository);
        if id.len() <= MAX_GROUP_ID {
            return id;
        }
        let hash = hex::encode(Sha256::digest(id.as_bytes()));
        let mut cut = MAX_GROUP_ID - 1 - hash.len();
        while !id.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}~{hash}", &id[..cut])
    }

    /// SQS `MessageDeduplicationId`: a hash of the event id, the destination, the action and
    /// the image, so a redelivered event makes no second job while one run of reconcile
    /// enqueues each image once.
    pub fn deduplication_id(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.event_id.as_str(),
            self.target.registry.as_str(),
            self.target.repository.as_str(),
            self.action.as_str(),
            self.source.tag.as_deref().unwrap_or(""),
            self.source
                .digest
                .as_ref()
                .map(|d| d.as_str())
                .unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    /// The source as an engine reference (tag and digest).
    pub fn source_reference(&self) -> Result<Reference, PipelineError> {
        let mut text = format!("{}/{}", self.source.registry, self.source.repository);
        if let Some(t) = &self.source.tag {
            text.push(':');
            text.push_str(t);
        }
        let mut r = Reference::parse(&text).map_err(|e| PipelineError::Job(e.to_string()))?;
        r.digest = self.source.digest.clone();
        Ok(r)
    }

    /// `registry/repository` of the destination (the metric dimension).
    pub fn destination(&self) -> String {
        format!("{}/{}", self.target.registry, self.target.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry::Digest;
    use ferry::config::ReplicationConfig;

    fn config() -> ReplicationConfig {
        ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"destinations": [
                  {"registryId": "222222222222", "region": "us-west-2",
                   "roleArn": "arn:aws:iam::222222222222:role/ferry", "externalId": "s3cret",
                   "repositoryName": "dr/{repository}"}]}]}"#,
        )
        .unwrap()
    }

    fn job() -> Job {
        let target = &config().destinations_for("team/api", Some("v1")).unwrap()[0];
        let source = JobSource {
            registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
            repository: "team/api".into(),
            tag: Some("v1".into()),
            digest: Some(Digest::of(b"a")),
        };
        Job::new(
            JobAction::Copy,
            source,
            target,
            "ev-1",
            "2026-01-01T00:00:00Z".parse().unwrap(),
            Origin::Event,
        )
    }

    #[test]
    fn round_trip_and_wire_names() {
        let j = job();
        let body = j.encode();
        assert_eq!(Job::decode(&body).unwrap(), j);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["action"], "copy");
        assert_eq!(
            v["target"]["registry"],
            "222222222222.dkr.ecr.us-west-2.amazonaws.com"
        );
        assert_eq!(v["target"]["repository"], "dr/team/api");
        assert_eq!(v["eventId"], "ev-1");
        assert_eq!(v["origin"], "event");
        assert!(
            !body.contains("s3cret"),
            "the external id must not travel: {body}"
        );
    }

    #[test]
    fn settings_never_travel() {
        let j = job();
        let body = j.encode();
        for field in ["roleArn", "externalId", "kmsKey", "deletes", "referrers"] {
            assert!(!body.contains(field), "{field} in {body}");
        }
        // An older message's extra fields are read past, not obeyed.
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["target"]["roleArn"] = "arn:aws:iam::999999999999:role/evil".into();
        v["target"]["deletes"] = true.into();
        assert_eq!(Job::decode(&v.to_string()).unwrap(), j);
    }

    #[test]
    fn ids() {
        let j = job();
        assert_eq!(
            j.group_id(),
            "222222222222.dkr.ecr.us-west-2.amazonaws.com/dr/team/api"
        );
        assert_eq!(j.deduplication_id().len(), 64);
        let mut other = j.clone();
        other.action = JobAction::Delete;
        assert_ne!(other.deduplication_id(), j.deduplication_id());
        let mut later = j.clone();
        later.enqueued_at = Utc::now();
        assert_eq!(
            later.deduplication_id(),
            j.deduplication_id(),
            "stamps do not change the id"
        );
        let mut long = j.clone();
        long.target.repository = "a/".repeat(100) + "b";
        let g = long.group_id();
        assert_eq!(g.len(), 128);
        assert_ne!(g, j.group_id());
    }

    #[test]
    fn bad_bodies() {
        let e = |body: &str| Job::decode(body).unwrap_err().to_string();
        assert!(e("{nope").contains("not JSON"));
        assert!(e(r#"{"version": 2}"#).contains("unsupported version 2"));
        assert!(e(r#"{"action": "copy"}"#).contains("no `version`"));
        let mut v: serde_json::Value = serde_json::from_str(&job().encode()).unwrap();
        v["source"].as_object_mut().unwrap().remove("digest");
        assert!(e(&v.to_string()).contains("needs `source.digest`"));
        v["source"]["repository"] = "UPPER".into();
        v["source"]["digest"] = Digest::of(b"x").to_string().into();
        assert!(e(&v.to_string()).contains("invalid reference"));
        // Unknown fields are tolerated: v1 may grow optional fields.
        let mut v: serde_json::Value = serde_json::from_str(&job().encode()).unwrap();
        v["futureField"] = 3.into();
        assert!(Job::decode(&v.to_string()).is_ok());
    }
}
