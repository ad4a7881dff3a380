//! Key-based cosign signatures: an ECDSA P-256 / SHA-256 signature (ASN.1 DER, base64)
//! over the exact bytes of a "simple signing" JSON payload naming the image's digest.

use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine;
use serde::Deserialize;

use super::{Rejection, json};
use crate::digest::Digest;

/// `critical.type` of a cosign simple-signing payload.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
/// Largest payload read (the same cap as every signature blob).
const MAX_PAYLOAD_BYTES: usize = super::discover::MAX_SIGNATURE_BLOB_BYTES as usize;
/// Longest base64 signature accepted (a DER P-256 signature is at most 72 bytes).
const MAX_SIGNATURE_B64: usize = 512;

/// The trusted cosign public keys of one gate, parsed.
#[derive(Debug)]
pub struct CosignKeys {
    keys: Vec<ParsedPublicKey>,
}

impl CosignKeys {
    /// Parse PEM public keys (SubjectPublicKeyInfo, ECDSA P-256): the error names the
    /// entry (`publicKeys[1]: ...`).
    pub fn from_pem(pems: &[String]) -> Result<CosignKeys, String> {
        let keys = pems
            .iter()
            .enumerate()
            .map(|(i, pem)| {
                crate::config::cosign_key(pem).map_err(|e| format!("publicKeys[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("publicKeys: give at least one key".to_string());
        }
        Ok(CosignKeys { keys })
    }
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Verify a cosign signature of `digest`: `signature_b64` (base64 of an ASN.1 DER
/// ECDSA-P256-SHA256 signature) must verify over `payload` under one of `keys`, and the
/// payload must be a simple-signing document of type [`COSIGN_SIGNATURE_TYPE`] whose
/// `critical.image.docker-manifest-digest` is `digest`.
pub fn verify_cosign(
    keys: &CosignKeys,
    payload: &[u8],
    signature_b64: &str,
    digest: &Digest,
) -> Result<(), Rejection> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Rejection::Malformed(format!(
            "payload of {} bytes, more than {MAX_PAYLOAD_BYTES}",
            payload.len()
        )));
    }
    let signature_b64 = signature_b64.trim();
    if signature_b64.len() > MAX_SIGNATURE_B64 {
        return Err(Rejection::Malformed(format!(
            "signature annotation longer than {MAX_SIGNATURE_B64} characters"
        )));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_b64)
        .map_err(|e| Rejection::Malformed(format!("signature is not base64: {e}")))?;
    if !keys
        .keys
        .iter()
        .any(|key| key.verify_sig(payload, &signature).is_ok())
    {
        return Err(Rejection::BadSignature(
            "not signed by any trusted cosign key".to_string(),
        ));
    }
    let doc: SimpleSigning = json::parse(payload, MAX_PAYLOAD_BYTES, "cosign payload")?;
    if doc.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(Rejection::Unsupported(format!(
            "cosign payload of type `{}`",
            truncated(&doc.critical.kind)
        )));
    }
    if doc.critical.image.digest != digest.as_str() {
        return Err(Rejection::WrongDigest {
            signed: truncated(&doc.critical.image.digest),
        });
    }
    Ok(())
}

/// At most 100 characters of an untrusted string, for messages.
pub(crate) fn truncated(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
