//! Repository and tag filters.
//!
//! A filter is compiled once, the first time it is checked or matched; `from_json` checks
//! every filter while loading, so matching never compiles. Fields are private so a compiled
//! filter cannot drift from its text.
//!
//! Filter types:
//! - `PREFIX_MATCH`: plain string prefix, exactly `str::starts_with` (ECR's meaning);
//! - `WILDCARD`: `*` matches any run of characters, `/` included, and every other character
//!   stands for itself (ECR's wildcard meaning in lifecycle policies and creation templates;
//!   `?`, `[` and `{` are not special);
//! - `REGEX`: a Rust `regex` that must match the whole name (anchored at both ends);
//! - `SEMVER` (tags only): a version range such as `>=1.2, <2`, see [`parse_version_tag`].

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use schemars::JsonSchema;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// How a repository filter's `filter` text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepositoryFilterType {
    /// The repository name starts with the filter (ECR native).
    PrefixMatch,
    /// `*` matches any characters, `/` included; everything else is literal (Ferry extension).
    Wildcard,
    /// Regular expression matching the whole repository name (Ferry extension).
    Regex,
}

/// How a tag filter's `filter` text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagFilterType {
    /// The tag starts with the filter.
    PrefixMatch,
    /// `*` matches any characters; everything else is literal.
    Wildcard,
    /// Regular expression matching the whole tag.
    Regex,
    /// Semantic-version range such as `>=1.2, <2`; matches tags that read as versions
    /// (`v1.2.3`, `1.2.3`, `1.2` for `1.2.0`).
    Semver,
}

/// Selects repositories by name. Several filters in one rule are OR'ed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepositoryFilter {
    /// The prefix, wildcard pattern or regular expression.
    filter: String,
    /// How `filter` is read.
    filter_type: RepositoryFilterType,
    #[serde(skip)]
    compiled: OnceLock<Compiled>,
}

/// Selects tags. Used both as include (`tagFilters`) and exclude (`excludeTagFilters`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagFilter {
    /// The prefix, wildcard pattern, regular expression or version range.
    filter: String,
    /// How `filter` is read.
    filter_type: TagFilterType,
    #[serde(skip)]
    compiled: OnceLock<Compiled>,
}

/// The methods both filter types share; `$Type` is the filter type enum and `$matches_doc`
/// documents `matches`.
macro_rules! filter_methods {
    ($Filter:ident, $Type:ident, $matches_doc:literal) => {
        impl $Type {
            /// The name used in JSON, e.g. `PREFIX_MATCH`.
            pub fn as_str(self) -> &'static str {
                Kind::from(self).as_str()
            }
        }

        impl fmt::Display for $Type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $Filter {
            /// Builds and compiles a filter.
            pub fn new(filter: impl Into<String>, filter_type: $Type) -> Result<Self, ConfigError> {
                let this = Self {
                    filter: filter.into(),
                    filter_type,
                    compiled: OnceLock::new(),
                };
                this.check().map_err(|message| ConfigError::Filter {
                    path: String::new(),
                    message,
                })?;
                Ok(this)
            }

            /// The filter text as written.
            pub fn filter(&self) -> &str {
                &self.filter
            }

            /// How the filter text is read.
            pub fn filter_type(&self) -> $Type {
                self.filter_type
            }

            #[doc = $matches_doc]
            pub fn matches(&self, name: &str) -> bool {
                self.compiled().matches(&self.filter, name)
            }

            /// Compiles the filter (once) and reports why it is invalid, if it is.
            pub(crate) fn check(&self) -> Result<(), String> {
                self.compiled().problem()
            }

            fn compiled(&self) -> &Compiled {
                self.compiled
                    .get_or_init(|| Compiled::new(&self.filter, self.filter_type.into()))
            }
        }

        /// Equal when the text and type are; compilation state does not count.
        impl PartialEq for $Filter {
            fn eq(&self, other: &Self) -> bool {
                self.filter == other.filter && self.filter_type == other.filter_type
            }
        }

        impl Eq for $Filter {}
    };
}

filter_methods!(
    RepositoryFilter,
    RepositoryFilterType,
    "Whether the repository `name` is selected by this filter. An invalid filter matches nothing."
);
filter_methods!(
    TagFilter,
    TagFilterType,
    "Whether the tag `name` is selected by this filter. An invalid filter matches nothing."
);

/// Filter types of both kinds, so compilation is written once.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Prefix,
    Wildcard,
    Regex,
    Semver,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Prefix => "PREFIX_MATCH",
            Self::Wildcard => "WILDCARD",
            Self::Regex => "REGEX",
            Self::Semver => "SEMVER",
        }
    }
}

impl From<RepositoryFilterType> for Kind {
    fn from(value: RepositoryFilterType) -> Self {
        match value {
            RepositoryFilterType::PrefixMatch => Self::Prefix,
            RepositoryFilterType::Wildcard => Self::Wildcard,
            RepositoryFilterType::Regex => Self::Regex,
        }
    }
}

impl From<TagFilterType> for Kind {
    fn from(value: TagFilterType) -> Self {
        match value {
            TagFilterType::PrefixMatch => Self::Prefix,
            TagFilterType::Wildcard => Self::Wildcard,
            TagFilterType::Regex => Self::Regex,
            TagFilterType::Semver => Self::Semver,
        }
    }
}

/// A filter ready to match.
#[derive(Debug, Clone)]
enum Compiled {
    Prefix,
    Pattern(Regex),
    Range(VersionReq),
    Invalid(String),
}

impl Compiled {
    fn new(filter: &str, kind: Kind) -> Self {
        match kind {
            Kind::Prefix => Self::Prefix,
            Kind::Wildcard => {
                let body: Vec<String> = filter.split('*').map(regex::escape).collect();
                // (?s): `*` also matches a newline, so a lone `*` matches every string.
                let pattern = format!("(?s)^{}$", body.join(".*"));
                Regex::new(&pattern).map_or_else(|e| Self::Invalid(e.to_string()), Self::Pattern)
            }
            Kind::Regex => match Regex::new(&format!("^(?:{filter})$")) {
                Ok(regex) => Self::Pattern(regex),
                Err(error) => Self::Invalid(format!(
                    "invalid regex `{filter}`: {}",
                    one_line(&error.to_string())
                )),
            },
            Kind::Semver => match VersionReq::parse(filter) {
                Ok(range) => Self::Range(range),
                Err(error) => Self::Invalid(format!(
                    "invalid semantic-version range `{filter}`: {error} (write e.g. `>=1.2, <2`)"
                )),
            },
        }
    }

    fn matches(&self, filter: &str, name: &str) -> bool {
        match self {
            Self::Prefix => name.starts_with(filter),
            Self::Pattern(regex) => regex.is_match(name),
            Self::Range(range) => {
                parse_version_tag(name).is_some_and(|version| range.matches(&version))
            }
            Self::Invalid(_) => false,
        }
    }

    fn problem(&self) -> Result<(), String> {
        match self {
            Self::Invalid(message) => Err(message.clone()),
            _ => Ok(()),
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a tag as a semantic version, the way `SEMVER` tag filters do.
///
/// Accepts an optional leading `v` or `V`, then `MAJOR.MINOR.PATCH` or `MAJOR.MINOR` (read as
/// `MAJOR.MINOR.0`), then optional `-prerelease` and `+build` parts. A bare number (`20`,
/// `20240101`) is not a version, so date-stamped and major-only alias tags never match a range.
/// Anything after the version core such as `1.2-alpine` is a pre-release, which a range only
/// matches when it names a pre-release of the same version (Cargo's rule).
pub fn parse_version_tag(tag: &str) -> Option<Version> {
    let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let core_end = text.find(['-', '+']).unwrap_or(text.len());
    let (core, rest) = text.split_at(core_end);
    match core.split('.').count() {
        2 => Version::parse(&format!("{core}.0{rest}")).ok(),
        3 => Version::parse(text).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(filter: &str, filter_type: TagFilterType) -> TagFilter {
        TagFilter::new(filter, filter_type).unwrap()
    }

    fn repo(filter: &str, filter_type: RepositoryFilterType) -> RepositoryFilter {
        RepositoryFilter::new(filter, filter_type).unwrap()
    }

    #[test]
    fn prefix_is_a_plain_prefix() {
        let filter = repo("prod", RepositoryFilterType::PrefixMatch);
        assert!(filter.matches("prod"));
        assert!(filter.matches("prod/api"));
        assert!(filter.matches("production"));
        assert!(!filter.matches("team/prod"));
        assert!(!filter.matches("Prod"));
    }

    #[test]
    fn wildcard_star_crosses_slashes_and_nothing_else_is_special() {
        let filter = repo("team-*/api", RepositoryFilterType::Wildcard);
        assert!(filter.matches("team-a/api"));
        assert!(filter.matches("team-a/b/api"));
        assert!(filter.matches("team-/api"));
        assert!(!filter.matches("team-a/api2"));
        let literal = tag("v1.?", TagFilterType::Wildcard);
        assert!(literal.matches("v1.?"));
        assert!(!literal.matches("v1.2"));
        let dots = tag("1.*", TagFilterType::Wildcard);
        assert!(dots.matches("1.2.3"));
        assert!(!dots.matches("102"));
    }

    #[test]
    fn regex_is_anchored() {
        let filter = tag("v[0-9]+", TagFilterType::Regex);
        assert!(filter.matches("v12"));
        assert!(!filter.matches("v12-rc"));
        assert!(!filter.matches("xv12"));
        let alternation = tag("a|b", TagFilterType::Regex);
        assert!(alternation.matches("a"));
        assert!(!alternation.matches("ab"));
    }

    #[test]
    fn invalid_regex_is_reported() {
        let error = TagFilter::new("(", TagFilterType::Regex).unwrap_err();
        assert!(error.to_string().contains("invalid regex `(`"), "{error}");
        assert!(!error.to_string().contains('\n'), "{error}");
    }

    #[test]
    fn semver_ranges() {
        let filter = tag(">=1.2, <2", TagFilterType::Semver);
        for yes in ["1.2.0", "v1.2.0", "1.2", "v1.9.9", "1.10.3", "V1.2.1"] {
            assert!(filter.matches(yes), "{yes}");
        }
        for no in [
            "1.1.9",
            "2.0.0",
            "v2",
            "1",
            "latest",
            "1.2.0-rc.1",
            "1.2-alpine",
            "01.2.0",
            "1.2.3.4",
        ] {
            assert!(!filter.matches(no), "{no}");
        }
        let caret = tag("^1.4", TagFilterType::Semver);
        assert!(caret.matches("1.4"));
        assert!(caret.matches("1.7.2"));
        assert!(!caret.matches("1.3.9"));
        let pre = tag(">=1.2.0-rc.1, <1.2.0", TagFilterType::Semver);
        assert!(pre.matches("v1.2.0-rc.2"));
    }

    #[test]
    fn invalid_semver_range_is_reported() {
        let error = TagFilter::new("between 1 and 2", TagFilterType::Semver).unwrap_err();
        assert!(
            error.to_string().contains("invalid semantic-version range"),
            "{error}"
        );
    }

    #[test]
    fn version_tags() {
        assert_eq!(parse_version_tag("v1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(parse_version_tag("1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(
            parse_version_tag("1.2-rc.1").unwrap().to_string(),
            "1.2.0-rc.1"
        );
        assert_eq!(parse_version_tag("20240101"), None);
        assert_eq!(parse_version_tag("v"), None);
    }

    #[test]
    fn equality_ignores_compilation_state() {
        let a = tag("x", TagFilterType::PrefixMatch);
        let b: TagFilter =
            serde_json::from_str(r#"{"filter":"x","filterType":"PREFIX_MATCH"}"#).unwrap();
        assert!(a.matches("xy"));
        assert_eq!(a, b);
    }
}
