//! Validation of the rules' `archive` setting: `follow` acts on ECR registries only (the
//! archive storage class is ECR's), so naming it where it can do nothing is a warning.

use super::destination::Destination;
use super::error::Issue;
use super::model::ReplicationConfig;
use super::parse::child;

impl ReplicationConfig {
    /// Warnings for `archive: "follow"` on a rule whose source, or one of whose resolved
    /// destinations (`resolved`: rule index and destination), is not an ECR registry.
    pub(super) fn archive_issues(&self, resolved: &[(usize, Destination)]) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            if rule.archive.is_ignore() {
                continue;
            }
            let path = child(&format!("rules[{r}]"), "archive");
            if let Some(source) = self.source_registry().filter(|s| !s.is_ecr()) {
                issues.push(Issue::warning(
                    &path,
                    format!(
                        "`follow` does nothing here: the source {} is not an ECR registry and has no archive storage class",
                        source.host()
                    ),
                ));
            }
            for (_, d) in resolved
                .iter()
                .filter(|(i, d)| *i == r && !d.registry.is_ecr())
            {
                issues.push(Issue::warning(
                    &path,
                    format!(
                        "{} ({}) is not an ECR registry: its copies are not archived or restored; archived source images are still not copied there",
                        d.registry.host(),
                        d.path
                    ),
                ));
            }
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ArchiveMode, ReplicationConfig, Severity};

    #[test]
    fn follow_names_ecr_registries_only() {
        let config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"archive": "follow", "destinations": [
                    {"registryId": "222222222222", "region": "us-west-2"},
                    {"registry": "registry.example.com"}]},
                  {"destinations": [{"registry": "other.example.com"}]}]}"#,
        )
        .unwrap();
        assert_eq!(config.rules[0].archive, ArchiveMode::Follow);
        assert_eq!(config.rules[1].archive, ArchiveMode::Ignore);
        let issues: Vec<_> = config
            .validate()
            .into_iter()
            .filter(|i| i.path.ends_with("archive"))
            .collect();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "rules[0].archive");
        assert_eq!(issues[0].severity, Severity::Warning);
        assert!(issues[0].message.contains("registry.example.com"));
        let targets = config.destinations_for("app", Some("v1")).unwrap();
        assert_eq!(
            targets.iter().map(|t| t.archive).collect::<Vec<_>>(),
            [true, true, false]
        );
    }

    #[test]
    fn an_unknown_mode_is_refused() {
        let err = ReplicationConfig::from_json(
            r#"{"rules": [{"archive": "copy", "destinations": [{"registry": "r.example.com"}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("archive") || err.contains("copy"), "{err}");
    }
}
