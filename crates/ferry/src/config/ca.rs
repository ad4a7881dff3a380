//! `registries."<host>".caCertificates`: the private certificate authorities a registry's
//! certificate may chain to (Harbor, Artifactory or Nexus inside a company), given inline
//! as PEM so the config works from an SSM parameter in Lambda. Each is trusted for its
//! host only, beside the system's roots: `SSL_CERT_FILE` would replace the system bundle
//! and with it the public roots ECR's certificates chain to.

pub use ferry_distribution::registry::parse_ca_certificate;

use super::error::Issue;
use super::parse::child;

/// The most CA certificates one registry entry may list.
pub const MAX_CA_CERTIFICATES: usize = 16;

/// The findings for one registry entry's `caCertificates` at `path`
/// (`registries["host"]`).
pub(super) fn check_ca_certificates(pems: &[String], path: &str, issues: &mut Vec<Issue>) {
    let at = child(path, "caCertificates");
    if pems.len() > MAX_CA_CERTIFICATES {
        issues.push(Issue::error(
            at.clone(),
            format!(
                "{} certificates: at most {MAX_CA_CERTIFICATES} per registry",
                pems.len()
            ),
        ));
    }
    for (i, pem) in pems.iter().enumerate() {
        if let Err(reason) = parse_ca_certificate(pem) {
            issues.push(Issue::error(format!("{at}[{i}]"), reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_name_the_entry() {
        let mut issues = Vec::new();
        let good = include_str!("../../../../testdata/tls/self-signed.crt").to_string();
        check_ca_certificates(
            &[good, "nope".into()],
            r#"registries["harbor.corp.example"]"#,
            &mut issues,
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            issues[0].path,
            r#"registries["harbor.corp.example"].caCertificates[1]"#
        );
    }
}
