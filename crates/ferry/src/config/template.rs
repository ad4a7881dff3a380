//! Destination repository name templates (`repositoryName`) and the repository name grammar.
//!
//! A template is text with placeholders:
//! - `{repository}`: the source repository name, slashes included;
//! - `{registryId}` and `{region}`: the **source** registry's account ID and region (a
//!   destination's own values are constants the author can write directly; the source's
//!   values let several source accounts fan in without collisions, e.g.
//!   `mirror/{registryId}/{repository}`).
//!
//! The placeholders of the source registry are substituted when the configuration is
//! resolved ([`RepositoryTemplate::bind`]); `{repository}` at match time.

use std::sync::LazyLock;

use regex::Regex;

use super::parse::suggest;

/// Longest repository name ECR accepts.
pub const MAX_REPOSITORY_NAME: usize = 256;

static REPOSITORY_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$",
    )
    .expect("static regex")
});

const PLACEHOLDERS: [&str; 3] = ["repository", "registryId", "region"];

/// What a rendered name says of its source: see [`RepositoryTemplate::source_parts_of`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceParts {
    /// The source repository.
    pub repository: String,
    /// The source account, where the template names it and leaves it unbound.
    pub registry_id: Option<String>,
    /// The source region, where the template names it and leaves it unbound.
    pub region: Option<String>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Text(String),
    Repository,
    RegistryId,
    Region,
}

/// A parsed `repositoryName` template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryTemplate {
    parts: Vec<Part>,
}

impl RepositoryTemplate {
    /// Parses a template; fails on an unknown placeholder or an unbalanced brace.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let brace = rest.find(['{', '}']).unwrap_or(rest.len());
            if brace > 0 {
                parts.push(Part::Text(rest[..brace].to_owned()));
            }
            rest = &rest[brace..];
            if rest.starts_with('}') {
                return Err(format!("`{text}`: `}}` without a matching `{{`"));
            }
            if rest.is_empty() {
                break;
            }
            let Some(end) = rest.find('}') else {
                return Err(format!("`{text}`: `{{` without a matching `}}`"));
            };
            let name = &rest[1..end];
            parts.push(match name {
                "repository" => Part::Repository,
                "registryId" => Part::RegistryId,
                "region" => Part::Region,
                _ => {
                    let hint = match suggest(name, PLACEHOLDERS) {
                        Some(near) => format!("did you mean {{{near}}}?"),
                        None => "use {repository}, {registryId} or {region}".to_owned(),
                    };
                    return Err(format!(
                        "`{text}`: unknown placeholder `{{{name}}}`, {hint}"
                    ));
                }
            });
            rest = &rest[end + 1..];
        }
        Ok(Self { parts })
    }

    /// Whether the template names the source registry (`{registryId}` or `{region}`).
    pub fn uses_source_registry(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::RegistryId | Part::Region))
    }

    /// Whether the template contains `{region}` (the source registry's region).
    pub fn uses_region(&self) -> bool {
        self.parts.contains(&Part::Region)
    }

    /// Whether the template contains `{registryId}` (the source registry's account).
    pub fn uses_registry_id(&self) -> bool {
        self.parts.contains(&Part::RegistryId)
    }

    /// Whether the template contains `{repository}`; without it every source repository
    /// maps to the same destination repository.
    pub fn uses_repository(&self) -> bool {
        self.parts.contains(&Part::Repository)
    }

    /// Substitutes the source registry's account ID and region; fails naming the first
    /// placeholder that has no value.
    pub fn bind(
        &self,
        registry_id: Option<&str>,
        region: Option<&str>,
    ) -> Result<Self, &'static str> {
        let bound = self.bind_known(registry_id, region);
        match bound.parts.iter().find_map(|part| match part {
            Part::RegistryId => Some("registryId"),
            Part::Region => Some("region"),
            _ => None,
        }) {
            Some(missing) => Err(missing),
            None => Ok(bound),
        }
    }

    /// Substitutes what is known of the source registry and keeps the other placeholders
    /// for a later [`RepositoryTemplate::bind`] (a configuration whose source is learnt from
    /// each image's registry at run time).
    pub fn bind_known(&self, registry_id: Option<&str>, region: Option<&str>) -> Self {
        let mut parts: Vec<Part> = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let text = match (part, registry_id, region) {
                (Part::RegistryId, Some(id), _) => id,
                (Part::Region, _, Some(region)) => region,
                (other, _, _) => {
                    parts.push(other.clone());
                    continue;
                }
            };
            match parts.last_mut() {
                Some(Part::Text(previous)) => previous.push_str(text),
                _ => parts.push(Part::Text(text.to_owned())),
            }
        }
        Self { parts }
    }

    /// The source repository this template renders as `name`, if any: the inverse of
    /// [`RepositoryTemplate::render`]. A template without `{repository}` renders every
    /// source repository the same, so it names no single one.
    pub fn source_of(&self, name: &str) -> Option<String> {
        const MARK: &str = "\u{1}";
        let pieces: Vec<String> = self.render(MARK).split(MARK).map(str::to_string).collect();
        let n = pieces.len().checked_sub(1).filter(|n| *n > 0)?;
        let fixed: usize = pieces.iter().map(String::len).sum();
        let rest = name.len().checked_sub(fixed)?;
        if rest == 0 || rest % n != 0 {
            return None;
        }
        let start = pieces[0].len();
        let y = name.get(start..start + rest / n)?;
        (pieces.join(y) == name).then(|| y.to_string())
    }

    /// The ways `name` can be rendered by this template: the source repository, and the
    /// source registry's account ID and region where the template leaves them unbound (a
    /// configuration whose source is learnt from each event). `None` when no source renders
    /// as `name`. With the source registry bound this is [`RepositoryTemplate::source_of`].
    pub fn source_parts_of(&self, name: &str) -> Option<SourceParts> {
        if !self.uses_source_registry() {
            return self.source_of(name).map(|repository| SourceParts {
                repository,
                registry_id: None,
                region: None,
            });
        }
        if !self.uses_repository() {
            return None;
        }
        let mut pattern = String::from("^");
        let mut kinds = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => pattern.push_str(&regex::escape(text)),
                Part::Repository => {
                    pattern.push_str("(.+)");
                    kinds.push(Part::Repository);
                }
                Part::RegistryId => {
                    pattern.push_str("([0-9]{12})");
                    kinds.push(Part::RegistryId);
                }
                Part::Region => {
                    pattern.push_str("([a-z]{2}(?:-[a-z]+)+-[0-9]{1,2})");
                    kinds.push(Part::Region);
                }
            }
        }
        pattern.push('$');
        let captures = Regex::new(&pattern).ok()?.captures(name)?;
        let mut parts = SourceParts::default();
        for (i, kind) in kinds.iter().enumerate() {
            let value = captures.get(i + 1)?.as_str().to_owned();
            let slot = match kind {
                Part::Repository => &mut parts.repository,
                Part::RegistryId => parts.registry_id.get_or_insert_with(String::new),
                _ => parts.region.get_or_insert_with(String::new),
            };
            // A placeholder used twice must render the same text both times.
            if slot.is_empty() {
                *slot = value;
            } else if *slot != value {
                return None;
            }
        }
        Some(parts)
    }

    /// An anchored regular expression of every name the template can render: `{repository}`
    /// any repository, unbound `{registryId}` an account ID and `{region}` a region (bound
    /// from each image's registry at run time).
    pub fn name_pattern(&self) -> String {
        let mut p = String::from("^");
        for part in &self.parts {
            match part {
                Part::Text(text) => p.push_str(&regex::escape(text)),
                Part::Repository => p.push_str(".+"),
                Part::RegistryId => p.push_str("[0-9]{12}"),
                Part::Region => p.push_str("[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"),
            }
        }
        p.push('$');
        p
    }

    /// [`RepositoryTemplate::name_pattern`], compiled: the repositories a destination's
    /// credential covers ([`Authenticator::with_route`](crate::auth::Authenticator::with_route)).
    pub fn name_regex(&self) -> regex::Regex {
        regex::Regex::new(&self.name_pattern()).expect("an escaped template is a regex")
    }

    /// Whether some source repository renders as `name`.
    pub fn renders(&self, name: &str) -> bool {
        if self.uses_repository() {
            self.source_of(name).is_some()
        } else {
            self.render("") == name
        }
    }

    /// Renders the name for `repository`. Placeholders of the source registry that were not
    /// bound are left as written.
    pub fn render(&self, repository: &str) -> String {
        let mut name = String::new();
        for part in &self.parts {
            name.push_str(match part {
                Part::Text(text) => text,
                Part::Repository => repository,
                Part::RegistryId => "{registryId}",
                Part::Region => "{region}",
            });
        }
        name
    }
}

/// Checks a repository name against the OCI distribution grammar and ECR's length limit.
pub fn check_repository_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_REPOSITORY_NAME {
        return Err(format!(
            "longer than {MAX_REPOSITORY_NAME} characters ({})",
            name.len()
        ));
    }
    if REPOSITORY_NAME.is_match(name) {
        Ok(())
    } else {
        Err("not a valid repository name: lower-case letters and digits, separated by `.`, `_`, `__` or \
             dashes, in components joined by `/`"
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefix_templates() {
        let template = RepositoryTemplate::parse("dr/{repository}").unwrap();
        assert!(template.uses_repository());
        assert!(!template.uses_source_registry());
        assert_eq!(template.render("team/api"), "dr/team/api");
    }

    #[test]
    fn binds_source_registry() {
        let template =
            RepositoryTemplate::parse("mirror/{registryId}/{region}/{repository}-copy").unwrap();
        assert!(template.uses_source_registry());
        assert_eq!(template.render("x"), "mirror/{registryId}/{region}/x-copy");
        let bound = template
            .bind(Some("111122223333"), Some("eu-west-1"))
            .unwrap();
        assert!(!bound.uses_source_registry());
        assert_eq!(
            bound.render("api"),
            "mirror/111122223333/eu-west-1/api-copy"
        );
        assert_eq!(template.bind(Some("111122223333"), None), Err("region"));
        let partial = template.bind_known(Some("111122223333"), None);
        assert!(partial.uses_source_registry());
        assert_eq!(partial.render("x"), "mirror/111122223333/{region}/x-copy");
        assert_eq!(
            partial.bind(None, Some("eu-west-1")).unwrap().render("x"),
            "mirror/111122223333/eu-west-1/x-copy"
        );
    }

    #[test]
    fn inversion() {
        let t = |text: &str| RepositoryTemplate::parse(text).unwrap();
        assert_eq!(
            t("dr/{repository}").source_of("dr/a/b").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            t("x/{repository}/{repository}")
                .source_of("x/a/a")
                .as_deref(),
            Some("a")
        );
        assert_eq!(t("x/{repository}/{repository}").source_of("x/a/b"), None);
        assert_eq!(t("fixed").source_of("fixed"), None);
        assert!(t("fixed").renders("fixed"));
        assert!(!t("fixed").renders("other"));
        assert_eq!(t("dr/{repository}").source_of("dr/"), None);
        assert!(!t("dr/{repository}").renders("prod/a"));
        let unbound = Regex::new(&t("m/{region}/{repository}").name_pattern()).unwrap();
        assert!(unbound.is_match("m/eu-west-1/team/api"));
        assert!(!unbound.is_match("m/team/api"));
        assert!(
            Regex::new(&t("a.b/{repository}").name_pattern())
                .unwrap()
                .is_match("a.b/x")
        );
        assert!(
            !Regex::new(&t("a.b/{repository}").name_pattern())
                .unwrap()
                .is_match("aXb/x")
        );
    }

    #[test]
    fn inversion_recovers_unbound_source_placeholders() {
        let t = |text: &str| RepositoryTemplate::parse(text).unwrap();
        let parts = t("m/{registryId}/{region}/{repository}")
            .source_parts_of("m/111122223333/eu-west-1/team/api")
            .unwrap();
        assert_eq!(parts.repository, "team/api");
        assert_eq!(parts.registry_id.as_deref(), Some("111122223333"));
        assert_eq!(parts.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            t("m/{registryId}/{repository}").source_parts_of("m/team/api"),
            None,
            "no account in the name"
        );
        let bound = t("golden/{repository}")
            .source_parts_of("golden/app")
            .unwrap();
        assert_eq!(
            (bound.repository.as_str(), bound.registry_id),
            ("app", None)
        );
        assert_eq!(
            t("{registryId}/{registryId}/{repository}")
                .source_parts_of("111122223333/444455556666/app"),
            None,
            "one placeholder, two values"
        );
    }

    #[test]
    fn rejects_bad_templates() {
        let error = RepositoryTemplate::parse("dr/{repo}").unwrap_err();
        assert!(error.contains("did you mean {repository}?"), "{error}");
        assert!(RepositoryTemplate::parse("dr/{repository").is_err());
        assert!(RepositoryTemplate::parse("dr}/{repository}").is_err());
        assert!(RepositoryTemplate::parse("{}").is_err());
        assert!(
            !RepositoryTemplate::parse("fixed")
                .unwrap()
                .uses_repository()
        );
    }

    #[test]
    fn repository_grammar() {
        for good in ["a", "team/api", "a.b_c__d---e/f", "dr/team-a/api"] {
            assert_eq!(check_repository_name(good), Ok(()), "{good}");
        }
        for bad in ["", "A", "a//b", "a/", "-a", "a___b", "a-", "a b", "a:b"] {
            assert!(check_repository_name(bad).is_err(), "{bad}");
        }
        assert!(check_repository_name(&"a".repeat(256)).is_ok());
        assert!(
            check_repository_name(&"a".repeat(257))
                .unwrap_err()
                .contains("longer than 256")
        );
    }
}
