//! Where a registry host really lives: endpoint overrides, Docker Hub's API host, and
//! plain HTTP for loopback.

use std::collections::HashMap;

use url::Url;

use crate::error::Error;
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};

/// The environment variable holding endpoint overrides: `host=url[,host=url…]`.
pub const ENDPOINTS_ENV: &str = "FERRY_REGISTRY_ENDPOINTS";

/// Maps registry host names to base URLs.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    overrides: HashMap<String, Url>,
    plain_http: bool,
}

impl Endpoints {
    /// No overrides.
    pub fn new() -> Endpoints {
        Endpoints::default()
    }

    /// Overrides from [`ENDPOINTS_ENV`], if set.
    pub fn from_env() -> Result<Endpoints, Error> {
        match std::env::var(ENDPOINTS_ENV) {
            Ok(v) => Endpoints::parse(&v),
            Err(_) => Ok(Endpoints::default()),
        }
    }

    /// Parse `host=url[,host=url…]`.
    pub fn parse(spec: &str) -> Result<Endpoints, Error> {
        let mut e = Endpoints::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (host, url) = pair
                .split_once('=')
                .ok_or_else(|| bad(pair, "expected host=url"))?;
            e.insert(host.trim(), url.trim())?;
        }
        Ok(e)
    }

    /// Add one override.
    pub fn insert(&mut self, host: &str, url: &str) -> Result<(), Error> {
        let parsed = Url::parse(url).map_err(|_| bad(url, "not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad(
                url,
                "an endpoint is an http:// or https:// URL with a host",
            ));
        }
        self.overrides.insert(host.to_string(), parsed);
        Ok(())
    }

    /// Use plain HTTP for every registry without an override (`--plain-http`).
    pub fn with_plain_http(mut self, plain: bool) -> Endpoints {
        self.plain_http = plain;
        self
    }

    /// Whether `host` has an override.
    pub fn is_overridden(&self, host: &str) -> bool {
        self.overrides.contains_key(host)
    }

    /// The base URL (scheme, host, port; no trailing slash) for a registry host.
    pub fn base_url(&self, host: &str) -> String {
        if let Some(u) = self.overrides.get(host) {
            return u.as_str().trim_end_matches('/').to_string();
        }
        let host = if host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            host
        };
        let scheme = if self.plain_http || is_loopback(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }
}

/// Whether a host (with optional port) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn bad(input: &str, reason: &str) -> Error {
    Error::InvalidReference {
        input: format!("{ENDPOINTS_ENV} entry {input:?}"),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves() {
        let e = Endpoints::parse(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com=http://127.0.0.1:5001/, ghcr.io=https://mirror.example",
        )
        .expect("parse");
        assert_eq!(
            e.base_url("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            "http://127.0.0.1:5001"
        );
        assert_eq!(e.base_url("ghcr.io"), "https://mirror.example");
        assert_eq!(e.base_url("docker.io"), "https://registry-1.docker.io");
        assert_eq!(e.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(e.base_url("localhost:5000"), "http://localhost:5000");
        assert_eq!(e.base_url("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(e.base_url("quay.io"), "https://quay.io");
        let e = e.with_plain_http(true);
        assert_eq!(e.base_url("reg.internal:5000"), "http://reg.internal:5000");
    }

    #[test]
    fn rejects_bad_overrides() {
        assert!(Endpoints::parse("nohost").is_err());
        assert!(Endpoints::parse("h=ftp://x").is_err());
        assert!(Endpoints::parse("h=not a url").is_err());
    }
}
