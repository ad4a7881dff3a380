//! `infra/samconfig.toml.example` is a working non-guided configuration: it sets every hub
//! parameter CloudFormation has no default for, names only parameters the template
//! declares, and its values pass the template's patterns and `Rules`.

mod common;

use common::HUB;
use ferry_infra_check::{load, read_text, render};
use serde_json::Value;

/// The `parameter_overrides` strings of the example's `[default.deploy.parameters]`, as
/// `(name, value)`: TOML basic strings (`\"` escaped) holding `Name=Value`, a value with
/// spaces or JSON in single quotes (as `sam deploy --parameter-overrides` reads them).
fn example_overrides() -> Vec<(String, String)> {
    let text = read_text("samconfig.toml.example").unwrap();
    let start = text
        .find("parameter_overrides = [")
        .expect("the example has a parameter_overrides list");
    let body = &text[start..];
    let body = &body[body.find('[').unwrap() + 1..body.find("\n]").expect("list ends with ]")];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let quoted = line.trim_end_matches(',');
            assert!(
                quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                "not a TOML string: {line}"
            );
            let item = quoted[1..quoted.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\\\", "\\");
            let (name, value) = item.split_once('=').unwrap_or_else(|| panic!("{item}"));
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_samconfig_example_sets_every_parameter_without_a_default() {
    let doc = load(HUB).unwrap();
    let overrides = example_overrides();
    let given: Vec<&str> = overrides.iter().map(|(n, _)| n.as_str()).collect();
    let declared = doc["Parameters"].as_object().unwrap();
    let required: Vec<&String> = declared
        .iter()
        .filter(|(_, decl)| decl.get("Default").is_none())
        .map(|(name, _)| name)
        .collect();
    assert!(
        required.iter().any(|n| *n == "SourceRepositoryArns"),
        "the hub has parameters without a default"
    );
    for name in &required {
        assert!(
            given.contains(&name.as_str()),
            "{name} has no default and is missing from infra/samconfig.toml.example: a non-guided deploy from it fails"
        );
    }
    for name in &given {
        assert!(
            declared.contains_key(*name),
            "the example sets {name}, which the hub does not declare"
        );
    }
    // The values pass the template's AllowedPattern/AllowedValues and its Rules.
    let pairs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let r = render(&doc, &pairs).unwrap();
    assert_eq!(r.rule_failures, Vec::<String>::new());
    // ReplicationConfig is JSON the functions can read.
    let config = &overrides
        .iter()
        .find(|(n, _)| n == "ReplicationConfig")
        .expect("the example sets ReplicationConfig (or ExistingConfigParameterName)")
        .1;
    let parsed: Value = serde_json::from_str(config).unwrap();
    assert!(parsed["rules"].is_array(), "{config}");
}
