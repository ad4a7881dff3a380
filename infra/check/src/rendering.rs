//! A template rendered for given parameter values: the parameters read as CloudFormation
//! reads them (defaults, overrides, `AllowedValues`, `AllowedPattern`), then the conditions,
//! resources, outputs and rules evaluated (`intrinsics.rs`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::intrinsics::Ctx;
use crate::{ACCOUNT_ID, Error, REGION, STACK_NAME, err};

/// The value of a parameter once CloudFormation has read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// `String` and `Number` parameters (a `Ref` to a Number parameter is a string too).
    Scalar(String),
    /// `CommaDelimitedList` and `List<...>` parameters; `""` is `[""]`, as in CloudFormation.
    List(Vec<String>),
}

impl Param {
    pub(crate) fn to_value(&self) -> Value {
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
    pub(crate) fn get(&self, name: &str) -> Option<String> {
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
