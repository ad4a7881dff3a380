//! The "all features" copies `scripts/lint-infra` lints (`infra/lint-variants.yaml`):
//! checkov and cfn-lint only see the resources and statements that the parameter values
//! switch on, so together with the templates' defaults the copies must switch every
//! `Condition` of every template both on and off, and CloudFormation must accept each of
//! them (no failed `Rules` assertion).

mod common;

use std::collections::BTreeMap;

use common::{FORWARDER, TEMPLATES};
use ferry_infra_check::{Pseudo, load, read_text, render_with};
use serde_json::Value;

/// The pseudo parameters a copy is rendered with (the forwarder refuses the hub region).
fn pseudo(template: &str) -> Pseudo {
    match template {
        FORWARDER => Pseudo {
            region: "eu-west-1".into(),
            ..Pseudo::default()
        },
        _ => Pseudo::default(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn lint_variants_switch_every_condition_both_ways() {
    let variants = load("lint-variants.yaml").unwrap();
    let variants = variants.as_object().expect("a mapping of copies");
    for template in TEMPLATES {
        let doc = load(template).unwrap();
        let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        let mut record = |conditions: &BTreeMap<String, bool>| {
            for (name, value) in conditions {
                let e = seen.entry(name.clone()).or_default();
                if *value {
                    e.0 = true;
                } else {
                    e.1 = true;
                }
            }
        };
        let mine: Vec<(&String, Vec<(String, String)>)> = variants
            .iter()
            .filter(|(_, v)| v["template"] == Value::String(template.into()))
            .map(|(copy, v)| {
                let params = v["parameters"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{copy}: no parameters"))
                    .iter()
                    .map(|(k, v)| (k.clone(), scalar(v)))
                    .collect();
                (copy, params)
            })
            .collect();
        assert!(!mine.is_empty(), "{template} has no lint copy");
        for (copy, params) in &mine {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = render_with(&doc, &pairs, &pseudo(template))
                .unwrap_or_else(|e| panic!("{copy}: {e}"));
            assert_eq!(
                r.rule_failures,
                Vec::<String>::new(),
                "{copy}: CloudFormation would refuse these parameters"
            );
            record(&r.conditions);
        }
        // The template itself is linted with its defaults (the parameters without one
        // taken from the first copy).
        let declared = doc["Parameters"].as_object().unwrap();
        let required: Vec<(&str, &str)> = mine[0]
            .1
            .iter()
            .filter(|(k, _)| declared[k.as_str()].get("Default").is_none())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let defaults = render_with(&doc, &required, &pseudo(template)).unwrap();
        record(&defaults.conditions);
        let names: Vec<&String> = doc
            .get("Conditions")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        for name in names {
            let (on, off) = seen.get(name).copied().unwrap_or_default();
            assert!(
                on,
                "{template}: no lint copy switches {name} on: its statements are never linted"
            );
            assert!(
                off,
                "{template}: neither the defaults nor a lint copy switch {name} off"
            );
        }
    }
}

#[test]
fn lint_infra_lints_the_variants_file() {
    let script = std::fs::read_to_string(common::repo_root().join("scripts/lint-infra")).unwrap();
    assert!(
        script.contains("infra/lint-variants.yaml"),
        "scripts/lint-infra must write its all-features copies from infra/lint-variants.yaml"
    );
    // Every copy's parameters exist in its template (a typo would lint nothing new).
    let variants = load("lint-variants.yaml").unwrap();
    for (copy, v) in variants.as_object().unwrap() {
        let template = v["template"].as_str().unwrap();
        let doc = load(template).unwrap();
        for name in v["parameters"].as_object().unwrap().keys() {
            assert!(
                doc["Parameters"].get(name).is_some(),
                "{copy}: {template} has no parameter {name}"
            );
        }
    }
    assert!(
        read_text("lint-variants.yaml")
            .unwrap()
            .contains("Not a CloudFormation template")
    );
}
