//! Where Ferry may connect when a registry sends it somewhere else: blob redirects, upload
//! `Location`s on another origin, Bearer token realms.
//!
//! Every address falls in one [`AddrClass`]. The one rule, [`next_hop_allowed`]: a URL a
//! registry sends may lead to a routable address (public or private: inside a VPC, S3 and
//! ECR interface endpoints resolve to 10/8, 172.16/12, 192.168/16), or to an address of
//! the registry's own class — never to a loopback address (the Lambda runtime API lives
//! on 127.0.0.1:9001) or a link-local one (the instance metadata service on
//! 169.254.169.254 and `fd00:ec2::254`, ECS task metadata on 169.254.170.2) unless the
//! registry itself is on such an address. A loopback registry may redirect to loopback
//! (local test setups) but not to link-local, and the other way round.
//!
//! The rule is applied after DNS resolution: the clients that follow those URLs resolve
//! names through [`GuardedResolver`], which refuses a name as soon as one of its addresses
//! is refused; URLs naming an IP address (which never reach a resolver) are checked by
//! [`check_next_hop`] before anything is sent. Through an HTTP proxy (`HTTP_PROXY`) names
//! are resolved by the proxy, so only literal addresses are checked there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How internal an address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// Public and private unicast addresses: anything a network routes.
    Routable,
    /// Link-local (169.254.0.0/16, fe80::/10) and AWS's instance-local services
    /// (`fd00:ec2::/32`).
    LinkLocal,
    /// This host: 127.0.0.0/8, ::1, and the unspecified 0.0.0.0/8 and :: (connecting to
    /// them reaches the local host).
    Loopback,
}

impl AddrClass {
    /// Short name for error messages.
    pub fn label(self) -> &'static str {
        match self {
            AddrClass::Routable => "routable",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Loopback => "loopback",
        }
    }
}

/// The class of an address. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// and NAT64 (`64:ff9b::a.b.c.d`) IPv6 addresses count as the IPv4 address they carry.
pub fn addr_class(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> AddrClass {
    if ip.is_loopback() || ip.octets()[0] == 0 {
        AddrClass::Loopback
    } else if ip.is_link_local() || ip.is_broadcast() {
        AddrClass::LinkLocal
    } else {
        AddrClass::Routable
    }
}

fn v6_class(ip: Ipv6Addr) -> AddrClass {
    let seg = ip.segments();
    if ip.is_loopback() || ip.is_unspecified() {
        return AddrClass::Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let [a, b, c, d, e, f, g, h] = seg;
    let embedded = Ipv4Addr::new((g >> 8) as u8, g as u8, (h >> 8) as u8, h as u8);
    // IPv4-compatible (deprecated, ::a.b.c.d) and the NAT64 well-known prefix.
    if [a, b, c, d, e, f] == [0; 6] || [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_class(embedded);
    }
    if a & 0xffc0 == 0xfe80 || (a == 0xfd00 && b == 0x0ec2) {
        return AddrClass::LinkLocal;
    }
    AddrClass::Routable
}

/// THE predicate: may a URL sent by a registry of class `registry` lead to `next`?
pub fn next_hop_allowed(registry: AddrClass, next: IpAddr) -> bool {
    match addr_class(next) {
        AddrClass::Routable => true,
        class => class == registry,
    }
}

/// The class of a registry from its endpoint URL: the class of an IP address, loopback for
/// `localhost` (and `*.localhost`), else routable (the strictest allowance: a registry
/// named by another host name may not send Ferry to loopback or link-local addresses,
/// whatever the name resolves to).
pub fn registry_class(endpoint: &Url) -> AddrClass {
    match endpoint.host() {
        Some(Host::Ipv4(ip)) => v4_class(ip),
        Some(Host::Ipv6(ip)) => v6_class(ip),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                AddrClass::Loopback
            } else {
                AddrClass::Routable
            }
        }
        None => AddrClass::Routable,
    }
}

/// Why a next hop is refused, checked before anything is sent: not http(s), a downgrade
/// from https to http, or an IP address the predicate refuses. Names are left to the
/// [`GuardedResolver`].
pub fn check_next_hop(registry: AddrClass, previous: &Url, next: &Url) -> Result<(), String> {
    match next.scheme() {
        "https" => {}
        "http" if previous.scheme() == "https" => {
            return Err("it downgrades https to plain http".into());
        }
        "http" => {}
        other => return Err(format!("scheme {other:?} is not http or https")),
    }
    let ip = match next.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err("it has no host".into()),
    };
    refuse_reason(registry, ip).map_or(Ok(()), Err)
}

fn refuse_reason(registry: AddrClass, ip: IpAddr) -> Option<String> {
    (!next_hop_allowed(registry, ip)).then(|| {
        format!(
            "{ip} is a {} address and the registry is {}",
            addr_class(ip).label(),
            registry.label()
        )
    })
}

/// The scheme, host and port of a URL, for messages (never its path or query: a
/// pre-signed URL's query is a secret).
pub fn origin_text(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// A name resolved (by [`GuardedResolver`]) to an address the predicate refuses.
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves to {reason}")]
pub struct RefusedAddress {
    /// The host name.
    pub name: String,
    /// What was refused.
    pub reason: String,
}

/// The [`RefusedAddress`] somewhere in a transport error's causes, if any.
pub fn refused_in(e: &reqwest::Error) -> Option<&RefusedAddress> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<RefusedAddress>() {
            return Some(r);
        }
        source = s.source();
    }
    None
}

/// How names are looked up.
#[derive(Clone, Debug)]
enum Lookup {
    /// The system resolver (getaddrinfo on a blocking thread).
    System,
    /// A fixed table (tests).
    #[cfg(test)]
    Table(std::collections::HashMap<String, Vec<IpAddr>>),
}

/// A DNS resolver for the clients that follow URLs sent by registries: it resolves the
/// name, then refuses it (no connection is attempted) when any of its addresses fails
/// [`next_hop_allowed`] for the registry's class.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    allowance: AddrClass,
    lookup: Lookup,
}

impl GuardedResolver {
    /// A resolver over the system's for registries of class `allowance`.
    pub fn new(allowance: AddrClass) -> GuardedResolver {
        GuardedResolver {
            allowance,
            lookup: Lookup::System,
        }
    }

    #[cfg(test)]
    fn with_table(allowance: AddrClass, table: &[(&str, &[IpAddr])]) -> GuardedResolver {
        GuardedResolver {
            allowance,
            lookup: Lookup::Table(
                table
                    .iter()
                    .map(|(n, a)| (n.to_string(), a.to_vec()))
                    .collect(),
            ),
        }
    }

    /// Resolve and check one name.
    async fn addresses(
        &self,
        name: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs: Vec<IpAddr> = match &self.lookup {
            Lookup::System => tokio::net::lookup_host((name, 0))
                .await?
                .map(|a| a.ip())
                .collect(),
            #[cfg(test)]
            Lookup::Table(t) => t.get(name).cloned().unwrap_or_default(),
        };
        if let Some(reason) = addrs
            .iter()
            .find_map(|ip| refuse_reason(self.allowance, *ip))
        {
            return Err(Box::new(RefusedAddress {
                name: name.to_string(),
                reason,
            }));
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.addresses(&name).await?;
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddrClass::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn classes_of_addresses() {
        let table = [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("0.0.0.0", Loopback),
            ("0.1.2.3", Loopback),
            ("::1", Loopback),
            ("::", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::7f00:1", Loopback),
            ("169.254.169.254", LinkLocal),
            ("169.254.170.2", LinkLocal),
            ("169.254.0.0", LinkLocal),
            ("255.255.255.255", LinkLocal),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:a9fe:a9fe", LinkLocal),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf:ffff::1", LinkLocal),
            ("fd00:ec2::254", LinkLocal),
            ("fd00:ec2::23", LinkLocal),
            ("10.0.0.1", Routable),
            ("172.16.5.4", Routable),
            ("172.31.255.255", Routable),
            ("192.168.1.1", Routable),
            ("52.216.0.1", Routable),
            ("169.253.255.255", Routable),
            ("169.255.0.0", Routable),
            ("128.0.0.1", Routable),
            ("fd12:3456::1", Routable),
            ("fec0::1", Routable),
            ("2600:1f18::1", Routable),
            ("::ffff:10.0.0.1", Routable),
        ];
        for (addr, class) in table {
            assert_eq!(addr_class(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn the_predicate_over_a_table() {
        // (registry class, next hop, allowed)
        let table = [
            (Routable, "52.216.0.1", true),
            (Routable, "10.1.2.3", true),
            (Routable, "192.168.0.10", true),
            (Routable, "127.0.0.1", false),
            (Routable, "::1", false),
            (Routable, "0.0.0.0", false),
            (Routable, "::ffff:127.0.0.1", false),
            (Routable, "169.254.169.254", false),
            (Routable, "::ffff:169.254.169.254", false),
            (Routable, "fe80::1", false),
            (Routable, "fd00:ec2::254", false),
            (Loopback, "127.0.0.1", true),
            (Loopback, "127.0.0.2", true),
            (Loopback, "::1", true),
            (Loopback, "10.0.0.1", true),
            (Loopback, "169.254.169.254", false),
            (Loopback, "fe80::1", false),
            (LinkLocal, "169.254.10.10", true),
            (LinkLocal, "127.0.0.1", false),
            (LinkLocal, "52.216.0.1", true),
        ];
        for (registry, next, allowed) in table {
            assert_eq!(
                next_hop_allowed(registry, ip(next)),
                allowed,
                "{registry:?} → {next}"
            );
        }
    }

    #[test]
    fn registry_classes() {
        for (url, class) in [
            ("http://127.0.0.1:5000", Loopback),
            ("http://[::1]:5000", Loopback),
            ("http://localhost:5000", Loopback),
            ("http://reg.localhost", Loopback),
            ("http://169.254.1.1", LinkLocal),
            (
                "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
                Routable,
            ),
            ("http://10.0.0.5:5000", Routable),
        ] {
            let u = Url::parse(url).expect("url");
            assert_eq!(registry_class(&u), class, "{url}");
        }
    }

    #[test]
    fn next_hops() {
        let https = Url::parse("https://reg.example/v2/a/blobs/x").expect("url");
        let http = Url::parse("http://127.0.0.1:5000/v2/a/blobs/x").expect("url");
        let ok = |c, p: &Url, n: &str| check_next_hop(c, p, &Url::parse(n).expect("url"));
        assert!(ok(Routable, &https, "https://bucket.s3.amazonaws.com/x?sig=1").is_ok());
        assert!(ok(Routable, &https, "https://10.0.0.7/x").is_ok());
        let e = ok(Routable, &https, "http://bucket.s3.amazonaws.com/x").expect_err("downgrade");
        assert!(e.contains("downgrades https"), "{e}");
        let e = ok(Routable, &https, "https://169.254.169.254/latest/").expect_err("imds");
        assert!(e.contains("169.254.169.254 is a link-local address"), "{e}");
        assert!(ok(Routable, &https, "https://[::ffff:127.0.0.1]/").is_err());
        assert!(ok(Routable, &https, "https://[fd00:ec2::254]/").is_err());
        assert!(ok(Routable, &https, "file:///etc/passwd").is_err());
        assert!(ok(Loopback, &http, "http://127.0.0.2:9/x").is_ok());
        assert!(ok(Loopback, &http, "http://169.254.169.254/").is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_refused_addresses() {
        let table: &[(&str, &[IpAddr])] = &[
            ("metadata.test", &[ip("169.254.169.254")]),
            ("mixed.test", &[ip("52.216.0.1"), ip("::ffff:127.0.0.1")]),
            ("vpce.test", &[ip("10.0.3.4")]),
            ("local.test", &[ip("127.0.0.1")]),
        ];
        let routable = GuardedResolver::with_table(Routable, table);
        let name = |n: &str| n.parse::<Name>().expect("name");
        for refused in ["metadata.test", "mixed.test", "local.test"] {
            let err = match routable.resolve(name(refused)).await {
                Ok(_) => panic!("{refused} resolved"),
                Err(e) => e,
            };
            let r = err.downcast_ref::<RefusedAddress>().expect("refused");
            assert_eq!(r.name, refused);
        }
        let addrs: Vec<_> = match routable.resolve(name("vpce.test")).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(addrs, vec![SocketAddr::new(ip("10.0.3.4"), 0)]);
        let loopback = GuardedResolver::with_table(Loopback, table);
        assert!(loopback.resolve(name("local.test")).await.is_ok());
        assert!(loopback.resolve(name("metadata.test")).await.is_err());
    }

    proptest::proptest! {
        /// The invariants of the `token` fuzz target's address mode.
        #[test]
        fn mapped_addresses_keep_their_class(v6 in proptest::prelude::any::<[u8; 16]>(), v4 in proptest::prelude::any::<[u8; 4]>()) {
            let v4 = Ipv4Addr::from(v4);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            proptest::prop_assert_eq!(addr_class(mapped), addr_class(IpAddr::V4(v4)));
            for ip in [IpAddr::V6(Ipv6Addr::from(v6)), IpAddr::V4(v4), mapped] {
                let class = addr_class(ip);
                proptest::prop_assert_eq!(next_hop_allowed(Routable, ip), class == Routable);
                proptest::prop_assert!(next_hop_allowed(class, ip));
            }
        }
    }

    /// The system resolver behind a client: `localhost` resolves to loopback, which a
    /// routable registry may not reach, so the request fails before any connection (the
    /// port is never opened), and the error is found in the transport error's causes.
    #[tokio::test]
    async fn a_client_with_the_resolver_never_connects_to_a_refused_name() {
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(GuardedResolver::new(Routable)))
            .no_proxy()
            .build()
            .expect("client");
        let err = http
            .get("http://localhost:9/never")
            .send()
            .await
            .expect_err("refused");
        let refused = refused_in(&err).expect("refused by the resolver");
        assert_eq!(refused.name, "localhost");
        assert!(refused.reason.contains("loopback address"), "{refused}");
    }
}
