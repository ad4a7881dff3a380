//! ECR's request quotas, kept on the client side: one token bucket per registry host and
//! API class, shared by every copy of the process, taken before each request goes out
//! (each retry and each resend included).
//!
//! ECR counts the registry endpoint's requests against the quotas of its API actions
//! (per account and region, i.e. per registry host): manifest PUT → `PutImage`, upload
//! POST → `InitiateLayerUpload`, PATCH → `UploadLayerPart`, upload PUT →
//! `CompleteLayerUpload`, blob HEAD → `BatchCheckLayerAvailability`, blob GET →
//! `GetDownloadUrlForLayer`, manifest GET/HEAD → `BatchGetImage`. Other requests (tag
//! lists, referrers, the catalog, manifest DELETE) have no quota here.
//!
//! **Burst.** A bucket lets [`burst`] requests go at once (a tenth of a second's worth,
//! at least one) and then one every `1/rate`. ECR does not document how it measures its
//! rates. A bucket holding a whole second's worth could send `2 × rate` in the first
//! second (the full bucket plus one second of refill): a registry counting fixed
//! one-second windows would throttle that, and one keeping a one-second token bucket
//! (as the test proxy's ECR mode does) would have no room left for requests bunched by
//! network or scheduling delay. With a tenth of a second's worth, any one-second window
//! holds at most `1.1 × rate`, and a server-side bucket of one second's worth still has
//! `0.9 s` of slack for bunching; the sustained rate is the full quota either way. (At
//! least a tenth also keeps the high rates reachable: a waiter wakes at the timer's
//! millisecond granularity and takes every token accrued meanwhile.)
//!
//! **Order.** A request waits its turn in its class's queue (first come, first served),
//! then for its token, then for a slot of its host's concurrency limit, and takes the
//! token only once it holds the slot: it goes out right after, so tokens taken 100 ms
//! apart never leave together after a long wait for a slot, and no slot is held while
//! waiting for a token.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use tokio::time::Instant;

use super::limiter::{HostLimit, Permit};

/// The ECR API action a registry request is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiClass {
    /// Manifest PUT (default 10/s).
    PutImage,
    /// Upload POST, mounts included (default 100/s).
    InitiateLayerUpload,
    /// Upload PATCH (default 500/s).
    UploadLayerPart,
    /// Upload PUT, the last request of an upload (default 100/s).
    CompleteLayerUpload,
    /// Blob HEAD (default 1,000/s).
    BatchCheckLayerAvailability,
    /// Blob GET (default 3,000/s).
    GetDownloadUrlForLayer,
    /// Manifest GET and HEAD (default 2,000/s).
    BatchGetImage,
}

/// What a request addresses, for [`ApiClass::classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/<name>/manifests/<reference>`.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
    /// `/v2/<name>/blobs/uploads/…`: the upload POST and the session's URL.
    Upload,
    /// Anything else (tag lists, referrers, the catalog).
    Other,
}

impl ApiClass {
    /// Every class.
    pub const ALL: [ApiClass; 7] = [
        ApiClass::PutImage,
        ApiClass::InitiateLayerUpload,
        ApiClass::UploadLayerPart,
        ApiClass::CompleteLayerUpload,
        ApiClass::BatchCheckLayerAvailability,
        ApiClass::GetDownloadUrlForLayer,
        ApiClass::BatchGetImage,
    ];

    /// ECR's documented default rate, requests per second (per account and region).
    pub fn ecr_default(self) -> u32 {
        match self {
            ApiClass::PutImage => 10,
            ApiClass::InitiateLayerUpload | ApiClass::CompleteLayerUpload => 100,
            ApiClass::UploadLayerPart => 500,
            ApiClass::BatchCheckLayerAvailability => 1_000,
            ApiClass::BatchGetImage => 2_000,
            ApiClass::GetDownloadUrlForLayer => 3_000,
        }
    }

    /// The API action's name (`PutImage`).
    pub fn name(self) -> &'static str {
        match self {
            ApiClass::PutImage => "PutImage",
            ApiClass::InitiateLayerUpload => "InitiateLayerUpload",
            ApiClass::UploadLayerPart => "UploadLayerPart",
            ApiClass::CompleteLayerUpload => "CompleteLayerUpload",
            ApiClass::BatchCheckLayerAvailability => "BatchCheckLayerAvailability",
            ApiClass::GetDownloadUrlForLayer => "GetDownloadUrlForLayer",
            ApiClass::BatchGetImage => "BatchGetImage",
        }
    }

    /// The class named by its key in `registries.<host>.rates` (`putImage`).
    pub fn from_config_key(key: &str) -> Option<ApiClass> {
        ApiClass::ALL.into_iter().find(|class| {
            let name = class.name();
            key.len() == name.len()
                && key[..1] == name[..1].to_ascii_lowercase()
                && key[1..] == name[1..]
        })
    }

    /// The class of a request: `None` for requests no quota counts.
    pub fn classify(method: &Method, endpoint: Endpoint) -> Option<ApiClass> {
        use Endpoint::{Blob, Manifest, Upload};
        Some(match (method.as_str(), endpoint) {
            ("PUT", Manifest) => ApiClass::PutImage,
            ("GET" | "HEAD", Manifest) => ApiClass::BatchGetImage,
            ("POST", Upload) => ApiClass::InitiateLayerUpload,
            ("PATCH", Upload) => ApiClass::UploadLayerPart,
            ("PUT", Upload) => ApiClass::CompleteLayerUpload,
            ("HEAD", Blob) => ApiClass::BatchCheckLayerAvailability,
            ("GET", Blob) => ApiClass::GetDownloadUrlForLayer,
            _ => return None,
        })
    }
}

/// Requests a bucket of `rate` per second lets go at once: a tenth of a second's worth,
/// at least one (see the module documentation).
pub fn burst(rate: u32) -> u32 {
    rate.max(1).div_ceil(10)
}

/// A token bucket in its virtual-scheduling form (GCRA): `tat` is when the bucket is
/// next full-less-one, requests conform while `now ≥ tat − tolerance`.
#[derive(Debug)]
struct Bucket {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let interval = Duration::from_secs(1) / rate.max(1);
        Bucket {
            interval,
            tolerance: interval * (burst(rate) - 1),
            tat: None,
        }
    }

    /// How long until a request may go.
    fn wait(&self, now: Instant) -> Duration {
        self.tat.map_or(Duration::ZERO, |tat| {
            tat.saturating_duration_since(now)
                .saturating_sub(self.tolerance)
        })
    }

    /// Take a token if one is there.
    fn try_take(&mut self, now: Instant) -> bool {
        if !self.wait(now).is_zero() {
            return false;
        }
        self.tat = Some(self.tat.map_or(now, |t| t.max(now)) + self.interval);
        true
    }

    /// Take the next token, there or not: how long to wait before using it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let wait = self.wait(now);
        self.tat = Some(self.tat.map_or(now, |t| t.max(now)) + self.interval);
        wait
    }
}

/// One host's quota for one class.
#[derive(Debug)]
pub(crate) struct Quota {
    bucket: Mutex<Bucket>,
    /// The line of requests waiting for a token (tokio's mutex is fair: first come,
    /// first served).
    line: tokio::sync::Mutex<()>,
}

impl Quota {
    fn new(rate: u32) -> Quota {
        Quota {
            bucket: Mutex::new(Bucket::new(rate)),
            line: tokio::sync::Mutex::new(()),
        }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait in line, then for a token, then for a slot of `limit`; the token is taken
    /// with the slot held (the request goes out right after).
    pub(crate) async fn admit(&self, limit: &Arc<HostLimit>) -> Permit {
        let _turn = self.line.lock().await;
        loop {
            let wait = self.bucket().wait(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let permit = limit.acquire().await;
            if self.bucket().try_take(Instant::now()) {
                return permit;
            }
            // A request that already held its slot took the token meanwhile.
            drop(permit);
        }
    }

    /// Take a token for a request that holds its slot already (a resend after a 401, a
    /// resume inside a transfer), out of line, and wait until it may go. Waiting in line
    /// could wait for this request's own slot.
    pub(crate) async fn reserve(&self) {
        let wait = self.bucket().reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A host's bucket for a class, or none (no quota).
type Bucketed = Option<Arc<Quota>>;

/// The quotas of every host: ECR's defaults for ECR hosts, overridden class by class by
/// [`super::ClientOptions::rates`]; other hosts have quotas only for the classes set there.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    overrides: BTreeMap<String, BTreeMap<ApiClass, u32>>,
    buckets: Mutex<HashMap<(String, ApiClass), Bucketed>>,
}

impl Quotas {
    pub(crate) fn new(overrides: BTreeMap<String, BTreeMap<ApiClass, u32>>) -> Quotas {
        Quotas {
            overrides,
            buckets: Mutex::default(),
        }
    }

    /// The rate `host` allows for `class`, if it has a quota.
    pub(crate) fn rate(&self, host: &str, class: ApiClass) -> Option<u32> {
        self.overrides
            .get(host)
            .and_then(|rates| rates.get(&class).copied())
            .or_else(|| {
                crate::host::Registry::from_host(host)
                    .is_ecr()
                    .then(|| class.ecr_default())
            })
            .filter(|rate| *rate > 0)
    }

    /// Whether a quota paces each request class of `host` (every ECR registry; another
    /// only when its config gives all seven rates).
    pub(crate) fn paces_every_class(&self, host: &str) -> bool {
        ApiClass::ALL
            .into_iter()
            .all(|class| self.rate(host, class).is_some())
    }

    /// The bucket of `host` for `class` (one per process), if it has a quota.
    pub(crate) fn quota(&self, host: &str, class: ApiClass) -> Option<Arc<Quota>> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry((host.to_string(), class))
            .or_insert_with(|| self.rate(host, class).map(|r| Arc::new(Quota::new(r))))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_onto_ecrs_api_classes() {
        use Endpoint::*;
        let cases = [
            (Method::PUT, Manifest, Some(ApiClass::PutImage)),
            (Method::GET, Manifest, Some(ApiClass::BatchGetImage)),
            (Method::HEAD, Manifest, Some(ApiClass::BatchGetImage)),
            (Method::DELETE, Manifest, None),
            (Method::POST, Upload, Some(ApiClass::InitiateLayerUpload)),
            (Method::PATCH, Upload, Some(ApiClass::UploadLayerPart)),
            (Method::PUT, Upload, Some(ApiClass::CompleteLayerUpload)),
            (Method::DELETE, Upload, None),
            (
                Method::HEAD,
                Blob,
                Some(ApiClass::BatchCheckLayerAvailability),
            ),
            (Method::GET, Blob, Some(ApiClass::GetDownloadUrlForLayer)),
            (Method::GET, Other, None),
        ];
        for (method, endpoint, class) in cases {
            assert_eq!(
                ApiClass::classify(&method, endpoint),
                class,
                "{method} {endpoint:?}"
            );
        }
        for class in ApiClass::ALL {
            let key = format!(
                "{}{}",
                &class.name()[..1].to_lowercase(),
                &class.name()[1..]
            );
            assert_eq!(ApiClass::from_config_key(&key), Some(class), "{key}");
        }
        assert_eq!(ApiClass::from_config_key("PutImage"), None);
        let total: u32 = ApiClass::ALL.iter().map(|c| c.ecr_default()).sum();
        assert_eq!(total, 10 + 100 + 500 + 100 + 1_000 + 3_000 + 2_000);
    }

    /// Over a simulated clock stepping 1 ms at a time and a client that always wants to
    /// send, the bucket lets through at most `rate × t + burst` in every span `t` from
    /// the start, and at least `rate × t` (it never wastes the quota).
    #[test]
    fn the_bucket_admits_at_most_rate_times_t_plus_burst() {
        for rate in [1, 10, 15, 100, 500, 3_000] {
            let mut bucket = Bucket::new(rate);
            let start = Instant::now();
            let mut taken = 0u64;
            for ms in 0..=3_000u64 {
                let now = start + Duration::from_millis(ms);
                while bucket.try_take(now) {
                    taken += 1;
                }
                let allowed = u64::from(rate) * ms / 1000 + u64::from(burst(rate));
                assert!(taken <= allowed, "rate {rate}: {taken} by {ms} ms");
                assert!(
                    taken >= u64::from(rate) * ms / 1000,
                    "rate {rate}: only {taken} by {ms} ms"
                );
            }
        }
    }

    #[test]
    fn reservations_and_takes_share_one_bucket() {
        let mut bucket = Bucket::new(10);
        let start = Instant::now();
        assert!(bucket.try_take(start));
        // The next token is 100 ms away: a reservation waits for it, and a take before
        // then (or at then: the reservation has it) fails.
        assert_eq!(bucket.reserve(start), Duration::from_millis(100));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
        assert!(bucket.try_take(start + Duration::from_millis(200)));
        // Idle time refills up to the burst only (one token at 10/s).
        let later = start + Duration::from_secs(5);
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn ecr_hosts_get_the_defaults_and_overrides_win() {
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let quotas = Quotas::new(BTreeMap::from([
            (ecr.to_string(), BTreeMap::from([(ApiClass::PutImage, 20)])),
            (
                "ghcr.io".to_string(),
                BTreeMap::from([(ApiClass::BatchGetImage, 50)]),
            ),
        ]));
        assert_eq!(quotas.rate(ecr, ApiClass::PutImage), Some(20));
        assert_eq!(quotas.rate(ecr, ApiClass::BatchGetImage), Some(2_000));
        let other_ecr = "210987654321.dkr.ecr.eu-west-1.amazonaws.com";
        assert_eq!(quotas.rate(other_ecr, ApiClass::PutImage), Some(10));
        assert_eq!(quotas.rate("ghcr.io", ApiClass::PutImage), None);
        assert_eq!(quotas.rate("ghcr.io", ApiClass::BatchGetImage), Some(50));
        assert_eq!(quotas.rate("127.0.0.1:5000", ApiClass::PutImage), None);
        let a = quotas.quota(ecr, ApiClass::PutImage).expect("quota");
        let b = quotas.quota(ecr, ApiClass::PutImage).expect("quota");
        assert!(Arc::ptr_eq(&a, &b), "one bucket per host and class");
        assert!(quotas.quota("ghcr.io", ApiClass::PutImage).is_none());
    }

    #[test]
    fn a_host_is_paced_when_every_request_class_has_a_quota() {
        let all: BTreeMap<ApiClass, u32> = ApiClass::ALL.into_iter().map(|c| (c, 5)).collect();
        let quotas = Quotas::new(BTreeMap::from([
            (
                "ghcr.io".to_string(),
                BTreeMap::from([(ApiClass::PutImage, 5)]),
            ),
            ("harbor.example".to_string(), all),
        ]));
        assert!(quotas.paces_every_class("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(quotas.paces_every_class("harbor.example"));
        assert!(!quotas.paces_every_class("ghcr.io"));
        assert!(!quotas.paces_every_class("127.0.0.1:5000"));
    }
}
