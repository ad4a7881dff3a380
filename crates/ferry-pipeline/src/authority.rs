//! The config the functions act on, with its destination indexes built once.
//!
//! Dispatch and replicate ask the config the same questions for every event and job: where
//! does this image go, is this job's target one of them. An [`Authority`] answers them
//! through [`DestinationIndex`]es built once per config (once per cold start, and again
//! each time the organization destinations resolve differently), not by resolving and
//! searching every destination each time: authorizing a job looks only at the
//! destinations of its target registry, however many accounts × regions the config
//! resolves to.
//!
//! A config whose `source` is bound from each image's registry
//! ([`ReplicationConfig::for_source`]) is a different config per source registry: its
//! index is built on the first image of that registry and kept (for at most
//! [`MAX_BOUND_SOURCES`] registries; past that, built for the question and dropped).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ferry::config::{DestinationIndex, Registry, ReplicationConfig};

/// The most source registries whose bound indexes one [`Authority`] keeps.
pub const MAX_BOUND_SOURCES: usize = 256;

/// A config and its indexes; see the module documentation.
#[derive(Debug)]
pub struct Authority {
    config: Arc<ReplicationConfig>,
    /// The index of the config as loaded (also the bound config of a pinned source).
    loaded: OnceLock<Arc<DestinationIndex>>,
    /// `for_source` per source registry.
    sources: Mutex<HashMap<Registry, Arc<DestinationIndex>>>,
    /// `bind_source` per registry (the loop guard's question).
    bound: Mutex<HashMap<Registry, Arc<DestinationIndex>>>,
    /// Indexes built so far.
    builds: AtomicUsize,
}

impl Authority {
    /// Over `config`; indexes are built when first asked for.
    pub fn new(config: Arc<ReplicationConfig>) -> Authority {
        Authority {
            config,
            loaded: OnceLock::new(),
            sources: Mutex::default(),
            bound: Mutex::default(),
            builds: AtomicUsize::new(0),
        }
    }

    /// The config.
    pub fn config(&self) -> &Arc<ReplicationConfig> {
        &self.config
    }

    /// How many indexes this authority has built (each one resolves every destination).
    pub fn builds(&self) -> usize {
        self.builds.load(Ordering::Relaxed)
    }

    fn build(&self, config: &ReplicationConfig) -> Arc<DestinationIndex> {
        self.builds.fetch_add(1, Ordering::Relaxed);
        Arc::new(DestinationIndex::new(config))
    }

    /// The index of the config as loaded.
    pub fn loaded(&self) -> &Arc<DestinationIndex> {
        self.loaded.get_or_init(|| self.build(&self.config))
    }

    /// The index of the config as it applies to images of `registry`
    /// ([`ReplicationConfig::for_source`]), or `None` when `registry` is not its source.
    pub fn for_source(&self, registry: &Registry) -> Option<Arc<DestinationIndex>> {
        self.bound_by(&self.sources, registry, |c, r| c.for_source(r))
    }

    /// The index of the config with its source completed from `registry`, keeping every
    /// destination ([`ReplicationConfig::bind_source`]), or `None` when `registry` cannot
    /// be its source.
    pub fn bind_source(&self, registry: &Registry) -> Option<Arc<DestinationIndex>> {
        self.bound_by(&self.bound, registry, |c, r| c.bind_source(r))
    }

    fn bound_by(
        &self,
        cache: &Mutex<HashMap<Registry, Arc<DestinationIndex>>>,
        registry: &Registry,
        bind: impl for<'c> Fn(&'c ReplicationConfig, &Registry) -> Option<Cow<'c, ReplicationConfig>>,
    ) -> Option<Arc<DestinationIndex>> {
        if let Some(index) = lock(cache).get(registry) {
            return Some(index.clone());
        }
        let index = match bind(&self.config, registry)? {
            Cow::Borrowed(_) => self.loaded().clone(),
            Cow::Owned(bound) => self.build(&bound),
        };
        let mut cache = lock(cache);
        if cache.len() < MAX_BOUND_SOURCES {
            cache.insert(registry.clone(), index.clone());
        }
        Some(index)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The [`Authority`] of the config a function currently acts on: the same one as long as
/// it is handed the same `Arc` of the config, a new one when the config changes.
///
/// It keeps the `Arc` it was built for, so an `Arc` found equal by address is that config,
/// unchanged (nothing can mutate a shared `Arc`), and the indexes always match it.
#[derive(Clone, Debug, Default)]
pub struct AuthorityCell {
    current: Arc<Mutex<Option<Arc<Authority>>>>,
}

impl AuthorityCell {
    /// The authority over `config`: the kept one when it is over this very `Arc`, else a
    /// new one, kept from now on.
    pub fn get(&self, config: &Arc<ReplicationConfig>) -> Arc<Authority> {
        let mut current = lock(&self.current);
        if let Some(authority) = current.as_ref().filter(|a| Arc::ptr_eq(a.config(), config)) {
            return authority.clone();
        }
        let authority = Arc::new(Authority::new(config.clone()));
        *current = Some(authority.clone());
        authority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(source: &str) -> Arc<ReplicationConfig> {
        Arc::new(
            ReplicationConfig::from_json(&format!(
                r#"{{{source} "rules": [{{"destinations": [
                    {{"registryId": "222222222222", "region": "eu-west-1", "repositoryName": "{{region}}/{{repository}}"}}]}}]}}"#
            ))
            .unwrap(),
        )
    }

    #[test]
    fn indexes_are_built_once_per_config_and_source() {
        let pinned = config(r#""source": {"registryId": "111111111111", "region": "us-east-1"},"#);
        let cell = AuthorityCell::default();
        let authority = cell.get(&pinned);
        let east = Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com");
        let west = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
        for _ in 0..3 {
            assert!(authority.for_source(&east).is_some());
            assert!(authority.bind_source(&east).is_some());
            assert!(authority.for_source(&west).is_none());
        }
        assert_eq!(
            authority.builds(),
            1,
            "a pinned source: the loaded index only"
        );
        assert!(Arc::ptr_eq(&cell.get(&pinned), &authority));
        // The same content in another `Arc` is another config to the cell.
        let copy = Arc::new((*pinned).clone());
        assert!(!Arc::ptr_eq(&cell.get(&copy), &authority));

        let open = config(r#""source": {"registryId": "111111111111"},"#);
        let authority = cell.get(&open);
        for _ in 0..3 {
            for registry in [&east, &west] {
                assert!(authority.for_source(registry).is_some());
            }
        }
        assert_eq!(authority.builds(), 2, "one per source registry");
        let east_index = authority.for_source(&east).unwrap();
        let target = east_index
            .target(
                "app",
                ferry::config::Selection::Tag("v1"),
                &Registry::from_host("222222222222.dkr.ecr.eu-west-1.amazonaws.com"),
                "us-east-1/app",
            )
            .unwrap();
        assert!(target.is_some(), "bound to the image's own region");
    }
}
