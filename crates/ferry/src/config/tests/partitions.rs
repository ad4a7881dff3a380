//! Validation of registries in other AWS partitions: which need `credentialsSecretArn`,
//! and why.

use super::{findings, load};
use crate::config::Severity::Error;

const SOURCE: &str = r#""source": {"registryId": "111122223333", "region": "us-east-1"}"#;
const CN_HOST: &str = "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn";
const KEYS: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:ferry/cn-keys-AbCdEf";

fn config(source: &str, destinations: &str) -> String {
    format!(r#"{{{source}, "rules": [{{"destinations": [{destinations}]}}]}}"#)
}

fn cn(extra: &str) -> String {
    format!(r#"{{"registryId": "210987654321", "region": "cn-north-1"{extra}}}"#)
}

fn errors(json: &str) -> Vec<String> {
    findings(json, Error)
}

#[test]
fn a_destination_in_another_partition_needs_its_own_keys() {
    let json = config(SOURCE, &cn(""));
    let found = errors(&json);
    assert_eq!(found.len(), 1, "{found:?}");
    let error = &found[0];
    for part in [
        "rules[0].destinations[0]: ",
        CN_HOST,
        "is in partition `aws-cn` but Ferry runs in `aws`",
        "no role can be assumed across partitions",
        "set `rules[0].destinations[0].credentialsSecretArn`",
        r#"{"accessKeyId", "secretAccessKey"}"#,
    ] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    // With the keys it is valid; GovCloud likewise.
    load(&config(
        SOURCE,
        &cn(&format!(r#", "credentialsSecretArn": "{KEYS}""#)),
    ));
    let gov = config(
        SOURCE,
        r#"{"registryId": "444455556666", "region": "us-gov-west-1"}"#,
    );
    assert!(
        errors(&gov)[0].contains("is in partition `aws-us-gov` but Ferry runs in `aws`"),
        "{:?}",
        errors(&gov)
    );
}

#[test]
fn a_source_in_another_partition_needs_its_own_keys_for_the_hub() {
    // The CLI runs with the source's credentials: a China source to China destinations is
    // valid as it is…
    let cn_source = r#""source": {"registryId": "210987654321", "region": "cn-north-1"}"#;
    let cn_to_cn = config(
        cn_source,
        r#"{"registryId": "210987654321", "region": "cn-northwest-1"}"#,
    );
    let loaded = load(&cn_to_cn);
    // …but not for a hub in us-east-1.
    let error = loaded
        .check_home_region("us-east-1")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("source: `210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn` is in partition `aws-cn` but Ferry runs in `aws`"),
        "{error}"
    );
    assert!(error.contains("rules[0].destinations[0]"), "{error}");
    assert!(loaded.check_home_region("cn-north-1").is_ok());

    // The mirror case: a China source with its keys, commercial destinations.
    let mirror = config(
        &format!(
            r#""source": {{"registryId": "210987654321", "region": "cn-north-1", "credentialsSecretArn": "{KEYS}"}}"#
        ),
        r#"{"registryId": "111122223333", "region": "eu-west-1"}"#,
    );
    let loaded = load(&mirror);
    assert!(loaded.check_home_region("us-east-1").is_ok());
    // A hub in China would read the secret in `aws` with a China identity: refused.
    let error = loaded
        .check_home_region("cn-north-1")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("source.credentialsSecretArn: the secret is in partition `aws` but Ferry runs in `aws-cn`"),
        "{error}"
    );
    // A source secret needs the source registry it is bound to.
    let partial = config(
        &format!(r#""source": {{"registryId": "210987654321", "credentialsSecretArn": "{KEYS}"}}"#),
        r#"{"registryId": "111122223333", "region": "eu-west-1"}"#,
    );
    assert!(
        errors(&partial)
            .iter()
            .any(|e| e.starts_with("source.credentialsSecretArn: needs a complete source")),
        "{:?}",
        errors(&partial)
    );
}

#[test]
fn keys_exclude_a_role_and_secrets_live_in_ferrys_partition() {
    let both = config(
        SOURCE,
        &cn(&format!(
            r#", "credentialsSecretArn": "{KEYS}", "roleArn": "arn:aws-cn:iam::210987654321:role/ferry""#
        )),
    );
    let errors_both = errors(&both);
    assert!(
        errors_both.iter().any(|e| e.starts_with(
            "rules[0].destinations[0].roleArn: give either roleArn or credentialsSecretArn, not both"
        ) && e.contains("never assumes a role with them")),
        "{errors_both:?}"
    );

    // A secret in the other partition cannot be read with Ferry's own identity.
    let cn_secret = "arn:aws-cn:secretsmanager:cn-north-1:210987654321:secret:keys-AbC";
    let misplaced = config(
        SOURCE,
        &cn(&format!(r#", "credentialsSecretArn": "{cn_secret}""#)),
    );
    let errors_misplaced = errors(&misplaced);
    assert!(
        errors_misplaced.iter().any(|e| e.starts_with(
            "rules[0].destinations[0].credentialsSecretArn: the secret is in partition `aws-cn` but Ferry runs in `aws`"
        )),
        "{errors_misplaced:?}"
    );

    // A role of another partition than its destination's.
    let wrong_role = config(
        SOURCE,
        r#"{"registryId": "444455556666", "region": "eu-west-1", "roleArn": "arn:aws-cn:iam::444455556666:role/w"}"#,
    );
    assert!(
        errors(&wrong_role).iter().any(|e| e.contains(
            "roleArn: the role is in partition `aws-cn` but the destination region `eu-west-1` is in `aws`"
        )),
        "{:?}",
        errors(&wrong_role)
    );
}

#[test]
fn destinations_on_one_ecr_registry_share_its_keys() {
    let json = config(
        SOURCE,
        &format!(
            r#"{}, {}"#,
            cn(&format!(
                r#", "credentialsSecretArn": "{KEYS}", "repositoryName": "a/{{repository}}""#
            )),
            cn(r#", "repositoryName": "b/{repository}""#),
        ),
    );
    let errors = errors(&json);
    assert!(
        errors.iter().any(|e| e.starts_with(
            "rules[0].destinations[1].credentialsSecretArn: rules[0].destinations[0] names registry"
        ) && e.contains("must name the same credentialsSecretArn")),
        "{errors:?}"
    );
}

#[test]
fn without_a_known_partition_two_partitions_cannot_both_be_reached() {
    let oci_source = r#""source": {"registry": "registry.example"}"#;
    let json = config(
        oci_source,
        &format!(
            r#"{{"registryId": "111122223333", "region": "eu-west-1"}}, {}"#,
            cn("")
        ),
    );
    let errors = errors(&json);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("rules[0].destinations[1]: ")
            && errors[0]
                .contains("is in partition `aws-cn` but rules[0].destinations[0] is in `aws`"),
        "{errors:?}"
    );
    // One partition alone is fine.
    load(&config(oci_source, &cn("")));
}

#[test]
fn ecr_hosts_of_other_partitions_and_api_endpoints() {
    // Spelt as a host, a China destination parses as ECR.
    let json = config(SOURCE, &format!(r#"{{"registry": "{CN_HOST}"}}"#));
    assert!(errors(&json)[0].contains("partition `aws-cn`"));
    // A China region under `.amazonaws.com` is no ECR host.
    let wrong = config(
        SOURCE,
        r#"{"registry": "210987654321.dkr.ecr.cn-north-1.amazonaws.com"}"#,
    );
    assert!(
        errors(&wrong).iter().any(|e| e.contains(&format!(
            "is no ECR registry host: ECR serves that region under `{CN_HOST}`"
        ))),
        "{:?}",
        errors(&wrong)
    );

    let with_endpoint = |host: &str, url: &str| {
        format!(
            r#"{{{SOURCE}, "registries": {{"{host}": {{"apiEndpoint": "{url}"}}}},
                "rules": [{{"destinations": [{}]}}]}}"#,
            cn(&format!(r#", "credentialsSecretArn": "{KEYS}""#))
        )
    };
    load(&with_endpoint(
        CN_HOST,
        "https://vpce-0abc.api.ecr.cn-north-1.vpce.amazonaws.com.cn",
    ));
    load(&with_endpoint(CN_HOST, "http://127.0.0.1:4566"));
    let plain = errors(&with_endpoint(CN_HOST, "http://ecr.internal"));
    assert!(
        plain.iter().any(|e| e.starts_with(&format!(
            "registries.\"{CN_HOST}\".apiEndpoint: `http://ecr.internal` is plain HTTP"
        )) || e.contains("apiEndpoint: `http://ecr.internal` is plain HTTP")),
        "{plain:?}"
    );
    let oci = errors(&with_endpoint("ghcr.io", "https://api.example"));
    assert!(
        oci.iter()
            .any(|e| e.contains("apiEndpoint: applies to ECR registries only")),
        "{oci:?}"
    );
}
