//! Measurement, not part of `make test` (ignored): `ferry status` against 250 destinations
//! (50 repository-name templates on each of 5 `docker-registry` processes, every one
//! holding the image) beside the same 250 manifest HEADs made one after the other over one
//! keep-alive connection pool: straight on loopback, and through proxies that delay every
//! answer by 50 ms (a destination in another region). Prints the figures for
//! `bench/results/findings.md`.
//!
//! Re-run: `cargo build -p ferry-cli && cargo nextest run --workspace --run-ignored only
//! -E 'test(status_answers_250_destinations)' --no-capture`

use std::time::{Duration, Instant};

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::{RawPusher, Target};
use ferry_e2e::http::MANIFEST_ACCEPT;
use ferry_e2e::proxy::FaultPlan;
use ferry_e2e::{Proxy, Registry, run_ferry};
use serde_json::{Value, json};

const REGISTRIES: usize = 5;
const PER_REGISTRY: usize = 50;
const REPO: &str = "team/api";
const TAG: &str = "v1";
const RUNS: usize = 3;
const RTT_MS: u64 = 50;
const MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn push_image(registry: &Registry, repo: &str) -> String {
    let pusher = RawPusher::new(&Target::from(registry));
    let layer = pusher.push_blob(repo, b"one small layer").expect("layer");
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = pusher.push_blob(repo, config).expect("config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 15}],
    }))
    .expect("manifest");
    pusher
        .push_manifest(repo, TAG, MEDIA_TYPE, &manifest)
        .expect("manifest push")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median wall time of `ferry status` and of the same HEADs made one after the other, for
/// 50 templates on each of `hosts` (`host:port` of registries holding the image).
fn measure(src: &Registry, digest: &str, hosts: &[String]) -> (Duration, Duration) {
    let mut destinations = Vec::new();
    let mut urls = Vec::new();
    for host in hosts {
        for i in 0..PER_REGISTRY {
            destinations
                .push(json!({"registry": host, "repositoryName": format!("d{i}/{{repository}}")}));
            urls.push(format!("http://{host}/v2/d{i}/{REPO}/manifests/{TAG}"));
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("ferry.json");
    std::fs::write(
        &config,
        serde_json::to_vec(&json!({
            "source": {"registry": src.host()},
            "rules": [{"destinations": destinations}]
        }))
        .expect("json"),
    )
    .expect("write config");
    let config = config.display().to_string();
    let image = format!("{}/{REPO}:{TAG}", src.host());
    let no_env: &[(&str, &str)] = &[];

    let mut status_times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = run_ferry(
            ["status", "-c", &config, &image, "--output", "json"],
            no_env,
        )
        .expect("ferry runs");
        status_times.push(started.elapsed());
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let report: Value = serde_json::from_slice(&out.stdout).expect("report");
        let states = report["destinations"].as_array().expect("destinations");
        assert_eq!(states.len(), urls.len());
        assert!(states.iter().all(|d| d["state"] == "COMPLETE"));
        assert_eq!(report["source"]["digest"], digest);
    }

    let client = reqwest::Client::new();
    let mut sequential_times = Vec::new();
    for _ in 0..RUNS {
        let elapsed = ferry_e2e::http::block_on(async {
            let started = Instant::now();
            for url in &urls {
                let response = client
                    .head(url)
                    .header("Accept", MANIFEST_ACCEPT)
                    .send()
                    .await
                    .expect("HEAD");
                assert_eq!(response.status().as_u16(), 200, "{url}");
            }
            started.elapsed()
        })
        .expect("runtime");
        sequential_times.push(elapsed);
    }
    println!("  status runs {status_times:?}; sequential runs {sequential_times:?}");
    (median(status_times), median(sequential_times))
}

fn print(label: &str, (status, sequential): (Duration, Duration)) {
    println!(
        "status-fanout {label}: {} destinations; ferry status (whole process) median {:.0} ms; \
         the same HEADs one after the other (one keep-alive client) median {:.0} ms; ratio {:.2}",
        REGISTRIES * PER_REGISTRY,
        status.as_secs_f64() * 1000.0,
        sequential.as_secs_f64() * 1000.0,
        status.as_secs_f64() / sequential.as_secs_f64()
    );
}

#[test]
#[ignore = "measurement: run by hand, see the module documentation"]
fn status_answers_250_destinations_well_under_250_sequential_heads() {
    let src = Registry::start().expect("source");
    let digest = push_image(&src, REPO);
    let registries: Vec<Registry> = (0..REGISTRIES)
        .map(|_| Registry::start().expect("destination"))
        .collect();
    for r in &registries {
        for i in 0..PER_REGISTRY {
            assert_eq!(push_image(r, &format!("d{i}/{REPO}")), digest);
        }
    }
    let direct: Vec<String> = registries.iter().map(Registry::host).collect();
    print("loopback", measure(&src, &digest, &direct));

    // A round trip of 50 ms to every destination (another region), through proxies that
    // delay every answer.
    let proxies: Vec<Proxy> = registries
        .iter()
        .map(|r| {
            let p = Proxy::start(r).expect("proxy");
            p.set_random_faults(FaultPlan {
                seed: 1,
                error_rate: 0.0,
                slow_rate: 1.0,
                slow_delay: Duration::from_millis(RTT_MS),
                retry_after_secs: 1,
                kinds: Vec::new(),
                only: Vec::new(),
                max_faults: u64::MAX,
            });
            p
        })
        .collect();
    let delayed: Vec<String> = proxies.iter().map(Proxy::host).collect();
    print(
        &format!("{RTT_MS} ms round trip"),
        measure(&src, &digest, &delayed),
    );
}
