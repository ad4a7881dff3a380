//! Fault injection: 200 image copies through proxies that fail 10 % of requests at
//! random (500 / 502 / 503, 429 with `Retry-After: 1`, connection resets mid-body,
//! truncated bodies) and delay 3 % more by 200 ms, seeded and deterministic; and blob
//! bytes altered in flight.
//!
//! What must hold:
//! - every copy converges within its one `ferry` run (no re-run hides a failure);
//! - skopeo and the registry API find every destination image whole, digests as built;
//! - no tag ever points at an incomplete image, checked through the destination
//!   registry's own API during and after every step;
//! - no request is attempted more than 1 + 5 times (the engine's retry budget), and the
//!   retries the reports count match the faults the proxies injected;
//! - altered blob bytes end in `digest-mismatch` with nothing committed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::Fixture;
use ferry_e2e::imageset::{SetSpec, push_image_set};
use ferry_e2e::integrity::TagAuditor;
use ferry_e2e::proxy::{FaultKind, FaultPlan, PathKind, Proxy, RequestRecord};
use ferry_e2e::registry::image_reference;
use ferry_e2e::{Registry, error_codes, run_ferry, skopeo, verify_absent, verify_copy};
use reqwest::Method;
use serde_json::{Value, json};

/// The engine's budget: one attempt plus `ClientOptions::max_retries` (5).
const MAX_ATTEMPTS: usize = 1 + 5;
/// Share of requests failed on purpose, at each proxy.
const ERROR_RATE: f64 = 0.10;
/// `ferry copy` processes at once (they mostly sleep in backoff).
const WORKERS: usize = 8;

/// Source and destination registries, each behind a fault proxy, with the image set.
struct World {
    src: Registry,
    dst: Registry,
    src_proxy: Proxy,
    dst_proxy: Proxy,
    images: Vec<Fixture>,
    repos: Vec<String>,
}

fn world(prefix: &str, repos: usize, tags: usize, seed: u64) -> World {
    let src = Registry::start().expect("source registry");
    let dst = Registry::start().expect("destination registry");
    let spec = SetSpec::small(prefix, repos, tags, seed);
    let started = Instant::now();
    let images = push_image_set(&src, &spec).expect("image set");
    eprintln!(
        "pushed {} images over {} repositories in {:?}",
        images.len(),
        repos,
        started.elapsed()
    );
    let src_proxy = Proxy::start(&src).expect("source proxy");
    let dst_proxy = Proxy::start(&dst).expect("destination proxy");
    World {
        src,
        dst,
        src_proxy,
        dst_proxy,
        images,
        repos: spec.repositories(),
    }
}

/// Fault totals of one proxy, from its request log.
#[derive(Debug, Default, Clone, Copy)]
struct Injected {
    /// Requests failed on purpose.
    failing: usize,
    /// Of those, failures the engine may absorb without a retry: breaks mid-way through a
    /// blob GET body (resumed with a `Range` request), and breaks mid-way through the body
    /// of a non-2xx answer (the engine does not read the "404 page not found" of a
    /// missing referrer or tag).
    absorbable: usize,
    /// 429s.
    throttled: usize,
    /// Slow responses.
    slow: usize,
}

impl Injected {
    fn of(records: &[RequestRecord]) -> Self {
        let mut out = Self::default();
        for r in records {
            let Some(kind) = r.fault.and_then(FaultKind::from_label) else {
                continue;
            };
            if !kind.fails() {
                out.slow += 1;
                continue;
            }
            out.failing += 1;
            if kind == FaultKind::Throttle {
                out.throttled += 1;
            }
            let resumable = r.method == "GET" && r.kind == PathKind::Blob;
            let unread = !(200..300).contains(&r.status);
            if r.mid_body && (resumable || unread) {
                out.absorbable += 1;
            }
        }
        out
    }

    fn add(self, other: Self) -> Self {
        Self {
            failing: self.failing + other.failing,
            absorbable: self.absorbable + other.absorbable,
            throttled: self.throttled + other.throttled,
            slow: self.slow + other.slow,
        }
    }

    /// Every injected failure the engine could not absorb cost it exactly one retry.
    fn assert_explains(&self, retries: usize) {
        assert_eq!(
            retries,
            self.failing - self.absorbable,
            "engine retries vs the {} failures injected, {} of them absorbable without a \
             retry (mid-body breaks of blob GETs resumed with Range, or of bodies the engine \
             does not read)",
            self.failing,
            self.absorbable
        );
    }
}

/// Attempts of one logical request, per attempt key: a request is attempted again only
/// after a failure, so the longest run of consecutive failed attempts of a key, plus the
/// attempt that ended it, is the most attempts any one request of that key took. (A key
/// asked for twice in a run, such as a source tag HEADed by the listing and again by the
/// copy, counts as two requests; session POSTs of a repository, which every blob's
/// upload shares, are left out: the digest-keyed PUT of each blob bounds its transfer.)
fn attempts_per_request(records: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut run: BTreeMap<&str, usize> = BTreeMap::new();
    let mut most: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        if r.method == "POST" && r.key.ends_with("/blobs/uploads/") {
            continue;
        }
        let failed = r
            .fault
            .and_then(FaultKind::from_label)
            .is_some_and(FaultKind::fails);
        let current = run.entry(&r.key).or_insert(0);
        *current += 1;
        let best = most.entry(r.key.clone()).or_insert(0);
        *best = (*best).max(*current);
        if !failed {
            *current = 0;
        }
    }
    most
}

/// Asserts no request took more than [`MAX_ATTEMPTS`]; returns how many attempt keys
/// had their worst request take 1, 2, 3… attempts.
fn assert_attempts_bounded(name: &str, records: &[RequestRecord]) -> BTreeMap<usize, usize> {
    let most = attempts_per_request(records);
    let over: Vec<_> = most.iter().filter(|(_, n)| **n > MAX_ATTEMPTS).collect();
    assert!(
        over.is_empty(),
        "{name}: requests attempted more than {MAX_ATTEMPTS} times: {over:#?}"
    );
    let mut histogram = BTreeMap::new();
    for n in most.values() {
        *histogram.entry(*n).or_insert(0usize) += 1;
    }
    histogram
}

fn merge(into: &mut BTreeMap<usize, usize>, from: BTreeMap<usize, usize>) {
    for (attempts, keys) in from {
        *into.entry(attempts).or_insert(0) += keys;
    }
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// Runs the auditor over the destination in a loop until stopped; the first failure
/// is kept.
struct BackgroundAudit {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(TagAuditor, Option<String>)>,
}

impl BackgroundAudit {
    fn start(auditor: TagAuditor, repos: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut auditor = auditor;
            while !flag.load(Ordering::SeqCst) {
                if let Err(err) = auditor.check(&repos) {
                    let text = format!("{err:#}");
                    // The registry itself answering 5xx under load says nothing about
                    // the tags: audit again on the next pass.
                    if text.contains("status 5") {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    return (auditor, Some(text));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (auditor, None)
        });
        Self { stop, handle }
    }

    fn finish(self) -> TagAuditor {
        self.stop.store(true, Ordering::SeqCst);
        let (auditor, failure) = self.handle.join().expect("audit thread");
        if let Some(failure) = failure {
            panic!("a tag pointed at an incomplete image during the run: {failure}");
        }
        auditor
    }
}

/// Every destination tag is a fixture's tag with the fixture's digest, and every fixture
/// is there; a sample is verified in full by skopeo (`skopeo copy --all` to an OCI
/// layout), and all 200 by `skopeo inspect --raw` digests.
fn verify_destination(world: &World, auditor: &mut TagAuditor) {
    let audit = auditor.check(&world.repos).expect("final audit");
    assert_eq!(
        audit.tags.len(),
        world.images.len(),
        "tags at the destination"
    );
    for image in &world.images {
        assert_eq!(
            audit.tags.get(&(image.repo.clone(), image.tag.clone())),
            Some(&image.digest),
            "{}:{} at the destination",
            image.repo,
            image.tag
        );
    }
    let started = Instant::now();
    let sample: Vec<&Fixture> = world.images.iter().step_by(23).collect();
    for image in &sample {
        verify_copy(&world.src, image, &world.dst, &image.repo).expect("skopeo verification");
    }
    for image in &world.images {
        let reference = world.dst.reference(&image.repo, &image.tag);
        let digest = skopeo::inspect_raw_digest(&reference, None).expect("skopeo inspect");
        assert_eq!(digest, image.digest, "{reference}");
    }
    eprintln!(
        "skopeo: {} images copied out in full, {} digests checked, in {:?}",
        sample.len(),
        world.images.len(),
        started.elapsed()
    );
}

fn write_sync_config(dir: &Path, src_host: &str, dst_host: &str, prefix: &str) -> String {
    let config = json!({
        "source": {"registry": src_host},
        "rules": [{
            "repositoryFilters": [{"filter": prefix, "filterType": "PREFIX_MATCH"}],
            "destinations": [{"registry": dst_host}]
        }]
    });
    let path = dir.join("ferry.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    path.display().to_string()
}

/// An error and its sources, one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// `ferry sync` of 200 tags (20 repositories × 10, every fourth a two-platform index,
/// all sharing a 1 MiB base layer) with both proxies failing 10 % of requests, listing
/// requests (`_catalog`, `tags/list`) included: one run, every image copied.
#[test]
fn sync_of_200_images_converges_in_one_run_under_10_percent_faults() {
    sync_under_faults("team", 61, &[]);
}

/// The same sync with faults on every request but the listing ones (`_catalog`,
/// `tags/list`), which the engine bug above cannot survive: the copies themselves, with
/// the blob index shared by the whole run, converge in one run.
#[test]
fn sync_of_200_images_converges_in_one_run_under_10_percent_faults_outside_listing() {
    sync_under_faults(
        "crew",
        65,
        &[
            PathKind::Base,
            PathKind::Manifest,
            PathKind::Blob,
            PathKind::BlobUpload,
            PathKind::Referrers,
            PathKind::Other,
        ],
    );
}

fn sync_under_faults(prefix: &str, seed: u64, only: &[PathKind]) {
    let world = world(prefix, 20, 10, seed);
    for (proxy, fault_seed) in [
        (&world.src_proxy, seed << 8),
        (&world.dst_proxy, seed << 8 | 1),
    ] {
        let mut plan = FaultPlan::new(fault_seed, ERROR_RATE);
        plan.only = only.to_vec();
        proxy.set_random_faults(plan);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_sync_config(
        dir.path(),
        &world.src_proxy.host(),
        &world.dst_proxy.host(),
        prefix,
    );
    let audit = BackgroundAudit::start(
        TagAuditor::new(&world.dst).expect("auditor"),
        world.repos.clone(),
    );

    let started = Instant::now();
    let out = run_ferry(
        [
            "sync",
            "-c",
            &config,
            "--output",
            "json",
            "--concurrency",
            "8",
        ],
        &no_env(),
    )
    .expect("ferry runs");
    let elapsed = started.elapsed();
    let mut auditor = audit.finish();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let src_log = world.src_proxy.requests();
    let dst_log = world.dst_proxy.requests();
    let injected = Injected::of(&src_log).add(Injected::of(&dst_log));
    let failures: Vec<&Value> = report["items"]
        .as_array()
        .map(|items| items.iter().filter(|i| i["outcome"] != "copied").collect())
        .unwrap_or_default();
    let listing_faults: Vec<String> = src_log
        .iter()
        .chain(&dst_log)
        .filter(|r| matches!(r.kind, PathKind::Catalog | PathKind::Tags) && r.fault.is_some())
        .map(|r| format!("{} {} -> {:?}", r.method, r.path, r.fault))
        .collect();
    assert!(
        out.status.success(),
        "sync failed under faults ({injected:?}); faults on listing requests: \
         {listing_faults:#?}; not copied: {failures:#?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        u(&report, &["totals", "copied"]),
        200,
        "{}",
        report["totals"]
    );
    assert_eq!(u(&report, &["totals", "failed"]), 0);

    // Faults really happened, and the engine's retries account for them.
    let retries = u(&report, &["requests", "retries"]) as usize;
    let throttled = u(&report, &["requests", "throttled"]) as usize;
    let total = src_log.len() + dst_log.len();
    eprintln!(
        "sync: {elapsed:?}, {} requests at the proxies ({} engine-counted), injected {injected:?} \
         (source {:?}, destination {:?}); engine retries {retries}, throttled {throttled}; \
         {} audit passes",
        total,
        u(&report, &["requests", "total"]),
        world.src_proxy.fault_counts(),
        world.dst_proxy.fault_counts(),
        auditor.passes()
    );
    assert!(
        injected.failing as f64 >= 0.07 * total as f64,
        "too few faults: {injected:?} of {total}"
    );
    assert!(retries > 0);
    injected.assert_explains(retries);
    assert_eq!(throttled, injected.throttled, "429s seen by the engine");
    let src_hist = assert_attempts_bounded("source", &src_log);
    let dst_hist = assert_attempts_bounded("destination", &dst_log);
    eprintln!(
        "attempt keys by the most attempts one request took: source {src_hist:?}, \
         destination {dst_hist:?}"
    );

    verify_destination(&world, &mut auditor);
}

/// Runs `ferry copy SRC DST --output json` and returns its output and the report.
fn copy(src: &str, dst: &str) -> (Output, Value) {
    let out = run_ferry(["copy", src, dst, "--output", "json"], &no_env()).expect("ferry runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

/// One `ferry copy` run, for attributing proxy records to it.
struct Run {
    repo: String,
    /// The run's window on the source proxy's clock, and on the destination's.
    windows: [(Duration, Duration); 2],
    retries: usize,
    throttled: usize,
}

/// The records of `log` that belong to `run`: its repository, during its run (the
/// copies of one repository run one after the other, and repositories share no path).
fn records_of(
    log: &[RequestRecord],
    repo: &str,
    window: (Duration, Duration),
) -> Vec<RequestRecord> {
    let needle = format!("/v2/{repo}/");
    log.iter()
        .filter(|r| r.path.starts_with(&needle) && r.at >= window.0 && r.at <= window.1)
        .cloned()
        .collect()
}

/// 200 `ferry copy` runs (eight at a time, the copies of one repository in order) with
/// both proxies failing 10 % of requests: every run succeeds by itself, and after every
/// run the destination's tags all point at complete images.
#[test]
fn two_hundred_copy_runs_each_converge_under_10_percent_faults() {
    let world = world("app", 20, 10, 62);
    world
        .src_proxy
        .set_random_faults(FaultPlan::new(0x5eed_0003, ERROR_RATE));
    world
        .dst_proxy
        .set_random_faults(FaultPlan::new(0x5eed_0004, ERROR_RATE));
    let auditor = Mutex::new(TagAuditor::new(&world.dst).expect("auditor"));
    let runs = Mutex::new(Vec::new());
    let started = Instant::now();
    // Repositories are handed out one at a time to eight workers; each runs the copies
    // of its repository in tag order.
    let queue = Mutex::new(
        world
            .repos
            .iter()
            .collect::<std::collections::VecDeque<_>>(),
    );
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(repo) = next else { break };
                    for image in world.images.iter().filter(|i| &i.repo == repo) {
                        let src = image_reference(&world.src_proxy.host(), repo, &image.tag);
                        let dst = image_reference(&world.dst_proxy.host(), repo, &image.tag);
                        let from = [world.src_proxy.elapsed(), world.dst_proxy.elapsed()];
                        let (out, report) = copy(&src, &dst);
                        let to = [world.src_proxy.elapsed(), world.dst_proxy.elapsed()];
                        assert!(
                            out.status.success(),
                            "ferry copy {src} failed under faults:\n{}",
                            describe(&out)
                        );
                        assert_eq!(report["digest"], image.digest.as_str());
                        // After this step every tag of the repository is whole.
                        auditor
                            .lock()
                            .expect("auditor")
                            .check(std::slice::from_ref(repo))
                            .expect("no incomplete image behind a tag");
                        runs.lock().expect("runs").push(Run {
                            repo: repo.clone(),
                            windows: [(from[0], to[0]), (from[1], to[1])],
                            retries: u(&report, &["requests", "retries"]) as usize,
                            throttled: u(&report, &["requests", "throttled"]) as usize,
                        });
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let runs = runs.into_inner().expect("runs");
    assert_eq!(runs.len(), 200);
    let src_log = world.src_proxy.requests();
    let dst_log = world.dst_proxy.requests();
    let injected = Injected::of(&src_log).add(Injected::of(&dst_log));
    let retries: usize = runs.iter().map(|r| r.retries).sum();
    let throttled: usize = runs.iter().map(|r| r.throttled).sum();
    let total = src_log.len() + dst_log.len();
    eprintln!(
        "200 copies: {elapsed:?}, {total} requests at the proxies, injected {injected:?} \
         (source {:?}, destination {:?}); engine retries {retries}, throttled {throttled}",
        world.src_proxy.fault_counts(),
        world.dst_proxy.fault_counts(),
    );
    assert!(
        injected.failing as f64 >= 0.07 * total as f64,
        "too few faults: {injected:?} of {total}"
    );
    assert!(retries > 0);
    injected.assert_explains(retries);
    assert_eq!(throttled, injected.throttled);

    // Per run: no request attempted more than the budget.
    let mut histogram = BTreeMap::new();
    for run in &runs {
        for (i, (name, log)) in [("source", &src_log), ("destination", &dst_log)]
            .into_iter()
            .enumerate()
        {
            let records = records_of(log, &run.repo, run.windows[i]);
            merge(&mut histogram, assert_attempts_bounded(name, &records));
        }
    }
    eprintln!("attempt keys by the most attempts one request took, over all runs: {histogram:?}");

    let mut auditor = auditor.into_inner().expect("auditor");
    verify_destination(&world, &mut auditor);
}

/// A byte of the shared base layer flipped in flight (same length) on every GET: the
/// copy of a two-platform index fails with `digest-mismatch` and commits nothing that a
/// pull could find — no tag, no manifest, and not the altered blob.
#[test]
fn blob_altered_in_flight_is_a_digest_mismatch_and_nothing_is_committed() {
    let src = Registry::start().expect("source registry");
    let dst = Registry::start().expect("destination registry");
    let spec = SetSpec {
        index_every: 1,
        ..SetSpec::small("altered", 1, 1, 63)
    };
    let images = push_image_set(&src, &spec).expect("image");
    let image = &images[0];
    assert_eq!(image.manifests.len(), 3, "an index and two platforms");
    let base = image
        .blobs
        .iter()
        .find(|b| b.size == spec.base_size as u64)
        .expect("base layer")
        .clone();
    let proxy = Proxy::start(&src).expect("proxy");
    proxy.corrupt_blobs(Some(&base.digest));
    let src_ref = image_reference(&proxy.host(), &image.repo, &image.tag);
    let dst_ref = dst.reference(&image.repo, &image.tag);
    let (out, _) = copy(&src_ref, &dst_ref);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        error_codes(&out).contains(&"digest-mismatch".to_string()),
        "{}",
        describe(&out)
    );
    let altered = proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("corrupt"))
        .count();
    assert!(altered >= 1, "the proxy never altered the blob");
    // A digest mismatch is final: the blob was fetched once per platform at most.
    assert!(altered <= 2, "{altered} GETs of the altered blob");

    verify_absent(image, &dst, &image.repo).expect("no tag and no index");
    for manifest in &image.manifests {
        assert_eq!(
            dst.manifest_digest(&image.repo, manifest).expect("HEAD"),
            None,
            "manifest {manifest} committed"
        );
    }
    assert!(
        !dst.has_blob(&image.repo, &base.digest).expect("HEAD blob"),
        "the altered blob was committed"
    );
    assert!(dst.tags(&image.repo).expect("tags").is_empty());

    // Without the alteration the same copy goes through.
    proxy.heal();
    let (out, _) = copy(&src_ref, &dst_ref);
    assert!(out.status.success(), "{}", describe(&out));
    verify_copy(&src, image, &dst, &image.repo).expect("verified");
}

/// The fault mode itself: the same seed gives the same faults for the same requests,
/// another seed others; each fault looks to a client as it should (status, reset,
/// truncated body, delay); and `max_faults` bounds the total.
#[test]
fn random_faults_are_deterministic_per_seed_and_look_as_announced() {
    let registry = Registry::start().expect("registry");
    let images = push_image_set(&registry, &SetSpec::small("det", 2, 4, 64)).expect("images");
    let mut paths = Vec::new();
    for image in &images {
        paths.push((
            Method::HEAD,
            format!("/v2/{}/manifests/{}", image.repo, image.tag),
        ));
        paths.push((
            Method::GET,
            format!("/v2/{}/manifests/{}", image.repo, image.digest),
        ));
        for blob in &image.blobs {
            paths.push((
                Method::HEAD,
                format!("/v2/{}/blobs/{}", image.repo, blob.digest),
            ));
            paths.push((
                Method::GET,
                format!("/v2/{}/blobs/{}", image.repo, blob.digest),
            ));
        }
    }
    let run = |seed: u64, max_faults: u64| {
        let proxy = Proxy::start(&registry).expect("proxy");
        let mut plan = FaultPlan::new(seed, 0.3);
        plan.max_faults = max_faults;
        proxy.set_random_faults(plan);
        let outcomes = ferry_e2e::http::block_on(async {
            // One client, a fresh connection per request: what one request sees does not
            // depend on what broke the one before.
            let client = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            let mut outcomes = Vec::new();
            for round in 0..2 {
                for (method, path) in &paths {
                    let url = format!("{}{path}", proxy.url());
                    let started = Instant::now();
                    let result = async {
                        let response = client
                            .request(method.clone(), &url)
                            .header("Accept", ferry_e2e::http::MANIFEST_ACCEPT)
                            .send()
                            .await?;
                        let status = response.status().as_u16();
                        response.bytes().await?;
                        Ok::<_, reqwest::Error>(status)
                    }
                    .await;
                    let took = started.elapsed();
                    let seen = match &result {
                        Ok(status) => status.to_string(),
                        Err(err) => error_chain(err),
                    };
                    outcomes.push((round, method.clone(), path.clone(), seen, took));
                }
            }
            outcomes
        })
        .expect("runtime");
        let faults: Vec<Option<&'static str>> = proxy.requests().iter().map(|r| r.fault).collect();
        (faults, outcomes, proxy.fault_counts())
    };
    let (a, outcomes, counts) = run(11, 10_000);
    let (b, _, _) = run(11, 10_000);
    let (c, _, _) = run(12, 10_000);
    assert_eq!(a, b, "same seed, same requests: same faults");
    assert_ne!(a, c, "another seed: other faults");
    eprintln!("{} requests, faults {counts:?}", a.len());
    for kind in FaultKind::FAILING.iter().chain([&FaultKind::Slow]) {
        assert!(
            counts.get(kind.label()).copied().unwrap_or(0) > 0,
            "{kind:?} never injected: {counts:?}"
        );
    }
    for ((round, method, path, seen, took), fault) in outcomes.iter().zip(&a) {
        let context = format!("round {round}: {method} {path}: {fault:?} -> {seen}");
        match *fault {
            Some("500") => assert_eq!(seen, "500", "{context}"),
            Some("502") => assert_eq!(seen, "502", "{context}"),
            Some("503") => assert_eq!(seen, "503", "{context}"),
            Some("429") => assert_eq!(seen, "429", "{context}"),
            // Linux may report a reset that arrives after the last bytes as end of file.
            Some("reset") => assert!(
                seen.parse::<u16>().is_err(),
                "{context}: expected a broken connection"
            ),
            Some("truncate") => assert!(
                seen.parse::<u16>().is_err() && !seen.to_lowercase().contains("reset"),
                "{context}: expected a truncated answer, not a reset"
            ),
            Some("slow") => {
                assert!(seen == "200", "{context}");
                assert!(*took >= Duration::from_millis(200), "{context}: {took:?}");
            }
            None => assert_eq!(seen, "200", "{context}"),
            other => panic!("unexpected fault {other:?}"),
        }
    }
    let resets_seen = outcomes
        .iter()
        .zip(&a)
        .filter(|((.., seen, _), fault)| **fault == Some("reset") && seen.contains("reset"))
        .count();
    assert!(resets_seen > 0, "no reset was seen as a reset");
    let (bounded, _, counts) = run(11, 5);
    assert_eq!(
        bounded.iter().flatten().count(),
        5,
        "max_faults bounds the total: {counts:?}"
    );
}

/// Every attempt of the source's manifest GETs fails (503): the copy must give up after
/// the engine's budget of 1 + 5 attempts of that request, not more.
#[test]
fn a_request_that_always_fails_is_attempted_at_most_1_plus_5_times() {
    let src = Registry::start().expect("source registry");
    let dst = Registry::start().expect("destination registry");
    let images = push_image_set(&src, &SetSpec::small("budget", 1, 1, 66)).expect("image");
    let image = &images[0];
    let proxy = Proxy::start(&src).expect("proxy");
    proxy.inject(ferry_e2e::proxy::InjectRule {
        method: Some(Method::GET),
        kind: Some(PathKind::Manifest),
        status: 503,
        retry_after: None,
        times: 1_000,
    });
    let started = Instant::now();
    let (out, _) = copy(
        &image_reference(&proxy.host(), &image.repo, &image.tag),
        &dst.reference(&image.repo, &image.tag),
    );
    let attempts = proxy.attempts_by_key();
    eprintln!("gave up after {:?}: {attempts:#?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let key = format!("GET /v2/{}/manifests/{}", image.repo, image.digest);
    assert_eq!(attempts.get(&key), Some(&MAX_ATTEMPTS), "{attempts:#?}");
}
