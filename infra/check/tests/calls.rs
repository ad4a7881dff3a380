//! Every call granted: each AWS call of `infra/check/calls.json` (the calls the engine and
//! the functions make, with the role and a resource) is allowed by that role's rendered
//! statements, and removing the statement that grants it makes this check name the action.

mod common;

use common::*;
use ferry_infra_check::policy::{identity_allows, substitute};
use ferry_infra_check::{Rendered, get_att, iam_statements, load, render};
use serde_json::{Value, json};

/// The four actions the engine called and no statement granted before.
const NEW_ACTIONS: [&str; 4] = [
    "ecr:UpdateImageStorageClass",
    "ecr:ListImageReferrers",
    "ecr:GetSigningConfiguration",
    "ecr:DescribePullThroughCacheRules",
];

/// The `Fn::GetAtt` ARNs of the hub, as the calls table writes them.
fn known() -> Vec<(Value, &'static str)> {
    let log = |id: &str, f: &'static str| (get_att(id, "Arn"), f);
    vec![
        (
            get_att("JobsQueue", "Arn"),
            "arn:aws:sqs:us-east-1:111111111111:ferry-jobs.fifo",
        ),
        (
            get_att("EventsDeadLetterQueue", "Arn"),
            "arn:aws:sqs:us-east-1:111111111111:ferry-events-dlq",
        ),
        (
            get_att("ResultEventBus", "Arn"),
            "arn:aws:events:us-east-1:111111111111:event-bus/ferry-results",
        ),
        (
            get_att("LedgerTable", "Arn"),
            "arn:aws:dynamodb:us-east-1:111111111111:table/ferry-ledger",
        ),
        log(
            "DispatchLogGroup",
            "arn:aws:logs:us-east-1:111111111111:log-group:/ferry/ferry/dispatch:*",
        ),
        log(
            "ReplicateLogGroup",
            "arn:aws:logs:us-east-1:111111111111:log-group:/ferry/ferry/replicate:*",
        ),
        log(
            "ReconcileLogGroup",
            "arn:aws:logs:us-east-1:111111111111:log-group:/ferry/ferry/reconcile:*",
        ),
    ]
}

fn stack(name: &str) -> Rendered {
    match name {
        "hub" => hub(HUB_ALL),
        "hub-organization-role" => hub_org_role(),
        "hub-organization-direct" => hub_org_direct(),
        "destination" => destination(DEST_ALL),
        "organization-reader" => org_reader(&[]),
        other => panic!("calls.json: unknown stack {other}"),
    }
}

fn calls() -> Vec<Value> {
    let text = std::fs::read_to_string(ferry_infra_check::infra_dir().join("check/calls.json"))
        .expect("infra/check/calls.json");
    let doc: Value = serde_json::from_str(&text).expect("calls.json is JSON");
    doc["calls"].as_array().expect("calls").clone()
}

/// The statements of `role` in `r`, with the known ARNs substituted.
fn role_statements(r: &Rendered, role: &str) -> Vec<(String, Value)> {
    let known = known();
    iam_statements(r)
        .into_iter()
        .filter(|(origin, _)| origin.split('/').next() == Some(role))
        .map(|(origin, st)| (origin, substitute(&st, &known)))
        .collect()
}

/// Every call of the table the statements (given per stack and role) do not allow.
fn denied_calls(
    calls: &[Value],
    statements: impl Fn(&str, &str) -> Vec<(String, Value)>,
) -> Vec<String> {
    let mut denied = Vec::new();
    for call in calls {
        let field = |k: &str| call[k].as_str().unwrap_or_else(|| panic!("{call}: no {k}"));
        let (stack, role, action, resource) = (
            field("stack"),
            field("role"),
            field("action"),
            field("resource"),
        );
        let sts: Vec<Value> = statements(stack, role)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        match identity_allows(&sts, action, resource) {
            Ok(true) => {}
            Ok(false) => denied.push(format!("{stack} {role}: {action} on {resource}")),
            Err(e) => denied.push(format!("{stack} {role}: {action}: {e}")),
        }
    }
    denied
}

#[test]
fn every_call_the_code_makes_is_granted_to_the_role_that_makes_it() {
    let calls = calls();
    assert!(calls.len() > 50, "calls.json lists {} calls", calls.len());
    for call in &calls {
        assert!(
            call["where"].as_str().is_some_and(|w| !w.is_empty()),
            "{call}: where in the code?"
        );
    }
    let denied = denied_calls(&calls, |stack_name, role| {
        role_statements(&stack(stack_name), role)
    });
    assert_eq!(denied, Vec::<String>::new());
    // The four calls no statement used to grant are in the table.
    for action in NEW_ACTIONS {
        assert!(
            calls.iter().any(|c| c["action"] == json!(action)),
            "{action} missing from calls.json"
        );
    }
}

/// The check can fail: without the statement that grants a call, the call is reported,
/// by its action.
#[test]
fn removing_a_granting_statement_names_the_action() {
    let calls = calls();
    for call in &calls {
        let (stack_name, role, action) = (
            call["stack"].as_str().unwrap(),
            call["role"].as_str().unwrap(),
            call["action"].as_str().unwrap(),
        );
        let resource = call["resource"].as_str().unwrap();
        let r = stack(stack_name);
        let all = role_statements(&r, role);
        let granting: Vec<usize> = (0..all.len())
            .filter(|i| identity_allows(&[all[*i].1.clone()], action, resource).unwrap_or(false))
            .collect();
        assert!(!granting.is_empty(), "{call}: no statement grants it");
        let without: Vec<(String, Value)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !granting.contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        let denied = denied_calls(std::slice::from_ref(call), |_, _| without.clone());
        assert_eq!(denied.len(), 1, "{call}");
        assert!(denied[0].contains(action), "{}", denied[0]);
    }
}

/// The old hub (before the four actions were granted) fails the table, naming them.
#[test]
fn the_table_fails_on_statements_without_the_new_actions() {
    let mut doc = load(HUB).unwrap();
    let text = serde_json::to_string(&doc).unwrap();
    let stripped = NEW_ACTIONS.iter().fold(text, |t, a| {
        t.replace(&format!("\"{a}\""), "\"ecr:DescribeImages\"")
    });
    doc = serde_json::from_str(&stripped).unwrap();
    let params = with(&[("SourceRepositoryArns", SOURCE_REPOS)], HUB_ALL);
    let old = render(&doc, &params).unwrap();
    let hub_calls: Vec<Value> = calls()
        .into_iter()
        .filter(|c| c["stack"] == json!("hub"))
        .collect();
    let denied = denied_calls(&hub_calls, |_, role| role_statements(&old, role));
    for action in NEW_ACTIONS {
        assert!(
            denied.iter().any(|d| d.contains(action)),
            "{action} not reported: {denied:?}"
        );
    }
}

/// The ECR actions reconcile makes at a destination through its read role (`readRoleArn`):
/// listings, manifests and blobs (GET and HEAD), referrers, the registry login and the
/// managed signing configuration.
const DESTINATION_READS: [&str; 9] = [
    "ecr:DescribeImages",
    "ecr:ListImages",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeRepositories",
    "ecr:GetAuthorizationToken",
    "ecr:GetSigningConfiguration",
    "ecr:ListImageReferrers",
];

/// Reconcile reads destinations through their read role: the table has its
/// `sts:AssumeRole` of a read role (and of no write role), the destination's read role
/// grants every ECR read it makes there, and every ECR action reconcile makes at a
/// destination with its own role is one of them too.
#[test]
fn reconcile_reads_destinations_through_the_read_role() {
    let calls = calls();
    let field = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_owned();
    let reconcile_sts: Vec<String> = calls
        .iter()
        .filter(|c| field(c, "role") == "ReconcileRole" && field(c, "action") == "sts:AssumeRole")
        .map(|c| field(c, "resource"))
        .collect();
    assert!(
        reconcile_sts.contains(&DEST_READ_ROLE.to_owned()),
        "calls.json: reconcile's sts:AssumeRole of the read role: {reconcile_sts:?}"
    );
    assert!(!reconcile_sts.contains(&DEST_WRITE_ROLE.to_owned()));
    let read_role = role_statements(&stack("destination"), "ReadRole");
    let read_role: Vec<Value> = read_role.into_iter().map(|(_, s)| s).collect();
    let repo = "arn:aws:ecr:us-east-1:111111111111:repository/golden/app";
    for action in DESTINATION_READS {
        assert!(
            calls.iter().any(|c| field(c, "stack") == "destination"
                && field(c, "role") == "ReadRole"
                && field(c, "action") == action),
            "calls.json: the read role's {action}"
        );
        let resource =
            if action == "ecr:GetAuthorizationToken" || action == "ecr:GetSigningConfiguration" {
                "*"
            } else {
                repo
            };
        assert!(
            identity_allows(&read_role, action, resource).unwrap(),
            "the destination read role does not grant {action}"
        );
    }
    // What reconcile reads at a destination with its own role, it can read through the
    // read role too.
    for c in &calls {
        if field(c, "role") == "ReconcileRole"
            && field(c, "resource").contains(":222222222222:")
            && field(c, "action").starts_with("ecr:")
        {
            let action = field(c, "action");
            assert!(
                DESTINATION_READS.contains(&action.as_str()),
                "{action}: reconcile reads it at destinations, the read role list lacks it"
            );
        }
    }
}
