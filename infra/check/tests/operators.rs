//! Operator access: OperatorPrincipalArns may assume the destination's read role (and the
//! organization reader) and read; they may assume the write role only with
//! OperatorWriteAccess=true. Without operators nothing changes.

mod common;

use common::*;
use ferry_infra_check::policy::{Request, applies, identity_allows};
use ferry_infra_check::{Rendered, as_list, iam_statements};
use serde_json::Value;

const STRANGER: &str = "arn:aws:iam::444444444444:role/someone-else";

/// Whether `who` may assume role `id` of `r` (its trust policy; no external ID passed).
fn may_assume(r: &Rendered, id: &str, who: &str) -> bool {
    let Some(role) = r.resource(id) else {
        return false;
    };
    let trust = as_list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
    let role_arn = format!("arn:aws:iam::111111111111:role/{id}");
    let req = Request::by(who, "sts:AssumeRole", &role_arn);
    let mut allowed = false;
    for st in &trust {
        // A statement that needs an external ID does not apply to a caller without one.
        if st["Condition"].get("StringEquals").is_some() {
            continue;
        }
        // A trust policy names no Resource: the role itself.
        let mut st = st.clone();
        st["Resource"] = Value::String(role_arn.clone());
        if applies(&st, &req).unwrap() {
            allowed |= st["Effect"] == "Allow";
        }
    }
    allowed
}

fn role_allows(r: &Rendered, id: &str, action: &str, resource: &str) -> bool {
    let sts: Vec<Value> = iam_statements(r)
        .into_iter()
        .filter(|(o, _)| o.split('/').next() == Some(id))
        .map(|(_, s)| s)
        .collect();
    identity_allows(&sts, action, resource).unwrap()
}

const REPO: &str = "arn:aws:ecr:us-east-1:111111111111:repository/golden/app";

const READS: [&str; 7] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "ecr:ListImages",
    "ecr:DescribeRepositories",
    "ecr:ListImageReferrers",
];

const WRITES: [&str; 6] = [
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:CompleteLayerUpload",
    "ecr:BatchDeleteImage",
    "ecr:CreateRepository",
    "ecr:UpdateImageStorageClass",
];

#[test]
fn operators_may_read_through_the_read_role_and_not_write() {
    let r = destination(&with(DEST_DEFAULT, &[("OperatorPrincipalArns", OPERATOR)]));
    assert_eq!(r.rule_failures, Vec::<String>::new());
    assert!(may_assume(&r, "ReadRole", OPERATOR));
    assert!(!may_assume(&r, "ReadRole", STRANGER));
    assert!(
        !may_assume(&r, "AssumeRole", OPERATOR),
        "write without OperatorWriteAccess"
    );
    for action in READS {
        assert!(
            role_allows(&r, "ReadRole", action, REPO),
            "read role: {action}"
        );
    }
    for action in WRITES {
        assert!(
            !role_allows(&r, "ReadRole", action, REPO),
            "read role may {action}"
        );
    }
    // The hub's roles read through it too; reconcile may still not write.
    assert!(may_assume(&r, "ReadRole", HUB_RECONCILE));
    assert!(may_assume(&r, "ReadRole", HUB_REPLICATE));
    assert!(!may_assume(&r, "AssumeRole", HUB_RECONCILE));
}

#[test]
fn operators_may_write_only_with_operator_write_access() {
    let r = destination(&with(
        DEST_DEFAULT,
        &[
            ("OperatorPrincipalArns", OPERATOR),
            ("OperatorWriteAccess", "true"),
        ],
    ));
    assert!(may_assume(&r, "AssumeRole", OPERATOR));
    assert!(!may_assume(&r, "AssumeRole", STRANGER));
    for action in WRITES {
        assert!(
            role_allows(&r, "AssumeRole", action, REPO),
            "write role: {action}"
        );
    }
    // Without operators, write access names nobody.
    let r = destination(&with(DEST_DEFAULT, &[("OperatorWriteAccess", "true")]));
    assert!(!may_assume(&r, "AssumeRole", OPERATOR));
    assert!(!may_assume(&r, "ReadRole", OPERATOR));
}

#[test]
fn without_operators_nothing_changes() {
    let plain = destination(DEST_DEFAULT);
    let explicit = destination(&with(
        DEST_DEFAULT,
        &[
            ("OperatorPrincipalArns", ""),
            ("OperatorWriteAccess", "false"),
        ],
    ));
    assert_eq!(plain.doc, explicit.doc);
    assert!(!may_assume(&plain, "ReadRole", OPERATOR));
    let reader = org_reader(&[]);
    assert!(!may_assume(&reader, "OrganizationReaderRole", OPERATOR));
}

#[test]
fn operators_may_read_the_organization() {
    let reader = org_reader(&[("OperatorPrincipalArns", OPERATOR)]);
    assert!(may_assume(&reader, "OrganizationReaderRole", OPERATOR));
    assert!(!may_assume(&reader, "OrganizationReaderRole", STRANGER));
    for action in [
        "organizations:ListAccounts",
        "organizations:ListAccountsForParent",
        "organizations:ListChildren",
        "organizations:DescribeOrganization",
    ] {
        assert!(
            role_allows(&reader, "OrganizationReaderRole", action, "*"),
            "{action}"
        );
    }
    assert!(!role_allows(
        &reader,
        "OrganizationReaderRole",
        "organizations:CreateAccount",
        "*"
    ));
}
