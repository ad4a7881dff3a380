//! What depends on parameters only, evaluated: `Conditions` and `Rules`, `Fn::If`, `Ref` to
//! parameters and pseudo parameters, `AWS::NoValue`, `Fn::FindInMap`, `Fn::Join` of known
//! strings and the parameter variables of `Fn::Sub`. What depends on resources is left as
//! written.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::rendering::{Param, Pseudo};
use crate::{Error, err};

/// The state of one rendering: the parameters' values and the conditions evaluated so far.
pub(crate) struct Ctx<'a> {
    pub(crate) doc: &'a Value,
    pub(crate) params: BTreeMap<String, Param>,
    pub(crate) pseudo: Pseudo,
    pub(crate) conditions: BTreeMap<String, bool>,
}

impl Ctx<'_> {
    /// The `AssertDescription` of each failed assertion of the template's `Rules`.
    pub(crate) fn rule_failures(&mut self) -> Result<Vec<String>, Error> {
        let rules = self
            .doc
            .get("Rules")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut failed = Vec::new();
        for (name, rule) in &rules {
            if let Some(cond) = rule.get("RuleCondition")
                && !self.eval_bool(cond, 0)?
            {
                continue;
            }
            for assertion in rule
                .get("Assertions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let assert = assertion
                    .get("Assert")
                    .ok_or_else(|| Error(format!("rule {name}: assertion without Assert")))?;
                if !self.eval_bool(assert, 0)? {
                    let text = assertion.get("AssertDescription").and_then(Value::as_str);
                    failed.push(text.unwrap_or(name).to_owned());
                }
            }
        }
        Ok(failed)
    }

    pub(crate) fn condition(&mut self, name: &str, depth: usize) -> Result<bool, Error> {
        if let Some(v) = self.conditions.get(name) {
            return Ok(*v);
        }
        if depth > 32 {
            return err(format!("condition {name} is circular"));
        }
        let body = self
            .doc
            .get("Conditions")
            .and_then(|c| c.get(name))
            .cloned()
            .ok_or_else(|| Error(format!("unknown condition {name}")))?;
        let v = self.eval_bool(&body, depth + 1)?;
        self.conditions.insert(name.to_owned(), v);
        Ok(v)
    }

    fn eval_bool(&mut self, v: &Value, depth: usize) -> Result<bool, Error> {
        let (f, arg) =
            single_key(v).ok_or_else(|| Error(format!("not a condition function: {v}")))?;
        match f {
            "Condition" => self.condition(arg.as_str().unwrap_or_default(), depth),
            "Fn::Not" => Ok(!self.eval_bool(nth(arg, 0)?, depth)?),
            "Fn::And" => {
                for item in arg.as_array().into_iter().flatten() {
                    if !self.eval_bool(item, depth)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for item in arg.as_array().into_iter().flatten() {
                    if self.eval_bool(item, depth)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Fn::Equals" => {
                let a = self.resolve(nth(arg, 0)?)?;
                let b = self.resolve(nth(arg, 1)?)?;
                match (a, b) {
                    (Some(Value::String(a)), Some(Value::String(b))) => Ok(a == b),
                    (a, b) => err(format!(
                        "Fn::Equals needs two known strings, got {a:?} and {b:?}"
                    )),
                }
            }
            "Fn::Contains" => {
                let list = self.resolve(nth(arg, 0)?)?;
                let item = self.resolve(nth(arg, 1)?)?;
                match (list, item) {
                    (Some(Value::Array(list)), Some(item @ Value::String(_))) => {
                        Ok(list.contains(&item))
                    }
                    (list, item) => err(format!(
                        "Fn::Contains needs a known list and string, got {list:?} and {item:?}"
                    )),
                }
            }
            other => err(format!("unsupported condition function {other}")),
        }
    }

    /// Resolves parameter-dependent intrinsics; `None` means `AWS::NoValue` (drop it).
    pub(crate) fn resolve(&mut self, v: &Value) -> Result<Option<Value>, Error> {
        if let Some((f, arg)) = single_key(v) {
            match f {
                "Ref" => {
                    let name = arg
                        .as_str()
                        .ok_or_else(|| Error(format!("Ref to a non-string: {arg}")))?;
                    if name == "AWS::NoValue" {
                        return Ok(None);
                    }
                    if let Some(p) = self.params.get(name) {
                        return Ok(Some(p.to_value()));
                    }
                    if let Some(s) = self.pseudo.get(name) {
                        return Ok(Some(Value::String(s)));
                    }
                    return Ok(Some(v.clone())); // a resource
                }
                "Fn::If" => {
                    let cond = nth(arg, 0)?
                        .as_str()
                        .ok_or_else(|| Error("Fn::If needs a condition name".into()))?;
                    let pick = if self.condition(cond, 0)? { 1 } else { 2 };
                    return self.resolve(nth(arg, pick)?);
                }
                "Fn::Sub" => {
                    if let Value::String(s) = arg {
                        let substituted = self.substitute(s)?;
                        return Ok(Some(simplify_sub(
                            serde_json::json!({ "Fn::Sub": substituted }),
                        )));
                    }
                }
                "Fn::FindInMap" => {
                    let mut keys = Vec::new();
                    for i in 0..3 {
                        match self.resolve(nth(arg, i)?)? {
                            Some(Value::String(s)) => keys.push(s),
                            other => {
                                return err(format!(
                                    "Fn::FindInMap key {i} is not a known string: {other:?}"
                                ));
                            }
                        }
                    }
                    let found = self
                        .doc
                        .get("Mappings")
                        .and_then(|m| m.get(&keys[0]))
                        .and_then(|m| m.get(&keys[1]))
                        .and_then(|m| m.get(&keys[2]))
                        .cloned()
                        .ok_or_else(|| Error(format!("Fn::FindInMap {keys:?} not found")))?;
                    return Ok(Some(found));
                }
                "Fn::Join" => {
                    let sep = nth(arg, 0)?.as_str().unwrap_or_default().to_owned();
                    if let Some(Value::Array(items)) = self.resolve(nth(arg, 1)?)? {
                        let parts: Option<Vec<String>> = items
                            .iter()
                            .map(|i| i.as_str().map(str::to_owned))
                            .collect();
                        if let Some(parts) = parts {
                            return Ok(Some(Value::String(parts.join(&sep))));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, item) in m {
                    if let Some(r) = self.resolve(item)? {
                        out.insert(k.clone(), r);
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(r) = self.resolve(item)? {
                        out.push(r);
                    }
                }
                Value::Array(out)
            }
            other => other.clone(),
        }))
    }

    /// Replaces `${Param}` and `${AWS::...}` in a `Fn::Sub` string; keeps `${Resource...}`
    /// and `${!Literal}` as written.
    fn substitute(&self, s: &str) -> Result<String, Error> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| Error(format!("unclosed ${{ in Fn::Sub: {s}")))?;
            let name = &after[..end];
            match (self.params.get(name), self.pseudo.get(name)) {
                (Some(Param::Scalar(v)), _) => out.push_str(v),
                (Some(Param::List(_)), _) => {
                    return err(format!("Fn::Sub of the list parameter {name}"));
                }
                (None, Some(v)) => out.push_str(&v),
                (None, None) => {
                    out.push_str("${");
                    out.push_str(name);
                    out.push('}');
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A `Fn::Sub` whose string has no variable left is that string.
fn simplify_sub(v: Value) -> Value {
    match v.get("Fn::Sub").and_then(Value::as_str) {
        Some(s) if !s.contains("${") => Value::String(s.to_owned()),
        _ => v,
    }
}

fn single_key(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    let (k, arg) = m.iter().next()?;
    (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k.as_str(), arg))
}

fn nth(arg: &Value, i: usize) -> Result<&Value, Error> {
    arg.as_array()
        .and_then(|a| a.get(i))
        .ok_or_else(|| Error(format!("argument {i} missing in {arg}")))
}
