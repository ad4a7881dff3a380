//! What Notation reads of a signing certificate beyond webpki's checks: its subject, as the
//! attribute list trusted identities are compared with, and its key usages.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};

/// extKeyUsage (2.5.29.37).
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// keyUsage (2.5.29.15).
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
/// id-kp-codeSigning.
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// Most attributes read from one subject.
const MAX_ATTRIBUTES: usize = 32;

/// Short names of the attribute types Go's `pkix.Name` (and so Notation) prints.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
];

/// The attributes (type name, value) of a DER `Name` given without its outer SEQUENCE
/// (as `webpki`'s `Cert::subject` gives it), in order. Like Notation, a multi-valued RDN
/// or an attribute given twice is refused; so is a value that is not a string.
pub(crate) fn subject_attributes(name: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bad = |e: der::Error| format!("unreadable subject: {e}");
    let mut rdns = SliceReader::new(name).map_err(bad)?;
    let mut attributes: Vec<(String, String)> = Vec::new();
    while !rdns.is_finished() {
        let set = AnyRef::decode(&mut rdns).map_err(bad)?;
        if set.tag() != Tag::Set {
            return Err("unreadable subject: an RDN is not a SET".to_string());
        }
        let mut members = SliceReader::new(set.value()).map_err(bad)?;
        let sequence = AnyRef::decode(&mut members).map_err(bad)?;
        if !members.is_finished() {
            return Err("the subject has a multi-valued RDN".to_string());
        }
        if sequence.tag() != Tag::Sequence {
            return Err("unreadable subject: an attribute is not a SEQUENCE".to_string());
        }
        let mut fields = SliceReader::new(sequence.value()).map_err(bad)?;
        let oid: ObjectIdentifier = ObjectIdentifier::decode(&mut fields).map_err(bad)?;
        let value = AnyRef::decode(&mut fields).map_err(bad)?;
        let text = match value.tag() {
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                std::str::from_utf8(value.value())
                    .map_err(|_| "a subject attribute is not UTF-8".to_string())?
            }
            other => return Err(format!("a subject attribute of type {other}")),
        };
        let oid = oid.to_string();
        let kind = SHORT_NAMES
            .iter()
            .find(|(dotted, _)| *dotted == oid)
            .map_or(oid.clone(), |(_, short)| short.to_string());
        if attributes.iter().any(|(t, _)| *t == kind) {
            return Err(format!("the subject names {kind} twice"));
        }
        if attributes.len() == MAX_ATTRIBUTES {
            return Err(format!(
                "the subject has more than {MAX_ATTRIBUTES} attributes"
            ));
        }
        attributes.push((kind, text.to_string()));
    }
    Ok(attributes)
}

/// `C=US, ST=WA, O=Acme`, for messages.
pub(crate) fn display(attributes: &[(String, String)]) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{k}={}", super::cosign::truncated(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a certificate (DER) carries the code-signing extended key usage, and the
/// digitalSignature key usage (Notary Project certificate requirements for the signing
/// certificate): the reason when not.
pub(crate) fn check_signing_usages(cert: &[u8]) -> Result<(), String> {
    let bad = |e: der::Error| format!("unreadable certificate: {e}");
    let eku = extension(cert, EXT_KEY_USAGE).map_err(bad)?;
    let Some(eku) = eku else {
        return Err("the signing certificate has no extended key usage (code signing)".to_string());
    };
    let purposes = AnyRef::from_der(&eku).map_err(bad)?;
    let mut reader = SliceReader::new(purposes.value()).map_err(bad)?;
    let mut code_signing = false;
    while !reader.is_finished() {
        let purpose: ObjectIdentifier = reader.decode().map_err(bad)?;
        code_signing |= purpose == CODE_SIGNING;
    }
    if !code_signing {
        return Err("the signing certificate is not for code signing".to_string());
    }
    let ku = extension(cert, KEY_USAGE).map_err(bad)?;
    let bits = match ku {
        Some(ku) => AnyRef::from_der(&ku).map_err(bad)?.value().to_vec(),
        None => Vec::new(),
    };
    // BIT STRING: unused-bits byte, then digitalSignature is the first bit.
    if bits.get(1).is_none_or(|first| first & 0x80 == 0) {
        return Err("the signing certificate's key usage lacks digitalSignature".to_string());
    }
    Ok(())
}

/// The value (contents of the OCTET STRING) of extension `oid` of a certificate (DER).
fn extension(cert: &[u8], oid: ObjectIdentifier) -> Result<Option<Vec<u8>>, der::Error> {
    let cert = AnyRef::from_der(cert)?;
    let mut fields = SliceReader::new(cert.value())?;
    let tbs = AnyRef::decode(&mut fields)?;
    let mut tbs = SliceReader::new(tbs.value())?;
    let extensions_tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(3),
    };
    while !tbs.is_finished() {
        let field = AnyRef::decode(&mut tbs)?;
        if field.tag() != extensions_tag {
            continue;
        }
        let list = AnyRef::from_der(field.value())?;
        let mut list = SliceReader::new(list.value())?;
        while !list.is_finished() {
            let extension = AnyRef::decode(&mut list)?;
            let mut parts = SliceReader::new(extension.value())?;
            let id: ObjectIdentifier = parts.decode()?;
            if id != oid {
                continue;
            }
            let mut value = AnyRef::decode(&mut parts)?;
            if value.tag() == Tag::Boolean {
                value = AnyRef::decode(&mut parts)?;
            }
            if value.tag() != Tag::OctetString {
                return Err(der::Error::from(der::ErrorKind::TagUnexpected {
                    expected: Some(Tag::OctetString),
                    actual: value.tag(),
                }));
            }
            return Ok(Some(value.value().to_vec()));
        }
    }
    Ok(None)
}
