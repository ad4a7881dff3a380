//! Image references, repository names, tags, digests and ECR hosts.
//!
//! The first byte picks a mode; the rest is the input:
//! - `0`: a reference built from parts (registry host, port, repository, tag, digest).
//!   When every part is valid on its own the whole must parse back to those parts.
//! - anything else: the bytes as a reference string, repository name, tag, digest and
//!   host, each checked against its grammar's invariants.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use ferry::Reference;
use ferry::config::check_repository_name;
use ferry::digest::Digest;
use ferry::reference::{
    EcrRegistry, MAX_REPOSITORY_LEN, MAX_TAG_LEN, validate_repository, validate_tag,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Parts {
    host: String,
    port: Option<u16>,
    repository: String,
    tag: Option<String>,
    digest: Option<[u8; 8]>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == 0 {
        if let Ok(parts) = Parts::arbitrary(&mut Unstructured::new(rest)) {
            from_parts(&parts);
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    reference(text);
    repository(text);
    tag(text);
    digest(text);
    ecr_host(text);
});

/// A parsed reference is valid part by part and survives Display and parse unchanged.
fn reference(text: &str) {
    let Ok(r) = Reference::parse(text) else {
        return;
    };
    assert!(text.len() <= 1024, "accepted {} bytes", text.len());
    assert!(!r.registry.is_empty(), "{text:?}: empty registry");
    assert!(
        !r.registry.contains('/'),
        "{text:?}: registry {:?} holds '/'",
        r.registry
    );
    assert!(
        validate_repository(&r.repository).is_ok(),
        "{text:?}: repository {:?} breaks the grammar",
        r.repository
    );
    if let Some(t) = &r.tag {
        assert!(
            validate_tag(t).is_ok(),
            "{text:?}: tag {t:?} breaks the grammar"
        );
    }
    if let Some(d) = &r.digest {
        check_digest(d);
    }
    let shown = r.to_string();
    let again = Reference::parse(&shown)
        .unwrap_or_else(|e| panic!("{text:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, r, "{text:?} → {shown:?} parses differently");
    assert_eq!(again.to_string(), shown, "Display is not a fixpoint");
    assert!(!r.manifest_reference().is_empty());
    if let Some(e) = r.ecr() {
        let host = r.registry.split(':').next().unwrap_or_default();
        assert_eq!(e.host(), host, "ECR host does not round-trip");
    }
}

/// Accepted repository names never traverse, are lowercase, and the hand-written grammar
/// agrees with the configuration's regular expression.
fn repository(text: &str) {
    let mine = validate_repository(text);
    let regex = check_repository_name(text);
    assert_eq!(
        mine.is_ok(),
        regex.is_ok(),
        "{text:?}: validate_repository says {mine:?}, check_repository_name says {regex:?}"
    );
    if mine.is_ok() {
        assert!(text.len() <= MAX_REPOSITORY_LEN);
        assert!(!text.starts_with('/') && !text.ends_with('/'), "{text:?}");
        for c in text.split('/') {
            assert!(
                !c.is_empty() && c != "." && c != "..",
                "{text:?}: component {c:?}"
            );
            assert!(!c.contains(".."), "{text:?}: '..' inside {c:?}");
        }
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)),
            "{text:?}: character outside [a-z0-9._/-]"
        );
    }
}

/// Accepted tags hold 1 to 128 characters of `[A-Za-z0-9_.-]`, not starting with `.`/`-`.
fn tag(text: &str) {
    if validate_tag(text).is_ok() {
        assert!(!text.is_empty() && text.len() <= MAX_TAG_LEN, "{text:?}");
        assert!(!text.starts_with('.') && !text.starts_with('-'), "{text:?}");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "{text:?}"
        );
    }
}

fn digest(text: &str) {
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.as_str(), text);
        check_digest(&d);
    }
}

fn check_digest(d: &Digest) {
    let s = d.as_str();
    assert!(s.starts_with("sha256:"), "{s}");
    assert_eq!(d.hex().len(), 64, "{s}");
    assert!(
        d.hex()
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{s}"
    );
    assert_eq!(d.to_string().parse::<Digest>().ok().as_ref(), Some(d));
}

fn ecr_host(text: &str) {
    if let Some(e) = EcrRegistry::from_host(text) {
        assert_eq!(e.account.len(), 12);
        assert_eq!(e.host(), text.split(':').next().unwrap_or_default());
    }
}

/// Parts valid on their own make a reference that parses back to exactly them.
fn from_parts(p: &Parts) {
    // A host the grammar recognises as a registry: lowercase labels with at least one dot.
    let label: String = p
        .host
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(20)
        .collect();
    if label.is_empty() {
        return;
    }
    let mut host = format!("{label}.example");
    if let Some(port) = p.port {
        host = format!("{host}:{port}");
    }
    if validate_repository(&p.repository).is_err() {
        // ':' starts a tag, '@' a digest, and trailing '/' are dropped: a name with them
        // may be a valid reference all the same; so may an empty one (`host:port/` is the
        // Docker Hub image `library/host` with tag `port`, as docker reads it).
        let plain = !p.repository.is_empty()
            && !p.repository.contains([':', '@'])
            && !p.repository.ends_with('/');
        let text = format!("{host}/{}", p.repository);
        if plain {
            assert!(
                Reference::parse(&text).is_err(),
                "{text:?} accepted with an invalid name"
            );
        }
        return;
    }
    let tag = match &p.tag {
        Some(t) if validate_tag(t).is_err() => {
            let bad = format!("{host}/{}:{t}", p.repository);
            // A tag with '/' or '@' is read as part of the name or digest, which may be valid.
            if !t.contains('/') && !t.contains('@') {
                assert!(
                    Reference::parse(&bad).is_err(),
                    "{bad:?} accepted with tag {t:?}"
                );
            }
            return;
        }
        t => t.clone(),
    };
    let digest = p.digest.map(|seed| Digest::of(&seed));
    let mut text = format!("{host}/{}", p.repository);
    if let Some(t) = &tag {
        text = format!("{text}:{t}");
    }
    if let Some(d) = &digest {
        text = format!("{text}@{d}");
    }
    let r = Reference::parse(&text).unwrap_or_else(|e| panic!("{text:?} from valid parts: {e}"));
    assert_eq!(r.registry, host);
    assert_eq!(r.repository, p.repository);
    assert_eq!(r.tag, tag);
    assert_eq!(r.digest, digest);
    assert_eq!(r.to_string(), text);
}
