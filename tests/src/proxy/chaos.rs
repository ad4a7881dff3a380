//! Seeded random faults: which request gets which fault.
//!
//! The decision for a request is a pure function of the seed, the request's *attempt
//! key* (method and path, with upload-session ids taken out, see [`attempt_key`]) and how
//! many times that key was seen before. The same seed and the same requests therefore
//! give the same faults whatever the order in which concurrent requests arrive; only keys
//! that several logical requests share (`POST …/blobs/uploads/` of one repository) depend
//! on arrival order for which of them is hit.

use std::time::Duration;

use super::PathKind;

/// A fault the random mode can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// 500 Internal Server Error, without forwarding.
    Status500,
    /// 502 Bad Gateway, without forwarding.
    Status502,
    /// 503 Service Unavailable, without forwarding.
    Status503,
    /// 429 `TOOMANYREQUESTS` with `Retry-After` ([`FaultPlan::retry_after_secs`]), without
    /// forwarding.
    Throttle,
    /// Connection reset (RST): mid-way through the response body when there is one (the
    /// upstream did the work), mid-way through the request body when the client sends one
    /// (nothing forwarded), else after forwarding and before the response headers.
    Reset,
    /// Truncated body: `Content-Length` announced, half the body sent, then the connection
    /// closed (FIN). For answers without a body, the connection is closed after forwarding
    /// and before the response headers.
    Truncate,
    /// The response is delayed ([`FaultPlan::slow_delay`]) before its headers; not a
    /// failure.
    Slow,
}

impl FaultKind {
    /// Every kind that fails the request.
    pub const FAILING: [FaultKind; 6] = [
        FaultKind::Status500,
        FaultKind::Status502,
        FaultKind::Status503,
        FaultKind::Throttle,
        FaultKind::Reset,
        FaultKind::Truncate,
    ];

    /// The label recorded in [`super::RequestRecord::fault`].
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Status500 => "500",
            FaultKind::Status502 => "502",
            FaultKind::Status503 => "503",
            FaultKind::Throttle => "429",
            FaultKind::Reset => "reset",
            FaultKind::Truncate => "truncate",
            FaultKind::Slow => "slow",
        }
    }

    /// The kind a label names, if it is one of these.
    pub fn from_label(label: &str) -> Option<FaultKind> {
        FaultKind::FAILING
            .into_iter()
            .chain([FaultKind::Slow])
            .find(|k| k.label() == label)
    }

    /// Whether the client sees a failure (everything but [`FaultKind::Slow`]).
    pub fn fails(self) -> bool {
        self != FaultKind::Slow
    }
}

/// The random fault mode's settings.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seed of every decision.
    pub seed: u64,
    /// Probability that a request fails (one of [`FaultPlan::kinds`]).
    pub error_rate: f64,
    /// Probability that a request is delayed instead (on top of `error_rate`).
    pub slow_rate: f64,
    /// Delay of a slow response.
    pub slow_delay: Duration,
    /// `Retry-After` of injected 429s, in seconds.
    pub retry_after_secs: u64,
    /// Failing kinds to draw from, with weights.
    pub kinds: Vec<(FaultKind, u32)>,
    /// Endpoint kinds that may be hit; empty means all.
    pub only: Vec<PathKind>,
    /// At most this many faults (failures and delays) in all; then plain forwarding.
    pub max_faults: u64,
}

impl FaultPlan {
    /// `error_rate` failures spread evenly over the six failing kinds, 3 % slow
    /// responses of 200 ms, `Retry-After: 1`, at most 5,000 faults.
    pub fn new(seed: u64, error_rate: f64) -> Self {
        Self {
            seed,
            error_rate,
            slow_rate: 0.03,
            slow_delay: Duration::from_millis(200),
            retry_after_secs: 1,
            kinds: FaultKind::FAILING.into_iter().map(|k| (k, 1)).collect(),
            only: Vec::new(),
            max_faults: 5_000,
        }
    }

    /// The fault for the `attempt`-th request (0-based) with this attempt key, if any.
    pub fn decide(&self, key: &str, kind: PathKind, attempt: u64) -> Option<FaultKind> {
        if !self.only.is_empty() && !self.only.contains(&kind) {
            return None;
        }
        let h = splitmix64(self.seed ^ fnv1a(key.as_bytes()) ^ attempt.wrapping_mul(GOLDEN));
        let u = unit(h);
        if u < self.error_rate {
            let total: u64 = self.kinds.iter().map(|(_, w)| u64::from(*w)).sum();
            if total == 0 {
                return None;
            }
            let mut pick = splitmix64(h) % total;
            for (kind, weight) in &self.kinds {
                let w = u64::from(*weight);
                if pick < w {
                    return Some(*kind);
                }
                pick -= w;
            }
            None
        } else if u < self.error_rate + self.slow_rate {
            Some(FaultKind::Slow)
        } else {
            None
        }
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(GOLDEN);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A uniform number in [0, 1) from 53 bits of `h`.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The attempt key of a request: `METHOD path?query`, plus the `Range` when there is one
/// (a resumed blob GET is another request than the first GET). Upload sessions are taken
/// out: the monolithic `PUT …/blobs/uploads/<id>?_state=…&digest=D` becomes
/// `PUT …/blobs/uploads/?digest=D` (one key per blob, whichever session carries it); a
/// POST keeps its `mount`/`from` query.
pub fn attempt_key(method: &str, path: &str, query: Option<&str>, range: Option<&str>) -> String {
    let mut key = if let Some(at) = path.find("/blobs/uploads") {
        let prefix = &path[..at];
        let params: Vec<(&str, &str)> = query
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.split_once('='))
            .collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        match method {
            "PUT" => format!(
                "PUT {prefix}/blobs/uploads/?digest={}",
                param("digest").unwrap_or_default()
            ),
            "POST" => match (param("mount"), param("from")) {
                (Some(mount), from) => format!(
                    "POST {prefix}/blobs/uploads/?mount={mount}&from={}",
                    from.unwrap_or_default()
                ),
                _ => format!("POST {prefix}/blobs/uploads/"),
            },
            _ => format!("{method} {path}"),
        }
    } else {
        match query {
            Some(q) => format!("{method} {path}?{q}"),
            None => format!("{method} {path}"),
        }
    };
    if let Some(range) = range {
        key.push_str(" range=");
        key.push_str(range);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_depend_only_on_seed_key_and_attempt() {
        let plan = FaultPlan::new(7, 0.1);
        let a: Vec<_> = (0..1000)
            .map(|i| plan.decide(&format!("GET /v2/a/blobs/{i}"), PathKind::Blob, 0))
            .collect();
        let b: Vec<_> = (0..1000)
            .rev()
            .map(|i| plan.decide(&format!("GET /v2/a/blobs/{i}"), PathKind::Blob, 0))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert_eq!(a, b);
        let failing = a.iter().flatten().filter(|k| k.fails()).count();
        assert!((60..=140).contains(&failing), "{failing} of 1000 at 10 %");
        let other = FaultPlan::new(8, 0.1);
        let c: Vec<_> = (0..1000)
            .map(|i| other.decide(&format!("GET /v2/a/blobs/{i}"), PathKind::Blob, 0))
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn upload_sessions_are_keyed_by_digest() {
        assert_eq!(
            attempt_key(
                "PUT",
                "/v2/a/b/blobs/uploads/1234-uuid",
                Some("_state=xyz&digest=sha256:ab"),
                None
            ),
            "PUT /v2/a/b/blobs/uploads/?digest=sha256:ab"
        );
        assert_eq!(
            attempt_key("POST", "/v2/a/blobs/uploads/", None, None),
            "POST /v2/a/blobs/uploads/"
        );
        assert_eq!(
            attempt_key("GET", "/v2/a/blobs/sha256:ab", None, Some("bytes=10-")),
            "GET /v2/a/blobs/sha256:ab range=bytes=10-"
        );
    }
}
