//! A scan's completion event: the copies of the image that wait for a gate, as jobs to
//! judge again (see [`crate::gate`]). The image's ungated copies were sent on its push and
//! are not sent again.

use ferry::config::Target;

use super::{Authority, Ignored, targeted_jobs};
use crate::error::PipelineError;
use crate::event::{ActionType, ImageAction, ScanCompleted};
use crate::job::Job;

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
