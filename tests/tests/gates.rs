//! Promotion gates end to end: `ferry plan` and `ferry sync` over an ECR source whose scan
//! findings come from moto's DescribeImageScanFindings (canned per image through moto's
//! API, `/moto-api/static/ecr/scan-finding-results`), the images themselves from an
//! ECR-shaped local registry, copied to a plain local registry.
//!
//! moto plays ECR's scan state as far as it goes: no scan until StartImageScan
//! (ScanNotFoundException), then the canned answer. The scan's time limit
//! (`waitMinutes`) and indexes with a failing platform are judged by
//! `crates/ferry/src/gate/scan.rs`'s tests (moto's push time is always now).

use ferry_e2e::ecr_env::EcrEnv;
use ferry_e2e::ferry::{describe, plan_item};
use ferry_e2e::moto::{DEFAULT_ACCOUNT, DEFAULT_REGION};
use ferry_e2e::scans::{complete_scan, register_image};
use ferry_e2e::{Registry, fixtures, run_with_config};
use serde_json::{Value, json};

fn plan(env: &EcrEnv, config: &Value) -> Value {
    let (out, plan) = run_with_config("plan", config, &[], &env.env()).expect("ferry runs");
    assert!(out.status.success(), "{}", describe(&out));
    plan
}

#[test]
fn scan_gate_holds_blocks_ignores_and_releases_through_plan_and_sync() {
    let env = EcrEnv::start(|m| m);
    let dst = Registry::start().expect("destination");
    // Four images: unscanned, CRITICAL, CRITICAL but ignored, clean.
    let mut digests = Vec::new();
    for (i, tag) in ["unscanned", "critical", "ignored", "clean"]
        .iter()
        .enumerate()
    {
        fixtures::single_image(&env.ecr, "golden/app", tag, 3100 + i as u64).expect("push");
        digests.push(
            register_image(&env.moto, env.registry(), "golden/app", tag, Some(tag))
                .expect("register"),
        );
    }
    complete_scan(
        &env.moto,
        "golden/app",
        &digests[1],
        &[("CVE-2026-0001", "CRITICAL"), ("CVE-2026-0002", "LOW")],
    )
    .expect("scan");
    complete_scan(
        &env.moto,
        "golden/app",
        &digests[2],
        &[("CVE-2024-1234", "CRITICAL"), ("CVE-2026-0003", "HIGH")],
    )
    .expect("scan");
    complete_scan(
        &env.moto,
        "golden/app",
        &digests[3],
        &[("CVE-2026-0004", "MEDIUM")],
    )
    .expect("scan");

    let config = json!({
        "source": {"registryId": DEFAULT_ACCOUNT, "region": DEFAULT_REGION},
        "rules": [{
            "repositoryFilters": [{"filter": "golden/", "filterType": "PREFIX_MATCH"}],
            "destinations": [{"registry": dst.host()}],
            "gates": {"scan": {"maxSeverity": "HIGH", "ignore": ["CVE-2024-1234"], "waitMinutes": 60}}
        }]
    });
    let p = plan(&env, &config);
    let unscanned = plan_item(&p, "unscanned");
    assert_eq!(unscanned["action"], "held", "{unscanned}");
    assert_eq!(unscanned["gate"]["code"], "scan-pending");
    let critical = plan_item(&p, "critical");
    assert_eq!(critical["action"], "blocked", "{critical}");
    assert_eq!(critical["gate"]["gate"], "scan");
    assert_eq!(critical["gate"]["code"], "severity");
    assert_eq!(
        critical["gate"]["findings"],
        json!({"LOW": 1, "CRITICAL": 1})
    );
    assert_eq!(
        plan_item(&p, "ignored")["action"],
        "copy",
        "the ignored CVE does not block"
    );
    assert_eq!(plan_item(&p, "clean")["action"], "copy");
    assert_eq!(p["summary"]["held"], 1);
    assert_eq!(p["summary"]["blocked"], 1);

    // sync copies only what passed; held and blocked are reported, not failures.
    let (out, report) = env.sync(&config, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(report["totals"]["copied"], 2, "{}", report["totals"]);
    assert_eq!(report["totals"]["held"], 1);
    assert_eq!(report["totals"]["blocked"], 1);
    assert_eq!(report["totals"]["failed"], 0);
    let tags = dst.tags("golden/app").expect("tags");
    assert_eq!(
        tags,
        ["clean", "ignored"],
        "only the passing images were copied"
    );
    // Held and blocked copies are no drift: verify finds none.
    let (verify, _) = run_with_config("verify", &config, &[], &env.env()).expect("ferry runs");
    assert!(verify.status.success(), "{}", describe(&verify));

    // The held image's scan completes clean: released. The blocked one stays blocked.
    complete_scan(&env.moto, "golden/app", &digests[0], &[]).expect("scan");
    let p = plan(&env, &config);
    assert_eq!(plan_item(&p, "unscanned")["action"], "copy");
    assert_eq!(plan_item(&p, "critical")["action"], "blocked");
    let (out, report) = env.sync(&config, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(report["totals"]["copied"], 1);
    assert_eq!(
        dst.manifest_digest("golden/app", "unscanned")
            .expect("head")
            .as_deref(),
        Some(digests[0].as_str())
    );
    assert_eq!(
        dst.manifest_digest("golden/app", "critical").expect("head"),
        None
    );

    // Gates apply to copies only: a copied image stays (skip, no drift).
    let verify = plan(&env, &config);
    assert_eq!(plan_item(&verify, "clean")["action"], "skip");

    // `ferry status` says why an image has not arrived.
    let image = env.reference("golden/app", "critical");
    let (_, status) =
        run_with_config("status", &config, &[&image], &env.env()).expect("ferry runs");
    let d = &status["destinations"][0];
    assert_eq!(d["state"], "MISSING", "{status}");
    assert_eq!(d["gate"]["verdict"], "blocked");
    assert_eq!(d["gate"]["code"], "severity");
}
