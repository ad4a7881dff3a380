//! Request and byte counters, shared by a copy and everything it does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Method;

/// Counters for one unit of work. Cheap to update from many tasks at once.
#[derive(Debug, Default)]
pub struct Stats {
    get: AtomicU64,
    head: AtomicU64,
    post: AtomicU64,
    put: AtomicU64,
    patch: AtomicU64,
    delete: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    parent: Option<std::sync::Arc<Stats>>,
}

impl Stats {
    /// Counters that also count into `parent` (a run's totals).
    pub fn child(parent: &std::sync::Arc<Stats>) -> Stats {
        Stats {
            parent: Some(parent.clone()),
            ..Stats::default()
        }
    }

    /// Count one request.
    pub fn request(&self, method: &Method) {
        if let Some(p) = &self.parent {
            p.request(method);
        }
        let c = match *method {
            Method::GET => &self.get,
            Method::HEAD => &self.head,
            Method::POST => &self.post,
            Method::PUT => &self.put,
            Method::PATCH => &self.patch,
            Method::DELETE => &self.delete,
            _ => &self.get,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one retry.
    pub fn retry(&self) {
        if let Some(p) = &self.parent {
            p.retry();
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one 429 answer.
    pub fn throttle(&self) {
        if let Some(p) = &self.parent {
            p.throttle();
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests by method (only methods used), for reports.
    pub fn by_method(&self) -> BTreeMap<String, u64> {
        [
            ("GET", &self.get),
            ("HEAD", &self.head),
            ("POST", &self.post),
            ("PUT", &self.put),
            ("PATCH", &self.patch),
            ("DELETE", &self.delete),
        ]
        .into_iter()
        .map(|(m, c)| (m.to_string(), c.load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.by_method().values().sum()
    }

    /// Retries made.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// 429 answers seen.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}
