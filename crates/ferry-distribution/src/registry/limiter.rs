//! Per-host concurrency limits that halve on 429 and grow back by one per window of
//! successes (additive increase, multiplicative decrease).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Successes needed at the current limit before it grows by one.
const GROW_AFTER: usize = 8;

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    successes: usize,
}

/// One host's limit.
#[derive(Debug)]
pub struct HostLimit {
    max: usize,
    state: Mutex<State>,
    notify: Notify,
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct Permit {
    host: Arc<HostLimit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut s) = self.host.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.host.notify.notify_waiters();
    }
}

impl HostLimit {
    fn new(max: usize) -> HostLimit {
        HostLimit {
            max,
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                successes: 0,
            }),
            notify: Notify::new(),
        }
    }

    /// Wait for a slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Permit { host: self.clone() };
                }
            }
            notified.await;
        }
    }

    /// A request succeeded: grow the limit by one after a window of successes.
    pub fn success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.successes += 1;
        if s.successes >= s.limit.max(GROW_AFTER) && s.limit < self.max {
            s.limit += 1;
            s.successes = 0;
            drop(s);
            self.notify.notify_waiters();
        }
    }

    /// The host answered 429: halve the limit (at least 1).
    pub fn throttled(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.limit = (s.limit / 2).max(1);
        s.successes = 0;
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).limit
    }
}

/// Limits for every host.
#[derive(Debug)]
pub struct Limiters {
    max: usize,
    paced_max: usize,
    hosts: Mutex<HashMap<String, Arc<HostLimit>>>,
}

impl Limiters {
    /// Limits starting (and capped) at `max` concurrent requests per host, and at
    /// `paced_max` per host whose requests quotas pace.
    pub fn new(max: usize, paced_max: usize) -> Limiters {
        Limiters {
            max: max.max(1),
            paced_max: paced_max.max(1),
            hosts: Mutex::default(),
        }
    }

    /// The limit for a host; `paced`: a quota paces each of its request classes (the
    /// first call for a host decides).
    pub fn host(&self, host: &str, paced: bool) -> Arc<HostLimit> {
        let max = if paced { self.paced_max } else { self.max };
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(HostLimit::new(max)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn aimd() {
        let l = Limiters::new(8, 64);
        assert_eq!(l.host("paced", true).limit(), 64);
        let h = l.host("a", false);
        assert_eq!(h.limit(), 8);
        h.throttled();
        assert_eq!(h.limit(), 4);
        h.throttled();
        h.throttled();
        h.throttled();
        assert_eq!(h.limit(), 1);
        for _ in 0..GROW_AFTER {
            h.success();
        }
        assert_eq!(h.limit(), 2);
        for _ in 0..1000 {
            h.success();
        }
        assert_eq!(h.limit(), 8, "never above the max");
    }

    #[tokio::test]
    async fn blocks_at_the_limit() {
        let l = Limiters::new(1, 1);
        let h = l.host("a", false);
        let p = h.acquire().await;
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.acquire().await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(p);
        let _p2 = tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .expect("released")
            .expect("join");
    }
}
