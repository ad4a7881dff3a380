//! Ferry's extensions: tag filters, renaming, merging, OCI registries.

use super::{ReplicationConfig, load, targets};

const SOURCE: &str = r#""source": {"registryId": "111122223333", "region": "us-east-1"}"#;
const DR: &str = "111122223333.dkr.ecr.us-west-2.amazonaws.com";
const HUB: &str = "444455556666.dkr.ecr.eu-west-1.amazonaws.com";

fn pair(host: &str, repository: &str) -> (String, String) {
    (host.to_owned(), repository.to_owned())
}

#[test]
fn include_and_exclude_tag_filters() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [{{
            "destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}],
            "tagFilters": [
                {{"filter": "release-", "filterType": "PREFIX_MATCH"}},
                {{"filter": ">=1.2, <2", "filterType": "SEMVER"}}
            ],
            "excludeTagFilters": [
                {{"filter": "*-debug", "filterType": "WILDCARD"}},
                {{"filter": "1\\.3\\..*", "filterType": "REGEX"}}
            ]
        }}]}}"#
    ));
    // `v1.3.1` escapes the regex exclude: excludes match the tag text, not the version.
    for tag in ["release-7", "v1.2", "1.9.0", "1.2.3", "v1.3.1"] {
        assert_eq!(
            targets(&config, "app", Some(tag)),
            vec![pair(DR, "app")],
            "{tag}"
        );
        assert!(config.tag_selected("app", tag), "{tag}");
    }
    for tag in ["latest", "2.0.0", "1.1", "release-7-debug", "1.3.0"] {
        assert!(targets(&config, "app", Some(tag)).is_empty(), "{tag}");
        assert!(!config.tag_selected("app", tag), "{tag}");
    }
}

#[test]
fn untagged_images_need_untagged_rules_and_ignore_tag_filters() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}],
              "untagged": true, "tagFilters": [{{"filter": "v", "filterType": "PREFIX_MATCH"}}]}},
            {{"destinations": [{{"region": "eu-west-1", "registryId": "444455556666"}}]}}
        ]}}"#
    ));
    assert_eq!(targets(&config, "app", None), vec![pair(DR, "app")]);
    assert_eq!(
        targets(&config, "app", Some("v1")),
        vec![pair(DR, "app"), pair(HUB, "app")]
    );
    assert_eq!(
        targets(&config, "app", Some("latest")),
        vec![pair(HUB, "app")]
    );
}

#[test]
fn templates_render_with_source_registry() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "us-west-2", "registryId": "111122223333", "repositoryName": "dr/{{repository}}"}},
            {{"region": "eu-west-1", "registryId": "444455556666", "repositoryName": "mirror/{{registryId}}/{{region}}/{{repository}}"}},
            {{"registry": "ghcr.io", "repositoryName": "acme/{{repository}}"}}
        ]}}]}}"#
    ));
    assert_eq!(
        targets(&config, "team/api", Some("1")),
        vec![
            pair(DR, "dr/team/api"),
            pair(HUB, "mirror/111122223333/us-east-1/team/api"),
            pair("ghcr.io", "acme/team/api"),
        ]
    );
    let ghcr = config
        .destinations_for("x", Some("1"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(ghcr.destination.registry_host(), "ghcr.io");
    assert_eq!(ghcr.destination.path, "rules[0].destinations[2]");
    assert_eq!(ghcr.destination.repository_for("a/b").unwrap(), "acme/a/b");
}

#[test]
fn rendered_names_over_the_limit_fail_loudly() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "us-west-2", "registryId": "111122223333", "repositoryName": "dr/{{repository}}"}}
        ]}}]}}"#
    ));
    let error = config
        .destinations_for(&"a".repeat(255), Some("1"))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("rules[0].destinations[0]: repository name"),
        "{error}"
    );
}

#[test]
fn source_equal_targets_are_skipped() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "us-east-1", "registryId": "111122223333"}},
            {{"registry": "111122223333.dkr.ecr.us-east-1.amazonaws.com"}},
            {{"region": "us-west-2", "registryId": "111122223333"}},
            {{"region": "us-east-1", "registryId": "111122223333", "repositoryName": "copy/{{repository}}"}}
        ], "repositoryFilters": [{{"filter": "app", "filterType": "PREFIX_MATCH"}}]}}]}}"#
    ));
    let source = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
    assert_eq!(
        targets(&config, "app", Some("1")),
        vec![pair(source, "copy/app"), pair(DR, "app")]
    );
}

#[test]
fn destinations_are_unioned_and_flags_merged() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}],
              "referrers": false}},
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}},
                               {{"region": "eu-west-1", "registryId": "444455556666"}}],
              "repositoryFilters": [{{"filter": "prod/", "filterType": "PREFIX_MATCH"}}],
              "deletes": true, "referrers": false}},
            {{"destinations": [{{"registry": "111122223333.dkr.ecr.us-west-2.amazonaws.com"}}],
              "tagFilters": [{{"filter": "v*", "filterType": "WILDCARD"}}]}}
        ]}}"#
    ));
    let prod = config.destinations_for("prod/api", Some("latest")).unwrap();
    assert_eq!(prod.len(), 2);
    let dr = prod
        .iter()
        .find(|t| t.destination.registry_host() == DR)
        .unwrap();
    assert!(!dr.referrers && dr.deletes);
    // The first rule naming the destination provides its settings and path.
    assert_eq!(dr.destination.path, "rules[0].destinations[0]");
    // Tag filters are per rule: only the third rule selects `v1`, and it asks for referrers.
    let v1 = config.destinations_for("prod/api", Some("v1")).unwrap();
    let dr = v1
        .iter()
        .find(|t| t.destination.registry_host() == DR)
        .unwrap();
    assert!(dr.referrers && dr.deletes);
    let other = config.destinations_for("other", Some("latest")).unwrap();
    assert_eq!(other.len(), 1);
    assert!(!other[0].referrers && !other[0].deletes);
}

#[test]
fn tag_filters_apply_per_rule() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}],
              "tagFilters": [{{"filter": "v", "filterType": "PREFIX_MATCH"}}]}},
            {{"destinations": [{{"region": "eu-west-1", "registryId": "444455556666"}}],
              "excludeTagFilters": [{{"filter": "v", "filterType": "PREFIX_MATCH"}}]}}
        ]}}"#
    ));
    assert_eq!(targets(&config, "app", Some("v2")), vec![pair(DR, "app")]);
    assert_eq!(
        targets(&config, "app", Some("latest")),
        vec![pair(HUB, "app")]
    );
}

#[test]
fn oci_registries_and_endpoints() {
    let config = load(
        r#"{"source": {"registry": "localhost:5000"},
            "registries": {
              "localhost:5000": {"endpoint": "http://127.0.0.1:5000", "plainHttp": true},
              "localhost:5001": {"plainHttp": true}
            },
            "rules": [{"destinations": [
              {"registry": "localhost:5001", "credentialsSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:reg-AbC"}
            ]}]}"#,
    );
    let target = config
        .destinations_for("library/alpine", Some("3.20"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(target.destination.registry_host(), "localhost:5001");
    assert!(target.destination.credentials_secret_arn.is_some());
    let endpoint = config.endpoint_for(&target.destination.registry);
    assert_eq!(
        (endpoint.url.as_str(), endpoint.plain_http),
        ("http://localhost:5001", true)
    );
    let source = config.source_registry().unwrap();
    assert_eq!(config.endpoint_for(&source).url, "http://127.0.0.1:5000");
    // The same registry as a destination is the source: skipped.
    let same = load(
        r#"{"source": {"registry": "LOCALHOST:5000"}, "rules": [{"destinations": [{"registry": "localhost:5000"}]}]}"#,
    );
    assert!(same.destinations_for("x", Some("1")).unwrap().is_empty());
}

#[test]
fn all_destinations_are_listed_once() {
    let config = load(&format!(
        r#"{{{SOURCE}, "rules": [
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}]}},
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}},
                               {{"region": "us-west-2", "registryId": "111122223333", "repositoryName": "b/{{repository}}"}}]}}
        ]}}"#
    ));
    let all = config.destinations().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].path, "rules[1].destinations[1]");
}

#[test]
fn referrers_true_written_out_differs_from_the_default() {
    // Managed signing: an ECR destination that signs itself gets the source's signatures
    // only when a rule says `referrers: true` in so many words.
    let config = crate::config::ReplicationConfig::from_json(
        r#"{"rules": [
            {"destinations": [{"registryId": "222222222222", "region": "us-west-2"}],
             "repositoryFilters": [{"filter": "a", "filterType": "PREFIX_MATCH"}]},
            {"destinations": [{"registryId": "222222222222", "region": "us-west-2"}],
             "repositoryFilters": [{"filter": "b", "filterType": "PREFIX_MATCH"}],
             "referrers": true},
            {"destinations": [{"registryId": "222222222222", "region": "us-west-2"}],
             "repositoryFilters": [{"filter": "c", "filterType": "PREFIX_MATCH"}],
             "referrers": false}]}"#,
    )
    .unwrap();
    let target = |repo: &str| config.destinations_for(repo, Some("v1")).unwrap().remove(0);
    let (a, b, c) = (target("a"), target("b"), target("c"));
    assert!(a.referrers && !a.referrers_explicit, "the default");
    assert!(b.referrers && b.referrers_explicit, "written out");
    assert!(!c.referrers && !c.referrers_explicit);
    // The default is not written back; an explicit value is.
    let json = serde_json::to_value(&config).unwrap();
    assert!(json["rules"][0].get("referrers").is_none());
    assert_eq!(json["rules"][1]["referrers"], true);
    assert_eq!(json["rules"][2]["referrers"], false);
}

#[test]
fn registry_rates_are_read_and_must_be_at_least_one() {
    let config = load(&format!(
        r#"{{{SOURCE}, "registries": {{"{DR}": {{"rates": {{"putImage": 20, "batchGetImage": 4000}}}}}},
            "rules": [{{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}]}}]}}"#
    ));
    let rates = config.registries[DR].rates.clone().expect("rates");
    assert_eq!(
        rates.given(),
        vec![("putImage", 20), ("batchGetImage", 4000)]
    );
    let zero = format!(
        r#"{{{SOURCE}, "registries": {{"{DR}": {{"rates": {{"uploadLayerPart": 0}}}}}},
            "rules": [{{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}]}}]}}"#
    );
    let errors = super::findings(&zero, super::Severity::Error);
    assert_eq!(
        errors,
        vec![format!(
            "registries[\"{DR}\"].rates.uploadLayerPart: must be at least 1 (requests per second)"
        )]
    );
    let unknown = format!(
        r#"{{{SOURCE}, "registries": {{"{DR}": {{"rates": {{"PutImage": 5}}}}}},
            "rules": [{{"destinations": [{{"region": "us-west-2", "registryId": "111122223333"}}]}}]}}"#
    );
    assert!(
        ReplicationConfig::from_json(&unknown).is_err(),
        "an unknown key is refused"
    );
}
