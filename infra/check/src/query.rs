//! Reading a rendered template: the values `Fn::GetAtt` and `Ref` render to, IAM policy
//! statements and their actions, EventBridge event patterns.

use serde_json::Value;

use crate::Rendered;

/// `{"Fn::GetAtt": [id, attribute]}`.
pub fn get_att(id: &str, attribute: &str) -> Value {
    serde_json::json!({ "Fn::GetAtt": [id, attribute] })
}

/// `{"Ref": id}`.
pub fn reference(id: &str) -> Value {
    serde_json::json!({ "Ref": id })
}

/// A value or list of values as a list (IAM `Action` and `Resource` accept both).
pub fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// Every policy statement of a rendered template, with where it comes from
/// (`<resource>/<policy>` or `<resource>`): `AWS::IAM::Role` inline policies,
/// `AWS::IAM::Policy` / `AWS::IAM::ManagedPolicy` documents, and the resource policies
/// `AWS::SQS::QueuePolicy` and `AWS::ECR::RegistryPolicy`.
pub fn iam_statements(rendered: &Rendered) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, res) in rendered
        .doc
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let kind = res.get("Type").and_then(Value::as_str).unwrap_or_default();
        let props = res.get("Properties").cloned().unwrap_or(Value::Null);
        let mut docs: Vec<(String, Value)> = Vec::new();
        match kind {
            "AWS::IAM::Role" => {
                for p in props
                    .get("Policies")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = p.get("PolicyName").and_then(Value::as_str).unwrap_or("?");
                    docs.push((
                        format!("{id}/{name}"),
                        p.get("PolicyDocument").cloned().unwrap_or(Value::Null),
                    ));
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::SQS::QueuePolicy" => {
                docs.push((
                    id.clone(),
                    props.get("PolicyDocument").cloned().unwrap_or(Value::Null),
                ));
            }
            "AWS::ECR::RegistryPolicy" => {
                docs.push((
                    id.clone(),
                    props.get("PolicyText").cloned().unwrap_or(Value::Null),
                ));
            }
            _ => {}
        }
        for (origin, doc) in docs {
            for st in doc.get("Statement").map(as_list).unwrap_or_default() {
                out.push((origin.clone(), st));
            }
        }
    }
    out
}

/// The statement with `Sid` `sid` of the inline policy `policy` of role `role`.
pub fn statement<'a>(
    statements: &'a [(String, Value)],
    role: &str,
    sid: &str,
) -> Option<&'a Value> {
    statements
        .iter()
        .filter(|(origin, _)| origin.split('/').next() == Some(role))
        .map(|(_, st)| st)
        .find(|st| st.get("Sid").and_then(Value::as_str) == Some(sid))
}

/// The actions of a statement, sorted.
pub fn actions(st: &Value) -> Vec<String> {
    let mut a: Vec<String> = st
        .get("Action")
        .map(as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    a.sort();
    a
}

/// Matches an event against an EventBridge event pattern made of exact values (the only
/// form Ferry's rules use): every pattern field must be present in the event with one of
/// the listed values, nested objects recursively.
pub fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(key, expected)| {
        let Some(actual) = event.get(key) else {
            return false;
        };
        match expected {
            Value::Array(values) => values.iter().any(|v| v == actual),
            Value::Object(_) => pattern_matches(expected, actual),
            _ => false,
        }
    })
}
