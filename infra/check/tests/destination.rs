//! The destination stack (infra/destination.yaml) asserted as data: its registry policy
//! (opt-in), creation template, and the write role the hub assumes (the default).

mod common;

use common::*;
use ferry_infra_check::{
    ACCOUNT_ID, actions, get_att, iam_statements, lifecycle_policy_problems, load, statement,
};
use serde_json::{Value, json};

fn prefix_arn(prefix: &str) -> Value {
    json!(format!(
        "arn:aws:ecr:us-east-1:111111111111:repository/{prefix}"
    ))
}

#[test]
fn destination_registry_policy_grants_push_create_and_native_replication() {
    // The whole hub account, explicitly asked for, with native replication.
    let r = destination(&with(
        DEST_MIN,
        &[
            ("TrustHubAccountRoot", "true"),
            ("ManageRegistryPolicy", "true"),
            ("ExternalId", "x-1234"),
            ("AllowNativeReplication", "true"),
        ],
    ));
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let policy = &r.props("RegistryPolicy")["PolicyText"];
    let st = |sid: &str| {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == json!(sid))
            .unwrap_or_else(|| panic!("statement {sid} missing"))
            .clone()
    };
    let push = st("FerryPush");
    assert_eq!(actions(&push), sorted(&ECR_PUSH));
    assert_eq!(
        push["Principal"],
        json!({"AWS": "arn:aws:iam::111111111111:root"})
    );
    assert_eq!(push["Resource"], prefix_arn("golden/*"));
    let native = st("NativeReplication");
    assert_eq!(
        actions(&native),
        sorted(&["ecr:ReplicateImage", "ecr:CreateRepository"])
    );
    assert_eq!(
        native["Principal"],
        json!({"AWS": "arn:aws:iam::111111111111:root"})
    );
    assert_eq!(native["Resource"], prefix_arn("golden/*"));
    let read = st("FerryReconcileRead");
    assert_eq!(
        actions(&read),
        sorted(&[
            "ecr:DescribeRepositories",
            "ecr:DescribeImages",
            "ecr:ListImages",
            "ecr:BatchGetImage",
            "ecr:ListImageReferrers"
        ])
    );
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 3);

    // With the hub's roles, the principals are those roles, not the account.
    let r = destination(DEST_ALL);
    let policy = &r.props("RegistryPolicy")["PolicyText"]["Statement"];
    assert_eq!(
        policy[0]["Principal"],
        json!({"AWS": "arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC"})
    );
    assert_eq!(
        policy[1]["Principal"],
        json!({"AWS": ["arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC", "arn:aws:iam::111111111111:role/ferry-ReconcileRole-DEF"]})
    );
    assert_eq!(
        policy[2]["Principal"],
        json!({"AWS": "arn:aws:iam::111111111111:root"})
    );

    // ROOT prefix: every repository; native replication (off by default) and the policy
    // itself can be off.
    let r = destination(&[
        ("HubAccountId", ACCOUNT_ID),
        ("RepositoryPrefix", "ROOT"),
        ("TrustHubAccountRoot", "true"),
        ("ExternalId", "x-1234"),
        ("ManageRegistryPolicy", "true"),
    ]);
    let statements = r.props("RegistryPolicy")["PolicyText"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(statements.len(), 2);
    assert!(statements.iter().all(|s| s["Resource"] == prefix_arn("*")));
    // Off by default: the registry's one policy is account-wide.
    assert!(
        destination(DEST_DEFAULT)
            .resource("RegistryPolicy")
            .is_none()
    );
}

#[test]
fn creation_template_defaults_to_immutable_aes256_with_the_lifecycle_policy() {
    let doc = load(DESTINATION).unwrap();
    assert_eq!(
        doc["Parameters"]["ImageTagMutability"]["AllowedValues"],
        json!([
            "MUTABLE",
            "IMMUTABLE",
            "IMMUTABLE_WITH_EXCLUSION",
            "MUTABLE_WITH_EXCLUSION"
        ])
    );
    let r = destination(DEST_MIN);
    let t = r.props("CreationTemplate");
    assert_eq!(t["Prefix"], json!("golden"));
    assert_eq!(t["AppliedFor"], json!(["REPLICATION", "CREATE_ON_PUSH"]));
    assert_eq!(t["ImageTagMutability"], json!("IMMUTABLE"));
    assert_eq!(t.get("ImageTagMutabilityExclusionFilters"), None);
    assert_eq!(
        t["EncryptionConfiguration"],
        json!({"EncryptionType": "AES256"})
    );
    assert_eq!(t.get("CustomRoleArn"), None);
    // The CloudFormation type has no scan setting: scan on push is the registry's.
    assert_eq!(t.get("ImageScanningConfiguration"), None);
    // The registry's one scanning configuration is left alone unless asked for.
    assert!(r.resource("RegistryScanning").is_none());
    let basic = destination(&with(DEST_MIN, &[("RegistryScanType", "BASIC")]));
    let scanning = basic.props("RegistryScanning");
    assert_eq!(scanning["ScanType"], json!("BASIC"));
    assert_eq!(
        scanning["Rules"],
        json!([{"ScanFrequency": "SCAN_ON_PUSH", "RepositoryFilters": [{"FilterType": "WILDCARD", "Filter": "golden/*"}]}])
    );

    let policy: Value = serde_json::from_str(t["LifecyclePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(lifecycle_policy_problems(&policy), Vec::<String>::new());
    assert_eq!(
        policy["rules"][0]["selection"],
        json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 3})
    );
    assert_eq!(
        policy["rules"][1]["selection"],
        json!({"tagStatus": "tagged", "tagPatternList": ["*"], "countType": "imageCountMoreThan", "countNumber": 20})
    );
    let len = t["LifecyclePolicy"].as_str().unwrap().len();
    assert!(
        (100..=30720).contains(&len),
        "LifecyclePolicy length {len} out of the schema's bounds"
    );

    let r = destination(&with(
        DEST_ALL,
        &[("KeepTaggedImages", "50"), ("UntaggedExpiryDays", "7")],
    ));
    let t = r.props("CreationTemplate");
    let policy: Value = serde_json::from_str(t["LifecyclePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(lifecycle_policy_problems(&policy), Vec::<String>::new());
    assert_eq!(policy["rules"][0]["selection"]["countNumber"], json!(7));
    assert_eq!(policy["rules"][1]["selection"]["countNumber"], json!(50));
    assert_eq!(t["ImageTagMutability"], json!("IMMUTABLE_WITH_EXCLUSION"));
    assert_eq!(
        t["ImageTagMutabilityExclusionFilters"],
        json!([{"ImageTagMutabilityExclusionFilterType": "WILDCARD", "ImageTagMutabilityExclusionFilterValue": "dev-*"}])
    );
    assert_eq!(
        t["EncryptionConfiguration"],
        json!({"EncryptionType": "KMS", "KmsKey": "arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555"})
    );
    assert_eq!(
        t["CustomRoleArn"],
        json!("arn:aws:iam::111111111111:role/ecr-template")
    );
    assert_eq!(r.props("RegistryScanning")["ScanType"], json!("ENHANCED"));
    assert!(
        destination(&with(DEST_MIN, &[("RegistryScanType", "UNMANAGED")]))
            .resource("RegistryScanning")
            .is_none()
    );
    let root = destination(&[
        ("HubAccountId", ACCOUNT_ID),
        ("RepositoryPrefix", "ROOT"),
        ("RegistryScanType", "BASIC"),
    ]);
    assert_eq!(
        root.props("RegistryScanning")["Rules"][0]["RepositoryFilters"][0]["Filter"],
        json!("*")
    );
}

#[test]
fn destination_write_role_is_the_default_and_pins_the_replicate_role() {
    assert!(
        destination(&with(DEST_DEFAULT, &[("CreateAssumeRole", "false")]))
            .resource("AssumeRole")
            .is_none(),
        "CreateAssumeRole=false: no role"
    );
    // The default: the write role, trusting the replicate role by ARN, no external ID needed.
    let r = destination(DEST_DEFAULT);
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let role = r.props("AssumeRole");
    assert_eq!(role["RoleName"], json!("ferry-destination-us-east-1"));
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"],
        json!([{
            "Sid": "FerryHub",
            "Effect": "Allow",
            "Principal": {"AWS": HUB_REPLICATE},
            "Action": "sts:AssumeRole",
            "Condition": {"ArnEquals": {"aws:PrincipalArn": HUB_REPLICATE}},
        }])
    );
    assert_eq!(
        r.props("ReadRole")["RoleName"],
        json!("ferry-destination-read-us-east-1")
    );
    // With an external ID, it is required too.
    let r = destination(DEST_ALL);
    let role = r.props("AssumeRole");
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"],
        json!({
            "ArnEquals": {"aws:PrincipalArn": HUB_REPLICATE},
            "StringEquals": {"sts:ExternalId": "ferry-external-id"},
        })
    );
    let statements = iam_statements(&r);
    let push = statement(&statements, "AssumeRole", "PushUnderPrefix").unwrap();
    assert_eq!(push["Resource"], prefix_arn("golden/*"));
    for action in [
        "ecr:CreateRepository",
        "ecr:UpdateImageStorageClass",
        "ecr:ListImageReferrers",
    ] {
        assert!(actions(push).contains(&action.to_owned()), "{action}");
    }
    assert_eq!(
        r.doc["Outputs"]["AssumeRoleArn"]["Value"],
        get_att("AssumeRole", "Arn")
    );
    assert_eq!(
        r.doc["Outputs"]["ReadRoleArn"]["Value"],
        get_att("ReadRole", "Arn")
    );
    let doc = load(DESTINATION).unwrap();
    assert_eq!(doc["Parameters"]["ExternalId"]["NoEcho"], json!(true));
    // The hub account root (no role ARN to pin) still needs the external ID.
    let root = with(DEST_MIN, &[("TrustHubAccountRoot", "true")]);
    assert_eq!(destination(&root).rule_failures.len(), 1);
    let r = destination(&with(&root, &[("ExternalId", "x-1234")]));
    assert_eq!(r.rule_failures, Vec::<String>::new());
    assert_eq!(
        r.props("AssumeRole")["AssumeRolePolicyDocument"]["Statement"][0]["Condition"],
        json!({"StringEquals": {"sts:ExternalId": "x-1234"}})
    );
    // Every parameter without a default is an account-neutral input (StackSets).
    let required: Vec<&String> = doc["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(required, vec!["HubAccountId"]);
}
