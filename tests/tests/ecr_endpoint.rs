//! ECR registry endpoint behaviours of 2026, played by the test proxy's ECR mode
//! (`docs/ecr-notes.md`, "Registry endpoint"):
//! 1. an expired token answered `403 DENIED` "Your authorization token has expired" (no
//!    challenge): refreshed once and retried, as for 401, on a manifest PUT and on a
//!    blob upload PUT.
//! 2. Blob mounting is an account setting (`BLOB_MOUNTING`): where it is off (here said
//!    by the config, `registries.<host>.blobMounting: false`; the account setting itself is
//!    read with GetAccountSetting, which moto lacks: see `ecr::tests` in the engine), no
//!    mount is attempted at all; by default mounts are tried.
//! 3. A referrer whose subject is an index is refused (405, aws/containers-roadmap#2783):
//!    the image copy completes, the referrer is reported `REFERRER_REJECTED`.

use ferry_e2e::ecr_env::{EcrEnv, moto_calls_of};
use ferry_e2e::ferry::describe;
use ferry_e2e::moto::{DEFAULT_ACCOUNT, DEFAULT_REGION};
use ferry_e2e::proxy::{ExpireRule, PathKind};
use ferry_e2e::{Registry, fixtures, verify_copy};
use reqwest::Method;
use serde_json::json;

#[test]
fn an_expired_token_answered_403_denied_is_refreshed_and_retried_once() {
    let env = EcrEnv::start(|m| m);
    let src = Registry::start().expect("source");
    let first = fixtures::single_image(&src, "team/deny0", "v1", 930).expect("fixture");
    let (out, baseline) = moto_calls_of(&env.moto, || {
        env.copy(&first.reference, &env.reference("team/deny0", "v1"))
    });
    assert!(out.status.success(), "{}", describe(&out));

    for (n, kind) in [(1, PathKind::Manifest), (2, PathKind::BlobUpload)] {
        let repo = format!("team/deny{n}");
        let image = fixtures::single_image(&src, &repo, "v1", 930 + n).expect("fixture");
        env.proxy.reset_counts();
        env.proxy.expire_token_on(ExpireRule {
            method: Some(Method::PUT),
            kind: Some(kind),
            times: 1,
            denied: true,
        });
        let (out, calls) = moto_calls_of(&env.moto, || {
            env.copy(&image.reference, &env.reference(&repo, "v1"))
        });
        assert!(out.status.success(), "{kind:?}: {}", describe(&out));
        let log = env.proxy.requests();
        let refused: Vec<_> = log
            .iter()
            .filter(|r| r.fault == Some("ecr-expired"))
            .collect();
        assert_eq!(refused.len(), 1, "{kind:?}: {log:?}");
        assert_eq!(refused[0].status, 403);
        assert_eq!(calls, baseline + 1, "{kind:?}: one new token after the 403");
        verify_copy(&src, &image, env.registry(), &repo).expect("verified");
    }

    // A 403 that is not about expiry is final: no new token, no second try.
    env.proxy.reset_counts();
    env.proxy.expire_token_on(ExpireRule {
        method: Some(Method::PUT),
        kind: Some(PathKind::Manifest),
        times: 2,
        denied: true,
    });
    let image = fixtures::single_image(&src, "team/deny3", "v1", 933).expect("fixture");
    let (out, calls) = moto_calls_of(&env.moto, || {
        env.copy(&image.reference, &env.reference("team/deny3", "v1"))
    });
    // Two expiries in a row: refreshed once, then the second 403 is the answer.
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(calls, baseline + 1, "exactly one refresh");
    let refused = env
        .proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("ecr-expired"))
        .count();
    assert_eq!(refused, 2);
}

#[test]
fn without_blob_mounting_no_mount_is_attempted() {
    let env = EcrEnv::start(|m| m);
    let src = Registry::start().expect("source");
    // The same image in three repositories: after the first, every blob could be mounted.
    let repos = ["mnt/a", "mnt/b", "mnt/c"];
    for repo in repos {
        fixtures::single_image(&src, repo, "v1", 940).expect("fixture");
    }
    let config = |blob_mounting: Option<bool>, prefix: &str| {
        let mut config = json!({
            "source": {"registry": src.host()},
            "rules": [{
                "repositoryFilters": [{"filter": "mnt/", "filterType": "PREFIX_MATCH"}],
                "destinations": [{"registryId": DEFAULT_ACCOUNT, "region": DEFAULT_REGION,
                                  "repositoryName": format!("{prefix}/{{repository}}")}]
            }]
        });
        if let Some(allowed) = blob_mounting {
            config["registries"] = json!({env.ecr.ecr_host(): {"blobMounting": allowed}});
        }
        config
    };
    let mounts = |env: &EcrEnv| {
        env.proxy
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("mount="))
            .count()
    };

    let (out, report) = env.sync(&config(None, "default"), &["--concurrency", "1"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(mounts(&env) > 0, "mounts are tried by default");
    let mounted = report["totals"]["blobs_mounted"].as_u64().expect("totals");

    env.proxy.reset_counts();
    let (out, report) = env.sync(&config(Some(false), "off"), &["--concurrency", "1"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(mounts(&env), 0, "no mount attempt with blob mounting off");
    assert_eq!(report["totals"]["blobs_mounted"], 0, "{report}");
    assert_eq!(report["totals"]["copied"], 3, "{report}");
    // Each repository then receives every blob itself: what the mounts saved before.
    assert!(
        report["totals"]["blobs_copied"].as_u64() > Some(mounted),
        "{report}"
    );
}

#[test]
fn a_referrer_the_destination_refuses_does_not_fail_the_image() {
    let env = EcrEnv::start(|mut m| {
        m.reject_index_referrers = true;
        m
    });
    let src = Registry::start().expect("source");
    let image = fixtures::index_with_referrer(&src, "team/signed", "v1", 950).expect("fixture");
    let out = env.copy(&image.reference, &env.reference("team/signed", "v1"));
    assert!(out.status.success(), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let rejected = report["referrers_rejected"]
        .as_array()
        .expect("rejected referrers");
    assert_eq!(rejected.len(), 1, "{report}");
    assert_eq!(
        rejected[0]["digest"],
        image.referrers[0].as_str(),
        "{report}"
    );
    assert_eq!(rejected[0]["code"], "REFERRER_REJECTED");
    assert_eq!(rejected[0]["status"], 405);
    let refused = env
        .proxy
        .requests()
        .iter()
        .filter(|r| r.fault == Some("ecr-referrer-rejected"))
        .count();
    assert_eq!(refused, 1, "one PUT of the referrer, not retried");
    // The image itself, every child and blob, is there; the refused referrer is not listed
    // in the destination's fallback index either.
    let mut without = image.clone();
    without.referrers.clear();
    without.referrer_blobs.clear();
    without.extra_tags.clear();
    verify_copy(&src, &without, env.registry(), "team/signed").expect("verified");
    assert_eq!(
        env.registry()
            .manifest_digest("team/signed", &image.extra_tags[0])
            .expect("head"),
        None,
        "no fallback index lists what was refused"
    );
}
