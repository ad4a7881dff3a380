//! Listing what a registry holds: through the ECR API (DescribeRepositories and
//! DescribeImages: tags and digests without a HEAD per tag) for ECR registries, through
//! `_catalog`, `tags/list` and HEAD for any other registry (and for ECR hosts sent to a
//! local endpoint, which have no ECR API behind them).

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::AssumeRole;
use crate::config::Registry;
use crate::digest::Digest;
use crate::ecr::EcrControl;
use crate::error::Error;
use crate::reference::EcrRegistry;
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
}

impl RepoState {
    /// Whether `tag` is immutable here.
    pub fn tag_immutable(&self, tag: &str) -> bool {
        match &self.immutable {
            Some((immutable, exclusions)) => {
                *immutable != exclusions.iter().any(|p| wildcard(p, tag))
            }
            None => false,
        }
    }
}

/// How to read a registry.
pub(crate) struct Lister<'a> {
    pub client: &'a RegistryClient,
    pub ecr: Option<&'a EcrControl>,
}

impl Lister<'_> {
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
    pub async fn repositories(&self, registry: &Registry) -> Result<Vec<String>, Error> {
        match self.api(registry) {
            Some((ecr, reg)) => ecr.list_repositories(&reg, None).await,
            None => self.client.list_catalog(&registry.host()).await,
        }
    }

    /// Images of a source repository: with the API every tag and untagged image; without
    /// it, every tag, each resolved with a HEAD.
    /// `wanted` decides, before any HEAD, which tags are worth resolving.
    pub async fn images(
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
                    });
                }
                for t in e.tags {
                    out.push(ListedImage {
                        repository: repository.into(),
                        tag: Some(t),
                        digest: e.digest.clone(),
                        size: e.size,
                    });
                }
            }
            return Ok(out);
        }
        let repo = Repo::new(registry.host(), repository);
        let mut out = Vec::new();
        for tag in self
            .client
            .list_tags(&repo)
            .await?
            .into_iter()
            .filter(|t| wanted(t))
        {
            if let Some(h) = self.client.head_manifest(&repo, &tag).await? {
                out.push(ListedImage {
                    repository: repository.into(),
                    tag: Some(tag),
                    digest: h.digest,
                    size: None,
                });
            }
        }
        Ok(out)
    }

    /// A destination repository's state. Without the API only the tags in `wanted` are
    /// resolved to digests (one HEAD each, and only when the tag exists). With
    /// `all_tags` false the tag list is not read at all: one HEAD per wanted tag, and no
    /// destination-only tags are seen (enough for a sync that propagates no deletes).
    pub async fn destination(
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
                for t in &e.tags {
                    state.tags.insert(t.clone(), Some(e.digest.clone()));
                }
                state.digests.insert(e.digest);
            }
            if let Some(s) = ecr.repository_settings(&reg, role, repository).await? {
                let m = s.tag_mutability.unwrap_or_default();
                state.immutable = Some((m.starts_with("IMMUTABLE"), s.mutability_exclusions));
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

/// `*` matches any run of characters; everything else matches itself.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("latest", "latest"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("dev-*", "dev-1"));
        assert!(wildcard("*-rc*", "1.0-rc2"));
        assert!(!wildcard("dev-*", "prod-1"));
        assert!(!wildcard("a*a", "a"));
    }

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
