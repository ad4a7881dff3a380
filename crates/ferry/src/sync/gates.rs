//! Promotion gates in the plan: a copy whose target is gated becomes `held` or `blocked`
//! until its gates pass. Only copies are judged: an image already in place stays `skip`
//! whatever a later scan finds (gates apply to copies, they never delete).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::plan::{Action, PlanItem};
use crate::config::Registry;
use crate::digest::Digest;
use crate::error::Error;
use crate::gate::{GateCheck, GateImage, Verdict};
use crate::replicate::Replicator;

/// Gate evaluations in flight at once.
const GATES_AT_ONCE: usize = 8;

/// Turns each gated copy of `items` into `held` or `blocked` when its gates say so.
pub(super) async fn apply(
    replicator: &Replicator,
    source: &Registry,
    items: &mut [PlanItem],
) -> Result<(), Error> {
    // One evaluation per image and gate choice, however many destinations share it.
    let mut asked: BTreeMap<(String, Digest), Vec<usize>> = BTreeMap::new();
    for (n, item) in items.iter().enumerate() {
        if item.action != Action::Copy || item.target.gates.is_none() {
            continue;
        }
        if let Some(digest) = &item.digest {
            asked
                .entry((item.source_repository.to_string(), digest.clone()))
                .or_default()
                .push(n);
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let check = GateCheck::new(
        replicator.copier().client().clone(),
        replicator.ecr().cloned(),
    );
    let check = &check;
    let items_ref = &*items;
    let verdicts: Vec<Vec<(usize, Verdict)>> = futures::stream::iter(asked)
        .map(|((repository, digest), members)| async move {
            let mut out = Vec::with_capacity(members.len());
            for n in members {
                let target = &items_ref[n].target;
                let image = GateImage {
                    registry: source,
                    repository: &repository,
                    digest: &digest,
                };
                let verdict = check
                    .verdict(target.gates.as_ref(), image, &target.platforms)
                    .await?;
                out.push((n, verdict));
            }
            Ok::<_, Error>(out)
        })
        .buffer_unordered(GATES_AT_ONCE)
        .try_collect()
        .await?;
    for (n, verdict) in verdicts.into_iter().flatten() {
        let item = &mut items[n];
        match verdict {
            Verdict::Pass => {}
            Verdict::Held(reason) => {
                item.action = Action::Held;
                item.gate = Some(reason);
            }
            Verdict::Blocked(reason) => {
                item.action = Action::Blocked;
                item.gate = Some(reason);
            }
        }
    }
    Ok(())
}
