//! `docs/deploy.md` tells an operator of an earlier Ferry what the trust-boundary release
//! breaks, each with the parameter or statement to change.

mod common;

#[test]
fn the_guide_lists_the_breaking_changes_for_an_upgrade() {
    let guide = common::guide();
    let start = guide
        .find("## Upgrading from an earlier Ferry")
        .expect("docs/deploy.md has an upgrade section");
    let section = &guide[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
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
