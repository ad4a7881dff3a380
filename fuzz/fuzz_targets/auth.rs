//! How Ferry reaches and authenticates to a registry: `WWW-Authenticate` challenges
//! (`ferry::auth::Challenge::parse`), Docker `config.json` (`ferry::auth::DockerConfig::parse`)
//! and endpoint overrides (`ferry::registry::Endpoints::parse`).
//!
//! The first byte picks a mode (modulo 5); the rest is the input:
//! - `0`: a Bearer challenge built from fuzzed realm, service and scope: parsing gives
//!   them back;
//! - `1`: a config.json built from a fuzzed host and credential: the lookup gives it back,
//!   and the config's `Debug` output does not depend on the secret;
//! - `2`, `3`, `4`: the bytes as a challenge header, a config.json, an endpoint map.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use ferry::auth::{Challenge, Credential, DockerConfig};
use ferry::registry::Endpoints;
use libfuzzer_sys::fuzz_target;

#[path = "shared/quote.rs"]
mod quote;
use quote::quoted;
use serde_json::json;

#[derive(Arbitrary, Debug)]
struct BearerParts {
    scheme_upper: bool,
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

#[derive(Arbitrary, Debug)]
enum Form {
    Auth,
    UserPassword,
    IdentityToken,
}

#[derive(Arbitrary, Debug)]
struct ConfigParts {
    host: String,
    user: String,
    password: String,
    other_password: String,
    form: Form,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    match mode % 5 {
        0 => {
            if let Ok(p) = BearerParts::arbitrary(&mut u) {
                bearer_round_trip(&p);
            }
        }
        1 => {
            if let Ok(p) = ConfigParts::arbitrary(&mut u) {
                config_round_trip(&p);
            }
        }
        m => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            match m {
                2 => challenge(text),
                3 => docker_config(text),
                _ => endpoints(text),
            }
        }
    }
});

fn bearer_round_trip(p: &BearerParts) {
    let scheme = if p.scheme_upper { "BEARER" } else { "Bearer" };
    let mut header = format!("{scheme} realm={}", quoted(&p.realm));
    if let Some(s) = &p.service {
        header.push_str(&format!(",service={}", quoted(s)));
    }
    if let Some(s) = &p.scope {
        header.push_str(&format!(", scope={}", quoted(s)));
    }
    let parsed = Challenge::parse(&header);
    let expected = Challenge::Bearer {
        realm: p.realm.trim().to_string(),
        service: p.service.as_deref().map(|s| s.trim().to_string()),
        scope: p.scope.as_deref().map(|s| s.trim().to_string()),
    };
    assert_eq!(parsed, Some(expected), "header {header:?}");
}

fn challenge(text: &str) {
    let parsed = Challenge::parse(text);
    // The scheme is case-insensitive.
    let trimmed = text.trim();
    let (scheme, rest) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
    let shouted = format!("{} {rest}", scheme.to_ascii_uppercase());
    assert_eq!(
        Challenge::parse(&shouted),
        parsed,
        "{text:?} vs {shouted:?}"
    );
    if let Some(Challenge::Bearer {
        realm,
        service,
        scope,
    }) = &parsed
    {
        for v in std::iter::once(realm).chain(service).chain(scope) {
            assert_eq!(v.trim(), v, "parameter values are trimmed");
        }
    }
}

fn config_round_trip(p: &ConfigParts) {
    let build = |password: &str| {
        let entry = match p.form {
            Form::Auth => {
                let raw = format!("{}:{password}", p.user);
                json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)})
            }
            Form::UserPassword => json!({"username": p.user, "password": password}),
            Form::IdentityToken => json!({"identitytoken": password}),
        };
        let mut auths = serde_json::Map::new();
        auths.insert(p.host.clone(), entry);
        json!({"auths": auths}).to_string()
    };
    let config = DockerConfig::parse(&build(&p.password))
        .unwrap_or_else(|e| panic!("generated config refused: {e}"));
    let expected = match p.form {
        // The first ':' separates user and password: a user holding ':' reads differently.
        Form::Auth if p.user.contains(':') => None,
        Form::Auth | Form::UserPassword => Some(Credential::basic(&p.user, &p.password)),
        Form::IdentityToken if p.password.is_empty() => None,
        Form::IdentityToken => Some(Credential::IdentityToken(ferry::auth::Secret::new(
            p.password.as_str(),
        ))),
    };
    let found = config
        .credential(&p.host)
        .expect("no helper configured: lookup cannot fail");
    if let Some(expected) = expected {
        assert_eq!(found, Some(expected), "host {:?}", p.host);
    } else if !matches!(p.form, Form::Auth) {
        assert_eq!(found, None);
    }
    // Debug shows hosts and helpers, never the secret: it is the same whatever the password
    // (an empty identity token is no credential, so the host is not listed then).
    let other = DockerConfig::parse(&build(&p.other_password)).expect("parse");
    let comparable = !matches!(p.form, Form::IdentityToken)
        || p.password.is_empty() == p.other_password.is_empty();
    if comparable {
        assert_eq!(
            format!("{config:?}"),
            format!("{other:?}"),
            "Debug depends on the password"
        );
    }
    if let Some(Credential::Basic { password, .. } | Credential::IdentityToken(password)) = &found {
        assert_eq!(format!("{password:?}"), "<redacted>");
        assert_eq!(format!("{password}"), "<redacted>");
    }
}

fn docker_config(text: &str) {
    if let Ok(config) = DockerConfig::parse(text) {
        // Lookups could start credential helpers: only Debug is exercised here.
        let _ = format!("{config:?}");
    }
}

fn endpoints(text: &str) {
    let Ok(e) = Endpoints::parse(text) else {
        for host in ["localhost:5000", "127.0.0.1", "[::1]:5000", text] {
            let _ = ferry::registry::is_loopback(host);
        }
        return;
    };
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (host, _) = pair.split_once('=').expect("accepted pairs hold '='");
        let host = host.trim();
        assert!(e.is_overridden(host), "{host:?} not overridden by {text:?}");
        let base = e.base_url(host);
        assert!(
            base.starts_with("http://") || base.starts_with("https://"),
            "{host:?} → {base:?}"
        );
        assert!(!base.ends_with('/'), "{base:?}");
    }
    let base = e.base_url("example.invalid");
    assert!(base.starts_with("http"));
}
