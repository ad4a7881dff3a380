//! Validation of a signature gate's trust material (keys, roots, identities): parsed here,
//! once, so that a mistake is a configuration error with its path, not a blocked image.
//! The `gate` module builds its verifiers with the same parsers.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::error::Issue;
use super::gates::{MAX_TRUST_ENTRIES, SignatureGate};

/// Longest PEM entry accepted (a key or one certificate: an RSA-4096 certificate is ~2 KiB).
const MAX_PEM_BYTES: usize = 16 * 1024;
/// Longest trusted identity.
const MAX_IDENTITY_BYTES: usize = 1024;
/// The RDN attributes every `x509.subject` identity must name (Notary Project trust
/// policy: country, state or province, organization).
const MANDATORY_ATTRIBUTES: [&str; 3] = ["C", "ST", "O"];

/// A `trustedIdentities` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrustedIdentity {
    /// `*`: any signing certificate under the roots.
    Any,
    /// `x509.subject: C=.., ST=.., O=..`: the attributes (type in upper case, value) the
    /// signing certificate's subject must hold, each with exactly this value.
    Subject(Vec<(String, String)>),
}

impl TrustedIdentity {
    /// Whether a certificate subject with `attributes` (type in upper case, value) matches:
    /// every attribute of the identity is in the subject with the same value (Notation's
    /// rule: the identity may name all of the subject's attributes or a part of them).
    pub(crate) fn matches(&self, attributes: &[(String, String)]) -> bool {
        match self {
            TrustedIdentity::Any => true,
            TrustedIdentity::Subject(wanted) => wanted.iter().all(|w| attributes.contains(w)),
        }
    }
}

/// Findings about the keys, roots and identities of `gate` (at `path`).
pub(crate) fn signature_issues(gate: &SignatureGate, path: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(cosign) = &gate.cosign {
        let at = format!("{path}.cosign.publicKeys");
        check_count(&mut issues, &at, cosign.public_keys.len(), "public key");
        for (i, key) in cosign.public_keys.iter().enumerate() {
            if let Err(message) = cosign_key(key) {
                issues.push(Issue::error(format!("{at}[{i}]"), message));
            }
        }
    }
    if let Some(notation) = &gate.notation {
        let at = format!("{path}.notation.trustedRoots");
        check_count(
            &mut issues,
            &at,
            notation.trusted_roots.len(),
            "root certificate",
        );
        for (i, root) in notation.trusted_roots.iter().enumerate() {
            if let Err(message) = trusted_root(root) {
                issues.push(Issue::error(format!("{at}[{i}]"), message));
            }
        }
        let at = format!("{path}.notation.trustedIdentities");
        check_count(
            &mut issues,
            &at,
            notation.trusted_identities.len(),
            "identity",
        );
        let mut parsed = Vec::new();
        for (i, identity) in notation.trusted_identities.iter().enumerate() {
            match trusted_identity(identity) {
                Ok(id) => parsed.push((i, id)),
                Err(message) => issues.push(Issue::error(format!("{at}[{i}]"), message)),
            }
        }
        issues.extend(identity_overlaps(&parsed, &at));
        let at = format!("{path}.notation.acceptPlugins");
        if notation.accept_plugins.len() > MAX_TRUST_ENTRIES {
            issues.push(Issue::error(
                &at,
                format!("at most {MAX_TRUST_ENTRIES} entries"),
            ));
        }
        for (i, plugin) in notation.accept_plugins.iter().enumerate() {
            let well_formed = !plugin.is_empty()
                && plugin.len() <= 128
                && plugin
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !well_formed {
                issues.push(Issue::error(
                    format!("{at}[{i}]"),
                    "a plugin name such as com.amazonaws.signer.notation.plugin",
                ));
            }
        }
    }
    issues
}

fn check_count(issues: &mut Vec<Issue>, at: &str, count: usize, what: &str) {
    if count == 0 {
        issues.push(Issue::error(at, format!("give at least one {what}")));
    } else if count > MAX_TRUST_ENTRIES {
        issues.push(Issue::error(
            at,
            format!("at most {MAX_TRUST_ENTRIES} entries"),
        ));
    }
}

/// `*` beside other identities, or two identities one of which matches every subject the
/// other matches (the Notary Project trust policy calls them overlapping, and invalid).
fn identity_overlaps(parsed: &[(usize, TrustedIdentity)], at: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    if parsed.len() > 1 && parsed.iter().any(|(_, id)| *id == TrustedIdentity::Any) {
        issues.push(Issue::error(at, "`*` must be the only identity"));
        return issues;
    }
    for (n, (i, a)) in parsed.iter().enumerate() {
        for (j, b) in &parsed[n + 1..] {
            if let (TrustedIdentity::Subject(x), TrustedIdentity::Subject(y)) = (a, b)
                && (b.matches(x) || a.matches(y))
            {
                issues.push(Issue::error(
                    format!("{at}[{j}]"),
                    format!("overlaps identity [{i}]: one of them matches every subject the other does; keep one"),
                ));
            }
        }
    }
    issues
}

/// The PEM sections of `pem`, checked to be exactly one of `kind` and nothing secret.
fn one_section(pem: &str, kind: SectionKind, label: &str) -> Result<Vec<u8>, String> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(format!(
            "longer than {MAX_PEM_BYTES} bytes: give one {label}"
        ));
    }
    let mut found = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind_seen, der) = section.map_err(|e| format!("not PEM: {e}"))?;
        match kind_seen {
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                // Never echo the section: it is a secret.
                return Err("holds a private key: give the public part only".to_string());
            }
            k if k == kind && found.is_none() => found = Some(der),
            k if k == kind => {
                return Err(format!("holds more than one {label}: give one per entry"));
            }
            _ => {
                return Err(format!(
                    "holds something other than a {label} (`{kind_seen:?}`)"
                ));
            }
        }
    }
    found.ok_or_else(|| {
        format!(
            "no PEM {label} (`-----BEGIN {}-----`) found",
            pem_label(kind)
        )
    })
}

fn pem_label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        _ => "PUBLIC KEY",
    }
}

/// A cosign public key entry: PEM `PUBLIC KEY` (SubjectPublicKeyInfo), ECDSA on P-256.
pub(crate) fn cosign_key(pem: &str) -> Result<ParsedPublicKey, String> {
    let der = one_section(pem, SectionKind::PublicKey, "public key")?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &der).map_err(|e| {
        format!("not an ECDSA P-256 public key ({e}): cosign keys are P-256, as `cosign generate-key-pair` makes them")
    })
}

/// A Notation root entry: one PEM `CERTIFICATE` that can serve as a trust anchor.
pub(crate) fn trusted_root(pem: &str) -> Result<CertificateDer<'static>, String> {
    let der = CertificateDer::from(one_section(pem, SectionKind::Certificate, "certificate")?);
    webpki::anchor_from_trusted_cert(&der)
        .map_err(|e| format!("not an X.509 certificate usable as a trust anchor: {e}"))?;
    Ok(der)
}

/// A `trustedIdentities` entry: `*`, or `x509.subject: ` and a distinguished name naming
/// at least C, ST and O (`x509.subject: C=US, ST=WA, O=Acme, CN=release`).
pub(crate) fn trusted_identity(identity: &str) -> Result<TrustedIdentity, String> {
    if identity.len() > MAX_IDENTITY_BYTES {
        return Err(format!("longer than {MAX_IDENTITY_BYTES} bytes"));
    }
    if identity.trim() == "*" {
        return Ok(TrustedIdentity::Any);
    }
    let Some(dn) = identity.trim_start().strip_prefix("x509.subject:") else {
        return Err(
            "write `*` or `x509.subject: ` followed by a distinguished name (C=.., ST=.., O=..)"
                .to_string(),
        );
    };
    let attributes = parse_dn(dn)?;
    let missing: Vec<&str> = MANDATORY_ATTRIBUTES
        .into_iter()
        .filter(|m| !attributes.iter().any(|(t, _)| t == m))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the distinguished name lacks {}: a Notation identity names at least C, ST and O",
            missing.join(", ")
        ));
    }
    Ok(TrustedIdentity::Subject(attributes))
}

/// Parse a distinguished name as the Notary Project trust policy writes it: RDNs separated
/// by `,`, each `TYPE=value`; `\` escapes the next character (or two hex digits give a
/// byte). Types are upper-cased; a type given twice, a multi-valued RDN (`+`) or an empty
/// value is refused, as Notation refuses them.
pub(crate) fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    for rdn in split_unescaped(dn)? {
        let (kind, value) = rdn
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not TYPE=value", rdn.trim()))?;
        let kind = kind.trim().to_ascii_uppercase();
        let valid_type = !kind.is_empty()
            && kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid_type {
            return Err(format!(
                "`{kind}` is not an attribute type (such as CN, O, C)"
            ));
        }
        let value = unescape(value.trim_start(), &kind)?;
        if value.is_empty() {
            return Err(format!("{kind} has an empty value"));
        }
        if attributes.iter().any(|(t, _)| *t == kind) {
            return Err(format!(
                "{kind} is given twice: each attribute at most once"
            ));
        }
        attributes.push((kind, value));
    }
    if attributes.is_empty() {
        return Err("the distinguished name is empty".to_string());
    }
    Ok(attributes)
}

/// The RDNs of `dn`, split at commas not escaped by `\` (escapes kept for `unescape`).
fn split_unescaped(dn: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&dn[start..i]);
                start = i + 1;
            }
            '+' => {
                return Err("multi-valued RDNs (`+`) are not supported: escape it as `\\+`".into());
            }
            ';' => return Err("separate RDNs with `,` (escape a `;` in a value as `\\;`)".into()),
            _ => {}
        }
    }
    if escaped {
        return Err("the distinguished name ends in a lone `\\`".to_string());
    }
    parts.push(&dn[start..]);
    Ok(parts)
}

/// The value of one RDN: escapes resolved, unescaped trailing spaces dropped.
fn unescape(raw: &str, kind: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    let mut kept = 0; // length up to the last escaped or non-space byte
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            if c != ' ' {
                kept = bytes.len();
            }
            continue;
        }
        let Some(next) = chars.next() else {
            return Err(format!("{kind} ends in a lone `\\`"));
        };
        match (next.to_digit(16), chars.peek().and_then(|n| n.to_digit(16))) {
            (Some(hi), Some(lo)) => {
                chars.next();
                bytes.push((hi * 16 + lo) as u8);
            }
            _ => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
            }
        }
        kept = bytes.len();
    }
    bytes.truncate(kept);
    String::from_utf8(bytes).map_err(|_| format!("{kind}: the escaped bytes are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::gates::{CosignVerifier, NotationVerifier};

    fn p256_pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .public_key_pem()
    }

    fn root_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn gate(keys: Vec<String>, roots: Vec<String>, ids: Vec<&str>) -> SignatureGate {
        SignatureGate {
            cosign: Some(CosignVerifier { public_keys: keys }),
            notation: Some(NotationVerifier {
                trusted_roots: roots,
                trusted_identities: ids.into_iter().map(str::to_string).collect(),
                accept_plugins: Vec::new(),
            }),
        }
    }

    fn paths(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.path.as_str()).collect()
    }

    #[test]
    fn valid_material_has_no_issue() {
        let g = gate(
            vec![p256_pem()],
            vec![root_pem()],
            vec!["x509.subject: C=US, ST=WA, O=Acme, CN=release"],
        );
        assert_eq!(signature_issues(&g, "rules[0].gates.signature"), vec![]);
        let g = gate(vec![p256_pem()], vec![root_pem()], vec!["*"]);
        assert_eq!(signature_issues(&g, "s"), vec![]);
    }

    #[test]
    fn each_bad_entry_is_named_by_its_path() {
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .public_key_pem();
        let private = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let g = gate(
            vec![p256_pem(), p384, "garbage".into(), private.clone()],
            vec![root_pem(), p256_pem()],
            vec![
                "x509.subject: C=US, ST=WA, O=Acme",
                "CN=x",
                "x509.subject: CN=x",
            ],
        );
        let issues = signature_issues(&g, "rules[0].gates.signature");
        assert_eq!(
            paths(&issues),
            vec![
                "rules[0].gates.signature.cosign.publicKeys[1]",
                "rules[0].gates.signature.cosign.publicKeys[2]",
                "rules[0].gates.signature.cosign.publicKeys[3]",
                "rules[0].gates.signature.notation.trustedRoots[1]",
                "rules[0].gates.signature.notation.trustedIdentities[1]",
                "rules[0].gates.signature.notation.trustedIdentities[2]",
            ]
        );
        assert!(issues[0].message.contains("P-256"), "{}", issues[0]);
        assert!(issues[2].message.contains("private key"), "{}", issues[2]);
        // The secret is never echoed.
        let body: String = private.lines().nth(1).unwrap().into();
        assert!(issues.iter().all(|i| !i.message.contains(&body)));
        assert!(issues[5].message.contains("C, ST"), "{}", issues[5]);
    }

    #[test]
    fn lists_are_neither_empty_nor_huge() {
        let g = gate(vec![], vec![], vec![]);
        assert_eq!(signature_issues(&g, "s").len(), 3);
        let many = vec![p256_pem(); MAX_TRUST_ENTRIES + 1];
        let g = gate(many, vec![root_pem()], vec!["*"]);
        assert_eq!(
            paths(&signature_issues(&g, "s")),
            vec!["s.cosign.publicKeys"]
        );
    }

    #[test]
    fn two_keys_in_one_entry_are_refused() {
        let two = format!("{}{}", p256_pem(), p256_pem());
        assert!(cosign_key(&two).unwrap_err().contains("more than one"));
    }

    #[test]
    fn overlapping_identities_are_refused() {
        let g = gate(
            vec![p256_pem()],
            vec![root_pem()],
            vec![
                "x509.subject: C=US, ST=WA, O=Acme",
                "x509.subject: C=US, ST=WA, O=Acme, OU=Build",
                "x509.subject: C=US, ST=WA, O=Other",
            ],
        );
        let issues = signature_issues(&g, "s");
        assert_eq!(paths(&issues), vec!["s.notation.trustedIdentities[1]"]);
        let g = gate(
            vec![p256_pem()],
            vec![root_pem()],
            vec!["*", "x509.subject: C=US, ST=WA, O=A"],
        );
        assert_eq!(signature_issues(&g, "s").len(), 1);
    }

    #[test]
    fn distinguished_names_parse_with_escapes() {
        let attrs = parse_dn(r" c=US, ST=WA ,O=Acme\, Inc., CN=\ padded\ , OU=a\3Db").unwrap();
        let want = [
            ("C", "US"),
            ("ST", "WA"),
            ("O", "Acme, Inc."),
            ("CN", " padded "),
            ("OU", "a=b"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(attrs, want);
        for bad in [
            "",
            "CN",
            "CN=",
            "CN=a+O=b",
            "CN=a;O=b",
            "CN=a, CN=b",
            "C N=a",
            r"CN=a\",
        ] {
            assert!(parse_dn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identities_match_as_subsets() {
        let id = trusted_identity("x509.subject: C=US, ST=WA, O=Acme").unwrap();
        let subject = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(id.matches(&subject(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", "Acme"),
            ("CN", "x")
        ])));
        assert!(!id.matches(&subject(&[("C", "US"), ("ST", "WA"), ("O", "Acme2")])));
        assert!(!id.matches(&subject(&[("C", "US"), ("O", "Acme")])));
        assert!(TrustedIdentity::Any.matches(&[]));
    }
}
