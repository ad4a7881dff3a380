//! Non-destructive by default: a destination stack deployed with its defaults (say over an
//! organizational unit by a StackSet) creates no account-wide resource, so it replaces no
//! existing registry policy or scanning configuration and deleting it leaves the account's
//! settings as they were.

mod common;

use common::*;
use ferry_infra_check::{Rendered, load};

/// Resource types of which an account (per region) has one, or which change an
/// account-wide setting: creating one replaces what the account had, deleting the stack
/// removes it.
const ACCOUNT_WIDE: &[&str] = &[
    "AWS::ECR::RegistryPolicy",
    "AWS::ECR::RegistryScanningConfiguration",
    "AWS::ECR::ReplicationConfiguration",
    "AWS::ECR::PullThroughCacheRule",
    "AWS::ECR::SigningConfiguration",
    "AWS::Inspector2::Enabler",
    "AWS::IAM::AccountPasswordPolicy",
    "AWS::EC2::EBSDefaultKmsKey",
];

/// The only resource types the destination creates with its defaults: the creation
/// template (for its own prefix) and its two named roles.
const DEFAULT_TYPES: &[&str] = &["AWS::ECR::RepositoryCreationTemplate", "AWS::IAM::Role"];

fn types(r: &Rendered) -> Vec<(String, String)> {
    r.doc["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, res)| (id.clone(), res["Type"].as_str().unwrap().to_owned()))
        .collect()
}

fn account_wide(r: &Rendered) -> Vec<(String, String)> {
    types(r)
        .into_iter()
        .filter(|(_, t)| ACCOUNT_WIDE.contains(&t.as_str()) || !DEFAULT_TYPES.contains(&t.as_str()))
        .collect()
}

#[test]
fn with_its_defaults_the_destination_creates_no_account_wide_resource() {
    for (label, params) in [
        ("required parameters only", DEST_MIN),
        ("the hub's role ARNs", DEST_DEFAULT),
    ] {
        let r = destination(params);
        assert_eq!(
            account_wide(&r),
            Vec::<(String, String)>::new(),
            "{label}: account-wide resources"
        );
    }
    let doc = load(DESTINATION).unwrap();
    let p = &doc["Parameters"];
    assert_eq!(p["ManageRegistryPolicy"]["Default"], "false");
    assert_eq!(p["RegistryScanType"]["Default"], "UNMANAGED");
    assert_eq!(p["CreateAssumeRole"]["Default"], "true");
}

#[test]
fn account_wide_resources_are_opt_in_and_recognised() {
    // Asked for, they are there (and this test's filter sees them).
    let r = destination(&with(
        DEST_DEFAULT,
        &[
            ("ManageRegistryPolicy", "true"),
            ("RegistryScanType", "BASIC"),
        ],
    ));
    let found: Vec<String> = account_wide(&r).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        found,
        strings(&[
            "AWS::ECR::RegistryPolicy",
            "AWS::ECR::RegistryScanningConfiguration"
        ])
    );
}
