//! Registry authentication: anonymous, Basic from the Docker config, the Bearer token
//! challenge flow, and automatic ECR tokens. Tokens are cached per registry (and per scope
//! for Bearer) and refreshed on 401.

mod challenge;
mod docker_config;
mod ecr;
mod routes;
mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use tokio::sync::Mutex;

pub use crate::secret::Secret;
pub use challenge::Challenge;
pub use docker_config::DockerConfig;
pub use ecr::{AwsEcrTokens, EcrToken, EcrTokenSource};
pub use routes::CredentialSource;
pub use token::{
    DEFAULT_BEARER_TTL, MAX_TOKEN_RESPONSE, MAX_TOKEN_TTL, RealmUse, TOKEN_SERVICES,
    parse_token_response, realm_policy,
};

use crate::error::Error;
use crate::reference::EcrRegistry;
use routes::{Routes, scope_repository};

/// Refresh an ECR token this long before it expires.
const ECR_REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// Reuse a fresh ECR token at least this long, whatever expiry it announces.
const ECR_MIN_REUSE: Duration = Duration::from_secs(5 * 60);

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (or ECR token).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json) for the Bearer flow.
    IdentityToken(Secret),
}

impl Credential {
    /// A Basic credential.
    pub fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic {
            username: username.to_string(),
            password: Secret::new(password),
        }
    }

    fn basic_header(&self) -> Option<Secret> {
        match self {
            Credential::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                Some(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
            Credential::IdentityToken(_) => None,
        }
    }
}

/// What the registry is known to want.
#[derive(Clone, Debug, Default)]
enum Scheme {
    #[default]
    Unknown,
    Anonymous,
    Basic,
    Bearer,
}

#[derive(Debug, Default)]
struct HostState {
    scheme: Scheme,
    /// Credential and, for ECR tokens, when to refresh it.
    credential: Option<(Credential, Option<Instant>)>,
    /// Bearer tokens by scope.
    tokens: HashMap<String, (Secret, Instant)>,
    /// When `credential` was fetched.
    fetched_at: Option<Instant>,
    /// ECR tokens minted for this key so far.
    ecr_minted: u64,
}

impl HostState {
    /// The cached credential, if it may be used: fresh, and unless `refresh` asks for a
    /// new ECR token, or one was fetched since `asked` (another caller's refresh).
    fn usable(&self, refresh: bool, asked: Option<Instant>) -> Option<Credential> {
        let (c, until) = self.credential.as_ref()?;
        let fresh = until.is_none_or(|u| u > Instant::now());
        let newer = asked.is_some_and(|a| self.fetched_at.is_some_and(|t| t >= a));
        (fresh && (!(refresh && until.is_some()) || newer)).then(|| c.clone())
    }
}

/// Cache key: the host, and the credential route a request of it takes (`None`: the
/// host's ambient credential: Docker config, or an ECR token of the process's identity).
type Key = (String, Option<usize>);

/// Finds, caches and refreshes credentials for every registry the client talks to. Which
/// credential a request uses is decided per destination (host and repository), see
/// [`Authenticator::with_route`].
pub struct Authenticator {
    docker: DockerConfig,
    ecr: Option<Arc<dyn EcrTokenSource>>,
    routes: Routes,
    hosts: Mutex<HashMap<Key, HostState>>,
    /// One credential fetch per key at a time (single flight).
    fetching: std::sync::Mutex<HashMap<Key, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("docker", &self.docker)
            .field("ecr", &self.ecr.is_some())
            .field("routed_hosts", &self.routes.hosts())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator over a Docker config and an optional ECR token source.
    pub fn new(docker: DockerConfig, ecr: Option<Arc<dyn EcrTokenSource>>) -> Authenticator {
        Authenticator {
            docker,
            ecr,
            routes: Routes::default(),
            hosts: Mutex::default(),
            fetching: std::sync::Mutex::default(),
        }
    }

    /// Anonymous access only.
    pub fn anonymous() -> Authenticator {
        Authenticator::new(DockerConfig::default(), None)
    }

    /// Add explicit credentials for every repository of a host; they win over the Docker
    /// config.
    pub fn with_credential(self, host: &str, credential: Credential) -> Authenticator {
        self.with_route(host, None, CredentialSource::Static(credential))
    }

    /// Use `source` for the repositories of `host` that `repositories` matches (`None`:
    /// all of them): one destination's secret or role. `repositories` is an anchored
    /// regular expression of the names the destination's `repositoryName` template
    /// renders (the engine's `RepositoryTemplate::name_regex`). Routes with a pattern are
    /// tried first, in the order added, then those for the whole host.
    pub fn with_route(
        mut self,
        host: &str,
        repositories: Option<regex::Regex>,
        source: CredentialSource,
    ) -> Authenticator {
        self.routes.add(host, repositories, source);
        self
    }

    fn key(&self, host: &str, scope: &str) -> Key {
        (
            host.to_string(),
            self.routes.find(host, scope_repository(scope)),
        )
    }

    /// The `Authorization` header to send up front for `host` and `scope`, if one is
    /// known to be wanted. Basic credentials are sent pre-emptively when the host has any
    /// (ECR and htpasswd registries), which saves the 401 round trip.
    pub async fn header(&self, host: &str, scope: &str) -> Result<Option<Secret>, Error> {
        let key = self.key(host, scope);
        let scheme = {
            let hosts = self.hosts.lock().await;
            hosts
                .get(&key)
                .map(|h| h.scheme.clone())
                .unwrap_or_default()
        };
        match scheme {
            Scheme::Anonymous => Ok(None),
            Scheme::Bearer => {
                let hosts = self.hosts.lock().await;
                Ok(hosts
                    .get(&key)
                    .and_then(|h| h.tokens.get(scope))
                    .filter(|(_, until)| *until > Instant::now())
                    .map(|(t, _)| Secret::new(format!("Bearer {}", t.expose()))))
            }
            Scheme::Unknown | Scheme::Basic => {
                let cred = self.credential(&key, false).await?;
                Ok(cred.and_then(|c| c.basic_header()))
            }
        }
    }

    /// A fresh Basic header for `host`: a cached ECR token may have expired early or been
    /// revoked, so a new one is minted (once for every caller that asks at the same time).
    /// For a 401 with a Basic challenge, and ECR's 403 "token has expired".
    pub async fn reissue(&self, host: &str, scope: &str) -> Result<Option<Secret>, Error> {
        let key = self.key(host, scope);
        let cred = self.credential(&key, true).await?;
        Ok(cred.and_then(|c| c.basic_header()))
    }

    /// Handle a 401 from `host` (served at `endpoint`): read the challenge, refresh what
    /// must be refreshed, and answer the header to retry with, or `None` when there is
    /// nothing better to send. A Bearer realm is fetched with `http` after the checks of
    /// [`realm_policy`].
    pub async fn unauthorized(
        &self,
        http: &reqwest::Client,
        host: &str,
        endpoint: &url::Url,
        scope: &str,
        www_authenticate: Option<&str>,
    ) -> Result<Option<Secret>, Error> {
        let key = self.key(host, scope);
        let challenge = www_authenticate
            .and_then(Challenge::parse)
            .unwrap_or(Challenge::Basic);
        match challenge {
            Challenge::Basic => {
                self.set_scheme(&key, Scheme::Basic).await;
                self.reissue(host, scope).await
            }
            Challenge::Bearer {
                realm,
                service,
                scope: asked,
            } => {
                self.set_scheme(&key, Scheme::Bearer).await;
                let scope_param = if scope.is_empty() {
                    asked.unwrap_or_default()
                } else {
                    scope.to_string()
                };
                let cred = self.credential(&key, false).await?;
                let (token, ttl) = token::fetch_bearer(
                    http,
                    host,
                    endpoint,
                    &realm,
                    service.as_deref(),
                    &scope_param,
                    cred.as_ref(),
                )
                .await?;
                let header = Secret::new(format!("Bearer {}", token.expose()));
                let mut hosts = self.hosts.lock().await;
                let st = hosts.entry(key).or_default();
                // Keep a margin so a token does not expire in flight (`ttl` is at most
                // MAX_TOKEN_TTL, so this cannot overflow).
                let now = Instant::now();
                let until = now
                    .checked_add(
                        ttl.saturating_sub(Duration::from_secs(10))
                            .max(Duration::from_secs(5)),
                    )
                    .unwrap_or(now);
                st.tokens.insert(scope.to_string(), (token, until));
                Ok(Some(header))
            }
        }
    }

    /// Remember that a host answered a request for `scope` without asking for credentials.
    pub async fn mark_anonymous(&self, host: &str, scope: &str) {
        let key = self.key(host, scope);
        let mut hosts = self.hosts.lock().await;
        let st = hosts.entry(key).or_default();
        if matches!(st.scheme, Scheme::Unknown) && st.credential.is_none() {
            st.scheme = Scheme::Anonymous;
        }
    }

    async fn set_scheme(&self, key: &Key, scheme: Scheme) {
        let mut hosts = self.hosts.lock().await;
        hosts.entry(key.clone()).or_default().scheme = scheme;
    }

    /// Credentials for a host and route: the route's secret, an ECR token (with the
    /// route's role, cached until shortly before expiry), or the Docker config. `refresh`
    /// forces a new ECR token.
    async fn credential(&self, key: &Key, refresh: bool) -> Result<Option<Credential>, Error> {
        let asked = Instant::now();
        if let Some(c) = self
            .hosts
            .lock()
            .await
            .get(key)
            .and_then(|h| h.usable(refresh, None))
        {
            return Ok(Some(c));
        }
        // Single flight: copies that find the key cold (or all refresh on one expiry) wait
        // for one fetch, so N concurrent jobs mint one ECR token, not N.
        let gate = self
            .fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _fetching = gate.lock().await;
        let cached = self
            .hosts
            .lock()
            .await
            .get(key)
            .and_then(|h| h.usable(refresh, Some(asked)));
        if let Some(c) = cached {
            return Ok(Some(c));
        }
        let (host, route) = key;
        let source = route.map(|i| &self.routes.get(i).source);
        let role = match source {
            Some(CredentialSource::Role(role)) => Some(role),
            _ => None,
        };
        let mut minted = 0;
        let (cred, until) = if let Some(CredentialSource::Static(c)) = source {
            (Some(c.clone()), None)
        } else if let (Some(ecr), Some(reg)) = (&self.ecr, EcrRegistry::from_host(host)) {
            let token = ecr.token(&reg, role).await?;
            minted = 1;
            // A token that claims to be (nearly) expired on arrival — clock skew, or a mock
            // — is still used for a short while: a 401 refreshes it anyway.
            let left = token
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(ECR_REFRESH_MARGIN)
                .max(ECR_MIN_REUSE);
            let cred = Credential::Basic {
                username: token.username,
                password: token.password,
            };
            (Some(cred), Some(Instant::now() + left))
        } else {
            (self.docker.credential(host)?, None)
        };
        if let Some(c) = &cred {
            let mut hosts = self.hosts.lock().await;
            let st = hosts.entry(key.clone()).or_default();
            st.credential = Some((c.clone(), until));
            st.fetched_at = Some(Instant::now());
            st.ecr_minted += minted;
        }
        Ok(cred)
    }

    /// ECR tokens minted for `host` so far, over all its credential routes.
    pub async fn ecr_tokens_minted(&self, host: &str) -> u64 {
        let hosts = self.hosts.lock().await;
        hosts
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|(_, st)| st.ecr_minted)
            .sum()
    }
}

#[cfg(test)]
mod tests;
