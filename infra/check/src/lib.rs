//! Reads Ferry's CloudFormation templates (`infra/*.yaml`) as plain data and renders them
//! for given parameter values, so tests can assert on what CloudFormation would deploy.
//!
//! The templates are written in long form (`Fn::Sub`, `Ref` as mappings, no `!` tags), so a
//! plain YAML parser reads them. [`render`] evaluates what depends on parameters only:
//! `Conditions`, `Fn::If`, `Ref` to parameters and pseudo parameters, `AWS::NoValue`,
//! `Fn::FindInMap`, `Fn::Join` of known strings, and the parameter and pseudo-parameter
//! variables of `Fn::Sub`. What depends on resources (`Fn::GetAtt`, `Ref` to a resource,
//! `${Resource.Attribute}` in `Fn::Sub`) is left as written. Parameter values are checked
//! against `AllowedValues` and `AllowedPattern` (each item of a list), as CloudFormation
//! does, and the template's `Rules` are evaluated ([`Rendered::rule_failures`]). The
//! assertions live in `tests/`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

mod lifecycle;
pub mod policy;

pub use lifecycle::lifecycle_policy_problems;

/// Account ID used for `AWS::AccountId` when rendering.
pub const ACCOUNT_ID: &str = "111111111111";
/// Default region used for `AWS::Region` when rendering.
pub const REGION: &str = "us-east-1";
/// Stack name used for `AWS::StackName` when rendering.
pub const STACK_NAME: &str = "ferry";

/// An error while loading or rendering a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// The `infra/` directory of the repository.
pub fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("infra/check has a parent")
        .to_path_buf()
}

/// The text of `infra/<name>`.
pub fn read_text(name: &str) -> Result<String, Error> {
    let path = infra_dir().join(name);
    std::fs::read_to_string(&path).map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// Parses `infra/<name>` as plain YAML (long form: no `!` tags).
pub fn load(name: &str) -> Result<Value, Error> {
    let text = read_text(name)?;
    serde_norway::from_str::<Value>(&text).map_err(|e| Error(format!("{name}: {e}")))
}

/// The value of a parameter once CloudFormation has read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// `String` and `Number` parameters (a `Ref` to a Number parameter is a string too).
    Scalar(String),
    /// `CommaDelimitedList` and `List<...>` parameters; `""` is `[""]`, as in CloudFormation.
    List(Vec<String>),
}

impl Param {
    fn to_value(&self) -> Value {
        match self {
            Param::Scalar(s) => Value::String(s.clone()),
            Param::List(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
        }
    }
}

/// Pseudo parameters used when rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudo {
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
    /// `AWS::StackName`.
    pub stack_name: String,
}

impl Default for Pseudo {
    fn default() -> Self {
        Self {
            region: REGION.into(),
            account_id: ACCOUNT_ID.into(),
            stack_name: STACK_NAME.into(),
        }
    }
}

impl Pseudo {
    fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account_id.clone(),
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            _ => return None,
        })
    }
}

/// A template rendered for one set of parameter values.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The parameter values used (defaults, then overrides).
    pub params: BTreeMap<String, Param>,
    /// Every condition, evaluated.
    pub conditions: BTreeMap<String, bool>,
    /// The template with parameter-dependent parts resolved; resources and outputs whose
    /// condition is false are removed.
    pub doc: Value,
    /// The `AssertDescription` of every `Rules` assertion these parameters fail
    /// (CloudFormation refuses to create or update the stack when this is not empty).
    pub rule_failures: Vec<String>,
}

impl Rendered {
    /// A resource by logical ID, if it exists for these parameters.
    pub fn resource(&self, id: &str) -> Option<&Value> {
        self.doc.get("Resources").and_then(|r| r.get(id))
    }

    /// A resource's `Properties`; panics with a clear message when the resource is absent.
    pub fn props(&self, id: &str) -> &Value {
        let resource = self
            .resource(id)
            .unwrap_or_else(|| panic!("resource {id} is absent"));
        resource
            .get("Properties")
            .unwrap_or_else(|| panic!("resource {id} has no Properties"))
    }

    /// Logical IDs and bodies of the resources of one type.
    pub fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.doc
            .get("Resources")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
    }
}

/// Renders `doc` with the parameters' defaults, overridden by `overrides` (name, value as
/// it would be typed on the command line: lists comma-separated), and `pseudo`.
pub fn render_with(
    doc: &Value,
    overrides: &[(&str, &str)],
    pseudo: &Pseudo,
) -> Result<Rendered, Error> {
    let declared = doc
        .get("Parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, _) in overrides {
        if !declared.contains_key(*name) {
            return err(format!("override of undeclared parameter {name}"));
        }
    }
    let mut params = BTreeMap::new();
    for (name, decl) in &declared {
        let kind = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
        let raw = match overrides.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Some((*v).to_owned()),
            None => decl.get("Default").map(scalar_text).transpose()?,
        };
        let Some(raw) = raw else { continue }; // no default and no override: unresolved
        check_allowed_pattern(name, kind, decl, &raw)?;
        if let Some(allowed) = decl.get("AllowedValues").and_then(Value::as_array) {
            let allowed: Vec<String> = allowed.iter().map(scalar_text).collect::<Result<_, _>>()?;
            if !allowed.contains(&raw) {
                return err(format!(
                    "{name}={raw:?} is not one of its AllowedValues {allowed:?}"
                ));
            }
        }
        let value = if kind == "CommaDelimitedList" || kind.starts_with("List<") {
            Param::List(raw.split(',').map(|s| s.trim().to_owned()).collect())
        } else {
            Param::Scalar(raw)
        };
        params.insert(name.clone(), value);
    }
    let mut ctx = Ctx {
        doc,
        params,
        pseudo: pseudo.clone(),
        conditions: BTreeMap::new(),
    };
    let names: Vec<String> = doc
        .get("Conditions")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for name in names {
        ctx.condition(&name, 0)?;
    }

    let mut out = Map::new();
    let top = doc
        .as_object()
        .ok_or_else(|| Error("template is not a mapping".into()))?;
    for (section, body) in top {
        let rendered = match section.as_str() {
            "Resources" | "Outputs" => {
                let mut kept = Map::new();
                for (id, item) in body.as_object().into_iter().flatten() {
                    if let Some(cond) = item.get("Condition").and_then(Value::as_str)
                        && !ctx.condition(cond, 0)?
                    {
                        continue;
                    }
                    if let Some(v) = ctx.resolve(item)? {
                        kept.insert(id.clone(), v);
                    }
                }
                Value::Object(kept)
            }
            _ => body.clone(),
        };
        out.insert(section.clone(), rendered);
    }
    let rule_failures = ctx.rule_failures()?;
    Ok(Rendered {
        params: ctx.params,
        conditions: ctx.conditions,
        doc: Value::Object(out),
        rule_failures,
    })
}

/// Refuses a value that does not match the parameter's `AllowedPattern` (which
/// CloudFormation applies to the whole value, or to each item of a `CommaDelimitedList`).
fn check_allowed_pattern(name: &str, kind: &str, decl: &Value, raw: &str) -> Result<(), Error> {
    let Some(pattern) = decl.get("AllowedPattern").and_then(Value::as_str) else {
        return Ok(());
    };
    let re = regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| Error(format!("{name}: AllowedPattern {pattern:?}: {e}")))?;
    let items: Vec<&str> = if kind == "CommaDelimitedList" {
        raw.split(',').map(str::trim).collect()
    } else {
        vec![raw]
    };
    match items.into_iter().find(|item| !re.is_match(item)) {
        Some(bad) => err(format!(
            "{name}: {bad:?} does not match AllowedPattern {pattern:?}"
        )),
        None => Ok(()),
    }
}

/// [`render_with`] with the default pseudo parameters.
pub fn render(doc: &Value, overrides: &[(&str, &str)]) -> Result<Rendered, Error> {
    render_with(doc, overrides, &Pseudo::default())
}

/// A YAML scalar as CloudFormation reads it: a string.
fn scalar_text(v: &Value) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => err(format!("not a scalar: {other}")),
    }
}

struct Ctx<'a> {
    doc: &'a Value,
    params: BTreeMap<String, Param>,
    pseudo: Pseudo,
    conditions: BTreeMap<String, bool>,
}

impl Ctx<'_> {
    /// The `AssertDescription` of each failed assertion of the template's `Rules`.
    fn rule_failures(&mut self) -> Result<Vec<String>, Error> {
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

    fn condition(&mut self, name: &str, depth: usize) -> Result<bool, Error> {
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
    fn resolve(&mut self, v: &Value) -> Result<Option<Value>, Error> {
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

#[cfg(test)]
mod tests {
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
}
