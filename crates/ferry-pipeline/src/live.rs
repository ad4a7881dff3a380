//! The config as the functions use it: the loaded document and, when it names
//! `organizationalUnit` / `organization` destinations, their accounts read from AWS
//! Organizations and kept for a TTL (`FERRY_ORGANIZATION_TTL_SECONDS`, default 900).
//!
//! Each handler asks for the current resolution: an account added to the OU is a
//! destination of the next push after the TTL (and of the next reconcile run), one that
//! left is no longer one (nothing is deleted there). The jobs made for resolved accounts
//! are authorized by replicate against its own resolution, so a job for an account that is
//! not (or no longer) in the OU is rejected like any other unconfigured target.

use std::sync::Arc;
use std::time::Duration;

use ferry::config::ReplicationConfig;
use ferry::organizations::{self, AccountDirectory, CachedDirectory};

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
}

impl LiveConfig {
    /// A config without organization destinations (or whose resolution never changes).
    pub fn fixed(config: Arc<ReplicationConfig>) -> LiveConfig {
        LiveConfig {
            document: config,
            directory: None,
            last: tokio::sync::Mutex::default(),
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
        }
    }

    /// The document as loaded.
    pub fn document(&self) -> &Arc<ReplicationConfig> {
        &self.document
    }

    /// The config to act on now, and whether it differs from the one the previous call
    /// returned (true on the first call): a caller that built clients for the previous
    /// one (credential routes per destination) builds them again.
    pub async fn current(&self) -> Result<(Arc<ReplicationConfig>, bool), PipelineError> {
        let Some(directory) = &self.directory else {
            let mut last = self.last.lock().await;
            let first = last.is_none();
            *last = Some(self.document.clone());
            return Ok((self.document.clone(), first));
        };
        let resolution = organizations::resolve(&self.document, directory).await?;
        let mut last = self.last.lock().await;
        match last.as_ref() {
            Some(previous) if **previous == resolution.config => Ok((previous.clone(), false)),
            _ => {
                for o in &resolution.organizations {
                    tracing::info!(
                        path = %o.path,
                        scope = %o.scope,
                        accounts = o.accounts.len(),
                        skipped = o.skipped.len(),
                        destinations = o.destination_count(),
                        "organization destination resolved"
                    );
                }
                let config = Arc::new(resolution.config);
                *last = Some(config.clone());
                Ok((config, true))
            }
        }
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
