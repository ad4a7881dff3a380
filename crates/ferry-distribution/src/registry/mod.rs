//! The OCI Distribution client: one pooled HTTP client for every registry, with auth,
//! per-host AIMD limits, ECR's request quotas per host and API class ([`quota`]), request
//! counting, and retries (backon) in this one layer.

mod blobs;
mod endpoints;
mod limiter;
mod manifests;
pub use crate::net::netguard;
mod origin;
mod pagination;
pub mod quota;
mod response;
mod stats;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

pub use crate::net::describe_reqwest;
pub use blobs::MountOutcome;
pub use endpoints::{ENDPOINTS_ENV, Endpoints, is_loopback};
pub use limiter::Limiters;
pub use manifests::{ManifestHead, RawManifest};
pub use pagination::{MAX_LISTING_BYTES, MAX_LISTING_PAGE_BYTES, MAX_LISTING_PAGES, next_page};
pub use quota::ApiClass;
pub use response::is_archived_answer;
pub(crate) use response::{parse_retry_after, read_capped};
pub use stats::Stats;
pub use tls::parse_ca_certificate;

use crate::auth::{Authenticator, Secret};
use crate::error::{Error, Retry, is_retryable_status};
use limiter::{HostLimit, Permit};
use netguard::AddrClass;
use quota::{Endpoint, Quota, Quotas};
use response::{expired_token_answer, parse_error_body, read_bounded, url_path};

/// A repository in a registry: where requests go.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repo {
    /// Registry host as users name it (`123456789012.dkr.ecr.us-east-1.amazonaws.com`).
    pub registry: String,
    /// Repository path.
    pub repository: String,
}

impl Repo {
    /// A repository.
    pub fn new(registry: impl Into<String>, repository: impl Into<String>) -> Repo {
        Repo {
            registry: registry.into(),
            repository: repository.into(),
        }
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Tuning for the client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Starting (and maximum) concurrent requests per registry host.
    pub max_per_host: usize,
    /// The same for a host whose every request class a quota paces (ECR, or a registry
    /// given all seven `rates`): its token buckets keep the rate, so more requests may be
    /// in flight over a long round trip. 96 at 40 ms is 2,400/s, above BatchGetImage's
    /// 2,000/s, where 16 would be 400/s.
    pub max_per_paced_host: usize,
    /// Attempts after the first, for each request.
    pub max_retries: usize,
    /// First backoff delay.
    pub min_backoff: Duration,
    /// Longest backoff delay, and the cap on a `Retry-After` we honour.
    pub max_backoff: Duration,
    /// Longest a whole request for a small document may take, body included (manifests,
    /// listings, HEADs, upload sessions, tokens): a registry dribbling one byte per
    /// `read_timeout` cannot hold a request longer. Default [`REQUEST_DEADLINE`].
    pub request_deadline: Duration,
    /// Blob GETs and PUTs may take `blob_deadline` plus one second per `blob_min_rate`
    /// bytes of the blob, body included. Default [`BLOB_DEADLINE`].
    pub blob_deadline: Duration,
    /// The slowest transfer rate a blob deadline allows for, in bytes per second.
    /// Default [`BLOB_MIN_RATE`].
    pub blob_min_rate: u64,
    /// Request rates (per second) by registry host and ECR API class, instead of ECR's
    /// defaults ([`ApiClass::ecr_default`]) at an ECR host, class by class; a host that
    /// is not ECR has a quota only for the classes given here.
    pub rates: BTreeMap<String, BTreeMap<ApiClass, u32>>,
    /// Extra certificate authorities by registry (`host[:port]`; the port is ignored):
    /// PEM certificates trusted for that host only, beside the system's roots.
    pub ca_certificates: BTreeMap<String, Vec<String>>,
}

/// Default [`ClientOptions::request_deadline`]: 5 minutes.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5 * 60);
/// Default [`ClientOptions::blob_deadline`]: 10 minutes (plus the size-based allowance).
pub const BLOB_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// Default [`ClientOptions::blob_min_rate`]: 256 KiB/s (a 1 GiB layer may take 10 min +
/// 68 min).
pub const BLOB_MIN_RATE: u64 = 256 * 1024;

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_per_host: 16,
            max_per_paced_host: 96,
            max_retries: 5,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            request_deadline: REQUEST_DEADLINE,
            blob_deadline: BLOB_DEADLINE,
            blob_min_rate: BLOB_MIN_RATE,
            rates: BTreeMap::new(),
            ca_certificates: BTreeMap::new(),
        }
    }
}

struct Inner {
    /// For the registries' own endpoints (set by the operator).
    http: reqwest::Client,
    /// For URLs on other origins that registries send (redirects, upload locations,
    /// token realms), by the registry's address class: their names resolve through
    /// [`GuardedResolver`].
    outbound: Mutex<HashMap<AddrClass, reqwest::Client>>,
    /// For blob upload PUTs: no read timeout, which in `reqwest` also runs while the
    /// request body is still being sent (a PUT longer than `read_timeout` would fail);
    /// the blob deadline bounds it instead.
    upload: reqwest::Client,
    auth: Authenticator,
    endpoints: Endpoints,
    limiters: Limiters,
    /// Request quotas by host and API class, shared by every copy of the process.
    quotas: Quotas,
    options: ClientOptions,
    /// Per registry host: whether its referrers API exists, learnt from its first answer
    /// and kept for the client's life (a process; a Lambda container).
    referrers_support: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
}

/// The registry client. Cloning is cheap; [`RegistryClient::with_stats`] gives a clone that
/// also counts into a unit of work's own [`Stats`].
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("endpoints", &self.inner.endpoints)
            .field("auth", &self.inner.auth)
            .finish()
    }
}

/// What scope a request needs, for Bearer tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// One request, re-buildable for every attempt.
pub(crate) struct Call<'a> {
    pub repo: &'a Repo,
    pub method: Method,
    /// Path after `/v2/<repository>/`, or an absolute URL (upload locations).
    pub target: Target,
    pub headers: HeaderMap,
    pub access: Access,
    /// An extra repository to ask pull access for (cross-repository mount).
    pub mount_from: Option<&'a str>,
}

/// Whether an attempt takes a slot of its host's concurrency limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Wait for a slot and hold it until the response headers are in.
    Take,
    /// The transfer this request continues already holds one (a blob resume inside the
    /// upload PUT that holds the slot): waiting for another could wait for itself.
    Held,
}

/// Where a call goes.
pub(crate) enum Target {
    /// Relative to the repository: `manifests/v1`, `blobs/uploads/?mount=…`.
    Repo(String),
    /// A full URL (upload session locations).
    Url(String),
}

impl Target {
    /// What the call addresses, for its quota class.
    fn endpoint(&self) -> Endpoint {
        match self {
            Target::Repo(p) if p.starts_with("manifests/") => Endpoint::Manifest,
            Target::Repo(p) if p.starts_with("blobs/uploads") => Endpoint::Upload,
            Target::Repo(p) if p.starts_with("blobs/") => Endpoint::Blob,
            Target::Url(u) if url_path(u).contains("/blobs/uploads/") => Endpoint::Upload,
            _ => Endpoint::Other,
        }
    }
}

impl RegistryClient {
    /// A client with its own pooled HTTP connections (rustls).
    pub fn new(
        auth: Authenticator,
        endpoints: Endpoints,
        options: ClientOptions,
    ) -> Result<RegistryClient, Error> {
        let http = origin::build_http(&options, None, true)?;
        let upload = origin::build_http(&options, None, false)?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                upload,
                outbound: Mutex::default(),
                auth,
                endpoints,
                limiters: Limiters::new(options.max_per_host, options.max_per_paced_host),
                quotas: Quotas::new(options.rates.clone()),
                options,
                referrers_support: Mutex::default(),
            }),
            stats: Arc::new(Stats::default()),
        })
    }

    /// A clone that counts into `stats`.
    pub fn with_stats(&self, stats: Arc<Stats>) -> RegistryClient {
        RegistryClient {
            inner: self.inner.clone(),
            stats,
        }
    }

    /// The counters this clone counts into.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The endpoint map.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The request rate `host` is held to for `class`, if it has a quota (ECR's default
    /// at an ECR host unless [`ClientOptions::rates`] says otherwise).
    pub fn quota_rate(&self, host: &str, class: ApiClass) -> Option<u32> {
        self.inner.quotas.rate(host, class)
    }

    /// Wait for what a request to `host` needs before it goes out: with [`Slot::Take`]
    /// its turn and token of the host's quota for its class (if any) and a slot of
    /// `limit`; with [`Slot::Held`] only the token. The quota, for resends.
    async fn admit(
        &self,
        host: &str,
        method: &Method,
        endpoint: Endpoint,
        limit: &Arc<HostLimit>,
        slot: Slot,
    ) -> (Option<Permit>, Option<Arc<Quota>>) {
        let quota = ApiClass::classify(method, endpoint)
            .and_then(|class| self.inner.quotas.quota(host, class));
        let permit = match (slot, &quota) {
            (Slot::Take, Some(q)) => Some(q.admit(limit).await),
            (Slot::Take, None) => Some(limit.acquire().await),
            (Slot::Held, Some(q)) => {
                q.reserve().await;
                None
            }
            (Slot::Held, None) => None,
        };
        (permit, quota)
    }

    /// ECR tokens this client minted for `host` so far (one per registry and role while
    /// it stays valid).
    pub async fn ecr_tokens_minted(&self, host: &str) -> u64 {
        self.inner.auth.ecr_tokens_minted(host).await
    }

    fn url(&self, call: &Call<'_>) -> String {
        match &call.target {
            Target::Url(u) => u.clone(),
            Target::Repo(path) => format!(
                "{}/v2/{}/{}",
                self.inner.endpoints.base_url(&call.repo.registry),
                call.repo.repository,
                path
            ),
        }
    }

    fn scope(call: &Call<'_>) -> String {
        let actions = match call.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let mut s = format!("repository:{}:{actions}", call.repo.repository);
        if let Some(from) = call.mount_from {
            s.push_str(&format!(" repository:{from}:pull"));
        }
        s
    }

    /// One attempt: limit slot, auth header, send, and on 401 one refresh and resend
    /// (only for requests whose body can be sent again).
    async fn attempt(
        &self,
        call: &Call<'_>,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, Error> {
        self.attempt_with(call, body, Slot::Take, None).await
    }

    /// `host`'s concurrency limit: the paced one where a quota paces each request class.
    pub(crate) fn host_limit(&self, host: &str) -> Arc<limiter::HostLimit> {
        let paced = self.inner.quotas.paces_every_class(host);
        self.inner.limiters.host(host, paced)
    }

    /// [`RegistryClient::attempt`] with a choice of slot and a total deadline other than
    /// [`ClientOptions::request_deadline`].
    async fn attempt_with(
        &self,
        call: &Call<'_>,
        body: Option<Bytes>,
        slot: Slot,
        deadline: Option<Duration>,
    ) -> Result<reqwest::Response, Error> {
        let host = &call.repo.registry;
        let limit = self.host_limit(host);
        let (_permit, quota) = self
            .admit(host, &call.method, call.target.endpoint(), &limit, slot)
            .await;
        let scope = Self::scope(call);
        let url = self.url(call);
        let parsed = url::Url::parse(&url)
            .map_err(|_| Error::Unsupported(format!("bad request URL for {host}")))?;
        // Credentials only for the registry's own origin.
        let endpoint = self.endpoint(host)?;
        let (client, own) = self.client_for(host, &endpoint, &parsed)?;
        let mut header = if own {
            self.inner.auth.header(host, &scope).await?
        } else {
            None
        };
        let mut refreshed = !own;
        let mut resend = false;
        loop {
            // A resend (after a 401) is one more request against the quota.
            if std::mem::replace(&mut resend, true)
                && let Some(q) = &quota
            {
                q.reserve().await;
            }
            let mut req = client
                .request(call.method.clone(), parsed.clone())
                .headers(call.headers.clone());
            if let Some(d) = deadline {
                req = req.timeout(d);
            }
            if let Some(h) = &header {
                req = req.header(http::header::AUTHORIZATION, h.expose());
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            } else if call.method == Method::PUT || call.method == Method::POST {
                req = req.header(http::header::CONTENT_LENGTH, "0");
            }
            self.stats.request(&call.method);
            let resp = req
                .send()
                .await
                .map_err(|e| Self::transport_error(host, &parsed, host, &e))?;
            let status = resp.status();
            // The path only: a query (a pre-signed URL's signature) is never logged.
            tracing::debug!(
                method = %call.method,
                host,
                path = parsed.path(),
                status = status.as_u16(),
                "registry request"
            );
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                let new = self.refresh_auth(host, &scope, &resp).await?;
                if new.is_some() {
                    header = new;
                    continue;
                }
            }
            // ECR's own way to say a token expired (a Bearer registry's 403 is final).
            let ecr = crate::reference::EcrRegistry::from_host(host).is_some();
            let resp = if status == StatusCode::FORBIDDEN && !refreshed && ecr {
                let (resp, expired) = expired_token_answer(resp).await;
                if expired {
                    refreshed = true;
                    if let Some(new) = self.inner.auth.reissue(host, &scope).await? {
                        header = Some(new);
                        continue;
                    }
                }
                resp
            } else {
                resp
            };
            if status == StatusCode::TOO_MANY_REQUESTS {
                limit.throttled();
                self.stats.throttle();
            } else if status.is_success() {
                limit.success();
                if header.is_none() {
                    self.inner.auth.mark_anonymous(host, &scope).await;
                }
            }
            return Ok(resp);
        }
    }

    /// Send with retries: answers whose status is in `ok` are returned; every other status
    /// becomes an [`Error`], retried when [`Error::is_retryable`] says so, honouring
    /// `Retry-After`.
    pub(crate) async fn send(
        &self,
        call: &Call<'_>,
        body: Option<Bytes>,
        ok: &[u16],
    ) -> Result<reqwest::Response, Error> {
        self.retrying(|| self.send_once(call, body.clone(), ok))
            .await
    }

    /// One attempt of [`RegistryClient::send`], for callers that retry a larger unit
    /// themselves (a request and the reading of its body), so budgets never nest.
    pub(crate) async fn send_once(
        &self,
        call: &Call<'_>,
        body: Option<Bytes>,
        ok: &[u16],
    ) -> Result<reqwest::Response, Error> {
        let resp = self.attempt(call, body).await?;
        if ok.contains(&resp.status().as_u16()) {
            Ok(resp)
        } else {
            Err(self.status_error(call, resp).await.0)
        }
    }

    /// GET a small document and read its body, at most `limit` bytes (more is
    /// [`Error::ResponseTooLarge`]), retried as one unit (a body broken after the status
    /// line is retried too): status, headers and body.
    pub(crate) async fn get_document(
        &self,
        call: &Call<'_>,
        ok: &[u16],
        limit: u64,
    ) -> Result<(u16, HeaderMap, Bytes), Error> {
        self.retrying(|| async {
            let resp = self.send_once(call, None, ok).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            // Only a 200's body is used; others are left unread.
            let body = if status == 200 {
                let what = format!("{} {}", call.method, url_path(&self.url(call)));
                read_capped(resp, limit, &call.repo.registry, |_| {
                    Error::ResponseTooLarge {
                        registry: call.repo.registry.clone(),
                        what: what.clone(),
                        limit,
                    }
                })
                .await?
            } else {
                Bytes::new()
            };
            Ok((status, headers, body))
        })
        .await
    }

    /// Run `op` under this client's retry policy ([`ClientOptions::max_retries`], backoff
    /// from [`ClientOptions::min_backoff`] to [`ClientOptions::max_backoff`] with jitter):
    /// an error is tried again while [`Retry::is_retryable`] says so, after its
    /// `Retry-After` when it has one (capped at the longest backoff). Each retry is counted
    /// in this clone's [`Stats`]. Public for callers that retry a larger unit of work
    /// made of several requests (the engine's blob transfer: GET, upload and PUT), whose
    /// error may be theirs (`E`) rather than this crate's.
    pub async fn retrying<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        E: Retry,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let o = &self.inner.options;
        let policy = ExponentialBuilder::default()
            .with_min_delay(o.min_backoff)
            .with_max_delay(o.max_backoff)
            .with_max_times(o.max_retries)
            .with_jitter();
        let cap = o.max_backoff;
        op.retry(policy)
            .when(E::is_retryable)
            .adjust(move |e: &E, dur| match (dur, e.retry_after()) {
                (Some(_), Some(ra)) => Some(ra.min(cap)),
                (d, _) => d,
            })
            .notify(|e: &E, d| {
                self.stats.retry();
                tracing::debug!(error = %e, delay_ms = d.as_millis() as u64, "retrying");
            })
            .await
    }

    /// Turn an unexpected answer into an error, with the registry's error code (if it
    /// sent one in the distribution error format).
    pub(crate) async fn status_error(
        &self,
        call: &Call<'_>,
        resp: reqwest::Response,
    ) -> (Error, Option<String>) {
        let status = resp.status().as_u16();
        let retry_after = parse_retry_after(resp.headers());
        let body = read_bounded(resp, 8 * 1024).await;
        let (code, message) = parse_error_body(&body);
        let registry = call.repo.registry.clone();
        let repository = call.repo.repository.clone();
        let path = match &call.target {
            Target::Repo(p) => format!("/v2/{repository}/{}", p.split('?').next().unwrap_or(p)),
            Target::Url(_) => format!("/v2/{repository}/blobs/uploads/<session>"),
        };
        let err = match status {
            _ if is_archived_answer(status, code.as_deref(), &message) => Error::Archived {
                registry,
                repository,
                reference: path.rsplit('/').next().unwrap_or_default().to_string(),
                message,
            },
            401 | 403 => Error::Auth {
                registry,
                repository,
                status,
                message,
            },
            404 => Error::NotFound {
                registry,
                repository,
                what: path,
            },
            _ => Error::Registry {
                registry,
                method: call.method.to_string(),
                url: path,
                status,
                message,
                retry_after: if is_retryable_status(status) {
                    retry_after
                } else {
                    None
                },
            },
        };
        (err, code)
    }

    /// The total deadline of one blob GET or PUT of `size` bytes:
    /// [`ClientOptions::blob_deadline`] plus one second per
    /// [`ClientOptions::blob_min_rate`] bytes.
    pub(crate) fn blob_deadline(&self, size: u64) -> Duration {
        let o = &self.inner.options;
        o.blob_deadline
            .saturating_add(Duration::from_secs(size / o.blob_min_rate.max(1)))
    }

    /// The header to send to `host` for `scope`, if any (for following redirects).
    pub(crate) async fn auth_header(
        &self,
        host: &str,
        scope: &str,
    ) -> Result<Option<Secret>, Error> {
        self.inner.auth.header(host, scope).await
    }
}
