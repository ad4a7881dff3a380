//! Errors and validation findings of the replication configuration.
//!
//! Every error and finding carries the JSON path of the offending value, written the way a
//! reader finds it in the document: `rules[1].tagFilters[0].filter`. The top level is `$`.

use std::fmt;

/// Why a replication configuration could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not well-formed JSON.
    #[error("{path}: invalid JSON at line {line} column {column}: {message}")]
    Syntax {
        /// JSON path of the value being read when the error was found.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in bytes) of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },

    /// The JSON is well formed but a value has the wrong type or shape, or a required field
    /// is missing.
    #[error("{path}: {message}")]
    Shape {
        /// JSON path of the offending value (of the object, for a missing field).
        path: String,
        /// What is wrong, as reported by the decoder.
        message: String,
    },

    /// An object holds a field the model does not know.
    #[error("{path}: unknown field{}", hint(suggestion.as_deref(), expected))]
    UnknownField {
        /// JSON path of the unknown field itself, e.g. `rules[0].tagFilter`.
        path: String,
        /// The unknown field name.
        field: String,
        /// The closest known field name, when one is close enough.
        suggestion: Option<String>,
        /// Every field name allowed at this place.
        expected: Vec<String>,
    },

    /// A field that takes one of a fixed set of values (such as `filterType`) holds another.
    #[error("{path}: unknown value `{value}`{}", hint(suggestion.as_deref(), expected))]
    UnknownValue {
        /// JSON path of the value.
        path: String,
        /// The value as written.
        value: String,
        /// The closest allowed value, when one is close enough.
        suggestion: Option<String>,
        /// Every allowed value.
        expected: Vec<String>,
    },

    /// A filter could not be compiled (invalid regular expression or semantic-version range).
    #[error("{path}: {message}")]
    Filter {
        /// JSON path of the filter (empty when the filter was built in code).
        path: String,
        /// What is wrong.
        message: String,
    },

    /// Validation found one or more errors; warnings found at the same time are included.
    #[error("{}", list_issues(issues))]
    Invalid {
        /// Every finding, errors first; each carries its own JSON path.
        issues: Vec<Issue>,
    },

    /// An `organizationalUnit` / `organization` destination was used before its accounts were
    /// read from AWS Organizations.
    #[error(
        "{path}: names {scope}, whose accounts have not been read from AWS Organizations \
         (resolve the configuration's accounts first)"
    )]
    Unresolved {
        /// JSON path of the organization destination.
        path: String,
        /// What it names.
        scope: String,
    },

    /// A destination repository name rendered from a `repositoryName` template is not a
    /// valid repository name (OCI distribution grammar, at most 256 characters).
    #[error(
        "{path}: repository name `{name}` rendered for `{source_repository}` is invalid: {reason}"
    )]
    RepositoryName {
        /// JSON path of the destination whose template was rendered.
        path: String,
        /// The source repository the name was rendered for.
        source_repository: String,
        /// The rendered name.
        name: String,
        /// Which rule of the grammar it breaks.
        reason: String,
    },
}

impl ConfigError {
    /// The JSON path this error refers to (`$` for the whole document).
    pub fn path(&self) -> &str {
        match self {
            Self::Syntax { path, .. }
            | Self::Shape { path, .. }
            | Self::UnknownField { path, .. }
            | Self::UnknownValue { path, .. }
            | Self::Filter { path, .. }
            | Self::RepositoryName { path, .. }
            | Self::Unresolved { path, .. } => path,
            Self::Invalid { issues } => issues.first().map_or("$", |issue| issue.path.as_str()),
        }
    }
}

fn hint(suggestion: Option<&str>, expected: &[String]) -> String {
    match suggestion {
        Some(suggestion) => format!(", did you mean {suggestion}?"),
        None if expected.is_empty() => String::new(),
        None => format!(", expected one of: {}", expected.join(", ")),
    }
}

fn list_issues(issues: &[Issue]) -> String {
    let errors = issues
        .iter()
        .filter(|issue| issue.severity == Severity::Error)
        .count();
    let mut text = format!("invalid replication configuration ({errors} error(s))");
    for issue in issues {
        text.push_str("\n  ");
        text.push_str(&issue.to_string());
    }
    text
}

/// How serious a validation finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The configuration works but probably not as intended, or cannot be applied to ECR's
    /// native replication (for example more than 10 rules).
    Warning,
    /// The configuration cannot be used.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Whether the finding blocks loading.
    pub severity: Severity,
    /// JSON path of the value the finding is about.
    pub path: String,
    /// Human-readable explanation, including how to fix it where that is not obvious.
    pub message: String,
}

impl Issue {
    pub(crate) fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.severity, self.path, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_message_has_suggestion() {
        let error = ConfigError::UnknownField {
            path: "rules[0].tagFilter".into(),
            field: "tagFilter".into(),
            suggestion: Some("tagFilters".into()),
            expected: vec!["tagFilters".into()],
        };
        assert_eq!(
            error.to_string(),
            "rules[0].tagFilter: unknown field, did you mean tagFilters?"
        );
    }

    #[test]
    fn invalid_lists_every_issue() {
        let error = ConfigError::Invalid {
            issues: vec![Issue::error("rules[0]", "bad"), Issue::warning("$", "meh")],
        };
        assert_eq!(
            error.to_string(),
            "invalid replication configuration (1 error(s))\n  error: rules[0]: bad\n  warning: $: meh"
        );
        assert_eq!(error.path(), "rules[0]");
    }
}
