//! Property tests of filters, matching and parsing.

use proptest::prelude::*;

use crate::config::{
    ReplicationConfig, RepositoryFilter, RepositoryFilterType, Rule, TagFilter, TagFilterType,
};

fn tag_filter_type() -> impl Strategy<Value = TagFilterType> {
    prop_oneof![
        Just(TagFilterType::PrefixMatch),
        Just(TagFilterType::Wildcard),
        Just(TagFilterType::Regex),
        Just(TagFilterType::Semver),
    ]
}

/// Filters that may or may not compile; invalid ones simply match nothing.
fn tag_filter() -> impl Strategy<Value = TagFilter> {
    ("[a-z0-9.*<>=, -]{0,8}", tag_filter_type())
        .prop_filter_map("compiles", |(text, kind)| TagFilter::new(text, kind).ok())
}

const VALID: &str = r#"{"source": {"registryId": "111122223333", "region": "us-east-1"},
  "registries": {"localhost:5000": {"endpoint": "http://127.0.0.1:5000", "plainHttp": true}},
  "rules": [{"destinations": [{"region": "us-west-2", "registryId": "111122223333", "repositoryName": "dr/{repository}"},
                               {"registry": "localhost:5000"}],
             "repositoryFilters": [{"filter": "prod/", "filterType": "PREFIX_MATCH"}],
             "tagFilters": [{"filter": ">=1.2, <2", "filterType": "SEMVER"}],
             "excludeTagFilters": [{"filter": "*-rc", "filterType": "WILDCARD"}],
             "untagged": true, "deletes": true}]}"#;

proptest! {
    #[test]
    fn exclude_always_wins(
        tag in "[A-Za-z0-9_.-]{1,12}",
        includes in prop::collection::vec(tag_filter(), 0..4),
        mut excludes in prop::collection::vec(tag_filter(), 0..3),
        exclude_kind in prop_oneof![Just(TagFilterType::PrefixMatch), Just(TagFilterType::Wildcard), Just(TagFilterType::Regex)],
        cut in 0usize..12,
    ) {
        // An exclude filter built to match this tag, among arbitrary others.
        let text = match exclude_kind {
            TagFilterType::PrefixMatch => tag[..cut.min(tag.len())].to_owned(),
            TagFilterType::Wildcard => format!("{}*", &tag[..cut.min(tag.len())]),
            _ => regex::escape(&tag),
        };
        let matching = TagFilter::new(text, exclude_kind).unwrap();
        prop_assert!(matching.matches(&tag));
        excludes.push(matching);
        let rule = Rule { tag_filters: includes, exclude_tag_filters: excludes, ..Rule::default() };
        prop_assert!(!rule.tag_selected(&tag));
        prop_assert!(!rule.selects("repo", Some(&tag)));
    }

    #[test]
    fn selection_is_include_and_not_exclude(
        tag in "[a-z0-9.-]{0,8}",
        includes in prop::collection::vec(tag_filter(), 0..3),
        excludes in prop::collection::vec(tag_filter(), 0..3),
    ) {
        let included = includes.is_empty() || includes.iter().any(|f| f.matches(&tag));
        let excluded = excludes.iter().any(|f| f.matches(&tag));
        let rule = Rule { tag_filters: includes, exclude_tag_filters: excludes, ..Rule::default() };
        prop_assert_eq!(rule.tag_selected(&tag), included && !excluded);
    }

    #[test]
    fn prefix_match_is_starts_with(filter in "\\PC{0,6}", name in "\\PC{0,10}") {
        let repository = RepositoryFilter::new(filter.clone(), RepositoryFilterType::PrefixMatch).unwrap();
        prop_assert_eq!(repository.matches(&name), name.starts_with(&filter));
        let tag = TagFilter::new(filter.clone(), TagFilterType::PrefixMatch).unwrap();
        prop_assert_eq!(tag.matches(&name), name.starts_with(&filter));
        // Also for names built to start with the filter.
        let longer = format!("{filter}{name}");
        prop_assert!(repository.matches(&longer));
    }

    #[test]
    fn lone_wildcard_matches_everything(name in any::<String>()) {
        prop_assert!(RepositoryFilter::new("*", RepositoryFilterType::Wildcard).unwrap().matches(&name));
        prop_assert!(TagFilter::new("*", TagFilterType::Wildcard).unwrap().matches(&name));
    }

    #[test]
    fn wildcard_without_star_is_equality(filter in "[a-z0-9./?\\[\\]{}+-]{0,8}", name in "[a-z0-9./?\\[\\]{}+-]{0,8}") {
        let wildcard = RepositoryFilter::new(filter.clone(), RepositoryFilterType::Wildcard).unwrap();
        prop_assert_eq!(wildcard.matches(&name), name == filter);
    }

    #[test]
    fn parsing_never_panics(text in any::<String>()) {
        let _ = ReplicationConfig::from_json(&text);
    }

    #[test]
    fn parsing_mutated_configs_never_panics(at in 0usize..2000, cut in 0usize..40, insert in "\\PC{0,6}") {
        let mut text = VALID.to_owned();
        let start = (0..=at.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (start + cut).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        if let Err(error) = ReplicationConfig::from_json(&text) {
            prop_assert!(!error.path().is_empty());
        }
    }

    #[test]
    fn targets_are_unique_and_never_the_source(
        repository in "(prod/)?[a-z]{1,6}(/[a-z]{1,4})?",
        tag in prop::option::of("v?[0-9]\\.[0-9](-rc)?|latest"),
    ) {
        let config = ReplicationConfig::from_json(VALID).unwrap();
        let targets = config.destinations_for(&repository, tag.as_deref()).unwrap();
        let source = config.source_registry().unwrap();
        for (i, target) in targets.iter().enumerate() {
            prop_assert!(!(target.destination.registry == source && target.repository == repository));
            prop_assert!(targets[..i].iter().all(|t| (&t.destination.registry, &t.repository) != (&target.destination.registry, &target.repository)));
        }
        let selected = repository.starts_with("prod/");
        prop_assert_eq!(config.repository_selected(&repository), selected);
        if !selected {
            prop_assert!(targets.is_empty());
        }
    }
}
