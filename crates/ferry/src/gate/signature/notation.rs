//! Notation (Notary Project) signatures in the JWS envelope (`application/jose+json`, JSON
//! serialization), verified as the Notary Project signature specification says: the
//! signature over `ASCII(protected '.' payload)` with the leaf certificate's key, the
//! payload's `targetArtifact.digest`, the critical headers, the expiry, a chain from a
//! code-signing leaf to a trusted root valid at the verification time, and the leaf's
//! subject against the trusted identities.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use serde::Deserialize;
use serde_json::{Map, Value};
use webpki::{EndEntityCert, KeyUsage};

use super::jws::algorithm;
use super::{Rejection, json, subject};
use crate::config::TrustedIdentity;
use crate::digest::Digest;

/// Media type of a JWS signature envelope.
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
/// Most certificates accepted in `x5c`.
pub const MAX_X5C: usize = 10;
/// Largest envelope read.
const MAX_ENVELOPE_BYTES: usize = super::discover::MAX_SIGNATURE_BLOB_BYTES as usize;
/// Largest certificate accepted in `x5c` (DER).
const MAX_CERT_BYTES: usize = 16 * 1024;
/// The payload content type of Notation signatures.
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Extended key usage id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const X509: &str = "notary.x509";
const SIGNING_AUTHORITY: &str = "notary.x509.signingAuthority";
/// The critical headers this verifier understands.
const UNDERSTOOD: &[&str] = &[
    SIGNING_SCHEME,
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    VERIFICATION_PLUGIN,
    VERIFICATION_PLUGIN_MIN_VERSION,
];
/// The plugin a signer asks verifiers to run (AWS Signer's:
/// `com.amazonaws.signer.notation.plugin`); accepted only where the trust lists it.
const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
/// The plugin's minimum version (read, not enforced: the plugin is not run).
const VERIFICATION_PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
/// Headers JWS registers: never listed in `crit` (RFC 7515, 4.1.11).
const REGISTERED: &[&str] = &[
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
];

/// The trusted roots and identities of one Notation verifier, parsed.
#[derive(Debug)]
pub struct NotationTrust {
    anchors: Vec<TrustAnchor<'static>>,
    identities: Vec<TrustedIdentity>,
    /// Verification plugins whose envelopes are verified without the plugin
    /// (`acceptPlugins`).
    plugins: Vec<String>,
}

impl NotationTrust {
    /// The same trust, verifying envelopes that name one of `plugins` as their
    /// verification plugin without it: the chain, signature, expiry and identity are
    /// checked as for any envelope, the plugin's own checks (such as AWS Signer's
    /// revocation check) are not made.
    pub fn accepting_plugins(mut self, plugins: &[String]) -> NotationTrust {
        self.plugins = plugins.to_vec();
        self
    }

    /// Parse PEM root certificates and trusted identities (`*`, `x509.subject: C=..,
    /// ST=.., O=..`): the error names the entry.
    pub fn new(roots: &[String], identities: &[String]) -> Result<NotationTrust, String> {
        let mut anchors = Vec::new();
        for (i, pem) in roots.iter().enumerate() {
            let der =
                crate::config::trusted_root(pem).map_err(|e| format!("trustedRoots[{i}]: {e}"))?;
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("trustedRoots[{i}]: {e}"))?;
            anchors.push(anchor.to_owned());
        }
        let identities = identities
            .iter()
            .enumerate()
            .map(|(i, id)| {
                crate::config::trusted_identity(id)
                    .map_err(|e| format!("trustedIdentities[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if anchors.is_empty() || identities.is_empty() {
            return Err("a Notation verifier needs trusted roots and identities".to_string());
        }
        Ok(NotationTrust {
            anchors,
            identities,
            plugins: Vec::new(),
        })
    }
}

/// What a verified Notation signature told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signing certificate's subject (`C=US, ST=WA, O=Acme, CN=release`).
    pub subject: String,
    /// `notary.x509` or `notary.x509.signingAuthority`.
    pub signing_scheme: String,
    /// When the chain was checked valid: now, or the authentic signing time.
    pub verified_at: SystemTime,
}

/// A JWS envelope, parsed and checked for form (nothing verified yet).
#[derive(Debug)]
pub struct Envelope {
    alg: &'static dyn SignatureVerificationAlgorithm,
    signing_input: String,
    signature: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    signing_scheme: &'static str,
    authentic_time: Option<SystemTime>,
    expiry: Option<SystemTime>,
    target_digest: String,
    /// `io.cncf.notary.verificationPlugin`, when the envelope names one.
    plugin: Option<String>,
}

impl Envelope {
    /// The signing scheme.
    pub fn signing_scheme(&self) -> &str {
        self.signing_scheme
    }

    /// How many certificates `x5c` holds (at least one, at most [`MAX_X5C`]).
    pub fn chain_len(&self) -> usize {
        self.chain.len()
    }

    /// The digest the signed payload names (unverified).
    pub fn target_digest(&self) -> &str {
        &self.target_digest
    }

    /// The verification plugin the envelope names, if any (unverified).
    pub fn plugin(&self) -> Option<&str> {
        self.plugin.as_deref()
    }
}

#[derive(Deserialize)]
struct RawEnvelope {
    payload: String,
    protected: String,
    header: RawHeader,
    signature: String,
}

#[derive(Deserialize)]
struct RawHeader {
    x5c: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: TargetArtifact,
}

#[derive(Deserialize)]
struct TargetArtifact {
    digest: String,
}

fn malformed(message: impl Into<String>) -> Rejection {
    Rejection::Malformed(message.into())
}

/// Parse a JWS envelope: its JSON, protected header, payload and certificates, with every
/// size and depth capped. Refuses what the verifier would not understand (an algorithm, a
/// critical header, a signing scheme) as [`Rejection::Unsupported`].
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, Rejection> {
    let raw: RawEnvelope = json::parse(bytes, MAX_ENVELOPE_BYTES, "envelope")?;
    let protected_bytes = URL_SAFE_NO_PAD
        .decode(&raw.protected)
        .map_err(|e| malformed(format!("protected header is not base64url: {e}")))?;
    let protected: Map<String, Value> =
        json::parse(&protected_bytes, MAX_ENVELOPE_BYTES, "protected header")?;
    let alg = algorithm(string_field(&protected, "alg")?.ok_or_else(|| malformed("no `alg`"))?)?;
    match string_field(&protected, "cty")? {
        Some(PAYLOAD_TYPE) => {}
        Some(other) => {
            return Err(Rejection::Unsupported(format!(
                "payload type `{}`",
                super::cosign::truncated(other)
            )));
        }
        None => return Err(malformed("no `cty`")),
    }
    check_crit(&protected)?;
    let (signing_scheme, authentic_time) = match string_field(&protected, SIGNING_SCHEME)? {
        Some(X509) => {
            time_field(&protected, SIGNING_TIME)?
                .ok_or_else(|| malformed(format!("no `{SIGNING_TIME}`")))?;
            (X509, None)
        }
        Some(SIGNING_AUTHORITY) => {
            let time = time_field(&protected, AUTHENTIC_SIGNING_TIME)?
                .ok_or_else(|| malformed(format!("no `{AUTHENTIC_SIGNING_TIME}`")))?;
            (SIGNING_AUTHORITY, Some(time))
        }
        Some(other) => {
            return Err(Rejection::Unsupported(format!(
                "signing scheme `{}`",
                super::cosign::truncated(other)
            )));
        }
        None => return Err(malformed(format!("no `{SIGNING_SCHEME}`"))),
    };
    let expiry = time_field(&protected, EXPIRY)?;

    let payload_bytes = URL_SAFE_NO_PAD
        .decode(&raw.payload)
        .map_err(|e| malformed(format!("payload is not base64url: {e}")))?;
    let payload: Payload = json::parse(&payload_bytes, MAX_ENVELOPE_BYTES, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(&raw.signature)
        .map_err(|e| malformed(format!("signature is not base64url: {e}")))?;

    if raw.header.x5c.is_empty() {
        return Err(malformed("no certificate in `x5c`"));
    }
    if raw.header.x5c.len() > MAX_X5C {
        return Err(malformed(format!(
            "more than {MAX_X5C} certificates in `x5c`"
        )));
    }
    let chain = raw
        .header
        .x5c
        .iter()
        .map(|b64| {
            if b64.len() > MAX_CERT_BYTES * 4 / 3 + 4 {
                return Err(malformed(format!(
                    "a certificate over {MAX_CERT_BYTES} bytes in `x5c`"
                )));
            }
            STANDARD
                .decode(b64)
                .map(CertificateDer::from)
                .map_err(|e| malformed(format!("`x5c` entry is not base64: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Envelope {
        alg,
        signing_input: format!("{}.{}", raw.protected, raw.payload),
        signature,
        chain,
        signing_scheme,
        authentic_time,
        expiry,
        target_digest: payload.target_artifact.digest,
        plugin: string_field(&protected, VERIFICATION_PLUGIN)?.map(str::to_string),
    })
}

/// `crit`: present, non-empty, naming headers that are present and not JWS's registered
/// ones; naming the signing scheme, and the expiry and authentic signing time when they
/// are present; and nothing this verifier does not understand.
fn check_crit(protected: &Map<String, Value>) -> Result<(), Rejection> {
    let crit = match protected.get("crit") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(malformed("`crit` is not a non-empty array")),
        None => return Err(malformed("no `crit`")),
    };
    let mut names = Vec::new();
    for item in crit {
        let Value::String(name) = item else {
            return Err(malformed("`crit` holds a non-string"));
        };
        if REGISTERED.contains(&name.as_str())
            || !protected.contains_key(name)
            || names.contains(&name)
        {
            return Err(malformed(format!(
                "`crit` lists `{}`, which is registered, repeated or absent",
                super::cosign::truncated(name)
            )));
        }
        if !UNDERSTOOD.contains(&name.as_str()) {
            return Err(Rejection::Unsupported(format!(
                "critical header `{}`",
                super::cosign::truncated(name)
            )));
        }
        names.push(name);
    }
    for required in UNDERSTOOD {
        if protected.contains_key(*required) && !names.iter().any(|n| n == required) {
            return Err(malformed(format!("`{required}` is not marked critical")));
        }
    }
    Ok(())
}

fn string_field<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Rejection> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(format!("`{key}` is not a string"))),
    }
}

fn time_field(map: &Map<String, Value>, key: &str) -> Result<Option<SystemTime>, Rejection> {
    let Some(text) = string_field(map, key)? else {
        return Ok(None);
    };
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| malformed(format!("`{key}` is not an RFC 3339 time: {e}")))?;
    let seconds =
        u64::try_from(time.timestamp()).map_err(|_| malformed(format!("`{key}` before 1970")))?;
    Ok(Some(
        UNIX_EPOCH + Duration::new(seconds, time.timestamp_subsec_nanos().min(999_999_999)),
    ))
}

fn unix_time(time: SystemTime) -> Result<UnixTime, Rejection> {
    time.duration_since(UNIX_EPOCH)
        .map(UnixTime::since_unix_epoch)
        .map_err(|_| malformed("a verification time before 1970"))
}

/// Verify a Notation JWS envelope for `digest` under `trust`, at `now`.
pub fn verify_notation(
    trust: &NotationTrust,
    envelope: &[u8],
    digest: &Digest,
    now: SystemTime,
) -> Result<Verified, Rejection> {
    let env = parse_envelope(envelope)?;
    if let Some(plugin) = env.plugin.as_deref()
        && !trust.plugins.iter().any(|p| p == plugin)
    {
        return Err(Rejection::Unsupported(format!(
            "verification plugin `{}`: list it in `acceptPlugins` to verify without it",
            super::cosign::truncated(plugin)
        )));
    }
    let leaf = EndEntityCert::try_from(&env.chain[0])
        .map_err(|e| malformed(format!("the signing certificate cannot be read: {e}")))?;
    leaf.verify_signature(env.alg, env.signing_input.as_bytes(), &env.signature)
        .map_err(|e| {
            Rejection::BadSignature(format!("not signed by the certificate's key ({e})"))
        })?;
    if env.target_digest != digest.as_str() {
        return Err(Rejection::WrongDigest {
            signed: super::cosign::truncated(&env.target_digest),
        });
    }
    if let Some(expiry) = env.expiry
        && now >= expiry
    {
        return Err(Rejection::Expired(format!(
            "the signature expired at {}",
            chrono::DateTime::<chrono::Utc>::from(expiry).to_rfc3339()
        )));
    }
    let at = env.authentic_time.unwrap_or(now);
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust.anchors,
        &env.chain[1..],
        unix_time(at)?,
        // Intermediates without an extended key usage pass; the leaf's is checked below.
        KeyUsage::required_if_present(EKU_CODE_SIGNING),
        None,
        None,
    )
    .map_err(chain_rejection)?;
    subject::check_signing_usages(&env.chain[0]).map_err(Rejection::UntrustedChain)?;
    let attributes = subject::subject_attributes(leaf.subject()).map_err(Rejection::Identity)?;
    let subject = subject::display(&attributes);
    if !trust.identities.iter().any(|id| id.matches(&attributes)) {
        return Err(Rejection::Identity(subject));
    }
    Ok(Verified {
        subject,
        signing_scheme: env.signing_scheme.to_string(),
        verified_at: at,
    })
}

fn chain_rejection(e: webpki::Error) -> Rejection {
    #[allow(deprecated)]
    match e {
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
            Rejection::Expired(format!(
                "a certificate of the chain is not valid at the verification time ({e})"
            ))
        }
        webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
            Rejection::UntrustedChain("the signing certificate is not for code signing".to_string())
        }
        other => Rejection::UntrustedChain(format!("{other}")),
    }
}
