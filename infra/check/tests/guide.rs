//! `docs/deploy.md` tells an operator of an earlier Ferry what the trust-boundary release
//! breaks, each with the parameter or statement to change, and walks through the setup of
//! organization-wide distribution.

mod common;

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
