//! One naming story: every `examples/config/*.json` destination written through the
//! destination stack uses the roles that stack creates (`AssumeRoleName` default plus
//! `-{region}` to write, `-read-{region}` to read: `roleArn` and `readRoleArn`), repositories
//! under its `RepositoryPrefix` default, and a `kmsKey` its `KmsKeyArn` pattern accepts.

mod common;

use common::*;
use ferry_infra_check::load;
use serde_json::Value;

/// Examples whose cross-account destinations are written through a registry policy
/// (`ManageRegistryPolicy=true`), not the write role: an ECR native replication
/// configuration read unchanged.
const REGISTRY_POLICY_EXAMPLES: &[&str] = &["native-replication.json"];

fn examples() -> Vec<(String, Value)> {
    let dir = repo_root().join("examples/config");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, doc)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The names the destination stack gives with its defaults.
struct Stack {
    /// `roleArn`: `arn:aws:iam::{accountId}:role/<AssumeRoleName>-{region}`.
    role: String,
    /// `readRoleArn`: `arn:aws:iam::{accountId}:role/<AssumeRoleName>-read-{region}`.
    read_role: String,
    prefix: String,
    kms: regex::Regex,
}

/// Every problem of one example against the destination stack's defaults.
fn problems(name: &str, doc: &Value, stack: &Stack) -> Vec<String> {
    let (role, read_role, prefix) = (&stack.role, &stack.read_role, &stack.prefix);
    let mut found = Vec::new();
    let source_account = doc["source"]["registryId"].as_str();
    for (r, rule) in doc["rules"].as_array().unwrap().iter().enumerate() {
        for (d, dest) in rule["destinations"].as_array().unwrap().iter().enumerate() {
            let at = format!("{name} rules[{r}].destinations[{d}]");
            let ecr = dest.get("registry").is_none();
            if !ecr || dest.get("credentialsSecretArn").is_some() {
                continue; // an OCI registry or another partition: no destination stack
            }
            let cross_account = dest.get("organizationalUnit").is_some()
                || dest.get("organization").is_some()
                || dest["registryId"].as_str() != source_account;
            match dest["roleArn"].as_str() {
                Some(arn) if arn != role => {
                    found.push(format!("{at}: roleArn {arn}, the stack creates {role}"));
                }
                None if cross_account && !REGISTRY_POLICY_EXAMPLES.contains(&name) => {
                    found.push(format!("{at}: another account without roleArn {role}"));
                }
                _ => {}
            }
            // Reconcile (and ferry plan, verify, status) read through the read role the
            // stack creates beside the write role.
            match dest["readRoleArn"].as_str() {
                Some(arn) if arn != read_role => {
                    found.push(format!(
                        "{at}: readRoleArn {arn}, the stack creates {read_role}"
                    ));
                }
                None if dest["roleArn"].as_str() == Some(role) => {
                    found.push(format!(
                        "{at}: roleArn {role} without readRoleArn {read_role}"
                    ));
                }
                _ => {}
            }
            if dest["roleArn"].is_string() {
                let under = format!("{prefix}/");
                if let Some(rename) = dest["repositoryName"].as_str()
                    && rename != "{repository}"
                    && !rename.starts_with(&under)
                {
                    found.push(format!("{at}: repositoryName {rename} outside {under}"));
                }
                let filters = rule["repositoryFilters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if filters.is_empty() {
                    found.push(format!("{at}: every repository, not only {under}*"));
                }
                for f in filters {
                    let filter = f["filter"].as_str().unwrap_or_default();
                    if !filter.starts_with(&under) {
                        found.push(format!("{at}: repository filter {filter} outside {under}"));
                    }
                }
            }
            if let Some(key) = dest["kmsKey"].as_str() {
                let rendered = key
                    .replace("{region}", dest["region"].as_str().unwrap_or("us-east-1"))
                    .replace(
                        "{accountId}",
                        dest["registryId"].as_str().unwrap_or("111111111111"),
                    );
                if !stack.kms.is_match(&rendered) {
                    found.push(format!(
                        "{at}: kmsKey {key} does not match KmsKeyArn's pattern"
                    ));
                }
            }
        }
    }
    found
}

fn stack_defaults() -> Stack {
    let doc = load(DESTINATION).unwrap();
    let p = &doc["Parameters"];
    let name = p["AssumeRoleName"]["Default"].as_str().unwrap();
    let prefix = p["RepositoryPrefix"]["Default"]
        .as_str()
        .unwrap()
        .to_owned();
    let pattern = p["KmsKeyArn"]["AllowedPattern"].as_str().unwrap();
    Stack {
        role: format!("arn:aws:iam::{{accountId}}:role/{name}-{{region}}"),
        read_role: format!("arn:aws:iam::{{accountId}}:role/{name}-read-{{region}}"),
        prefix,
        kms: regex::Regex::new(pattern).unwrap(),
    }
}

#[test]
fn every_example_uses_the_destination_stack_names() {
    let stack = stack_defaults();
    assert_eq!(stack.prefix, "golden");
    // The read role's name as the stack's ReadRole resource spells it.
    let doc = load(DESTINATION).unwrap();
    assert_eq!(
        doc["Resources"]["ReadRole"]["Properties"]["RoleName"]["Fn::Sub"],
        serde_json::json!("${AssumeRoleName}-read-${AWS::Region}")
    );
    let all = examples();
    assert!(all.len() >= 5, "{} examples", all.len());
    let found: Vec<String> = all
        .iter()
        .flat_map(|(name, doc)| problems(name, doc, &stack))
        .collect();
    assert_eq!(found, Vec::<String>::new());
    for name in REGISTRY_POLICY_EXAMPLES {
        assert!(all.iter().any(|(n, _)| n == name), "{name} is gone");
    }
}

/// The check fails on what the examples used to say.
#[test]
fn the_old_names_are_reported() {
    let stack = stack_defaults();
    let old: Value = serde_json::from_str(
        r#"{"source": {"registryId": "111122223333", "region": "us-east-1"},
            "rules": [{"repositoryFilters": [{"filter": "prod/", "filterType": "PREFIX_MATCH"}],
              "destinations": [{"region": "eu-central-1", "registryId": "999988887777",
                "repositoryName": "platform/{repository}",
                "roleArn": "arn:aws:iam::999988887777:role/ferry-dr-writer",
                "readRoleArn": "arn:aws:iam::{accountId}:role/ferry-destination-{region}",
                "kmsKey": "arn:aws:kms:eu-central-1:999988887777:alias/ecr-dr"},
               {"region": "eu-west-1", "registryId": "555566667777"},
               {"region": "us-west-2", "registryId": "555566667777",
                "roleArn": "arn:aws:iam::{accountId}:role/ferry-destination-{region}"}]}]}"#,
    )
    .unwrap();
    let found = problems("old.json", &old, &stack);
    for needle in [
        "roleArn arn:aws:iam::999988887777:role/ferry-dr-writer",
        "repositoryName platform/{repository}",
        "repository filter prod/",
        "kmsKey arn:aws:kms:eu-central-1:999988887777:alias/ecr-dr",
        "destinations[1]: another account without roleArn",
        "readRoleArn arn:aws:iam::{accountId}:role/ferry-destination-{region}, the stack creates",
        "destinations[2]: roleArn arn:aws:iam::{accountId}:role/ferry-destination-{region} without readRoleArn",
    ] {
        assert!(
            found.iter().any(|f| f.contains(needle)),
            "{needle}: {found:#?}"
        );
    }
}
