//! Copies to and from ECR-shaped registries, authenticated with moto's
//! GetAuthorizationToken and reached through `FERRY_REGISTRY_ENDPOINTS`.

use ferry_e2e::ecr::endpoints_env;
use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures;
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, Registry, parse_report, scenario, verify_copy};

fn env(moto: &Moto, ecrs: &[&EcrRegistry], config: &DockerConfig) -> Vec<(String, String)> {
    let mut env = moto.aws_env();
    env.push(endpoints_env(ecrs));
    env.push(config.env());
    env
}

#[test]
fn copies_to_an_ecr_destination_with_a_moto_token() {
    let moto = Moto::start().expect("moto");
    let src = Registry::start().expect("source");
    let ecr = EcrRegistry::start_default().expect("ECR-shaped registry");
    let fixture = fixtures::signed_index(&src, "team/app", "v1", 501).expect("fixture");
    // No credentials in the Docker config: the ECR password must come from the AWS API.
    let config = DockerConfig::new().expect("config");
    let dst_ref = ecr.reference("team/app", "v1");
    let output = scenario::copy_json(
        &fixture.reference,
        &dst_ref,
        &[],
        &env(&moto, &[&ecr], &config),
    )
    .expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    let report = parse_report(&output).expect("report");
    assert_eq!(report.digest, fixture.digest);
    eprintln!(
        "{} AWS API calls for {} registry requests",
        moto.api_calls(),
        report.requests.total
    );
    verify_copy(&src, &fixture, ecr.registry(), "team/app").expect("verified");
}

#[test]
fn copies_between_two_ecr_accounts() {
    let moto = Moto::start().expect("moto");
    let source = EcrRegistry::start("111122223333", "eu-west-1").expect("source ECR");
    let dest = EcrRegistry::start("444455556666", "us-east-1").expect("destination ECR");
    let fixture = fixtures::oci_index(&source, "svc/api", "2024.1", 502).expect("fixture");
    let config = DockerConfig::new().expect("config");
    let src_ref = source.reference("svc/api", "2024.1");
    let dst_ref = dest.reference("mirror/svc/api", "2024.1");
    let output = scenario::copy_json(
        &src_ref,
        &dst_ref,
        &[],
        &env(&moto, &[&source, &dest], &config),
    )
    .expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    let mut fixture = fixture;
    // verify_copy checks the destination under the fixture's tag.
    fixture.reference = source.registry().reference("svc/api", "2024.1");
    verify_copy(
        source.registry(),
        &fixture,
        dest.registry(),
        "mirror/svc/api",
    )
    .expect("verified");
}

/// moto's `GetAuthorizationToken` answers an `expiresAt` in 2015, so a token cache keyed
/// on expiry alone asks for a new token before every registry request. Real ECR tokens
/// live 12 hours, but clock skew can make a fresh token look expired too: the engine
/// should keep a just-issued token for a minimum time (or until a 401).
#[test]
fn ecr_token_is_fetched_once_per_copy_even_if_it_looks_expired() {
    let moto = Moto::start().expect("moto");
    let src = Registry::start().expect("source");
    let ecr = EcrRegistry::start_default().expect("ECR-shaped registry");
    let fixture = fixtures::oci_index(&src, "team/cached", "v1", 503).expect("fixture");
    let config = DockerConfig::new().expect("config");
    let dst_ref = ecr.reference("team/cached", "v1");
    let output = scenario::copy_json(
        &fixture.reference,
        &dst_ref,
        &[],
        &env(&moto, &[&ecr], &config),
    )
    .expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    let calls = moto.api_calls();
    assert!(calls <= 2, "{calls} AWS API calls for one copy");
}
