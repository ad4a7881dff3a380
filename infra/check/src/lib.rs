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

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod intrinsics;
mod lifecycle;
pub mod policy;
mod query;
mod rendering;
#[cfg(test)]
mod tests;

pub use lifecycle::lifecycle_policy_problems;
pub use query::{actions, as_list, get_att, iam_statements, pattern_matches, reference, statement};
pub use rendering::{Param, Pseudo, Rendered, render, render_with};

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
