//! Decoding errors name the JSON path and suggest fixes.

use crate::config::{ConfigError, ReplicationConfig};

fn error(json: &str) -> ConfigError {
    ReplicationConfig::from_json(json).expect_err("must be rejected")
}

const DEST: &str = r#"{"region": "us-west-2", "registryId": "111122223333"}"#;

#[test]
fn unknown_field_suggests_the_known_one() {
    let error = error(&format!(
        r#"{{"rules": [{{"destinations": [{DEST}], "tagFilter": [{{"filter": "v", "filterType": "PREFIX_MATCH"}}]}}]}}"#
    ));
    assert_eq!(
        error.to_string(),
        "rules[0].tagFilter: unknown field, did you mean tagFilters?"
    );
    match error {
        ConfigError::UnknownField {
            field,
            suggestion,
            expected,
            ..
        } => {
            assert_eq!(field, "tagFilter");
            assert_eq!(suggestion.as_deref(), Some("tagFilters"));
            assert!(expected.contains(&"excludeTagFilters".to_owned()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_fields_everywhere() {
    let cases = [
        (
            r#"{"rule": []}"#,
            "rule: unknown field, did you mean rules?",
        ),
        (
            r#"{"rules": [{"destinations": [{"region": "us-west-2", "registry_id": "111122223333"}]}]}"#,
            "rules[0].destinations[0].registry_id: unknown field, did you mean registryId?",
        ),
        (
            r#"{"registryId": "111122223333", "replicationConfiguration": {"rules": [], "sauce": {}}}"#,
            "replicationConfiguration.sauce: unknown field, did you mean source?",
        ),
        (
            r#"{"registries": {"localhost:5000": {"plainHTTP": true}}, "rules": []}"#,
            r#"registries["localhost:5000"].plainHTTP: unknown field, did you mean plainHttp?"#,
        ),
        (
            r#"{"rules": [], "zzzz": 1}"#,
            "zzzz: unknown field, expected one of: source, registries, rules",
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(error(json).to_string(), expected, "{json}");
    }
}

#[test]
fn unknown_filter_type_suggests_the_known_one() {
    let error = error(&format!(
        r#"{{"rules": [{{"destinations": [{DEST}], "repositoryFilters": [{{"filter": "a", "filterType": "PREFIX"}}]}}]}}"#
    ));
    assert_eq!(
        error.to_string(),
        "rules[0].repositoryFilters[0].filterType: unknown value `PREFIX`, did you mean PREFIX_MATCH?"
    );
    let semver_on_repository = error_text(&format!(
        r#"{{"rules": [{{"destinations": [{DEST}], "repositoryFilters": [{{"filter": "1", "filterType": "SEMVER"}}]}}]}}"#
    ));
    assert_eq!(
        semver_on_repository,
        "rules[0].repositoryFilters[0].filterType: unknown value `SEMVER`, expected one of: PREFIX_MATCH, WILDCARD, REGEX"
    );
}

fn error_text(json: &str) -> String {
    error(json).to_string()
}

#[test]
fn invalid_regex_names_the_filter() {
    let text = error_text(&format!(
        r#"{{"rules": [
            {{"destinations": [{DEST}]}},
            {{"destinations": [{DEST}], "tagFilters": [{{"filter": "(v", "filterType": "REGEX"}}]}}
        ]}}"#
    ));
    assert!(
        text.contains("\n  error: rules[1].tagFilters[0]: invalid regex `(v`"),
        "{text}"
    );
}

#[test]
fn wrong_types_and_missing_fields_name_the_value() {
    let cases = [
        (
            format!(r#"{{"rules": [{{"destinations": [{DEST}], "untagged": "yes"}}]}}"#),
            "rules[0].untagged: invalid type: string \"yes\", expected a boolean",
        ),
        (
            r#"{"rules": [{"repositoryFilters": []}]}"#.to_owned(),
            "rules[0]: missing field `destinations`",
        ),
        (
            format!(
                r#"{{"rules": [{{"destinations": [{DEST}], "tagFilters": [{{"filter": "x"}}]}}]}}"#
            ),
            "rules[0].tagFilters[0]: missing field `filterType`",
        ),
        (
            r#"{"rules": {}}"#.to_owned(),
            "rules: invalid type: map, expected a sequence",
        ),
        (r#"{}"#.to_owned(), "$: missing field `rules`"),
        (
            r#"[1]"#.to_owned(),
            "$: expected a JSON object: a replication configuration or describe-registry output",
        ),
        (
            r#"{"registryId": 1, "replicationConfiguration": {"rules": []}}"#.to_owned(),
            "registryId: invalid type: integer `1`, expected a string",
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(error_text(&json), expected, "{json}");
    }
}

#[test]
fn syntax_errors_have_line_and_path() {
    let json = "{\n  \"rules\": [\n    {\"destinations\": [}\n  ]\n}";
    match error(json) {
        ConfigError::Syntax {
            path, line, column, ..
        } => {
            assert_eq!((path.as_str(), line), ("rules[0].destinations", 3));
            assert!(column > 0);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(error(""), ConfigError::Syntax { .. }));
    assert!(matches!(
        error("{\"rules\": [] } trailing"),
        ConfigError::Syntax { .. }
    ));
}

#[test]
fn validation_reports_every_error_at_once() {
    let error = error(
        r#"{"rules": [{"destinations": [
            {"region": "us-west-2", "registryId": "1234"},
            {"region": "nowhere", "registryId": "111122223333", "kmsKey": "arn:aws:kms:eu-west-1:111122223333:key/abc"},
            {"registry": "ghcr.io", "roleArn": "arn:aws:iam::111122223333:role/x"}
        ]}]}"#,
    );
    let ConfigError::Invalid { issues } = &error else {
        panic!("{error:?}")
    };
    let paths: Vec<&str> = issues.iter().map(|issue| issue.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rules[0].destinations[0].registryId",
            "rules[0].destinations[1].region",
            "rules[0].destinations[1].kmsKey",
            "rules[0].destinations[2].roleArn",
        ]
    );
    assert_eq!(error.path(), "rules[0].destinations[0].registryId");
}
