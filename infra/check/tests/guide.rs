//! `docs/deploy.md` names every parameter of the templates and lists every IAM statement
//! and action they grant, tells an operator of an earlier Ferry what the trust-boundary
//! release breaks, each with the parameter or statement to change, and walks through the
//! setup of organization-wide distribution.

mod common;

use common::*;
use ferry_infra_check::{actions, iam_statements, load};
use serde_json::Value;

#[test]
fn the_guide_lists_the_breaking_changes_for_an_upgrade() {
    let section = common::guide_section("## Upgrading from an earlier Ferry");
    for needle in [
        "`SourceRepositoryArns` is **required**",
        "`KmsKeyArns`",
        "**`ConfigKmsKeyArn`**",
        "`HubReplicateRoleArn` and `HubReconcileRoleArn`",
        "`TrustHubAccountRoot=true`",
        "`AllowNativeReplication=true`",
        "`FerryReconcileRead`",
        "**its own role**",
        "`roleArn`",
        "`kmsKey`",
        "`deletes`",
        "**rejects**",
        "`REJECTED`",
        "`RejectedJobs`",
        "[job-schema.md](job-schema.md)",
    ] {
        assert!(
            section.contains(needle),
            "the upgrade section does not mention {needle}"
        );
    }
}

/// The "Organization-wide distribution" section walks through the whole setup (issue 10):
/// where the organization is read, the hub's parameters, the reader stack, the StackSet over
/// the same OU, the configuration, the checks, and what joining and leaving do.
#[test]
fn the_guide_shows_the_organization_setup() {
    let section = common::guide_section("### Organization-wide distribution");
    for needle in [
        // where: management account or delegated administrator
        "management account",
        "register-delegated-administrator",
        "aws organizations put-resource-policy",
        "OrganizationAccess=direct",
        // the hub and the reader
        "OrganizationAccess=role",
        "OrganizationRoleArn=",
        "OrganizationCacheSeconds",
        "infra/organization-reader.yaml",
        "FunctionRoleArns",
        "`HubRoleArns`",
        "`RoleName`",
        // the StackSet over the same OU
        "--permission-model SERVICE_MANAGED",
        "--auto-deployment Enabled=true",
        "--deployment-targets OrganizationalUnitIds=",
        // the configuration and the checks
        "\"organizationalUnit\"",
        "\"regions\"",
        "{accountId}",
        "\"organizationRoleArn\"",
        "ferry validate ferry.json --resolve",
        "ferry plan",
        // TTL, joins and leaves
        "FERRY_ORGANIZATION_TTL_SECONDS",
        "**joins**",
        "**leaves**",
        "reconcile",
    ] {
        assert!(
            section.contains(needle),
            "the organization section does not mention {needle}"
        );
    }
    // Every parameter the hub and the reader got for it is named there.
    for (template, prefix) in [(common::HUB, "Organization"), (common::ORG_READER, "")] {
        let doc = ferry_infra_check::load(template).unwrap();
        for param in doc["Parameters"].as_object().unwrap().keys() {
            if param.starts_with(prefix) {
                assert!(section.contains(param.as_str()), "{template}: {param}");
            }
        }
    }
}

#[test]
fn the_deployment_guide_names_every_parameter() {
    let guide = guide();
    for name in TEMPLATES {
        let doc = load(name).unwrap();
        for param in doc["Parameters"].as_object().unwrap().keys() {
            assert!(
                guide.contains(&format!("`{param}`")),
                "docs/deploy.md does not name the {name} parameter `{param}`"
            );
        }
    }
}

#[test]
fn the_deployment_guide_lists_every_statement_and_action() {
    let guide = guide();
    let iam = &guide[guide
        .find("## 9. IAM")
        .expect("docs/deploy.md has the IAM section")..];
    let renders = [
        hub(HUB_ALL),
        hub_all_secure(),
        destination(DEST_ALL),
        forwarder(&[("HubRegion", "us-east-1")]),
        hub_org_role(),
        hub_org_direct(),
        org_reader(&[]),
    ];
    for r in &renders {
        for (origin, st) in iam_statements(r) {
            if let Some(sid) = st.get("Sid").and_then(Value::as_str) {
                assert!(
                    iam.contains(sid),
                    "docs/deploy.md does not list statement {sid} ({origin})"
                );
            }
            for a in actions(&st) {
                let short = a.split_once(':').map(|(_, name)| name).unwrap_or(&a);
                assert!(
                    iam.contains(&format!("`{a}`")) || iam.contains(&format!("`{short}`")),
                    "docs/deploy.md does not list {a} ({origin})"
                );
            }
        }
    }
    // Every waiver is documented.
    for check in [
        "CKV_AWS_27",
        "CKV_AWS_158",
        "CKV_AWS_115",
        "CKV_AWS_173",
        "CKV_AWS_116",
        "CKV_AWS_26",
    ] {
        assert!(
            guide.contains(check),
            "docs/deploy.md does not explain the waiver of {check}"
        );
    }
    for endpoint in [
        "ecr.api", "ecr.dkr", "s3", "sqs", "events", "sts", "ssm", "logs",
    ] {
        assert!(
            guide.contains(&format!("com.amazonaws.<region>.{endpoint}`")),
            "VPC endpoint {endpoint}"
        );
    }
}
