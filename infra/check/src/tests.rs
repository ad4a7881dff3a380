//! Unit tests of rendering and of event pattern matching.

use super::*;
use serde_json::json;

fn doc() -> Value {
    json!({
        "Parameters": {
            "Name": {"Type": "String", "Default": ""},
            "List": {"Type": "CommaDelimitedList", "Default": ""},
            "Size": {"Type": "Number", "Default": 3, "AllowedValues": [3, 6]}
        },
        "Conditions": {
            "HasName": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Name"}, ""]}]},
            "HasList": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "List"}]}, ""]}]}
        },
        "Mappings": {"Sizes": {"3": {"Double": 6}, "6": {"Double": 12}}},
        "Resources": {
            "A": {"Type": "T", "Condition": "HasName", "Properties": {"N": {"Ref": "Name"}}},
            "B": {"Type": "T", "Properties": {
                "L": {"Fn::If": ["HasList", {"Ref": "List"}, {"Ref": "AWS::NoValue"}]},
                "S": {"Fn::Sub": "arn:${AWS::Partition}:x:${AWS::Region}:${Name}:${A.Arn}"},
                "D": {"Fn::FindInMap": ["Sizes", {"Ref": "Size"}, "Double"]},
                "R": {"Ref": "A"}
            }}
        }
    })
}

#[test]
fn defaults_drop_conditional_parts() {
    let r = render(&doc(), &[]).unwrap();
    assert!(r.resource("A").is_none());
    assert_eq!(r.props("B").get("L"), None);
    assert_eq!(r.props("B")["D"], json!(6));
    assert_eq!(r.props("B")["R"], json!({"Ref": "A"}));
    assert_eq!(
        r.props("B")["S"],
        json!({"Fn::Sub": "arn:aws:x:us-east-1::${A.Arn}"})
    );
}

#[test]
fn overrides_reach_conditions_lists_and_mappings() {
    let r = render(&doc(), &[("Name", "n"), ("List", "a,b"), ("Size", "6")]).unwrap();
    assert_eq!(r.props("A")["N"], json!("n"));
    assert_eq!(r.props("B")["L"], json!(["a", "b"]));
    assert_eq!(r.props("B")["D"], json!(12));
    assert!(
        render(&doc(), &[("Size", "4")]).is_err(),
        "AllowedValues are enforced"
    );
    assert!(
        render(&doc(), &[("Nope", "x")]).is_err(),
        "unknown parameters are refused"
    );
}

#[test]
fn allowed_patterns_and_rules_are_enforced() {
    let doc = json!({
        "Parameters": {
            "Arns": {"Type": "CommaDelimitedList", "AllowedPattern": "^arn:aws:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$"},
            "Mode": {"Type": "String", "Default": "a", "AllowedValues": ["a", "b"]},
            "Name": {"Type": "String", "Default": ""}
        },
        "Rules": {
            "NameWithB": {
                "RuleCondition": {"Fn::Contains": [["b"], {"Ref": "Mode"}]},
                "Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Name"}, ""]}]}, "AssertDescription": "b needs a Name"}]
            }
        },
        "Resources": {}
    });
    let repo = "arn:aws:ecr:us-east-1:111111111111:repository/team/*";
    let r = render(&doc, &[("Arns", repo)]).unwrap();
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let two = format!("{repo},arn:aws:ecr:eu-west-1:111111111111:repository/x");
    assert!(render(&doc, &[("Arns", &two)]).is_ok());
    for bad in [
        "",
        "*",
        "arn:aws:ecr:us-east-1:*:repository/x",
        &format!("{repo},"),
    ] {
        assert!(render(&doc, &[("Arns", bad)]).is_err(), "{bad:?}");
    }
    let r = render(&doc, &[("Arns", repo), ("Mode", "b")]).unwrap();
    assert_eq!(r.rule_failures, vec!["b needs a Name"]);
    let r = render(&doc, &[("Arns", repo), ("Mode", "b"), ("Name", "n")]).unwrap();
    assert_eq!(r.rule_failures, Vec::<String>::new());
}

#[test]
fn pattern_matching_is_exact() {
    let p = json!({"source": ["aws.ecr"], "detail": {"result": ["SUCCESS"]}});
    assert!(pattern_matches(
        &p,
        &json!({"source": "aws.ecr", "detail": {"result": "SUCCESS", "x": 1}})
    ));
    assert!(!pattern_matches(
        &p,
        &json!({"source": "aws.ecr", "detail": {"result": "FAILURE"}})
    ));
    assert!(!pattern_matches(&p, &json!({"source": "aws.ecr"})));
}
