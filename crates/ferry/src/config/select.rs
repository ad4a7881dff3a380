//! Matching: which rules select an image, and where it goes.
//!
//! - A rule selects a repository when it has no repository filters or any of them matches.
//! - A rule selects a tag when it has no `tagFilters` or any matches, and no
//!   `excludeTagFilters` matches (exclude wins).
//! - A digest-only image (no tag) is selected only by rules with `untagged: true`; tag
//!   filters do not apply to it.
//! - Destinations of all selecting rules are unioned; one target per destination registry
//!   and rendered repository, with `referrers`, `deletes` and `archive: "follow"` OR'ed
//!   over the rules that select the image for it. A target equal to the source (same
//!   registry, same repository) is skipped.
//! - A pull-through cache repository of the source is selected only by rules that name it
//!   (`config::pull_through`).

use super::destination::{Destination, Target};
use super::error::ConfigError;
use super::gates::{GateChoice, merge_platforms};
use super::model::{ReplicationConfig, Rule};
use super::registry::Registry;

impl Rule {
    /// Whether this rule's repository filters select `repository`.
    pub fn repository_selected(&self, repository: &str) -> bool {
        self.repository_filters.is_empty()
            || self
                .repository_filters
                .iter()
                .any(|filter| filter.matches(repository))
    }

    /// Whether this rule's tag filters select `tag` (any include, or none given, and no
    /// exclude).
    pub fn tag_selected(&self, tag: &str) -> bool {
        let included = self.tag_filters.is_empty()
            || self.tag_filters.iter().any(|filter| filter.matches(tag));
        included
            && !self
                .exclude_tag_filters
                .iter()
                .any(|filter| filter.matches(tag))
    }

    /// Whether this rule selects the image `repository` with `tag` (`None`: digest-only).
    pub fn selects(&self, repository: &str, tag: Option<&str>) -> bool {
        self.repository_selected(repository)
            && match tag {
                Some(tag) => self.tag_selected(tag),
                None => self.untagged,
            }
    }
}

impl ReplicationConfig {
    /// Whether any rule selects `repository`, whatever the tag (for listing repositories to
    /// reconcile).
    pub fn repository_selected(&self, repository: &str) -> bool {
        self.rules.iter().any(|rule| {
            rule.repository_selected(repository) && !self.leaves_out_cache(rule, repository)
        })
    }

    /// Whether any rule selects `tag` in `repository`.
    pub fn tag_selected(&self, repository: &str, tag: &str) -> bool {
        self.rules.iter().any(|rule| {
            rule.selects(repository, Some(tag)) && !self.leaves_out_cache(rule, repository)
        })
    }

    /// Every target the image `repository:tag` (or the digest-only image, for `None`) is
    /// replicated to; see the module documentation for the rules. Fails when a destination
    /// cannot be resolved or a rendered repository name is invalid.
    pub fn destinations_for(
        &self,
        repository: &str,
        tag: Option<&str>,
    ) -> Result<Vec<Target>, ConfigError> {
        let source = self.source_registry();
        let mut targets: Vec<Target> = Vec::new();
        // Where each (registry, repository) already is in `targets`: one lookup per
        // destination instead of a search of every target found so far (organization
        // destinations resolve to thousands).
        let mut placed: std::collections::HashMap<(Registry, String), usize> =
            std::collections::HashMap::new();
        for (r, rule) in self.rules.iter().enumerate() {
            if !rule.selects(repository, tag) || self.leaves_out_cache(rule, repository) {
                continue;
            }
            let gates = rule.shared_gates();
            for (d, spec) in rule.destinations.iter().enumerate() {
                let path = format!("rules[{r}].destinations[{d}]");
                let destination =
                    Destination::resolve(spec, self.source.as_ref(), &path).map_err(|issue| {
                        ConfigError::Invalid {
                            issues: vec![issue],
                        }
                    })?;
                let name = destination.repository_for(repository)?;
                if name == repository && source.as_ref() == Some(&destination.registry) {
                    continue;
                }
                match placed.get(&(destination.registry.clone(), name.clone())) {
                    Some(&i) => {
                        let target = &mut targets[i];
                        target.referrers |= rule.referrers();
                        target.referrers_explicit |= rule.referrers_explicit();
                        target.deletes |= rule.deletes;
                        target.archive |= !rule.archive.is_ignore();
                        GateChoice::merge(&mut target.gates, gates.as_ref());
                        merge_platforms(&mut target.platforms, &rule.platforms);
                    }
                    None => {
                        placed.insert((destination.registry.clone(), name.clone()), targets.len());
                        targets.push(Target {
                            destination,
                            repository: name,
                            referrers: rule.referrers(),
                            referrers_explicit: rule.referrers_explicit(),
                            deletes: rule.deletes,
                            archive: !rule.archive.is_ignore(),
                            gates: GateChoice::first(gates.as_ref()),
                            platforms: rule.platforms.clone(),
                        });
                    }
                }
            }
        }
        Ok(targets)
    }
}
