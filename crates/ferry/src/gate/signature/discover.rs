//! Finding an image's signatures in its repository: cosign's `sha256-<hex>.sig` tag and
//! the OCI referrers (API, else the `sha256-<hex>` tag-schema index) of the Notation and
//! cosign signature artifact types. Every read is capped; a signature that cannot be read
//! is a candidate too ([`Candidate::Unreadable`]), so that its reason is reported.

use bytes::Bytes;

use super::Rejection;
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Descriptor, Parsed};
use crate::registry::{RegistryClient, Repo};

/// Artifact type of a Notation signature manifest.
pub const NOTATION_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Artifact type of a cosign signature stored as an OCI 1.1 referrer.
pub const COSIGN_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Layer annotation holding a cosign signature (base64).
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Most signatures examined for one image.
pub const MAX_CANDIDATES: usize = 16;
/// Largest signature manifest read.
pub const MAX_SIGNATURE_MANIFEST_BYTES: u64 = 64 * 1024;
/// Largest signature payload or envelope read.
pub const MAX_SIGNATURE_BLOB_BYTES: u64 = 256 * 1024;
/// Media type of a COSE envelope (Notation's other format, not supported).
const COSE_MEDIA_TYPE: &str = "application/cose";

/// One signature found for an image, not verified yet.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// A cosign signature: its payload blob and the signature annotation.
    Cosign {
        /// Where it was found (`tag sha256-<hex>.sig`, `referrer sha256:...`).
        source: String,
        /// The simple-signing payload, as stored.
        payload: Bytes,
        /// The base64 signature from the layer annotation.
        signature: String,
    },
    /// A Notation signature: its JWS envelope blob.
    Notation {
        /// Where it was found.
        source: String,
        /// The envelope, as stored.
        envelope: Bytes,
    },
    /// A signature that could not be read (too large, malformed, an unsupported format).
    Unreadable {
        /// Where it was found.
        source: String,
        /// Why it was not read.
        rejection: Rejection,
    },
}

impl Candidate {
    /// Where the candidate was found.
    pub fn source(&self) -> &str {
        match self {
            Candidate::Cosign { source, .. }
            | Candidate::Notation { source, .. }
            | Candidate::Unreadable { source, .. } => source,
        }
    }
}

/// The signatures `repo` holds for `digest`, at most [`MAX_CANDIDATES`]: cosign's tag
/// first, then the referrers. Transport and auth failures are errors; a signature that
/// cannot be read is a [`Candidate::Unreadable`].
pub async fn find_signatures(
    client: &RegistryClient,
    repo: &Repo,
    digest: &Digest,
) -> Result<Vec<Candidate>, Error> {
    let mut found = Vec::new();
    let tag = format!("{}.sig", digest.fallback_tag());
    if let Some(head) = client.head_manifest(repo, &tag).await? {
        let source = format!("tag {tag}");
        let size = head.size.unwrap_or(MAX_SIGNATURE_MANIFEST_BYTES);
        match read_manifest(client, repo, &head.digest, size).await? {
            Ok(layers) => cosign_layers(client, repo, &source, &layers, &mut found).await?,
            Err(rejection) => found.push(Candidate::Unreadable { source, rejection }),
        }
    }
    for referrer in signature_referrers(client, repo, digest).await? {
        if found.len() >= MAX_CANDIDATES {
            break;
        }
        let source = format!("referrer {}", referrer.digest);
        let layers = match read_manifest(client, repo, &referrer.digest, referrer.size).await? {
            Ok(layers) => layers,
            Err(rejection) => {
                found.push(Candidate::Unreadable { source, rejection });
                continue;
            }
        };
        if referrer.artifact_type.as_deref() == Some(NOTATION_ARTIFACT_TYPE) {
            found.push(notation_layer(client, repo, source, &layers).await?);
        } else {
            cosign_layers(client, repo, &source, &layers, &mut found).await?;
        }
    }
    found.truncate(MAX_CANDIDATES);
    Ok(found)
}

/// The referrers of `digest` whose artifact type is a signature's: from the referrers
/// API, else the tag-schema index `sha256-<hex>`.
async fn signature_referrers(
    client: &RegistryClient,
    repo: &Repo,
    digest: &Digest,
) -> Result<Vec<Descriptor>, Error> {
    let listed = match client.referrers_api(repo, digest).await? {
        Some(listed) => listed,
        None => match client.get_manifest_opt(repo, &digest.fallback_tag()).await {
            Ok(Some(index)) => match manifest::parse(&index.bytes) {
                Ok(Parsed::Index { manifests, .. }) => manifests,
                _ => Vec::new(),
            },
            Ok(None) => Vec::new(),
            Err(e) => {
                soft(e.into())?;
                Vec::new()
            }
        },
    };
    Ok(listed
        .into_iter()
        .filter(|d| is_signature_type(d.artifact_type.as_deref()))
        .take(MAX_CANDIDATES)
        .collect())
}

/// Whether an artifact type is one whose signatures this gate reads.
pub(crate) fn is_signature_type(artifact_type: Option<&str>) -> bool {
    matches!(
        artifact_type,
        Some(NOTATION_ARTIFACT_TYPE) | Some(COSIGN_ARTIFACT_TYPE)
    )
}

/// A registry answer about one signature that makes it unreadable rather than the check
/// impossible (a missing or oversized blob, a digest mismatch): the rejection. Other
/// errors (transport, auth, throttling) go up.
fn soft(e: Error) -> Result<Rejection, Error> {
    match e {
        Error::NotFound { .. }
        | Error::DigestMismatch { .. }
        | Error::ManifestTooLarge { .. }
        | Error::InvalidManifest { .. }
        | Error::ResponseTooLarge { .. } => Ok(Rejection::Malformed(e.to_string())),
        other => Err(other),
    }
}

/// The layers of a signature manifest of at most [`MAX_SIGNATURE_MANIFEST_BYTES`].
async fn read_manifest(
    client: &RegistryClient,
    repo: &Repo,
    digest: &Digest,
    size: u64,
) -> Result<Result<Vec<Descriptor>, Rejection>, Error> {
    if size > MAX_SIGNATURE_MANIFEST_BYTES {
        return Ok(Err(Rejection::Malformed(format!(
            "signature manifest of {size} bytes, more than {MAX_SIGNATURE_MANIFEST_BYTES}"
        ))));
    }
    let raw = match client.get_manifest_sized(repo, digest, size).await {
        Ok(raw) => raw,
        Err(e) => return soft(e.into()).map(Err),
    };
    Ok(layers_of(&raw.bytes))
}

/// The layers of a signature manifest's bytes.
pub(crate) fn layers_of(bytes: &[u8]) -> Result<Vec<Descriptor>, Rejection> {
    super::json::check_shape(
        bytes,
        MAX_SIGNATURE_MANIFEST_BYTES as usize,
        "signature manifest",
    )?;
    match manifest::parse(bytes) {
        Ok(Parsed::Image { layers, .. }) => Ok(layers),
        Ok(Parsed::Index { .. }) => Err(Rejection::Malformed(
            "the signature is an index, not a manifest".to_string(),
        )),
        Err(e) => Err(Rejection::Malformed(format!("signature manifest: {e}"))),
    }
}

/// One cosign candidate per layer carrying a signature annotation.
async fn cosign_layers(
    client: &RegistryClient,
    repo: &Repo,
    source: &str,
    layers: &[Descriptor],
    found: &mut Vec<Candidate>,
) -> Result<(), Error> {
    let signed = layers.iter().filter_map(|layer| {
        let signature = layer
            .annotations
            .as_ref()?
            .get(COSIGN_SIGNATURE_ANNOTATION)?;
        Some((layer, signature.clone()))
    });
    let mut any = false;
    for (layer, signature) in signed {
        any = true;
        if found.len() >= MAX_CANDIDATES {
            break;
        }
        let source = source.to_string();
        found.push(match read_blob(client, repo, layer).await? {
            Ok(payload) => Candidate::Cosign {
                source,
                payload,
                signature,
            },
            Err(rejection) => Candidate::Unreadable { source, rejection },
        });
    }
    if !any && found.len() < MAX_CANDIDATES {
        found.push(Candidate::Unreadable {
            source: source.to_string(),
            rejection: Rejection::Malformed(format!(
                "no layer carries `{COSIGN_SIGNATURE_ANNOTATION}`"
            )),
        });
    }
    Ok(())
}

/// The candidate of a Notation signature manifest: its one envelope layer.
async fn notation_layer(
    client: &RegistryClient,
    repo: &Repo,
    source: String,
    layers: &[Descriptor],
) -> Result<Candidate, Error> {
    let rejection = match layers {
        [layer] if layer.media_type == super::JWS_MEDIA_TYPE => {
            return Ok(match read_blob(client, repo, layer).await? {
                Ok(envelope) => Candidate::Notation { source, envelope },
                Err(rejection) => Candidate::Unreadable { source, rejection },
            });
        }
        [layer] if layer.media_type == COSE_MEDIA_TYPE => {
            Rejection::Unsupported("COSE signature envelopes".to_string())
        }
        _ => Rejection::Malformed(format!(
            "a Notation signature has one `{}` layer",
            super::JWS_MEDIA_TYPE
        )),
    };
    Ok(Candidate::Unreadable { source, rejection })
}

/// A signature blob of at most [`MAX_SIGNATURE_BLOB_BYTES`], its digest checked.
async fn read_blob(
    client: &RegistryClient,
    repo: &Repo,
    layer: &Descriptor,
) -> Result<Result<Bytes, Rejection>, Error> {
    if layer.size > MAX_SIGNATURE_BLOB_BYTES {
        return Ok(Err(Rejection::Malformed(format!(
            "signature blob of {} bytes, more than {MAX_SIGNATURE_BLOB_BYTES}",
            layer.size
        ))));
    }
    let mut resp = match client.get_blob(repo, &layer.digest, 0, layer.size).await {
        Ok(resp) => resp,
        Err(e) => return soft(e.into()).map(Err),
    };
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Unreachable {
        registry: repo.registry.clone(),
        message: crate::net::describe_reqwest(&e),
    })? {
        if body.len() + chunk.len() > layer.size as usize {
            return Ok(Err(Rejection::Malformed(
                "the signature blob is larger than its descriptor says".to_string(),
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if Digest::of(&body) != layer.digest {
        return Ok(Err(Rejection::Malformed(
            "the signature blob does not match its digest".to_string(),
        )));
    }
    Ok(Ok(Bytes::from(body)))
}
