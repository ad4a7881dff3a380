//! Registry identity: an ECR registry (account and region) or any OCI registry host, and
//! the AWS partition of a region. The configuration names registries with it, and the
//! registry client asks it which hosts are ECR's (their request quotas).

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

static ECR_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
        .expect("static regex")
});

/// A registry images are read from or written to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Registry {
    /// An Amazon ECR private registry.
    Ecr {
        /// The 12-digit AWS account ID.
        registry_id: String,
        /// The AWS region, e.g. `eu-west-1`.
        region: String,
    },
    /// Any other OCI distribution registry.
    Oci {
        /// `host[:port]`, lower-cased.
        host: String,
    },
}

impl Registry {
    /// Reads a `host[:port]`; an ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com`,
    /// `.amazonaws.com.cn` in the China regions) becomes [`Registry::Ecr`], so both
    /// spellings of one registry compare equal. A host whose DNS suffix does not serve its
    /// region (`.com.cn` outside China, `.com` in it) is no ECR registry: it stays
    /// [`Registry::Oci`], so Ferry never talks to another host than the one written.
    pub fn from_host(host: &str) -> Self {
        let host = host.to_ascii_lowercase();
        match ECR_HOST.captures(&host) {
            Some(parts) if parts.get(3).is_some() == parts[2].starts_with("cn-") => Self::Ecr {
                registry_id: parts[1].to_owned(),
                region: parts[2].to_owned(),
            },
            _ => Self::Oci { host },
        }
    }

    /// The AWS partition of an ECR registry (`aws`, `aws-cn`, `aws-us-gov`, ...); `None`
    /// for other registries.
    pub fn partition(&self) -> Option<&'static str> {
        match self {
            Self::Ecr { region, .. } => Some(partition_of(region)),
            Self::Oci { .. } => None,
        }
    }

    /// The registry's `host[:port]`: `<account>.dkr.ecr.<region>.amazonaws.com` for ECR
    /// (`.amazonaws.com.cn` in the China regions).
    pub fn host(&self) -> String {
        match self {
            Self::Ecr {
                registry_id,
                region,
            } => {
                let suffix = if region.starts_with("cn-") { ".cn" } else { "" };
                format!("{registry_id}.dkr.ecr.{region}.amazonaws.com{suffix}")
            }
            Self::Oci { host } => host.clone(),
        }
    }

    /// Whether this is an ECR registry.
    pub fn is_ecr(&self) -> bool {
        matches!(self, Self::Ecr { .. })
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host())
    }
}

/// Whether `host` has the shape of an ECR registry host but its DNS suffix does not serve
/// its region (e.g. `….cn-north-1.amazonaws.com`), with the host it should be.
pub fn misspelt_ecr_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let parts = ECR_HOST.captures(&host)?;
    if parts.get(3).is_some() == parts[2].starts_with("cn-") {
        return None;
    }
    Some(
        Registry::Ecr {
            registry_id: parts[1].to_owned(),
            region: parts[2].to_owned(),
        }
        .host(),
    )
}

/// The AWS partition a region belongs to (`aws`, `aws-cn` or `aws-us-gov`; ISO regions map
/// to their own partitions).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_round_trip() {
        let registry = Registry::from_host("111122223333.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(
            registry,
            Registry::Ecr {
                registry_id: "111122223333".into(),
                region: "eu-west-1".into()
            }
        );
        assert_eq!(
            registry.host(),
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
        );
        let china = Registry::Ecr {
            registry_id: "111122223333".into(),
            region: "cn-north-1".into(),
        };
        assert_eq!(Registry::from_host(&china.host()), china);
        assert_eq!(
            china.host(),
            "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn other_partitions_hosts_parse() {
        let china = Registry::from_host("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn");
        assert_eq!(
            china,
            Registry::Ecr {
                registry_id: "210987654321".into(),
                region: "cn-north-1".into()
            }
        );
        assert_eq!(china.partition(), Some("aws-cn"));
        let ningxia = Registry::from_host("210987654321.dkr.ecr.cn-northwest-1.amazonaws.com.cn");
        assert_eq!(ningxia.partition(), Some("aws-cn"));
        assert_eq!(
            ningxia.host(),
            "210987654321.dkr.ecr.cn-northwest-1.amazonaws.com.cn"
        );
        for region in ["us-gov-west-1", "us-gov-east-1"] {
            let host = format!("111122223333.dkr.ecr.{region}.amazonaws.com");
            let gov = Registry::from_host(&host);
            assert_eq!(gov.partition(), Some("aws-us-gov"), "{host}");
            assert_eq!(gov.host(), host, "round trip");
        }
        assert_eq!(
            Registry::from_host("111122223333.dkr.ecr.eu-west-1.amazonaws.com").partition(),
            Some("aws")
        );
        assert_eq!(Registry::from_host("ghcr.io").partition(), None);
        // A suffix that does not serve the region is no ECR host: Ferry would otherwise
        // talk to another host than the one written.
        for wrong in [
            "210987654321.dkr.ecr.cn-north-1.amazonaws.com",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com.cn",
        ] {
            assert!(!Registry::from_host(wrong).is_ecr(), "{wrong}");
        }
        assert_eq!(
            misspelt_ecr_host("210987654321.dkr.ecr.cn-north-1.amazonaws.com").as_deref(),
            Some("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn")
        );
        assert_eq!(
            misspelt_ecr_host("111122223333.dkr.ecr.us-east-1.amazonaws.com.cn").as_deref(),
            Some("111122223333.dkr.ecr.us-east-1.amazonaws.com")
        );
        assert_eq!(
            misspelt_ecr_host("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            None
        );
    }

    #[test]
    fn oci_hosts_are_lower_cased() {
        assert_eq!(
            Registry::from_host("Ghcr.IO"),
            Registry::Oci {
                host: "ghcr.io".into()
            }
        );
        assert!(!Registry::from_host("localhost:5000").is_ecr());
    }

    #[test]
    fn partitions() {
        assert_eq!(partition_of("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-east-1"), "aws-us-gov");
        assert_eq!(partition_of("eu-west-1"), "aws");
    }
}
