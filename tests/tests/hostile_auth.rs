//! A hostile registry's answers never widen where Ferry goes or whom it gives credentials:
//! upload `Location`s on another origin, blob redirects to the metadata address, token
//! realms on another origin, and token answers that are huge or never expire.
//!
//! Everything stays on loopback. The redirect test also points `HTTP_PROXY` at a
//! recording loopback listener, so that even a Ferry without the check could never send a
//! packet to 169.254.169.254: the request would reach the recorder instead.

use std::process::Output;

use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::{self, Fixture};
use ferry_e2e::proxy::{BearerMode, HostileMode, PathKind, Proxy, TokenReply};
use ferry_e2e::registry::image_reference;
use ferry_e2e::{DockerConfig, Sandbox, error_codes, scenario, verify_copy};

const TOKEN: &str = "hostile-test-token";

fn assert_failed_with(output: &Output, code: &str, text: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    assert!(
        error_codes(output).contains(&code.to_string()),
        "expected error[{code}]\n{}",
        describe(output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(text),
        "expected {text:?}\n{}",
        describe(output)
    );
}

/// Copies `src_ref` to the sandbox's destination with every HTTP request but those to
/// 127.0.0.1 sent to `http_proxy` (a loopback listener), and `extra` in the environment.
fn copy_through_http_proxy(
    sandbox: &Sandbox,
    fixture: &Fixture,
    src_ref: &str,
    http_proxy: &str,
    extra: &[(&str, &str)],
) -> Output {
    let mut envs = sandbox.env();
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        envs.push((name.into(), http_proxy.into()));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        envs.push((name.into(), "127.0.0.1".into()));
    }
    envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    scenario::copy_json(src_ref, &dst_ref, &[], &envs).expect("runs")
}

#[test]
fn an_upload_location_on_another_origin_gets_no_authorization() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/upload", "v1", 901).expect("fixture");
    let proxy = Proxy::start(&sandbox.dst).expect("proxy");
    let foreign = proxy.start_foreign("127.0.0.1").expect("foreign origin");
    proxy.set_hostile(HostileMode {
        upload_origin: Some(foreign.clone()),
        ..HostileMode::default()
    });
    let mut config = DockerConfig::new().expect("config");
    config
        .add(
            &proxy.host(),
            sandbox.dst.credentials().expect("destination credentials"),
        )
        .expect("proxy credentials");
    let dst_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let output =
        scenario::copy_json(&fixture.reference, &dst_ref, &[], &[config.env()]).expect("runs");
    assert!(output.status.success(), "{}", describe(&output));
    let seen = proxy.foreign_requests();
    let puts: Vec<_> = seen.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(
        puts.len(),
        fixture.blobs.len(),
        "every blob uploaded through the foreign origin: {seen:?}"
    );
    assert!(
        seen.iter().all(|r| r.authorization.is_none()),
        "Authorization reached the foreign origin {foreign}: {seen:?}"
    );
    // The registry's own origin still got the credentials (the POSTs that opened them).
    assert!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.kind == PathKind::BlobUpload)
            .all(|r| r.authorization)
    );
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("verified");
}

#[test]
fn a_blob_redirect_to_the_metadata_address_is_refused_before_connecting() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/imds", "v1", 902).expect("fixture");
    let proxy = Proxy::start(&sandbox.src).expect("proxy");
    // The safety net: every proxied request lands here, recorded and refused.
    let recorder = proxy.start_foreign("127.0.0.1").expect("recorder");
    proxy.set_hostile(HostileMode {
        blob_redirect: Some(
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/".into(),
        ),
        ..HostileMode::default()
    });
    let src_ref = image_reference(&proxy.host(), &fixture.repo, &fixture.tag);
    let output = copy_through_http_proxy(&sandbox, &fixture, &src_ref, &recorder, &[]);
    assert_failed_with(
        &output,
        "refused",
        "169.254.169.254 is a link-local address",
    );
    assert_eq!(
        proxy.foreign_requests().len(),
        0,
        "a request left for the metadata address: {:?}",
        proxy.foreign_requests()
    );
    // Permanent: each redirected blob GET was sent once, not retried.
    let blob_gets = proxy
        .attempts_by_key()
        .into_iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.contains("/blobs/"))
        .collect::<Vec<_>>();
    assert!(!blob_gets.is_empty());
    assert!(blob_gets.iter().all(|(_, n)| *n == 1), "{blob_gets:?}");
}

/// The exception for loopback registries is the registry's own class, not a blanket
/// one: a registry known by a host name (here `registry.test`, reached through the proxy
/// as `HTTP_PROXY`, so nothing is resolved and nothing leaves loopback) counts as
/// routable, and its redirect to a loopback address is refused.
#[test]
fn a_routable_registry_may_not_redirect_to_loopback() {
    let sandbox = Sandbox::start().expect("sandbox");
    let fixture = fixtures::single_image(&sandbox.src, "app/named", "v1", 907).expect("fixture");
    let proxy = Proxy::start(&sandbox.src).expect("proxy");
    proxy.set_hostile(HostileMode {
        blob_redirect: Some("http://127.0.0.2:9/lambda-runtime".into()),
        ..HostileMode::default()
    });
    let src_ref = image_reference("registry.test", &fixture.repo, &fixture.tag);
    let endpoint = (
        "FERRY_REGISTRY_ENDPOINTS",
        "registry.test=http://registry.test",
    );
    let output = copy_through_http_proxy(&sandbox, &fixture, &src_ref, &proxy.url(), &[endpoint]);
    assert_failed_with(
        &output,
        "refused",
        "127.0.0.2 is a loopback address and the registry is routable",
    );
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.fault == Some("hostile-redirect")),
        "the registry was reached through the proxy: {requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.path.contains("lambda-runtime")),
        "the redirect was followed: {requests:?}"
    );
}

/// A source registry that demands a Bearer token from `realm` (answering `reply`), and a
/// Docker config holding `entry` (a config.json `auths` value) for it.
struct TokenSetup {
    sandbox: Sandbox,
    fixture: Fixture,
    proxy: Proxy,
    /// `127.0.0.1:PORT` of the realm.
    realm_host: String,
    config: tempfile::TempDir,
}

impl TokenSetup {
    fn start(
        seed: u64,
        realm_on_foreign: bool,
        reply: TokenReply,
        entry: serde_json::Value,
    ) -> Self {
        let sandbox = Sandbox::start().expect("sandbox");
        let fixture =
            fixtures::single_image(&sandbox.src, "app/token", "v1", seed).expect("fixture");
        let proxy = Proxy::start(&sandbox.src).expect("proxy");
        let realm = if realm_on_foreign {
            format!(
                "{}/token",
                proxy.start_foreign("127.0.0.1").expect("foreign")
            )
        } else {
            format!("{}/token", proxy.url())
        };
        let realm_host = realm
            .trim_start_matches("http://")
            .trim_end_matches("/token")
            .to_string();
        proxy.set_hostile(HostileMode {
            bearer: Some(BearerMode {
                realm,
                token: TOKEN.into(),
                reply,
            }),
            ..HostileMode::default()
        });
        let config = tempfile::tempdir().expect("config dir");
        let dst = sandbox.dst.credentials().expect("destination credentials");
        let dst_auth = base64_auth(&dst.username, &dst.password);
        let body = serde_json::json!({"auths": {
            proxy.host(): entry,
            sandbox.dst.host(): {"auth": dst_auth},
        }});
        std::fs::write(config.path().join("config.json"), body.to_string()).expect("write");
        TokenSetup {
            sandbox,
            fixture,
            proxy,
            realm_host,
            config,
        }
    }

    fn copy(&self) -> Output {
        let src_ref = image_reference(&self.proxy.host(), &self.fixture.repo, &self.fixture.tag);
        let dst_ref = self.fixture.reference_at(&self.sandbox.dst.host());
        let env = (
            "DOCKER_CONFIG".to_string(),
            self.config.path().display().to_string(),
        );
        scenario::copy_json(&src_ref, &dst_ref, &[], &[env]).expect("runs")
    }
}

fn base64_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

fn token_reply(expires_in: Option<&str>) -> TokenReply {
    TokenReply::Token {
        expires_in: expires_in.map(str::to_string),
    }
}

/// Holding `entry` for the registry, a copy whose token realm is on another origin fails
/// with an `auth` error naming the realm, and the realm receives nothing.
fn refuses_a_foreign_realm(seed: u64, entry: serde_json::Value) {
    let setup = TokenSetup::start(seed, true, token_reply(Some("300")), entry);
    let output = setup.copy();
    let seen = setup.proxy.foreign_requests();
    assert!(
        !seen
            .iter()
            .any(|r| r.refresh_token || r.authorization.is_some()),
        "credentials reached the foreign realm: {seen:?}"
    );
    assert_eq!(seen.len(), 0, "the foreign realm was asked: {seen:?}");
    assert_failed_with(
        &output,
        "auth",
        &format!("token realm {}", setup.realm_host),
    );
}

#[test]
fn basic_credentials_never_go_to_a_token_realm_on_another_origin() {
    refuses_a_foreign_realm(
        903,
        serde_json::json!({"auth": base64_auth("src-user", "src-secret")}),
    );
}

#[test]
fn an_identity_token_never_goes_to_a_token_realm_on_another_origin() {
    refuses_a_foreign_realm(904, serde_json::json!({"identitytoken": "refresh-secret"}));
}

#[test]
fn a_token_that_never_expires_is_used_without_panicking() {
    let setup = TokenSetup::start(
        905,
        false,
        token_reply(Some("18446744073709551615")),
        serde_json::json!({"auth": base64_auth("src-user", "src-secret")}),
    );
    let output = setup.copy();
    assert!(output.status.success(), "{}", describe(&output));
    let seen = setup.proxy.foreign_requests();
    assert!(
        !seen.is_empty(),
        "the realm on the registry's origin was used"
    );
    assert!(seen.iter().all(|r| r.origin == setup.proxy.url()));
    verify_copy(
        &setup.sandbox.src,
        &setup.fixture,
        &setup.sandbox.dst,
        &setup.fixture.repo,
    )
    .expect("verified");
}

#[test]
fn a_token_response_over_1_mib_is_refused() {
    let setup = TokenSetup::start(
        906,
        false,
        TokenReply::Huge(2 * 1024 * 1024),
        serde_json::json!({"auth": base64_auth("src-user", "src-secret")}),
    );
    let output = setup.copy();
    assert_failed_with(&output, "auth", "is over 1048576 bytes");
    assert!(!setup.proxy.foreign_requests().is_empty());
}
