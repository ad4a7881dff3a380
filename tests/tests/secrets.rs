//! Secrets never reach the logs, even at trace level: registry passwords, ECR tokens and
//! `Authorization` header values stay out of stdout and stderr of `ferry copy -vv` with
//! `FERRY_LOG=trace`, on a direct copy and on one whose blob GETs are redirected (307) to
//! an object store.
//!
//! At TRACE the AWS SDK's orchestrator (`aws_smithy_runtime`) would log ECR
//! `GetAuthorizationToken`'s response body and output, both holding the token (ECR's model
//! does not mark it sensitive): every binary caps it with `ferry::log_allowed`, and the strict
//! test below proves it.

use std::process::Output;

use base64::Engine as _;
use ferry_e2e::ecr::endpoints_env;
use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures;
use ferry_e2e::moto::auth_token_password;
use ferry_e2e::registry::image_reference;
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, Proxy, Registry, run_ferry, verify_copy};

const SOURCE_USER: &str = "source-user";
const SOURCE_PASSWORD: &str = "s3cr3t-marker-7f3a9c1e";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Every string that must never be printed, with what it is.
fn forbidden(ecr: &EcrRegistry) -> Vec<(String, &'static str)> {
    let token = auth_token_password(ecr.account());
    vec![
        (SOURCE_PASSWORD.to_string(), "source password"),
        (b64(SOURCE_PASSWORD), "source password, base64"),
        (
            b64(&format!("{SOURCE_USER}:{SOURCE_PASSWORD}")),
            "source Basic credential (config.json auth / Authorization value)",
        ),
        (token.clone(), "ECR token"),
        (b64(&token), "ECR token, base64"),
        (
            b64(&format!("AWS:{token}")),
            "ECR authorizationToken / Basic Authorization value",
        ),
    ]
}

/// The output without ANSI colour sequences, so that a value split by them is still found.
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `Basic <credential>` or `Bearer <token>` as an `Authorization` header carries them
/// (challenges print `Basic realm=…`, which is not a credential).
fn authorization_values(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["Basic ", "Bearer ", "basic ", "bearer "] {
        for (at, _) in text.match_indices(scheme) {
            let value: String = text[at + scheme.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "+/=._-~".contains(*c))
                .collect();
            if value.len() >= 8 && !value.starts_with("realm=") {
                found.push(format!("{scheme}{value}"));
            }
        }
    }
    found
}

fn assert_no_secrets(what: &str, output: &Output, ecr: &EcrRegistry) {
    let stdout = plain(&output.stdout);
    let stderr = plain(&output.stderr);
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for (secret, name) in forbidden(ecr) {
            if let Some(line) = text.lines().find(|l| l.contains(&secret)) {
                let shown: String = line.replace(&secret, "<HERE>").chars().take(400).collect();
                panic!("{what}: the {name} appears in {stream}, at <HERE>:\n{shown}");
            }
        }
        let values = authorization_values(text);
        assert!(
            values.is_empty(),
            "{what}: Authorization values in {stream}: {values:?}"
        );
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            if let Some(at) = lower.find("authorization") {
                let after = &lower[at..];
                assert!(
                    !after.contains("basic ") && !after.contains("bearer "),
                    "{what}: an Authorization header value in {stream}: {line}"
                );
            }
        }
    }
    // Not vacuous: trace-level logging was on and printed.
    let trace_lines = stderr.lines().filter(|l| l.contains("TRACE")).count();
    assert!(
        trace_lines > 0,
        "{what}: no TRACE line in stderr, so the test proves nothing:\n{}",
        describe(output)
    );
}

fn copy_traced(src: &str, dst: &str, env: &[(String, String)], filter: &str) -> Output {
    let mut env = env.to_vec();
    env.push(("FERRY_LOG".into(), filter.into()));
    run_ferry(["copy", src, dst, "-vv"], &env).expect("ferry runs")
}

/// Everything at trace level, the AWS SDK's runtime included.
#[test]
fn passwords_and_tokens_never_appear_in_trace_logs() {
    copies_leak_nothing("trace");
}

/// Everything at trace level but the AWS SDK's orchestrator (`aws_smithy_runtime`), which
/// logs whole responses at trace: registry passwords, Basic and Bearer headers, redirects
/// and the engine's own logs are all covered.
#[test]
fn passwords_and_tokens_never_appear_in_trace_logs_but_the_sdk_runtime() {
    copies_leak_nothing("trace,aws_smithy_runtime=debug");
}

fn copies_leak_nothing(filter: &str) {
    let moto = Moto::start().expect("moto");
    let src = Registry::start_with_auth(SOURCE_USER, SOURCE_PASSWORD).expect("source registry");
    let ecr = EcrRegistry::start_default().expect("ECR-shaped registry");
    let fixture = fixtures::oci_index(&src, "team/secret", "v1", 601).expect("fixture");

    // The source password comes from config.json; the ECR token from moto's
    // GetAuthorizationToken (nothing for the ECR host in config.json).
    let mut config = DockerConfig::for_registries(&[&src]).expect("config");
    let mut env = moto.aws_env();
    env.push(endpoints_env(&[&ecr]));

    // 1. Direct: htpasswd source to the ECR-shaped destination.
    env.push(config.env());
    let direct = copy_traced(
        &fixture.reference,
        &ecr.reference("team/secret", "v1"),
        &env,
        filter,
    );
    assert!(direct.status.success(), "{}", describe(&direct));
    assert_no_secrets("direct copy", &direct, &ecr);
    verify_copy(&src, &fixture, ecr.registry(), "team/secret").expect("verified");

    // 2. Through the proxy, which redirects every blob GET (307) to an object store that
    //    refuses any Authorization header.
    let proxy = Proxy::start(&src).expect("proxy");
    proxy.set_redirect_blobs(true);
    config
        .add(
            &proxy.host(),
            src.credentials().expect("source credentials"),
        )
        .expect("proxy credentials");
    let redirected = copy_traced(
        &image_reference(&proxy.host(), &fixture.repo, &fixture.tag),
        &ecr.reference("team/redirected", "v1"),
        &env,
        filter,
    );
    let stats = proxy.object_store_stats();
    assert!(
        redirected.status.success(),
        "{}\nobject store: {stats:?}",
        describe(&redirected)
    );
    assert!(
        proxy.requests().iter().any(|r| r.fault == Some("redirect")),
        "no blob GET was redirected"
    );
    assert_eq!(
        stats.rejected_auth, 0,
        "Authorization reached the object store: {stats:?}"
    );
    assert_no_secrets("redirected copy", &redirected, &ecr);
    verify_copy(&src, &fixture, ecr.registry(), "team/redirected").expect("verified");
}

#[test]
fn the_checks_catch_a_leak() {
    // The detectors themselves: a log line holding any forbidden value is caught.
    let ecr_token = auth_token_password("123456789012");
    let header = format!("Basic {}", b64(&format!("AWS:{ecr_token}")));
    assert_eq!(
        authorization_values(&format!("authorization: {header}")),
        vec![header]
    );
    assert!(authorization_values(r#"www-authenticate: Basic realm="Registry Realm""#).is_empty());
    assert!(authorization_values(r#"Bearer realm="https://auth/token",service="x""#).is_empty());
    assert_eq!(
        plain(b"\x1b[2mpassword\x1b[0m=s3cr3t-marker"),
        "password=s3cr3t-marker"
    );
}
