//! The destinations of one configuration, resolved once and indexed by registry.
//!
//! [`ReplicationConfig::destinations_for`] resolves every destination of every selecting
//! rule and merges the targets by a linear search: fine for a handful of destinations,
//! quadratic for an organization destination that resolves to thousands of accounts ×
//! regions. A [`DestinationIndex`] is built once per configuration (per resolution of its
//! organization destinations) and answers the same questions with the same answers:
//!
//! - [`DestinationIndex::target`]: the one target of an image at a given destination
//!   registry and repository (what authorizing a job asks). It examines only the
//!   destinations of that registry, so its cost does not grow with the number of
//!   destinations.
//! - [`DestinationIndex::targets`]: every target of an image (what dispatching a push
//!   asks), merged through a hash map: linear in the targets it returns.
//! - [`DestinationIndex::destinations_at`]: the distinct destinations of one registry, as
//!   [`ReplicationConfig::destinations`] lists them (the loop guard's question).
//!
//! Errors are the same too: a selecting rule whose destination cannot be resolved, or whose
//! `repositoryName` renders an invalid name for the repository, fails the question with the
//! error the linear search meets first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::destination::{Destination, Target};
use super::error::{ConfigError, Issue};
use super::gates::{GateChoice, Gates, merge_platforms};
use super::model::{ReplicationConfig, Rule};
use super::pull_through::{cache_prefix, rule_names_cache};
use super::registry::Registry;
use super::template::RepositoryTemplate;

/// Which tags a rule must select for an image to be selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    /// The image `repository:tag`: the rule's tag filters apply.
    Tag(&'a str),
    /// A digest-only image: only rules with `untagged: true` select it.
    Untagged,
    /// Any image of the repository, whatever its tag (a digest-only delete or storage-class
    /// change, a referrer): every rule selecting the repository.
    AnyTag,
}

impl<'a> Selection<'a> {
    /// `Tag` for `Some`, `Untagged` for `None`, as [`ReplicationConfig::destinations_for`]
    /// reads its `tag`.
    pub fn of(tag: Option<&'a str>) -> Selection<'a> {
        tag.map_or(Selection::Untagged, Selection::Tag)
    }

    fn selects(self, rule: &Rule, repository: &str) -> bool {
        match self {
            Selection::Tag(tag) => rule.selects(repository, Some(tag)),
            Selection::Untagged => rule.selects(repository, None),
            Selection::AnyTag => rule.repository_selected(repository),
        }
    }
}

/// One rule: its filters and flags, and its destinations resolved.
#[derive(Debug)]
struct IndexedRule {
    /// The rule without its destinations (filters and flags).
    rule: Rule,
    /// The rule's gates, shared by the targets it selects.
    gates: Option<Arc<Gates>>,
    /// The destinations, in document order, up to the first that cannot be resolved.
    destinations: Vec<Destination>,
    /// Why the destination after the last of `destinations` could not be resolved.
    unresolved: Option<Issue>,
    /// The first destination of each distinct `repositoryName` template, in document
    /// order: rendering depends on the template only, so these are the renderings that can
    /// fail, first failure first.
    templates: Vec<usize>,
}

impl IndexedRule {
    /// The first error the linear search meets in this rule for `repository`.
    fn check(&self, repository: &str) -> Result<(), ConfigError> {
        for &d in &self.templates {
            self.destinations[d].repository_for(repository)?;
        }
        match &self.unresolved {
            Some(issue) => Err(ConfigError::Invalid {
                issues: vec![issue.clone()],
            }),
            None => Ok(()),
        }
    }
}

/// The destinations of one configuration, resolved and indexed; see the module
/// documentation. Build it from the configuration the questions are about (bound to the
/// image's source registry, [`ReplicationConfig::for_source`]), once per configuration.
#[derive(Debug)]
pub struct DestinationIndex {
    rules: Vec<IndexedRule>,
    source: Option<Registry>,
    pull_through_prefixes: Vec<String>,
    /// Per destination registry, its destinations as (rule, destination) in document order.
    by_registry: HashMap<Registry, Vec<(usize, usize)>>,
    /// The first destination of the document that cannot be resolved.
    unresolved: Option<Issue>,
    /// Destinations looked at by the questions so far.
    examined: AtomicU64,
}

impl DestinationIndex {
    /// Resolves every destination of `config` and indexes them.
    pub fn new(config: &ReplicationConfig) -> DestinationIndex {
        let mut rules = Vec::with_capacity(config.rules.len());
        let mut by_registry: HashMap<Registry, Vec<(usize, usize)>> = HashMap::new();
        let mut first_unresolved = None;
        for (r, rule) in config.rules.iter().enumerate() {
            let mut destinations = Vec::with_capacity(rule.destinations.len());
            let mut unresolved = None;
            let mut templates: Vec<usize> = Vec::new();
            let mut seen: HashSet<Option<RepositoryTemplate>> = HashSet::new();
            for (d, spec) in rule.destinations.iter().enumerate() {
                let path = format!("rules[{r}].destinations[{d}]");
                match Destination::resolve(spec, config.source.as_ref(), &path) {
                    Ok(destination) => {
                        if seen.insert(destination.template.clone()) {
                            templates.push(d);
                        }
                        by_registry
                            .entry(destination.registry.clone())
                            .or_default()
                            .push((r, d));
                        destinations.push(destination);
                    }
                    Err(issue) => {
                        first_unresolved.get_or_insert_with(|| issue.clone());
                        unresolved = Some(issue);
                        break;
                    }
                }
            }
            rules.push(IndexedRule {
                rule: without_destinations(rule),
                gates: rule.shared_gates(),
                destinations,
                unresolved,
                templates,
            });
        }
        DestinationIndex {
            rules,
            source: config.source_registry(),
            pull_through_prefixes: config.pull_through_prefixes.clone(),
            by_registry,
            unresolved: first_unresolved,
            examined: AtomicU64::new(0),
        }
    }

    /// Destinations the questions asked of this index have looked at so far (each answer
    /// of [`DestinationIndex::target`] looks only at its registry's).
    pub fn examined(&self) -> u64 {
        self.examined.load(Ordering::Relaxed)
    }

    /// Resolved destinations in all (with repetitions across rules).
    pub fn len(&self) -> usize {
        self.rules.iter().map(|r| r.destinations.len()).sum()
    }

    /// Whether no rule has a destination.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count(&self, n: usize) {
        self.examined.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The rules selecting the image, each checked as the linear search checks it: the
    /// first error of the first selecting rule that has one fails the question.
    fn selecting(
        &self,
        repository: &str,
        selection: Selection<'_>,
    ) -> Result<Vec<bool>, ConfigError> {
        let prefix = cache_prefix(&self.pull_through_prefixes, repository);
        let mut selected = Vec::with_capacity(self.rules.len());
        for indexed in &self.rules {
            let rule = &indexed.rule;
            let yes = selection.selects(rule, repository)
                && prefix.is_none_or(|p| rule_names_cache(rule, p, repository));
            if yes {
                indexed.check(repository)?;
            }
            selected.push(yes);
        }
        Ok(selected)
    }

    /// The destination repository of `destination` for `repository`, or `None` when the
    /// target is the source itself (skipped).
    fn rendered(&self, destination: &Destination, repository: &str) -> Option<String> {
        // Checked by `selecting`: every template of a selecting rule renders.
        let name = destination.repository_for(repository).ok()?;
        let itself = name == repository && self.source.as_ref() == Some(&destination.registry);
        (!itself).then_some(name)
    }

    /// Every target of the image, as [`ReplicationConfig::destinations_for`] answers (the
    /// same targets in the same order), for `selection`.
    pub fn targets(
        &self,
        repository: &str,
        selection: Selection<'_>,
    ) -> Result<Vec<Target>, ConfigError> {
        let selected = self.selecting(repository, selection)?;
        let mut targets: Vec<Target> = Vec::new();
        let mut at: HashMap<(Registry, String), usize> = HashMap::new();
        for (indexed, _) in self.rules.iter().zip(&selected).filter(|(_, s)| **s) {
            self.count(indexed.destinations.len());
            for destination in &indexed.destinations {
                let Some(name) = self.rendered(destination, repository) else {
                    continue;
                };
                let key = (destination.registry.clone(), name);
                match at.get(&key) {
                    Some(&i) => merge(&mut targets[i], indexed),
                    None => {
                        at.insert(key.clone(), targets.len());
                        targets.push(target(destination, key.1, indexed));
                    }
                }
            }
        }
        Ok(targets)
    }

    /// The target of the image at `registry` and `destination_repository`: the one of
    /// [`DestinationIndex::targets`] there, if any. Looks only at the destinations of
    /// `registry`.
    pub fn target(
        &self,
        repository: &str,
        selection: Selection<'_>,
        registry: &Registry,
        destination_repository: &str,
    ) -> Result<Option<Target>, ConfigError> {
        let selected = self.selecting(repository, selection)?;
        let mut found: Option<Target> = None;
        let candidates = self
            .by_registry
            .get(registry)
            .map_or(&[][..], Vec::as_slice);
        for &(r, d) in candidates {
            self.count(1);
            if !selected[r] {
                continue;
            }
            let indexed = &self.rules[r];
            let destination = &indexed.destinations[d];
            match self.rendered(destination, repository) {
                Some(name) if name == destination_repository => {}
                _ => continue,
            }
            match &mut found {
                Some(t) => merge(t, indexed),
                None => {
                    found = Some(target(
                        destination,
                        destination_repository.to_owned(),
                        indexed,
                    ));
                }
            }
        }
        Ok(found)
    }

    /// The distinct destinations (by template) at `registry`, in document order, as
    /// [`ReplicationConfig::destinations`] lists them; fails as it does when any
    /// destination of the document cannot be resolved.
    pub fn destinations_at(&self, registry: &Registry) -> Result<Vec<&Destination>, ConfigError> {
        if let Some(issue) = &self.unresolved {
            return Err(ConfigError::Invalid {
                issues: vec![issue.clone()],
            });
        }
        let mut out: Vec<&Destination> = Vec::new();
        for &(r, d) in self
            .by_registry
            .get(registry)
            .map_or(&[][..], Vec::as_slice)
        {
            self.count(1);
            let destination = &self.rules[r].destinations[d];
            if !out.iter().any(|seen| seen.template == destination.template) {
                out.push(destination);
            }
        }
        Ok(out)
    }
}

fn without_destinations(rule: &Rule) -> Rule {
    Rule {
        destinations: Vec::new(),
        repository_filters: rule.repository_filters.clone(),
        tag_filters: rule.tag_filters.clone(),
        exclude_tag_filters: rule.exclude_tag_filters.clone(),
        untagged: rule.untagged,
        referrers: rule.referrers,
        deletes: rule.deletes,
        delete_replication: rule.delete_replication,
        archive: rule.archive,
        gates: None,
        platforms: rule.platforms.clone(),
    }
}

fn target(destination: &Destination, repository: String, indexed: &IndexedRule) -> Target {
    let rule = &indexed.rule;
    Target {
        destination: destination.clone(),
        repository,
        referrers: rule.referrers(),
        referrers_explicit: rule.referrers_explicit(),
        deletes: rule.deletes,
        archive: !rule.archive.is_ignore(),
        gates: GateChoice::first(indexed.gates.as_ref()),
        platforms: rule.platforms.clone(),
    }
}

fn merge(target: &mut Target, indexed: &IndexedRule) {
    let rule = &indexed.rule;
    target.referrers |= rule.referrers();
    target.referrers_explicit |= rule.referrers_explicit();
    target.deletes |= rule.deletes;
    target.archive |= !rule.archive.is_ignore();
    GateChoice::merge(&mut target.gates, indexed.gates.as_ref());
    merge_platforms(&mut target.platforms, &rule.platforms);
}

#[cfg(test)]
mod tests;
