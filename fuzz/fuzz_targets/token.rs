//! What Ferry trusts of a registry's token flow and redirects: token response bodies
//! (`ferry::auth::parse_token_response`), Bearer realms (`ferry::auth::realm_policy`,
//! after `Challenge::parse`) and the address predicate
//! (`ferry::registry::netguard::next_hop_allowed`).
//!
//! The first byte picks a mode (modulo 4); the rest is the input:
//! - `0`: the bytes as a token response body: no panic; a token found is visible ASCII (a
//!   header value) and its lifetime is at most 24 h, so it can be added to `Instant::now()`;
//! - `1`: a fuzzed `expires_in` number (u64, i64 or f64) in a valid body: clamped the same;
//! - `2`: a Bearer challenge built from a fuzzed realm for a fuzzed registry: a realm that
//!   is used is https (or the registry's own plain-HTTP loopback origin); one given
//!   credentials is on the registry's host, a sub- or parent domain of it, or its
//!   documented token service; an IP realm is one the address predicate allows;
//! - `3`: 16 bytes as an IPv6 and 4 as an IPv4 address: an IPv4-mapped address has the
//!   class of the IPv4 one, and a routable registry may reach exactly routable addresses.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use ferry::auth::{
    Challenge, MAX_TOKEN_TTL, RealmUse, TOKEN_SERVICES, parse_token_response, realm_policy,
};
use ferry::registry::netguard::{AddrClass, addr_class, next_hop_allowed, registry_class};
use libfuzzer_sys::fuzz_target;

#[path = "shared/quote.rs"]
mod quote;
use quote::quoted;
use url::{Host, Url};

#[derive(Arbitrary, Debug)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

#[derive(Arbitrary, Debug)]
struct RealmParts {
    registry: String,
    endpoint_http: bool,
    realm: String,
    has_credential: bool,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    match mode % 4 {
        0 => token_body(rest),
        1 => {
            if let Ok(n) = Number::arbitrary(&mut u) {
                let v = match n {
                    Number::Unsigned(n) => n.to_string(),
                    Number::Signed(n) => n.to_string(),
                    Number::Float(f) => format!("{f:e}"),
                };
                let body = format!(r#"{{"token":"t","expires_in":{v}}}"#);
                // Any finite number is a valid body: it must be accepted, clamped.
                if let Ok((_, ttl)) = parse_token_response(body.as_bytes()) {
                    check_ttl(ttl);
                } else {
                    assert!(v.contains("inf") || v.contains("NaN"), "{body} refused");
                }
            }
        }
        2 => {
            if let Ok(p) = RealmParts::arbitrary(&mut u) {
                realm(&p);
            }
        }
        _ => {
            if let Ok((v6, v4)) = <([u8; 16], [u8; 4])>::arbitrary(&mut u) {
                addresses(Ipv6Addr::from(v6), Ipv4Addr::from(v4));
            }
        }
    }
});

fn check_ttl(ttl: Duration) {
    assert!(ttl <= MAX_TOKEN_TTL, "{ttl:?}");
    let _ = Instant::now() + ttl;
}

fn token_body(body: &[u8]) {
    if let Ok((token, ttl)) = parse_token_response(body) {
        let t = token.expose();
        assert!(!t.is_empty());
        assert!(t.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{t:?}");
        check_ttl(ttl);
        assert_eq!(format!("{token:?}"), "<redacted>");
    }
}

fn realm(p: &RealmParts) {
    let scheme = if p.endpoint_http { "http" } else { "https" };
    let Ok(endpoint) = Url::parse(&format!("{scheme}://{}/", p.registry)) else {
        return;
    };
    let header = format!("Bearer realm={},service=\"s\"", quoted(&p.realm));
    let Some(Challenge::Bearer { realm, .. }) = Challenge::parse(&header) else {
        return;
    };
    let Ok(realm_url) = Url::parse(&realm) else {
        return;
    };
    let Ok(used) = realm_policy(&p.registry, &endpoint, &realm_url, p.has_credential) else {
        return;
    };
    match realm_url.scheme() {
        "https" => {}
        "http" => {
            assert_eq!(realm_url.origin(), endpoint.origin(), "{realm}");
            assert_eq!(registry_class(&endpoint), AddrClass::Loopback, "{realm}");
        }
        other => panic!("realm with scheme {other:?} used: {realm}"),
    }
    let class = registry_class(&endpoint);
    match realm_url.host() {
        Some(Host::Ipv4(ip)) => assert!(next_hop_allowed(class, IpAddr::V4(ip)), "{realm}"),
        Some(Host::Ipv6(ip)) => assert!(next_hop_allowed(class, IpAddr::V6(ip)), "{realm}"),
        _ => {}
    }
    if used == RealmUse::Credentials && p.has_credential && realm_url.scheme() == "https" {
        let realm_host = realm_url
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let hosts = [
            endpoint.host_str().map(str::to_ascii_lowercase),
            Url::parse(&format!("https://{}", p.registry))
                .ok()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase)),
        ];
        let related = hosts.iter().flatten().any(|h| {
            let (h, r) = (h.trim_end_matches('.'), realm_host.trim_end_matches('.'));
            h == r
                || TOKEN_SERVICES.contains(&(h, r))
                || r.ends_with(&format!(".{h}"))
                || (h.ends_with(&format!(".{r}")) && r.contains('.'))
        });
        assert!(related, "credentials for {} sent to {realm}", p.registry);
    }
}

fn addresses(v6: Ipv6Addr, v4: Ipv4Addr) {
    let mapped = v4.to_ipv6_mapped();
    assert_eq!(addr_class(IpAddr::V6(mapped)), addr_class(IpAddr::V4(v4)));
    for ip in [IpAddr::V6(v6), IpAddr::V4(v4)] {
        let class = addr_class(ip);
        assert_eq!(
            next_hop_allowed(AddrClass::Routable, ip),
            class == AddrClass::Routable
        );
        assert!(
            next_hop_allowed(class, ip),
            "{ip} refused from its own class"
        );
        if ip.is_loopback() {
            assert_eq!(class, AddrClass::Loopback, "{ip}");
        }
    }
}
