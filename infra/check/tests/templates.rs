//! Property tests of Ferry's CloudFormation templates as text: long form (no short tags),
//! no account ID, the SAM transform where it belongs, and a reason for every checkov skip.
//!
//! The templates asserted as data, rendered for given parameter values by
//! `ferry_infra_check::render`, are in the files beside this one, by subject: `queues.rs`,
//! `functions.rs`, `observability.rs`, `iam.rs`, `forwarder.rs` (and `guide.rs` for what
//! docs/deploy.md says of them). They compare exact values so that a changed queue setting,
//! a widened IAM action or a lost alarm fails.

mod common;

use std::collections::BTreeSet;

use common::*;
use ferry_infra_check::{load, read_text};
use serde_json::{Value, json};

#[test]
fn templates_are_long_form_and_name_no_account() {
    for name in TEMPLATES {
        let text = read_text(name).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split(" #").next().unwrap_or_default();
            assert!(
                !code.contains(": !")
                    && !code.trim_start().starts_with("- !")
                    && !code.contains(" !Ref"),
                "{name}:{}: short-form tag: {line}",
                n + 1
            );
            // No hard-coded 12-digit account ID anywhere (patterns use [0-9]{12}).
            let digits: Vec<&str> = code
                .split(|c: char| !c.is_ascii_digit())
                .filter(|run| run.len() == 12)
                .collect();
            assert!(
                digits.is_empty(),
                "{name}:{}: account ID in template: {line}",
                n + 1
            );
        }
        let doc = load(name).unwrap();
        assert_eq!(
            doc["AWSTemplateFormatVersion"],
            json!("2010-09-09"),
            "{name}"
        );
    }
    assert_eq!(
        load(HUB).unwrap()["Transform"],
        json!("AWS::Serverless-2016-10-31")
    );
    assert_eq!(
        load(DESTINATION).unwrap().get("Transform"),
        None,
        "StackSets: plain CloudFormation"
    );
    assert_eq!(load(FORWARDER).unwrap().get("Transform"), None);
}

#[test]
fn every_checkov_skip_has_a_reason() {
    let mut skipped = BTreeSet::new();
    for name in TEMPLATES {
        let doc = load(name).unwrap();
        for (id, res) in doc["Resources"].as_object().unwrap() {
            for skip in res
                .pointer("/Metadata/checkov/skip")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let check = skip["id"].as_str().unwrap_or_default();
                let comment = skip["comment"].as_str().unwrap_or_default();
                assert!(check.starts_with("CKV_"), "{name}/{id}: {skip}");
                assert!(
                    comment.len() > 40,
                    "{name}/{id}: skip of {check} needs a real reason"
                );
                skipped.insert(format!("{id}:{check}"));
            }
            // The one cfn-lint waiver: W3037 (unknown action) for ecr:ListImageReferrers,
            // which cfn-lint's IAM action list lacks; docs/deploy.md section 10 says why.
            if let Some(waiver) = res.pointer("/Metadata/cfn-lint") {
                assert_eq!(
                    waiver.pointer("/config/ignore_checks"),
                    Some(&json!(["W3037"])),
                    "{name}/{id}: cfn-lint waivers belong in docs"
                );
                let policies = serde_json::to_string(&res["Properties"]["Policies"]).unwrap();
                assert!(policies.contains("ecr:ListImageReferrers"), "{name}/{id}");
                skipped.insert(format!("{id}:W3037"));
            }
        }
    }
    assert_eq!(
        skipped,
        BTreeSet::from([
            "AlarmTopic:CKV_AWS_26".to_owned(),
            "AssumeRole:W3037".to_owned(),
            "LedgerTable:CKV_AWS_119".to_owned(),
            "LedgerTable:CKV_AWS_28".to_owned(),
            "ReadRole:W3037".to_owned(),
            "ReplicateFunction:CKV_AWS_116".to_owned()
        ])
    );
    assert!(
        guide().contains("**W3037**"),
        "docs/deploy.md explains W3037"
    );

    // Global skips: each id in skip-check is preceded by a comment giving the reason.
    let text = read_text(".checkov.yaml").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut global = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = line.trim().strip_prefix("- CKV_") {
            assert!(
                lines[i - 1].trim_start().starts_with('#'),
                ".checkov.yaml: CKV_{id} has no reason above it"
            );
            global.push(format!("CKV_{id}"));
        }
    }
    assert_eq!(
        global,
        strings(&["CKV_AWS_27", "CKV_AWS_158", "CKV_AWS_115", "CKV_AWS_173"])
    );
}
