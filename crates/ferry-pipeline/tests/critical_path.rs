//! The pipeline's critical path (issue #12 §1; `bench/README.md`, "wan-pipeline"): the
//! round trips between replicate picking a job up and the replica's tag. Every registry
//! sits behind a WAN proxy whose delay dwarfs the local work, and the proxies' exchanges
//! are ordered into chains ([`round_trips`]): a count of sequential round trips, not a time.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_e2e::proxy::{WanMode, round_trips};
use ferry_e2e::{Fixture, fixtures};
use ferry_pipeline::Status;
use support::{Options, Registries, Sandbox, detail};

/// Long enough that requests sent together are all under way before any answer comes.
const DELAY: Duration = Duration::from_millis(300);

/// Push `team/api:<tag>` (fixture `seed`), publish its event, run dispatch and replicate
/// until both destinations succeeded.
fn push_and_replicate(sb: &Sandbox, tag: &str, seed: u64) -> Fixture {
    let f = fixtures::single_image(&sb.src, "team/api", tag, seed).expect("fixture");
    sb.publish(&[detail(
        "PUSH",
        "team/api",
        Some(tag),
        &f.digest,
        &f.media_type,
    )])
    .expect("publish");
    let d = sb.run_dispatch().expect("dispatch");
    assert_eq!(d.acked, 1);
    let r = sb.run_replicate(1).expect("replicate");
    assert_eq!((r.received, r.acked), (2, 2), "one job per destination");
    let results = sb.results().expect("results");
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.status == Status::Succeeded));
    f
}

#[test]
fn a_pushed_image_is_tagged_at_each_destination_on_the_fifth_round_trip_of_its_job() {
    let registries = Registries::start().expect("registries");
    let mut routes = BTreeMap::new();
    let mode = WanMode {
        delay: DELAY,
        ..WanMode::default()
    };
    let proxies = registries
        .behind_wan(mode, &mut routes)
        .expect("WAN proxies");
    let sb = Sandbox::start_over(Options::default(), registries, &routes).expect("sandbox");
    // A first image makes the repositories and has each destination's settings read (once
    // per process, through the ECR API, not the registries): then the measured one.
    let warm = push_and_replicate(&sb, "warm", 30);
    assert!(warm.blobs.len() >= 2, "a config and at least one layer");
    for p in &proxies {
        p.set_wan(mode);
    }
    let f = push_and_replicate(&sb, "v1", 31);

    let exchanges: Vec<_> = proxies.iter().flat_map(|p| p.wan_exchanges()).collect();
    let steps = round_trips(&exchanges);
    let chain: Vec<String> = steps
        .iter()
        .map(|(e, step)| format!("{step}: {} {}", e.method, e.path))
        .collect();
    // Source tag check, destination HEAD and the manifest GET (1); blob HEADs (2); upload
    // POSTs with the blob GETs (3); blob PUTs (4); the tag (5). Referrer discovery runs
    // beside steps 2 and 3 and adds none.
    let tag_put = "/v2/team/api/manifests/v1";
    let puts: Vec<usize> = steps
        .iter()
        .filter(|(e, _)| e.method == "PUT" && e.path == tag_put)
        .map(|(_, step)| *step)
        .collect();
    assert_eq!(
        puts,
        vec![5, 5],
        "each destination's tag PUT:\n{}",
        chain.join("\n")
    );
    let last = steps.iter().map(|(_, s)| *s).max();
    assert_eq!(
        last,
        Some(5),
        "nothing after the tags:\n{}",
        chain.join("\n")
    );
    let at_step = |n: usize, method: &str| {
        steps
            .iter()
            .filter(|(e, s)| *s == n && e.method == method)
            .count()
    };
    // The source's tag HEAD and manifest GET are read once for both jobs of the batch.
    assert_eq!(at_step(1, "GET"), 1, "{}", chain.join("\n"));
    assert_eq!(at_step(1, "HEAD"), 3, "{}", chain.join("\n"));
    assert_eq!(
        at_step(3, "POST"),
        2 * f.blobs.len(),
        "{}",
        chain.join("\n")
    );
    assert_eq!(at_step(4, "PUT"), 2 * f.blobs.len(), "{}", chain.join("\n"));
}
