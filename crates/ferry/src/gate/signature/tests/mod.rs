//! Verification tests. Every key and certificate is made here (rcgen, aws-lc-rs); none is
//! checked in. `registry` runs discovery and `check` against a tiny loopback registry.

mod notation;
mod registry;

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rcgen::{KeyPair, SigningKey};
use serde_json::json;

use super::*;
use crate::config::CosignVerifier;

const IDENTITY: &str = "x509.subject: C=US, ST=WA, O=Acme";

fn digest() -> Digest {
    Digest::of(b"the image")
}

// ---- cosign ----

fn cosign_payload(digest: &str, kind: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": "registry.example/app"},
            "image": {"docker-manifest-digest": digest},
            "type": kind,
        },
        "optional": {"creator": "test"},
    }))
    .unwrap()
}

fn cosign_sign(key: &KeyPair, payload: &[u8]) -> String {
    STANDARD.encode(key.sign(payload).unwrap())
}

fn cosign_verifiers(key: &KeyPair) -> Verifiers {
    Verifiers::new(&SignatureGate {
        cosign: Some(CosignVerifier {
            public_keys: vec![key.public_key_pem()],
        }),
        notation: None,
    })
    .unwrap()
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn cosign_candidate(payload: Vec<u8>, signature: String) -> Candidate {
    Candidate::Cosign {
        source: "tag sha256-x.sig".to_string(),
        payload: Bytes::from(payload),
        signature,
    }
}

#[test]
fn cosign_signed_image_is_trusted() {
    let key = p256();
    let payload = cosign_payload(digest().as_str(), COSIGN_SIGNATURE_TYPE);
    let c = cosign_candidate(payload.clone(), cosign_sign(&key, &payload));
    let v = cosign_verifiers(&key);
    assert_eq!(
        v.verify(&c, &digest(), SystemTime::now()),
        Ok("cosign key".into())
    );
    assert!(matches!(
        judge(&v, &[c], &digest(), SystemTime::now()),
        Outcome::Trusted { .. }
    ));
}

#[test]
fn no_signature_is_rejected() {
    let v = cosign_verifiers(&p256());
    assert_eq!(
        judge(&v, &[], &digest(), SystemTime::now()),
        Outcome::Rejected {
            reasons: vec!["no signature".into()]
        }
    );
}

#[test]
fn cosign_rejections() {
    let key = p256();
    let keys = CosignKeys::from_pem(&[key.public_key_pem()]).unwrap();
    let payload = cosign_payload(digest().as_str(), COSIGN_SIGNATURE_TYPE);
    let code = |payload: &[u8], sig: &str| {
        verify_cosign(&keys, payload, sig, &digest())
            .unwrap_err()
            .code()
    };
    // Another key.
    assert_eq!(
        code(&payload, &cosign_sign(&p256(), &payload)),
        "bad-signature"
    );
    // The payload altered after signing.
    let mut altered = payload.clone();
    altered.push(b' ');
    assert_eq!(
        code(&altered, &cosign_sign(&key, &payload)),
        "bad-signature"
    );
    // Another digest, validly signed.
    let other = cosign_payload(Digest::of(b"other").as_str(), COSIGN_SIGNATURE_TYPE);
    assert_eq!(code(&other, &cosign_sign(&key, &other)), "wrong-digest");
    // Not a container image signature.
    let attestation = cosign_payload(digest().as_str(), "something else");
    assert_eq!(
        code(&attestation, &cosign_sign(&key, &attestation)),
        "unsupported"
    );
    // Garbage, signed or not.
    assert_eq!(code(&payload, "%%%"), "malformed");
    assert_eq!(code(b"[[[[", &cosign_sign(&key, b"[[[[")), "malformed");
    let deep = "[".repeat(100_000).into_bytes();
    assert_eq!(code(&deep, &cosign_sign(&key, &deep)), "malformed");
    let huge = vec![b' '; 300 * 1024];
    assert_eq!(code(&huge, "AAAA"), "malformed");
    assert_eq!(code(&payload, &"A".repeat(10_000)), "malformed");
}

#[test]
fn signature_manifests_are_capped() {
    let layer =
        json!({"mediaType": "application/jose+json", "digest": digest().as_str(), "size": 10});
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": layer, "layers": [layer]});
    let bytes = serde_json::to_vec(&manifest).unwrap();
    assert_eq!(discover::layers_of(&bytes).unwrap().len(), 1);
    let mut big = manifest.clone();
    big["annotations"] = json!({"pad": "x".repeat(MAX_SIGNATURE_MANIFEST_BYTES as usize)});
    let big = serde_json::to_vec(&big).unwrap();
    assert!(matches!(
        discover::layers_of(&big),
        Err(Rejection::Malformed(_))
    ));
    assert!(matches!(
        discover::layers_of(b"{}"),
        Err(Rejection::Malformed(_))
    ));
    assert!(discover::is_signature_type(Some(NOTATION_ARTIFACT_TYPE)));
    assert!(discover::is_signature_type(Some(COSIGN_ARTIFACT_TYPE)));
    assert!(!discover::is_signature_type(Some("application/spdx+json")));
}

#[test]
fn verifiers_need_a_verifier_and_good_material() {
    assert!(Verifiers::new(&SignatureGate::default()).is_err());
    let err = Verifiers::new(&SignatureGate {
        cosign: Some(CosignVerifier {
            public_keys: vec![p256().public_key_pem(), "junk".into()],
        }),
        notation: None,
    })
    .unwrap_err();
    assert!(err.starts_with("publicKeys[1]"), "{err}");
    // A candidate of a kind no verifier handles.
    let v = cosign_verifiers(&p256());
    let c = Candidate::Notation {
        source: "r".into(),
        envelope: Bytes::new(),
    };
    assert_eq!(
        v.verify(&c, &digest(), SystemTime::now())
            .unwrap_err()
            .code(),
        "unsupported"
    );
}
