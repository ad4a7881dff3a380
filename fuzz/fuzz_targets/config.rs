//! Replication configuration: `ferry::config::ReplicationConfig::load`.
//!
//! Input: the configuration text, optionally followed by a NUL byte and a probe image
//! (`repository` or `repository:tag`) to match against it.
#![no_main]

use std::collections::HashSet;

use ferry::config::{ReplicationConfig, Severity, SourceSpec, check_repository_name};
use ferry::reference::validate_repository;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, probe) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], std::str::from_utf8(&data[i + 1..]).ok()),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };

    let loaded = match ReplicationConfig::load(text, None) {
        Ok(loaded) => loaded,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(!e.path().is_empty(), "error without a path: {e}");
            return;
        }
    };
    let config = loaded.config;
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| w.severity == Severity::Warning)
    );
    assert!(
        config
            .validate()
            .iter()
            .all(|i| i.severity != Severity::Error),
        "a loaded config fails validation"
    );

    // The model written back out loads to the same model.
    let written = serde_json::to_string(&config).expect("serialise");
    let again = ReplicationConfig::load(&written, None)
        .unwrap_or_else(|e| panic!("written config refused: {e}\n{written}"))
        .config;
    assert_eq!(again, config, "{written}");

    // A default source that agrees with the document's changes nothing.
    if let Some(source) = &config.source {
        let same = ReplicationConfig::load(text, Some(source)).expect("same default source");
        assert_eq!(same.config, config);
    }
    let _ = ReplicationConfig::load(
        text,
        Some(&SourceSpec {
            registry_id: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            ..SourceSpec::default()
        }),
    );

    let destinations = config.destinations();
    if let Ok(destinations) = &destinations {
        for d in destinations {
            assert!(!config.endpoint_for(&d.registry).url.is_empty());
        }
    }

    let mut probes = vec![
        ("prod/api".to_string(), Some("1.4.2".to_string())),
        ("team/api".to_string(), None),
        ("a".to_string(), Some("latest".to_string())),
    ];
    if let Some(p) = probe {
        let (repo, tag) = match p.split_once(':') {
            Some((r, t)) => (r.to_string(), Some(t.to_string())),
            None => (p.to_string(), None),
        };
        probes.push((repo, tag));
    }
    let source = config.source_registry();
    for (repo, tag) in &probes {
        let _ = config.repository_selected(repo);
        let Ok(targets) = config.destinations_for(repo, tag.as_deref()) else {
            continue;
        };
        let mut seen = HashSet::new();
        for t in &targets {
            assert!(
                check_repository_name(&t.repository).is_ok()
                    && validate_repository(&t.repository).is_ok(),
                "{repo:?} renders to invalid {:?}",
                t.repository
            );
            assert!(
                seen.insert((t.destination.registry.clone(), t.repository.clone())),
                "duplicate target {t:?}"
            );
            assert!(
                !(source.as_ref() == Some(&t.destination.registry) && &t.repository == repo),
                "image replicated onto itself: {t:?}"
            );
        }
    }
});
