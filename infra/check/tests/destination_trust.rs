//! Trust boundaries of the destination's template (issue 9, "Infra least privilege"): whom a
//! destination trusts (the hub's roles, its account root only when asked, ECR native
//! replication only when asked), and that reconcile reads destinations but may never write
//! to or delete from them, assuming only their read roles.

mod common;

use common::*;
use ferry_infra_check::policy::{Request, applies, arn_like, identity_allows};
use ferry_infra_check::{Rendered, actions, as_list, iam_statements, load, statement};
use serde_json::{Value, json};

/// The destination with the hub's two roles named.
fn dest_with_roles(extra: &[(&'static str, &'static str)]) -> Rendered {
    let base = with(
        DEST_MIN,
        &[
            ("HubReplicateRoleArn", REPLICATE_ROLE),
            ("HubReconcileRoleArn", RECONCILE_ROLE),
            ("ManageRegistryPolicy", "true"),
        ],
    );
    destination(&with(&base, extra))
}

/// Every principal ARN (or pattern) named in a rendered destination: registry policy
/// statements and role trust policies.
fn destination_principals(r: &Rendered) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |origin: String, st: &Value| {
        for p in as_list(&st["Principal"]["AWS"]) {
            out.push((origin.clone(), p.as_str().unwrap_or("?").to_owned()));
        }
    };
    for (origin, st) in iam_statements(r) {
        add(origin, &st);
    }
    for (id, role) in r.resources_of_type("AWS::IAM::Role") {
        for st in as_list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]) {
            add(format!("{id} trust"), &st);
        }
    }
    out
}

#[test]
fn destination_trusts_the_hub_account_root_only_when_asked() {
    // No role ARNs and no explicit ask: CloudFormation refuses the stack.
    let r = destination(DEST_MIN);
    assert!(
        !r.rule_failures.is_empty(),
        "without the hub's role ARNs the stack must refuse, not trust the whole hub account"
    );
    let doc = load(DESTINATION).unwrap();
    assert_eq!(
        doc["Parameters"]["TrustHubAccountRoot"]["Default"],
        json!("false")
    );

    // With the roles: no statement or trust policy names the account root.
    let r = dest_with_roles(&[("CreateAssumeRole", "true"), ("ExternalId", "x-1234")]);
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let principals = destination_principals(&r);
    assert!(!principals.is_empty());
    for (origin, p) in &principals {
        assert!(!p.ends_with(":root"), "{origin} trusts {p}");
    }
    let s = iam_statements(&r);
    assert_eq!(
        statement(&s, "RegistryPolicy", "FerryPush").unwrap()["Principal"],
        json!({"AWS": REPLICATE_ROLE})
    );

    // Explicitly asked: the account root, for pushing and reading.
    let r = destination(&with(
        DEST_MIN,
        &[
            ("TrustHubAccountRoot", "true"),
            ("ManageRegistryPolicy", "true"),
            ("ExternalId", "x-1234"),
        ],
    ));
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let s = iam_statements(&r);
    for sid in ["FerryPush", "FerryReconcileRead"] {
        assert_eq!(
            statement(&s, "RegistryPolicy", sid).unwrap()["Principal"],
            json!({"AWS": ACCOUNT_ROOT}),
            "{sid}"
        );
    }
}

#[test]
fn native_replication_is_granted_only_when_asked() {
    let doc = load(DESTINATION).unwrap();
    assert_eq!(
        doc["Parameters"]["AllowNativeReplication"]["Default"],
        json!("false")
    );
    let r = dest_with_roles(&[]);
    for (origin, st) in iam_statements(&r) {
        assert!(
            !actions(&st).contains(&"ecr:ReplicateImage".to_owned()),
            "{origin}: native replication without AllowNativeReplication"
        );
    }
    let r = dest_with_roles(&[("AllowNativeReplication", "true")]);
    let s = iam_statements(&r);
    let native = statement(&s, "RegistryPolicy", "NativeReplication").unwrap();
    assert_eq!(
        actions(native),
        strings(&["ecr:CreateRepository", "ecr:ReplicateImage"])
    );
    // ECR native replication acts for the source account: its root is the principal.
    assert_eq!(native["Principal"], json!({"AWS": ACCOUNT_ROOT}));
}

/// Actions that change a destination repository.
pub const ECR_WRITE: [&str; 8] = [
    "ecr:InitiateLayerUpload",
    "ecr:UpdateImageStorageClass",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:CreateRepository",
    "ecr:BatchDeleteImage",
    "ecr:ReplicateImage",
];

#[test]
fn reconcile_reads_destinations_but_can_never_write_or_delete() {
    let r = dest_with_roles(&[
        ("CreateAssumeRole", "true"),
        ("ExternalId", "x-1234"),
        ("AllowNativeReplication", "true"),
    ]);
    // The write/delete role trusts the replicate role only.
    let trust = &r.props("AssumeRole")["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(as_list(trust).len(), 1);
    assert_eq!(trust[0]["Principal"], json!({"AWS": REPLICATE_ROLE}));
    assert_eq!(
        trust[0]["Condition"],
        json!({
            "ArnEquals": {"aws:PrincipalArn": REPLICATE_ROLE},
            "StringEquals": {"sts:ExternalId": "x-1234"},
        })
    );
    for (origin, p) in destination_principals(&r) {
        if p == RECONCILE_ROLE {
            assert!(
                origin.starts_with("RegistryPolicy") || origin == "ReadRole trust",
                "{origin} trusts reconcile"
            );
        }
    }
    // The registry policy lets reconcile read under the prefix, and nothing else.
    let repo = "arn:aws:ecr:us-east-1:111111111111:repository/golden/app";
    let registry: Vec<Value> = iam_statements(&r)
        .into_iter()
        .filter(|(origin, _)| origin == "RegistryPolicy")
        .map(|(_, st)| st)
        .collect();
    let allowed = |who: &str, action: &str| {
        registry.iter().any(|st| {
            st["Effect"] == json!("Allow") && applies(st, &Request::by(who, action, repo)).unwrap()
        })
    };
    for action in ECR_WRITE {
        assert!(!allowed(RECONCILE_ROLE, action), "reconcile may {action}");
    }
    for action in [
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:ListImages",
        "ecr:BatchGetImage",
    ] {
        assert!(
            allowed(RECONCILE_ROLE, action),
            "reconcile may not {action}"
        );
    }
    for action in [
        "ecr:PutImage",
        "ecr:BatchDeleteImage",
        "ecr:CreateRepository",
    ] {
        assert!(
            allowed(REPLICATE_ROLE, action),
            "replicate may not {action}"
        );
    }
}

/// Whether the reconcile role's identity policy in `r` allows `sts:AssumeRole` of `role_arn`.
fn reconcile_may_assume(r: &Rendered, role_arn: &str) -> bool {
    role_may_assume(r, "ReconcileRole", role_arn)
}

/// Whether the identity policy of hub role `role` in `r` allows `sts:AssumeRole` of
/// `role_arn` (an Allow applies, no Deny does: `identity_allows`, over `applies`).
fn role_may_assume(r: &Rendered, role: &str, role_arn: &str) -> bool {
    let statements: Vec<Value> = iam_statements(r)
        .into_iter()
        .filter(|(origin, _)| origin.split('/').next() == Some(role))
        .map(|(_, st)| st)
        .collect();
    identity_allows(&statements, "sts:AssumeRole", role_arn).unwrap()
}

/// The reconcile role's `Allow` statements with an `sts:` action.
fn reconcile_sts(r: &Rendered) -> Vec<Value> {
    iam_statements(r)
        .into_iter()
        .filter(|(origin, st)| {
            origin.starts_with("ReconcileRole")
                && st["Effect"] == json!("Allow")
                && actions(st).iter().any(|a| a.starts_with("sts:"))
        })
        .map(|(_, st)| st)
        .collect()
}

/// Reconcile reads untrusted listings: it may assume the destinations' read roles
/// (`DestinationReadRoleArns`, the configuration's `readRoleArn`) and never a write/delete
/// role, even when `DestinationRoleArns` (replicate's allow-list) is a pattern that matches
/// the read roles too. Its sts grants are exactly `AssumeDestinationReadRoles` on
/// `DestinationReadRoleArns` and, with `OrganizationAccess=role`, the read-only organization
/// reader; with `DestinationReadRoleArns` empty it may assume no destination role at all.
#[test]
fn reconcile_can_assume_read_roles_and_no_write_role() {
    // The example names are what the destination stack creates with its defaults.
    assert!(arn_like(DEST_ROLES, DEST_WRITE_ROLE));
    assert!(
        arn_like(DEST_ROLES, DEST_READ_ROLE),
        "replicate's pattern covers both"
    );
    assert!(arn_like(DEST_READ_ROLES, DEST_READ_ROLE));
    assert!(!arn_like(DEST_READ_ROLES, DEST_WRITE_ROLE));

    let without_read = with(HUB_ALL, &[("DestinationReadRoleArns", "")]);
    let org = |base: &[(&'static str, &'static str)]| {
        with(
            base,
            &[
                ("OrganizationAccess", "role"),
                ("OrganizationRoleArn", ORG_ROLE),
            ],
        )
    };
    let roles_only: &[(&str, &str)] = &[
        ("DestinationRoleArns", DEST_ROLES),
        ("DestinationReadRoleArns", DEST_READ_ROLES),
    ];
    // (label, hub, read roles granted, organization reader granted)
    for (label, r, read, reader) in [
        ("defaults", hub(&[]), false, false),
        ("write and read roles only", hub(roles_only), true, false),
        ("all features", hub(HUB_ALL), true, false),
        ("secure configuration", hub_all_secure(), true, false),
        (
            "all features, organization reader",
            hub(&org(HUB_ALL)),
            true,
            true,
        ),
        (
            "all features, organization direct",
            hub(&with(HUB_ALL, &[("OrganizationAccess", "direct")])),
            true,
            false,
        ),
        ("no read roles", hub(&without_read), false, false),
        (
            "no read roles, organization reader",
            hub(&org(&without_read)),
            false,
            true,
        ),
    ] {
        assert!(
            !reconcile_may_assume(&r, DEST_WRITE_ROLE),
            "{label}: reconcile may assume the write role"
        );
        assert_eq!(
            reconcile_may_assume(&r, DEST_READ_ROLE),
            read,
            "{label}: reconcile and the read role"
        );
        assert_eq!(
            reconcile_may_assume(&r, ORG_ROLE),
            reader,
            "{label}: reconcile and the organization reader"
        );
        let mut expected = Vec::new();
        if read {
            expected.push(json!({
                "Sid": "AssumeDestinationReadRoles",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": [DEST_READ_ROLES],
            }));
        }
        if reader {
            expected.push(json!({
                "Sid": "AssumeOrganizationReader",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": ORG_ROLE,
            }));
        }
        assert_eq!(
            reconcile_sts(&r),
            expected,
            "{label}: reconcile's sts grants"
        );
        if label != "defaults" {
            // Replicate still assumes the destination roles (the write role among them).
            let statements = iam_statements(&r);
            let st = statement(&statements, "ReplicateRole", "AssumeDestinationRoles");
            assert!(
                st.is_some(),
                "{label}: replicate still assumes destination roles"
            );
            assert!(
                role_may_assume(&r, "ReplicateRole", DEST_WRITE_ROLE),
                "{label}"
            );
        }
    }
}
