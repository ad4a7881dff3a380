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
