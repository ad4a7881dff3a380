//! `ferry failures`: the failing images, read from result events in a CloudWatch log group
//! (moto's CloudWatch Logs), as an operator runs it after an alarm.

use ferry_e2e::Moto;
use ferry_e2e::ferry::describe;
use ferry_e2e::results::{json_line, result_event, text_line};
use ferry_e2e::run_ferry;
use serde_json::{Value, json};

const SRC: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
const DST: &str = "222222222222.dkr.ecr.eu-west-1.amazonaws.com";
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn failed(repository: &str, at: &str, code: &str, message: &str) -> Value {
    let mut r = result_event(
        (SRC, repository, "v1"),
        DIGEST,
        (DST, repository),
        "FAILED",
        at,
    );
    r["errorCode"] = json!(code);
    r["errorMessage"] = json!(message);
    r
}

#[test]
fn failures_lists_what_still_fails_with_counts_and_nothing_else() {
    let moto = Moto::start().expect("moto");
    let env = moto.aws_env();
    let group = "/ferry/hub/replicate";
    let done = |repository: &str, status: &str, at: &str| {
        result_event(
            (SRC, repository, "v1"),
            DIGEST,
            (DST, repository),
            status,
            at,
        )
    };
    moto.put_log_lines(
        group,
        "2026/03/01/[$LATEST]abc",
        &[
            "START RequestId: 1 Version: $LATEST".to_string(),
            json_line(&failed("app", "2026-03-01T10:00:00Z", "auth", "denied")),
            json_line(&failed(
                "app",
                "2026-03-01T10:15:00Z",
                "auth",
                "denied\u{1b}[2J again",
            )),
            // Failed, then succeeded: resolved.
            json_line(&failed(
                "web",
                "2026-03-01T10:00:00Z",
                "unreachable",
                "reset",
            )),
            json_line(&done("web", "SUCCEEDED", "2026-03-01T10:20:00Z")),
            // An immutable tag, in the text format.
            text_line(&done("db", "CONFLICT", "2026-03-01T10:30:00Z")),
            // A failure line that quotes a result: not a result.
            format!(
                "ERROR job failed error=\"registry said result_event={}\"",
                failed("ghost", "2026-03-01T11:00:00Z", "auth", "x")
            ),
        ],
    )
    .expect("log lines in moto");

    let out = run_ferry(
        ["failures", "--results-log-group", group, "--output", "json"],
        &env,
    )
    .expect("ferry runs");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
    let got: Vec<(&str, &str, &str, u64)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["errorCode"].as_str().unwrap(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("db", "CONFLICT", "tag-conflict", 1),
            ("app", "FAILED", "auth", 2)
        ],
        "{rows}"
    );
    assert_eq!(rows[1]["firstSeen"], "2026-03-01T10:00:00Z");
    assert_eq!(rows[1]["lastSeen"], "2026-03-01T10:15:00Z");
    assert_eq!(rows[1]["destination"], DST);
    assert_eq!(rows[1]["image"], format!("{SRC}/app:v1@{DIGEST}"));

    // Text: a line per image, the registry's message escaped.
    let out = run_ferry(["failures", "--results-log-group", group], &env).expect("ferry runs");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("FAILED") || l.starts_with("CONFLICT"))
            .count(),
        2,
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");

    // A group where everything succeeded: nothing to list, exit 0.
    let quiet = "/ferry/quiet/replicate";
    moto.put_log_lines(
        quiet,
        "s",
        &[json_line(&done("app", "SUCCEEDED", "2026-03-01T10:00:00Z"))],
    )
    .expect("log lines");
    let out = run_ferry(["failures", "--results-log-group", quiet], &env).expect("ferry runs");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failing image"));
}

/// An item of the failure ledger as replicate writes it (DynamoDB JSON).
fn ledger_item(repository: &str, count: u64, message: &str) -> Value {
    json!({
        "pk": {"S": format!("{DST}/{repository}")},
        "sk": {"S": format!("copy#{SRC}/{repository}:v1")},
        "destination": {"S": DST},
        "repository": {"S": repository},
        "action": {"S": "copy"},
        "sourceRegistry": {"S": SRC},
        "sourceRepository": {"S": repository},
        "tag": {"S": "v1"},
        "digest": {"S": DIGEST},
        "status": {"S": "FAILED"},
        "errorCode": {"S": "auth"},
        "errorMessage": {"S": message},
        "count": {"N": count.to_string()},
        "firstSeen": {"N": "1772359200"},
        "lastSeen": {"N": "1772362800"},
        "nextAttempt": {"N": "1772366400"},
        "configFingerprint": {"S": "f1"},
        "expiresAt": {"N": "1772967600"}
    })
}

#[test]
fn failures_lists_the_ledger_entries_and_skips_what_is_not_one() {
    let moto = Moto::start().expect("moto");
    let env = moto.aws_env();
    let call = |target: &str, body: Value| {
        moto.json_call(
            "dynamodb",
            &format!("DynamoDB_20120810.{target}"),
            "us-east-1",
            &body,
        )
        .expect(target)
    };
    for table in ["ferry-ledger", "empty-ledger"] {
        call(
            "CreateTable",
            json!({
                "TableName": table,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"}
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"}
                ]
            }),
        );
    }
    let mut hostile = ledger_item("web", 0, "x");
    hostile["sk"] = json!({"S": "copy#elsewhere"});
    for item in [
        ledger_item("app", 3, "denied\u{1b}[2J"),
        hostile,
        json!({"pk": {"S": "#reconcile"}, "sk": {"S": "cursor"}, "position": {"S": "x"}}),
    ] {
        call(
            "PutItem",
            json!({"TableName": "ferry-ledger", "Item": item}),
        );
    }

    let out = run_ferry(
        [
            "failures",
            "--ledger-table",
            "ferry-ledger",
            "--output",
            "json",
        ],
        &env,
    )
    .expect("ferry runs");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["repository"], "app");
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[0]["errorCode"], "auth");
    assert_eq!(rows[0]["nextAttempt"], "2026-03-01T12:00:00Z");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 items of ferry-ledger are not"),
        "{}",
        describe(&out)
    );

    let out = run_ferry(["failures", "--ledger-table", "ferry-ledger"], &env).expect("ferry runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAILED")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("next 2026-03-01T12:00:00Z"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");

    let out = run_ferry(["failures", "--ledger-table", "empty-ledger"], &env).expect("ferry runs");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failing image in the ledger"));
}
