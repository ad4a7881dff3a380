//! The transport guard shared by the registry client and the token fetch: which
//! addresses a request may go to ([`netguard`]), and a transport error in words (never
//! with its URL: a pre-signed URL is a secret), as an [`Error`].

pub mod netguard;

use rustls::CertificateError;

use crate::error::Error;

/// The error for a failed send to `target` on behalf of `registry`: refused by the
/// guarded resolver, or `unreachable` (the registry, or the other host it sent us to).
pub fn transport_error(
    registry: &str,
    target: &url::Url,
    unreachable: &str,
    e: &reqwest::Error,
) -> Error {
    if let Some(reason) = untrusted_in(e) {
        // The registry's own name (with its port: the `registries` key) when it is
        // the registry's certificate, else the other host it sent Ferry to.
        let host = target.host_str().unwrap_or(unreachable);
        let registry = if host_name(registry).eq_ignore_ascii_case(host) {
            registry
        } else {
            host
        };
        return Error::TlsUntrusted {
            registry: registry.to_string(),
            reason,
        };
    }
    match netguard::refused_in(e) {
        Some(r) => Error::Refused {
            registry: registry.to_string(),
            target: netguard::origin_text(target),
            reason: r.to_string(),
        },
        None => Error::Unreachable {
            registry: unreachable.to_string(),
            message: describe_reqwest(e),
        },
    }
}

/// Describe a transport error without its URL (a pre-signed URL is a secret).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts = Vec::new();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    parts.push(kind.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.contains("http://") && !text.contains("https://") && !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The host part of a `registries` key (`host[:port]`, `[v6]:port`).
pub fn host_name(key: &str) -> &str {
    if let Some(rest) = key.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match key.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => key,
    }
}

/// Why a transport error is an untrusted certificate, if it is one: the reason in words
/// (unknown issuer, expired, not valid for the name), for [`Error::TlsUntrusted`].
pub fn untrusted_in(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(reason) = rustls_error_in(s, 4).and_then(certificate_reason) {
            return Some(reason);
        }
        source = s.source();
    }
    None
}

/// The rustls error `e` is or wraps. tokio-rustls reports a refused certificate as an
/// `io::Error` wrapping rustls's error, hyper-rustls wraps that in another `io::Error`,
/// and `io::Error::source` skips the error it wraps: unwrap them (at most `depth`
/// levels).
fn rustls_error_in<'a>(
    e: &'a (dyn std::error::Error + 'static),
    depth: usize,
) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    if depth == 0 {
        return None;
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error_in(inner, depth - 1)
}

/// The words for a certificate refusal; `None` for other TLS errors.
fn certificate_reason(e: &rustls::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        CertificateError::UnknownIssuer => {
            "unknown issuer: it is not signed by a certificate authority Ferry trusts".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the certificate is not valid yet".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the certificate is not valid for this host name".into()
        }
        CertificateError::Revoked => "the certificate has been revoked".into(),
        CertificateError::BadSignature => "the certificate's signature is invalid".into(),
        other => format!("the certificate was refused: {other}"),
    })
}
