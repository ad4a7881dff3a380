//! `registries."<host>".caCertificates`: the private certificate authorities a registry's
//! certificate may chain to (Harbor, Artifactory or Nexus inside a company), given inline
//! as PEM so the config works from an SSM parameter in Lambda. Each is trusted for its
//! host only, beside the system's roots: `SSL_CERT_FILE` would replace the system bundle
//! and with it the public roots ECR's certificates chain to.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::error::Issue;
use super::parse::child;

/// The most CA certificates one registry entry may list.
pub const MAX_CA_CERTIFICATES: usize = 16;

/// One PEM certificate (exactly one per entry) that can serve as a trust anchor.
pub fn parse_ca_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    let first = certs
        .next()
        .ok_or("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")?
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.next().is_some() {
        return Err("more than one certificate in one entry: give each its own entry".into());
    }
    rustls::RootCertStore::empty()
        .add(first.clone())
        .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    Ok(first)
}

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
    fn anything_but_one_pem_certificate_is_refused() {
        let cert = include_str!("../../../../testdata/tls/self-signed.crt");
        assert!(parse_ca_certificate(cert).is_ok());
        let two = format!("{cert}{cert}");
        assert!(
            parse_ca_certificate(&two)
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            parse_ca_certificate("MIIB...")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_ca_certificate(garbage).is_err());
        let key = include_str!("../../../../testdata/tls/self-signed.key");
        assert!(parse_ca_certificate(key).is_err());
    }

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
