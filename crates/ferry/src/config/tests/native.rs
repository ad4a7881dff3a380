//! ECR's native replication configuration, imported unchanged, means what it means to ECR.

use super::{load, targets};
use crate::config::ReplicationConfig;

const NATIVE: &str = r#"{
  "rules": [
    {
      "destinations": [
        {"region": "us-west-2", "registryId": "111122223333"},
        {"region": "eu-west-1", "registryId": "444455556666"}
      ],
      "repositoryFilters": [
        {"filter": "prod", "filterType": "PREFIX_MATCH"},
        {"filter": "team-a/", "filterType": "PREFIX_MATCH"}
      ]
    },
    {
      "destinations": [{"region": "eu-west-1", "registryId": "444455556666"}],
      "repositoryFilters": [{"filter": "team-b/api", "filterType": "PREFIX_MATCH"}]
    },
    {
      "destinations": [{"region": "ap-south-1", "registryId": "777788889999"}]
    }
  ]
}"#;

/// ECR's meaning, written independently: per rule, no filters = every repository, else
/// any filter is a plain prefix of the name; destinations are unioned.
fn ecr_destinations(config: &serde_json::Value, repository: &str) -> Vec<(String, String)> {
    let mut hosts = Vec::new();
    for rule in config["rules"].as_array().unwrap() {
        let filters = rule
            .get("repositoryFilters")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        let selected = filters.is_empty()
            || filters
                .iter()
                .any(|f| repository.starts_with(f["filter"].as_str().unwrap()));
        if selected {
            for d in rule["destinations"].as_array().unwrap() {
                let host = format!(
                    "{}.dkr.ecr.{}.amazonaws.com",
                    d["registryId"].as_str().unwrap(),
                    d["region"].as_str().unwrap()
                );
                hosts.push((host, repository.to_owned()));
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

#[test]
fn native_configuration_selects_what_ecr_selects() {
    let config = load(NATIVE);
    let raw: serde_json::Value = serde_json::from_str(NATIVE).unwrap();
    let repositories = [
        "prod",
        "prod/api",
        "production",
        "preprod",
        "team-a/web",
        "team-a",
        "team-b/api",
        "team-b/api-gw",
        "team-b/web",
        "other",
        "a/prod",
    ];
    for repository in repositories {
        assert_eq!(
            targets(&config, repository, Some("latest")),
            ecr_destinations(&raw, repository),
            "{repository}"
        );
        assert!(config.repository_selected(repository), "{repository}");
    }
    assert_eq!(targets(&config, "other", Some("v1")).len(), 1);
    assert_eq!(targets(&config, "prod/api", Some("v1")).len(), 3);
}

#[test]
fn native_configuration_round_trips_unchanged() {
    let config = load(NATIVE);
    let raw: serde_json::Value = serde_json::from_str(NATIVE).unwrap();
    assert_eq!(serde_json::to_value(&config).unwrap(), raw);
    assert!(config.validate().is_empty(), "{:?}", config.validate());
}

#[test]
fn native_defaults() {
    let config = load(NATIVE);
    let all = config.destinations_for("prod/api", Some("latest")).unwrap();
    assert!(all.iter().all(|t| t.referrers && !t.deletes));
    // Digest-only pushes need `untagged: true`, a Ferry extension.
    assert!(
        config
            .destinations_for("prod/api", None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn describe_registry_output_is_accepted() {
    let text = format!(r#"{{"registryId": "111122223333", "replicationConfiguration": {NATIVE}}}"#);
    let loaded = ReplicationConfig::load(&text, None).unwrap();
    assert_eq!(
        loaded.config,
        ReplicationConfig {
            source: loaded.config.source.clone(),
            ..load(NATIVE)
        }
    );
    let source = loaded.config.source.as_ref().unwrap();
    assert_eq!(source.registry_id.as_deref(), Some("111122223333"));
    assert_eq!(source.region, None);
    // us-west-2 in the source account might be the source itself: a warning says so,
    // with the document path.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[0].path,
        "replicationConfiguration.rules[0].destinations[0]"
    );
}

#[test]
fn default_source_completes_the_document() {
    let text = format!(r#"{{"registryId": "111122223333", "replicationConfiguration": {NATIVE}}}"#);
    let here = crate::config::SourceSpec {
        region: Some("us-west-2".into()),
        ..Default::default()
    };
    let loaded = ReplicationConfig::load(&text, Some(&here)).unwrap();
    // The us-west-2 destination is now known to be the source itself: skipped.
    let hosts = targets(&loaded.config, "prod/api", Some("v1"));
    assert!(
        hosts.iter().all(|(host, _)| !host.contains("us-west-2")),
        "{hosts:?}"
    );
    assert_eq!(hosts.len(), 2);
    let other = crate::config::SourceSpec {
        registry_id: Some("999999999999".into()),
        ..Default::default()
    };
    let error = ReplicationConfig::load(&text, Some(&other)).unwrap_err();
    assert!(error.to_string().contains("differs"), "{error}");
}

#[test]
fn native_delete_replication_means_deletes() {
    let text = r#"{"rules": [
      {"destinations": [{"region": "eu-west-1", "registryId": "444455556666"}],
       "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}],
       "deleteReplication": {"enabled": true}},
      {"destinations": [{"region": "ap-south-1", "registryId": "777788889999"}],
       "deleteReplication": {"enabled": false}}
    ]}"#;
    let config = load(text);
    assert!(config.rules[0].deletes);
    assert!(!config.rules[1].deletes);
    let eu = config.destinations_for("prod/api", Some("v1")).unwrap();
    assert_eq!(eu.iter().filter(|t| t.deletes).count(), 1, "{eu:?}");
    // Round trip: the document keeps its own field.
    let raw: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        serde_json::to_value(&config).unwrap()["rules"][0]["deleteReplication"],
        raw["rules"][0]["deleteReplication"]
    );
    let bad = r#"{"rules": [{"destinations": [{"region": "eu-west-1", "registryId": "444455556666"}],
       "deleteReplication": {"enabled": true, "mode": "all"}}]}"#;
    let error = ReplicationConfig::from_json(bad).unwrap_err().to_string();
    assert!(error.contains("rules[0].deleteReplication"), "{error}");
}

#[test]
fn a_source_beside_describe_registry_output_completes_it() {
    let text = format!(
        r#"{{"registryId": "111122223333", "source": {{"region": "us-east-1", "repositories": ["prod/api"]}},
            "replicationConfiguration": {NATIVE}}}"#
    );
    let config = ReplicationConfig::from_json(&text).unwrap();
    let source = config.source.as_ref().unwrap();
    assert_eq!(source.registry_id.as_deref(), Some("111122223333"));
    assert_eq!(source.region.as_deref(), Some("us-east-1"));
    assert_eq!(source.repositories, ["prod/api"]);
    assert_eq!(
        config.source_registry().map(|r| r.host()),
        Some("111122223333.dkr.ecr.us-east-1.amazonaws.com".to_string())
    );
    let other = format!(
        r#"{{"registryId": "111122223333", "source": {{"registryId": "999999999999"}},
            "replicationConfiguration": {NATIVE}}}"#
    );
    let error = ReplicationConfig::from_json(&other)
        .unwrap_err()
        .to_string();
    assert!(error.contains("differs"), "{error}");
}
