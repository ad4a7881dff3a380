//! Image references: `host[:port]/repository[:tag][@sha256:…]`, validated against the
//! distribution-spec grammar, with Docker Hub normalisation and ECR host recognition.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;

/// Docker Hub's canonical name, as references spell it.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API really lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Longest repository name ECR accepts.
pub const MAX_REPOSITORY_LEN: usize = 256;
/// Longest tag: the distribution grammar's 128 (ECR's API allows 300, registries do not).
pub const MAX_TAG_LEN: usize = 128;

/// A parsed, validated image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, as written (Docker Hub normalised to `docker.io`).
    pub registry: String,
    /// Repository path, validated.
    pub repository: String,
    /// Tag, validated; `None` when the reference names only a digest or nothing.
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse and validate a reference. A reference with neither tag nor digest gets no
    /// tag here; [`Reference::manifest_reference`] then answers `latest`.
    pub fn parse(input: &str) -> Result<Reference, Error> {
        let bad = |reason: &str| Error::InvalidReference {
            input: input.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.len() > 1024 {
            return Err(bad("longer than 1024 characters"));
        }
        let s = input
            .strip_prefix("docker://")
            .unwrap_or(input)
            .trim_end_matches('/');

        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| bad(&r))?;
        }
        let (registry, repository) = split_registry(name);
        if registry.is_empty() {
            return Err(bad("missing registry host"));
        }
        validate_host(&registry).map_err(|r| bad(&r))?;
        validate_repository(&repository).map_err(|r| bad(&r))?;
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What to ask the registry for: the digest when known, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The tag to apply at a destination: the explicit tag, or `latest` when the reference
    /// names neither tag nor digest, or none for digest-only references.
    pub fn effective_tag(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t.clone()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        }
    }

    /// The same registry and repository, with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The same registry and repository, pinned to a digest, with no tag.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    /// The ECR registry this reference's host names, if it is an ECR host.
    pub fn ecr(&self) -> Option<EcrRegistry> {
        EcrRegistry::from_host(&self.registry)
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Split `name` into registry host and repository, applying Docker Hub normalisation: a
/// first component without `.` or `:` (and not `localhost`) is a Hub repository.
fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let host = if first == "index.docker.io" || first == DOCKER_HUB_API {
                DOCKER_HUB.to_string()
            } else {
                first.to_string()
            };
            let repo = if host == DOCKER_HUB && !rest.contains('/') {
                format!("library/{rest}")
            } else {
                rest.to_string()
            };
            (host, repo)
        }
        Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
        None => (DOCKER_HUB.to_string(), format!("library/{name}")),
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || n.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(format!("invalid port {p:?}"));
    }
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid registry host {name:?}"))
    }
}

/// Validate a repository name against the distribution grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 256
/// characters. This also rules out `..`, empty components and any path traversal.
pub fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository name".into());
    }
    if repo.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "repository name is {} characters, over {MAX_REPOSITORY_LEN}",
            repo.len()
        ));
    }
    for component in repo.split('/') {
        validate_component(component).map_err(|r| format!("repository {repo:?}: {r}"))?;
    }
    Ok(())
}

fn validate_component(c: &str) -> Result<(), String> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("empty path component".into());
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(format!(
            "component {c:?} must start and end with a lowercase letter or digit"
        ));
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let valid = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !valid {
            return Err(format!("component {c:?} has invalid separator {sep:?}"));
        }
    }
    Ok(())
}

/// Validate a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("empty tag".into());
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag is {} characters, over {MAX_TAG_LEN}",
            tag.len()
        ));
    }
    let b = tag.as_bytes();
    if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
        return Err(format!(
            "tag {tag:?} must start with a letter, digit or '_'"
        ));
    }
    if !b
        .iter()
        .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "tag {tag:?} may hold only letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// An Amazon ECR private registry: one account in one region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EcrRegistry {
    /// 12-digit AWS account ID.
    pub account: String,
    /// AWS region.
    pub region: String,
    /// Whether the host is the FIPS endpoint (`ecr-fips`).
    pub fips: bool,
    /// DNS suffix (`amazonaws.com` or `amazonaws.com.cn`).
    pub suffix: String,
}

impl EcrRegistry {
    /// Recognise `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`.
    pub fn from_host(host: &str) -> Option<EcrRegistry> {
        let host = host.split(':').next()?;
        let mut parts = host.splitn(4, '.');
        let account = parts.next()?;
        let dkr = parts.next()?;
        let ecr = parts.next()?;
        let rest = parts.next()?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || dkr != "dkr" {
            return None;
        }
        let fips = match ecr {
            "ecr" => false,
            "ecr-fips" => true,
            _ => return None,
        };
        let (region, suffix) = rest.split_once('.')?;
        if suffix != "amazonaws.com" && suffix != "amazonaws.com.cn" {
            return None;
        }
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        region_ok.then(|| EcrRegistry {
            account: account.to_string(),
            region: region.to_string(),
            fips,
            suffix: suffix.to_string(),
        })
    }

    /// A registry in the ordinary (non-FIPS) partition for an account and region.
    pub fn new(account: &str, region: &str) -> EcrRegistry {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        EcrRegistry {
            account: account.to_string(),
            region: region.to_string(),
            fips: false,
            suffix: suffix.to_string(),
        }
    }

    /// The registry host name.
    pub fn host(&self) -> String {
        let ecr = if self.fips { "ecr-fips" } else { "ecr" };
        format!("{}.dkr.{ecr}.{}.{}", self.account, self.region, self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn full_reference() {
        let d = Digest::of(b"x");
        let r = p(&format!("127.0.0.1:5000/team/api:v1.3.0@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/api");
        assert_eq!(r.tag.as_deref(), Some("v1.3.0"));
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.manifest_reference(), d.to_string());
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/team/api:v1.3.0@{d}"));
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = p("alpine");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/alpine")
        );
        assert_eq!(r.manifest_reference(), "latest");
        let r = p("bitnami/redis:7");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "bitnami/redis")
        );
        let r = p("docker.io/alpine:3");
        assert_eq!(r.repository, "library/alpine");
        let r = p("index.docker.io/library/alpine");
        assert_eq!(r.registry, "docker.io");
        let r = p("localhost/x");
        assert_eq!(r.registry, "localhost");
        let r = p("localhost:5000/x:1");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost:5000", Some("1"))
        );
    }

    #[test]
    fn ecr_hosts() {
        let r = p("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api:v1");
        let e = r.ecr().expect("ecr");
        assert_eq!(
            (e.account.as_str(), e.region.as_str(), e.fips),
            ("123456789012", "eu-west-1", false)
        );
        assert_eq!(e.host(), r.registry);
        let e =
            EcrRegistry::from_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").expect("cn");
        assert_eq!(e.region, "cn-north-1");
        assert_eq!(
            EcrRegistry::new("123456789012", "cn-north-1").host(),
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
        let e = EcrRegistry::from_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
            .expect("fips");
        assert!(e.fips);
        assert_eq!(
            e.host(),
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"
        );
        for not in [
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "public.ecr.aws",
            "ghcr.io",
        ] {
            assert!(EcrRegistry::from_host(not).is_none(), "{not}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "host.io/../etc/passwd",
            "host.io/a/../../b",
            "host.io/UPPER",
            "host.io/a//b",
            "host.io/a:-tag",
            "host.io/a:tag/with/slash",
            "host.io/a@sha256:zz",
            "host.io/-a",
            "host.io/a_-b",
            "host.io:99999/a",
            "host.io/a:bad tag",
            "ho st.io/a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long_tag = format!("h.io/a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let long_repo = format!("h.io/{}", "a".repeat(257));
        assert!(Reference::parse(&long_repo).is_err());
    }

    #[test]
    fn accepts_grammar_edges() {
        for ok in [
            "h.io/a__b",
            "h.io/a---b",
            "h.io/a.b/c_d:_t",
            "h.io/0/1:V1.0-rc_1",
        ] {
            p(ok);
        }
    }

    #[test]
    fn tags_and_digests_derive() {
        let r = p("h.io/a");
        assert_eq!(r.effective_tag().as_deref(), Some("latest"));
        let d = Digest::of(b"");
        let r = p(&format!("h.io/a@{d}"));
        assert_eq!(r.effective_tag(), None);
        assert_eq!(r.with_tag("x").to_string(), "h.io/a:x");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = Reference::parse(&s);
        }

        #[test]
        fn valid_references_round_trip(
            repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}",
            tag in "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
        ) {
            let s = format!("reg.example.com:5000/{repo}:{tag}");
            let r = Reference::parse(&s).expect("valid");
            prop_assert_eq!(r.to_string(), s);
        }

        #[test]
        fn accepted_repositories_never_traverse(s in "[a-z0-9./_-]{1,40}") {
            if validate_repository(&s).is_ok() {
                prop_assert!(!s.split('/').any(|c| c == ".." || c == "." || c.is_empty()));
            }
        }
    }
}
