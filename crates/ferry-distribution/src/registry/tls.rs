//! The TLS settings every HTTP client of the registry client shares, made once per
//! process.
//!
//! They are what `reqwest` builds by default (rustls with its default crypto provider,
//! the platform's root certificates through `rustls-platform-verifier`, TLS 1.2 and 1.3,
//! SNI, ALPN `h2` and `http/1.1`), but `reqwest` builds them again for every client, and
//! each build reads and parses every root certificate of the system: a registry client
//! builds two clients at once (requests and uploads) and one more for each address class
//! it is redirected to. In a Lambda function's cold start that was two of its three
//! root-certificate loads (bench/results/findings.md, "Lambda cold start").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;
pub(crate) use crate::net::host_name;

/// What the process's first call built (or why it could not).
static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
/// How many times the settings (and so the root certificates) were built.
static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// The settings and the platform verifier inside them.
#[derive(Clone)]
struct Shared {
    config: rustls::ClientConfig,
    platform: Arc<rustls_platform_verifier::Verifier>,
}

fn shared_parts() -> Result<Shared, Error> {
    SHARED
        .get_or_init(build)
        .clone()
        .map_err(|e| Error::Unsupported(format!("cannot build the TLS settings: {e}")))
}

/// One PEM certificate (exactly one per entry) that can serve as a trust anchor: a
/// private certificate authority of [`ClientOptions::ca_certificates`](super::ClientOptions::ca_certificates)
/// (the configuration checks `registries."<host>".caCertificates` with it).
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

/// The TLS settings for a client whose registries trust extra certificate authorities
/// (`registries."<host>".caCertificates`: host → PEM certificates): the shared settings
/// when there are none; else the same settings with a verifier that also accepts, for
/// those hosts only, a chain to one of their CAs. The system's roots stay trusted for
/// every host: the CAs are added for their host, never instead of the system bundle.
pub(super) fn for_hosts(
    ca_certificates: &BTreeMap<String, Vec<String>>,
) -> Result<rustls::ClientConfig, Error> {
    let shared = shared_parts()?;
    if ca_certificates.values().all(Vec::is_empty) {
        return Ok(shared.config);
    }
    let provider = shared.config.crypto_provider().clone();
    let mut extra: BTreeMap<String, Arc<WebPkiServerVerifier>> = BTreeMap::new();
    for (host, pems) in ca_certificates.iter().filter(|(_, p)| !p.is_empty()) {
        let mut roots = RootCertStore::empty();
        for (i, pem) in pems.iter().enumerate() {
            let cert = parse_ca_certificate(pem).map_err(|reason| {
                Error::Config(format!(
                    "registries[{host:?}].caCertificates[{i}]: {reason}"
                ))
            })?;
            roots.add(cert).map_err(|e| {
                Error::Config(format!(
                    "registries[{host:?}].caCertificates[{i}]: not a usable CA certificate: {e}"
                ))
            })?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::Config(format!("registries[{host:?}].caCertificates: {e}")))?;
        extra.insert(host_name(host).to_ascii_lowercase(), verifier);
    }
    let mut config = shared.config;
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(HostRoots {
            platform: shared.platform,
            extra,
        }));
    Ok(config)
}

/// The verifier of a client with per-host CAs: the platform's for every host; for a host
/// with its own CAs, a chain the platform does not know (unknown issuer) is checked again
/// against those CAs, and that answer stands (so an expired certificate or a wrong name
/// under a private CA is reported as such).
#[derive(Debug)]
struct HostRoots {
    platform: Arc<rustls_platform_verifier::Verifier>,
    extra: BTreeMap<String, Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for HostRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let platform = self.platform.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let name = match server_name {
            ServerName::DnsName(d) => d.as_ref().to_ascii_lowercase(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => return platform,
        };
        match (platform, self.extra.get(&name)) {
            (
                Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
                Some(own),
            ) => own.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            (answer, _) => answer,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}

fn build() -> Result<Shared, String> {
    BUILDS.fetch_add(1, Ordering::Relaxed);
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let platform = Arc::new(
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| e.to_string())?,
    );
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(platform.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Shared {
        config: tls,
        platform,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;

    fn pem_cert(pem: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem).expect("certificate")
    }

    /// One handshake in memory between a client with `config` and a server presenting
    /// `cert` (its key `key`) under `name`: the client's answer to the certificate, and
    /// the protocol the server chose.
    fn handshake(
        config: rustls::ClientConfig,
        name: &str,
        cert: &[u8],
        key: &[u8],
    ) -> (Result<(), rustls::Error>, Option<Vec<u8>>) {
        let key = PrivateKeyDer::from_pem_slice(key).expect("key");
        let mut server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![pem_cert(cert)], key)
            .expect("server config");
        server_config.alpn_protocols = vec![b"h2".to_vec()];
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut client =
            rustls::ClientConnection::new(Arc::new(config), name.to_string().try_into().unwrap())
                .unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                server.read_tls(&mut read).unwrap();
            }
            server
                .process_new_packets()
                .expect("the server accepts the client's messages");
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                client.read_tls(&mut read).unwrap();
            }
            if let Err(e) = client.process_new_packets() {
                return (Err(e), server.alpn_protocol().map(<[u8]>::to_vec));
            }
            if !client.is_handshaking() {
                return (Ok(()), server.alpn_protocol().map(<[u8]>::to_vec));
            }
        }
        panic!("the handshake did not finish");
    }

    const SELF_SIGNED: &[u8] = include_bytes!("../../../../testdata/tls/self-signed.crt");
    const SELF_SIGNED_KEY: &[u8] = include_bytes!("../../../../testdata/tls/self-signed.key");
    const CA: &str = include_str!("../../../../testdata/tls/private-ca.crt");
    const LEAF: &[u8] = include_bytes!("../../../../testdata/tls/private-ca-leaf.crt");
    const LEAF_KEY: &[u8] = include_bytes!("../../../../testdata/tls/private-ca-leaf.key");

    fn with_ca(host: &str) -> rustls::ClientConfig {
        for_hosts(&BTreeMap::from([(host.to_string(), vec![CA.to_string()])])).expect("settings")
    }

    fn unknown_issuer() -> Result<(), rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    /// The shared settings offer `h2` and `http/1.1` and refuse a certificate no system
    /// trusts (`testdata/tls/self-signed.crt`).
    #[test]
    fn the_shared_settings_offer_h2_and_verify_the_certificate() {
        let (answer, alpn) = handshake(
            for_hosts(&BTreeMap::new()).expect("shared TLS settings"),
            "ferry-self-signed.test",
            SELF_SIGNED,
            SELF_SIGNED_KEY,
        );
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "the client offered h2");
        assert_eq!(answer, unknown_issuer());
    }

    /// A registry on a private CA: refused without its CA; accepted with the CA given for
    /// its host (the port of the `registries` key aside); still refused when the CA is
    /// given for another host; and a certificate under the trusted CA for another name is
    /// refused for that name, not as an unknown issuer.
    #[test]
    fn a_private_ca_is_trusted_for_its_host_only() {
        let (answer, _) = handshake(
            for_hosts(&BTreeMap::new()).unwrap(),
            "registry.test",
            LEAF,
            LEAF_KEY,
        );
        assert_eq!(answer, unknown_issuer(), "no CA given");
        let (answer, alpn) = handshake(
            with_ca("registry.test:8443"),
            "registry.test",
            LEAF,
            LEAF_KEY,
        );
        assert_eq!(answer, Ok(()), "the CA is given for this host");
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let (answer, _) = handshake(with_ca("other.test"), "registry.test", LEAF, LEAF_KEY);
        assert_eq!(answer, unknown_issuer(), "the CA is given for another host");
        let (answer, _) = handshake(with_ca("wrong.test"), "wrong.test", LEAF, LEAF_KEY);
        match answer {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            other => panic!("expected not valid for the name, got {other:?}"),
        }
        // The CA does not vouch for a certificate it did not sign.
        let (answer, _) = handshake(
            with_ca("ferry-self-signed.test"),
            "ferry-self-signed.test",
            SELF_SIGNED,
            SELF_SIGNED_KEY,
        );
        assert_eq!(answer, unknown_issuer());
    }

    #[test]
    fn a_bad_certificate_in_the_options_is_a_config_error() {
        let err = for_hosts(&BTreeMap::from([(
            "registry.test".to_string(),
            vec!["not a certificate".to_string()],
        )]))
        .unwrap_err();
        assert_eq!(err.code(), "config");
        assert!(err.to_string().contains("registry.test"), "{err}");
    }

    #[test]
    fn host_names_of_registries_keys() {
        assert_eq!(host_name("registry.test:8443"), "registry.test");
        assert_eq!(host_name("registry.test"), "registry.test");
        assert_eq!(host_name("[::1]:5000"), "::1");
        assert_eq!(host_name("127.0.0.1:5000"), "127.0.0.1");
    }

    /// Every HTTP client of a registry client is built with the shared settings, so the
    /// system's roots are read once per process, however many clients there are.
    #[test]
    fn the_root_certificates_are_read_once() {
        let options = crate::registry::ClientOptions::default();
        for read_timeout in [true, false, true] {
            super::super::origin::build_http(&options, None, read_timeout).expect("client");
        }
        assert_eq!(BUILDS.load(Ordering::Relaxed), 1);
    }

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
}
