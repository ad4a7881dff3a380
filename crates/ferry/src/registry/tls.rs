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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::Error;

/// What the process's first call built (or why it could not).
static SHARED: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
/// How many times the settings (and so the root certificates) were built.
static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// The shared TLS settings; the system's root certificates are read on the first call.
pub(super) fn shared() -> Result<rustls::ClientConfig, Error> {
    SHARED
        .get_or_init(build)
        .clone()
        .map_err(|e| Error::Unsupported(format!("cannot build the TLS settings: {e}")))
}

fn build() -> Result<rustls::ClientConfig, String> {
    BUILDS.fetch_add(1, Ordering::Relaxed);
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier =
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| e.to_string())?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// One handshake in memory between a client with the shared settings and a server
    /// presenting `testdata/tls/self-signed.crt` (a certificate no system trusts): the
    /// client offers `h2` and `http/1.1` and refuses the certificate.
    #[test]
    fn the_shared_settings_offer_h2_and_verify_the_certificate() {
        let cert = CertificateDer::from_pem_slice(include_bytes!(
            "../../../../testdata/tls/self-signed.crt"
        ))
        .expect("certificate");
        let key = PrivateKeyDer::from_pem_slice(include_bytes!(
            "../../../../testdata/tls/self-signed.key"
        ))
        .expect("key");
        let mut server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        server_config.alpn_protocols = vec![b"h2".to_vec()];
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut client = rustls::ClientConnection::new(
            Arc::new(shared().expect("shared TLS settings")),
            "ferry-self-signed.test".try_into().unwrap(),
        )
        .unwrap();
        let mut refused = None;
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
                .expect("the server accepts the hello");
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                client.read_tls(&mut read).unwrap();
            }
            if let Err(e) = client.process_new_packets() {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(
            server.alpn_protocol(),
            Some(&b"h2"[..]),
            "the client offered h2"
        );
        assert_eq!(
            refused.expect("the handshake must fail"),
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
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
}
