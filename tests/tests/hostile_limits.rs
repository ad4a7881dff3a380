//! A registry that tries to make Ferry loop, wait or hold memory without bound, played by
//! the test proxy's limits mode in front of a real registry: self-linking and endless
//! pagination, malformed `Link` headers, huge listing bodies, slow-loris bodies, a blob
//! resume while the only request slot of the host is held, nested indexes for the
//! manifest budget and for `plan`.
//!
//! Each test asserts the outcome (the error code) and the requests made; a hang is caught
//! by a `tokio::time::timeout` and reported as the failure, never waited out.

use std::future::Future;
use std::time::Duration;

use ferry::auth::Authenticator;
use ferry::registry::{
    ClientOptions, Endpoints, MAX_LISTING_PAGE_BYTES, MAX_LISTING_PAGES, RegistryClient, Repo,
};
use ferry::{Copier, CopyOptions, CopyReport, Digest, Error, Reference};
use ferry_e2e::fixtures::{Fixture, RawPusher, Target, media, single_image};
use ferry_e2e::proxy::{LimitsMode, Listing, ListingRule, SlowBody, Throttle};
use ferry_e2e::skopeo::sha256_digest;
use ferry_e2e::{CutRule, PathKind, Proxy, Registry, verify_copy};
use serde_json::{Value, json};

/// How long any one scenario may run before it counts as hung.
const HANG: Duration = Duration::from_secs(120);

fn client(options: ClientOptions) -> RegistryClient {
    RegistryClient::new(Authenticator::anonymous(), Endpoints::new(), options).expect("client")
}

fn quick() -> ClientOptions {
    ClientOptions {
        max_retries: 0,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

/// Runs `fut` on a fresh runtime; a run longer than [`HANG`] fails the test.
fn within<F: Future>(what: &str, fut: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(async { tokio::time::timeout(HANG, fut).await })
        .unwrap_or_else(|_| panic!("{what}: no outcome after {HANG:?} (hung)"))
}

/// A registry with a proxy in limits mode in front of it.
fn hostile(mode: LimitsMode) -> (Registry, Proxy) {
    let registry = Registry::start().expect("registry");
    let proxy = Proxy::start(&registry).expect("proxy");
    proxy.set_limits_mode(mode);
    (registry, proxy)
}

fn listing_mode(kind: PathKind, listing: Listing) -> LimitsMode {
    LimitsMode {
        listings: vec![ListingRule { kind, listing }],
        ..LimitsMode::default()
    }
}

/// Lists `kind` (tags of `team/api`, the catalog, or referrers of a digest) through `proxy`.
/// Fails with the distribution client's error (the same codes and messages as the engine's).
async fn list(
    client: &RegistryClient,
    proxy: &Proxy,
    kind: PathKind,
) -> Result<usize, ferry::distribution::Error> {
    let repo = Repo::new(proxy.host(), "team/api");
    match kind {
        PathKind::Tags => client.list_tags(&repo).await.map(|t| t.len()),
        PathKind::Catalog => client.list_catalog(&proxy.host()).await.map(|r| r.len()),
        _ => client
            .referrers_api(&repo, &Digest::of(b"subject"))
            .await
            .map(|r| r.map_or(0, |r| r.len())),
    }
}

const LISTINGS: [PathKind; 3] = [PathKind::Tags, PathKind::Catalog, PathKind::Referrers];

#[test]
fn a_page_linking_to_itself_stops_at_the_first_repeated_url() {
    for kind in LISTINGS {
        let (_registry, proxy) = hostile(listing_mode(kind, Listing::SelfLink));
        let err = within("self link", list(&client(quick()), &proxy, kind))
            .expect_err("a self-linking listing is an error");
        assert_eq!(err.code(), "bad-pagination", "{kind:?}: {err}");
        assert!(err.to_string().contains("already read"), "{err}");
        assert_eq!(proxy.count("GET", kind), 1, "{kind:?}: one page read");
    }
}

#[test]
fn endless_pagination_stops_after_the_bounded_number_of_pages() {
    let (_registry, proxy) = hostile(listing_mode(PathKind::Tags, Listing::Endless));
    let err = within("endless", list(&client(quick()), &proxy, PathKind::Tags))
        .expect_err("an endless listing is an error, not a truncated one");
    assert_eq!(err.code(), "bad-pagination", "{err}");
    assert!(err.to_string().contains("more than 10000 pages"), "{err}");
    assert_eq!(proxy.count("GET", PathKind::Tags), MAX_LISTING_PAGES);
}

#[test]
fn malformed_or_foreign_link_headers_are_errors_not_truncations() {
    let bad: [&[u8]; 9] = [
        b"/v2/team/api/tags/list?last=p1; rel=\"next\"",
        b"</v2/team/api/tags/list?last=p1; rel=\"next\"",
        b"</v2/team/api/tags/list?last=p1>; rel=\"prev\"",
        b"</v2/team/api/tags/list?last=p1\xff>; rel=\"next\"",
        b"</v2/other/tags/list?last=p1>; rel=\"next\"",
        b"</v2/team/api/tags/list/../../../other/tags/list>; rel=\"next\"",
        b"</v2/team/api/manifests/latest>; rel=\"next\"",
        b"<http://127.0.0.2:9/v2/team/api/tags/list?last=p1>; rel=\"next\"",
        b"<http://user:pw@127.0.0.1:9/v2/team/api/tags/list>; rel=\"next\"",
    ];
    for link in bad {
        let (_registry, proxy) =
            hostile(listing_mode(PathKind::Tags, Listing::Link(link.to_vec())));
        let shown = String::from_utf8_lossy(link);
        let err = within("bad link", list(&client(quick()), &proxy, PathKind::Tags))
            .expect_err(&format!("{shown}: accepted"));
        assert_eq!(err.code(), "bad-pagination", "{shown}: {err}");
        assert_eq!(proxy.count("GET", PathKind::Tags), 1, "{shown}");
        assert_eq!(proxy.total_requests(), 1, "{shown}: nothing else requested");
    }
}

#[test]
fn huge_listing_bodies_are_refused_without_reading_them() {
    const HUGE: u64 = 64 * 1024 * 1024;
    for kind in LISTINGS {
        for announced in [true, false] {
            let mode = listing_mode(
                kind,
                Listing::Huge {
                    bytes: HUGE,
                    announced,
                },
            );
            let (_registry, proxy) = hostile(mode);
            let err = within("huge", list(&client(quick()), &proxy, kind))
                .expect_err("an over-cap body is an error");
            assert_eq!(
                err.code(),
                "response-too-large",
                "{kind:?} {announced}: {err}"
            );
            assert!(
                err.to_string()
                    .contains(&MAX_LISTING_PAGE_BYTES.to_string()),
                "{err}"
            );
            assert_eq!(proxy.count("GET", kind), 1, "permanent: not retried");
            let served = proxy.hostile_bytes_served();
            assert!(
                served < HUGE / 2,
                "{kind:?} {announced}: the client read {served} of {HUGE} bytes"
            );
        }
    }
}

#[test]
fn a_slow_loris_manifest_body_ends_at_the_request_deadline() {
    let slow = SlowBody {
        kind: PathKind::Manifest,
        length: 4000,
        every: Duration::from_millis(100),
    };
    let (_registry, proxy) = hostile(LimitsMode {
        slow: Some(slow),
        ..LimitsMode::default()
    });
    let options = ClientOptions {
        max_retries: 1,
        read_timeout: Duration::from_secs(10),
        request_deadline: Duration::from_secs(1),
        ..quick()
    };
    let repo = Repo::new(proxy.host(), "team/api");
    let err = within("slow manifest", client(options).get_manifest(&repo, "v1"))
        .expect_err("a body that never ends is an error");
    assert_eq!(err.code(), "unreachable", "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(proxy.count("GET", PathKind::Manifest), 2, "1 + max_retries");
}

/// An image in a source registry behind a proxy in limits mode, and a destination.
struct Pair {
    src: Registry,
    dst: Registry,
    proxy: Proxy,
    fixture: Fixture,
}

impl Pair {
    fn start(mode: LimitsMode, seed: u64) -> Self {
        let src = Registry::start().expect("source");
        let dst = Registry::start().expect("destination");
        let fixture = single_image(&src, "team/api", "v1", seed).expect("image");
        let proxy = Proxy::start(&src).expect("proxy");
        proxy.set_limits_mode(mode);
        Self {
            src,
            dst,
            proxy,
            fixture,
        }
    }

    /// Copies the image from the proxy to the destination (no referrers).
    fn copy(&self, options: ClientOptions, copy: CopyOptions) -> Result<CopyReport, Box<Error>> {
        let copier = Copier::new(
            client(options),
            CopyOptions {
                referrers: false,
                ..copy
            },
        );
        let from = Reference::parse(&self.fixture.reference_at(&self.proxy.host())).expect("src");
        let to = Reference::parse(&self.dst.reference("team/api", "v1")).expect("dst");
        within("copy", copier.copy(&from, &to)).map_err(Box::new)
    }
}

#[test]
fn a_slow_loris_blob_body_ends_at_the_blob_deadline() {
    let pair = Pair::start(
        LimitsMode {
            slow: Some(SlowBody {
                kind: PathKind::Blob,
                length: 1024 * 1024,
                every: Duration::from_millis(100),
            }),
            ..LimitsMode::default()
        },
        7,
    );
    // A read timeout longer than the test may run: only the deadline can end it.
    let options = ClientOptions {
        read_timeout: HANG * 2,
        blob_deadline: Duration::from_secs(1),
        blob_min_rate: u64::MAX,
        ..quick()
    };
    let copy = CopyOptions {
        max_resumes: 0,
        blob_concurrency: 1,
        ..CopyOptions::default()
    };
    let err = pair.copy(options, copy).expect_err("never-ending blob");
    assert_eq!(err.code(), "unreachable", "{err}");
    assert_eq!(
        pair.proxy.count("GET", PathKind::Blob),
        1,
        "no resume, no retry"
    );
    let at_dst = pair.dst.manifest_digest("team/api", "v1").expect("HEAD");
    assert!(at_dst.is_none(), "nothing tagged");
}

/// The other side of the blob deadline: a source sending a 1 MiB layer steadily in
/// 64 KiB steps, each well inside the read timeout, for longer than one read timeout in
/// all, is copied (the upload PUT is bounded by the blob deadline, not by the read
/// timeout).
#[test]
fn a_steady_blob_transfer_longer_than_the_read_timeout_completes() {
    let pair = Pair::start(
        LimitsMode {
            throttle: Some(Throttle {
                kind: PathKind::Blob,
                chunk: 64 * 1024,
                every: Duration::from_millis(150),
            }),
            ..LimitsMode::default()
        },
        9,
    );
    let options = ClientOptions {
        read_timeout: Duration::from_secs(1),
        ..quick()
    };
    pair.copy(options, CopyOptions::default()).expect("copied");
    let blob_gets = pair.proxy.count("GET", PathKind::Blob);
    assert_eq!(blob_gets, pair.fixture.blobs.len(), "one GET per blob");
    verify_copy(&pair.src, &pair.fixture, &pair.dst, "team/api").expect("whole at the destination");
}

/// Source and destination are one registry whose per-host limit is 1 request: the blob
/// PUT holds that slot while its source body breaks and is resumed with `Range`.
#[test]
fn a_blob_resume_does_not_wait_for_the_slot_its_own_put_holds() {
    let registry = Registry::start().expect("registry");
    let fixture = single_image(&registry, "team/api", "v1", 11).expect("image");
    let layer = fixture.largest_blob().expect("layer").digest.clone();
    let proxy = Proxy::start(&registry).expect("proxy");
    proxy.set_limits_mode(LimitsMode {
        refuse_mounts: true,
        ..LimitsMode::default()
    });
    proxy.cut_blob_body(CutRule {
        digest: Some(layer.clone()),
        after_bytes: 256 * 1024,
        attempts: 1,
    });
    let options = ClientOptions {
        max_per_host: 1,
        ..quick()
    };
    let copier = Copier::new(
        client(options),
        CopyOptions {
            referrers: false,
            ..CopyOptions::default()
        },
    );
    let from = Reference::parse(&fixture.reference_at(&proxy.host())).expect("src ref");
    let to = Reference::parse(&format!("{}/team/mirror:v1", proxy.host())).expect("dst ref");
    within("same-registry copy at limit 1", copier.copy(&from, &to)).expect("copied");
    let ranged: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.kind == PathKind::Blob && r.path.ends_with(&layer) && r.range.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "one Range resume: {ranged:?}");
    verify_copy(&registry, &fixture, &registry, "team/mirror").expect("whole at the destination");
}

/// An OCI index of `children`, padded with an annotation to about `pad` bytes.
fn index_json(children: &[(String, u64, &str)], pad: usize, salt: &str) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(d, s, mt)| json!({"mediaType": mt, "digest": d, "size": s}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
        "annotations": {"salt": salt, "pad": "p".repeat(pad)},
    }))
    .expect("json")
}

/// Pushes `body` under `tag`, or by digest when `tag` is `None`.
fn push(
    pusher: &RawPusher,
    repo: &str,
    tag: Option<&str>,
    media_type: &str,
    body: &[u8],
) -> String {
    let digest = sha256_digest(body);
    pusher
        .push_manifest(repo, tag.unwrap_or(&digest), media_type, body)
        .expect("push manifest")
}

/// Pushes one small image (shared config and layer) padded to about `pad` bytes.
fn push_image(
    pusher: &RawPusher,
    repo: &str,
    pad: usize,
    salt: &str,
    tag: Option<&str>,
) -> (String, u64) {
    let config = pusher
        .push_blob(repo, br#"{"os":"linux"}"#)
        .expect("config");
    let layer = pusher.push_blob(repo, b"layer bytes").expect("layer");
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config, "size": 14},
        "layers": [{"mediaType": media::OCI_LAYER, "digest": layer, "size": 11}],
        "annotations": {"salt": salt, "pad": "p".repeat(pad)},
    }))
    .expect("json");
    let digest = push(pusher, repo, tag, media::OCI_MANIFEST, &body);
    (digest, body.len() as u64)
}

/// Pushes an index of `children` padded to about `pad` bytes.
fn push_index(
    pusher: &RawPusher,
    repo: &str,
    children: &[(String, u64, &str)],
    pad: usize,
    salt: &str,
    tag: Option<&str>,
) -> (String, u64) {
    let body = index_json(children, pad, salt);
    let digest = push(pusher, repo, tag, media::OCI_INDEX, &body);
    (digest, body.len() as u64)
}

#[test]
fn manifests_held_at_once_stay_within_the_budget() {
    const PAD: usize = 3 * 1024 * 1024;
    const BUDGET: u64 = 20 * 1024 * 1024;
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let pusher = RawPusher::new(&Target::from(&src));
    let mut level1 = Vec::new();
    for i in 0..4 {
        let images: Vec<_> = (0..4)
            .map(|j| {
                let (d, s) = push_image(&pusher, "wide", PAD, &format!("i{i}-{j}"), None);
                (d, s, media::OCI_MANIFEST)
            })
            .collect();
        let (d, s) = push_index(&pusher, "wide", &images, PAD, &format!("x{i}"), None);
        level1.push((d, s, media::OCI_INDEX));
    }
    push_index(&pusher, "wide", &level1, 0, "root", Some("root"));
    let proxy = Proxy::start(&src).expect("proxy");
    proxy.set_limits_mode(LimitsMode {
        manifest_delay: Some(Duration::from_millis(200)),
        ..LimitsMode::default()
    });
    let copier = Copier::new(
        client(quick()),
        CopyOptions {
            referrers: false,
            manifest_budget: BUDGET,
            ..CopyOptions::default()
        },
    );
    let from = Reference::parse(&format!("{}/wide:root", proxy.host())).expect("src");
    let to = Reference::parse(&dst.reference("wide", "root")).expect("dst");
    let report = within("wide copy", copier.copy(&from, &to)).expect("copied");
    assert_eq!(report.manifests.copied, 21, "{report:?}");
    let peak = proxy.peak_manifest_gets();
    let bound = usize::try_from(BUDGET / PAD as u64).expect("small");
    assert!(
        peak <= bound,
        "{peak} manifest GETs of ~3 MiB in flight at once, budget {BUDGET} bytes allows {bound}"
    );
}

/// Runs `ferry plan` for repository `repo` of `src` (through `proxy`) to `dst`.
fn plan(proxy: &Proxy, dst: &Registry, repo: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tmp");
    let config = json!({
        "source": {"registry": proxy.host(), "repositories": [repo]},
        "rules": [{
            "repositoryFilters": [{"filter": repo, "filterType": "PREFIX_MATCH"}],
            "destinations": [{"registry": dst.host()}]
        }]
    });
    let path = dir.path().join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("config");
    let no_env: &[(&str, &str)] = &[];
    let path = path.display().to_string();
    ferry_e2e::run_ferry(["plan", "-c", &path, "--output", "json"], no_env).expect("ferry runs")
}

/// Manifest GETs the proxy saw for `digest`.
fn manifest_gets(proxy: &Proxy, digest: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.kind == PathKind::Manifest && r.path.ends_with(digest))
        .count()
}

#[test]
fn plan_fetches_a_manifest_listed_by_two_indexes_once() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let pusher = RawPusher::new(&Target::from(&src));
    let (image, size) = push_image(&pusher, "shared", 0, "image", None);
    let child = [(image.clone(), size, media::OCI_MANIFEST)];
    let (a, a_size) = push_index(&pusher, "shared", &child, 0, "a", None);
    let (b, b_size) = push_index(&pusher, "shared", &child, 0, "b", None);
    let both = [(a, a_size, media::OCI_INDEX), (b, b_size, media::OCI_INDEX)];
    push_index(&pusher, "shared", &both, 0, "root", Some("root"));
    let proxy = Proxy::start(&src).expect("proxy");
    let out = plan(&proxy, &dst, "shared");
    assert!(out.status.success(), "{}", ferry_e2e::ferry::describe(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    // One tag; its blobs counted once: 14 + 11 bytes.
    assert_eq!(plan["summary"]["copy"], 1, "{plan}");
    assert_eq!(plan["summary"]["bytes_to_move"], 25, "{plan}");
    assert_eq!(manifest_gets(&proxy, &image), 1, "the shared image once");
}

#[test]
fn plan_refuses_indexes_nested_deeper_than_max_depth() {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let pusher = RawPusher::new(&Target::from(&src));
    let (mut digest, mut size) = push_image(&pusher, "deep", 0, "bottom", None);
    let mut chain = vec![digest.clone()];
    let mut media_type = media::OCI_MANIFEST;
    // bottom image at depth 6 under the tagged root (MAX_DEPTH is 4).
    for level in (0..6).rev() {
        let tag = (level == 0).then_some("root");
        let salt = format!("l{level}");
        (digest, size) = push_index(
            &pusher,
            "deep",
            &[(digest, size, media_type)],
            0,
            &salt,
            tag,
        );
        media_type = media::OCI_INDEX;
        chain.push(digest.clone());
    }
    chain.reverse();
    // Only the root is tagged, so its walk is the only one.
    let proxy = Proxy::start(&src).expect("proxy");
    let out = plan(&proxy, &dst, "deep");
    assert!(
        !out.status.success(),
        "{}",
        ferry_e2e::ferry::describe(&out)
    );
    let codes = ferry_e2e::error_codes(&out);
    assert_eq!(
        codes,
        ["unsupported"],
        "{}",
        ferry_e2e::ferry::describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nest deeper than 4"), "{stderr}");
    let fetched: Vec<usize> = chain.iter().map(|d| manifest_gets(&proxy, d)).collect();
    assert_eq!(
        fetched,
        [1, 1, 1, 1, 1, 0, 0],
        "root to depth 4, nothing below"
    );
}
