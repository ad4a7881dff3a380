//! The Notation JWS envelope parser: `ferry::gate::signature::parse_envelope`.
//!
//! Input: the envelope bytes, as a registry would serve the blob.
#![no_main]

use ferry::gate::signature::{MAX_X5C, parse_envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let envelope = match parse_envelope(data) {
        Ok(envelope) => envelope,
        Err(rejection) => {
            // Every refusal has a stable code and a reason.
            assert!(!rejection.code().is_empty());
            assert!(!rejection.to_string().is_empty());
            return;
        }
    };
    assert!(
        (1..=MAX_X5C).contains(&envelope.chain_len()),
        "{} certificates accepted",
        envelope.chain_len()
    );
    assert!(matches!(
        envelope.signing_scheme(),
        "notary.x509" | "notary.x509.signingAuthority"
    ));
    // An accepted envelope came from at most 256 KiB.
    assert!(data.len() <= 256 * 1024);
});
