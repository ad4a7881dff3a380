//! The config is the authority: which targets an image goes to, and whether a job message
//! asks for something the loaded config allows.
//!
//! A job on the queue is a *request*. Anyone able to send to the queue could write any
//! message, so `replicate` never takes a destination's settings (role, external ID, KMS
//! key, creation template, referrers, deletes) from it: it looks the job's source image up
//! in its own config, and carries the job out only when that config sends this image to
//! exactly the job's destination registry and repository (and, for a delete, propagates
//! deletes there). The target it returns is the config's.

use std::sync::Arc;

use ferry::config::{DestinationIndex, Registry, ReplicationConfig, Selection, Target};

use crate::authority::Authority;
use crate::error::PipelineError;
use crate::job::{Job, JobAction};

/// Why a job was refused. The job is acknowledged, counted (`RejectedJobs`) and reported as
/// a `REJECTED` result event; it makes no registry or ECR request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// A short stable code: `not-source`, `not-configured`, `no-deletes`, `no-archive`,
    /// `config`.
    pub code: &'static str,
    /// What the config says, for the result event and the log.
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

/// Every target of the image `repository:tag` (`None`: digest-only) under `config`, which
/// must already be bound to the image's registry ([`ReplicationConfig::for_source`]). A
/// digest-only delete removes every tag of the image, so it applies to every rule selecting
/// the repository, whatever its tag filters; other deletes only to targets with `deletes`.
/// An archive or restore names a digest only (ECR's event has no tag), and applies to
/// every rule selecting the repository whose target follows the archive
/// (`archive: "follow"`).
pub fn targets(
    config: &ReplicationConfig,
    repository: &str,
    tag: Option<&str>,
    action: JobAction,
) -> Result<Vec<Target>, PipelineError> {
    targets_in(&DestinationIndex::new(config), repository, tag, action)
}

/// [`targets`] through the index of the bound config.
pub fn targets_in(
    index: &DestinationIndex,
    repository: &str,
    tag: Option<&str>,
    action: JobAction,
) -> Result<Vec<Target>, PipelineError> {
    let found = index
        .targets(repository, selection(tag, action))
        .map_err(|e| PipelineError::Config(e.to_string()))?;
    Ok(found.into_iter().filter(|t| wanted(action, t)).collect())
}

/// Which rules select the image for `action`: a digest-only delete or storage-class
/// change, and a referrer (whose subject's tags are not known here: its job copies only
/// where the subject already is), apply to every rule selecting the repository.
fn selection(tag: Option<&str>, action: JobAction) -> Selection<'_> {
    if ((action == JobAction::Delete || action.is_storage_class()) && tag.is_none())
        || action == JobAction::Referrer
    {
        Selection::AnyTag
    } else {
        Selection::of(tag)
    }
}

/// Whether a target of a selecting rule takes `action`.
fn wanted(action: JobAction, target: &Target) -> bool {
    match action {
        JobAction::Copy => true,
        JobAction::Delete => target.deletes,
        JobAction::Referrer => target.referrers,
        JobAction::Archive | JobAction::Restore => target.archive,
    }
}

/// The config's target for `job`, or why the config does not allow it. Builds the
/// config's index for this one question: a caller with many jobs keeps an [`Authority`]
/// ([`authorize_in`]).
pub fn authorize(job: &Job, config: &ReplicationConfig) -> Result<Target, Rejected> {
    authorize_in(job, &Authority::new(Arc::new(config.clone())))
}

/// [`authorize`] through `authority`'s indexes: looks only at the destinations of the
/// job's target registry.
pub fn authorize_in(job: &Job, authority: &Authority) -> Result<Target, Rejected> {
    let source = Registry::from_host(&job.source.registry);
    let Some(bound) = authority.for_source(&source) else {
        return Err(Rejected {
            code: "not-source",
            reason: format!(
                "{} is not a source registry of the config",
                job.source.registry
            ),
        });
    };
    let image = match (&job.source.tag, &job.source.digest) {
        (Some(t), _) => format!("{}:{t}", job.source.repository),
        (None, Some(d)) => format!("{}@{d}", job.source.repository),
        (None, None) => job.source.repository.clone(),
    };
    let destination = Registry::from_host(&job.target.registry);
    let find = |action: JobAction| -> Result<Option<Target>, Rejected> {
        let found = bound
            .target(
                &job.source.repository,
                selection(job.source.tag.as_deref(), action),
                &destination,
                &job.target.repository,
            )
            .map_err(|e| Rejected {
                code: "config",
                reason: PipelineError::Config(e.to_string()).to_string(),
            })?;
        Ok(found.filter(|t| wanted(action, t)))
    };
    if let Some(target) = find(job.action)? {
        return Ok(target);
    }
    let place = format!("{}/{}", job.target.registry, job.target.repository);
    Err(match job.action {
        JobAction::Delete if find(JobAction::Copy)?.is_some() => Rejected {
            code: "no-deletes",
            reason: format!("the config does not propagate deletes of {image} to {place}"),
        },
        JobAction::Archive | JobAction::Restore if followable(&bound, job, &destination) => {
            Rejected {
                code: "no-archive",
                reason: format!(
                    "the config does not follow the archive (archive: \"follow\") of {image} to {place}"
                ),
            }
        }
        _ => Rejected {
            code: "not-configured",
            reason: format!("the config does not replicate {image} to {place}"),
        },
    })
}

/// Whether a rule sends the job's repository to its destination, and would follow the
/// archive there if it said `archive: "follow"`: a target of any rule selecting the
/// repository, whatever its flags.
fn followable(bound: &DestinationIndex, job: &Job, destination: &Registry) -> bool {
    bound
        .target(
            &job.source.repository,
            Selection::AnyTag,
            destination,
            &job.target.repository,
        )
        .is_ok_and(|t| t.is_some())
}

#[cfg(test)]
mod equivalence;

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
    const DST: &str = "222222222222.dkr.ecr.us-west-2.amazonaws.com";

    fn config(source: &str) -> ReplicationConfig {
        ReplicationConfig::from_json(&format!(
            r#"{{{source} "rules": [
                {{"destinations": [{{"registryId": "222222222222", "region": "us-west-2",
                   "roleArn": "arn:aws:iam::222222222222:role/ferry", "externalId": "from-config",
                   "kmsKey": "arn:aws:kms:us-west-2:222222222222:key/1", "repositoryName": "dr/{{repository}}"}}],
                 "repositoryFilters": [{{"filter": "team/", "filterType": "PREFIX_MATCH"}}],
                 "excludeTagFilters": [{{"filter": "*-dev", "filterType": "WILDCARD"}}]}}]}}"#
        ))
        .unwrap()
    }

    fn pinned() -> ReplicationConfig {
        config(r#""source": {"registryId": "111111111111", "region": "us-east-1"},"#)
    }

    fn job(action: JobAction, repository: &str, tag: Option<&str>, target: &str) -> Job {
        super::equivalence::job(action, SRC, repository, tag, DST, target)
    }

    #[test]
    fn the_configs_target_with_its_settings() {
        let t = authorize(
            &job(JobAction::Copy, "team/api", Some("v1"), "dr/team/api"),
            &pinned(),
        )
        .unwrap();
        assert_eq!(t.repository, "dr/team/api");
        assert_eq!(
            t.destination.role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/ferry")
        );
        assert_eq!(t.destination.external_id.as_deref(), Some("from-config"));
        assert_eq!(
            t.destination.kms_key.as_deref(),
            Some("arn:aws:kms:us-west-2:222222222222:key/1")
        );
    }

    #[test]
    fn refuses_what_the_config_does_not_select() {
        let c = pinned();
        let code = |j: Job| authorize(&j, &c).unwrap_err().code;
        // Another destination repository, an unselected repository or tag.
        assert_eq!(
            code(job(JobAction::Copy, "team/api", Some("v1"), "other/repo")),
            "not-configured"
        );
        assert_eq!(
            code(job(
                JobAction::Copy,
                "secret/db",
                Some("v1"),
                "dr/secret/db"
            )),
            "not-configured"
        );
        assert_eq!(
            code(job(
                JobAction::Copy,
                "team/api",
                Some("v1-dev"),
                "dr/team/api"
            )),
            "not-configured"
        );
        // A digest-only copy needs a rule with `untagged`.
        assert_eq!(
            code(job(JobAction::Copy, "team/api", None, "dr/team/api")),
            "not-configured"
        );
        // Another destination registry with the same repository.
        let mut elsewhere = job(JobAction::Copy, "team/api", Some("v1"), "dr/team/api");
        elsewhere.target.registry = "333333333333.dkr.ecr.us-west-2.amazonaws.com".into();
        assert_eq!(code(elsewhere), "not-configured");
        // Another source registry.
        let mut foreign = job(JobAction::Copy, "team/api", Some("v1"), "dr/team/api");
        foreign.source.registry = "999999999999.dkr.ecr.us-east-1.amazonaws.com".into();
        assert_eq!(code(foreign), "not-source");
    }

    #[test]
    fn deletes_only_where_the_rule_propagates_them() {
        let delete = job(JobAction::Delete, "team/api", Some("v1"), "dr/team/api");
        let refused = authorize(&delete, &pinned()).unwrap_err();
        assert_eq!(refused.code, "no-deletes");
        assert!(refused.reason.contains("team/api:v1"), "{refused}");
        let mut with = pinned();
        with.rules[0].deletes = true;
        assert!(authorize(&delete, &with).unwrap().deletes);
        let by_digest = job(JobAction::Delete, "team/api", None, "dr/team/api");
        assert!(authorize(&by_digest, &with).is_ok());
    }

    #[test]
    fn unpinned_configs_bind_the_jobs_own_account() {
        let account = config(r#""source": {"registryId": "111111111111"},"#);
        assert!(
            authorize(
                &job(JobAction::Copy, "team/api", Some("v1"), "dr/team/api"),
                &account
            )
            .is_ok()
        );
        let mut b = job(JobAction::Copy, "team/api", Some("v1"), "dr/team/api");
        b.source.registry = "999999999999.dkr.ecr.us-east-1.amazonaws.com".into();
        assert_eq!(authorize(&b, &account).unwrap_err().code, "not-source");
    }
}
