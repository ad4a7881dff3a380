//! Validation findings: limits, credentials, templates, chains.

use super::{findings, issues};
use crate::config::ReplicationConfig;
use crate::config::Severity::{Error, Warning};

const SOURCE: &str = r#""source": {"registryId": "111122223333", "region": "us-east-1"}"#;

fn dest(region: &str, id: &str) -> String {
    format!(r#"{{"region": "{region}", "registryId": "{id}"}}"#)
}

#[test]
fn ecr_limits_are_warnings() {
    let rule = format!(
        r#"{{"destinations": [{}]}}"#,
        dest("us-west-2", "111122223333")
    );
    let rules = vec![rule; 11].join(",");
    let many_rules = findings(&format!(r#"{{"rules": [{rules}]}}"#), Warning);
    assert!(
        many_rules
            .iter()
            .any(|w| w.starts_with("rules: 11 rules: ECR native replication allows at most 10")),
        "{many_rules:?}"
    );

    let destinations: Vec<String> = (0..26)
        .map(|i| dest("us-west-2", &format!("1111222233{i:02}")))
        .collect();
    let wide = format!(
        r#"{{"rules": [{{"destinations": [{}]}}]}}"#,
        destinations.join(",")
    );
    assert_eq!(findings(&wide, Error), Vec::<String>::new());
    assert!(findings(&wide, Warning)[0].contains("26 unique destinations"));

    let filters: Vec<String> = (0..101)
        .map(|i| format!(r#"{{"filter": "r{i}", "filterType": "PREFIX_MATCH"}}"#))
        .collect();
    let filtered = format!(
        r#"{{"rules": [{{"destinations": [{}], "repositoryFilters": [{}]}}]}}"#,
        dest("us-west-2", "111122223333"),
        filters.join(",")
    );
    assert_eq!(
        findings(&filtered, Warning),
        [
            "rules[0].repositoryFilters: 101 filters: ECR native replication allows at most 100 per rule; Ferry accepts more, but this configuration cannot be applied to ECR itself"
        ]
    );
}

#[test]
fn empty_configurations_warn() {
    assert_eq!(
        findings(r#"{"rules": []}"#, Warning),
        ["rules: no rules: nothing is replicated"]
    );
    assert_eq!(
        findings(r#"{"rules": [{"destinations": []}]}"#, Warning),
        ["rules[0].destinations: no destinations: this rule does nothing"]
    );
}

#[test]
fn an_organization_destination_over_the_region_cap_is_refused_not_cut() {
    let regions: Vec<String> = (0..41)
        .map(|i| format!("\"us-east-{}\"", i % 99 + 1))
        .collect();
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"organization": true, "regions": [{}]}}]}}]}}"#,
        regions.join(", ")
    );
    let errors = findings(&json, Error);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("rules[0].destinations[0].regions: 41 regions")),
        "{errors:#?}"
    );
}

#[test]
fn read_roles_are_checked_like_write_roles() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "eu-west-1", "registryId": "444455556666",
              "readRoleArn": "arn:aws:iam::{{accountId}}:role/ferry-destination-read-{{region}}"}},
            {{"region": "eu-west-1", "registryId": "444455556666", "readRoleArn": "arn:aws:iam::444455556666:user/x"}},
            {{"registry": "quay.io", "readRoleArn": "arn:aws:iam::444455556666:role/r"}},
            {{"region": "eu-west-1", "registryId": "666677778888", "readRoleArn": "arn:aws:iam::666677778888:role/r",
              "credentialsSecretArn": "arn:aws:secretsmanager:eu-west-1:666677778888:secret:x"}}
        ]}}]}}"#
    );
    let errors = findings(&json, Error);
    let expected_starts = [
        "rules[0].destinations[1].readRoleArn: `arn:aws:iam::444455556666:user/x` is not a role ARN",
        "rules[0].destinations[2].readRoleArn: applies to ECR destinations only",
        "rules[0].destinations[3].readRoleArn: give either readRoleArn or credentialsSecretArn",
    ];
    assert_eq!(errors.len(), expected_starts.len(), "{errors:#?}");
    for (error, start) in errors.iter().zip(expected_starts) {
        assert!(
            error.starts_with(start),
            "{error}\n  expected to start with {start}"
        );
    }
}

#[test]
fn assume_role_and_kms_checks() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "eu-west-1", "registryId": "444455556666", "roleArn": "arn:aws:iam::444455556666:user/x"}},
            {{"region": "eu-west-1", "registryId": "444455556666", "externalId": "abc"}},
            {{"region": "eu-west-1", "registryId": "555566667777", "kmsKey": "arn:aws:kms:us-east-1:555566667777:key/k1"}},
            {{"region": "eu-west-1", "registryId": "666677778888", "credentialsSecretArn": "arn:aws:secretsmanager:eu-west-1:666677778888:secret:x",
              "roleArn": "arn:aws:iam::666677778888:role/w"}},
            {{"registry": "quay.io", "kmsKey": "arn:aws:kms:eu-west-1:555566667777:key/k1", "useCreationTemplate": true}},
            {{"registry": "docker.example", "credentialsSecretArn": "arn:aws:s3:::bucket"}}
        ]}}]}}"#
    );
    let errors = findings(&json, Error);
    let expected_starts = [
        "rules[0].destinations[0].roleArn: `arn:aws:iam::444455556666:user/x` is not a role ARN",
        "rules[0].destinations[1].externalId: externalId needs roleArn",
        "rules[0].destinations[2].kmsKey: KMS key `arn:aws:kms:us-east-1:555566667777:key/k1` is in region `us-east-1` but the destination is in `eu-west-1`",
        "rules[0].destinations[3].roleArn: give either roleArn or credentialsSecretArn, not both",
        "rules[0].destinations[4].kmsKey: applies to ECR destinations only",
        "rules[0].destinations[4].useCreationTemplate: applies to ECR destinations only",
        "rules[0].destinations[5].credentialsSecretArn: `arn:aws:s3:::bucket` is a `s3` ARN",
    ];
    assert_eq!(errors.len(), expected_starts.len(), "{errors:#?}");
    for (error, start) in errors.iter().zip(expected_starts) {
        assert!(
            error.starts_with(start),
            "{error}\n  expected to start with {start}"
        );
    }
}

#[test]
fn kms_key_with_creation_template_is_ignored_with_a_warning() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "eu-west-1", "registryId": "444455556666", "useCreationTemplate": true,
              "kmsKey": "arn:aws:kms:eu-west-1:444455556666:key/k1"}}
        ]}}]}}"#
    );
    assert_eq!(findings(&json, Error), Vec::<String>::new());
    assert!(findings(&json, Warning)[0].contains("ignored: useCreationTemplate"));
}

#[test]
fn template_checks() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"registry": "ghcr.io", "repositoryName": "Org/{{repository}}"}},
            {{"registry": "ghcr.io", "repositoryName": "org/{{repo}}"}},
            {{"registry": "ghcr.io", "repositoryName": "org/everything"}},
            {{"registry": "quay.io", "repositoryName": "{{registryId}}/{{region}}/{{repository}}"}}
        ]}}]}}"#
    );
    let errors = findings(&json, Error);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("rules[0].destinations[0].repositoryName: renders `Org/sample`"));
    assert!(errors[1].contains("did you mean {repository}?"));
    assert_eq!(
        findings(&json, Warning),
        [
            "rules[0].destinations[2].repositoryName: has no {repository}: every selected repository is written to `org/everything`"
        ]
    );
    // Without a source, {region} is bound from each image's registry: a warning, and an
    // error only where no image can supply it (an OCI source).
    let unbound = r#"{"rules": [{"destinations": [{"registry": "quay.io", "repositoryName": "{region}/{repository}"}]}]}"#;
    assert_eq!(findings(unbound, Error), Vec::<String>::new());
    assert_eq!(findings(unbound, Warning).len(), 1);
    assert!(findings(unbound, Warning)[0].contains("bound from each image's registry"));
    let oci = findings(
        r#"{"source": {"registry": "registry.example"}, "rules": [{"destinations": [{"registry": "quay.io", "repositoryName": "{region}/{repository}"}]}]}"#,
        Error,
    );
    assert_eq!(
        oci,
        [
            "rules[0].destinations[0].repositoryName: uses {region} but the source registry `registry.example` has no region"
        ]
    );
}

#[test]
fn many_to_one_templates_may_not_propagate_deletes() {
    let doc = |deletes: bool| {
        format!(
            r#"{{"source": {{"registryId": "111111111111", "region": "us-east-1"}},
                "rules": [{{"deletes": {deletes}, "destinations": [{{"registry": "quay.io", "repositoryName": "org/all"}}]}}]}}"#
        )
    };
    assert_eq!(findings(&doc(false), Error), Vec::<String>::new());
    let errors = findings(&doc(true), Error);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("rules[0].destinations[0].repositoryName: has no {repository}")
            && errors[0].contains("propagates deletes"),
        "{errors:#?}"
    );
    assert!(ReplicationConfig::from_json(&doc(true)).is_err());
}

#[test]
fn source_and_registry_checks() {
    let json = r#"{"source": {"registry": "https://ghcr.io", "region": "us-east-1"},
        "registries": {"ghcr.io": {"endpoint": "http://10.0.0.1:5000"}, "unused.example": {}},
        "rules": [{"destinations": [{"registry": "ghcr.io"}, {"region": "us-east-1"}]}]}"#;
    let errors = findings(json, Error);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].starts_with("source: give either `registry`"));
    assert!(errors[1].starts_with("source.registry: `https://ghcr.io` is not a registry host"));
    assert_eq!(
        errors[2],
        "rules[0].destinations[1]: missing field `registryId`"
    );
    assert!(errors[3].starts_with(r#"registries["ghcr.io"].endpoint: `http://10.0.0.1:5000` is plain HTTP: set plainHttp: true"#));
    assert_eq!(
        findings(json, Warning),
        [r#"registries["unused.example"]: not the source nor a destination: this entry is unused"#]
    );
}

#[test]
fn duplicate_and_conflicting_destinations_warn() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [
            {{"destinations": [{0}, {0}]}},
            {{"destinations": [{{"region": "us-west-2", "registryId": "111122223333", "kmsKey": "arn:aws:kms:us-west-2:111122223333:key/k"}}]}}
        ]}}"#,
        dest("us-west-2", "111122223333")
    );
    assert_eq!(
        findings(&json, Warning),
        [
            "rules[0].destinations[1]: same destination as rules[0].destinations[0]",
            "rules[1].destinations[0]: same destination as rules[0].destinations[0] with different settings; images both rules select use the settings of rules[0].destinations[0]",
        ]
    );
}

#[test]
fn source_itself_as_destination_warns() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [{}]}}]}}"#,
        dest("us-east-1", "111122223333")
    );
    assert_eq!(
        findings(&json, Warning),
        [
            "rules[0].destinations[0]: is the source registry and keeps repository names, so every image is already there: it is always skipped"
        ]
    );
}

#[test]
fn filters_that_never_match_warn() {
    let json = format!(
        r#"{{"rules": [{{"destinations": [{}],
            "repositoryFilters": [{{"filter": "Prod", "filterType": "PREFIX_MATCH"}}, {{"filter": "team-*", "filterType": "WILDCARD"}}],
            "tagFilters": [{{"filter": "v1+", "filterType": "PREFIX_MATCH"}}]}}]}}"#,
        dest("us-west-2", "111122223333")
    );
    assert_eq!(
        findings(&json, Warning).len(),
        2,
        "{:#?}",
        findings(&json, Warning)
    );
    assert!(
        findings(&json, Warning)[0]
            .starts_with("rules[0].repositoryFilters[0].filter: `P` cannot occur")
    );
    assert!(
        findings(&json, Warning)[1].starts_with("rules[0].tagFilters[0].filter: `+` cannot occur")
    );
}

#[test]
fn loops_are_errors() {
    // Every repository is copied to `dr/<name>` in the source registry, which the same rule
    // selects again: dr/dr/<name>, without end.
    let json = format!(
        r#"{{{SOURCE}, "rules": [{{"destinations": [
            {{"region": "us-east-1", "registryId": "111122223333", "repositoryName": "dr/{{repository}}"}}
        ]}}]}}"#
    );
    let errors = findings(&json, Error);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "rules[0].destinations[0]: replication loop: `sample` is copied to `dr/sample`"
        ),
        "{}",
        errors[0]
    );
    assert!(issues(&json).iter().all(|i| i.severity == Error));
}

#[test]
fn loops_through_two_rules_are_errors() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [
            {{"repositoryFilters": [{{"filter": "app/", "filterType": "PREFIX_MATCH"}}],
              "destinations": [{{"region": "us-east-1", "registryId": "111122223333", "repositoryName": "copy/{{repository}}"}}]}},
            {{"repositoryFilters": [{{"filter": "copy/*", "filterType": "WILDCARD"}}],
              "destinations": [{{"region": "us-east-1", "registryId": "111122223333", "repositoryName": "app/{{repository}}"}}]}}
        ]}}"#
    );
    let errors = findings(&json, Error);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains("`app/sample` is copied to `copy/app/sample`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .contains("rules[1] copies into the source registry again as `app/copy/app/sample`"),
        "{}",
        errors[0]
    );
}

#[test]
fn chains_onward_are_warnings() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [
            {{"repositoryFilters": [{{"filter": "app/", "filterType": "PREFIX_MATCH"}}],
              "destinations": [{{"region": "us-east-1", "registryId": "111122223333", "repositoryName": "staging/{{repository}}"}}]}},
            {{"destinations": [{}]}}
        ]}}"#,
        dest("us-west-2", "444455556666")
    );
    assert_eq!(findings(&json, Error), Vec::<String>::new());
    let warnings = findings(&json, Warning);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].starts_with(
        "rules[0].destinations[0]: replication chain: `app/sample` is copied to `staging/app/sample` in the source registry, which rules[1] selects"
    ));
}

#[test]
fn organization_destinations_of_an_unbound_source_are_checked_for_loops() {
    let config = |source: &str, name: &str| {
        format!(
            r#"{{{source} "rules": [{{"destinations": [
                {{"organization": true, "regions": ["us-east-1"]{name}}}]}}]}}"#
        )
    };
    let renamed = config("", r#", "repositoryName": "golden/{repository}""#);
    let warnings = findings(&renamed, Warning);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "rules[0].destinations[0]: replication loop cut: with no `source.registryId`"
        ),
        "{}",
        warnings[0]
    );
    let same_name = findings(&config("", ""), Warning);
    assert!(
        same_name.len() == 1 && same_name[0].contains("replication chain"),
        "{same_name:#?}"
    );
    // A pinned source account is never a destination of its own organization destinations.
    let pinned = config(
        r#""source": {"registryId": "111122223333"},"#,
        r#", "repositoryName": "golden/{repository}""#,
    );
    assert!(
        findings(&pinned, Warning)
            .iter()
            .all(|w| !w.contains("replication")),
        "{:#?}",
        findings(&pinned, Warning)
    );
}

#[test]
fn renames_outside_the_filters_are_fine() {
    let json = format!(
        r#"{{{SOURCE}, "rules": [
            {{"repositoryFilters": [{{"filter": "app/", "filterType": "PREFIX_MATCH"}}],
              "destinations": [{{"region": "us-east-1", "registryId": "111122223333", "repositoryName": "mirror/{{repository}}"}}]}}
        ]}}"#
    );
    assert!(issues(&json).is_empty(), "{:#?}", issues(&json));
}

#[test]
fn organization_destinations_are_checked_field_by_field() {
    let config = |destination: &str| {
        format!(r#"{{{SOURCE}, "rules": [{{"destinations": [{destination}]}}]}}"#)
    };
    let good = config(
        r#"{"organizationalUnit": "ou-ab12-34cd56ef", "regions": ["eu-west-1"],
            "roleArn": "arn:aws:iam::{accountId}:role/ferry-writer", "externalId": "shared-ext-id",
            "kmsKey": "arn:aws:kms:{region}:{accountId}:alias/ferry",
            "organizationRoleArn": "arn:aws:iam::999999999999:role/ferry-org-reader"}"#,
    );
    assert_eq!(findings(&good, Error), Vec::<String>::new());
    let whole = config(r#"{"organization": true, "region": "eu-west-1"}"#);
    assert_eq!(findings(&whole, Error), Vec::<String>::new());

    let errors = findings(
        &config(
            r#"{"organizationalUnit": "ou-XY", "organization": true, "registryId": "444455556666",
                "excludeAccounts": ["12"], "roleArn": "arn:aws:iam::{accountId}:user/x"}"#,
        ),
        Error,
    );
    let expect = [
        "rules[0].destinations[0].organization: give either",
        "rules[0].destinations[0].organizationalUnit: `ou-XY` is not an organizational unit",
        "rules[0].destinations[0].registryId: an organization destination's accounts come from AWS Organizations",
        "rules[0].destinations[0]: an organization destination needs `regions`",
        "rules[0].destinations[0].excludeAccounts[0]:",
    ];
    for e in expect {
        assert!(errors.iter().any(|f| f.starts_with(e)), "{e}\n{errors:#?}");
    }
    // The per-account settings are tried on a sample account, region by region.
    let bad_role = findings(
        &config(
            r#"{"organization": true, "regions": ["eu-west-1"], "roleArn": "arn:aws:iam::{accountId}:user/x"}"#,
        ),
        Error,
    );
    assert!(
        bad_role
            .iter()
            .any(|f| f.starts_with("rules[0].destinations[0].roleArn:")),
        "{bad_role:?}"
    );
    // Organization-only fields on an ordinary destination.
    let misplaced = findings(
        &config(
            r#"{"registryId": "444455556666", "region": "eu-west-1", "regions": ["us-west-2"], "recursive": false}"#,
        ),
        Error,
    );
    assert_eq!(misplaced.len(), 2, "{misplaced:?}");
    assert!(misplaced[0].starts_with("rules[0].destinations[0].regions: applies to"));
}
