//! JWS algorithms (RFC 7518) as webpki verification algorithms, for the leaf certificate's
//! key: RSASSA-PSS from webpki, ECDSA in JWS's fixed-length form from aws-lc-rs.

use rustls_pki_types::{
    AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm, alg_id,
};

use super::Rejection;

/// The verification algorithm of a JWS `alg`.
pub(crate) fn algorithm(
    alg: &str,
) -> Result<&'static dyn SignatureVerificationAlgorithm, Rejection> {
    Ok(match alg {
        "PS256" => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        "PS384" => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        "PS512" => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        "ES256" => &ES256,
        "ES384" => &ES384,
        "ES512" => &ES512,
        other => {
            return Err(Rejection::Unsupported(format!(
                "algorithm `{}`",
                super::cosign::truncated(other)
            )));
        }
    })
}

/// JWS ECDSA: the signature is `R || S` of fixed length (RFC 7518, 3.4), not ASN.1, so
/// webpki's ECDSA algorithms (which take ASN.1) are wrapped around aws-lc-rs's fixed ones.
#[derive(Debug)]
struct FixedEcdsa {
    verify: &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm,
    public_key: AlgorithmIdentifier,
    signature: AlgorithmIdentifier,
}

static ES256: FixedEcdsa = FixedEcdsa {
    verify: &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
    public_key: alg_id::ECDSA_P256,
    signature: alg_id::ECDSA_SHA256,
};
static ES384: FixedEcdsa = FixedEcdsa {
    verify: &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
    public_key: alg_id::ECDSA_P384,
    signature: alg_id::ECDSA_SHA384,
};
static ES512: FixedEcdsa = FixedEcdsa {
    verify: &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED,
    public_key: alg_id::ECDSA_P521,
    signature: alg_id::ECDSA_SHA512,
};

impl SignatureVerificationAlgorithm for FixedEcdsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        aws_lc_rs::signature::UnparsedPublicKey::new(self.verify, public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.public_key
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature
    }
}
