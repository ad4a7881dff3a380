//! Loading a configuration from JSON text, with JSON paths in every error.
//!
//! serde_json reports where it stopped (line and column); the path at that position is
//! recovered by scanning the text up to it, so type errors, missing fields and unknown
//! fields all name the value they are about.

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::{ConfigError, Issue, Severity};
use super::model::{DescribeRegistryOutput, ReplicationConfig, SourceSpec};

/// A loaded configuration and the warnings validation found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The configuration, with `source` completed from the document and the defaults.
    pub config: ReplicationConfig,
    /// Warning-level findings; paths are document paths (prefixed with
    /// `replicationConfiguration.` for a `describe-registry` document).
    pub warnings: Vec<Issue>,
}

impl ReplicationConfig {
    /// Parses and validates a configuration: a bare `{"rules": [...]}` (ECR's
    /// `replicationConfiguration`, optionally with Ferry's extensions) or the whole
    /// `aws ecr describe-registry` output. Fails on the first decoding error, or with every
    /// validation error at once. Warnings are dropped; see [`ReplicationConfig::load`].
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::load(text, None).map(|loaded| loaded.config)
    }

    /// Like [`ReplicationConfig::from_json`], keeping the warnings. `default_source`
    /// completes the document's source (fields the document leaves out), e.g. with the
    /// account and region Ferry runs in.
    pub fn load(text: &str, default_source: Option<&SourceSpec>) -> Result<Loaded, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| decode_error(text, &e))?;
        let Some(object) = value.as_object() else {
            return Err(ConfigError::Shape {
                path: "$".into(),
                message: "expected a JSON object: a replication configuration or describe-registry output".into(),
            });
        };
        let (mut config, prefix) = if object.contains_key("replicationConfiguration") {
            let document: DescribeRegistryOutput = decode(text)?;
            let mut config = document.replication_configuration;
            match (&config.source, document.source) {
                (None, Some(source)) => config.source = Some(source),
                (Some(_), Some(source)) => {
                    merge_source(&mut config, &source).map_err(|message| ConfigError::Shape {
                        path: "source".into(),
                        message: format!("{message} (`source` beside the document)"),
                    })?;
                }
                (_, None) => {}
            }
            if let Some(id) = document.registry_id {
                merge_source(
                    &mut config,
                    &SourceSpec {
                        registry_id: Some(id),
                        ..SourceSpec::default()
                    },
                )
                .map_err(|message| ConfigError::Shape {
                    path: "registryId".into(),
                    message,
                })?;
            }
            (config, "replicationConfiguration")
        } else {
            (decode::<ReplicationConfig>(text)?, "")
        };
        for rule in &mut config.rules {
            if rule.delete_replication.is_some_and(|d| d.enabled) {
                rule.deletes = true;
            }
        }
        if let Some(source) = default_source {
            merge_source(&mut config, source).map_err(|message| ConfigError::Shape {
                path: child(prefix, "source"),
                message: format!("{message} (the default source)"),
            })?;
        }
        let mut issues = config.validate();
        for issue in &mut issues {
            issue.path = match issue.path.as_str() {
                "$" if !prefix.is_empty() => prefix.to_owned(),
                path if !prefix.is_empty() => format!("{prefix}.{path}"),
                _ => continue,
            };
        }
        if issues.iter().any(|issue| issue.severity == Severity::Error) {
            issues.sort_by_key(|issue| std::cmp::Reverse(issue.severity));
            return Err(ConfigError::Invalid { issues });
        }
        Ok(Loaded {
            config,
            warnings: issues,
        })
    }
}

/// Completes `config.source` with the fields of `extra` it lacks; fails when both name
/// different registries.
fn merge_source(config: &mut ReplicationConfig, extra: &SourceSpec) -> Result<(), String> {
    let source = config.source.get_or_insert_with(SourceSpec::default);
    if source.registry.is_some() || extra.registry.is_some() {
        if source.registry.is_none() && source.registry_id.is_none() && source.region.is_none() {
            *source = extra.clone();
        } else if source.registry.is_some()
            && extra.registry.is_some()
            && source.registry != extra.registry
        {
            return Err("source.registry differs from the registry given alongside".into());
        }
        return Ok(());
    }
    for (mine, theirs, name) in [
        (&mut source.registry_id, &extra.registry_id, "registryId"),
        (&mut source.region, &extra.region, "region"),
    ] {
        match (mine.as_ref(), theirs) {
            (None, Some(value)) => *mine = Some(value.clone()),
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "source.{name} `{a}` differs from `{b}` given alongside"
                ));
            }
            _ => {}
        }
    }
    // A region given alongside picks one of the document's `regions`.
    if let (Some(region), Some(_)) = (&source.region, &extra.region)
        && !source.regions.is_empty()
    {
        if !source.regions.contains(region) {
            return Err(format!(
                "source.region `{region}` given alongside is not one of source.regions"
            ));
        }
        source.regions.clear();
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    serde_json::from_str(text).map_err(|error| decode_error(text, &error))
}

/// Turns a serde_json error into a [`ConfigError`] carrying the JSON path.
fn decode_error(text: &str, error: &serde_json::Error) -> ConfigError {
    let path = path_at(text, offset_of(text, error.line(), error.column()));
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    match error.classify() {
        Category::Syntax | Category::Eof => ConfigError::Syntax {
            path,
            line: error.line(),
            column: error.column(),
            message,
        },
        Category::Data | Category::Io => {
            let mut names = backticked(&message);
            if message.starts_with("unknown field `") && !names.is_empty() {
                let field = names.remove(0);
                let suggestion =
                    suggest(&field, names.iter().map(String::as_str)).map(str::to_owned);
                ConfigError::UnknownField {
                    path,
                    field,
                    suggestion,
                    expected: names,
                }
            } else if message.starts_with("unknown variant `") && !names.is_empty() {
                let value = names.remove(0);
                let suggestion =
                    suggest(&value, names.iter().map(String::as_str)).map(str::to_owned);
                ConfigError::UnknownValue {
                    path,
                    value,
                    suggestion,
                    expected: names,
                }
            } else {
                ConfigError::Shape { path, message }
            }
        }
    }
}

/// The `` `quoted` `` words of a serde message, in order.
fn backticked(message: &str) -> Vec<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The candidate closest to `word`, when it is close enough to be a likely typo: the same
/// word in another case or with `_`/`-`, or a Jaro-Winkler similarity of at least 0.8.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let plain = |text: &str| text.to_ascii_lowercase().replace(['_', '-'], "");
    let wanted = plain(word);
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = if plain(candidate) == wanted {
            2.0
        } else {
            strsim::jaro_winkler(&wanted, &plain(candidate))
        };
        if best.is_none_or(|(top, _)| score > top) {
            best = Some((score, candidate));
        }
    }
    best.filter(|(score, _)| *score >= 0.8)
        .map(|(_, candidate)| candidate)
}

/// Byte offset of a serde_json position (1-based line, 0-based byte column).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(index, _)| index + 1)
    };
    (start + column).min(text.len())
}

/// A path segment pushed by the scanner.
enum Frame {
    Object(Option<String>),
    Array(usize),
}

/// The JSON path of the value being read at byte `offset`: every container opened before
/// `offset` and not closed, with the current key or index of each.
fn path_at(text: &str, offset: usize) -> String {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut awaiting_key = false;
    let mut index = 0;
    while index < offset {
        match bytes[index] {
            b'"' => {
                let start = index;
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
                index += 1;
                if index > offset {
                    break;
                }
                if awaiting_key && let Some(Frame::Object(key)) = stack.last_mut() {
                    let raw = &text[start..index.min(text.len())];
                    *key = Some(
                        serde_json::from_str(raw)
                            .unwrap_or_else(|_| raw.trim_matches('"').to_owned()),
                    );
                    awaiting_key = false;
                }
                continue;
            }
            b'{' => {
                stack.push(Frame::Object(None));
                awaiting_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
                awaiting_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(key)) => {
                    *key = None;
                    awaiting_key = true;
                }
                None => {}
            },
            _ => {}
        }
        index += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object(Some(key)) => path = child(&path, key),
            Frame::Object(None) => {}
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if path.is_empty() { "$".into() } else { path }
}

/// The path of field `key` inside `parent` (`""` is the top level): `parent.key`, or
/// `parent["key"]` when the key is not a plain identifier.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (plain, parent.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{parent}.{key}"),
        (false, _) => format!("{parent}[{}]", serde_json::Value::from(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_at_offsets() {
        let text = r#"{"rules": [{"a": 1}, {"b": [true, {"c": "x"}]}], "registries": {"localhost:5000": {}}}"#;
        let at = |needle: &str| path_at(text, text.find(needle).unwrap() + needle.len());
        assert_eq!(at(r#""a""#), "rules[0].a");
        assert_eq!(at(r#""a": 1"#), "rules[0].a");
        assert_eq!(at(r#""a": 1}"#), "rules[0]");
        assert_eq!(at(r#""c": "x""#), "rules[1].b[1].c");
        assert_eq!(at("true"), "rules[1].b[0]");
        assert_eq!(at(r#""localhost:5000""#), r#"registries["localhost:5000"]"#);
        assert_eq!(path_at(text, 0), "$");
        assert_eq!(path_at(text, text.len()), "$");
    }

    #[test]
    fn offsets_follow_serde_json() {
        let text = "{\n  \"rules\": 5\n}";
        let error = serde_json::from_str::<ReplicationConfig>(text).unwrap_err();
        assert_eq!(
            path_at(text, offset_of(text, error.line(), error.column())),
            "rules"
        );
    }

    #[test]
    fn suggestions() {
        let fields = [
            "destinations",
            "repositoryFilters",
            "tagFilters",
            "excludeTagFilters",
        ];
        assert_eq!(suggest("tagFilter", fields), Some("tagFilters"));
        assert_eq!(
            suggest("repository_filters", fields),
            Some("repositoryFilters")
        );
        assert_eq!(suggest("destination", fields), Some("destinations"));
        assert_eq!(suggest("zzz", fields), None);
        assert_eq!(
            suggest("prefix", ["PREFIX_MATCH", "WILDCARD", "REGEX"]),
            Some("PREFIX_MATCH")
        );
    }

    #[test]
    fn child_paths() {
        assert_eq!(child("", "rules"), "rules");
        assert_eq!(child("rules[0]", "tagFilters"), "rules[0].tagFilters");
        assert_eq!(child("registries", "ghcr.io"), r#"registries["ghcr.io"]"#);
    }
}
