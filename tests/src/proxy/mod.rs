//! A test HTTP proxy in front of one registry.
//!
//! It forwards every request (streaming both ways, keeping status, headers and bodies,
//! rewriting the upstream origin in `Location` headers to its own), records each request,
//! and can be switched at run time to:
//! - redirect blob GETs (307) to a local stand-in for S3 pre-signed URLs, which serves the
//!   blob bytes but answers 400 to any request carrying `Authorization`
//!   ([`Proxy::set_redirect_blobs`]);
//! - cut the body of blob GETs after K bytes for the first N matching attempts, forwarding
//!   and recording any `Range` header ([`Proxy::cut_blob_body`]);
//! - answer the first N matching requests with an injected status such as 500, 503 or 429
//!   with `Retry-After` ([`Proxy::inject`]);
//! - inject seeded random faults at configured rates: 500 / 502 / 503, 429 with
//!   `Retry-After`, connection resets (RST) mid-body, truncated bodies (`Content-Length`
//!   announced, connection closed early) and slow responses ([`Proxy::set_random_faults`],
//!   [`FaultPlan`]), deterministic per seed;
//! - flip one byte in the middle of blob GET bodies, same length ([`Proxy::corrupt_blobs`]);
//! - play ECR's registry endpoint ([`Proxy::set_ecr_mode`], [`EcrMode`]): Basic
//!   `AWS:<token>` only and 401 for an expired token ([`Proxy::expire_token`]), 307 blob
//!   redirects to an object store that refuses `Authorization`, PATCH answered 201 with
//!   later chunks dropped, manifest PUTs throttled with 429 `TOOMANYREQUESTS`, immutable
//!   tags (400 `TAG_INVALID`), and 405 `UNSUPPORTED` manifest DELETEs;
//! - play a hostile registry ([`Proxy::set_hostile`], [`HostileMode`]): upload `Location`s
//!   on a foreign origin, blob redirects to any URL, Bearer challenges with hostile realms
//!   and token answers.
//! - play a registry that tries to exhaust its client ([`Proxy::set_limits_mode`],
//!   [`LimitsMode`]): self-linking and endless pagination, malformed `Link` headers, huge
//!   listing bodies, slow-loris bodies, no mount support, held-back manifest GETs.
//! - play a WAN link ([`Proxy::set_wan`], [`WanMode`]): a delay per request and token
//!   buckets capping body bandwidth per connection and per proxy, counted in
//!   [`Proxy::wan_stats`].
//!
//! Every request is recorded with its *attempt key* (method and path, upload session ids
//! taken out: [`chaos::attempt_key`]) so tests can bound the attempts per request.
//!
//! The servers run on a private tokio runtime, so the API is synchronous; dropping the
//! proxy stops them.

mod canned;
pub mod chaos;
mod conn;
mod ecr_mode;
mod forward;
mod hostile;
pub mod limits;
mod objstore;
pub mod wan;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use canned::Canned;
pub use chaos::{FaultKind, FaultPlan};
pub use ecr_mode::{ApiClass, EcrCounts, EcrMode, EcrQuotas, ExpireRule, api_of};
pub use hostile::{BearerMode, ForeignRequest, HostileMode, TokenReply};
pub use limits::{LimitsMode, Listing, ListingRule, SlowBody, Throttle};
pub use wan::{BucketStats, WanExchange, WanMode, WanStats, round_trips};

use anyhow::{Context, Result};
use reqwest::Method;

use crate::registry::{Credentials, Registry};

/// What kind of registry endpoint a request path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathKind {
    /// `/v2/`.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/manifests/<ref>`.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
    /// `/v2/<name>/blobs/uploads/…`.
    BlobUpload,
    /// `/v2/<name>/tags/list`.
    Tags,
    /// `/v2/<name>/referrers/<digest>`.
    Referrers,
    /// Anything else.
    Other,
}

impl PathKind {
    /// Classifies a request path (without query).
    pub fn classify(path: &str) -> Self {
        if path == "/v2" || path == "/v2/" {
            PathKind::Base
        } else if path == "/v2/_catalog" {
            PathKind::Catalog
        } else if path.contains("/blobs/uploads") {
            PathKind::BlobUpload
        } else if path.contains("/blobs/") {
            PathKind::Blob
        } else if path.contains("/manifests/") {
            PathKind::Manifest
        } else if path.ends_with("/tags/list") {
            PathKind::Tags
        } else if path.contains("/referrers/") {
            PathKind::Referrers
        } else {
            PathKind::Other
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Endpoint kind.
    pub kind: PathKind,
    /// The client's `Range` header, if any.
    pub range: Option<String>,
    /// Whether the client sent `Authorization`.
    pub authorization: bool,
    /// The `Authorization` value the client sent (a test proxy may keep it: tests check
    /// which credential reached which endpoint).
    pub authorization_value: Option<String>,
    /// The `X-Amz-Target` header (the operation of an AWS JSON API call), if any.
    pub amz_target: Option<String>,
    /// Status answered (for cut bodies: the status before the cut).
    pub status: u16,
    /// The fault applied, if any: `inject`, `redirect`, `cut`, `corrupt`; a random fault's
    /// [`FaultKind::label`] (`500`, `502`, `503`, `429`, `reset`, `truncate`, `slow`); or
    /// an ECR-mode answer (`ecr-unauthorized`, `ecr-expired`, `ecr-throttled`,
    /// `ecr-tag-invalid`, `ecr-delete-unsupported`, `ecr-patch-201`, `ecr-patch-dropped`).
    pub fault: Option<&'static str>,
    /// The attempt key ([`chaos::attempt_key`]).
    pub key: String,
    /// A reset or truncation broke the response mid-way through its body (after the
    /// headers), rather than before the headers.
    pub mid_body: bool,
    /// When the request arrived, since the proxy started.
    pub at: Duration,
}

/// Cut blob GET bodies after `after_bytes` for the first `attempts` matching requests.
#[derive(Debug, Clone)]
pub struct CutRule {
    /// Only GETs of this blob (`sha256:…`); `None` matches every blob GET.
    pub digest: Option<String>,
    /// Bytes of body delivered before the connection is cut.
    pub after_bytes: u64,
    /// How many matching requests to cut.
    pub attempts: u32,
}

/// Answer the first `times` matching requests with `status` instead of forwarding them.
#[derive(Debug, Clone)]
pub struct InjectRule {
    /// Only this method; `None` matches any.
    pub method: Option<Method>,
    /// Only this endpoint kind; `None` matches any.
    pub kind: Option<PathKind>,
    /// Status to answer (e.g. 500, 503, 429).
    pub status: u16,
    /// `Retry-After` seconds to send, if any.
    pub retry_after: Option<u64>,
    /// How many requests to answer this way.
    pub times: u32,
}

/// What the pre-signed-URL stand-in saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectStoreStats {
    /// Blob GETs served.
    pub served: u64,
    /// Requests refused with 400 because they carried `Authorization`.
    pub rejected_auth: u64,
    /// Requests refused with 403 because the URL had no signature.
    pub unsigned: u64,
}

#[derive(Debug, Default)]
struct Faults {
    redirect_blobs: bool,
    cut: Option<CutRule>,
    inject: Vec<InjectRule>,
    random: Option<FaultPlan>,
    /// Blob digests whose GET bodies get a byte flipped (`None` inside: every blob).
    corrupt: Option<Option<String>>,
    ecr: Option<EcrMode>,
    expire: Vec<ExpireRule>,
    canned: Vec<Canned>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    public: String,
    objstore: String,
    upstream_credentials: Option<Credentials>,
    client: reqwest::Client,
    started: Instant,
    faults: Mutex<Faults>,
    log: Mutex<Vec<RequestRecord>>,
    objstore_stats: Mutex<ObjectStoreStats>,
    /// Requests seen per attempt key (the random mode's attempt index).
    attempts: Mutex<HashMap<String, u64>>,
    /// Random faults injected so far (for [`FaultPlan::max_faults`]).
    random_faults: AtomicU64,
    ecr_state: Mutex<ecr_mode::EcrState>,
    hostile: Mutex<hostile::HostileState>,
    limits: limits::LimitsState,
    wan: wan::WanState,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn record(&self, record: RequestRecord) {
        lock(&self.log).push(record);
    }

    fn take_inject(&self, method: &Method, kind: PathKind) -> Option<InjectRule> {
        let mut faults = lock(&self.faults);
        let rule = faults.inject.iter_mut().find(|rule| {
            rule.times > 0
                && rule.method.as_ref().is_none_or(|m| m == method)
                && rule.kind.is_none_or(|k| k == kind)
        })?;
        rule.times -= 1;
        Some(rule.clone())
    }

    fn canned(&self, method: &Method, path: &str) -> Option<Canned> {
        if method != Method::GET {
            return None;
        }
        lock(&self.faults)
            .canned
            .iter()
            .find(|c| c.path == path)
            .cloned()
    }

    fn redirect_blobs(&self) -> bool {
        let faults = lock(&self.faults);
        faults.redirect_blobs || faults.ecr.as_ref().is_some_and(|e| e.redirect_blobs)
    }

    fn ecr_mode(&self) -> Option<EcrMode> {
        lock(&self.faults).ecr.clone()
    }

    /// Takes one refusal of a matching [`ExpireRule`]: `Some(denied)` when there is one.
    fn take_expire(&self, method: &Method, kind: PathKind) -> Option<bool> {
        let mut faults = lock(&self.faults);
        let rule = faults.expire.iter_mut().find(|rule| {
            rule.times > 0
                && rule.method.as_ref().is_none_or(|m| m == method)
                && rule.kind.is_none_or(|k| k == kind)
        })?;
        rule.times -= 1;
        Some(rule.denied)
    }

    /// This request's attempt index for its key (0 for the first).
    fn next_attempt(&self, key: &str) -> u64 {
        let mut attempts = lock(&self.attempts);
        let n = attempts.entry(key.to_string()).or_insert(0);
        let attempt = *n;
        *n += 1;
        attempt
    }

    /// The random fault for this request, if the random mode is on and its budget left.
    fn decide(&self, key: &str, kind: PathKind, attempt: u64) -> Option<FaultKind> {
        let faults = lock(&self.faults);
        let plan = faults.random.as_ref()?;
        let fault = plan.decide(key, kind, attempt)?;
        let before = self.random_faults.fetch_add(1, Ordering::SeqCst);
        if before >= plan.max_faults {
            self.random_faults.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(fault)
    }

    fn slow_delay(&self) -> Duration {
        lock(&self.faults)
            .random
            .as_ref()
            .map_or(Duration::ZERO, |p| p.slow_delay)
    }

    fn retry_after_secs(&self) -> u64 {
        lock(&self.faults)
            .random
            .as_ref()
            .map_or(1, |p| p.retry_after_secs)
    }

    fn corrupts(&self, path: &str) -> bool {
        match &lock(&self.faults).corrupt {
            Some(Some(digest)) => path.ends_with(digest.as_str()),
            Some(None) => true,
            None => false,
        }
    }

    fn take_cut(&self, path: &str) -> Option<u64> {
        let mut faults = lock(&self.faults);
        let rule = faults.cut.as_mut()?;
        let matches = rule.digest.as_deref().is_none_or(|d| path.ends_with(d));
        if !matches || rule.attempts == 0 {
            return None;
        }
        rule.attempts -= 1;
        Some(rule.after_bytes)
    }
}

/// The running proxy and its object-store stand-in.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Answers every `GET` of `canned.path` with the canned answer instead of forwarding.
    pub fn answer(&self, canned: Canned) {
        let mut faults = lock(&self.shared.faults);
        faults.canned.retain(|c| c.path != canned.path);
        faults.canned.push(canned);
    }

    /// Starts a proxy in front of `registry` (using its credentials to fetch blobs for the
    /// object-store stand-in).
    pub fn start(registry: &Registry) -> Result<Self> {
        Self::start_for(&registry.url(), registry.credentials().cloned())
    }

    /// Starts a proxy in front of the registry at `upstream` (`http://127.0.0.1:PORT`).
    pub fn start_for(upstream: &str, upstream_credentials: Option<Credentials>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-test-proxy")
            .enable_all()
            .build()
            .context("building the proxy runtime")?;
        let proxy_listener = bind()?;
        let store_listener = bind()?;
        let port = proxy_listener.local_addr()?.port();
        let store_port = store_listener.local_addr()?.port();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("building the proxy's upstream client")?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            public: format!("http://127.0.0.1:{port}"),
            objstore: format!("http://127.0.0.1:{store_port}"),
            upstream_credentials,
            client,
            started: Instant::now(),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            objstore_stats: Mutex::new(ObjectStoreStats::default()),
            attempts: Mutex::new(HashMap::new()),
            random_faults: AtomicU64::new(0),
            ecr_state: Mutex::new(ecr_mode::EcrState::default()),
            hostile: Mutex::default(),
            limits: limits::LimitsState::default(),
            wan: wan::WanState::default(),
        });
        let proxy_app = forward::router(shared.clone());
        let store_app = objstore::router(shared.clone());
        runtime.block_on(async {
            let proxy_listener =
                conn::FaultListener::new(tokio::net::TcpListener::from_std(proxy_listener)?);
            let store_listener = tokio::net::TcpListener::from_std(store_listener)?;
            let proxy_app = proxy_app.into_make_service_with_connect_info::<conn::ConnHandle>();
            tokio::spawn(async move { axum::serve(proxy_listener, proxy_app).await });
            tokio::spawn(async move { axum::serve(store_listener, store_app).await });
            anyhow::Ok(())
        })?;
        Ok(Self {
            shared,
            port,
            runtime: Some(runtime),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.public.clone()
    }

    /// `127.0.0.1:PORT` (use it in image references).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Time since the proxy started, on the clock of [`RequestRecord::at`].
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Base URL of the pre-signed-URL stand-in.
    pub fn object_store_url(&self) -> String {
        self.shared.objstore.clone()
    }

    /// Turns 307 redirects of blob GETs to the object-store stand-in on or off.
    pub fn set_redirect_blobs(&self, on: bool) {
        lock(&self.shared.faults).redirect_blobs = on;
    }

    /// Cuts blob GET bodies as described by `rule` (replacing any previous cut rule).
    pub fn cut_blob_body(&self, rule: CutRule) {
        lock(&self.shared.faults).cut = Some(rule);
    }

    /// Adds a status-injection rule (rules are tried in the order added).
    pub fn inject(&self, rule: InjectRule) {
        lock(&self.shared.faults).inject.push(rule);
    }

    /// Turns on seeded random faults (replacing any previous plan); the budget of
    /// [`FaultPlan::max_faults`] starts again.
    pub fn set_random_faults(&self, plan: FaultPlan) {
        self.shared.random_faults.store(0, Ordering::SeqCst);
        lock(&self.shared.faults).random = Some(plan);
    }

    /// Turns the random faults off.
    pub fn clear_random_faults(&self) {
        lock(&self.shared.faults).random = None;
    }

    /// Flips one byte in the middle of the body of every GET of blob `digest` (of every
    /// blob with `None`), keeping the length: the registry serves content that no longer
    /// matches its digest.
    pub fn corrupt_blobs(&self, digest: Option<&str>) {
        lock(&self.shared.faults).corrupt = Some(digest.map(str::to_string));
    }

    /// Plays ECR's registry endpoint as `mode` says (replacing any previous mode).
    pub fn set_ecr_mode(&self, mode: EcrMode) {
        lock(&self.shared.faults).ecr = Some(mode);
    }

    /// ECR mode: the next request carrying a valid token gets 401 "expired".
    pub fn expire_token(&self) {
        self.expire_token_on(ExpireRule {
            method: None,
            kind: None,
            times: 1,
            denied: false,
        });
    }

    /// ECR mode: the next `rule.times` requests matching `rule` that carry a valid token
    /// get 401 "expired".
    pub fn expire_token_on(&self, rule: ExpireRule) {
        lock(&self.shared.faults).expire.push(rule);
    }

    /// Plays a WAN link as `mode` says (replacing any previous WAN mode; its counts start
    /// again). [`Proxy::heal`] leaves it on; [`Proxy::clear_wan`] turns it off.
    pub fn set_wan(&self, mode: WanMode) {
        self.shared.wan.set(Some(mode));
    }

    /// Turns the WAN mode off (and forgets its counts).
    pub fn clear_wan(&self) {
        self.shared.wan.set(None);
    }

    /// What the WAN mode delayed and throttled since it was last set.
    pub fn wan_stats(&self) -> WanStats {
        self.shared.wan.stats()
    }

    /// Removes every fault and the ECR mode: plain forwarding from now on.
    pub fn heal(&self) {
        *lock(&self.shared.faults) = Faults::default();
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the recorded requests, the attempt indexes of the random mode and the
    /// object-store stats.
    pub fn reset_counts(&self) {
        lock(&self.shared.log).clear();
        lock(&self.shared.attempts).clear();
        *lock(&self.shared.objstore_stats) = ObjectStoreStats::default();
    }

    /// Requests seen per attempt key ([`chaos::attempt_key`]) since the last
    /// [`Proxy::reset_counts`].
    pub fn attempts_by_key(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for record in lock(&self.shared.log).iter() {
            *counts.entry(record.key.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Requests per fault label (see [`RequestRecord::fault`]) since the last
    /// [`Proxy::reset_counts`].
    pub fn fault_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for record in lock(&self.shared.log).iter() {
            if let Some(fault) = record.fault {
                *counts.entry(fault).or_insert(0) += 1;
            }
        }
        counts
    }

    /// What ECR mode refused, throttled or dropped since the last
    /// [`Proxy::reset_counts`].
    pub fn ecr_counts(&self) -> EcrCounts {
        EcrCounts::from_log(&lock(&self.shared.log))
    }

    /// The access key IDs of the SigV4 `Authorization` headers seen so far
    /// (`AWS4-HMAC-SHA256 Credential=<AKID>/<date>/<region>/<service>/aws4_request, …`),
    /// one per signed request, in order.
    pub fn access_key_ids(&self) -> Vec<String> {
        lock(&self.shared.log)
            .iter()
            .filter_map(|r| {
                r.authorization_value
                    .as_deref()
                    .and_then(sigv4_access_key_id)
            })
            .map(str::to_owned)
            .collect()
    }

    /// Number of requests seen so far.
    pub fn total_requests(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Requests counted by method and endpoint kind.
    pub fn counts(&self) -> BTreeMap<(String, PathKind), usize> {
        let mut counts = BTreeMap::new();
        for record in lock(&self.shared.log).iter() {
            *counts
                .entry((record.method.clone(), record.kind))
                .or_insert(0) += 1;
        }
        counts
    }

    /// Requests seen with this method and kind.
    pub fn count(&self, method: &str, kind: PathKind) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.method == method && r.kind == kind)
            .count()
    }

    /// What the object-store stand-in saw.
    pub fn object_store_stats(&self) -> ObjectStoreStats {
        *lock(&self.shared.objstore_stats)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The access key ID of a SigV4 `Authorization` value.
pub fn sigv4_access_key_id(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let at = rest.find("Credential=")? + "Credential=".len();
    rest[at..].split('/').next().filter(|id| !id.is_empty())
}

fn bind() -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
    listener
        .set_nonblocking(true)
        .context("making the proxy listener non-blocking")?;
    Ok(listener)
}
