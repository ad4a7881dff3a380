//! Listing what a registry holds: through the ECR API (DescribeRepositories and
//! DescribeImages: tags and digests without a HEAD per tag) for ECR registries, through
//! `_catalog`, `tags/list` and HEAD for any other registry (and for ECR hosts sent to a
//! local endpoint, which have no ECR API behind them).
//!
//! Every repository name and tag a registry lists is untrusted input: it is checked
//! against the distribution grammar before it is used in a URL, a plan item or a job. One
//! that fails is reported once per run ([`InvalidName`]) and skipped; the rest of the
//! listing goes on. A listed `../../other/manifests/v1` or `x?y=1` so never becomes a
//! request outside the repository it was listed in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::aws::AssumeRole;
use crate::config::{Registry, tag_immutable};
use crate::digest::Digest;
use crate::ecr::{ArchiveState, EcrControl};
use crate::error::Error;
use crate::reference::{EcrRegistry, MAX_TAG_LEN, validate_repository, validate_tag};
use crate::registry::{RegistryClient, Repo};

/// One image at a source: a tag (or none) and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedImage {
    /// Repository.
    pub repository: String,
    /// Tag; `None` for an untagged image.
    pub tag: Option<String>,
    /// Manifest digest.
    pub digest: Digest,
    /// Size as the registry reports it (ECR only).
    pub size: Option<u64>,
    /// `None` for an active image; else archived (or being restored) at the source (ECR
    /// only): not copied, not drift.
    pub archived: Option<ArchiveState>,
}

/// What a destination repository holds.
#[derive(Clone, Debug, Default)]
pub struct RepoState {
    /// Tags and the digest they point at (`None`: present, digest not read).
    pub tags: BTreeMap<String, Option<Digest>>,
    /// Digests known to be present (ECR listing only).
    pub digests: BTreeSet<Digest>,
    /// Whether tags cannot be overwritten; the exclusion patterns of `*_WITH_EXCLUSION`.
    pub immutable: Option<(bool, Vec<String>)>,
    /// Digests held here that are archived (or being restored): in place, never copied
    /// over (ECR listing only).
    pub archived: BTreeMap<Digest, ArchiveState>,
}

impl RepoState {
    /// Whether `tag` is immutable here.
    pub fn tag_immutable(&self, tag: &str) -> bool {
        match &self.immutable {
            Some((immutable, exclusions)) => tag_immutable(*immutable, exclusions, tag),
            None => false,
        }
    }
}

/// A name a registry listed that Ferry did not use.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct InvalidName {
    /// `invalid-name`, or `tag-too-long` for a tag over 128 characters that is otherwise
    /// well formed (ECR accepts 300; the distribution grammar, and so Ferry, 128).
    pub code: &'static str,
    /// The registry host that listed it.
    pub registry: String,
    /// The repository it was listed in (a tag), or `None` (a repository name).
    pub repository: Option<String>,
    /// `repository` or `tag`.
    pub kind: &'static str,
    /// The name, escaped (control and non-ASCII characters as `\u{..}`), and cut after
    /// 300 characters.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl std::fmt::Display for InvalidName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.repository {
            Some(repo) => write!(
                f,
                "{}: {}/{repo}: {} \"{}\" skipped: {}",
                self.code, self.registry, self.kind, self.value, self.reason
            ),
            None => write!(
                f,
                "{}: {}: {} \"{}\" skipped: {}",
                self.code, self.registry, self.kind, self.value, self.reason
            ),
        }
    }
}

/// A listed name, escaped for a report.
fn escaped(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(300)
        .flat_map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                vec![c]
            } else {
                c.escape_unicode().collect()
            }
        })
        .collect();
    if name.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// How to read a registry.
pub(crate) struct Lister<'a> {
    pub client: &'a RegistryClient,
    pub ecr: Option<&'a EcrControl>,
    /// Names refused so far in this run.
    pub invalid: Mutex<BTreeSet<InvalidName>>,
    /// Every well-formed tag of each source repository listed so far (referrer tags
    /// included, which no rule selects): what a copy looks referrer tags up in.
    pub source_tags: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

/// Tags of one repository resolved at once.
const HEADS_AT_ONCE: usize = 16;

impl<'a> Lister<'a> {
    /// A lister with nothing refused yet.
    pub(super) fn new(client: &'a RegistryClient, ecr: Option<&'a EcrControl>) -> Self {
        Lister {
            client,
            ecr,
            invalid: Mutex::default(),
            source_tags: Mutex::default(),
        }
    }

    /// The tags of every source repository listed, taken out.
    pub(super) fn take_source_tags(&self) -> BTreeMap<String, BTreeSet<String>> {
        std::mem::take(&mut *self.source_tags.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn keep_tags<'t>(&self, repository: &str, tags: impl Iterator<Item = &'t String>) {
        self.source_tags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(repository.to_string())
            .or_default()
            .extend(tags.cloned());
    }

    /// The names refused, each once, in order.
    pub(super) fn into_invalid(self) -> Vec<InvalidName> {
        self.invalid
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .collect()
    }

    fn refuse(&self, name: InvalidName) {
        let mut seen = self.invalid.lock().unwrap_or_else(|p| p.into_inner());
        if seen.insert(name.clone()) {
            tracing::warn!(registry = %name.registry, repository = ?name.repository, kind = name.kind, value = %name.value, code = name.code, "{}", name.reason);
        }
    }

    /// Whether a listed repository name may be used; reports it when not.
    fn repository_ok(&self, registry: &Registry, name: &str) -> bool {
        match validate_repository(name) {
            Ok(()) => true,
            Err(reason) => {
                self.refuse(InvalidName {
                    code: "invalid-name",
                    registry: registry.host(),
                    repository: None,
                    kind: "repository",
                    value: escaped(name),
                    reason,
                });
                false
            }
        }
    }

    /// Whether a tag listed in `repository` may be used; reports it when not.
    fn tag_ok(&self, registry: &Registry, repository: &str, tag: &str) -> bool {
        let Err(reason) = validate_tag(tag) else {
            return true;
        };
        // Well formed but for its length (ECR allows 300 characters).
        let too_long = tag.len() > MAX_TAG_LEN
            && tag.is_ascii()
            && validate_tag(&tag[..MAX_TAG_LEN]).is_ok()
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        self.refuse(InvalidName {
            code: if too_long {
                "tag-too-long"
            } else {
                "invalid-name"
            },
            registry: registry.host(),
            repository: Some(repository.to_string()),
            kind: "tag",
            value: escaped(tag),
            reason,
        });
        false
    }

    /// Whether to use the ECR API for this registry.
    fn api(&self, registry: &Registry) -> Option<(&EcrControl, EcrRegistry)> {
        match (registry, self.ecr) {
            (
                Registry::Ecr {
                    registry_id,
                    region,
                },
                Some(ecr),
            ) if !self.client.endpoints().is_overridden(&registry.host()) => {
                Some((ecr, EcrRegistry::new(registry_id, region)))
            }
            _ => None,
        }
    }

    /// Repository names of a registry.
    pub(super) async fn repositories(&self, registry: &Registry) -> Result<Vec<String>, Error> {
        let mut names = match self.api(registry) {
            Some((ecr, reg)) => ecr.list_repositories(&reg, None).await?,
            None => self.client.list_catalog(&registry.host()).await?,
        };
        names.retain(|n| self.repository_ok(registry, n));
        Ok(names)
    }

    /// Images of a source repository: with the API every tag and untagged image; without
    /// it, every tag, each resolved with a HEAD.
    /// `wanted` decides, before any HEAD, which tags are worth resolving.
    pub(super) async fn images(
        &self,
        registry: &Registry,
        repository: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<ListedImage>, Error> {
        if let Some((ecr, reg)) = self.api(registry) {
            let mut out = Vec::new();
            for e in ecr.list_images(&reg, None, repository).await? {
                if e.tags.is_empty() {
                    out.push(ListedImage {
                        repository: repository.into(),
                        tag: None,
                        digest: e.digest.clone(),
                        size: e.size,
                        archived: e.archived.clone(),
                    });
                }
                for t in e.tags {
                    if !self.tag_ok(registry, repository, &t) {
                        continue;
                    }
                    self.keep_tags(repository, std::iter::once(&t));
                    out.push(ListedImage {
                        repository: repository.into(),
                        tag: Some(t),
                        digest: e.digest.clone(),
                        size: e.size,
                        archived: e.archived.clone(),
                    });
                }
            }
            return Ok(out);
        }
        let repo = Repo::new(registry.host(), repository);
        let listed: Vec<String> = self
            .client
            .list_tags(&repo)
            .await?
            .into_iter()
            .filter(|t| self.tag_ok(registry, repository, t))
            .collect();
        self.keep_tags(repository, listed.iter());
        let heads: Vec<Option<ListedImage>> =
            futures::stream::iter(listed.into_iter().filter(|t| wanted(t)))
                .map(|tag| {
                    let repo = &repo;
                    async move {
                        Ok::<_, Error>(self.client.head_manifest(repo, &tag).await?.map(|h| {
                            ListedImage {
                                repository: repository.into(),
                                tag: Some(tag),
                                digest: h.digest,
                                size: None,
                                archived: None,
                            }
                        }))
                    }
                })
                .buffered(HEADS_AT_ONCE)
                .try_collect()
                .await?;
        Ok(heads.into_iter().flatten().collect())
    }

    /// A destination repository's state. Without the API only the tags in `wanted` are
    /// resolved to digests (one HEAD each, and only when the tag exists). With
    /// `all_tags` false the tag list is not read at all: one HEAD per wanted tag, and no
    /// destination-only tags are seen (enough for a sync that propagates no deletes).
    pub(super) async fn destination(
        &self,
        registry: &Registry,
        role: Option<&AssumeRole>,
        repository: &str,
        wanted: &BTreeSet<String>,
        all_tags: bool,
    ) -> Result<RepoState, Error> {
        let mut state = RepoState::default();
        if let Some((ecr, reg)) = self.api(registry) {
            for e in ecr.list_images(&reg, role, repository).await? {
                for t in e
                    .tags
                    .iter()
                    .filter(|t| self.tag_ok(registry, repository, t))
                {
                    state.tags.insert(t.clone(), Some(e.digest.clone()));
                }
                if let Some(a) = e.archived {
                    state.archived.insert(e.digest.clone(), a);
                }
                state.digests.insert(e.digest);
            }
            if let Some(s) = ecr.repository_settings(&reg, role, repository).await? {
                state.immutable = Some(s.immutability());
            }
            return Ok(state);
        }
        let repo = Repo::new(registry.host(), repository);
        if !all_tags {
            for tag in wanted {
                if let Some(h) = self.client.head_manifest(&repo, tag).await? {
                    state.tags.insert(tag.clone(), Some(h.digest));
                }
            }
            return Ok(state);
        }
        for tag in self.client.list_tags(&repo).await? {
            if !self.tag_ok(registry, repository, &tag) {
                continue;
            }
            let digest = if wanted.contains(&tag) {
                self.client
                    .head_manifest(&repo, &tag)
                    .await?
                    .map(|h| h.digest)
            } else {
                None
            };
            state.tags.insert(tag, digest);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutability_with_exclusions() {
        let mut s = RepoState {
            immutable: Some((true, vec!["latest".into(), "dev-*".into()])),
            ..Default::default()
        };
        assert!(s.tag_immutable("v1"));
        assert!(!s.tag_immutable("latest"));
        assert!(!s.tag_immutable("dev-3"));
        s.immutable = Some((false, vec!["release-*".into()]));
        assert!(s.tag_immutable("release-1"));
        assert!(!s.tag_immutable("v1"));
    }
}
