//! The shipped examples under `examples/config/` load cleanly and mean what they say.

use std::path::PathBuf;

use super::targets;
use crate::config::ReplicationConfig;

fn example(name: &str) -> ReplicationConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/config")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let loaded = ReplicationConfig::load(&text, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(loaded.warnings.is_empty(), "{name}: {:#?}", loaded.warnings);
    loaded.config
}

#[test]
fn every_example_is_tested() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/config");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "central-distribution.json",
            "cross-partition.json",
            "dr-fanout.json",
            "native-replication.json",
            "organization.json",
            "promotion-gates.json"
        ]
    );
}

#[test]
fn cross_partition() {
    let config = example("cross-partition.json");
    assert_eq!(
        targets(&config, "release/api", Some("v1"))
            .into_iter()
            .map(|(host, _)| host)
            .collect::<Vec<_>>(),
        [
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com",
            "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn",
            "444455556666.dkr.ecr.us-gov-west-1.amazonaws.com",
        ]
    );
    // For a hub in us-east-1; a hub in China could reach neither the commercial
    // destination nor the secrets.
    assert!(config.check_home_region("us-east-1").is_ok());
    assert!(config.check_home_region("cn-north-1").is_err());
}

#[test]
fn organization() {
    use crate::config::{AccountState, OrgAccount, OrgAccounts};
    let config = example("organization.json");
    let query = config.account_queries().pop().unwrap();
    let member = |id: &str| OrgAccount {
        id: id.into(),
        name: id.into(),
        state: AccountState::Active,
        status: "ACTIVE".into(),
    };
    let answers = OrgAccounts::from([(
        query,
        vec![
            member("333333333333"),
            member("222222222222"),
            member("111111111111"),
        ],
    )]);
    let resolved = config.resolve_accounts(&answers).unwrap().config;
    let hosts = targets(&resolved, "golden/java", Some("21.0.4"));
    assert_eq!(
        hosts,
        [
            (
                "333333333333.dkr.ecr.eu-west-1.amazonaws.com".to_string(),
                "golden/java".to_string()
            ),
            (
                "333333333333.dkr.ecr.us-east-1.amazonaws.com".to_string(),
                "golden/java".to_string()
            ),
        ]
    );
    assert!(targets(&resolved, "golden/java", Some("0.9.0")).is_empty());
}

#[test]
fn native_replication() {
    let config = example("native-replication.json");
    assert_eq!(targets(&config, "prod-api", Some("latest")).len(), 3);
    assert_eq!(targets(&config, "shared/base", Some("latest")).len(), 3);
    assert_eq!(targets(&config, "dev/api", Some("latest")).len(), 1);
}

#[test]
fn dr_fanout() {
    let config = example("dr-fanout.json");
    let release = config
        .destinations_for("golden/api", Some("v1.4.0"))
        .unwrap();
    assert_eq!(release.len(), 3);
    let backup = release
        .iter()
        .find(|t| !t.destination.registry.is_ecr())
        .unwrap();
    assert_eq!(backup.repository, "ecr-us-east-1/golden/api");
    assert!(!backup.referrers && !backup.deletes);
    assert!(
        release
            .iter()
            .filter(|t| t.destination.registry.is_ecr())
            .all(|t| t.referrers && t.deletes)
    );
    assert_eq!(
        config
            .destinations_for("golden/api", Some("v1.4.0-debug"))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        config.destinations_for("golden/api", None).unwrap().len(),
        2
    );
    assert!(
        config
            .destinations_for("dev/api", Some("v1.4.0"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn central_distribution() {
    let config = example("central-distribution.json");
    let hosts = targets(&config, "golden/java", Some("21.0.4"));
    assert_eq!(hosts.len(), 3);
    assert!(
        hosts
            .iter()
            .all(|(_, repository)| repository == "golden/java")
    );
    let all = config
        .destinations_for("golden/base-images/al2023", Some("stable"))
        .unwrap();
    assert!(
        all.iter()
            .all(|t| t.destination.role_arn.is_some() && t.destination.use_creation_template)
    );
    assert!(
        config
            .destinations_for("golden/base-images/al2023", Some("stable-rc1"))
            .unwrap()
            .is_empty()
    );
    assert!(
        config
            .destinations_for("golden/go", Some("1.0.0"))
            .unwrap()
            .is_empty()
    );
    assert!(
        config
            .destinations_for("golden/java", Some("latest"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn promotion_gates() {
    use crate::config::{AccountState, FindingSeverity, OrgAccount, OrgAccounts};
    let config = example("promotion-gates.json");
    let query = config.account_queries().pop().unwrap();
    let member = OrgAccount {
        id: "333333333333".into(),
        name: "workload".into(),
        state: AccountState::Active,
        status: "ACTIVE".into(),
    };
    let answers = OrgAccounts::from([(query, vec![member])]);
    let resolved = config.resolve_accounts(&answers).unwrap().config;
    let found = resolved
        .destinations_for("golden/java", Some("21.0.4"))
        .unwrap();
    assert_eq!(found.len(), 2, "one account, two regions");
    for target in &found {
        let gates = &target.gates.as_ref().expect("gated").alternatives[0];
        let scan = gates.scan.as_ref().unwrap();
        assert_eq!(scan.max_severity, FindingSeverity::High);
        assert_eq!(scan.wait_minutes(), 120);
        assert_eq!(
            gates
                .signature
                .as_ref()
                .unwrap()
                .cosign
                .as_ref()
                .unwrap()
                .public_keys
                .len(),
            1
        );
        assert_eq!(target.platforms, ["linux/amd64", "linux/arm64"]);
    }
    assert!(
        resolved
            .destinations_for("golden/java", Some("0.9.0"))
            .unwrap()
            .is_empty()
    );
}
