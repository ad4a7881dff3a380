//! Unit tests of the engine's errors: codes, classification, and the conversion from the
//! distribution client's.

use super::*;

fn registry(status: u16) -> Error {
    Error::Registry {
        registry: "r".into(),
        method: "GET".into(),
        url: "/v2/".into(),
        status,
        message: String::new(),
        retry_after: None,
    }
}

#[test]
fn statuses_classify() {
    for s in [408, 429, 500, 502, 503, 504] {
        assert!(registry(s).is_retryable(), "{s} should be retryable");
    }
    for s in [400, 401, 403, 404, 405, 409, 412, 413] {
        assert!(!registry(s).is_retryable(), "{s} should be permanent");
    }
}

#[test]
fn an_untrusted_certificate_is_permanent() {
    let e = Error::TlsUntrusted {
        registry: "harbor.corp.example".into(),
        reason: "unknown issuer".into(),
    };
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "tls-untrusted");
    let text = e.to_string();
    assert!(text.contains("harbor.corp.example"), "{text}");
    assert!(
        text.contains(r#"registries."harbor.corp.example".caCertificates"#),
        "{text}"
    );
}

#[test]
fn archived_is_permanent() {
    let e = Error::Archived {
        registry: "r".into(),
        repository: "a".into(),
        reference: "v1".into(),
        message: "image is archived".into(),
    };
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "archived");
}

#[test]
fn no_matching_platform_is_permanent_and_names_both_sides() {
    let e = Error::NoMatchingPlatform {
        registry: "r".into(),
        repository: "a".into(),
        digest: Digest::of(b"x"),
        wanted: vec!["linux/s390x".into()],
        available: vec!["linux/amd64".into(), "linux/arm64".into()],
    };
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "no-matching-platform");
    let text = e.to_string();
    assert!(text.contains("linux/s390x"), "{text}");
    assert!(text.contains("linux/amd64, linux/arm64"), "{text}");
}

/// One of each of the distribution client's errors (and the cases its classifiers
/// tell apart): the engine's variant it becomes has the same message, code,
/// classification, `Retry-After` and expired-credential answer.
#[test]
fn distribution_errors_convert_unchanged() {
    use ferry_distribution::Error as D;
    let r = || "r.example".to_string();
    let a = || "team/api".to_string();
    let registry = |status, retry_after| D::Registry {
        registry: r(),
        method: "GET".into(),
        url: "/v2/team/api/manifests/v1".into(),
        status,
        message: "slow down".into(),
        retry_after,
    };
    let auth = |status, message: &str| D::Auth {
        registry: r(),
        repository: a(),
        status,
        message: message.into(),
    };
    let aws = |retryable| D::Aws {
        service: "ecr",
        operation: "GetAuthorizationToken",
        message: "ThrottlingException: slow down".into(),
        retryable,
    };
    let samples = vec![
        D::InvalidReference {
            input: "Bad/Ref".into(),
            reason: "upper case".into(),
        },
        D::InvalidDigest {
            input: "sha256:zz".into(),
            reason: "not hex".into(),
        },
        auth(401, "unauthorized"),
        auth(403, "Your authorization token has expired."),
        auth(403, "denied"),
        D::NotFound {
            registry: r(),
            repository: a(),
            what: "v1".into(),
        },
        D::DigestMismatch {
            registry: r(),
            repository: a(),
            expected: Digest::of(b"x"),
            actual: Digest::of(b"y").to_string(),
            detail: "3 bytes".into(),
        },
        D::TagConflict {
            registry: r(),
            repository: a(),
            tag: "v1".into(),
            existing: "sha256:aa".into(),
            wanted: Digest::of(b"x"),
        },
        D::ManifestTooLarge {
            registry: r(),
            repository: a(),
            reference: "v1".into(),
            size: 5,
            limit: 4,
        },
        D::InvalidManifest {
            registry: r(),
            repository: a(),
            reference: "v1".into(),
            reason: "not JSON".into(),
        },
        registry(429, Some(std::time::Duration::from_secs(3))),
        registry(503, None),
        registry(405, None),
        D::Unreachable {
            registry: r(),
            message: "connection reset".into(),
        },
        D::TlsUntrusted {
            registry: r(),
            reason: "unknown issuer".into(),
        },
        aws(true),
        aws(false),
        D::Unsupported("range".into()),
        D::Config("registries[\"r.example\"].caCertificates[0]: no PEM".into()),
        D::Io {
            path: "config.json".into(),
            source: std::io::Error::other("denied"),
        },
        D::Refused {
            registry: r(),
            target: "http://169.254.169.254".into(),
            reason: "link-local".into(),
        },
        D::Archived {
            registry: r(),
            repository: a(),
            reference: "v1".into(),
            message: "image is archived".into(),
        },
        D::ResponseTooLarge {
            registry: r(),
            what: "GET /v2/team/api/tags/list".into(),
            limit: 1024,
        },
        D::Pagination {
            registry: r(),
            url: "/v2/team/api/tags/list".into(),
            reason: "a page already read".into(),
        },
    ];
    for d in samples {
        let (text, code) = (d.to_string(), d.code());
        let (retryable, after, expired) =
            (d.is_retryable(), d.retry_after(), d.is_expired_credential());
        let e = Error::from(d);
        assert_eq!(e.to_string(), text);
        assert_eq!(e.code(), code, "{text}");
        assert_eq!(e.is_retryable(), retryable, "{text}");
        assert_eq!(e.retry_after(), after, "{text}");
        assert_eq!(e.is_expired_credential(), expired, "{text}");
    }
}

#[test]
fn tag_conflict_is_permanent() {
    let e = Error::TagConflict {
        registry: "r".into(),
        repository: "a".into(),
        tag: "v1".into(),
        existing: "sha256:aa".into(),
        wanted: Digest::of(b"x"),
    };
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "tag-conflict");
}
