//! Amazon ECR lifecycle policy validation.

use serde_json::Value;

/// Checks an Amazon ECR lifecycle policy document against the rules of the ECR user guide
/// (lifecycle policy parameters); returns every problem found.
pub fn lifecycle_policy_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(top) = doc.as_object() else {
        return vec!["policy is not an object".into()];
    };
    for k in top.keys() {
        if k != "rules" {
            problems.push(format!("unknown top-level key {k}"));
        }
    }
    let Some(rules) = top.get("rules").and_then(Value::as_array) else {
        problems.push("rules is missing or not an array".into());
        return problems;
    };
    if rules.is_empty() {
        problems.push("rules is empty".into());
    }
    let mut priorities = Vec::new();
    let mut any_priority = None;
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        let Some(rule) = rule.as_object() else {
            problems.push(format!("{at} is not an object"));
            continue;
        };
        for k in rule.keys() {
            if !["rulePriority", "description", "selection", "action"].contains(&k.as_str()) {
                problems.push(format!("{at}: unknown key {k}"));
            }
        }
        match rule.get("rulePriority").and_then(Value::as_u64) {
            Some(p) if p >= 1 => {
                if priorities.contains(&p) {
                    problems.push(format!("{at}: rulePriority {p} is not unique"));
                }
                priorities.push(p);
            }
            _ => problems.push(format!("{at}: rulePriority must be an integer >= 1")),
        }
        if let Some(d) = rule.get("description")
            && !d.is_string()
        {
            problems.push(format!("{at}: description must be a string"));
        }
        match rule.get("action").and_then(Value::as_object) {
            Some(action) => {
                if action.get("type").and_then(Value::as_str) != Some("expire") {
                    problems.push(format!("{at}: action.type must be \"expire\""));
                }
            }
            None => problems.push(format!("{at}: action is missing")),
        }
        let Some(sel) = rule.get("selection").and_then(Value::as_object) else {
            problems.push(format!("{at}: selection is missing"));
            continue;
        };
        for k in sel.keys() {
            if ![
                "tagStatus",
                "tagPrefixList",
                "tagPatternList",
                "countType",
                "countUnit",
                "countNumber",
            ]
            .contains(&k.as_str())
            {
                problems.push(format!("{at}: unknown selection key {k}"));
            }
        }
        let tag_status = sel.get("tagStatus").and_then(Value::as_str);
        let lists = ["tagPrefixList", "tagPatternList"]
            .iter()
            .filter(|k| {
                sel.get(**k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            })
            .count();
        match tag_status {
            Some("tagged") => {
                if lists != 1 {
                    problems.push(format!(
                        "{at}: tagged needs exactly one of tagPrefixList, tagPatternList"
                    ));
                }
            }
            Some("untagged" | "any") => {
                if sel.contains_key("tagPrefixList") || sel.contains_key("tagPatternList") {
                    problems.push(format!("{at}: tag lists only go with tagStatus tagged"));
                }
                if tag_status == Some("any") {
                    any_priority = rule.get("rulePriority").and_then(Value::as_u64);
                }
            }
            _ => problems.push(format!("{at}: tagStatus must be tagged, untagged or any")),
        }
        match sel.get("countType").and_then(Value::as_str) {
            Some("sinceImagePushed") => {
                if sel.get("countUnit").and_then(Value::as_str) != Some("days") {
                    problems.push(format!("{at}: sinceImagePushed needs countUnit \"days\""));
                }
            }
            Some("imageCountMoreThan") => {
                if sel.contains_key("countUnit") {
                    problems.push(format!("{at}: imageCountMoreThan takes no countUnit"));
                }
            }
            _ => problems.push(format!(
                "{at}: countType must be imageCountMoreThan or sinceImagePushed"
            )),
        }
        if sel
            .get("countNumber")
            .and_then(Value::as_u64)
            .is_none_or(|n| n < 1)
        {
            problems.push(format!("{at}: countNumber must be an integer >= 1"));
        }
    }
    if let Some(p) = any_priority
        && priorities.iter().any(|q| *q > p)
    {
        problems.push("the tagStatus any rule must have the highest rulePriority".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifecycle_validator_finds_problems() {
        let bad = json!({"rules": [
            {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "countType": "sinceImagePushed", "countNumber": 0}, "action": {"type": "delete"}}
        ]});
        assert_eq!(
            lifecycle_policy_problems(&bad),
            vec![
                "rules[1]: rulePriority 1 is not unique",
                "rules[1]: action.type must be \"expire\"",
                "rules[1]: tagged needs exactly one of tagPrefixList, tagPatternList",
                "rules[1]: sinceImagePushed needs countUnit \"days\"",
                "rules[1]: countNumber must be an integer >= 1",
            ]
        );
        let any_first = json!({"rules": [
            {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]});
        assert_eq!(
            lifecycle_policy_problems(&any_first),
            vec!["the tagStatus any rule must have the highest rulePriority"]
        );
    }
}
