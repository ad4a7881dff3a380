//! Manifest and index parsing: `ferry::manifest::parse` and `media_type_of`.
//!
//! Input: the manifest bytes, optionally preceded by a `Content-Type` value and a NUL byte.
#![no_main]

use ferry::manifest::{self, Descriptor, MAX_REFERENCES, Parsed};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };

    let media_type = manifest::media_type_of(body, content_type);
    if let Some(m) = &media_type {
        assert!(!m.is_empty(), "empty media type");
    }

    let Ok(parsed) = manifest::parse(body) else {
        return;
    };
    match &parsed {
        Parsed::Index { manifests, .. } => {
            assert!(
                manifests.len() <= MAX_REFERENCES,
                "{} children accepted",
                manifests.len()
            );
            // An index is always recognised as one when nothing else says what it is. (Not
            // for documents serde_json cannot hold as a `Value` — bytes that are not UTF-8,
            // numbers beyond f64 — in fields `parse` skips unread: `media_type_of` reads
            // `manifests` as a `Value`, refuses the document, and the client with it.)
            if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
                assert!(
                    manifest::media_type_of(body, None).is_some(),
                    "an index with no media type"
                );
            }
        }
        Parsed::Image { layers, .. } => {
            assert!(
                layers.len() <= MAX_REFERENCES,
                "{} layers accepted",
                layers.len()
            );
        }
    }
    // Every digest the manifest refers to is a valid sha256 digest.
    for d in descriptors(&parsed) {
        assert_eq!(d.digest.hex().len(), 64);
        assert!(
            d.digest
                .hex()
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }

    // What was read survives being written out and read again.
    let rewritten = match &parsed {
        Parsed::Index { manifests, subject } => {
            json!({"schemaVersion": 2, "manifests": manifests, "subject": subject})
        }
        Parsed::Image {
            config,
            layers,
            subject,
        } => {
            json!({"schemaVersion": 2, "config": config, "layers": layers, "subject": subject})
        }
    };
    let bytes = serde_json::to_vec(&rewritten).expect("serialise");
    let again = manifest::parse(&bytes)
        .unwrap_or_else(|e| panic!("re-serialised manifest refused: {e}\n{rewritten}"));
    assert_eq!(without_platforms(again), without_platforms(parsed));
});

fn descriptors(p: &Parsed) -> Vec<&Descriptor> {
    match p {
        Parsed::Index { manifests, subject } => manifests.iter().chain(subject).collect(),
        Parsed::Image {
            config,
            layers,
            subject,
        } => config.iter().chain(layers).chain(subject).collect(),
    }
}

/// Platforms are free JSON: floats in them need not round-trip bit for bit through
/// serde_json, so they are left out of the comparison.
fn without_platforms(p: Parsed) -> Parsed {
    let clear = |mut d: Descriptor| {
        d.platform = None;
        d
    };
    match p {
        Parsed::Index { manifests, subject } => Parsed::Index {
            manifests: manifests.into_iter().map(clear).collect(),
            subject: subject.map(clear),
        },
        Parsed::Image {
            config,
            layers,
            subject,
        } => Parsed::Image {
            config: config.map(clear),
            layers: layers.into_iter().map(clear).collect(),
            subject: subject.map(clear),
        },
    }
}
