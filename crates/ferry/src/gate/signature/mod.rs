//! Signature gates: cosign (key-based) and Notation (X.509) verification.
//!
//! [`Verifiers`] holds a gate's trust material, parsed once. [`find_signatures`] reads the
//! signatures a registry holds for a digest (cosign's `sha256-<hex>.sig` tag, OCI
//! referrers of the Notation and cosign signature artifact types); [`check`] verifies them
//! until one passes. Every read is capped, and a signature that cannot be read or does not
//! verify is a [`Rejection`] with its reason, never a panic.
//!
//! No cryptography is written here: signatures are checked with `aws-lc-rs` (the crypto
//! rustls already uses), certificate chains with `rustls-webpki`.

mod cosign;
mod discover;
mod json;
mod jws;
mod notation;
mod subject;
#[cfg(test)]
mod tests;

use std::time::SystemTime;

use crate::config::SignatureGate;
use crate::digest::Digest;
use crate::error::Error;
use crate::registry::{RegistryClient, Repo};

pub use cosign::{COSIGN_SIGNATURE_TYPE, CosignKeys, verify_cosign};
pub use discover::{
    COSIGN_ARTIFACT_TYPE, COSIGN_SIGNATURE_ANNOTATION, Candidate, MAX_CANDIDATES,
    MAX_SIGNATURE_BLOB_BYTES, MAX_SIGNATURE_MANIFEST_BYTES, NOTATION_ARTIFACT_TYPE,
    find_signatures,
};
pub use notation::{
    Envelope, JWS_MEDIA_TYPE, MAX_X5C, NotationTrust, Verified, parse_envelope, verify_notation,
};

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The signature, its envelope or its payload cannot be read: not the expected
    /// format, too large, too deeply nested.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// A valid signature over a payload that names another digest.
    #[error("the signature is for {signed}, not this image")]
    WrongDigest {
        /// The digest the signed payload names.
        signed: String,
    },
    /// The signature does not verify under any trusted key.
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    /// The signature expired, or its certificate is not valid at the verification time.
    #[error("expired: {0}")]
    Expired(String),
    /// The signing certificate does not chain to a trusted root (or is not a code-signing
    /// certificate).
    #[error("untrusted certificate chain: {0}")]
    UntrustedChain(String),
    /// The signing certificate's subject is none of the trusted identities.
    #[error("the signer {0} is not a trusted identity")]
    Identity(String),
    /// A format, algorithm or critical extension this verifier does not handle, or no
    /// verifier of the signature's kind is configured.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Rejection {
    /// A short, stable code for reports and metrics (`bad-signature`).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::WrongDigest { .. } => "wrong-digest",
            Rejection::BadSignature(_) => "bad-signature",
            Rejection::Expired(_) => "expired",
            Rejection::UntrustedChain(_) => "untrusted-chain",
            Rejection::Identity(_) => "identity",
            Rejection::Unsupported(_) => "unsupported",
        }
    }
}

/// The verifiers of one signature gate, built once from its configuration.
#[derive(Debug)]
pub struct Verifiers {
    cosign: Option<CosignKeys>,
    notation: Option<NotationTrust>,
}

impl Verifiers {
    /// Parse the gate's keys, roots and identities (the configuration's validation has
    /// already refused bad ones; this says which entry, should one get through).
    pub fn new(gate: &SignatureGate) -> Result<Verifiers, String> {
        let cosign = gate
            .cosign
            .as_ref()
            .map(|c| CosignKeys::from_pem(&c.public_keys))
            .transpose()?;
        let notation = gate
            .notation
            .as_ref()
            .map(|n| {
                NotationTrust::new(&n.trusted_roots, &n.trusted_identities)
                    .map(|t| t.accepting_plugins(&n.accept_plugins))
            })
            .transpose()?;
        if cosign.is_none() && notation.is_none() {
            return Err("the signature gate names no verifier".to_string());
        }
        Ok(Verifiers { cosign, notation })
    }

    /// Verify one candidate for `digest`: who signed it when a verifier accepts it.
    pub fn verify(
        &self,
        candidate: &Candidate,
        digest: &Digest,
        now: SystemTime,
    ) -> Result<String, Rejection> {
        match candidate {
            Candidate::Cosign {
                payload, signature, ..
            } => {
                let keys = self.cosign.as_ref().ok_or_else(|| {
                    Rejection::Unsupported(
                        "a cosign signature, and no cosign key is trusted".into(),
                    )
                })?;
                verify_cosign(keys, payload, signature, digest)?;
                Ok("cosign key".to_string())
            }
            Candidate::Notation { envelope, .. } => {
                let trust = self.notation.as_ref().ok_or_else(|| {
                    Rejection::Unsupported(
                        "a Notation signature, and no Notation root is trusted".into(),
                    )
                })?;
                let verified = verify_notation(trust, envelope, digest, now)?;
                Ok(format!("notation: {}", verified.subject))
            }
            Candidate::Unreadable { rejection, .. } => Err(rejection.clone()),
        }
    }
}

/// What the signature gate concluded about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A signature verified.
    Trusted {
        /// Which verifier accepted it, and the signer (`notation: C=US, ST=WA, O=Acme`).
        by: String,
    },
    /// No signature verified.
    Rejected {
        /// Why, one line per signature examined (`no signature` when none was found).
        reasons: Vec<String>,
    },
}

/// Look for `digest`'s signatures in `repo` and verify them until one passes.
pub async fn check(
    verifiers: &Verifiers,
    client: &RegistryClient,
    repo: &Repo,
    digest: &Digest,
    now: SystemTime,
) -> Result<Outcome, Error> {
    let candidates = find_signatures(client, repo, digest).await?;
    Ok(judge(verifiers, &candidates, digest, now))
}

/// The outcome for the candidates found.
pub(crate) fn judge(
    verifiers: &Verifiers,
    candidates: &[Candidate],
    digest: &Digest,
    now: SystemTime,
) -> Outcome {
    if candidates.is_empty() {
        return Outcome::Rejected {
            reasons: vec!["no signature".to_string()],
        };
    }
    let mut reasons = Vec::new();
    for candidate in candidates {
        match verifiers.verify(candidate, digest, now) {
            Ok(by) => return Outcome::Trusted { by },
            Err(rejection) => {
                tracing::debug!(source = candidate.source(), code = rejection.code(), %rejection, "signature rejected");
                reasons.push(format!(
                    "{} [{}]: {rejection}",
                    candidate.source(),
                    rejection.code()
                ));
            }
        }
    }
    Outcome::Rejected { reasons }
}
