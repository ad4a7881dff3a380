//! The Bearer token flow of the distribution token spec, and what Ferry trusts of it.
//!
//! A `WWW-Authenticate: Bearer realm=…` challenge is registry output, so its realm is
//! untrusted ([`realm_policy`]):
//! - the realm must be `https`, except on the registry's own origin when the registry is
//!   plain HTTP on loopback (local test registries);
//! - credentials (Basic, or an OAuth2 identity/refresh token) go only to a realm the
//!   registry's owner controls: the registry's own host, a subdomain of it, one of its
//!   parent domains (at least two labels: `registry.gitlab.com` → `gitlab.com`; whoever
//!   holds a parent domain holds the registry's DNS already), or its documented token
//!   service ([`TOKEN_SERVICES`]: Docker Hub → `auth.docker.io`). A realm elsewhere is
//!   refused when Ferry holds credentials for the registry (an `auth` error naming the
//!   realm host; nothing is sent), and used without credentials for anonymous pulls;
//! - the realm's address obeys the redirect rule of [`crate::net::netguard`].
//!
//! Token answers are read up to [`MAX_TOKEN_RESPONSE`] bytes, and their `expires_in` is
//! clamped to [`MAX_TOKEN_TTL`] ([`parse_token_response`]).

use std::time::Duration;

use url::{Host, Url};

use super::{Credential, Secret};
use crate::error::Error;
use crate::net::netguard::{self, AddrClass};

/// Largest token response body read (1 MiB); a larger one is an error.
pub const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;
/// Longest lifetime granted to a token, whatever `expires_in` says (24 h).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Bearer tokens without `expires_in` live 60 s by the token spec.
pub const DEFAULT_BEARER_TTL: Duration = Duration::from_secs(60);

/// Registries whose token service is on another host, as their operators document it
/// (registry host, realm host).
pub const TOKEN_SERVICES: &[(&str, &str)] = &[
    ("docker.io", "auth.docker.io"),
    ("registry-1.docker.io", "auth.docker.io"),
    ("index.docker.io", "auth.docker.io"),
    ("registry.hub.docker.com", "auth.docker.io"),
];

/// What a token realm may be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealmUse {
    /// The registry's credentials (if any).
    Credentials,
    /// Nothing: an anonymous token request.
    Anonymous,
}

/// Whether `realm` may be used for `registry` (its name, with optional port) served at
/// `endpoint`, and with what; the error says why not. See the module documentation.
pub fn realm_policy(
    registry: &str,
    endpoint: &Url,
    realm: &Url,
    has_credential: bool,
) -> Result<RealmUse, String> {
    let Some(realm_name) = realm.host_str().map(normal) else {
        return Err("the token realm has no host".into());
    };
    let realm_host = match realm.port() {
        Some(p) => format!("{realm_name}:{p}"),
        None => realm_name.clone(),
    };
    match realm.scheme() {
        "https" => {}
        "http" => {
            let own_loopback = realm.origin() == endpoint.origin()
                && netguard::registry_class(endpoint) == AddrClass::Loopback;
            if !own_loopback {
                return Err(format!(
                    "token realm {realm_host} is plain http: only https realms are used (or the registry's own origin when it is plain HTTP on loopback)"
                ));
            }
        }
        other => return Err(format!("token realm {realm_host} has scheme {other:?}")),
    }
    netguard::check_next_hop(netguard::registry_class(endpoint), endpoint, realm)
        .map_err(|reason| format!("token realm {realm_host} refused: {reason}"))?;
    let names = [
        endpoint.host_str().map(normal),
        Url::parse(&format!("https://{registry}"))
            .ok()
            .and_then(|u| u.host_str().map(normal)),
    ];
    let trusted = names
        .iter()
        .flatten()
        .any(|h| token_host_trusted(h, &realm_name));
    match (trusted, has_credential) {
        (true, _) => Ok(RealmUse::Credentials),
        (false, false) => Ok(RealmUse::Anonymous),
        (false, true) => Err(format!(
            "token realm {realm_host} is not the registry's host or its token service: the registry's credentials are not sent there"
        )),
    }
}

fn normal(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a realm on `realm` is run by whoever runs the registry on `registry`.
fn token_host_trusted(registry: &str, realm: &str) -> bool {
    if registry == realm || TOKEN_SERVICES.contains(&(registry, realm)) {
        return true;
    }
    let is_ip = |h: &str| !matches!(Host::parse(h), Ok(Host::Domain(_)));
    if is_ip(registry) || is_ip(realm) {
        return false;
    }
    realm.ends_with(&format!(".{registry}"))
        || (registry.ends_with(&format!(".{realm}")) && realm.contains('.'))
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// A token response body: the token (visible ASCII, as a header value must be) and its
/// lifetime (`expires_in` seconds clamped to `[0, 24 h]`, 60 s when absent or not a
/// number). Never panics; the error says what was wrong.
pub fn parse_token_response(body: &[u8]) -> Result<(Secret, Duration), String> {
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(format!(
            "the token response is over {MAX_TOKEN_RESPONSE} bytes"
        ));
    }
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("the token service answered invalid JSON: {e}"))?;
    let token = [answer.token, answer.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or("the token service answered without a token")?;
    if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("the token service answered a token that is not a header value".into());
    }
    let ttl = answer
        .expires_in
        .as_ref()
        .and_then(seconds)
        .unwrap_or(DEFAULT_BEARER_TTL)
        .min(MAX_TOKEN_TTL);
    Ok((Secret::new(token), ttl))
}

fn seconds(v: &serde_json::Value) -> Option<Duration> {
    if let Some(n) = v.as_u64() {
        return Some(Duration::from_secs(n.min(MAX_TOKEN_TTL.as_secs())));
    }
    let f = v.as_f64()?;
    Some(if f.is_finite() && f > 0.0 {
        Duration::from_secs_f64(f.min(MAX_TOKEN_TTL.as_secs_f64()))
    } else {
        Duration::ZERO
    })
}

/// Read a body of at most `cap` bytes; `None` when it is longer.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > cap {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// The Bearer token flow: check the realm, then GET it with service and scope (Basic
/// credentials if we have them and the realm may have them), or POST an OAuth2 refresh
/// token.
pub(super) async fn fetch_bearer(
    http: &reqwest::Client,
    host: &str,
    endpoint: &Url,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    cred: Option<&Credential>,
) -> Result<(Secret, Duration), Error> {
    let auth_error = |status: u16, message: String| Error::Auth {
        registry: host.to_string(),
        repository: scope.to_string(),
        status,
        message,
    };
    let realm_url = Url::parse(realm).map_err(|_| {
        auth_error(
            401,
            format!("the registry's token realm {realm:?} is not a URL"),
        )
    })?;
    let cred = match realm_policy(host, endpoint, &realm_url, cred.is_some()) {
        Ok(RealmUse::Credentials) => cred,
        Ok(RealmUse::Anonymous) => None,
        Err(reason) => return Err(auth_error(401, format!("refused: {reason}"))),
    };
    let req = match cred {
        Some(Credential::IdentityToken(refresh)) => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", refresh.expose().to_string()),
                ("client_id", "ferry".to_string()),
                ("scope", scope.to_string()),
            ];
            if let Some(s) = service {
                form.push(("service", s.to_string()));
            }
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", url_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            http.post(realm_url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        }
        other => {
            let mut u = realm_url.clone();
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    q.append_pair("scope", s);
                }
            }
            let mut r = http.get(u);
            if let Some(Credential::Basic { username, password }) = other {
                r = r.basic_auth(username, Some(password.expose()));
            }
            r
        }
    };
    let realm_host = realm_url.host_str().unwrap_or_default().to_string();
    let transport =
        |e: &reqwest::Error| crate::net::transport_error(host, &realm_url, &realm_host, e);
    let resp = req.send().await.map_err(|e| transport(&e))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(auth_error(
            status,
            "the token service refused the request".to_string(),
        ));
    }
    let body = read_capped(resp, MAX_TOKEN_RESPONSE)
        .await
        .map_err(|e| transport(&e))?
        .ok_or_else(|| {
            auth_error(
                status,
                format!("the token response from {realm_host} is over {MAX_TOKEN_RESPONSE} bytes"),
            )
        })?;
    parse_token_response(&body).map_err(|m| auth_error(status, m))
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn realm_rules_over_a_table() {
        use RealmUse::*;
        // (registry, endpoint, realm, has credential, expected: Some(use) or None = refused)
        let table: &[(&str, &str, &str, bool, Option<RealmUse>)] = &[
            (
                "docker.io",
                "https://registry-1.docker.io",
                "https://auth.docker.io/token",
                true,
                Some(Credentials),
            ),
            (
                "ghcr.io",
                "https://ghcr.io",
                "https://ghcr.io/token",
                true,
                Some(Credentials),
            ),
            (
                "quay.io",
                "https://quay.io",
                "https://quay.io/v2/auth",
                true,
                Some(Credentials),
            ),
            (
                "registry.gitlab.com",
                "https://registry.gitlab.com",
                "https://gitlab.com/jwt/auth",
                true,
                Some(Credentials),
            ),
            (
                "us-docker.pkg.dev",
                "https://us-docker.pkg.dev",
                "https://us-docker.pkg.dev/v2/token",
                true,
                Some(Credentials),
            ),
            (
                "public.ecr.aws",
                "https://public.ecr.aws",
                "https://public.ecr.aws/token/",
                true,
                Some(Credentials),
            ),
            (
                "reg.example.com",
                "https://reg.example.com",
                "https://auth.reg.example.com/t",
                true,
                Some(Credentials),
            ),
            (
                "reg.example.com:5000",
                "https://reg.example.com:5000",
                "https://reg.example.com/t",
                true,
                Some(Credentials),
            ),
            // A sibling, another host, another registry's token service: no credentials.
            (
                "reg.example.com",
                "https://reg.example.com",
                "https://evil.example.com/t",
                true,
                None,
            ),
            (
                "ghcr.io",
                "https://ghcr.io",
                "https://auth.docker.io/token",
                true,
                None,
            ),
            (
                "myreg.azurecr.io",
                "https://myreg.azurecr.io",
                "https://evil.azurecr.io/oauth2/token",
                true,
                None,
            ),
            ("ghcr.io", "https://ghcr.io", "https://io/token", true, None),
            // Anonymous: any https realm, sent nothing.
            (
                "ghcr.io",
                "https://ghcr.io",
                "https://tokens.example.net/t",
                false,
                Some(Anonymous),
            ),
            // Plain http: only the registry's own origin on loopback.
            (
                "127.0.0.1:5000",
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5000/token",
                true,
                Some(Credentials),
            ),
            (
                "127.0.0.1:5000",
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5001/token",
                true,
                None,
            ),
            (
                "127.0.0.1:5000",
                "http://127.0.0.1:5000",
                "http://127.0.0.2:5000/token",
                false,
                None,
            ),
            (
                "reg.example.com",
                "https://reg.example.com",
                "http://reg.example.com/token",
                false,
                None,
            ),
            (
                "reg.internal:5000",
                "http://reg.internal:5000",
                "http://reg.internal:5000/token",
                true,
                None,
            ),
            // IP literals: only the registry's own, and never link-local or loopback
            // from a registry that is not on one.
            (
                "127.0.0.1:5000",
                "http://127.0.0.1:5000",
                "https://127.0.0.2/token",
                true,
                None,
            ),
            (
                "127.0.0.1:5000",
                "http://127.0.0.1:5000",
                "https://127.0.0.1:8443/token",
                true,
                Some(Credentials),
            ),
            (
                "ghcr.io",
                "https://ghcr.io",
                "https://169.254.169.254/token",
                false,
                None,
            ),
            (
                "ghcr.io",
                "https://ghcr.io",
                "https://[::1]/token",
                false,
                None,
            ),
            (
                "ghcr.io",
                "https://ghcr.io",
                "ftp://ghcr.io/token",
                true,
                None,
            ),
        ];
        for (registry, endpoint, realm, cred, want) in table {
            let got = realm_policy(registry, &url(endpoint), &url(realm), *cred);
            assert_eq!(
                got.as_ref().ok(),
                want.as_ref(),
                "{registry} {realm} cred={cred}: {got:?}"
            );
            if let Err(reason) = got {
                let host = url(realm)
                    .host_str()
                    .map(str::to_string)
                    .unwrap_or_default();
                assert!(reason.contains(&host), "{reason} names {host}");
            }
        }
    }

    #[test]
    fn token_bodies() {
        let (t, ttl) = parse_token_response(br#"{"token":"abc","expires_in":300}"#).expect("ok");
        assert_eq!((t.expose(), ttl), ("abc", Duration::from_secs(300)));
        let (t, ttl) = parse_token_response(br#"{"access_token":"x"}"#).expect("ok");
        assert_eq!((t.expose(), ttl), ("x", DEFAULT_BEARER_TTL));
        let (t, _) = parse_token_response(br#"{"token":"","access_token":"y"}"#).expect("ok");
        assert_eq!(t.expose(), "y");
        for (body, ttl) in [
            (
                r#"{"token":"a","expires_in":18446744073709551615}"#,
                MAX_TOKEN_TTL,
            ),
            (r#"{"token":"a","expires_in":1e300}"#, MAX_TOKEN_TTL),
            (r#"{"token":"a","expires_in":-5}"#, Duration::ZERO),
            (r#"{"token":"a","expires_in":"soon"}"#, DEFAULT_BEARER_TTL),
            (r#"{"token":"a","expires_in":null}"#, DEFAULT_BEARER_TTL),
            (
                r#"{"token":"a","expires_in":1.5}"#,
                Duration::from_millis(1500),
            ),
        ] {
            assert_eq!(
                parse_token_response(body.as_bytes()).expect(body).1,
                ttl,
                "{body}"
            );
        }
        for bad in [
            &b"{}"[..],
            b"[]",
            b"not json",
            br#"{"token":"a\nb"}"#,
            br#"{"token":5}"#,
        ] {
            assert!(
                parse_token_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut huge = br#"{"token":""#.to_vec();
        huge.resize(MAX_TOKEN_RESPONSE + 1, b'a');
        huge.extend_from_slice(br#""}"#);
        let e = parse_token_response(&huge).expect_err("too large");
        assert!(e.contains("over 1048576 bytes"), "{e}");
    }

    proptest! {
        /// Any body: no panic; a token found is a header value and its lifetime is at most
        /// 24 h, so adding it to `Instant::now()` cannot overflow.
        #[test]
        fn token_responses_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok((t, ttl)) = parse_token_response(&body) {
                prop_assert!(!t.expose().is_empty());
                prop_assert!(ttl <= MAX_TOKEN_TTL);
                let header = format!("Bearer {}", t.expose());
                prop_assert!(http::HeaderValue::from_str(&header).is_ok());
            }
        }

        /// Any `expires_in` a JSON number can hold is clamped.
        #[test]
        fn expires_in_is_clamped(n in any::<u64>(), f in any::<f64>(), i in any::<i64>()) {
            for v in [n.to_string(), format!("{f:e}"), i.to_string()] {
                let body = format!(r#"{{"token":"t","expires_in":{v}}}"#);
                if let Ok((_, ttl)) = parse_token_response(body.as_bytes()) {
                    prop_assert!(ttl <= MAX_TOKEN_TTL);
                    let _ = std::time::Instant::now() + ttl;
                }
            }
        }

        /// Credentials never go to a realm host that is not the registry's own, a
        /// subdomain or parent of it, or its documented token service.
        #[test]
        fn credentials_stay_with_the_registry(
            registry in "[a-z]{1,6}(\\.[a-z]{1,6}){0,3}",
            realm in "[a-z]{1,6}(\\.[a-z]{1,6}){0,3}",
            https in any::<bool>(),
        ) {
            let scheme = if https { "https" } else { "http" };
            let Ok(realm_url) = Url::parse(&format!("{scheme}://{realm}/token")) else { return Ok(()) };
            let Ok(endpoint) = Url::parse(&format!("https://{registry}")) else { return Ok(()) };
            let got = realm_policy(&registry, &endpoint, &realm_url, true);
            if got.is_ok() {
                prop_assert!(https);
                let related = realm == registry
                    || TOKEN_SERVICES.contains(&(registry.as_str(), realm.as_str()))
                    || realm.ends_with(&format!(".{registry}"))
                    || (registry.ends_with(&format!(".{realm}")) && realm.contains('.'));
                prop_assert!(related, "{} trusted for {}", realm, registry);
            }
        }
    }
}
