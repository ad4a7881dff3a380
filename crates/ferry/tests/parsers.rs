//! Bad input, in CI: property tests over the parsers that the inline proptests do not
//! cover (auth challenges, Docker config, endpoint maps, references built from the whole
//! grammar, listing `Link` headers), and the limits Ferry enforces with clear errors (manifest size, index
//! children and layers, tag length, repository grammar, request timeouts).
//!
//! The `cargo fuzz` targets in `fuzz/` run the same parsers for longer, outside CI.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry::Reference;
use ferry::auth::{Authenticator, Challenge, Credential, DockerConfig};
use ferry::digest::Digest;
use ferry::distribution::Error;
use ferry::manifest::{self, MAX_MANIFEST_BYTES, MAX_REFERENCES};
use ferry::reference::{MAX_REPOSITORY_LEN, MAX_TAG_LEN, validate_repository, validate_tag};
use ferry::registry::{ClientOptions, Endpoints, RegistryClient, Repo, next_page};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Never panics
// ---------------------------------------------------------------------------------------

/// `Link` header values near what registries send, with hostile variations and junk.
fn link_like() -> impl Strategy<Value = Vec<u8>> {
    let target = prop_oneof![
        Just("/v2/team/api/tags/list?n=1000&last=v9".to_string()),
        Just("?last=z".to_string()),
        Just("https://r.example/v2/team/api/tags/list?last=a#f".to_string()),
        Just("http://r.example/v2/team/api/tags/list".to_string()),
        Just("//evil.example/v2/team/api/tags/list".to_string()),
        Just("https://u:p@r.example/v2/team/api/tags/list".to_string()),
        Just("/v2/team/api/tags/list/../../../other/manifests/v1".to_string()),
        Just("/v2/team/api/%2e%2e/%2e%2e/x/tags/list".to_string()),
        "[ -~]{0,40}",
    ];
    let value = (
        "[ <]{0,2}",
        target,
        "[> ]{0,2}",
        prop::collection::vec(
            "(; ?rel=\"?(next|prev|next last|NEXT)\"?|;|; [a-z]{1,4}=[^,]{0,6})",
            0..3,
        ),
    )
        .prop_map(|(open, t, close, params)| format!("{open}{t}{close}{}", params.concat()));
    prop_oneof![
        prop::collection::vec(value, 0..3).prop_map(|v| v.join(", ").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..80),
    ]
}

proptest! {
    /// Same invariant as the `link` fuzz target: no panic, and a next page is on the
    /// page's origin and path (only the query changes), without credentials or fragment.
    #[test]
    fn link_headers_never_leave_the_listing(values in prop::collection::vec(link_like(), 0..3)) {
        let page = url::Url::parse("https://r.example/v2/team/api/tags/list?n=1000").expect("url");
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        match next_page(&refs, &page) {
            Ok(None) => prop_assert!(refs.is_empty()),
            Ok(Some(next)) => {
                prop_assert_eq!(next.origin(), page.origin());
                prop_assert_eq!(next.path(), page.path());
                prop_assert!(next.username().is_empty() && next.password().is_none());
                prop_assert!(next.fragment().is_none());
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
}

/// Strings near what a registry sends in `WWW-Authenticate`, and junk.
fn challenge_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        (
            "(Bearer|bearer|BEARER|Basic|basic|Negotiate| |)",
            prop::collection::vec(
                (
                    "[a-zA-Z ]{0,8}",
                    "[=, ]{0,2}",
                    "\"?",
                    "[^\"]{0,20}",
                    "\\\\?\"?",
                    "[, ]{0,2}"
                ),
                0..6
            ),
        )
            .prop_map(|(scheme, params)| {
                let mut s = format!("{scheme} ");
                for (k, eq, q1, v, esc, sep) in params {
                    s.push_str(&format!("{k}{eq}{q1}{v}{esc}{sep}"));
                }
                s
            }),
    ]
}

/// JSON documents shaped like config.json, with wrong types and bad base64 mixed in.
fn docker_config_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        "[A-Za-z0-9+/=]{0,24}".prop_map(serde_json::Value::from),
        (".{0,10}", ".{0,10}").prop_map(|(u, p)| serde_json::Value::from(
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )),
    ];
    let entry = prop::collection::btree_map(
        "(auth|username|password|identitytoken|email|[a-z]{1,5})",
        value,
        0..4,
    );
    let auths = prop::collection::btree_map(".{0,20}", entry, 0..4);
    prop_oneof![
        ".{0,200}",
        auths.prop_map(|a| serde_json::json!({ "auths": a }).to_string()),
        prop::collection::btree_map(".{0,10}", ".{0,10}", 0..3)
            .prop_map(|h| serde_json::json!({ "credHelpers": h, "credsStore": "" }).to_string()),
    ]
}

proptest! {
    #[test]
    fn challenge_parse_never_panics(s in challenge_like()) {
        if let Some(Challenge::Bearer { realm, service, scope }) = Challenge::parse(&s) {
            // Values come back trimmed, whatever the input.
            for v in std::iter::once(&realm).chain(&service).chain(&scope) {
                prop_assert_eq!(v.trim(), v.as_str());
            }
        }
    }

    #[test]
    fn bearer_parameters_round_trip(
        realm in "[^\"\\\\]{0,40}",
        service in proptest::option::of("[ -~]{0,20}"),
        scope in proptest::option::of("[ -~]{0,40}"),
    ) {
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut header = format!("Bearer realm={}", quote(&realm));
        if let Some(s) = &service {
            header.push_str(&format!(",service={}", quote(s)));
        }
        if let Some(s) = &scope {
            header.push_str(&format!(", scope={}", quote(s)));
        }
        prop_assert_eq!(
            Challenge::parse(&header),
            Some(Challenge::Bearer {
                realm: realm.trim().to_string(),
                service: service.as_deref().map(|s| s.trim().to_string()),
                scope: scope.as_deref().map(|s| s.trim().to_string()),
            })
        );
    }

    #[test]
    fn docker_config_parse_never_panics(s in docker_config_like()) {
        if let Ok(config) = DockerConfig::parse(&s) {
            // Debug never shows a credential: it is built from hosts and helper names only.
            let _ = format!("{config:?}");
        }
    }

    #[test]
    fn docker_config_credentials_round_trip(
        host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        user in "[^:]{0,12}",
        password in ".{0,24}",
        other in ".{0,24}",
    ) {
        let text = |password: &str| {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            serde_json::json!({"auths": {(host.clone()): {"auth": auth}}}).to_string()
        };
        let config = DockerConfig::parse(&text(&password)).expect("valid config.json");
        prop_assert_eq!(
            config.credential(&host).expect("no helper"),
            Some(Credential::basic(&user, &password))
        );
        // Debug never depends on the secret.
        let other = DockerConfig::parse(&text(&other)).expect("valid config.json");
        prop_assert_eq!(format!("{config:?}"), format!("{other:?}"));
    }

    #[test]
    fn endpoints_parse_never_panics(s in "([a-z0-9.:\\[\\]-]{0,12}(=[a-z:/0-9.\\[\\]@?#%-]{0,30})?[, ]{0,2}){0,4}|.{0,100}") {
        if let Ok(e) = Endpoints::parse(&s) {
            for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let host = pair.split_once('=').expect("accepted pairs hold '='").0.trim();
                prop_assert!(e.is_overridden(host));
                let base = e.base_url(host);
                prop_assert!(base.starts_with("http://") || base.starts_with("https://"), "{}", base);
                prop_assert!(!base.ends_with('/'), "{}", base);
            }
        }
        let _ = ferry::registry::is_loopback(&s);
    }
}

// ---------------------------------------------------------------------------------------
// Valid references round-trip through Display
// ---------------------------------------------------------------------------------------

fn component() -> impl Strategy<Value = String> {
    (
        "[a-z0-9]{1,6}",
        prop::collection::vec(("(\\.|_|__|-{1,3})", "[a-z0-9]{1,6}"), 0..3),
    )
        .prop_map(|(first, rest)| {
            let mut c = first;
            for (sep, part) in rest {
                c.push_str(&sep);
                c.push_str(&part);
            }
            c
        })
}

fn registry_host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,10}(\\.[a-z0-9-]{1,10}){1,3}(:[0-9]{1,5})?".prop_filter("port fits u16", |h| h
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_ok())),
        "localhost(:[1-9][0-9]{0,3})?",
        "(127\\.0\\.0\\.1|10\\.1\\.2\\.3)(:[1-9][0-9]{0,3})?",
        "\\[::1\\]:[1-9][0-9]{0,3}",
        "[0-9]{12}\\.dkr\\.ecr(-fips)?\\.[a-z]{2}-[a-z]{4,7}-[1-3]\\.amazonaws\\.com(\\.cn)?",
        Just("docker.io".to_string()),
    ]
}

proptest! {
    #[test]
    fn valid_references_round_trip_through_display(
        host in registry_host(),
        components in prop::collection::vec(component(), 1..4),
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9._-]{0,40}"),
        digest in proptest::option::of(any::<[u8; 4]>()),
    ) {
        let repository = components.join("/");
        prop_assume!(repository.len() <= MAX_REPOSITORY_LEN);
        // Docker Hub's one-component names gain `library/`.
        let expected_repo = if host == "docker.io" && components.len() == 1 {
            format!("library/{repository}")
        } else {
            repository.clone()
        };
        let digest = digest.map(|d| Digest::of(&d));
        let mut text = format!("{host}/{repository}");
        if let Some(t) = &tag {
            text.push(':');
            text.push_str(t);
        }
        if let Some(d) = &digest {
            text.push('@');
            text.push_str(d.as_str());
        }
        let r = Reference::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&r.registry, &host);
        prop_assert_eq!(&r.repository, &expected_repo);
        prop_assert_eq!(&r.tag, &tag);
        prop_assert_eq!(&r.digest, &digest);
        let shown = r.to_string();
        let again = Reference::parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(&again, &r);
        prop_assert_eq!(again.to_string(), shown);
        if host.contains(".dkr.ecr") {
            let ecr = r.ecr().expect("an ECR host");
            prop_assert_eq!(ecr.host(), host);
        }
    }

    #[test]
    fn repository_grammar_agrees_with_the_config_grammar(s in "[a-zA-Z0-9./_-]{0,30}") {
        let engine = validate_repository(&s);
        let config = ferry::config::check_repository_name(&s);
        prop_assert_eq!(engine.is_ok(), config.is_ok(), "{:?}: {:?} vs {:?}", s, engine, config);
    }
}

// ---------------------------------------------------------------------------------------
// Limits, with clear errors
// ---------------------------------------------------------------------------------------

fn descriptor_json(n: usize) -> String {
    format!(
        r#"{{"mediaType":"{}","digest":"{}","size":{n}}}"#,
        manifest::OCI_MANIFEST,
        Digest::of(n.to_string().as_bytes())
    )
}

fn list(n: usize) -> String {
    (0..n).map(descriptor_json).collect::<Vec<_>>().join(",")
}

#[test]
fn index_children_are_limited_to_1000() {
    assert_eq!(MAX_REFERENCES, 1000);
    let index = |n| format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, list(n));
    match manifest::parse(index(1000).as_bytes()) {
        Ok(manifest::Parsed::Index { manifests, .. }) => assert_eq!(manifests.len(), 1000),
        other => panic!("1000 children must be accepted: {other:?}"),
    }
    let err = manifest::parse(index(1001).as_bytes()).expect_err("1001 children");
    assert_eq!(err, "index lists 1001 manifests, over the limit of 1000");
}

#[test]
fn image_layers_are_limited_to_1000() {
    let image = |n| {
        format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
            descriptor_json(99_999),
            list(n)
        )
    };
    assert!(manifest::parse(image(1000).as_bytes()).is_ok());
    let err = manifest::parse(image(1001).as_bytes()).expect_err("1001 layers");
    assert_eq!(err, "manifest lists 1001 layers, over the limit of 1000");
    // Legacy artifact manifests list `blobs`: the same limit.
    let artifact = format!(
        r#"{{"mediaType":"{}","blobs":[{}]}}"#,
        manifest::OCI_ARTIFACT,
        list(1001)
    );
    assert!(
        manifest::parse(artifact.as_bytes())
            .unwrap_err()
            .contains("over the limit of 1000")
    );
}

#[test]
fn tags_are_limited_to_128_characters() {
    assert_eq!(MAX_TAG_LEN, 128);
    assert!(validate_tag(&"t".repeat(128)).is_ok());
    assert_eq!(
        validate_tag(&"t".repeat(129)).unwrap_err(),
        "tag is 129 characters, over 128"
    );
    let err = Reference::parse(&format!("ghcr.io/org/app:{}", "t".repeat(129))).unwrap_err();
    assert!(matches!(err, Error::InvalidReference { .. }), "{err:?}");
    assert_eq!(err.code(), "invalid-reference");
    assert!(
        err.to_string().contains("tag is 129 characters, over 128"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(Reference::parse(&format!("ghcr.io/org/app:{}", "t".repeat(128))).is_ok());
}

#[test]
fn repository_grammar_is_enforced_with_reasons() {
    for ok in [
        "a",
        "a/b/c",
        "a.b",
        "a_b",
        "a__b",
        "a-b",
        "a---b",
        "0/1",
        "team/api.v2_x-y",
    ] {
        assert!(validate_repository(ok).is_ok(), "{ok:?} should be accepted");
    }
    for (bad, reason) in [
        ("", "empty repository name"),
        (
            "../etc",
            "must start and end with a lowercase letter or digit",
        ),
        (
            "a/../b",
            "must start and end with a lowercase letter or digit",
        ),
        (
            "a/./b",
            "must start and end with a lowercase letter or digit",
        ),
        ("a..b", "invalid separator \"..\""),
        ("a//b", "empty path component"),
        ("/a", "empty path component"),
        ("a/", "empty path component"),
        (
            "Team/api",
            "must start and end with a lowercase letter or digit",
        ),
        (
            "team/Api",
            "must start and end with a lowercase letter or digit",
        ),
        ("team/aPi", "invalid separator \"P\""),
        ("a___b", "invalid separator \"___\""),
        ("a_-b", "invalid separator \"_-\""),
        ("a b", "invalid separator \" \""),
        ("a:b", "invalid separator \":\""),
        ("a%2fb", "invalid separator \"%\""),
    ] {
        let err = validate_repository(bad).expect_err(bad);
        assert!(
            err.contains(reason),
            "{bad:?}: {err:?} should say {reason:?}"
        );
    }
    assert!(validate_repository(&"a".repeat(MAX_REPOSITORY_LEN)).is_ok());
    assert_eq!(
        validate_repository(&"a".repeat(MAX_REPOSITORY_LEN + 1)).unwrap_err(),
        "repository name is 257 characters, over 256"
    );
    // References apply the same grammar.
    let err = Reference::parse("ghcr.io/org/../../etc/passwd").unwrap_err();
    assert_eq!(err.code(), "invalid-reference");
    assert!(err.to_string().contains("org/../../etc/passwd"), "{err}");
}

#[test]
fn manifest_size_limit_is_4_mib_with_a_clear_error() {
    assert_eq!(MAX_MANIFEST_BYTES, 4 * 1024 * 1024);
    let err = Error::ManifestTooLarge {
        registry: "ghcr.io".into(),
        repository: "org/app".into(),
        reference: "v1".into(),
        size: MAX_MANIFEST_BYTES + 1,
        limit: MAX_MANIFEST_BYTES,
    };
    assert_eq!(
        err.to_string(),
        "manifest org/app@v1 at ghcr.io is 4194305 bytes, over the 4194304 byte limit"
    );
    assert_eq!(err.code(), "manifest-too-large");
    assert!(!err.is_retryable());
}

// ---------------------------------------------------------------------------------------
// The registry client enforces the limits on the wire
// ---------------------------------------------------------------------------------------

/// How the stand-in registry answers a manifest GET.
#[derive(Clone, Copy)]
enum Answer {
    /// `Content-Length` over the limit (the body is never sent).
    Announced(u64),
    /// A chunked body of this many bytes, no `Content-Length`.
    Chunked(usize),
    /// A valid manifest padded with spaces to exactly this many bytes.
    Exact(usize),
    /// Headers, then silence.
    Stall,
}

/// A one-route HTTP/1.1 server on loopback answering every request with `answer`.
fn serve(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let ct = format!("Content-Type: {}\r\n", manifest::OCI_MANIFEST);
                let _ = match answer {
                    Answer::Announced(len) => stream.write_all(
                        format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: {len}\r\n\r\n").as_bytes(),
                    ),
                    Answer::Chunked(total) => (|| {
                        stream.write_all(
                            format!("HTTP/1.1 200 OK\r\n{ct}Transfer-Encoding: chunked\r\n\r\n")
                                .as_bytes(),
                        )?;
                        let chunk = vec![b' '; 64 * 1024];
                        let mut left = total;
                        while left > 0 {
                            let n = left.min(chunk.len());
                            stream.write_all(format!("{n:x}\r\n").as_bytes())?;
                            stream.write_all(&chunk[..n])?;
                            stream.write_all(b"\r\n")?;
                            left -= n;
                        }
                        stream.write_all(b"0\r\n\r\n")
                    })(),
                    Answer::Exact(total) => {
                        let mut body = format!(
                            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[]}}"#,
                            manifest::OCI_MANIFEST,
                            descriptor_json(1)
                        )
                        .into_bytes();
                        body.resize(total, b' ');
                        stream
                            .write_all(
                                format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: {total}\r\n\r\n")
                                    .as_bytes(),
                            )
                            .and_then(|()| stream.write_all(&body))
                    }
                    Answer::Stall => stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\n{ct}Content-Length: 100\r\n\r\n{{")
                                .as_bytes(),
                        )
                        .map(|()| std::thread::sleep(Duration::from_secs(10))),
                };
            });
        }
    });
    port
}

fn get_manifest(answer: Answer, options: ClientOptions) -> Result<usize, Box<Error>> {
    let port = serve(answer);
    let client =
        RegistryClient::new(Authenticator::anonymous(), Endpoints::new(), options).expect("client");
    let repo = Repo::new(format!("127.0.0.1:{port}"), "org/app");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(client.get_manifest(&repo, "v1"))
        .map(|m| m.bytes.len())
        .map_err(Box::new)
}

fn quick() -> ClientOptions {
    ClientOptions {
        max_retries: 0,
        read_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

#[test]
fn client_refuses_an_announced_manifest_over_4_mib() {
    let err =
        get_manifest(Answer::Announced(MAX_MANIFEST_BYTES + 1), quick()).expect_err("too large");
    assert!(
        matches!(
            *err,
            Error::ManifestTooLarge {
                size: 4_194_305,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("over the 4194304 byte limit"),
        "{err}"
    );
}

#[test]
fn client_refuses_a_streamed_manifest_over_4_mib() {
    let err = get_manifest(Answer::Chunked(MAX_MANIFEST_BYTES as usize + 1), quick())
        .expect_err("too large");
    assert!(matches!(*err, Error::ManifestTooLarge { .. }), "{err:?}");
    assert_eq!(err.code(), "manifest-too-large");
}

#[test]
fn client_accepts_a_manifest_of_exactly_4_mib() {
    let len = get_manifest(Answer::Exact(MAX_MANIFEST_BYTES as usize), quick()).expect("accepted");
    assert_eq!(len as u64, MAX_MANIFEST_BYTES);
}

#[test]
fn a_silent_registry_times_out_with_a_retryable_error() {
    let started = Instant::now();
    let err = get_manifest(Answer::Stall, quick()).expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.code(), "unreachable", "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}
