//! The engine's one error type, and the one place that says which errors are worth a retry.
//!
//! The distribution client below the engine has its own error,
//! [`ferry_distribution::Error`]: each of its variants becomes the engine's variant of the
//! same name, with the same fields, through `From` (so `?` converts). The two agree on
//! every message, [`Error::code`] and [`Error::is_retryable`] where they overlap; the
//! test `distribution_errors_convert_unchanged` holds them to it.

use crate::digest::{Digest, InvalidDigest};
pub use ferry_distribution::error::is_retryable_status;
use ferry_distribution::error::{Retry, is_expired_token_denial};

/// Everything the engine can fail with.
///
/// Each variant carries the context a platform engineer needs to act on it: the registry,
/// the repository, the digest or tag, and the HTTP status where there is one.
/// [`Error::is_retryable`] is the single classification of retryable versus permanent.
/// Every variant but [`Error::Deadline`], [`Error::UntagUnsupported`] and
/// [`Error::NoMatchingPlatform`] (the engine's own) is also one of the distribution
/// client's ([`ferry_distribution::Error`]), converted by `From`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference (`host/repo:tag@digest`) could not be parsed or broke the
    /// distribution-spec grammar.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// What the user gave.
        input: String,
        /// Which rule it broke.
        reason: String,
    },

    /// A digest string was not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// What was given.
        input: String,
        /// Which rule it broke.
        reason: String,
    },

    /// The registry refused our credentials, or none were found for it.
    #[error(
        "authentication failed at {registry} for {repository} (HTTP {status}): {message}; check DOCKER_CONFIG/config.json credentials, or for ECR the AWS credentials and the registry/repository policy"
    )]
    Auth {
        /// Registry host.
        registry: String,
        /// Repository the request was for.
        repository: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// What the registry said.
        message: String,
    },

    /// The manifest, tag, blob or repository does not exist.
    #[error("not found at {registry}/{repository}: {what}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What was missing: a tag, a digest or the repository.
        what: String,
    },

    /// Content did not hash to the digest it was requested or announced by, or its size
    /// differed from the descriptor. Nothing was committed at the destination.
    #[error(
        "digest mismatch for {repository}@{expected} from {registry}: got {actual} ({detail}); the source serves corrupt content, nothing was written"
    )]
    DigestMismatch {
        /// Registry that served the content.
        registry: String,
        /// Repository.
        repository: String,
        /// Digest the content should have had.
        expected: Digest,
        /// What it really hashed to (or `size` when the length was wrong).
        actual: String,
        /// Sizes or other detail.
        detail: String,
    },

    /// The destination refused to move a tag (ECR immutable tags answer `TAG_INVALID`).
    /// Permanent: never retried, nothing is deleted or overwritten to get round it.
    #[error(
        "tag conflict at {registry}/{repository}:{tag}: destination holds {existing}, source is {wanted}; the tag is immutable there, so it was left as it is"
    )]
    TagConflict {
        /// Destination registry host.
        registry: String,
        /// Destination repository.
        repository: String,
        /// The tag.
        tag: String,
        /// Digest the tag points at in the destination (or `unknown`).
        existing: String,
        /// Digest we wanted it to point at.
        wanted: Digest,
    },

    /// A manifest was larger than the 4 MiB that ECR and this engine accept.
    #[error(
        "manifest {repository}@{reference} at {registry} is {size} bytes, over the {limit} byte limit"
    )]
    ManifestTooLarge {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Tag or digest.
        reference: String,
        /// Its size (or the size announced).
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// A manifest's bytes could not be understood (bad JSON, unknown media type, too many
    /// children).
    #[error("cannot use manifest {repository}@{reference} at {registry}: {reason}")]
    InvalidManifest {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Tag or digest.
        reference: String,
        /// Why.
        reason: String,
    },

    /// The registry answered with a status this engine does not expect.
    #[error("{method} {url} at {registry} answered HTTP {status}: {message}")]
    Registry {
        /// Registry host.
        registry: String,
        /// HTTP method.
        method: String,
        /// URL path (never a pre-signed query string).
        url: String,
        /// HTTP status.
        status: u16,
        /// Body excerpt or error code.
        message: String,
        /// The `Retry-After` delay the registry asked for, if any.
        retry_after: Option<std::time::Duration>,
    },

    /// The registry could not be reached, or the connection broke mid-transfer.
    #[error(
        "cannot reach {registry}: {message}; check the host name, network path and FERRY_REGISTRY_ENDPOINTS"
    )]
    Unreachable {
        /// Registry host (or other origin, such as a redirect target).
        registry: String,
        /// The transport's description.
        message: String,
    },

    /// The registry's TLS certificate is not trusted: signed by an unknown certificate
    /// authority, expired, or not valid for the host name. Permanent: the same handshake
    /// gets the same certificate, so it is not retried, and nothing was sent.
    #[error(
        "the TLS certificate of {registry} is not trusted: {reason}; if {registry} uses a private certificate authority, add that CA's PEM certificate to registries.\"{registry}\".caCertificates in the replication config (ferry copy: --ca-certificate {registry}=ca.pem); it is trusted for that host only, beside the system's roots"
    )]
    TlsUntrusted {
        /// Host whose certificate was refused (the registry, or another origin it sent
        /// Ferry to).
        registry: String,
        /// Why: unknown issuer, expired, not valid for the name.
        reason: String,
    },

    /// An AWS API call (ECR control plane, STS, SQS, ...) failed.
    #[error("AWS {service} {operation} failed: {message}")]
    Aws {
        /// Service name, such as `ecr`.
        service: &'static str,
        /// Operation, such as `GetAuthorizationToken`.
        operation: &'static str,
        /// The SDK's description, including the error code.
        message: String,
        /// Whether the SDK classified it as throttling or transient.
        retryable: bool,
    },

    /// A feature the registry or the manifest needs is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The replication configuration is invalid.
    #[error("config: {0}")]
    Config(String),

    /// Reading a local file (Docker config, OCI layout) failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The caller's deadline came before the work was done; work already done is kept.
    #[error("stopped before the deadline: {0}")]
    Deadline(String),

    /// A registry sent Ferry somewhere it does not go: a redirect or upload `Location`
    /// that downgrades https to plain http, or that leads to a loopback or link-local
    /// address (the instance metadata service, the Lambda runtime API) when the registry
    /// is not on one itself. Permanent: nothing was sent there.
    #[error("refused to follow {target} sent by {registry}: {reason}")]
    Refused {
        /// Registry host that sent the URL.
        registry: String,
        /// Scheme, host and port of the refused URL (never its path or query).
        target: String,
        /// Why it was refused.
        reason: String,
    },

    /// The image is in ECR's archive storage class (`ARCHIVED`, or `ACTIVATING` while it is
    /// restored): it cannot be pulled until restored. Permanent: never retried; the
    /// pipeline reports the job `SKIPPED` with reason `ARCHIVED`.
    #[error(
        "{repository}@{reference} at {registry} is archived ({message}); restore it with UpdateImageStorageClass (targetStorageClass STANDARD) to replicate it"
    )]
    Archived {
        /// Registry host (or `ecr` for an ECR API answer).
        registry: String,
        /// Repository.
        repository: String,
        /// Tag or digest (or the ECR API operation).
        reference: String,
        /// What the registry said.
        message: String,
    },

    /// A response body was larger than Ferry reads for that kind of document (a listing
    /// page, a referrers index, a whole listing). Permanent: the same request gets the
    /// same body.
    #[error(
        "{what} from {registry} is over the {limit} byte limit; Ferry does not read unbounded bodies"
    )]
    ResponseTooLarge {
        /// Registry host.
        registry: String,
        /// What was read (`GET /v2/team/api/tags/list`).
        what: String,
        /// The limit, in bytes.
        limit: u64,
    },

    /// A tag delete at a registry that deletes manifests, not tags (the OCI distribution
    /// API): other tags of the destination repository point at the same manifest, so
    /// deleting it would remove them too. Permanent: the manifest is left in place.
    #[error(
        "{repository}:{tag} at {registry} was left in place: this registry deletes manifests, not tags, and {} other tag(s) ({}) point at {digest}",
        others.len(),
        others.join(", ")
    )]
    UntagUnsupported {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// The tag the source removed.
        tag: String,
        /// The manifest it points at.
        digest: String,
        /// The destination's other tags that point at it (at most a few are named).
        others: Vec<String>,
    },

    /// A listing's `Link` pagination could not be followed: a malformed header, a link
    /// to another origin or repository, a page already read, or more pages than Ferry
    /// follows. Permanent: the listing is not used rather than used truncated.
    #[error("pagination of {url} at {registry} stopped: {reason}")]
    Pagination {
        /// Registry host.
        registry: String,
        /// The listing's path (`/v2/team/api/tags/list`).
        url: String,
        /// Why.
        reason: String,
    },

    /// A copy that selects platforms (`rules[].platforms`) found none of them in the
    /// source index: nothing was written. Permanent: the same index has the same
    /// platforms (a new push at the source is a new job).
    #[error(
        "{repository}@{digest} at {registry} lists none of the platforms {}: it has {}; nothing was copied",
        wanted.join(", "),
        if available.is_empty() { "no platform entries".to_string() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        /// Source registry host.
        registry: String,
        /// Source repository.
        repository: String,
        /// The source index.
        digest: Digest,
        /// The platforms the copy selects.
        wanted: Vec<String>,
        /// The platforms the index lists (`os/architecture[/variant]`).
        available: Vec<String>,
    },
}

impl From<InvalidDigest> for Error {
    fn from(e: InvalidDigest) -> Self {
        Error::InvalidDigest {
            input: e.input,
            reason: e.reason,
        }
    }
}

impl Error {
    /// Whether this refusal means the registry credential expired (401, or ECR's 403
    /// `DENIED` "token has expired"): refreshing it and trying again may succeed.
    pub fn is_expired_credential(&self) -> bool {
        match self {
            Error::Auth { status: 401, .. } => true,
            Error::Auth {
                status: 403,
                message,
                ..
            } => is_expired_token_denial(None, message),
            _ => false,
        }
    }

    /// Whether trying the same thing again may succeed: 408, 429, 5xx, resets, timeouts and
    /// AWS throttling are retryable; every other 4xx, digest and tag problems are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry { status, .. } => is_retryable_status(*status),
            Error::Unreachable { .. } | Error::Deadline(_) => true,
            Error::Aws { retryable, .. } => *retryable,
            Error::InvalidReference { .. }
            | Error::InvalidDigest { .. }
            | Error::Auth { .. }
            | Error::NotFound { .. }
            | Error::DigestMismatch { .. }
            | Error::TagConflict { .. }
            | Error::ManifestTooLarge { .. }
            | Error::InvalidManifest { .. }
            | Error::Unsupported(_)
            | Error::Config(_)
            | Error::Io { .. }
            | Error::Refused { .. }
            | Error::TlsUntrusted { .. }
            | Error::Archived { .. }
            | Error::ResponseTooLarge { .. }
            | Error::Pagination { .. }
            | Error::UntagUnsupported { .. }
            | Error::NoMatchingPlatform { .. } => false,
        }
    }

    /// A short stable code for scripts, result events and metrics (`digest-mismatch`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidReference { .. } | Error::InvalidDigest { .. } => "invalid-reference",
            Error::Auth { .. } => "auth",
            Error::NotFound { .. } => "not-found",
            Error::DigestMismatch { .. } => "digest-mismatch",
            Error::TagConflict { .. } => "tag-conflict",
            Error::ManifestTooLarge { .. } => "manifest-too-large",
            Error::InvalidManifest { .. } | Error::Unsupported(_) => "unsupported",
            Error::Registry { status: 429, .. } => "throttled",
            Error::Registry { .. } => "registry",
            Error::Unreachable { .. } => "unreachable",
            Error::TlsUntrusted { .. } => "tls-untrusted",
            Error::Aws { .. } => "aws",
            Error::Config(_) => "config",
            Error::Io { .. } => "io",
            Error::Deadline(_) => "deadline",
            Error::Refused { .. } => "refused",
            Error::Archived { .. } => "archived",
            Error::ResponseTooLarge { .. } => "response-too-large",
            Error::Pagination { .. } => "bad-pagination",
            Error::UntagUnsupported { .. } => "untag-unsupported",
            Error::NoMatchingPlatform { .. } => "no-matching-platform",
        }
    }

    /// The delay the server asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Registry { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl Retry for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        Error::retry_after(self)
    }
}

impl From<ferry_distribution::Error> for Error {
    /// The engine's variant of the same name, with the same fields.
    fn from(e: ferry_distribution::Error) -> Self {
        use ferry_distribution::Error as D;
        match e {
            D::InvalidReference { input, reason } => Error::InvalidReference { input, reason },
            D::InvalidDigest { input, reason } => Error::InvalidDigest { input, reason },
            D::Auth {
                registry,
                repository,
                status,
                message,
            } => Error::Auth {
                registry,
                repository,
                status,
                message,
            },
            D::NotFound {
                registry,
                repository,
                what,
            } => Error::NotFound {
                registry,
                repository,
                what,
            },
            D::DigestMismatch {
                registry,
                repository,
                expected,
                actual,
                detail,
            } => Error::DigestMismatch {
                registry,
                repository,
                expected,
                actual,
                detail,
            },
            D::TagConflict {
                registry,
                repository,
                tag,
                existing,
                wanted,
            } => Error::TagConflict {
                registry,
                repository,
                tag,
                existing,
                wanted,
            },
            D::ManifestTooLarge {
                registry,
                repository,
                reference,
                size,
                limit,
            } => Error::ManifestTooLarge {
                registry,
                repository,
                reference,
                size,
                limit,
            },
            D::InvalidManifest {
                registry,
                repository,
                reference,
                reason,
            } => Error::InvalidManifest {
                registry,
                repository,
                reference,
                reason,
            },
            D::Registry {
                registry,
                method,
                url,
                status,
                message,
                retry_after,
            } => Error::Registry {
                registry,
                method,
                url,
                status,
                message,
                retry_after,
            },
            D::Unreachable { registry, message } => Error::Unreachable { registry, message },
            D::TlsUntrusted { registry, reason } => Error::TlsUntrusted { registry, reason },
            D::Aws {
                service,
                operation,
                message,
                retryable,
            } => Error::Aws {
                service,
                operation,
                message,
                retryable,
            },
            D::Unsupported(what) => Error::Unsupported(what),
            D::Config(what) => Error::Config(what),
            D::Io { path, source } => Error::Io { path, source },
            D::Refused {
                registry,
                target,
                reason,
            } => Error::Refused {
                registry,
                target,
                reason,
            },
            D::Archived {
                registry,
                repository,
                reference,
                message,
            } => Error::Archived {
                registry,
                repository,
                reference,
                message,
            },
            D::ResponseTooLarge {
                registry,
                what,
                limit,
            } => Error::ResponseTooLarge {
                registry,
                what,
                limit,
            },
            D::Pagination {
                registry,
                url,
                reason,
            } => Error::Pagination {
                registry,
                url,
                reason,
            },
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
