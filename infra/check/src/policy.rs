//! A small evaluator of IAM policy statements, enough to ask of a rendered resource policy
//! "does this statement apply to this request?" for the condition operators Ferry's
//! templates use. Anything it does not understand is an error, never a silent "no".

use serde_json::Value;

use crate::{Error, as_list, err};

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An IAM principal; for a role session, `aws:PrincipalArn` is the role's ARN.
    Aws(String),
    /// An AWS service principal (`events.amazonaws.com`); it has no `aws:PrincipalArn`.
    Service(String),
}

/// One request to evaluate a statement against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The caller.
    pub caller: Caller,
    /// The IAM action, e.g. `sqs:SendMessage`.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
}

impl Request {
    /// A request by an IAM principal.
    pub fn by(principal_arn: &str, action: &str, resource: &str) -> Request {
        Request {
            caller: Caller::Aws(principal_arn.to_owned()),
            action: action.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// A request by an AWS service principal.
    pub fn by_service(service: &str, action: &str, resource: &str) -> Request {
        Request {
            caller: Caller::Service(service.to_owned()),
            action: action.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// The value of a global condition key for this request, if it has one.
    fn key(&self, key: &str) -> Result<Option<&str>, Error> {
        match key {
            "aws:PrincipalArn" => Ok(match &self.caller {
                Caller::Aws(arn) => Some(arn),
                Caller::Service(_) => None,
            }),
            other => err(format!("condition key {other} is not modelled")),
        }
    }
}

/// `*` and `?` wildcards, as in IAM string and ARN patterns (case-sensitive).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// `ArnLike` / `ArnEquals`: each of the six colon-separated parts matched on its own.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

/// Replaces every value equal to one of `known` (e.g. a `Fn::GetAtt` of a role's `Arn`)
/// with the given string, so statements can be evaluated for concrete ARNs.
pub fn substitute(v: &Value, known: &[(Value, &str)]) -> Value {
    if let Some((_, s)) = known.iter().find(|(k, _)| k == v) {
        return Value::String((*s).to_owned());
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, known)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, i)| (k.clone(), substitute(i, known)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, Error> {
    as_list(v)
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error(format!("{what} holds a non-string (unresolved?): {i}")))
        })
        .collect()
}

fn principal_matches(principal: &Value, caller: &Caller) -> Result<bool, Error> {
    if principal == &Value::String("*".into()) {
        return Ok(true);
    }
    let Some(map) = principal.as_object() else {
        return err(format!("unsupported Principal {principal}"));
    };
    for (kind, values) in map {
        let values = strings(values, "Principal")?;
        let hit = match (kind.as_str(), caller) {
            ("AWS", Caller::Aws(arn)) => values.iter().any(|v| v == "*" || arn_like(v, arn)),
            ("Service", Caller::Service(s)) => values.iter().any(|v| v == s),
            ("AWS" | "Service", _) => false,
            (other, _) => return err(format!("unsupported principal type {other}")),
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One condition operator over one key: true when the condition holds.
fn condition_holds(op: &str, key: &str, values: &Value, req: &Request) -> Result<bool, Error> {
    let values = strings(values, op)?;
    let actual = req.key(key)?;
    let (negated, matcher): (bool, fn(&str, &str) -> bool) = match op {
        "ArnEquals" | "ArnLike" => (false, arn_like),
        "ArnNotEquals" | "ArnNotLike" => (true, arn_like),
        "StringEquals" => (false, |p, a| p == a),
        "StringNotEquals" => (true, |p, a| p == a),
        "StringLike" => (false, glob),
        "StringNotLike" => (true, glob),
        other => return err(format!("condition operator {other} is not modelled")),
    };
    // A missing key: positive operators are false, negated ones true (IAM's rule).
    let Some(actual) = actual else {
        return Ok(negated);
    };
    let any = values.iter().any(|p| matcher(p, actual));
    Ok(any != negated)
}

/// Whether `st` applies to `req`: its principal, action, resource and every condition
/// match. The caller reads `st["Effect"]` to know whether it allows or denies.
pub fn applies(st: &Value, req: &Request) -> Result<bool, Error> {
    if st.get("NotAction").is_some()
        || st.get("NotResource").is_some()
        || st.get("NotPrincipal").is_some()
    {
        return err(format!("Not* elements are not modelled: {st}"));
    }
    let principal = st
        .get("Principal")
        .ok_or_else(|| Error(format!("resource policy statement without Principal: {st}")))?;
    if !principal_matches(principal, &req.caller)? {
        return Ok(false);
    }
    let actions = strings(st.get("Action").unwrap_or(&Value::Null), "Action")?;
    if !actions.iter().any(|a| glob(a, &req.action)) {
        return Ok(false);
    }
    let resources = strings(st.get("Resource").unwrap_or(&Value::Null), "Resource")?;
    if !resources
        .iter()
        .any(|r| r == "*" || arn_like(r, &req.resource))
    {
        return Ok(false);
    }
    for (op, keys) in st
        .get("Condition")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (key, values) in keys.as_object().into_iter().flatten() {
            if !condition_holds(op, key, values, req)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Whether an identity policy (the statements attached to one role) allows `action` on
/// `resource`: an `Allow` statement applies and no `Deny` does. Identity statements have
/// no `Principal`; they apply to whoever holds the role.
pub fn identity_allows(statements: &[Value], action: &str, resource: &str) -> Result<bool, Error> {
    let req = Request::by("arn:aws:iam::000000000000:role/holder", action, resource);
    let mut allowed = false;
    for st in statements {
        let mut st = st.clone();
        if let Some(m) = st.as_object_mut() {
            m.insert("Principal".into(), Value::String("*".into()));
        }
        if applies(&st, &req)? {
            match st["Effect"].as_str() {
                Some("Deny") => return Ok(false),
                Some("Allow") => allowed = true,
                other => return err(format!("unexpected Effect {other:?}")),
            }
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_like_iam() {
        assert!(glob("ferry-*", "ferry-destination-us-east-1"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("abc", "abcd"));
        assert!(arn_like(
            "arn:aws:iam::*:role/ops-*",
            "arn:aws:iam::111111111111:role/ops-admin"
        ));
        assert!(!arn_like(
            "arn:aws:iam::*:role/ops-*",
            "arn:aws:iam::111111111111:user/ops-admin"
        ));
        assert!(!arn_like("arn:aws:iam::*", "arn:aws:iam::1:role/x"));
    }

    #[test]
    fn deny_unless_listed() {
        let st = json!({
            "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:1:q",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": ["arn:aws:iam::1:role/a"]}}
        });
        let q = "arn:aws:sqs:us-east-1:1:q";
        let send = |who: &str| applies(&st, &Request::by(who, "sqs:SendMessage", q)).unwrap();
        assert!(!send("arn:aws:iam::1:role/a"));
        assert!(send("arn:aws:iam::1:role/b"));
        assert!(send("arn:aws:iam::1:root"));
        let service = Request::by_service("events.amazonaws.com", "sqs:SendMessage", q);
        assert!(applies(&st, &service).unwrap(), "no PrincipalArn: denied");
        let receive = Request::by("arn:aws:iam::1:role/b", "sqs:ReceiveMessage", q);
        assert!(!applies(&st, &receive).unwrap());
        let unknown = json!({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}});
        assert!(
            applies(&unknown, &receive).is_err(),
            "unmodelled is an error"
        );
    }
}
