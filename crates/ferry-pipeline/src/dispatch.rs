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

use std::sync::Arc;

use serde::Serialize;

use ferry::config::{Registry, ReplicationConfig, Selection, SourceParts, Target};
use ferry::gate::Verdict;

use crate::authority::Authority;
use crate::authorize::targets_in;
use crate::error::PipelineError;
use crate::event::{ActionType, ImageAction, Incoming, StorageClass, parse_event};
use crate::gate::Gatekeeper;
use crate::job::{Job, JobAction, JobSource, Origin};
use crate::metrics::{Metrics, Record, Unit};
use crate::queue::JobQueue;
use crate::result::ResultPublisher;

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
    /// A scan completed, and no rule with gates selects the image (an ungated image was
    /// sent on its push).
    NoGatedRule,
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
    /// Copies a promotion gate holds (not sent; a `HELD` result each).
    #[serde(skip_serializing_if = "is_zero")]
    pub held: usize,
    /// Copies a promotion gate blocks (not sent; a `BLOCKED` result each).
    #[serde(skip_serializing_if = "is_zero")]
    pub blocked: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What dispatch judges promotion gates with: the evaluator, and where the `HELD` and
/// `BLOCKED` results go (`None`: the log and metrics only).
#[derive(Clone, Copy)]
pub struct GateStage<'a> {
    /// Judges each gated job.
    pub keeper: &'a dyn Gatekeeper,
    /// Publishes the results of the jobs a gate stopped.
    pub results: Option<&'a dyn ResultPublisher>,
}

/// Handle one event: parse, filter, match the config, send the jobs. Indexes the config
/// for this one event: a caller handling many keeps an [`Authority`] ([`dispatch_in`]).
pub async fn dispatch(
    event: serde_json::Value,
    config: &ReplicationConfig,
    queue: &dyn JobQueue,
    metrics: &Metrics,
) -> Result<Dispatched, PipelineError> {
    let authority = Authority::new(Arc::new(config.clone()));
    dispatch_in(event, &authority, queue, metrics).await
}

/// [`dispatch`] through `authority`'s indexes. Without a [`GateStage`], gated jobs are
/// sent as they are and replicate judges them.
pub async fn dispatch_in(
    event: serde_json::Value,
    authority: &Authority,
    queue: &dyn JobQueue,
    metrics: &Metrics,
) -> Result<Dispatched, PipelineError> {
    dispatch_gated(event, authority, queue, metrics, None).await
}

/// [`dispatch_in`], judging the promotion gates of gated copies with `gates` before they
/// are sent ([`crate::gate`]).
pub async fn dispatch_gated(
    event: serde_json::Value,
    authority: &Authority,
    queue: &dyn JobQueue,
    metrics: &Metrics,
    gates: Option<GateStage<'_>>,
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
            return Ok(Dispatched::ignored(id, Ignored::NotImageAction));
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
            return Ok(Dispatched::ignored(Some(id), Ignored::TagTooLong));
        }
        Incoming::Scan(scan) => {
            let event_id = scan.event_id.clone();
            let pairs = match scan::scan_jobs(&scan, authority)? {
                Ok(pairs) => pairs,
                Err(why) => {
                    tracing::info!(%event_id, repository = %scan.repository, digest = %scan.digest, reason = ?why, "scan completed: no job");
                    return Ok(Dispatched::ignored(Some(event_id), why));
                }
            };
            return send(event_id, pairs, queue, metrics, gates).await;
        }
        Incoming::Image(a) => a,
    };
    let found = targeted_jobs(&action, authority)?;
    // A signature pushed after its image: the subject's gated copies are judged again.
    let released = match gates {
        Some(stage) if action.referrer => scan::referrer_release(&action, authority, stage).await?,
        _ => Vec::new(),
    };
    let pairs = match found {
        Ok(mut pairs) => {
            pairs.extend(released);
            pairs
        }
        Err(_) if !released.is_empty() => released,
        Err(why) => {
            tracing::info!(event_id = %action.event_id, repository = %action.repository, tag = ?action.tag, reason = ?why, "no job");
            return Ok(Dispatched::ignored(Some(action.event_id.clone()), why));
        }
    };
    send(action.event_id.clone(), pairs, queue, metrics, gates).await
}

impl Dispatched {
    fn ignored(event_id: Option<String>, why: Ignored) -> Dispatched {
        Dispatched {
            event_id,
            jobs: Vec::new(),
            ignored: Some(why),
            held: 0,
            blocked: 0,
        }
    }
}

/// Judges the gated jobs (with a stage), reports those a gate stops, sends the rest.
async fn send(
    event_id: String,
    pairs: Vec<(Job, Target)>,
    queue: &dyn JobQueue,
    metrics: &Metrics,
    gates: Option<GateStage<'_>>,
) -> Result<Dispatched, PipelineError> {
    let mut jobs = Vec::with_capacity(pairs.len());
    let mut stopped = Vec::new();
    let (mut held, mut blocked) = (0, 0);
    for (job, target) in pairs {
        let verdict = match gates {
            Some(stage) if crate::gate::gated(&job, &target) => {
                crate::gate::judge(stage.keeper, &job, &target).await
            }
            _ => Verdict::Pass,
        };
        match crate::gate::gate_result(&job, &verdict) {
            None => jobs.push(job),
            Some(result) => {
                if matches!(verdict, Verdict::Held(_)) {
                    held += 1;
                } else {
                    blocked += 1;
                }
                tracing::info!(%event_id, destination = %job.destination(), tag = ?job.source.tag, digest = ?job.source.digest, verdict = verdict.as_str(), "promotion gate: no job");
                stopped.push(result);
            }
        }
    }
    crate::gate::report(&stopped, gates.and_then(|g| g.results), metrics).await;
    queue.send(&jobs).await?;
    for j in &jobs {
        tracing::info!(%event_id, action = j.action.as_str(), destination = %j.destination(), tag = ?j.source.tag, digest = ?j.source.digest, "job sent");
    }
    Ok(Dispatched {
        event_id: Some(event_id),
        jobs,
        ignored: None,
        held,
        blocked,
    })
}

/// The jobs an image action makes, or why it makes none. Fails only on a config whose
/// destination repository name cannot be rendered for this repository.
pub fn jobs_for(
    action: &ImageAction,
    config: &ReplicationConfig,
) -> Result<Result<Vec<Job>, Ignored>, PipelineError> {
    jobs_in(action, &Authority::new(Arc::new(config.clone())))
}

/// [`jobs_for`] through `authority`'s indexes: linear in the jobs it makes.
pub fn jobs_in(
    action: &ImageAction,
    authority: &Authority,
) -> Result<Result<Vec<Job>, Ignored>, PipelineError> {
    Ok(targeted_jobs(action, authority)?
        .map(|pairs| pairs.into_iter().map(|(job, _)| job).collect()))
}

/// [`jobs_in`], each job with the config's target it was made for.
pub(crate) fn targeted_jobs(
    action: &ImageAction,
    authority: &Authority,
) -> Result<Result<Vec<(Job, Target)>, Ignored>, PipelineError> {
    if !action.succeeded {
        return Ok(Err(Ignored::NotSuccess));
    }
    // Fields of `source` the config names must match the event's registry; the ones it
    // leaves out are the event's own (never another account's). Binding changes the
    // source and the destinations, never the rules' filters.
    let Some(bound) = authority.for_source(&action.registry) else {
        return Ok(Err(Ignored::NotSource));
    };
    let config = authority.config().as_ref();
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
    let targets = targets_in(&bound, &action.repository, tag, kind)?;
    if own_copy_in(
        authority,
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
        .into_iter()
        .map(|t| {
            let job = Job::new(
                kind,
                source.clone(),
                &t,
                &action.event_id,
                action.event_time,
                Origin::Event,
            );
            (job, t)
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
    own_copy_in(
        &Authority::new(Arc::new(config.clone())),
        registry,
        repository,
        tag,
    )
}

/// [`own_copy`] through `authority`'s indexes: looks only at the destinations of
/// `registry`.
pub fn own_copy_in(
    authority: &Authority,
    registry: &Registry,
    repository: &str,
    tag: Option<&str>,
) -> Result<bool, PipelineError> {
    let config = authority.config().as_ref();
    let loaded = authority.loaded();
    let destinations = loaded
        .destinations_at(registry)
        .map_err(|e| PipelineError::Config(e.to_string()))?;
    for d in destinations {
        let parts = match &d.template {
            None => Some(SourceParts {
                repository: repository.to_string(),
                ..SourceParts::default()
            }),
            Some(t) => t.source_parts_of(repository),
        };
        let Some(parts) = parts else { continue };
        let from = copied_from(config, registry, &parts);
        // The same name in the same registry is only a copy when the source is elsewhere.
        if parts.repository == repository && from == *registry {
            continue;
        }
        let Some(bound) = authority.bind_source(&from) else {
            continue;
        };
        if let Ok(Some(_)) =
            bound.target(&parts.repository, Selection::of(tag), registry, repository)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The registry a copy into `registry` named `parts` came from: the source as the config
/// names it, completed by what the name says of it, else by the event's own registry.
pub(crate) fn copied_from(
    config: &ReplicationConfig,
    registry: &Registry,
    parts: &SourceParts,
) -> Registry {
    let pinned = config.source.clone().unwrap_or_default();
    match (config.source_registry(), registry) {
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
                .clone()
                .or(pinned.registry_id)
                .unwrap_or_else(|| registry_id.clone()),
            region: parts
                .region
                .clone()
                .or(pinned.region)
                .unwrap_or_else(|| region.clone()),
        },
        (None, Registry::Oci { .. }) => registry.clone(),
    }
}

mod scan;

#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod loop_tests;

#[cfg(test)]
mod tests;
