//! `ferry plan` over a generated registry (`ferry_e2e::synthetic`): the requests a plan
//! makes grow with repositories and tags as written in `bench/README.md`, for a warm and a
//! cold destination (the scale bench runs the same at 100,000 images).

use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::run_ferry;
use ferry_e2e::synthetic::{Shape, Synthetic};
use serde_json::json;

fn run(command: &str, src: &Synthetic, dst: &Synthetic) -> serde_json::Value {
    let config = ConfigFile::write(&json!({
        "source": {"registry": src.host()},
        "registries": {src.host(): {"plainHttp": true}, dst.host(): {"plainHttp": true}},
        "rules": [{"destinations": [{"registry": dst.host()}]}]
    }))
    .expect("config");
    let out = run_ferry(
        [command, "-c", config.arg(), "--output", "json"],
        &[] as &[(&str, &str)],
    )
    .expect("runs");
    // `verify` exits 3 on drift.
    assert!(
        out.status.success() || (command == "verify" && out.status.code() == Some(3)),
        "{}",
        describe(&out)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON plan")
}

#[test]
fn a_plan_of_a_generated_registry_makes_a_listing_and_a_head_per_tag_at_each_side() {
    let shape = Shape {
        repos: 120,
        tags: 5,
    };
    let images = (shape.repos * shape.tags) as u64;
    let src = Synthetic::start(shape).expect("source");

    // Warm: the destination holds every image.
    let dst = Synthetic::start(shape).expect("destination");
    let p = run("plan", &src, &dst);
    assert_eq!(p["summary"]["skip"], images, "{p:#}");
    let (s, d) = (src.counts(), dst.counts());
    assert_eq!(s.get("GET catalog"), Some(&1), "{s:?}");
    assert_eq!(s.get("GET tags"), Some(&(shape.repos as u64)), "{s:?}");
    assert_eq!(s.get("HEAD manifest"), Some(&images), "{s:?}");
    assert_eq!(src.total(), 1 + shape.repos as u64 + images, "{s:?}");
    assert_eq!(d.get("GET tags"), Some(&(shape.repos as u64)), "{d:?}");
    assert_eq!(dst.total(), shape.repos as u64 + images, "{d:?}");

    // Cold: nothing there; the byte estimate reads each image's manifest once.
    let empty = Synthetic::start(Shape { repos: 0, tags: 0 }).expect("empty destination");
    let before = src.total();
    let p = run("plan", &src, &empty);
    assert_eq!(p["summary"]["copy"], images, "{p:#}");
    assert_eq!(
        src.total() - before,
        1 + shape.repos as u64 + 2 * images,
        "a listing, a HEAD and a GET per image: {:?}",
        src.counts()
    );
    assert_eq!(
        empty.total(),
        shape.repos as u64,
        "one tag list (404) per repository"
    );
}
