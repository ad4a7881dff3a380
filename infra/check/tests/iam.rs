//! IAM of the templates asserted as data: least privilege in every template and variant,
//! and the hub's statements exactly the documented ones, scoped to their resources.

mod common;

use std::collections::BTreeMap;

use common::*;
use ferry_infra_check::{actions, get_att, iam_statements, statement};
use serde_json::json;

#[test]
fn iam_is_least_privilege_in_every_template_and_variant() {
    check_least_privilege("hub defaults", &hub(&[]));
    check_least_privilege("hub all features", &hub(HUB_ALL));
    check_least_privilege("hub all features, SecureString", &hub_all_secure());
    check_least_privilege("destination minimal", &destination(DEST_MIN));
    check_least_privilege("destination all features", &destination(DEST_ALL));
    check_least_privilege("forwarder", &forwarder(&[("HubRegion", "us-east-1")]));
    check_least_privilege(
        "forwarder cross-account",
        &forwarder(&[("HubRegion", "us-east-1"), ("HubAccountId", "999999999999")]),
    );
    for (action, reason) in STAR_RESOURCE_ALLOWED {
        assert!(!reason.is_empty(), "{action}");
    }
}

/// The expected actions of every hub statement (Sid → actions); docs/deploy.md has the
/// same table with the reason of each action.
fn expected_hub_statements(
    all: bool,
    secure: bool,
) -> BTreeMap<(&'static str, &'static str), Vec<String>> {
    let mut pull = sorted(&ECR_PULL);
    // Promotion gates: the scan findings of a gated image.
    pull.push("ecr:DescribeImageScanFindings".into());
    pull.sort();
    let push = sorted(&ECR_PUSH);
    let list = sorted(&[
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:ListImages",
        "ecr:BatchGetImage",
        "ecr:ListImageReferrers",
    ]);
    let logs = sorted(&["logs:CreateLogStream", "logs:PutLogEvents"]);
    let xray = sorted(&["xray:PutTraceSegments", "xray:PutTelemetryRecords"]);
    let mut m = BTreeMap::new();
    for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
        m.insert((role, "WriteOwnLogs"), logs.clone());
        m.insert((role, "ReadConfiguration"), strings(&["ssm:GetParameter"]));
        if all {
            m.insert((role, "XRayTraces"), xray.clone());
        }
    }
    m.insert(
        ("EventsDeadLetterQueuePolicy", "EventBridgeRuleDeadLetters"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(
        ("JobsQueuePolicy", "OnlyFerrySendsJobs"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(("DispatchRole", "SendJobs"), strings(&["sqs:SendMessage"]));
    m.insert(
        ("DispatchRole", "AsyncDeadLetters"),
        strings(&["sqs:SendMessage"]),
    );
    for role in ["DispatchRole", "ReplicateRole"] {
        m.insert(
            (role, "ReadPullThroughCacheRules"),
            strings(&["ecr:DescribePullThroughCacheRules"]),
        );
    }
    m.insert(
        ("ReplicateRole", "ConsumeJobs"),
        sorted(&[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        ]),
    );
    m.insert(
        ("ReplicateRole", "PublishResults"),
        strings(&["events:PutEvents"]),
    );
    m.insert(
        ("ReplicateRole", "EcrRegistryLogin"),
        strings(&["ecr:GetAuthorizationToken"]),
    );
    m.insert(
        ("ReplicateRole", "ReadAccountSettings"),
        strings(&["ecr:GetAccountSetting"]),
    );
    m.insert(("ReplicateRole", "PullFromSources"), pull);
    m.insert(
        ("ReplicateRole", "RequeueDestinations"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(("ReconcileRole", "SendJobs"), strings(&["sqs:SendMessage"]));
    m.insert(
        ("ReconcileRole", "ReadJobsBacklog"),
        strings(&["sqs:GetQueueAttributes"]),
    );
    m.insert(
        ("ReconcileRole", "AsyncDeadLetters"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(
        ("ReconcileRole", "EcrRegistryLogin"),
        strings(&["ecr:GetAuthorizationToken"]),
    );
    let mut judged = list.clone();
    judged.extend([
        "ecr:DescribeImageScanFindings".into(),
        "ecr:GetDownloadUrlForLayer".into(),
    ]);
    judged.sort();
    m.insert(("ReconcileRole", "ListSources"), judged);
    m.insert(
        ("DispatchRole", "EcrRegistryLogin"),
        strings(&["ecr:GetAuthorizationToken"]),
    );
    m.insert(
        ("DispatchRole", "JudgeGates"),
        sorted(&[
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:DescribeImages",
            "ecr:DescribeImageScanFindings",
            "ecr:ListImageReferrers",
        ]),
    );
    m.insert(
        ("DispatchRole", "PublishGateResults"),
        strings(&["events:PutEvents"]),
    );
    m.insert(
        ("ReconcileRole", "ReadRegistrySettings"),
        sorted(&[
            "ecr:DescribePullThroughCacheRules",
            "ecr:GetSigningConfiguration",
        ]),
    );
    m.insert(
        ("ReplicateRole", "ReadSigningConfiguration"),
        strings(&["ecr:GetSigningConfiguration"]),
    );
    m.insert(
        ("ReplicateRole", "RecordFailures"),
        sorted(&[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
        ]),
    );
    m.insert(
        ("ReconcileRole", "ReadFailuresKeepCursor"),
        sorted(&["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem"]),
    );
    if all {
        m.insert(("ReplicateRole", "PushToDestinations"), push);
        m.insert(
            ("ReplicateRole", "AssumeDestinationRoles"),
            strings(&["sts:AssumeRole"]),
        );
        m.insert(
            ("ReplicateRole", "ReadRegistryCredentials"),
            strings(&["secretsmanager:GetSecretValue"]),
        );
        m.insert(
            ("ReplicateRole", "DecryptSecrets"),
            strings(&["kms:Decrypt"]),
        );
        m.insert(
            ("ReplicateRole", "CreateKmsEncryptedRepositories"),
            sorted(&["kms:DescribeKey", "kms:CreateGrant"]),
        );
        m.insert(("ReconcileRole", "ListDestinations"), list);
        m.insert(
            ("ReconcileRole", "AssumeDestinationReadRoles"),
            strings(&["sts:AssumeRole"]),
        );
        m.insert(
            ("ReconcileRole", "ReadRegistryCredentials"),
            strings(&["secretsmanager:GetSecretValue"]),
        );
        m.insert(
            ("ReconcileRole", "DecryptSecrets"),
            strings(&["kms:Decrypt"]),
        );
    }
    if secure {
        for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
            m.insert((role, "DecryptConfiguration"), strings(&["kms:Decrypt"]));
        }
    }
    m
}

#[test]
fn hub_statements_are_exactly_the_documented_ones() {
    for (label, r, all, secure) in [
        ("defaults", hub(&[]), false, false),
        ("all features", hub(HUB_ALL), true, false),
        ("all features, SecureString", hub_all_secure(), true, true),
    ] {
        let mut found = BTreeMap::new();
        for (origin, st) in iam_statements(&r) {
            let role = origin.split('/').next().unwrap().to_owned();
            let sid = st["Sid"]
                .as_str()
                .unwrap_or_else(|| panic!("{label} {origin}: statement without Sid"))
                .to_owned();
            assert!(
                found.insert((role, sid), actions(&st)).is_none(),
                "{label} {origin}: duplicate Sid"
            );
        }
        let expected: BTreeMap<(String, String), Vec<String>> =
            expected_hub_statements(all, secure)
                .into_iter()
                .map(|((role, sid), a)| ((role.to_owned(), sid.to_owned()), a))
                .collect();
        assert_eq!(found, expected, "{label}");
    }
}

#[test]
fn hub_statements_are_scoped_to_their_resources() {
    let r = hub(&[]);
    let s = iam_statements(&r);
    let res = |role: &str, sid: &str| statement(&s, role, sid).unwrap()["Resource"].clone();
    assert_eq!(
        res("ReplicateRole", "PullFromSources"),
        json!([SOURCE_REPOS])
    );
    assert_eq!(res("ReconcileRole", "ListSources"), json!([SOURCE_REPOS]));
    assert_eq!(res("ReplicateRole", "EcrRegistryLogin"), json!("*"));
    assert_eq!(
        res("ReplicateRole", "PublishResults"),
        get_att("ResultEventBus", "Arn")
    );
    assert_eq!(
        res("ReplicateRole", "ConsumeJobs"),
        get_att("JobsQueue", "Arn")
    );
    assert_eq!(res("DispatchRole", "SendJobs"), get_att("JobsQueue", "Arn"));
    assert_eq!(
        res("ReplicateRole", "RequeueDestinations"),
        get_att("JobsQueue", "Arn")
    );
    assert_eq!(
        res("ReconcileRole", "SendJobs"),
        get_att("JobsQueue", "Arn")
    );
    assert_eq!(
        res("DispatchRole", "AsyncDeadLetters"),
        get_att("EventsDeadLetterQueue", "Arn")
    );
    assert_eq!(
        res("ReplicateRole", "WriteOwnLogs"),
        get_att("ReplicateLogGroup", "Arn")
    );
    assert_eq!(
        res("DispatchRole", "ReadConfiguration"),
        json!("arn:aws:ssm:us-east-1:111111111111:parameter/ferry/ferry/config")
    );
    // The statement exists only when the allow-list is given (no sts, kms, secrets by default).
    for (_, st) in &s {
        for a in actions(st) {
            assert!(
                !a.starts_with("sts:")
                    && !a.starts_with("kms:")
                    && !a.starts_with("secretsmanager:"),
                "{a} without its parameter"
            );
        }
    }

    let r = hub(HUB_ALL);
    let s = iam_statements(&r);
    let res = |role: &str, sid: &str| statement(&s, role, sid).unwrap()["Resource"].clone();
    let dest: Vec<&str> = DEST_REPOS.split(',').collect();
    assert_eq!(res("ReplicateRole", "PushToDestinations"), json!(dest));
    assert_eq!(res("ReconcileRole", "ListDestinations"), json!(dest));
    assert_eq!(
        res("ReplicateRole", "AssumeDestinationRoles"),
        json!([DEST_ROLES])
    );
    assert_eq!(
        res("ReconcileRole", "AssumeDestinationReadRoles"),
        json!([DEST_READ_ROLES])
    );
    assert_eq!(
        res("ReplicateRole", "ReadRegistryCredentials"),
        json!([SECRET])
    );
    assert_eq!(
        res("ReplicateRole", "CreateKmsEncryptedRepositories"),
        json!([KMS_KEY])
    );
    assert_eq!(
        statement(&s, "ReplicateRole", "CreateKmsEncryptedRepositories").unwrap()["Condition"],
        json!({"StringLike": {"kms:ViaService": "ecr.*.amazonaws.com"}})
    );
    assert_eq!(
        statement(&s, "ReplicateRole", "DecryptSecrets").unwrap()["Condition"],
        json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}})
    );
    assert_eq!(
        res("ReplicateRole", "PullFromSources"),
        json!([
            "arn:aws:ecr:us-east-1:111111111111:repository/team/*",
            "arn:aws:ecr:eu-central-1:111111111111:repository/*"
        ])
    );
    for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
        assert_eq!(
            r.props(role)["PermissionsBoundary"],
            json!("arn:aws:iam::111111111111:policy/boundary")
        );
        assert_eq!(
            r.props(role)["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}])
        );
    }
    for (id, _) in FUNCTIONS {
        assert_eq!(
            r.props(id)["VpcConfig"],
            json!({
                "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                "SecurityGroupIds": ["sg-0123456789abcdef0"],
            }),
            "{id}"
        );
        assert_eq!(r.props(id)["Tracing"], json!("Active"), "{id}");
    }
}
