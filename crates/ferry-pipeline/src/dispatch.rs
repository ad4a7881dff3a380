//! The dispatch handler: an ECR Image Action event in, one job per destination out, sent to
//! the FIFO jobs queue.
//!
//! - Only `SUCCESS` PUSH events, DELETE events for rules with `deletes`, and
//!   UPDATE_STORAGE_CLASS events (archive, restore: by digest, whatever the rule's tag
//!   filters) for rules with `archive: "follow"`, make jobs.
//! - Digest-only pushes (each child of a multi-arch push) make jobs only for rules with
//!   `untagged`.
//! - An ECR Referrer Action PUSH (a signature ECR managed signing pushed after the image,
//!   or any late referrer) makes one `referrer` job per target of every rule that selects
//!   the repository and copies referrers, whatever its tag filters: the subject's tags are
//!   not in the event. `replicate` resolves the subject at the source and copies its
//!   referrers only to a destination that already holds the subject, so the subject's
//!   rules decide where a signature goes; where the subject is not there yet, the
//!   subject's own copy brings it. The digest-only ECR Image Action push of the same
//!   signature stays under the `untagged` rule above.
//! - Only events from the config's source: the fields of `source` the config names must
//!   match the event's account and region, and the ones it leaves out (a bare
//!   `describe-registry` output names no region) are bound from the event, so
//!   `{registryId}`/`{region}` render as the event's own registry's, never another's.
//! - Loop guard: a push Ferry itself made is recognised and not dispatched again. With a
//!   config naming its source registry, events from any other registry are dropped (a
//!   destination region forwarding its events sees Ferry's copies). An event from the
//!   source registry is Ferry's own copy when its repository is the rendered
//!   `repositoryName` of some source repository that the rules send there.
//! - A malformed event is logged with its id, counted (`MalformedEvents`) and answered
//!   with an error naming the problem; it is not turned into jobs, so it cannot loop.

use serde::Serialize;

use ferry::config::{Registry, ReplicationConfig, SourceParts, Target};

use crate::authorize::targets;
use crate::error::PipelineError;
use crate::event::{ActionType, ImageAction, Incoming, StorageClass, parse_event};
use crate::job::{Job, JobAction, JobSource, Origin};
use crate::metrics::{Metrics, Record, Unit};
use crate::queue::JobQueue;

/// Why an event made no job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ignored {
    /// Not an ECR Image Action (another source or detail type).
    NotImageAction,
    /// ECR reported `FAILURE`.
    NotSuccess,
    /// An action type (or storage class) Ferry does not replicate.
    ActionType,
    /// A digest-only push and no rule with `untagged` selects it.
    Untagged,
    /// No rule selects the image.
    NoRule,
    /// A delete, and no selecting rule has `deletes`.
    NoDeleteRule,
    /// A referrer push (ECR Referrer Action), and no rule selecting the repository
    /// copies referrers.
    NoReferrerRule,
    /// An archive or restore (UPDATE_STORAGE_CLASS), and no selecting rule has
    /// `archive: "follow"`.
    NoArchiveRule,
    /// The event is from a registry the config does not replicate from.
    NotSource,
    /// The push is Ferry's own copy (loop guard).
    OwnCopy,
    /// The tag is over 128 characters (ECR allows 300): no registry client can name it,
    /// so it is reported (`InvalidNames`) and skipped.
    TagTooLong,
}

/// What dispatch did with one event (the function's response).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispatched {
    /// The event id.
    pub event_id: Option<String>,
    /// The jobs sent.
    pub jobs: Vec<Job>,
    /// Why no job was made, if none was.
    pub ignored: Option<Ignored>,
}

/// Handle one event: parse, filter, match the config, send the jobs.
pub async fn dispatch(
    event: serde_json::Value,
    config: &ReplicationConfig,
    queue: &dyn JobQueue,
    metrics: &Metrics,
) -> Result<Dispatched, PipelineError> {
    let incoming = match parse_event(event) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "malformed event");
            metrics.emit(
                Record::new()
                    .metric("MalformedEvents", Unit::Count, 1.0)
                    .property("error", e.to_string()),
            );
            return Err(e);
        }
    };
    let action = match incoming {
        Incoming::Other { id, kind } => {
            tracing::info!(
                event_id = id.as_deref().unwrap_or("unknown"),
                kind,
                "not an ECR Image Action: ignored"
            );
            return Ok(Dispatched {
                event_id: id,
                jobs: Vec::new(),
                ignored: Some(Ignored::NotImageAction),
            });
        }
        Incoming::TagTooLong {
            id,
            repository,
            length,
        } => {
            tracing::warn!(event_id = %id, %repository, length, code = "tag-too-long", "tag of {length} characters (ECR allows 300, the distribution grammar 128): skipped");
            metrics.emit(
                Record::new()
                    .metric("InvalidNames", Unit::Count, 1.0)
                    .property("code", "tag-too-long")
                    .property("repository", repository),
            );
            return Ok(Dispatched {
                event_id: Some(id),
                jobs: Vec::new(),
                ignored: Some(Ignored::TagTooLong),
            });
        }
        Incoming::Image(a) => a,
    };
    let event_id = Some(action.event_id.clone());
    let jobs = match jobs_for(&action, config)? {
        Ok(jobs) => jobs,
        Err(why) => {
            tracing::info!(event_id = %action.event_id, repository = %action.repository, tag = ?action.tag, reason = ?why, "no job");
            return Ok(Dispatched {
                event_id,
                jobs: Vec::new(),
                ignored: Some(why),
            });
        }
    };
    queue.send(&jobs).await?;
    for j in &jobs {
        tracing::info!(event_id = %action.event_id, action = j.action.as_str(), destination = %j.destination(), tag = ?j.source.tag, digest = ?j.source.digest, "job sent");
    }
    Ok(Dispatched {
        event_id,
        jobs,
        ignored: None,
    })
}

/// The jobs an image action makes, or why it makes none. Fails only on a config whose
/// destination repository name cannot be rendered for this repository.
pub fn jobs_for(
    action: &ImageAction,
    config: &ReplicationConfig,
) -> Result<Result<Vec<Job>, Ignored>, PipelineError> {
    if !action.succeeded {
        return Ok(Err(Ignored::NotSuccess));
    }
    // Fields of `source` the config names must match the event's registry; the ones it
    // leaves out are the event's own (never another account's).
    let loaded = config;
    let Some(config) = config.for_source(&action.registry) else {
        return Ok(Err(Ignored::NotSource));
    };
    let config = config.as_ref();
    let kind = match action.action_type {
        ActionType::Push if action.referrer => JobAction::Referrer,
        ActionType::Push => JobAction::Copy,
        // A referrer's delete follows its subject (deleting an image removes its
        // referrers at ECR); a referrer deleted alone is not propagated.
        ActionType::Delete if action.referrer => return Ok(Err(Ignored::ActionType)),
        ActionType::Delete => JobAction::Delete,
        ActionType::UpdateStorageClass => match action.storage_class {
            Some(StorageClass::Archive) => JobAction::Archive,
            Some(StorageClass::Standard) => JobAction::Restore,
            _ => return Ok(Err(Ignored::ActionType)),
        },
        ActionType::Other => return Ok(Err(Ignored::ActionType)),
    };
    let tag = if kind == JobAction::Referrer {
        None
    } else {
        action.tag.as_deref()
    };
    let targets = targets(config, &action.repository, tag, kind)?;
    if own_copy(
        loaded,
        &action.registry,
        &action.repository,
        action.tag.as_deref(),
    )? {
        return Ok(Err(Ignored::OwnCopy));
    }
    let source = JobSource {
        registry: action.registry.host(),
        repository: action.repository.clone(),
        tag: tag.map(str::to_string),
        digest: action.digest.clone(),
    };
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| {
            !(t.destination.registry == action.registry && t.repository == action.repository)
        })
        .collect();
    if targets.is_empty() {
        return Ok(Err(match (kind, &action.tag) {
            (JobAction::Delete, _)
                if any_rule(config, &action.repository, action.tag.as_deref()) =>
            {
                Ignored::NoDeleteRule
            }
            (JobAction::Archive | JobAction::Restore, _)
                if any_rule(config, &action.repository, None) =>
            {
                Ignored::NoArchiveRule
            }
            (JobAction::Copy, None) => Ignored::Untagged,
            (JobAction::Referrer, _) if any_rule(config, &action.repository, None) => {
                Ignored::NoReferrerRule
            }
            _ => Ignored::NoRule,
        }));
    }
    Ok(Ok(targets
        .iter()
        .map(|t| {
            Job::new(
                kind,
                source.clone(),
                t,
                &action.event_id,
                action.event_time,
                Origin::Event,
            )
        })
        .collect()))
}

fn any_rule(config: &ReplicationConfig, repository: &str, tag: Option<&str>) -> bool {
    config
        .rules
        .iter()
        .any(|r| r.repository_selected(repository) && tag.is_none_or(|t| r.tag_selected(t)))
}

/// Whether `repository` in `registry` is where the rules copy some source repository: then
/// a push there is Ferry's own copy. The source repository (and, where the configuration
/// leaves the source to be bound from each event, the source account and region) is
/// recovered by inverting each destination's `repositoryName` template; the configuration
/// bound to that source must send it to exactly this place.
///
/// `config` is the configuration as loaded (organization destinations resolved), not the
/// one bound to the event's registry: binding drops the event's own account from the
/// organization's destinations, and a copy *into* that account is exactly what must be
/// recognised here, whatever account it came from.
pub fn own_copy(
    config: &ReplicationConfig,
    registry: &Registry,
    repository: &str,
    tag: Option<&str>,
) -> Result<bool, PipelineError> {
    let destinations = config
        .destinations()
        .map_err(|e| PipelineError::Config(e.to_string()))?;
    let pinned = config.source.clone().unwrap_or_default();
    for d in destinations.iter().filter(|d| d.registry == *registry) {
        let parts = match &d.template {
            None => Some(SourceParts {
                repository: repository.to_string(),
                ..SourceParts::default()
            }),
            Some(t) => t.source_parts_of(repository),
        };
        let Some(parts) = parts else { continue };
        // The registry the copy came from: the source as the config names it, completed by
        // what the name says of it, else by the event's own registry.
        let from = match (config.source_registry(), registry) {
            (Some(source), _) => source,
            (
                None,
                Registry::Ecr {
                    registry_id,
                    region,
                },
            ) => Registry::Ecr {
                registry_id: parts
                    .registry_id
                    .or(pinned.registry_id.clone())
                    .unwrap_or_else(|| registry_id.clone()),
                region: parts
                    .region
                    .or(pinned.region.clone())
                    .unwrap_or_else(|| region.clone()),
            },
            (None, Registry::Oci { .. }) => registry.clone(),
        };
        // The same name in the same registry is only a copy when the source is elsewhere.
        if parts.repository == repository && from == *registry {
            continue;
        }
        let Some(bound) = config.bind_source(&from) else {
            continue;
        };
        let Ok(targets) = bound.destinations_for(&parts.repository, tag) else {
            continue;
        };
        if targets
            .iter()
            .any(|t| t.destination.registry == *registry && t.repository == repository)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod loop_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use ferry::Digest;

    const SRC: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";

    fn config(extra: &str) -> ReplicationConfig {
        ReplicationConfig::from_json(&format!(
            r#"{{"source": {{"registryId": "111111111111", "region": "us-east-1"}},
                "rules": [
                  {{"destinations": [{{"registryId": "111111111111", "region": "eu-west-1"}},
                                     {{"registryId": "222222222222", "region": "us-west-2"}}],
                    "repositoryFilters": [{{"filter": "team/", "filterType": "PREFIX_MATCH"}}]{extra}}},
                  {{"destinations": [{{"registryId": "111111111111", "region": "us-east-1", "repositoryName": "mirror/{{repository}}"}}],
                    "repositoryFilters": [{{"filter": "team/", "filterType": "PREFIX_MATCH"}}]}}
                ]}}"#
        ))
        .unwrap()
    }

    fn action(kind: ActionType, repository: &str, tag: Option<&str>) -> ImageAction {
        ImageAction {
            event_id: "ev".into(),
            event_time: "2026-01-01T00:00:00Z".parse().unwrap(),
            registry: Registry::from_host(SRC),
            action_type: kind,
            succeeded: true,
            repository: repository.into(),
            tag: tag.map(str::to_string),
            digest: Some(Digest::of(b"x")),
            referrer: false,
            storage_class: None,
        }
    }

    fn destinations(r: Result<Result<Vec<Job>, Ignored>, PipelineError>) -> Vec<String> {
        r.unwrap().unwrap().iter().map(Job::destination).collect()
    }

    #[test]
    fn push_fans_out_one_job_per_destination() {
        let jobs = destinations(jobs_for(
            &action(ActionType::Push, "team/api", Some("v1")),
            &config(""),
        ));
        assert_eq!(
            jobs,
            [
                "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team/api",
                "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api",
                "111111111111.dkr.ecr.us-east-1.amazonaws.com/mirror/team/api",
            ]
        );
    }

    #[test]
    fn filters() {
        let c = config("");
        let mut failed = action(ActionType::Push, "team/api", Some("v1"));
        failed.succeeded = false;
        assert_eq!(jobs_for(&failed, &c).unwrap(), Err(Ignored::NotSuccess));
        assert_eq!(
            jobs_for(
                &action(ActionType::UpdateStorageClass, "team/api", Some("v1")),
                &c
            )
            .unwrap(),
            Err(Ignored::ActionType)
        );
        assert_eq!(
            jobs_for(&action(ActionType::Push, "team/api", None), &c).unwrap(),
            Err(Ignored::Untagged)
        );
        assert_eq!(
            jobs_for(&action(ActionType::Push, "other", Some("v1")), &c).unwrap(),
            Err(Ignored::NoRule)
        );
        assert_eq!(
            jobs_for(&action(ActionType::Delete, "team/api", Some("v1")), &c).unwrap(),
            Err(Ignored::NoDeleteRule)
        );
        let mut elsewhere = action(ActionType::Push, "team/api", Some("v1"));
        elsewhere.registry = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(jobs_for(&elsewhere, &c).unwrap(), Err(Ignored::NotSource));
    }

    #[test]
    fn untagged_and_deletes_follow_the_rule() {
        let c = config(r#", "untagged": true, "deletes": true"#);
        assert_eq!(
            destinations(jobs_for(&action(ActionType::Push, "team/api", None), &c)).len(),
            2,
            "only the rule with untagged"
        );
        let deletes = jobs_for(&action(ActionType::Delete, "team/api", Some("v1")), &c)
            .unwrap()
            .unwrap();
        assert_eq!(deletes.len(), 2, "only the rule with deletes");
        assert!(
            deletes
                .iter()
                .all(|j| j.action == JobAction::Delete && j.source.tag.as_deref() == Some("v1"))
        );
        let by_digest = jobs_for(&action(ActionType::Delete, "team/api", None), &c)
            .unwrap()
            .unwrap();
        assert_eq!(by_digest.len(), 2);
    }

    #[test]
    fn loop_guard_recognises_ferrys_own_copies() {
        let c = config("");
        // Ferry's copy of team/api into the source registry as mirror/team/api is selected
        // by no rule here (prefix team/), and is also recognised as a copy.
        assert!(own_copy(&c, &Registry::from_host(SRC), "mirror/team/api", Some("v1")).unwrap());
        assert!(!own_copy(&c, &Registry::from_host(SRC), "team/api", Some("v1")).unwrap());
        assert!(!own_copy(&c, &Registry::from_host(SRC), "mirror/other", Some("v1")).unwrap());
        // A rule selecting everything would loop without the guard.
        let everything = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"destinations": [{"registryId": "111111111111", "region": "eu-west-1"},
                                            {"registryId": "111111111111", "region": "us-east-1", "repositoryName": "dr-{repository}-x"}],
                           "repositoryFilters": [{"filter": "app*", "filterType": "WILDCARD"}]}]}"#,
        )
        .unwrap();
        let push = action(ActionType::Push, "dr-app-x", Some("v1"));
        assert!(own_copy(&everything, &push.registry, "dr-app-x", Some("v1")).unwrap());
        assert_eq!(jobs_for(&push, &everything).unwrap(), Err(Ignored::OwnCopy));
        assert_eq!(
            destinations(jobs_for(
                &action(ActionType::Push, "app", Some("v1")),
                &everything
            ))
            .len(),
            2
        );
    }

    #[test]
    fn unpinned_sources_bind_the_events_registry() {
        // A describe-registry output: the account is named, the region is not.
        let c = ReplicationConfig::from_json(
            r#"{"registryId": "111111111111", "replicationConfiguration": {"rules": [
                {"destinations": [{"registryId": "222222222222", "region": "us-west-2",
                                   "repositoryName": "{registryId}/{region}/{repository}"}]}]}}"#,
        )
        .unwrap();
        let mut west = action(ActionType::Push, "app", Some("v1"));
        west.registry = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(
            destinations(jobs_for(&west, &c)),
            ["222222222222.dkr.ecr.us-west-2.amazonaws.com/111111111111/eu-west-1/app"]
        );
        let mut other = action(ActionType::Push, "app", Some("v1"));
        other.registry = Registry::from_host("333333333333.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(
            jobs_for(&other, &c).unwrap(),
            Err(Ignored::NotSource),
            "another account's push is never copied under this account's names"
        );
    }

    #[tokio::test]
    async fn a_signature_push_reaches_every_destination_of_its_repository() {
        // The recorded ECR Referrer Action (testdata/events), moved to this test's source.
        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../testdata/events/ecr-referrer-action.json"
        ))
        .unwrap();
        event["account"] = serde_json::json!("111111111111");
        // The rules' tag filters do not apply (the subject's tags are not in the event);
        // a rule with `referrers: false` gets no job.
        let c = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [
                  {"destinations": [{"registryId": "111111111111", "region": "eu-west-1"},
                                    {"registryId": "222222222222", "region": "us-west-2"}],
                   "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
                   "tagFilters": [{"filter": "release-", "filterType": "PREFIX_MATCH"}]},
                  {"destinations": [{"registryId": "333333333333", "region": "us-west-2"}],
                   "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
                   "referrers": false},
                  {"destinations": [{"registryId": "444444444444", "region": "us-west-2"}],
                   "repositoryFilters": [{"filter": "other/", "filterType": "PREFIX_MATCH"}]}
                ]}"#,
        )
        .unwrap();
        let queue = crate::queue::MemoryQueue::default();
        let metrics = Metrics::memory();
        let d = dispatch(event.clone(), &c, &queue, &metrics).await.unwrap();
        let mut got: Vec<(String, &'static str)> = d
            .jobs
            .iter()
            .map(|j| (j.destination(), j.action.as_str()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (
                    "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team/api".to_string(),
                    "referrer"
                ),
                (
                    "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api".to_string(),
                    "referrer"
                ),
            ]
        );
        assert!(d.jobs.iter().all(|j| j.source.tag.is_none()
            && j.source.digest.as_ref().map(|x| x.as_str())
                == event["detail"]["image-digest"].as_str()));
        // Every job it makes is one the config authorizes (replicate checks again).
        for j in &d.jobs {
            let t = crate::authorize::authorize(j, &c).unwrap();
            assert!(t.referrers);
        }
        // A forged referrer job to the destination whose rule has `referrers: false` is
        // refused.
        let no_referrers = c
            .destinations_for("team/api", Some("v1"))
            .unwrap()
            .into_iter()
            .find(|t| !t.referrers)
            .unwrap();
        let mut forged = d.jobs[0].clone();
        forged.target = crate::job::JobTarget::from_target(&no_referrers);
        assert_eq!(
            crate::authorize::authorize(&forged, &c).unwrap_err().code,
            "not-configured"
        );
        // A repository no rule with referrers selects: no job.
        event["detail"]["repository-name"] = serde_json::json!("solo/app");
        let d = dispatch(event, &c, &queue, &metrics).await.unwrap();
        assert_eq!(d.ignored, Some(Ignored::NoRule));
    }

    #[tokio::test]
    async fn a_tag_over_128_characters_is_reported_and_skipped() {
        let c = config("");
        let queue = crate::queue::MemoryQueue::default();
        let metrics = Metrics::memory();
        let event = serde_json::json!({
            "version": "0", "id": "long-1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "111111111111", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"action-type": "PUSH", "result": "SUCCESS",
            "repository-name": "team/api", "image-tag": "t".repeat(200),
            "image-digest": Digest::of(b"x").to_string()}});
        let d = dispatch(event, &c, &queue, &metrics).await.unwrap();
        assert_eq!((d.jobs.len(), d.ignored), (0, Some(Ignored::TagTooLong)));
        assert!(queue.jobs().is_empty(), "no job that could never succeed");
        assert_eq!(metrics.sum("InvalidNames", &[]), 1.0);
    }

    #[tokio::test]
    async fn storage_class_events_make_archive_and_restore_jobs_for_following_rules() {
        let event = |text: &str| -> serde_json::Value {
            let mut e: serde_json::Value = serde_json::from_str(text).unwrap();
            e["account"] = "111111111111".into();
            e
        };
        let archive = event(include_str!(
            "../../../testdata/events/ecr-image-action-archive.json"
        ));
        let restore = event(include_str!(
            "../../../testdata/events/ecr-image-action-restore.json"
        ));
        let queue = crate::queue::MemoryQueue::default();
        let metrics = Metrics::memory();
        // No rule follows the archive: no job.
        let d = dispatch(archive.clone(), &config(""), &queue, &metrics)
            .await
            .unwrap();
        assert_eq!((d.jobs.len(), d.ignored), (0, Some(Ignored::NoArchiveRule)));
        // The first rule follows it: one job per destination of that rule, by digest (the
        // event names no tag, and the rule's tag filters do not apply).
        let c = config(
            r#", "archive": "follow", "tagFilters": [{"filter": "v*", "filterType": "WILDCARD"}]"#,
        );
        let d = dispatch(archive, &c, &queue, &metrics).await.unwrap();
        let jobs: Vec<_> = d.jobs.iter().map(|j| (j.action, j.destination())).collect();
        assert_eq!(
            jobs,
            [
                (
                    JobAction::Archive,
                    "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team/api".to_string()
                ),
                (
                    JobAction::Archive,
                    "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api".to_string()
                ),
            ]
        );
        assert!(
            d.jobs
                .iter()
                .all(|j| j.source.tag.is_none() && j.source.digest.is_some())
        );
        let d = dispatch(restore, &c, &queue, &metrics).await.unwrap();
        assert!(d.jobs.len() == 2 && d.jobs.iter().all(|j| j.action == JobAction::Restore));
        assert_eq!(queue.jobs().len(), 4);
        // A job round-trips through the queue's encoding.
        let j = &d.jobs[0];
        assert_eq!(&Job::decode(&j.encode()).unwrap(), j);
    }
}
