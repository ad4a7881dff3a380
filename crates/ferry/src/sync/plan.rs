//! The plan: every source image the rules select, compared with every destination.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::listing::{InvalidName, ListedImage, Lister, RepoState};
use crate::config::Target;
use crate::copy::SharedReads;
use crate::digest::Digest;
use crate::ecr::ArchiveState;
use crate::error::Error;
use crate::gate::GateReason;
use crate::reference::Reference;
use crate::registry::Repo;
use crate::replicate::Replicator;

/// What to do for one image at one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Missing or different at the destination: copy it.
    Copy,
    /// Already there with the same digest.
    Skip,
    /// The destination tag is immutable and holds another digest: left alone.
    Conflict,
    /// Gone at the source, present at the destination, and the rule propagates deletes.
    Delete,
    /// Present at the destination only; the rule does not propagate deletes (drift
    /// report only).
    Extra,
    /// Archived (or being restored) at the source: not copied, not drift.
    Archived,
    /// Archived at the source, active at the destination, and the rule follows the
    /// archive (`archive: "follow"`): archive the destination copy.
    Archive,
    /// Active at the source, archived at the destination, and the rule follows the
    /// archive: restore the destination copy.
    Restore,
    /// Missing or different at the destination, but a promotion gate has not passed yet
    /// (its scan is not complete): not copied now, not drift.
    Held,
    /// Missing or different at the destination, and a promotion gate failed: never
    /// copied, not drift.
    Blocked,
}

/// One line of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlanItem {
    /// The action.
    pub action: Action,
    /// Source repository.
    #[serde(serialize_with = "shared_str")]
    pub source_repository: Arc<str>,
    /// Destination registry host.
    #[serde(serialize_with = "shared_str")]
    pub destination_registry: Arc<str>,
    /// Destination repository.
    #[serde(serialize_with = "shared_str")]
    pub destination_repository: Arc<str>,
    /// Tag (`None`: untagged image).
    pub tag: Option<String>,
    /// Source digest (absent for deletes and extras).
    pub digest: Option<Digest>,
    /// The digest the copy writes, when it is not the source's: the index of the
    /// platforms the target selects (`rules[].platforms`), which the destination tag
    /// holds when the image is in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered_digest: Option<Digest>,
    /// What the destination holds under the tag, if known.
    pub existing: Option<Digest>,
    /// The archive state behind the action: the source image's when it is archived, else
    /// the destination copy's when that is (`status` and `lastArchivedAt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived: Option<ArchiveState>,
    /// Why a gate holds or blocks the image (`held` and `blocked` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReason>,
    /// The target, for executing the item (shared by every item of its destination
    /// repository: a plan of 100,000 images holds one per repository, not per item).
    #[serde(skip)]
    pub target: Arc<Target>,
}

/// A name shared by the items of one repository, written as the string it is.
fn shared_str<S: serde::Serializer>(name: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name)
}

impl PlanItem {
    /// The source reference (tag and digest) of a copy.
    pub fn source_ref(&self, source_registry: &str) -> Reference {
        Reference {
            registry: source_registry.to_string(),
            repository: self.source_repository.to_string(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// `registry/repository` of the destination, without tag or digest.
    pub fn destination_repo_key(&self) -> String {
        format!(
            "{}/{}",
            self.destination_registry, self.destination_repository
        )
    }

    /// `registry/repository:tag`.
    pub fn destination_display(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!(
                "{}/{}:{t}",
                self.destination_registry, self.destination_repository
            ),
            (None, Some(d)) => format!(
                "{}/{}@{d}",
                self.destination_registry, self.destination_repository
            ),
            (None, None) => format!(
                "{}/{}",
                self.destination_registry, self.destination_repository
            ),
        }
    }
}

/// Counts by action and the bytes to move.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlanSummary {
    /// Images to copy.
    pub copy: usize,
    /// Images already in place.
    pub skip: usize,
    /// Immutable-tag conflicts.
    pub conflict: usize,
    /// Deletes to propagate.
    pub delete: usize,
    /// Destination-only tags not deleted.
    pub extra: usize,
    /// Source images archived (or being restored): not copied.
    pub archived: usize,
    /// Destination copies to archive (`archive: "follow"`).
    pub archive: usize,
    /// Destination copies to restore (`archive: "follow"`).
    pub restore: usize,
    /// Copies a promotion gate holds (scan not complete yet).
    pub held: usize,
    /// Copies a promotion gate blocks.
    pub blocked: usize,
    /// Blob bytes the copies will move (each unique blob once per destination registry;
    /// blobs a destination already holds are counted too when unknown).
    pub bytes_to_move: u64,
}

/// The whole plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Source registry host.
    pub source: String,
    /// Items, sorted by destination then repository then tag.
    pub items: Vec<PlanItem>,
    /// Totals.
    pub summary: PlanSummary,
    /// Names the registries listed that break the distribution grammar: reported and
    /// skipped, each once.
    pub invalid_names: Vec<InvalidName>,
    /// Destination repositories whose ECR registry signs images itself (managed
    /// signing), and whether the source's signatures still go there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub self_signed: Vec<super::SelfSigned>,
    /// Pull-through cache repositories of the source left out: no rule names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull_through_left_out: Vec<super::CacheLeftOut>,
    /// The source manifests the plan read (to count the bytes to move), for the sync that
    /// carries it out: each is read from the source once per run.
    #[serde(skip)]
    pub(crate) shared: SharedReads,
}

/// How many repositories are read at once (the per-host limits and quotas bound the
/// requests: this only keeps enough of them waiting to fill those over a long round trip).
pub(super) const LISTING_CONCURRENCY: usize = 32;

/// Build the plan for the replicator's config: every action, destination-only tags
/// (deletes and extras) included.
pub async fn plan(replicator: &Replicator) -> Result<Plan, Error> {
    plan_with(replicator, true, false, true).await
}

/// Build the plan for a drift report (`verify`, reconcile): like [`plan`], without the
/// byte estimate, which would read every manifest of every image to copy
/// ([`PlanSummary::bytes_to_move`] is 0).
pub async fn plan_for_drift(replicator: &Replicator) -> Result<Plan, Error> {
    plan_with(replicator, true, false, false).await
}

/// Build the plan for a sync: like [`plan`], but when no rule propagates deletes the
/// destinations' tag lists are not read (one HEAD per selected tag and destination, and
/// nothing else), so destination-only tags are not reported.
pub async fn plan_for_sync(replicator: &Replicator) -> Result<Plan, Error> {
    let deletes = replicator.config().rules.iter().any(|r| r.deletes);
    plan_with(replicator, deletes, true, true).await
}

/// `for_sync`: keep what the listing read in the plan's shared reads for the copies (a
/// plan only printed, or only compared, does not hold it). `estimate`: compute
/// [`PlanSummary::bytes_to_move`].
async fn plan_with(
    replicator: &Replicator,
    all_tags: bool,
    for_sync: bool,
    estimate: bool,
) -> Result<Plan, Error> {
    let config = replicator.config();
    let source = config.source_registry().ok_or_else(|| {
        Error::Config("plan, sync and verify need a `source` (registryId and region, or registry) in the config".into())
    })?;
    let client = replicator.copier().client();
    let lister = Lister::new(client, replicator.ecr());

    // 1. Source images the rules select.
    let named = config
        .source
        .as_ref()
        .map(|s| s.repositories.clone())
        .unwrap_or_default();
    let mut left_out = Vec::new();
    let mut repos: Vec<String> = if named.is_empty() {
        let mut listed = lister.repositories(&source).await?;
        listed.retain(|r| config.repository_selected(r));
        left_out = super::ecr_notes::leave_out_caches(replicator, &source, &mut listed).await;
        listed
    } else {
        named
    };
    repos.retain(|r| config.repository_selected(r));
    repos.sort();
    let listed: Vec<Vec<ListedImage>> = futures::stream::iter(repos.iter().cloned())
        .map(|r| {
            let (lister, source) = (&lister, &source);
            async move {
                lister
                    .images(source, &r, |tag| config.tag_selected(&r, tag))
                    .await
            }
        })
        .buffered(LISTING_CONCURRENCY)
        .try_collect()
        .await?;
    let images: Vec<ListedImage> = listed.into_iter().flatten().collect();
    // What the listing read, the copies need not read again: each tag's digest, and every
    // tag of the repository (where referrer tags are looked up).
    // A plan not followed by copies keeps no manifest it reads.
    let shared = if for_sync {
        SharedReads::default()
    } else {
        SharedReads::with_limit(0)
    };
    for img in images.iter().filter(|_| for_sync) {
        if let Some(tag) = &img.tag {
            let head = crate::registry::ManifestHead {
                digest: img.digest.clone(),
                media_type: None,
                size: None,
            };
            shared.seed_head(&Repo::new(source.host(), &img.repository), tag, head);
        }
    }
    for (repository, tags) in lister.take_source_tags() {
        if for_sync {
            shared.seed_tags(&Repo::new(source.host(), &repository), tags);
        }
    }

    // 2. Pair each with its targets, grouped by destination repository.
    type Key = (String, String);
    // Per destination repository: the target, its images, and every source repository
    // they come from (more than one when templates map several onto it).
    type Group = (Arc<Target>, Vec<usize>, BTreeSet<String>);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    // Every source tag by repository, borrowed from the listing (not a second copy).
    let mut source_tags: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (n, img) in images.iter().enumerate() {
        if let Some(t) = &img.tag {
            source_tags
                .entry(img.repository.as_str())
                .or_default()
                .insert(t.as_str());
        }
        let targets = config
            .destinations_for(&img.repository, img.tag.as_deref())
            .map_err(|e| Error::Config(e.to_string()))?;
        for t in targets {
            let key = (t.destination.registry_host(), t.repository.clone());
            let group = groups
                .entry(key)
                .or_insert_with(|| (Arc::new(t.clone()), Vec::new(), BTreeSet::new()));
            group.1.push(n);
            group.2.insert(img.repository.clone());
        }
    }

    let self_signed =
        super::ecr_notes::self_signed(replicator, groups.values().map(|g| g.0.as_ref())).await;

    // 3. Compare with each destination repository.
    let per_group: Vec<Vec<PlanItem>> = futures::stream::iter(groups.into_values())
        .map(|(target, members, src_repos)| {
            let lister = &lister;
            let source_tags = &source_tags;
            let shared = &shared;
            let images = &images;
            let source = &source;
            async move {
                let imgs: Vec<&ListedImage> = members.iter().map(|&n| &images[n]).collect();
                let wanted: BTreeSet<String> = imgs.iter().filter_map(|i| i.tag.clone()).collect();
                let role = replicator.listing_role(&target.destination);
                let state = lister
                    .destination(
                        &target.destination.registry,
                        role.as_ref(),
                        &target.repository,
                        &wanted,
                        all_tags,
                    )
                    .await?;
                let written =
                    super::filtered::written(client, shared, &source.host(), &target, &imgs)
                        .await?;
                let mut items = compare(&target, &imgs, &written, &state, client).await?;
                // The copy of a tag found missing (or different) here uses this answer
                // instead of a HEAD of its own.
                let dst_repo = Repo::new(target.destination.registry_host(), &target.repository);
                for item in items
                    .iter()
                    .filter(|i| for_sync && i.action == Action::Copy)
                {
                    if let Some(tag) = &item.tag {
                        match state.tags.get(tag) {
                            None => shared.seed_destination(&dst_repo, tag, None),
                            Some(Some(d)) => {
                                shared.seed_destination(&dst_repo, tag, Some(d.clone()))
                            }
                            Some(None) => {}
                        }
                    }
                }
                items.extend(leftovers(
                    replicator,
                    &target,
                    &state,
                    source_tags,
                    &src_repos,
                ));
                Ok::<_, Error>(items)
            }
        })
        .buffered(LISTING_CONCURRENCY)
        .try_collect()
        .await?;
    // One allocation of the final size (a collect of the flattened groups would grow by
    // doubling, a third of it unused at 100,000 items).
    let mut items: Vec<PlanItem> = Vec::with_capacity(per_group.iter().map(Vec::len).sum());
    for group in per_group {
        items.extend(group);
    }
    super::gates::apply(replicator, &source, &mut items).await?;
    items.sort_by(|a, b| {
        (&a.destination_registry, &a.destination_repository, &a.tag).cmp(&(
            &b.destination_registry,
            &b.destination_repository,
            &b.tag,
        ))
    });
    let bytes_to_move = if estimate {
        super::bytes::bytes_to_move(replicator, &shared, &source, &items, &images).await?
    } else {
        0
    };
    let mut summary = PlanSummary {
        bytes_to_move,
        ..Default::default()
    };
    for i in &items {
        match i.action {
            Action::Copy => summary.copy += 1,
            Action::Skip => summary.skip += 1,
            Action::Conflict => summary.conflict += 1,
            Action::Delete => summary.delete += 1,
            Action::Extra => summary.extra += 1,
            Action::Archived => summary.archived += 1,
            Action::Archive => summary.archive += 1,
            Action::Restore => summary.restore += 1,
            Action::Held => summary.held += 1,
            Action::Blocked => summary.blocked += 1,
        }
    }
    Ok(Plan {
        source: source.host(),
        items,
        summary,
        invalid_names: lister.into_invalid(),
        self_signed,
        pull_through_left_out: left_out,
        shared,
    })
}

/// The plan future can move between threads (reconcile runs it on a multi-thread runtime).
#[cfg(test)]
#[allow(dead_code)]
fn plan_is_send(r: &'static Replicator) {
    fn send<T: Send>(_: T) {}
    send(plan(r));
}

/// Each image's action at `target`'s destination repository (`state`); `written[i]` is
/// what the copy of `imgs[i]` writes, whose digest the destination must hold.
pub(super) async fn compare(
    target: &Arc<Target>,
    imgs: &[&ListedImage],
    written: &[super::filtered::Written],
    state: &RepoState,
    client: &crate::registry::RegistryClient,
) -> Result<Vec<PlanItem>, Error> {
    let host = target.destination.registry_host();
    // One copy of each name per destination repository, shared by its items.
    let (registry, repository): (Arc<str>, Arc<str>) =
        (host.as_str().into(), target.repository.as_str().into());
    let mut source_name: Option<Arc<str>> = None;
    let follow = target.archive && target.destination.registry.is_ecr();
    // Fan-in: digests some source repository of this destination repository still holds
    // active (or restores); an archive at another source does not archive their copy.
    let active: std::collections::HashSet<&crate::digest::Digest> = imgs
        .iter()
        .filter(|i| {
            i.archived
                .as_ref()
                .is_none_or(|a| a.status != crate::ecr::ImageStatus::Archived)
        })
        .map(|i| &i.digest)
        .collect();
    let mut out = Vec::with_capacity(imgs.len());
    for (img, written) in imgs.iter().zip(written) {
        // The digest the destination holds when the image is in place (a filtered index's
        // own); `None`: a copy that will fail, planned as a copy.
        let expected = written.expected(&img.digest);
        let held = expected.and_then(|d| state.archived.get(d));
        let present = expected.is_some_and(|d| {
            state.digests.contains(d)
                || img
                    .tag
                    .as_ref()
                    .is_some_and(|t| state.tags.get(t).is_some_and(|at| at.as_ref() == Some(d)))
        });
        let stored =
            match super::archive::storage_action(img.archived.as_ref(), held, present, follow) {
                Some(Action::Archive) if active.contains(&img.digest) => Some(Action::Archived),
                other => other,
            };
        let (action, existing) = match (&img.tag, stored) {
            (tag, Some(action)) => (
                action,
                tag.as_ref()
                    .and_then(|t| state.tags.get(t).cloned().flatten()),
            ),
            (tag, None) => match tag {
                Some(tag) => match state.tags.get(tag) {
                    None => (Action::Copy, None),
                    Some(Some(d)) if Some(d) == expected => (Action::Skip, Some(d.clone())),
                    Some(existing) if state.tag_immutable(tag) => {
                        (Action::Conflict, existing.clone())
                    }
                    Some(existing) => (Action::Copy, existing.clone()),
                },
                None => {
                    let present = match expected {
                        None => false,
                        Some(d) => {
                            state.digests.contains(d)
                                || client
                                    .head_manifest(
                                        &Repo::new(&host, &target.repository),
                                        d.as_str(),
                                    )
                                    .await?
                                    .is_some()
                        }
                    };
                    (if present { Action::Skip } else { Action::Copy }, None)
                }
            },
        };
        let source_repository = match &source_name {
            Some(n) if **n == *img.repository => n.clone(),
            _ => source_name.insert(img.repository.as_str().into()).clone(),
        };
        out.push(PlanItem {
            action,
            source_repository,
            destination_registry: registry.clone(),
            destination_repository: repository.clone(),
            tag: img.tag.clone(),
            digest: Some(img.digest.clone()),
            filtered_digest: written.filtered(),
            existing,
            archived: img.archived.clone().or_else(|| held.cloned()),
            gate: None,
            target: target.clone(),
        });
    }
    Ok(out)
}

/// Destination tags the source no longer has, that the rules would replicate: a delete
/// when the target propagates deletes, else an extra. When several source repositories
/// map onto this destination repository (templates of different rules that render the
/// same name), a tag is a leftover only when none of them has it, and it is never deleted:
/// which source it belonged to cannot be known.
fn leftovers(
    replicator: &Replicator,
    target: &Arc<Target>,
    state: &RepoState,
    source_tags: &BTreeMap<&str, BTreeSet<&str>>,
    src_repos: &BTreeSet<String>,
) -> Vec<PlanItem> {
    let host = target.destination.registry_host();
    let shared = src_repos.len() > 1;
    if shared && target.deletes {
        tracing::warn!(destination = %format!("{host}/{}", target.repository), sources = ?src_repos, "several source repositories map onto this destination repository: its deletes are not propagated");
    }
    let held = |tag: &str| {
        src_repos
            .iter()
            .any(|r| source_tags.get(r.as_str()).is_some_and(|s| s.contains(tag)))
    };
    let Some(src_repo) = src_repos.first() else {
        return Vec::new();
    };
    state
        .tags
        .iter()
        .filter(|(tag, _)| !held(tag))
        .filter(|(tag, _)| {
            // Referrer fallback and cosign tags follow their subject, not the rules.
            !tag.starts_with("sha256-")
                && src_repos.iter().any(|r| {
                    replicator
                        .config()
                        .destinations_for(r, Some(tag))
                        .is_ok_and(|ts| {
                            ts.iter().any(|t| {
                                t.destination.registry_host() == host
                                    && t.repository == target.repository
                            })
                        })
                })
        })
        .map(|(tag, existing)| PlanItem {
            action: if target.deletes && !shared {
                Action::Delete
            } else {
                Action::Extra
            },
            source_repository: src_repo.as_str().into(),
            destination_registry: host.as_str().into(),
            destination_repository: target.repository.as_str().into(),
            tag: Some(tag.clone()),
            digest: None,
            filtered_digest: None,
            existing: existing.clone(),
            archived: None,
            gate: None,
            target: target.clone(),
        })
        .collect()
}
