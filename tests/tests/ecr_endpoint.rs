//! ECR registry endpoint behaviours of 2026, played by the test proxy's ECR mode
//! (`docs/ecr-notes.md`, "Registry endpoint"):
//! 1. an expired token answered `403 DENIED` "Your authorization token has expired" (no
//!    challenge): refreshed once and retried, as for 401, on a manifest PUT and on a
//!    blob upload PUT.

use ferry_e2e::ecr_env::{EcrEnv, moto_calls_of};
use ferry_e2e::ferry::describe;
use ferry_e2e::proxy::{ExpireRule, PathKind};
use ferry_e2e::{Registry, fixtures, verify_copy};
use reqwest::Method;

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
