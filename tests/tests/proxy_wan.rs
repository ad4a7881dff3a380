//! The test proxy's WAN mode (issue #12, section 1): a delay per request and token buckets
//! capping body bandwidth per connection and per proxy, in front of a real registry.
//!
//! Every assertion is on the proxy's own accounting ([`WanStats`]: requests delayed, delay
//! slept on its clock, bytes through the buckets, bytes granted against `rate × t +
//! burst`) and on the bytes delivered, never on wall-clock times measured by the test.

use std::time::Duration;

use ferry_e2e::fixtures::single_image;
use ferry_e2e::http::send;
use ferry_e2e::imageset::bytes_of;
use ferry_e2e::proxy::{BucketStats, WanMode};
use ferry_e2e::skopeo::sha256_digest;
use ferry_e2e::{Proxy, Registry, Sandbox, verify_copy};
use reqwest::Method;

const DELAY: Duration = Duration::from_millis(40);

/// Pushes `data` as a blob of `repo` through `url` (POST, then a monolithic PUT).
fn push_blob(url: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    let post = send(
        Method::POST,
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        None,
        &[],
        None,
    )
    .expect("POST upload");
    assert_eq!(post.status, 202, "POST upload");
    let location = post
        .header("location")
        .expect("upload Location")
        .to_string();
    let location = if location.starts_with('/') {
        format!("{url}{location}")
    } else {
        location
    };
    assert!(
        location.starts_with(url),
        "Location rewritten to the proxy: {location}"
    );
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = send(
        Method::PUT,
        &format!("{location}{sep}digest={digest}"),
        None,
        &[("content-type", "application/octet-stream")],
        Some(data.to_vec()),
    )
    .expect("PUT upload");
    assert_eq!(put.status, 201, "PUT upload");
    digest
}

fn get(url: &str) -> ferry_e2e::http::Response {
    send(Method::GET, url, None, &[], None).unwrap_or_else(|err| panic!("GET {url}: {err:#}"))
}

fn assert_within_limit(what: &str, bucket: &BucketStats) {
    assert_eq!(
        bucket.over_limit, 0,
        "{what}: a grant went over rate × t + burst"
    );
    assert!(
        bucket.granted <= bucket.limit(),
        "{what}: granted {} > rate × t + burst = {}",
        bucket.granted,
        bucket.limit()
    );
}

#[test]
fn every_request_is_delayed_once_before_its_answer() {
    let registry = Registry::start().expect("registry");
    let proxy = Proxy::start(&registry).expect("proxy");
    proxy.set_wan(WanMode::default());
    assert_eq!(
        WanMode::default().delay,
        DELAY,
        "the default is one cross-region round trip"
    );
    let n = 6u32;
    for _ in 0..n {
        let answer = get(&format!("{}/v2/", proxy.url()));
        assert_eq!(answer.status, 200);
    }
    let missing = get(&format!("{}/v2/nothing/manifests/latest", proxy.url()));
    assert_eq!(missing.status, 404, "answers pass through unchanged");

    let stats = proxy.wan_stats();
    assert_eq!(stats.delayed_requests, u64::from(n) + 1, "{stats:?}");
    assert_eq!(proxy.total_requests() as u64, stats.delayed_requests);
    assert!(
        stats.delayed >= DELAY * (n + 1),
        "slept {:?}",
        stats.delayed
    );
    assert!(
        stats.proxy_bucket.is_none() && stats.connections.is_empty(),
        "no cap set"
    );

    proxy.clear_wan();
    get(&format!("{}/v2/", proxy.url()));
    assert_eq!(
        proxy.wan_stats().delayed_requests,
        0,
        "off: nothing delayed"
    );
    assert_eq!(proxy.total_requests() as u64, u64::from(n) + 2);
}

#[test]
fn blob_bodies_go_through_the_buckets_both_ways_within_rate_times_t_plus_burst() {
    let registry = Registry::start().expect("registry");
    let proxy = Proxy::start(&registry).expect("proxy");
    // 16 Mbit/s = 2 MB/s: a 3 MiB blob needs the buckets to refill many times each way.
    let mode = WanMode::capped(Duration::from_millis(5), 16);
    proxy.set_wan(mode);
    let data = bytes_of(1201, 3 * 1024 * 1024);
    let digest = push_blob(&proxy.url(), "wan/blob", &data);
    let got = get(&format!("{}/v2/wan/blob/blobs/{digest}", proxy.url()));
    assert_eq!(got.status, 200);
    assert_eq!(
        sha256_digest(&got.body),
        digest,
        "every byte delivered, unchanged"
    );

    let stats = proxy.wan_stats();
    assert_eq!(
        stats.bytes_up,
        data.len() as u64,
        "the PUT body, upstream: {stats:?}"
    );
    assert!(
        stats.bytes_down >= data.len() as u64,
        "the GET body, downstream: {stats:?}"
    );
    let shared = stats.proxy_bucket.expect("the proxy bucket");
    assert_eq!(shared.rate, 2_000_000, "16 Mbit/s in bytes");
    assert_eq!(
        shared.granted,
        stats.bytes_up + stats.bytes_down,
        "both ways share it"
    );
    assert!(
        shared.granted > 10 * shared.burst,
        "the cap was the bound: {shared:?}"
    );
    // The connection bucket (same rate) is asked first, so it is the one that waits.
    let waits: u64 = shared.waits + stats.connections.iter().map(|b| b.waits).sum::<u64>();
    assert!(waits > 0, "bodies waited for tokens: {stats:?}");
    assert_within_limit("proxy bucket", &shared);
    assert!(
        !stats.connections.is_empty(),
        "connection buckets: {stats:?}"
    );
    let per_connection: u64 = stats.connections.iter().map(|b| b.granted).sum();
    assert_eq!(
        per_connection, shared.granted,
        "every byte through its connection's bucket"
    );
    for (i, bucket) in stats.connections.iter().enumerate() {
        assert_within_limit(&format!("connection {i}"), bucket);
    }
}

#[test]
fn a_connection_cap_alone_leaves_the_proxy_unbounded() {
    let registry = Registry::start().expect("registry");
    let proxy = Proxy::start(&registry).expect("proxy");
    proxy.set_wan(WanMode {
        delay: Duration::ZERO,
        per_connection_bps: Some(16_000_000),
        per_proxy_bps: None,
    });
    let data = bytes_of(1202, 1024 * 1024);
    push_blob(&proxy.url(), "wan/conn", &data);
    let stats = proxy.wan_stats();
    assert!(stats.proxy_bucket.is_none(), "{stats:?}");
    assert_eq!(stats.bytes_up, data.len() as u64);
    let granted: u64 = stats.connections.iter().map(|b| b.granted).sum();
    assert_eq!(granted, stats.bytes_up + stats.bytes_down);
    assert!(stats.connections.iter().any(|b| b.waits > 0), "{stats:?}");
    for (i, bucket) in stats.connections.iter().enumerate() {
        assert_within_limit(&format!("connection {i}"), bucket);
    }
}

#[test]
fn ferry_copies_through_two_wan_proxies_and_every_request_pays_the_delay() {
    let mut sandbox = Sandbox::start().expect("sandbox");
    let fixture = single_image(&sandbox.src, "wan/app", "v1", 1203).expect("fixture");
    let src_proxy = Proxy::start(&sandbox.src).expect("source proxy");
    let dst_proxy = Proxy::start(&sandbox.dst).expect("destination proxy");
    let credentials = sandbox.dst.credentials().expect("credentials").clone();
    sandbox
        .config
        .add(&dst_proxy.host(), &credentials)
        .expect("proxy credentials");
    src_proxy.set_wan(WanMode::capped(DELAY, 200));
    dst_proxy.set_wan(WanMode::capped(DELAY, 200));
    let output = sandbox
        .copy(
            &format!("{}/wan/app:v1", src_proxy.host()),
            &format!("{}/wan/app:v1", dst_proxy.host()),
            &[],
        )
        .expect("ferry runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, "wan/app").expect("copied");
    for (name, proxy) in [("source", &src_proxy), ("destination", &dst_proxy)] {
        let stats = proxy.wan_stats();
        assert!(
            proxy.total_requests() > 0,
            "{name}: requests went through it"
        );
        assert_eq!(
            stats.delayed_requests,
            proxy.total_requests() as u64,
            "{name}: every request delayed once"
        );
        let bucket = stats.proxy_bucket.expect("capped");
        assert_within_limit(name, &bucket);
    }
    let blob_bytes = fixture.blob_bytes();
    assert!(
        src_proxy.wan_stats().bytes_down >= blob_bytes,
        "blobs read through the cap"
    );
    assert!(
        dst_proxy.wan_stats().bytes_up >= blob_bytes,
        "blobs written through the cap"
    );
}
