//! The replication job message: what dispatch and reconcile put on the SQS FIFO queue and
//! replicate executes. Versioned JSON, documented in `docs/job-schema.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use ferry::Reference;
use ferry::config::Target;

use crate::error::PipelineError;

/// The schema version of a job for one destination.
pub const JOB_VERSION: u32 = 1;
/// The schema version of a job for several destinations (`moreTargets`): a replicate that
/// reads only version 1 refuses it rather than copying to the first destination alone.
pub const FANOUT_JOB_VERSION: u32 = 2;
/// Most destinations one job carries (`target` and `moreTargets`).
pub const MAX_JOB_TARGETS: usize = 50;

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
    /// The destination (the first, when the job has several).
    pub target: JobTarget,
    /// Further destinations of the same image (a copy only, version 2): replicate reads
    /// the source once for all of them, and each destination's result is its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_targets: Vec<JobTarget>,
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
            more_targets: Vec::new(),
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
        let version = match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(JOB_VERSION) || v == u64::from(FANOUT_JOB_VERSION) => v,
            Some(v) => {
                return Err(PipelineError::Job(format!(
                    "unsupported version {v} (this replicate reads {JOB_VERSION} and {FANOUT_JOB_VERSION})"
                )));
            }
            None => return Err(PipelineError::Job("no `version`".into())),
        };
        let job: Job =
            serde_json::from_value(value).map_err(|e| PipelineError::Job(e.to_string()))?;
        match (version, job.more_targets.len()) {
            (1, 0) => {}
            (1, _) => {
                return Err(PipelineError::Job("`moreTargets` needs version 2".into()));
            }
            (_, 0) => {
                return Err(PipelineError::Job(
                    "a version 2 job needs `moreTargets`".into(),
                ));
            }
            (_, n) if n + 1 > MAX_JOB_TARGETS => {
                return Err(PipelineError::Job(format!(
                    "{} destinations in one job: at most {MAX_JOB_TARGETS}",
                    n + 1
                )));
            }
            _ if job.action != JobAction::Copy => {
                return Err(PipelineError::Job(format!(
                    "a {} job has one destination",
                    job.action.as_str()
                )));
            }
            _ => {}
        }
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
        let mut seen = std::collections::HashSet::new();
        for (name, t) in std::iter::once(("target".to_string(), &job.target)).chain(
            job.more_targets
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("moreTargets[{i}]"), t)),
        ) {
            ferry::reference::validate_repository(&t.repository)
                .map_err(|e| PipelineError::Job(format!("`{name}.repository`: {e}")))?;
            if t.registry.is_empty() || t.registry.contains(['/', ' ', '@']) {
                return Err(PipelineError::Job(format!(
                    "`{name}.registry` {:?} is not a registry host",
                    t.registry
                )));
            }
            if !seen.insert((&t.registry, &t.repository)) {
                return Err(PipelineError::Job(format!(
                    "`{name}` repeats {}/{}",
                    t.registry, t.repository
                )));
            }
        }
        Ok(job)
    }

    /// One job per destination: the job itself when it has one.
    pub fn parts(&self) -> Vec<Job> {
        std::iter::once(&self.target)
            .chain(&self.more_targets)
            .map(|t| Job {
                version: JOB_VERSION,
                target: t.clone(),
                more_targets: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    /// The same image and event for `targets` (at least one), stamped now: version 2 when
    /// there are several.
    pub fn for_targets(&self, mut targets: Vec<JobTarget>) -> Job {
        let rest = targets.split_off(1.min(targets.len()));
        let target = targets.pop().unwrap_or_else(|| self.target.clone());
        Job {
            version: if rest.is_empty() {
                JOB_VERSION
            } else {
                FANOUT_JOB_VERSION
            },
            target,
            more_targets: rest,
            enqueued_at: Utc::now(),
            ..self.clone()
        }
    }

    /// Copies of one image to several destinations, `max` (at most [`MAX_JOB_TARGETS`])
    /// destinations a job; every other job as it is. Jobs combine when they copy the same
    /// source image for the same event; the order of first appearance is kept.
    pub fn combine(jobs: Vec<Job>, max: usize) -> Vec<Job> {
        let max = max.clamp(1, MAX_JOB_TARGETS);
        if max == 1 {
            return jobs;
        }
        let mut out: Vec<Job> = Vec::with_capacity(jobs.len());
        let mut open: std::collections::HashMap<String, usize> = Default::default();
        for job in jobs {
            if job.action != JobAction::Copy || !job.more_targets.is_empty() {
                out.push(job);
                continue;
            }
            let key = serde_json::to_string(&(&job.source, &job.event_id, &job.origin))
                .unwrap_or_default();
            match open.get(&key) {
                Some(&i) if out[i].more_targets.len() + 1 < max => {
                    out[i].more_targets.push(job.target);
                    out[i].version = FANOUT_JOB_VERSION;
                }
                _ => {
                    open.insert(key, out.len());
                    out.push(job);
                }
            }
        }
        out
    }

    /// Every destination of the job.
    pub fn targets(&self) -> impl Iterator<Item = &JobTarget> {
        std::iter::once(&self.target).chain(&self.more_targets)
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
        // A job for several destinations: each one counts (a job for the first alone
        // keeps its id).
        for t in &self.more_targets {
            h.update(t.registry.as_bytes());
            h.update([0]);
            h.update(t.repository.as_bytes());
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

    fn target(account: &str) -> JobTarget {
        JobTarget {
            registry: format!("{account}.dkr.ecr.us-west-2.amazonaws.com"),
            repository: "dr/team/api".into(),
            path: String::new(),
        }
    }

    #[test]
    fn copies_of_one_image_combine_into_jobs_of_at_most_max_destinations() {
        let one = job();
        let mut jobs = Vec::new();
        for i in 0..7 {
            let mut j = one.clone();
            j.target = target(&format!("{:012}", 300_000_000_000u64 + i));
            jobs.push(j);
        }
        // Another event of the same image, and a delete: never combined with these.
        let mut other = one.clone();
        other.event_id = "ev-2".into();
        let mut delete = one.clone();
        delete.action = JobAction::Delete;
        jobs.insert(3, other.clone());
        jobs.push(delete.clone());

        let combined = Job::combine(jobs.clone(), 3);
        let shape: Vec<(u32, usize)> = combined
            .iter()
            .map(|j| (j.version, j.targets().count()))
            .collect();
        assert_eq!(shape, vec![(2, 3), (1, 1), (2, 3), (1, 1), (1, 1)]);
        assert_eq!(combined[1], other);
        assert_eq!(combined[4], delete);
        // Every destination is in exactly one job, in order.
        let all: Vec<&JobTarget> = combined
            .iter()
            .filter(|j| j.event_id == "ev-1" && j.action == JobAction::Copy)
            .flat_map(Job::targets)
            .collect();
        let want: Vec<&JobTarget> = jobs
            .iter()
            .filter(|j| j.event_id == "ev-1" && j.action == JobAction::Copy)
            .map(|j| &j.target)
            .collect();
        assert_eq!(all, want);
        // Round trip, and the parts are the single jobs again.
        let body = combined[0].encode();
        assert!(body.contains("\"moreTargets\""), "{body}");
        let back = Job::decode(&body).unwrap();
        assert_eq!(back, combined[0]);
        assert_eq!(back.parts(), jobs[..3].to_vec());
        assert_ne!(back.deduplication_id(), jobs[0].deduplication_id());
        assert_eq!(back.group_id(), jobs[0].group_id());
        // 1 (or 0) per job: as they were.
        assert_eq!(Job::combine(jobs.clone(), 1), jobs);
    }

    #[test]
    fn a_job_for_several_destinations_is_checked_like_one_for_one() {
        let e = |v: &serde_json::Value| Job::decode(&v.to_string()).unwrap_err().to_string();
        let mut v: serde_json::Value = serde_json::from_str(&job().encode()).unwrap();
        v["moreTargets"] = serde_json::json!([target("333333333333")]);
        assert!(e(&v).contains("needs version 2"));
        v["version"] = 2.into();
        assert_eq!(Job::decode(&v.to_string()).unwrap().targets().count(), 2);
        // Over the bound.
        let many: Vec<JobTarget> = (0..MAX_JOB_TARGETS)
            .map(|i| target(&format!("{:012}", 400_000_000_000u64 + i as u64)))
            .collect();
        let mut over = v.clone();
        over["moreTargets"] = serde_json::to_value(&many).unwrap();
        assert!(e(&over).contains("at most 50"), "{}", e(&over));
        // A repeated destination, a bad name, a non-copy action, an empty list.
        let mut repeated = v.clone();
        repeated["moreTargets"] = serde_json::to_value([job().target]).unwrap();
        assert!(e(&repeated).contains("repeats"));
        let mut bad = v.clone();
        bad["moreTargets"][0]["repository"] = "UPPER".into();
        assert!(e(&bad).contains("`moreTargets[0].repository`"));
        let mut delete = v.clone();
        delete["action"] = "delete".into();
        assert!(e(&delete).contains("one destination"));
        let mut empty = v.clone();
        empty["moreTargets"] = serde_json::json!([]);
        assert!(e(&empty).contains("needs `moreTargets`"));
        // The part to try again: one destination is version 1 again.
        let fan = Job::decode(&v.to_string()).unwrap();
        let again = fan.for_targets(vec![target("333333333333")]);
        assert_eq!((again.version, again.more_targets.len()), (1, 0));
        assert_eq!(again.event_id, fan.event_id);
    }

    #[test]
    fn bad_bodies() {
        let e = |body: &str| Job::decode(body).unwrap_err().to_string();
        assert!(e("{nope").contains("not JSON"));
        assert!(e(r#"{"version": 3}"#).contains("unsupported version 3"));
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
