//! Notation (JWS) verification.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use super::{IDENTITY, digest, p256};
use crate::config::{NotationVerifier, SignatureGate};
use crate::digest::Digest;
use crate::gate::signature::*;

struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = p256();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert,
        issuer: Issuer::new(params, key),
    }
}

struct Leaf {
    der: CertificateDer<'static>,
    key: EcdsaKeyPair,
}

#[derive(Clone, Copy)]
struct LeafSpec {
    /// The extended key usage: code signing, server auth, or none at all.
    eku: Option<bool>,
    /// Whether the key usage has digitalSignature.
    digital_signature: bool,
    org: &'static str,
    /// Valid from, until (years).
    years: (i32, i32),
}

const GOOD: LeafSpec = LeafSpec {
    eku: Some(true),
    digital_signature: true,
    org: "Acme",
    years: (2000, 2999),
};

fn leaf(ca: &Ca, spec: LeafSpec) -> Leaf {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = key.to_pkcs8v1().unwrap();
    let rc_key = KeyPair::try_from(pkcs8.as_ref()).unwrap();
    Leaf {
        der: leaf_cert(ca, spec, &rc_key),
        key,
    }
}

/// A leaf certificate of `spec` for `key`, issued by `ca`.
fn leaf_cert(ca: &Ca, spec: LeafSpec, key: &KeyPair) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    for (kind, value) in [
        (DnType::CountryName, "US"),
        (DnType::StateOrProvinceName, "WA"),
        (DnType::OrganizationName, spec.org),
        (DnType::CommonName, "release"),
    ] {
        params.distinguished_name.push(kind, value);
    }
    params.key_usages = if spec.digital_signature {
        vec![KeyUsagePurpose::DigitalSignature]
    } else {
        vec![KeyUsagePurpose::KeyEncipherment]
    };
    params.extended_key_usages = match spec.eku {
        Some(true) => vec![ExtendedKeyUsagePurpose::CodeSigning],
        Some(false) => vec![ExtendedKeyUsagePurpose::ServerAuth],
        None => vec![],
    };
    params.not_before = rcgen::date_time_ymd(spec.years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(spec.years.1, 1, 1);
    params.signed_by(key, &ca.issuer).unwrap().der().clone()
}

fn protected(scheme: &str) -> Value {
    let mut header = json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": scheme,
    });
    if scheme == "notary.x509" {
        header["io.cncf.notary.signingTime"] = json!("2024-05-01T10:00:00Z");
    } else {
        header["io.cncf.notary.authenticSigningTime"] = json!("2020-06-01T10:00:00-07:00");
        header["crit"] = json!([
            "io.cncf.notary.signingScheme",
            "io.cncf.notary.authenticSigningTime"
        ]);
    }
    header
}

fn payload_for(digest: &str) -> Value {
    json!({"targetArtifact": {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": 1234,
    }})
}

fn envelope(signer: &EcdsaKeyPair, chain: &[&[u8]], protected: &Value, payload: &Value) -> Vec<u8> {
    let sign = |input: &[u8]| {
        let signature = signer.sign(&SystemRandom::new(), input).unwrap();
        signature.as_ref().to_vec()
    };
    envelope_signed(&sign, chain, protected, payload)
}

fn envelope_signed(
    sign: &dyn Fn(&[u8]) -> Vec<u8>,
    chain: &[&[u8]],
    protected: &Value,
    payload: &Value,
) -> Vec<u8> {
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected).unwrap());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
    let signing_input = format!("{protected}.{payload}");
    let signature = sign(signing_input.as_bytes());
    serde_json::to_vec(&json!({
        "payload": payload,
        "protected": protected,
        "header": {
            "x5c": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
            "io.cncf.notary.signingAgent": "ferry-tests/1.0",
        },
        "signature": URL_SAFE_NO_PAD.encode(&signature),
    }))
    .unwrap()
}

fn trust(ca: &Ca, identities: &[&str]) -> NotationTrust {
    NotationTrust::new(
        &[ca.cert.pem()],
        &identities.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// A signed envelope for `digest()` by a leaf of `spec` under `ca`.
fn signed(ca: &Ca, spec: LeafSpec, header: &Value) -> Vec<u8> {
    let leaf = leaf(ca, spec);
    envelope(
        &leaf.key,
        &[&leaf.der, ca.cert.der()],
        header,
        &payload_for(digest().as_str()),
    )
}

fn code(trust: &NotationTrust, envelope: &[u8]) -> &'static str {
    verify_notation(trust, envelope, &digest(), SystemTime::now())
        .unwrap_err()
        .code()
}

#[test]
fn notation_signed_image_is_trusted() {
    let root = ca("root");
    let env = signed(&root, GOOD, &protected("notary.x509"));
    let verified = verify_notation(
        &trust(&root, &[IDENTITY]),
        &env,
        &digest(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(verified.subject, "CN=release, C=US, ST=WA, O=Acme");
    assert_eq!(verified.signing_scheme, "notary.x509");
    // Through the gate's verifiers and an intermediate CA too.
    let intermediate = {
        let key = p256();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.signed_by(&key, &root.issuer).unwrap();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    };
    let leaf = leaf(&intermediate, GOOD);
    let chain: [&[u8]; 3] = [&leaf.der, intermediate.cert.der(), root.cert.der()];
    let env = envelope(
        &leaf.key,
        &chain,
        &protected("notary.x509"),
        &payload_for(digest().as_str()),
    );
    let v = Verifiers::new(&SignatureGate {
        cosign: None,
        notation: Some(NotationVerifier {
            trusted_roots: vec![root.cert.pem()],
            trusted_identities: vec!["*".into()],
            accept_plugins: Vec::new(),
        }),
    })
    .unwrap();
    let c = Candidate::Notation {
        source: "referrer x".into(),
        envelope: Bytes::from(env),
    };
    let unreadable = Candidate::Unreadable {
        source: "referrer y".into(),
        rejection: Rejection::Unsupported("COSE signature envelopes".into()),
    };
    match judge(&v, &[unreadable, c], &digest(), SystemTime::now()) {
        Outcome::Trusted { by } => assert_eq!(by, "notation: CN=release, C=US, ST=WA, O=Acme"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn notation_wrong_key_and_digest() {
    let root = ca("root");
    let t = trust(&root, &[IDENTITY]);
    let good = leaf(&root, GOOD);
    let other = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let header = protected("notary.x509");
    let env = envelope(
        &other,
        &[&good.der, root.cert.der()],
        &header,
        &payload_for(digest().as_str()),
    );
    assert_eq!(code(&t, &env), "bad-signature");
    let for_other = payload_for(Digest::of(b"other").as_str());
    let env = envelope(
        &good.key,
        &[&good.der, root.cert.der()],
        &header,
        &for_other,
    );
    assert_eq!(code(&t, &env), "wrong-digest");
}

#[test]
fn notation_expiry_is_enforced() {
    let root = ca("root");
    let mut header = protected("notary.x509");
    header["io.cncf.notary.expiry"] = json!("2021-01-01T00:00:00Z");
    header["crit"] = json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
    let env = signed(&root, GOOD, &header);
    assert_eq!(code(&trust(&root, &[IDENTITY]), &env), "expired");
    // Before the expiry, it passes.
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020-01-01
    assert!(verify_notation(&trust(&root, &[IDENTITY]), &env, &digest(), then).is_ok());
    // An expiry that is not marked critical is refused.
    header["crit"] = json!(["io.cncf.notary.signingScheme"]);
    assert_eq!(
        code(&trust(&root, &[IDENTITY]), &signed(&root, GOOD, &header)),
        "malformed"
    );
}

#[test]
fn notation_untrusted_chain_eku_and_identity() {
    let root = ca("root");
    let stranger = ca("stranger");
    assert_eq!(
        code(
            &trust(&stranger, &[IDENTITY]),
            &signed(&root, GOOD, &protected("notary.x509"))
        ),
        "untrusted-chain"
    );
    for eku in [Some(false), None] {
        let spec = LeafSpec { eku, ..GOOD };
        let err = verify_notation(
            &trust(&root, &[IDENTITY]),
            &signed(&root, spec, &protected("notary.x509")),
            &digest(),
            SystemTime::now(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "untrusted-chain");
        assert!(err.to_string().contains("code signing"), "{err}");
    }
    let no_signing_bit = LeafSpec {
        digital_signature: false,
        ..GOOD
    };
    let env = signed(&root, no_signing_bit, &protected("notary.x509"));
    assert_eq!(code(&trust(&root, &[IDENTITY]), &env), "untrusted-chain");
    let other_org = LeafSpec {
        org: "Evil",
        ..GOOD
    };
    assert_eq!(
        code(
            &trust(&root, &[IDENTITY]),
            &signed(&root, other_org, &protected("notary.x509"))
        ),
        "identity"
    );
    // Notation compares the attributes given: naming CN too still matches.
    let exact = "x509.subject: C=US, ST=WA, O=Acme, CN=release";
    let env = signed(&root, GOOD, &protected("notary.x509"));
    assert!(verify_notation(&trust(&root, &[exact]), &env, &digest(), SystemTime::now()).is_ok());
    let wrong_cn = "x509.subject: C=US, ST=WA, O=Acme, CN=debug";
    assert_eq!(code(&trust(&root, &[wrong_cn]), &env), "identity");
}

#[test]
fn signing_authority_checks_the_chain_at_the_authentic_signing_time() {
    let root = ca("root");
    let expired_now = LeafSpec {
        years: (2020, 2021),
        ..GOOD
    };
    let t = trust(&root, &[IDENTITY]);
    let env = signed(
        &root,
        expired_now,
        &protected("notary.x509.signingAuthority"),
    );
    let verified = verify_notation(&t, &env, &digest(), SystemTime::now()).unwrap();
    assert_eq!(verified.signing_scheme, "notary.x509.signingAuthority");
    // The same certificate under notary.x509 is checked now: expired.
    assert_eq!(
        code(&t, &signed(&root, expired_now, &protected("notary.x509"))),
        "expired"
    );
}

#[test]
fn notation_critical_headers_and_algorithms() {
    let root = ca("root");
    let t = trust(&root, &[IDENTITY]);
    let mut header = protected("notary.x509");
    header["io.cncf.notary.verificationPlugin"] = json!("com.example.plugin");
    header["crit"] = json!([
        "io.cncf.notary.signingScheme",
        "io.cncf.notary.verificationPlugin"
    ]);
    assert_eq!(code(&t, &signed(&root, GOOD, &header)), "unsupported");
    // Listed in acceptPlugins: verified without the plugin, every other check made.
    let accepting = trust(&root, &[IDENTITY]).accepting_plugins(&["com.example.plugin".into()]);
    let env = signed(&root, GOOD, &header);
    assert!(verify_notation(&accepting, &env, &digest(), SystemTime::now()).is_ok());
    assert_eq!(
        verify_notation(&accepting, &env, &Digest::of(b"another"), SystemTime::now())
            .unwrap_err()
            .code(),
        "wrong-digest"
    );
    let other = trust(&root, &[IDENTITY]).accepting_plugins(&["com.other.plugin".into()]);
    assert_eq!(code(&other, &env), "unsupported");
    // A plugin header outside `crit` is malformed.
    let mut loose = header.clone();
    loose["crit"] = json!(["io.cncf.notary.signingScheme"]);
    assert_eq!(code(&accepting, &signed(&root, GOOD, &loose)), "malformed");
    let mut header = protected("notary.x509");
    header["crit"] = json!(["io.cncf.notary.signingScheme", "absent"]);
    assert_eq!(code(&t, &signed(&root, GOOD, &header)), "malformed");
    for (key, value, want) in [
        ("alg", json!("HS256"), "unsupported"),
        ("cty", json!("text/plain"), "unsupported"),
        (
            "io.cncf.notary.signingScheme",
            json!("notary.other"),
            "unsupported",
        ),
        ("crit", json!([]), "malformed"),
        (
            "io.cncf.notary.signingTime",
            json!("yesterday"),
            "malformed",
        ),
    ] {
        let mut header = protected("notary.x509");
        header[key] = value;
        assert_eq!(code(&t, &signed(&root, GOOD, &header)), want, "{key}");
    }
    // ES384 header over a P-256 key: the key does not fit the algorithm.
    let mut header = protected("notary.x509");
    header["alg"] = json!("ES384");
    assert_eq!(code(&t, &signed(&root, GOOD, &header)), "bad-signature");
}

#[test]
fn hostile_envelopes_are_malformed() {
    let root = ca("root");
    let t = trust(&root, &[IDENTITY]);
    let huge = vec![b' '; 300 * 1024];
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_header = URL_SAFE_NO_PAD.encode("[".repeat(1000));
    let nested = format!(
        r#"{{"payload":"","protected":"{nested_header}","header":{{"x5c":[]}},"signature":""}}"#
    );
    for bad in [
        &b""[..],
        b"{",
        b"null",
        b"{\"payload\": 1}",
        &huge,
        deep.as_bytes(),
        nested.as_bytes(),
        br#"{"payload":"!","protected":"e30","header":{"x5c":[]},"signature":""}"#,
    ] {
        assert_eq!(
            code(&t, bad),
            "malformed",
            "{}",
            String::from_utf8_lossy(&bad[..bad.len().min(80)])
        );
    }
    // Eleven certificates.
    let leaf = leaf(&root, GOOD);
    let chain: Vec<&[u8]> = vec![&leaf.der; MAX_X5C + 1];
    let env = envelope(
        &leaf.key,
        &chain,
        &protected("notary.x509"),
        &payload_for(digest().as_str()),
    );
    assert_eq!(code(&t, &env), "malformed");
    // A certificate that is not one.
    let env = envelope(
        &leaf.key,
        &[b"not a certificate"],
        &protected("notary.x509"),
        &payload_for(digest().as_str()),
    );
    assert_eq!(code(&t, &env), "malformed");
    // Never a panic on arbitrary bytes, even valid JSON around them.
    for n in 0..200u32 {
        let bytes: Vec<u8> = (0..n)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = parse_envelope(&bytes);
    }
}

#[test]
fn rsa_pss_signatures_verify() {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};

    let root = ca("root");
    let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'static> = key.as_der().unwrap();
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
    let rc_key = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let der = leaf_cert(&root, GOOD, &rc_key);
    let sign = |input: &[u8]| {
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(&RSA_PSS_SHA256, &SystemRandom::new(), input, &mut signature)
            .unwrap();
        signature
    };
    let mut header = protected("notary.x509");
    header["alg"] = json!("PS256");
    let payload = payload_for(digest().as_str());
    let env = envelope_signed(&sign, &[&der, root.cert.der()], &header, &payload);
    let t = trust(&root, &[IDENTITY]);
    assert!(verify_notation(&t, &env, &digest(), SystemTime::now()).is_ok());
    // The same signature announced as ECDSA does not verify.
    header["alg"] = json!("ES256");
    let env = envelope_signed(&sign, &[&der, root.cert.der()], &header, &payload);
    assert_eq!(code(&t, &env), "bad-signature");
}
