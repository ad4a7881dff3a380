//! The failure ledger's table asserted as data: on demand, with its TTL attribute, keys
//! `pk`/`sk`, encrypted with DynamoDB's default key, named to replicate and reconcile; and
//! each role's DynamoDB actions exactly those it uses, on that table only.

mod common;

use common::*;
use ferry_infra_check::{get_att, iam_statements};
use serde_json::{Value, json};

#[test]
fn the_ledger_table_is_on_demand_with_a_ttl() {
    let r = hub(&[]);
    let table = r.props("LedgerTable");
    assert_eq!(table["BillingMode"], json!("PAY_PER_REQUEST"));
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": "expiresAt", "Enabled": true})
    );
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    assert_eq!(
        table.get("SSESpecification"),
        None,
        "DynamoDB's default key"
    );
    assert_eq!(table.get("ProvisionedThroughput"), None);
}

/// Every DynamoDB action of a role, with its resources.
fn dynamodb_actions(role: &str) -> Vec<(String, Value)> {
    let r = hub(HUB_ALL);
    let mut out = Vec::new();
    for (origin, st) in iam_statements(&r) {
        if origin.split('/').next() != Some(role) {
            continue;
        }
        let actions = match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for a in actions.into_iter().filter(|a| a.starts_with("dynamodb:")) {
            out.push((a, st["Resource"].clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn each_role_has_exactly_its_ledger_calls_on_the_ledger_table() {
    let table = get_att("LedgerTable", "Arn");
    let on_table = |actions: &[&str]| -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = actions
            .iter()
            .map(|a| (a.to_string(), table.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        dynamodb_actions("ReplicateRole"),
        on_table(&[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem"
        ])
    );
    assert_eq!(
        dynamodb_actions("ReconcileRole"),
        on_table(&["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem"])
    );
    assert_eq!(dynamodb_actions("DispatchRole"), Vec::new());
}
