//! Checks of the registry fields of the configuration: account IDs, regions and hosts.
//! The registry identity itself ([`Registry`], `partition_of`, `misspelt_ecr_host`) is
//! the distribution client's ([`ferry_distribution::host`]), re-exported here.

use std::sync::LazyLock;

use regex::Regex;

pub use ferry_distribution::host::Registry;
pub(crate) use ferry_distribution::host::{misspelt_ecr_host, partition_of};

static REGISTRY_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("static regex"));
static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$").expect("static regex"));
static HOST_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
        .expect("static regex")
});

/// Checks a 12-digit AWS account ID.
pub(crate) fn check_registry_id(id: &str) -> Result<(), String> {
    if REGISTRY_ID.is_match(id) {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a registry ID: expected a 12-digit AWS account ID"
        ))
    }
}

/// Checks the shape of an AWS region name such as `us-east-1` or `us-gov-west-1`.
pub(crate) fn check_region(region: &str) -> Result<(), String> {
    if REGION.is_match(region) {
        Ok(())
    } else {
        Err(format!(
            "`{region}` is not an AWS region name (e.g. `us-east-1`)"
        ))
    }
}

/// Checks a registry `host[:port]` (a DNS name, an IPv4 address or a bracketed IPv6 address).
pub(crate) fn check_host(text: &str) -> Result<(), String> {
    if text.contains("://") || text.contains('/') {
        return Err(format!(
            "`{text}` is not a registry host: write only `host[:port]` (set the scheme with `registries`)"
        ));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (text, None),
    };
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|port| port > 0)
    {
        return Err(format!(
            "`{text}`: port `{port}` is not a number from 1 to 65535"
        ));
    }
    let ipv6 = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let valid = match ipv6 {
        Some(address) => address.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.len() <= 253 && HOST_NAME.is_match(host),
    };
    if valid {
        Ok(())
    } else {
        Err(format!("`{text}` is not a valid registry host"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_checks() {
        for good in [
            "ghcr.io",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "registry-1.docker.io",
        ] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        for bad in [
            "https://ghcr.io",
            "ghcr.io/org",
            "host:0",
            "host:99999",
            "-bad.io",
            "a..b",
            "",
            "[zz]:1",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn region_and_account_checks() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-4",
            "cn-north-1",
            "mx-central-1",
        ] {
            assert_eq!(check_region(good), Ok(()), "{good}");
        }
        for bad in ["useast1", "US-EAST-1", "us-east", ""] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
        assert!(check_registry_id("111122223333").is_ok());
        assert!(check_registry_id("11112222333").is_err());
    }
}
