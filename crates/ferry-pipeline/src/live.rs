//! The config as the functions use it: the loaded document and, when it names
//! `organizationalUnit` / `organization` destinations, their accounts read from AWS
//! Organizations and kept for a TTL (`FERRY_ORGANIZATION_TTL_SECONDS`, default 900).
//!
//! Each handler asks for the current resolution: an account added to the OU is a
//! destination of the next push after the TTL (and of the next reconcile run), one that
//! left is no longer one (nothing is deleted there). The jobs made for resolved accounts
//! are authorized by replicate against its own resolution, so a job for an account that is
//! not (or no longer) in the OU is rejected like any other unconfigured target.
//!
//! A scope whose accounts cannot be read (no cached answer, or one older than
//! [`organizations::DEFAULT_MAX_STALE`]) resolves to no account: only its destinations
//! stop, the others go on, and [`LiveConfig::unread`] names it for the metric and alarm
//! (`OrganizationUnread`) and for replicate, which retries the jobs it cannot place.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry::config::{Registry, ReplicationConfig};
use ferry::ecr::pull_through::CachePrefixes;
use ferry::organizations::{self, AccountDirectory, CachedDirectory, Unread};
use ferry::reference::EcrRegistry;

use crate::error::PipelineError;

/// `FERRY_ORGANIZATION_TTL_SECONDS`: how long the accounts of an organization destination
/// are kept.
pub const ENV_ORGANIZATION_TTL: &str = "FERRY_ORGANIZATION_TTL_SECONDS";

/// The document and the source of its organization destinations' accounts.
#[derive(Debug)]
pub struct LiveConfig {
    document: Arc<ReplicationConfig>,
    directory: Option<CachedDirectory>,
    last: tokio::sync::Mutex<Option<Arc<ReplicationConfig>>>,
    unread: std::sync::Mutex<Vec<Unread>>,
    caches: Option<PrefixCache>,
}

/// The source registries' pull-through cache prefixes, each read again after a TTL; a
/// failed read keeps the last answer (none at first) for another TTL, and is logged.
#[derive(Debug)]
struct PrefixCache {
    source: Arc<dyn CachePrefixes>,
    ttl: Duration,
    last: tokio::sync::Mutex<HashMap<String, (std::time::Instant, Vec<String>)>>,
    /// The registries a source bound from each image's registry was seen in (events,
    /// jobs), whose prefixes are read; at most [`MAX_NOTED_REGISTRIES`].
    noted: std::sync::Mutex<BTreeSet<Registry>>,
}

/// The most source registries whose pull-through cache rules one function reads (an
/// unpinned source is bound from each event's registry: the forwarding accounts and
/// regions).
pub const MAX_NOTED_REGISTRIES: usize = 256;

impl PrefixCache {
    async fn prefixes(&self, registry: &EcrRegistry) -> Vec<String> {
        let mut last = self.last.lock().await;
        let host = registry.host();
        if let Some((at, prefixes)) = last.get(&host)
            && at.elapsed() < self.ttl
        {
            return prefixes.clone();
        }
        match self.source.prefixes(registry).await {
            Ok(prefixes) => {
                last.insert(host, (std::time::Instant::now(), prefixes.clone()));
                prefixes
            }
            Err(error) => {
                tracing::warn!(registry = %host, code = error.code(), error = %error, "pull-through cache rules not read: the last answer (or none) is kept until the next try");
                // Asked again after the TTL, not on every event.
                let kept = last.get(&host).map(|(_, p)| p.clone()).unwrap_or_default();
                last.insert(host, (std::time::Instant::now(), kept.clone()));
                kept
            }
        }
    }
}

impl LiveConfig {
    /// A config without organization destinations (or whose resolution never changes).
    pub fn fixed(config: Arc<ReplicationConfig>) -> LiveConfig {
        LiveConfig {
            document: config,
            directory: None,
            last: tokio::sync::Mutex::default(),
            unread: std::sync::Mutex::default(),
            caches: None,
        }
    }

    /// Over `directory` (answers kept for `ttl`) when the document has organization
    /// destinations; a fixed config otherwise.
    pub fn new(
        document: Arc<ReplicationConfig>,
        directory: Arc<dyn AccountDirectory>,
        ttl: Duration,
    ) -> LiveConfig {
        let directory = document
            .has_organization_destinations()
            .then(|| CachedDirectory::new(directory, ttl));
        LiveConfig {
            document,
            directory,
            last: tokio::sync::Mutex::default(),
            unread: std::sync::Mutex::default(),
            caches: None,
        }
    }

    /// The document as loaded.
    pub fn document(&self) -> &Arc<ReplicationConfig> {
        &self.document
    }

    /// The same, with the pinned ECR source's pull-through cache prefixes read through
    /// `source` (kept for `ttl`): a repository under one is selected only by a rule that
    /// names it, in dispatch and replicate as in `ferry plan`.
    pub fn with_pull_through(
        mut self,
        source: Arc<dyn CachePrefixes>,
        ttl: Duration,
    ) -> LiveConfig {
        self.caches = Some(PrefixCache {
            source,
            ttl,
            last: tokio::sync::Mutex::default(),
            noted: std::sync::Mutex::default(),
        });
        self
    }

    /// An image of `registry` is about to be handled: when the document's source is bound
    /// from each image's registry, read that registry's pull-through cache prefixes too
    /// (from the next [`LiveConfig::current`] on), so its cache repositories are left out
    /// as a pinned source's are.
    pub fn note_source(&self, registry: &Registry) {
        let Some(caches) = &self.caches else { return };
        if self.document.source_registry().is_some()
            || !matches!(registry, Registry::Ecr { .. })
            || self.document.bind_source(registry).is_none()
        {
            return;
        }
        let mut noted = caches.noted.lock().unwrap_or_else(|p| p.into_inner());
        if noted.len() < MAX_NOTED_REGISTRIES {
            noted.insert(registry.clone());
        } else if !noted.contains(registry) {
            tracing::warn!(registry = %registry.host(), "pull-through cache rules not read: more source registries than Ferry reads them for");
        }
    }

    /// The config to act on now, and whether it differs from the one the previous call
    /// returned (true on the first call): a caller that built clients for the previous
    /// one (credential routes per destination) builds them again.
    pub async fn current(&self) -> Result<(Arc<ReplicationConfig>, bool), PipelineError> {
        let mut resolved = None;
        if let Some(directory) = &self.directory {
            let (resolution, unread) =
                organizations::resolve_available(&self.document, directory).await?;
            *self.unread.lock().unwrap_or_else(|p| p.into_inner()) = unread;
            for o in &resolution.organizations {
                tracing::debug!(
                    path = %o.path,
                    scope = %o.scope,
                    accounts = o.accounts.len(),
                    skipped = o.skipped.len(),
                    destinations = o.destination_count(),
                    "organization destination resolved"
                );
            }
            resolved = Some(resolution.config);
        }
        if let Some(caches) = &self.caches {
            match self.document.source_registry() {
                Some(Registry::Ecr {
                    registry_id,
                    region,
                }) => {
                    let prefixes = caches
                        .prefixes(&EcrRegistry::new(&registry_id, &region))
                        .await;
                    if !prefixes.is_empty() {
                        let mut config = resolved.unwrap_or_else(|| (*self.document).clone());
                        config.pull_through_prefixes = prefixes;
                        resolved = Some(config);
                    }
                }
                Some(Registry::Oci { .. }) => {}
                // A source bound from each image's registry: the prefixes of every
                // registry seen so far, by host.
                None => {
                    let noted: Vec<Registry> = caches
                        .noted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .cloned()
                        .collect();
                    let mut by_registry = std::collections::BTreeMap::new();
                    for registry in noted {
                        if let Registry::Ecr {
                            registry_id,
                            region,
                        } = &registry
                        {
                            let prefixes = caches
                                .prefixes(&EcrRegistry::new(registry_id, region))
                                .await;
                            if !prefixes.is_empty() {
                                by_registry.insert(registry.host(), prefixes);
                            }
                        }
                    }
                    if !by_registry.is_empty() {
                        let mut config = resolved.unwrap_or_else(|| (*self.document).clone());
                        config.pull_through_by_registry = by_registry;
                        resolved = Some(config);
                    }
                }
            }
        }
        let mut last = self.last.lock().await;
        let Some(config) = resolved else {
            let first = last.is_none();
            *last = Some(self.document.clone());
            return Ok((self.document.clone(), first));
        };
        match last.as_ref() {
            Some(previous) if **previous == config => Ok((previous.clone(), false)),
            _ => {
                tracing::info!(
                    destinations = config.destinations().map(|d| d.len()).unwrap_or(0),
                    pull_through_prefixes = config.pull_through_prefixes.len(),
                    "config resolved"
                );
                let config = Arc::new(config);
                *last = Some(config.clone());
                Ok((config, true))
            }
        }
    }
}

impl LiveConfig {
    /// The organization scopes the last [`LiveConfig::current`] could not read (their
    /// destinations are left out of its config), as `scope: error` lines.
    pub fn unread(&self) -> Vec<String> {
        self.unread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|u| format!("{}: {}", u.query.scope, u.error))
            .collect()
    }
}

/// `FERRY_ORGANIZATION_TTL_SECONDS`, or the default (15 minutes).
pub fn organization_ttl() -> Result<Duration, PipelineError> {
    match std::env::var(ENV_ORGANIZATION_TTL)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => Ok(organizations::DEFAULT_ORGANIZATION_TTL),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| PipelineError::Env {
                name: ENV_ORGANIZATION_TTL,
                message: format!("{v:?} is not a number of seconds"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use ferry::config::{AccountQuery, AccountState, OrgAccount};
    use std::sync::Mutex;

    /// An organization whose membership the test changes (the AWS side is tested against
    /// moto in `tests/organization.rs`).
    #[derive(Debug, Default)]
    struct Members(Mutex<Vec<&'static str>>);

    #[async_trait]
    impl AccountDirectory for Members {
        async fn accounts(&self, _: &AccountQuery) -> Result<Vec<OrgAccount>, ferry::Error> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|id| OrgAccount {
                    id: id.to_string(),
                    name: id.to_string(),
                    state: AccountState::Active,
                    status: "ACTIVE".into(),
                })
                .collect())
        }
    }

    /// An organization that cannot be read.
    #[derive(Debug)]
    struct Down;

    #[async_trait]
    impl AccountDirectory for Down {
        async fn accounts(&self, _: &AccountQuery) -> Result<Vec<OrgAccount>, ferry::Error> {
            Err(ferry::Error::Aws {
                service: "organizations",
                operation: "ListAccounts",
                message: "AccessDenied".into(),
                retryable: false,
            })
        }
    }

    #[tokio::test]
    async fn an_unreadable_organization_stops_only_its_own_destinations() {
        let document = Arc::new(
            ReplicationConfig::from_json(
                r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                    "rules": [{"destinations": [{"organization": true, "regions": ["eu-west-1"]},
                                                {"registryId": "111111111111", "region": "eu-west-1"}]}]}"#,
            )
            .unwrap(),
        );
        let live = LiveConfig::new(document, Arc::new(Down), Duration::ZERO);
        let (config, _) = live.current().await.expect("the rest of the config");
        let hosts: Vec<String> = config
            .destinations()
            .unwrap()
            .iter()
            .map(|d| d.registry_host())
            .collect();
        assert_eq!(hosts, ["111111111111.dkr.ecr.eu-west-1.amazonaws.com"]);
        let unread = live.unread();
        assert!(
            unread.len() == 1 && unread[0].starts_with("the whole organization: aws:"),
            "{unread:?}"
        );
    }

    /// A source registry with one pull-through cache rule (moto has no
    /// DescribePullThroughCacheRules; `ferry::ecr` tests the SDK side with stand-ins).
    #[derive(Debug)]
    struct DockerHubCache;

    #[async_trait]
    impl CachePrefixes for DockerHubCache {
        async fn prefixes(&self, _: &EcrRegistry) -> Result<Vec<String>, ferry::Error> {
            Ok(vec!["docker-hub".into()])
        }
    }

    /// A successful push of `repository:v1` at `registry`.
    fn push_of(registry: &Registry, repository: &str) -> crate::event::ImageAction {
        crate::event::ImageAction {
            event_id: "ev".into(),
            event_time: "2026-01-01T00:00:00Z".parse().unwrap(),
            registry: registry.clone(),
            action_type: crate::event::ActionType::Push,
            succeeded: true,
            repository: repository.into(),
            tag: Some("v1".into()),
            digest: Some(ferry::Digest::of(b"x")),
            referrer: false,
            storage_class: None,
        }
    }

    #[tokio::test]
    async fn pull_through_cache_repositories_are_left_out_of_dispatch_and_authorize() {
        use crate::dispatch::{Ignored, jobs_for};
        let document = Arc::new(
            ReplicationConfig::from_json(
                r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                    "rules": [{"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
            )
            .unwrap(),
        );
        let cached = "docker-hub/library/nginx";
        let forged_target = document
            .destinations_for(cached, Some("v1"))
            .unwrap()
            .remove(0);
        let live = LiveConfig::fixed(document)
            .with_pull_through(Arc::new(DockerHubCache), Duration::from_secs(60));
        let (config, _) = live.current().await.unwrap();
        let east = Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com");
        let push = |repository: &str| push_of(&east, repository);
        assert_eq!(
            jobs_for(&push(cached), &config).unwrap(),
            Err(Ignored::NoRule)
        );
        let jobs = jobs_for(&push("team/app"), &config).unwrap().unwrap();
        assert_eq!(jobs.len(), 1, "other repositories still go");
        // A job for the cache repository (forged, or from before the rule) is refused.
        let forged = crate::Job::new(
            crate::JobAction::Copy,
            crate::JobSource {
                registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
                repository: cached.into(),
                tag: Some("v1".into()),
                digest: Some(ferry::Digest::of(b"x")),
            },
            &forged_target,
            "ev",
            "2026-01-01T00:00:00Z".parse().unwrap(),
            crate::job::Origin::Event,
        );
        assert_eq!(
            crate::authorize::authorize(&forged, &config)
                .unwrap_err()
                .code,
            "not-configured"
        );
    }

    /// A source bound from each event's registry: the cache rules of each registry an
    /// event came from are read, and apply to that registry's images only.
    #[tokio::test]
    async fn an_unpinned_sources_cache_repositories_are_left_out_per_registry() {
        use crate::dispatch::{Ignored, jobs_for};
        let document = Arc::new(
            ReplicationConfig::from_json(
                r#"{"source": {"registryId": "111111111111"},
                    "rules": [{"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
            )
            .unwrap(),
        );
        let live = LiveConfig::fixed(document)
            .with_pull_through(Arc::new(DockerHubCache), Duration::from_secs(60));
        let east = Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com");
        let push = |repository: &str| push_of(&east, repository);
        // Another account's registry is not this config's source: never read.
        live.note_source(&Registry::from_host(
            "999999999999.dkr.ecr.us-east-1.amazonaws.com",
        ));
        live.note_source(&east);
        let (config, _) = live.current().await.unwrap();
        assert_eq!(
            config.pull_through_by_registry.keys().collect::<Vec<_>>(),
            [&east.host()]
        );
        assert_eq!(
            jobs_for(&push("docker-hub/library/nginx"), &config).unwrap(),
            Err(Ignored::NoRule)
        );
        assert_eq!(
            jobs_for(&push("team/app"), &config).unwrap().unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn a_changed_membership_is_a_changed_config() {
        let document = Arc::new(
            ReplicationConfig::from_json(
                r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                    "rules": [{"destinations": [{"organization": true, "regions": ["eu-west-1"]}]}]}"#,
            )
            .unwrap(),
        );
        let members = Arc::new(Members::default());
        members.0.lock().unwrap().push("222222222222");
        let live = LiveConfig::new(document, members.clone(), Duration::ZERO);
        let count = |c: &ReplicationConfig| c.destinations().unwrap().len();
        let (first, changed) = live.current().await.unwrap();
        assert!(changed);
        assert_eq!(count(&first), 1);
        let (same, changed) = live.current().await.unwrap();
        assert!(!changed);
        assert!(Arc::ptr_eq(&first, &same));
        members.0.lock().unwrap().push("333333333333");
        let (grown, changed) = live.current().await.unwrap();
        assert!(changed);
        assert_eq!(count(&grown), 2);
    }
}
