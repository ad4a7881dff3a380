//! Exact request counts of cold and warm copies against the theoretical minimum of
//! `bench/README.md` (issue #12, "the fewest requests"): every request a source and a
//! destination registry answer is counted by a proxy in front of it.

use std::collections::{BTreeMap, BTreeSet};

use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::fixtures::Fixture;
use ferry_e2e::imageset::{SetSpec, push_image_set};
use ferry_e2e::proxy::{LimitsMode, PathKind, Proxy};
use ferry_e2e::{Registry, run_ferry, verify_copy};
use serde_json::json;

/// Requests by (method, endpoint kind, status), then forgotten.
fn take(proxy: &Proxy) -> BTreeMap<(String, PathKind, u16), usize> {
    let mut out = BTreeMap::new();
    for r in proxy.requests() {
        *out.entry((r.method, r.kind, r.status)).or_default() += 1;
    }
    proxy.reset_counts();
    out
}

fn total(counts: &BTreeMap<(String, PathKind, u16), usize>) -> usize {
    counts.values().sum()
}

fn get(counts: &BTreeMap<(String, PathKind, u16), usize>, method: &str, kind: PathKind) -> usize {
    counts
        .iter()
        .filter(|((m, k, _), _)| m == method && *k == kind)
        .map(|(_, n)| n)
        .sum()
}

/// The minimum of `bench/README.md` for a cold sync of `images` into one empty
/// destination registry (same repository names), referrer-free, source without a
/// referrers API: `(source, destination)`.
fn cold_minimum(images: &[Fixture]) -> (usize, usize) {
    let repos: BTreeSet<&str> = images.iter().map(|f| f.repo.as_str()).collect();
    let tags = images.len();
    let manifests_per_repo: usize = repos
        .iter()
        .map(|r| {
            images
                .iter()
                .filter(|f| f.repo == *r)
                .flat_map(|f| f.manifests.iter())
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();
    let children = manifests_per_repo - tags;
    let blobs_per_repo: Vec<BTreeSet<&str>> = repos
        .iter()
        .map(|r| {
            images
                .iter()
                .filter(|f| f.repo == *r)
                .flat_map(|f| f.blobs.iter().map(|b| b.digest.as_str()))
                .collect()
        })
        .collect();
    let unique: BTreeSet<&str> = blobs_per_repo.iter().flatten().copied().collect();
    let mounts: usize = blobs_per_repo.iter().map(BTreeSet::len).sum::<usize>() - unique.len();
    // Source: a tag list per repository, a HEAD per tag, a GET per manifest, a GET per
    // blob the destination registry lacks, one referrers API probe for the registry.
    let source = repos.len() + tags + manifests_per_repo + unique.len() + 1;
    // Destination: a HEAD per tag, a HEAD per child manifest, HEAD + POST + PUT per
    // blob new to the registry, a mount per further repository holding it, a PUT per
    // manifest (the root once, by its tag).
    let destination = tags + children + 3 * unique.len() + mounts + manifests_per_repo;
    (source, destination)
}

struct Pair {
    src: Registry,
    dst: Registry,
    sp: Proxy,
    dp: Proxy,
}

fn pair() -> Pair {
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    let sp = Proxy::start(&src).expect("source proxy");
    let dp = Proxy::start(&dst).expect("destination proxy");
    Pair { src, dst, sp, dp }
}

fn sync(config: &ConfigFile) {
    let out = run_ferry(
        ["sync", "-c", config.arg(), "--output", "json"],
        &[] as &[(&str, &str)],
    )
    .expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
}

/// 2 repositories × 3 single-platform tags sharing a base layer (15 distinct blobs, 16
/// blob-repository pairs), then 2 × 4 with two-platform indexes: each cold sync makes
/// exactly the minimum, and a warm one a HEAD per tag at each side and a tag list per
/// source repository.
#[test]
fn a_cold_sync_makes_the_minimum_of_requests_and_a_warm_one_a_head_per_tag() {
    for (prefix, index_every, want) in [("p", 0, (30, 58)), ("q", 2, (54, 114))] {
        let p = pair();
        let mut spec = SetSpec::small(prefix, 2, if index_every == 0 { 3 } else { 4 }, 5);
        spec.index_every = index_every;
        let images = push_image_set(&p.src, &spec).expect("image set");
        let minimum = cold_minimum(&images);
        assert_eq!(minimum, want, "the fixture set's minimum, by the formula");
        let config = ConfigFile::write(&json!({
            "source": {"registry": p.sp.host(), "repositories": spec.repositories()},
            "rules": [{"destinations": [{"registry": p.dp.host()}]}]
        }))
        .expect("config");
        sync(&config);
        for f in &images {
            verify_copy(&p.src, f, &p.dst, &f.repo).expect("a faithful copy");
        }
        let (src, dst) = (take(&p.sp), take(&p.dp));
        assert_eq!(
            (total(&src), total(&dst)),
            minimum,
            "cold ({prefix}): source {src:#?} destination {dst:#?}"
        );
        assert_eq!(
            get(&src, "GET", PathKind::Referrers),
            1,
            "one referrers probe"
        );
        assert_eq!(
            get(&dst, "PUT", PathKind::Manifest),
            images.iter().map(|f| f.manifests.len()).sum::<usize>(),
            "each manifest PUT once, the root by its tag"
        );

        sync(&config);
        let (src, dst) = (take(&p.sp), take(&p.dp));
        let tags = images.len();
        assert_eq!(total(&src), 2 + tags, "warm source: {src:#?}");
        assert_eq!(total(&dst), tags, "warm destination: {dst:#?}");
    }
}

/// `ferry copy` of one image (a manifest, a config and three layers) into a new
/// repository: a HEAD and a GET of the manifest, the blobs, a referrers probe and one tag
/// list (not four referrer tag GETs) at the source; a HEAD of the tag, HEAD + POST + PUT
/// per blob and one manifest PUT at the destination.
#[test]
fn a_cold_copy_lists_the_tags_once_and_puts_the_manifest_once() {
    let p = pair();
    let images = push_image_set(&p.src, &{
        let mut s = SetSpec::small("c", 1, 1, 8);
        s.index_every = 0;
        s
    })
    .expect("image");
    let f = &images[0];
    let out = run_ferry(
        [
            "copy",
            &format!("{}/{}:{}", p.sp.host(), f.repo, f.tag),
            &format!("{}/mirror/svc:{}", p.dp.host(), f.tag),
        ],
        &[] as &[(&str, &str)],
    )
    .expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    verify_copy(&p.src, f, &p.dst, "mirror/svc").expect("a faithful copy");
    let (src, dst) = (take(&p.sp), take(&p.dp));
    let blobs = f.blobs.len();
    assert_eq!(get(&src, "GET", PathKind::Tags), 1, "{src:#?}");
    assert_eq!(get(&src, "GET", PathKind::Manifest), 1, "{src:#?}");
    assert_eq!(total(&src), 1 + 1 + blobs + 1 + 1, "source: {src:#?}");
    assert_eq!(get(&dst, "PUT", PathKind::Manifest), 1, "{dst:#?}");
    assert_eq!(total(&dst), 1 + 3 * blobs + 1, "destination: {dst:#?}");
}

/// A destination registry where a mount never mounts (answered with an upload session,
/// as ECR does without `BLOB_MOUNTING`): after three such answers no more mounts are
/// tried there, and every blob still arrives.
#[test]
fn mounts_stop_after_three_that_did_not_mount() {
    let p = pair();
    p.dp.set_limits_mode(LimitsMode {
        refuse_mounts: true,
        ..LimitsMode::default()
    });
    let mut spec = SetSpec::small("m", 1, 2, 13);
    spec.index_every = 0;
    let images = push_image_set(&p.src, &spec).expect("images");
    let repo = &images[0].repo;
    // Six destination repositories of one registry: every blob after the first repository's
    // is a mount candidate.
    let destinations: Vec<_> = (0..6)
        .map(|i| json!({"registry": p.dp.host(), "repositoryName": format!("r{i}/{{repository}}")}))
        .collect();
    let config = ConfigFile::write(&json!({
        "source": {"registry": p.sp.host(), "repositories": [repo]},
        "rules": [{"destinations": destinations}]
    }))
    .expect("config");
    sync(&config);
    for f in &images {
        for i in 0..6 {
            verify_copy(&p.src, f, &p.dst, &format!("r{i}/{}", f.repo)).expect("a faithful copy");
        }
    }
    let mounts =
        p.dp.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.contains("mount="))
            .count();
    assert_eq!(mounts, 3, "three mounts tried, then none");
}
