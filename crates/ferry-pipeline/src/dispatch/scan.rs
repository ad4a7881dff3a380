//! A scan's completion event: the copies of the image that wait for a gate, as jobs to
//! judge again (see [`crate::gate`]). The image's ungated copies were sent on its push and
//! are not sent again.

use ferry::config::Target;

use super::{Authority, GateStage, Ignored, targeted_jobs};
use crate::error::PipelineError;
use crate::event::{ActionType, ImageAction, ScanCompleted};
use crate::job::Job;

/// The gated copies of the image a pushed referrer (a signature) is about, to judge
/// again; none when no rule has gates, or the subject cannot be resolved (logged: the
/// next reconcile run judges it).
pub(super) async fn referrer_release(
    action: &ImageAction,
    authority: &Authority,
    stage: GateStage<'_>,
) -> Result<Vec<(Job, Target)>, PipelineError> {
    let gated = authority.config().rules.iter().any(|r| r.gates().is_some());
    let (true, Some(referrer)) = (gated, action.digest.as_ref()) else {
        return Ok(Vec::new());
    };
    let subject = match stage
        .keeper
        .subject_of(&action.registry, &action.repository, referrer)
        .await
    {
        Ok(Some(subject)) => subject,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            tracing::warn!(event_id = %action.event_id, repository = %action.repository, code = e.code(), error = %e, "the referrer's subject could not be read: its gated copies wait for reconcile");
            return Ok(Vec::new());
        }
    };
    let (digest, tags) = subject;
    let scan = ScanCompleted {
        event_id: action.event_id.clone(),
        event_time: action.event_time,
        registry: action.registry.clone(),
        repository: action.repository.clone(),
        digest,
        tags,
        status: "REFERRER".into(),
    };
    Ok(scan_jobs(&scan, authority)?.unwrap_or_default())
}

/// The gated copies of the scanned image (each of its tags, or the digest alone when it
/// has none), or why there are none.
pub(super) fn scan_jobs(
    scan: &ScanCompleted,
    authority: &Authority,
) -> Result<Result<Vec<(Job, Target)>, Ignored>, PipelineError> {
    let tags: Vec<Option<String>> = if scan.tags.is_empty() {
        vec![None]
    } else {
        scan.tags.iter().cloned().map(Some).collect()
    };
    let mut out = Vec::new();
    let mut first_reason = None;
    for tag in tags {
        let action = ImageAction {
            event_id: scan.event_id.clone(),
            event_time: scan.event_time,
            registry: scan.registry.clone(),
            action_type: ActionType::Push,
            succeeded: true,
            repository: scan.repository.clone(),
            tag,
            digest: Some(scan.digest.clone()),
            referrer: false,
            storage_class: None,
        };
        match targeted_jobs(&action, authority)? {
            Ok(pairs) => out.extend(pairs.into_iter().filter(|(_, t)| t.gates.is_some())),
            Err(why) => {
                first_reason.get_or_insert(why);
            }
        }
    }
    if out.is_empty() {
        return Ok(Err(match first_reason {
            Some(Ignored::NotSource) => Ignored::NotSource,
            Some(Ignored::OwnCopy) => Ignored::OwnCopy,
            _ => Ignored::NoGatedRule,
        }));
    }
    Ok(Ok(out))
}
