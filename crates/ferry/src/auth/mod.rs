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

use crate::config::RepositoryTemplate;
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

/// Finds, caches and refreshes credentials for every registry the engine talks to. Which
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

    /// Use `source` for the repositories of `host` that `repositories` renders (`None`:
    /// all of them): one destination's secret or role. Routes with a template are tried
    /// first, in the order added, then those for the whole host.
    pub fn with_route(
        mut self,
        host: &str,
        repositories: Option<&RepositoryTemplate>,
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
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountingTokens(AtomicUsize);

    #[async_trait]
    impl EcrTokenSource for CountingTokens {
        async fn token(
            &self,
            registry: &EcrRegistry,
            _role: Option<&crate::aws::AssumeRole>,
        ) -> Result<EcrToken, Error> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(EcrToken {
                username: "AWS".into(),
                password: Secret::new(format!("{}-token-{n}", registry.account)),
                expires_at: SystemTime::now() + Duration::from_secs(12 * 3600),
            })
        }
    }

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    #[tokio::test]
    async fn ecr_token_is_cached_and_refreshed_on_401() {
        let tokens = Arc::new(CountingTokens(AtomicUsize::new(0)));
        let auth = Authenticator::new(DockerConfig::default(), Some(tokens.clone()));
        let h1 = auth
            .header(ECR, "repository:a:pull")
            .await
            .expect("ok")
            .expect("header");
        let h2 = auth
            .header(ECR, "repository:b:pull")
            .await
            .expect("ok")
            .expect("header");
        assert_eq!(h1, h2);
        assert_eq!(tokens.0.load(Ordering::SeqCst), 1, "cached");
        let http = reqwest::Client::new();
        let h3 = auth
            .unauthorized(
                &http,
                ECR,
                &url::Url::parse(&format!("https://{ECR}/")).expect("url"),
                "repository:a:pull",
                Some("Basic realm=\"x\""),
            )
            .await
            .expect("ok")
            .expect("header");
        assert_ne!(h1, h3, "a 401 mints a new token");
        assert_eq!(tokens.0.load(Ordering::SeqCst), 2);
        assert_eq!(format!("{h3:?}"), "<redacted>");
    }

    /// Counts like [`CountingTokens`], taking a while to answer as the real API does.
    struct SlowTokens(CountingTokens);

    #[async_trait]
    impl EcrTokenSource for SlowTokens {
        async fn token(
            &self,
            registry: &EcrRegistry,
            role: Option<&crate::aws::AssumeRole>,
        ) -> Result<EcrToken, Error> {
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.0.token(registry, role).await
        }
    }

    #[tokio::test]
    async fn concurrent_first_requests_mint_one_ecr_token() {
        let tokens = Arc::new(SlowTokens(CountingTokens(AtomicUsize::new(0))));
        let auth = Arc::new(Authenticator::new(
            DockerConfig::default(),
            Some(tokens.clone()),
        ));
        let calls = (0..30).map(|i| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.header(ECR, &format!("repository:r{i}:pull")).await })
        });
        let headers: Vec<_> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|h| h.expect("joined").expect("ok").expect("header"))
            .collect();
        assert!(headers.iter().all(|h| *h == headers[0]));
        assert_eq!(
            tokens.0.0.load(Ordering::SeqCst),
            1,
            "one token for 30 callers"
        );
        assert_eq!(auth.ecr_tokens_minted(ECR).await, 1);
        // Thirty requests answered 401 on one expiry refresh once, not thirty times.
        let http = reqwest::Client::new();
        let endpoint = url::Url::parse(&format!("https://{ECR}/")).expect("url");
        let refreshes = (0..30).map(|_| {
            auth.unauthorized(
                &http,
                ECR,
                &endpoint,
                "repository:a:pull",
                Some("Basic realm=\"x\""),
            )
        });
        for h in futures::future::join_all(refreshes).await {
            assert_ne!(h.expect("ok").expect("header"), headers[0]);
        }
        assert_eq!(tokens.0.0.load(Ordering::SeqCst), 2);
        assert_eq!(auth.ecr_tokens_minted(ECR).await, 2);
    }

    #[tokio::test]
    async fn anonymous_hosts_send_nothing() {
        let auth = Authenticator::anonymous();
        assert!(
            auth.header("127.0.0.1:5000", "")
                .await
                .expect("ok")
                .is_none()
        );
        auth.mark_anonymous("127.0.0.1:5000", "").await;
        assert!(
            auth.header("127.0.0.1:5000", "")
                .await
                .expect("ok")
                .is_none()
        );
    }

    #[tokio::test]
    async fn explicit_credentials_win() {
        let auth = Authenticator::anonymous().with_credential("h.io", Credential::basic("u", "p"));
        let h = auth.header("h.io", "").await.expect("ok").expect("header");
        assert_eq!(h.expose(), "Basic dTpw");
    }

    /// Records the role of every token it mints.
    #[derive(Default)]
    struct RoleTokens(std::sync::Mutex<Vec<Option<String>>>);

    #[async_trait]
    impl EcrTokenSource for RoleTokens {
        async fn token(
            &self,
            _registry: &EcrRegistry,
            role: Option<&crate::aws::AssumeRole>,
        ) -> Result<EcrToken, Error> {
            let arn = role.map(|r| r.role_arn.clone());
            self.0.lock().unwrap().push(arn.clone());
            Ok(EcrToken {
                username: "AWS".into(),
                password: Secret::new(format!("token-of-{}", arn.unwrap_or_default())),
                expires_at: SystemTime::now() + Duration::from_secs(12 * 3600),
            })
        }
    }

    #[tokio::test]
    async fn two_destinations_on_one_host_each_use_their_own_credential() {
        let t = |s: &str| RepositoryTemplate::parse(s).unwrap();
        let secret = |u: &str| CredentialSource::Static(Credential::basic(u, "p"));
        let auth = Authenticator::anonymous()
            .with_route("h.io", Some(&t("a/{repository}")), secret("alice"))
            .with_route("h.io", Some(&t("b/{repository}")), secret("bob"));
        let user = |h: Option<Secret>| {
            let b64 = h
                .expect("header")
                .expose()
                .trim_start_matches("Basic ")
                .to_string();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            String::from_utf8(raw).unwrap()
        };
        let a = auth
            .header("h.io", "repository:a/app:pull,push")
            .await
            .unwrap();
        let b = auth
            .header("h.io", "repository:b/app:pull,push")
            .await
            .unwrap();
        assert_eq!(user(a), "alice:p");
        assert_eq!(
            user(b),
            "bob:p",
            "the second destination is not overwritten"
        );
        assert!(
            auth.header("h.io", "repository:c/app:pull")
                .await
                .unwrap()
                .is_none(),
            "a repository no destination renders gets neither"
        );

        let tokens = Arc::new(RoleTokens::default());
        let role = |name: &str| {
            CredentialSource::Role(crate::aws::AssumeRole {
                role_arn: format!("arn:aws:iam::123456789012:role/{name}"),
                external_id: None,
            })
        };
        let auth = Authenticator::new(DockerConfig::default(), Some(tokens.clone()))
            .with_route(ECR, Some(&t("a/{repository}")), role("writer-a"))
            .with_route(ECR, Some(&t("b/{repository}")), role("writer-b"));
        let ha = auth.header(ECR, "repository:a/x:pull,push").await.unwrap();
        let hb = auth.header(ECR, "repository:b/x:pull,push").await.unwrap();
        let hs = auth.header(ECR, "repository:src:pull").await.unwrap();
        assert_ne!(ha, hb);
        assert_ne!(ha, hs);
        let mut minted = tokens.0.lock().unwrap().clone();
        minted.sort();
        assert_eq!(
            minted,
            [
                None,
                Some("arn:aws:iam::123456789012:role/writer-a".to_string()),
                Some("arn:aws:iam::123456789012:role/writer-b".to_string()),
            ],
            "one token per role, and the source read with the process's own identity"
        );
    }
}
