//! Parameter sets and render helpers shared by the template tests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use ferry_infra_check::{
    ACCOUNT_ID, Pseudo, Rendered, actions, as_list, iam_statements, load, render, render_with,
};
use serde_json::json;

pub(crate) const HUB: &str = "template.yaml";
pub(crate) const DESTINATION: &str = "destination.yaml";
pub(crate) const FORWARDER: &str = "forwarder.yaml";
pub(crate) const ORG_READER: &str = "organization-reader.yaml";

/// Every CloudFormation template in `infra/`.
pub(crate) const TEMPLATES: [&str; 4] = [HUB, DESTINATION, FORWARDER, ORG_READER];

/// The organization reader role the hub reads AWS Organizations through (in the management
/// account `999999999999`).
pub(crate) const ORG_ROLE: &str = "arn:aws:iam::999999999999:role/ferry-organization-reader";

/// The hub's dispatch, replicate and reconcile roles as CloudFormation resolves them.
pub(crate) const DISPATCH_ROLE: &str = "arn:aws:iam::111111111111:role/ferry-DispatchRole-AAA";
pub(crate) const REPLICATE_ROLE: &str = "arn:aws:iam::111111111111:role/ferry-ReplicateRole-BBB";
pub(crate) const RECONCILE_ROLE: &str = "arn:aws:iam::111111111111:role/ferry-ReconcileRole-CCC";

/// The hub's three function roles (`FunctionRoleArns`).
pub(crate) const HUB_ROLE_ARNS: [&str; 3] = [DISPATCH_ROLE, REPLICATE_ROLE, RECONCILE_ROLE];

/// The hub account's root principal.
pub(crate) const ACCOUNT_ROOT: &str = "arn:aws:iam::111111111111:root";

/// The hub reading AWS Organizations through [`ORG_ROLE`].
pub(crate) fn hub_org_role() -> Rendered {
    hub(&[
        ("ReplicationConfig", "{}"),
        ("OrganizationAccess", "role"),
        ("OrganizationRoleArn", ORG_ROLE),
    ])
}

/// The hub reading AWS Organizations with its own roles.
pub(crate) fn hub_org_direct() -> Rendered {
    hub(&[
        ("ReplicationConfig", "{}"),
        ("OrganizationAccess", "direct"),
    ])
}

/// The organization reader trusting [`HUB_ROLE_ARNS`].
pub(crate) fn org_reader(overrides: &[(&str, &str)]) -> Rendered {
    let roles = HUB_ROLE_ARNS.join(",");
    let params = with(&[("HubRoleArns", roles.as_str())], overrides);
    render(&load(ORG_READER).unwrap(), &params).unwrap()
}

pub(crate) const DEST_REPOS: &str = "arn:aws:ecr:eu-west-1:222222222222:repository/golden/*,arn:aws:ecr:us-west-2:333333333333:repository/golden/*";
pub(crate) const DEST_ROLES: &str = "arn:aws:iam::*:role/ferry-destination-*";
/// The destinations' read roles (`<AssumeRoleName>-read-<region>`) reconcile may assume.
pub(crate) const DEST_READ_ROLES: &str = "arn:aws:iam::*:role/ferry-destination-read-*";
/// A destination's write role and read role (account 222222222222, eu-west-1), as the
/// destination stack names them with its default `AssumeRoleName`.
pub(crate) const DEST_WRITE_ROLE: &str =
    "arn:aws:iam::222222222222:role/ferry-destination-eu-west-1";
pub(crate) const DEST_READ_ROLE: &str =
    "arn:aws:iam::222222222222:role/ferry-destination-read-eu-west-1";
pub(crate) const SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:111111111111:secret:ferry/ghcr-AbCdEf";
pub(crate) const KMS_KEY: &str =
    "arn:aws:kms:eu-west-1:222222222222:key/11111111-2222-3333-4444-555555555555";

/// Every optional feature of the hub switched on.
pub(crate) const HUB_ALL: &[(&str, &str)] = &[
    ("ReplicationConfig", r#"{"rules":[]}"#),
    (
        "SourceRepositoryArns",
        "arn:aws:ecr:us-east-1:111111111111:repository/team/*,arn:aws:ecr:eu-central-1:111111111111:repository/*",
    ),
    ("DestinationRepositoryArns", DEST_REPOS),
    ("DestinationRoleArns", DEST_ROLES),
    ("DestinationReadRoleArns", DEST_READ_ROLES),
    ("CredentialSecretArns", SECRET),
    ("KmsKeyArns", KMS_KEY),
    (
        "PermissionsBoundaryArn",
        "arn:aws:iam::111111111111:policy/boundary",
    ),
    (
        "SubnetIds",
        "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    ),
    ("SecurityGroupIds", "sg-0123456789abcdef0"),
    ("AlarmEmail", "ops@example.com"),
    ("TracingMode", "Active"),
];

/// The configuration in a SecureString the operator created, under a customer managed key.
pub(crate) const SECURE_CONFIG: &str = "/ferry/secure-config";
pub(crate) const CONFIG_KEY: &str =
    "arn:aws:kms:us-east-1:111111111111:key/99999999-8888-7777-6666-555555555555";

/// [`HUB_ALL`] with the configuration in [`SECURE_CONFIG`] instead of the stack parameter.
pub(crate) fn hub_all_secure() -> Rendered {
    hub(&with(
        HUB_ALL,
        &[
            ("ReplicationConfig", ""),
            ("ExistingConfigParameterName", SECURE_CONFIG),
            ("ConfigKmsKeyArn", CONFIG_KEY),
        ],
    ))
}

/// Every optional feature of the destination switched on.
pub(crate) const DEST_ALL: &[(&str, &str)] = &[
    ("HubAccountId", ACCOUNT_ID),
    (
        "HubReplicateRoleArn",
        "arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC",
    ),
    (
        "HubReconcileRoleArn",
        "arn:aws:iam::111111111111:role/ferry-ReconcileRole-DEF",
    ),
    ("RepositoryPrefix", "golden"),
    ("ImageTagMutability", "IMMUTABLE_WITH_EXCLUSION"),
    ("ImageTagMutabilityExclusionFilter", "dev-*"),
    (
        "KmsKeyArn",
        "arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555",
    ),
    (
        "CreationTemplateRoleArn",
        "arn:aws:iam::111111111111:role/ecr-template",
    ),
    ("RegistryScanType", "ENHANCED"),
    ("ManageRegistryPolicy", "true"),
    ("CreateAssumeRole", "true"),
    ("ExternalId", "ferry-external-id"),
    ("AllowNativeReplication", "true"),
    ("OperatorPrincipalArns", OPERATOR),
    ("OperatorWriteAccess", "true"),
];

/// An operator role (ferry plan, verify, status; sync with OperatorWriteAccess).
pub(crate) const OPERATOR: &str = "arn:aws:iam::444444444444:role/ferry-operator";

/// The destination's parameters without default only (its Rules then refuse the stack:
/// it needs the hub's role ARNs or TrustHubAccountRoot=true).
pub(crate) const DEST_MIN: &[(&str, &str)] = &[("HubAccountId", ACCOUNT_ID)];

/// The hub's replicate and reconcile roles as the destination tests name them.
pub(crate) const HUB_REPLICATE: &str = "arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC";
pub(crate) const HUB_RECONCILE: &str = "arn:aws:iam::111111111111:role/ferry-ReconcileRole-DEF";

/// The destination as docs/deploy.md deploys it: the hub's role ARNs, every other
/// parameter at its default.
pub(crate) const DEST_DEFAULT: &[(&str, &str)] = &[
    ("HubAccountId", ACCOUNT_ID),
    ("HubReplicateRoleArn", HUB_REPLICATE),
    ("HubReconcileRoleArn", HUB_RECONCILE),
];

/// The source repositories the hub may read in most tests (`SourceRepositoryArns` has no
/// default: the operator names them).
pub(crate) const SOURCE_REPOS: &str = "arn:aws:ecr:us-east-1:111111111111:repository/team/*";

/// The hub with `SourceRepositoryArns` = [`SOURCE_REPOS`] unless `overrides` sets it.
pub(crate) fn hub(overrides: &[(&str, &str)]) -> Rendered {
    let params = with(&[("SourceRepositoryArns", SOURCE_REPOS)], overrides);
    render(&load(HUB).unwrap(), &params).unwrap()
}

pub(crate) fn destination(overrides: &[(&str, &str)]) -> Rendered {
    render(&load(DESTINATION).unwrap(), overrides).unwrap()
}

pub(crate) fn forwarder(overrides: &[(&str, &str)]) -> Rendered {
    let pseudo = Pseudo {
        region: "eu-west-1".into(),
        ..Pseudo::default()
    };
    render_with(&load(FORWARDER).unwrap(), overrides, &pseudo).unwrap()
}

/// `overrides` plus one more.
pub(crate) fn with<'a>(
    overrides: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<_> = overrides
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    v.extend_from_slice(extra);
    v
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) fn sorted(v: &[&str]) -> Vec<String> {
    let mut s = strings(v);
    s.sort();
    s
}

pub(crate) const FUNCTIONS: [(&str, &str); 3] = [
    ("DispatchFunction", "dispatch"),
    ("ReplicateFunction", "replicate"),
    ("ReconcileFunction", "reconcile"),
];

/// ECR actions of a push under a prefix (PushToDestinations, FerryPush).
pub(crate) const ECR_PUSH: [&str; 13] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:CreateRepository",
    "ecr:BatchDeleteImage",
    "ecr:UpdateImageStorageClass",
    "ecr:ListImageReferrers",
];

/// ECR actions that replicate's source pulls need (PullFromSources).
pub(crate) const ECR_PULL: [&str; 7] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:ListImages",
    "ecr:ListImageReferrers",
];

/// The repository root (the parent of `infra/`).
pub(crate) fn repo_root() -> std::path::PathBuf {
    ferry_infra_check::infra_dir()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The text of `docs/deploy.md`.
pub(crate) fn guide() -> String {
    std::fs::read_to_string(repo_root().join("docs/deploy.md")).unwrap()
}

/// The part of `docs/deploy.md` from `heading` (a whole heading line, `## ...` or
/// `### ...`) to the next top-level `## ` section; panics when the guide has no such heading.
pub(crate) fn guide_section(heading: &str) -> String {
    let guide = guide();
    let start = guide
        .find(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("docs/deploy.md has no heading {heading:?}"));
    let section = &guide[start..];
    let end = section[heading.len()..]
        .find("\n## ")
        .map_or(section.len(), |i| i + heading.len());
    section[..end].to_owned()
}

/// Actions allowed on `Resource: "*"`, with the reason.
pub(crate) const STAR_RESOURCE_ALLOWED: &[(&str, &str)] = &[
    (
        "ecr:GetAuthorizationToken",
        "registry-wide login token; IAM supports no resource for it",
    ),
    (
        "ecr:GetAccountSetting",
        "account-level ECR setting (BLOB_MOUNTING), read-only; IAM supports no resource for it",
    ),
    (
        "ecr:GetSigningConfiguration",
        "registry-level managed signing configuration of the caller's own registry, read-only; no resource type",
    ),
    (
        "ecr:DescribePullThroughCacheRules",
        "registry-level list of the source registry's pull-through cache rules, read-only; no resource type",
    ),
    (
        "organizations:DescribeOrganization",
        "read-only; no resource type (organization reader, operators only)",
    ),
    (
        "xray:PutTraceSegments",
        "X-Ray supports no resource-level permissions (only with TracingMode Active)",
    ),
    (
        "xray:PutTelemetryRecords",
        "X-Ray supports no resource-level permissions (only with TracingMode Active)",
    ),
    (
        "organizations:ListAccounts",
        "read-only; no resource type (OrganizationAccess=direct, organization reader)",
    ),
    (
        "organizations:ListAccountsForParent",
        "read-only; the configuration chooses the units, whose ARNs the stacks do not know",
    ),
    (
        "organizations:ListChildren",
        "read-only; the configuration chooses the units, whose ARNs the stacks do not know",
    ),
];

/// Every statement of `r` is an Allow (or a queue policy's Deny) of named actions on named
/// resources, `Resource: "*"` only for [`STAR_RESOURCE_ALLOWED`], and no managed policy
/// but Lambda's VPC policy in a VPC.
pub(crate) fn check_least_privilege(label: &str, r: &Rendered) {
    let statements = iam_statements(r);
    assert!(!statements.is_empty(), "{label}: no IAM statement found");
    for (origin, st) in &statements {
        // A Deny only narrows (the jobs queue policy); every grant is an Allow.
        let resource_policy = r
            .resource(origin.split('/').next().unwrap())
            .is_some_and(|res| res["Type"] == json!("AWS::SQS::QueuePolicy"));
        match st["Effect"].as_str() {
            Some("Allow") => {}
            Some("Deny") if resource_policy => {}
            _ => panic!("{label} {origin}: unexpected Effect: {st}"),
        }
        assert!(
            st.get("NotAction").is_none() && st.get("NotResource").is_none(),
            "{label} {origin}: {st}"
        );
        let acts = actions(st);
        assert!(
            !acts.is_empty(),
            "{label} {origin}: statement without actions"
        );
        for a in &acts {
            assert!(!a.contains('*'), "{label} {origin}: wildcard action {a}");
            assert!(a.contains(':'), "{label} {origin}: malformed action {a}");
        }
        let resources = st.get("Resource").map(as_list).unwrap_or_default();
        assert!(
            !resources.is_empty(),
            "{label} {origin}: statement without resource"
        );
        for res in &resources {
            assert_ne!(
                res,
                &json!(""),
                "{label} {origin}: empty resource (unset list parameter?)"
            );
            if res == &json!("*") {
                assert_eq!(resources.len(), 1, "{label} {origin}");
                for a in &acts {
                    assert!(
                        STAR_RESOURCE_ALLOWED.iter().any(|(ok, _)| ok == a),
                        "{label} {origin}: {a} on Resource \"*\""
                    );
                }
            }
        }
    }
    // Managed policies: none, except Lambda's VPC ENI policy when the functions are in a VPC.
    for (id, role) in r.resources_of_type("AWS::IAM::Role") {
        let managed = role["Properties"]
            .get("ManagedPolicyArns")
            .cloned()
            .unwrap_or(json!([]));
        let vpc = r.conditions.get("UseVpc").copied().unwrap_or(false);
        let expected = if vpc {
            json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"])
        } else {
            json!([])
        };
        assert_eq!(managed, expected, "{label} {id}: managed policies");
    }
}
