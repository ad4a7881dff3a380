//! Destinations from AWS Organizations, against moto's Organizations, STS and ECR: an OU
//! subtree of a 65-account organization resolves to exactly its active accounts (minus
//! the source and `excludeAccounts`) in each named region; an account moved into the OU
//! is replicated to on the next run; one that leaves keeps what it has and gets nothing
//! new; a suspended account is skipped.

use std::collections::BTreeSet;

use ferry_e2e::ecr::endpoints_env;
use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::organizations::Organization;
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, fixtures, moto, run_ferry};
use serde_json::{Value, json};

const SOURCE: &str = moto::DEFAULT_ACCOUNT;
const READER: &str = "arn:aws:iam::123456789012:role/ferry-org-reader";

fn env(moto: &Moto, endpoints: (String, String), docker: &DockerConfig) -> Vec<(String, String)> {
    let mut env = moto.aws_env();
    env.push(endpoints);
    env.push(docker.env());
    env
}

fn organization_rule(unit: &str, regions: &[&str], exclude: &[&str]) -> Value {
    json!({
        "source": {"registryId": SOURCE, "region": "us-east-1"},
        "rules": [{
            "repositoryFilters": [{"filter": "golden/", "filterType": "PREFIX_MATCH"}],
            "destinations": [{
                "organizationalUnit": unit, "regions": regions, "excludeAccounts": exclude,
                "roleArn": "arn:aws:iam::{accountId}:role/ferry-writer",
                "organizationRoleArn": READER
            }]
        }]
    })
}

#[test]
fn plan_and_validate_resolve_exactly_the_active_accounts_of_the_subtree() {
    let moto = Moto::start().expect("moto");
    let org = Organization::create(&moto).expect("organization");
    // root ── workloads ── prod (25) ; dev (20, one closed) ── teams (8)
    //     └── sandbox (10) ; 2 accounts at the root, and the management (source) account.
    let workloads = org.unit(&org.root, "workloads").expect("ou");
    let prod = org.unit(&workloads, "prod").expect("ou");
    let dev = org.unit(&workloads, "dev").expect("ou");
    let teams = org.unit(&dev, "teams").expect("ou");
    let sandbox = org.unit(&org.root, "sandbox").expect("ou");
    let prod_accounts = org.accounts(&prod, "prod", 25).expect("accounts");
    let dev_accounts = org.accounts(&dev, "dev", 20).expect("accounts");
    let team_accounts = org.accounts(&teams, "team", 8).expect("accounts");
    let sandbox_accounts = org.accounts(&sandbox, "sandbox", 10).expect("accounts");
    let root_accounts = org.accounts(&org.root, "root", 2).expect("accounts");
    // The source account sits in the subtree too: it is never its own destination.
    org.move_account(SOURCE, &org.root, &prod)
        .expect("move source");
    let closed = dev_accounts[3].clone();
    org.close(&closed).expect("close");
    let excluded = prod_accounts[0].clone();

    let mut expected: BTreeSet<String> = prod_accounts
        .iter()
        .chain(&dev_accounts)
        .chain(&team_accounts)
        .cloned()
        .collect();
    expected.remove(&closed);
    expected.remove(&excluded);
    assert_eq!(expected.len(), 51);
    let regions = ["eu-west-1", "us-west-2"];

    // One empty registry stands in for every destination (plan only reads).
    let src = EcrRegistry::start(SOURCE, "us-east-1").expect("source");
    let fixture = fixtures::oci_index(&src, "golden/base", "1.0.0", 7).expect("fixture");
    let docker = DockerConfig::new().expect("docker config");
    let config =
        ConfigFile::write(&organization_rule(&workloads, &regions, &[&excluded])).expect("config");

    let out = run_ferry(["validate", config.arg(), "--resolve"], &moto.aws_env()).expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let listed: BTreeSet<String> = text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.contains("skipped"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(listed, expected, "{text}");
    for (id, why) in [
        (&closed, "skipped: not-active (SUSPENDED)"),
        (&excluded, "skipped: excluded"),
        (&SOURCE.to_string(), "skipped: source"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(id.as_str()) && l.contains(why)),
            "{id} {why}\n{text}"
        );
    }
    assert!(text.contains("resolved: 102 destinations"), "{text}");
    for outside in sandbox_accounts.iter().chain(&root_accounts) {
        assert!(
            !text.contains(outside.as_str()),
            "{outside} is outside the OU"
        );
    }

    let out = run_ferry(
        ["plan", "-c", config.arg(), "--output", "json"],
        &env(&moto, endpoints_env(&[&src]), &docker),
    )
    .expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let resolved: BTreeSet<String> = plan["organizations"][0]["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(resolved, expected);
    let destinations: BTreeSet<String> = plan["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["destination_registry"]
                .as_str()
                .expect("destination")
                .to_string()
        })
        .collect();
    let wanted: BTreeSet<String> = expected
        .iter()
        .flat_map(|a| {
            regions
                .iter()
                .map(move |r| format!("{a}.dkr.ecr.{r}.amazonaws.com"))
        })
        .collect();
    assert_eq!(destinations, wanted);
    assert!(
        plan["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["action"] == "copy" && i["digest"] == fixture.digest.as_str()),
        "{}",
        plan["items"]
    );
}

fn sync(moto: &Moto, config: &ConfigFile, registries: &[&EcrRegistry]) -> Value {
    let docker = DockerConfig::new().expect("docker config");
    let out = run_ferry(
        ["sync", "-c", config.arg(), "--output", "json"],
        &env(moto, endpoints_env(registries), &docker),
    )
    .expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("report json")
}

#[test]
fn accounts_moved_into_the_unit_are_replicated_on_the_next_run_and_leavers_keep_theirs() {
    let moto = Moto::start().expect("moto");
    let org = Organization::create(&moto).expect("organization");
    let golden = org.unit(&org.root, "golden").expect("ou");
    let elsewhere = org.unit(&org.root, "elsewhere").expect("ou");
    let members = org.accounts(&golden, "member", 2).expect("accounts");
    let suspended = org.account(&golden, "suspended").expect("account");
    org.close(&suspended).expect("close");
    let newcomer = org.account(&elsewhere, "newcomer").expect("account");

    let src = EcrRegistry::start(SOURCE, "us-east-1").expect("source");
    let fixture = fixtures::oci_index(&src, "golden/base", "2.0.0", 11).expect("fixture");
    // The suspended account has no registry: a copy attempted there would fail the run.
    let a = EcrRegistry::start(&members[0], "eu-west-1").expect("registry");
    let b = EcrRegistry::start(&members[1], "eu-west-1").expect("registry");
    let c = EcrRegistry::start(&newcomer, "eu-west-1").expect("registry");
    let all = [&src, &a, &b, &c];
    let config =
        ConfigFile::write(&organization_rule(&golden, &["eu-west-1"], &[])).expect("config");
    let digest = |r: &EcrRegistry| {
        r.registry()
            .manifest_digest("golden/base", "2.0.0")
            .expect("head")
    };

    let first = sync(&moto, &config, &all);
    assert_eq!(digest(&a).as_deref(), Some(fixture.digest.as_str()));
    assert_eq!(digest(&b).as_deref(), Some(fixture.digest.as_str()));
    assert_eq!(digest(&c), None, "not in the OU yet");
    assert_eq!(first["totals"]["failed"], 0, "{first}");

    // Moved in: the next run copies to it, and only to it.
    org.move_account(&newcomer, &elsewhere, &golden)
        .expect("move in");
    let second = sync(&moto, &config, &all);
    assert_eq!(digest(&c).as_deref(), Some(fixture.digest.as_str()));
    assert_eq!(second["totals"]["copied"], 1, "{second}");

    // Moved out: it keeps its image and gets nothing new.
    org.move_account(&members[0], &golden, &elsewhere)
        .expect("move out");
    let newer = fixtures::oci_index(&src, "golden/base", "2.1.0", 12).expect("fixture");
    let third = sync(&moto, &config, &all);
    assert_eq!(third["totals"]["copied"], 2, "{third}");
    assert_eq!(digest(&a).as_deref(), Some(fixture.digest.as_str()));
    assert_eq!(
        a.registry()
            .manifest_digest("golden/base", "2.1.0")
            .expect("head"),
        None
    );
    assert_eq!(
        b.registry()
            .manifest_digest("golden/base", "2.1.0")
            .expect("head")
            .as_deref(),
        Some(newer.digest.as_str())
    );
}
