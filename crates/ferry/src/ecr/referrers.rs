//! `ListImageReferrers`: an ECR source's referrers through the ECR API, for when the
//! registry endpoint has no referrers answer (used before the tag-schema fallback).
//!
//! The answer is untrusted: each digest must parse, media and artifact types must be short
//! printable media types, sizes must fit a manifest, and the walk stops after
//! [`MAX_REFERRER_PAGES`] pages or [`crate::manifest::MAX_REFERENCES`] referrers, or at a
//! repeated page token. Every listed referrer is still fetched and its `subject` checked
//! before it is copied (see `copy::referrers`).

use std::collections::HashSet;

use aws_sdk_ecr::types::SubjectIdentifier;

use crate::aws::{AssumeRole, sdk_error};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, MAX_MANIFEST_BYTES, MAX_REFERENCES};
use crate::reference::EcrRegistry;

use super::EcrControl;

/// Most pages of one ListImageReferrers walk.
pub const MAX_REFERRER_PAGES: usize = 50;
/// Longest media or artifact type kept (RFC 6838 allows 127 + 1 + 127).
const MAX_MEDIA_TYPE_LEN: usize = 255;

/// Whether `t` reads as a media type (`type/subtype`, RFC 6838 characters).
fn media_type_ok(t: &str) -> bool {
    t.len() <= MAX_MEDIA_TYPE_LEN
        && t.split_once('/').is_some_and(|(a, b)| {
            let part = |p: &str| {
                !p.is_empty()
                    && p.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
            };
            part(a) && part(b)
        })
}

impl EcrControl {
    /// The referrers of `subject` in `repository`, as the ECR API lists them; `None` when
    /// the API gives no answer Ferry can use (the caller falls back to the tag schema):
    /// any non-transient error, such as an endpoint or IAM policy without
    /// `ecr:ListImageReferrers`. Transient errors are errors (the SDK retried already).
    pub async fn list_image_referrers(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let client = self.aws().ecr(registry, role).await;
        let mut out: Vec<Descriptor> = Vec::new();
        let mut seen_tokens: HashSet<String> = HashSet::new();
        let mut token: Option<String> = None;
        for page in 0.. {
            if page == MAX_REFERRER_PAGES {
                return Err(too_many(format!(
                    "more than {MAX_REFERRER_PAGES} pages of referrers"
                )));
            }
            let answer = client
                .list_image_referrers()
                .registry_id(&registry.account)
                .repository_name(repository)
                .subject_id(
                    SubjectIdentifier::builder()
                        .image_digest(subject.as_str())
                        .build()
                        .map_err(|e| Error::Unsupported(format!("subject identifier: {e}")))?,
                )
                .set_next_token(token.clone())
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    let err = sdk_error("ecr", "ListImageReferrers", e);
                    if err.is_retryable() {
                        return Err(err);
                    }
                    tracing::debug!(registry = %registry.host(), repository, error = %err, "no ListImageReferrers answer: falling back to the tag schema");
                    return Ok(None);
                }
            };
            for r in answer.referrers() {
                if out.len() == MAX_REFERENCES {
                    return Err(too_many(format!("more than {MAX_REFERENCES} referrers")));
                }
                match descriptor(r) {
                    Ok(d) => {
                        if !out.iter().any(|e| e.digest == d.digest) {
                            out.push(d);
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(registry = %registry.host(), repository, subject = %subject, referrer = %r.digest().escape_debug(), "listed referrer refused: {reason}");
                    }
                }
            }
            match answer.next_token().filter(|t| !t.is_empty()) {
                None => break,
                Some(t) if !seen_tokens.insert(t.to_string()) => {
                    return Err(too_many("a page token repeats".into()));
                }
                Some(t) => token = Some(t.to_string()),
            }
        }
        Ok(Some(out))
    }
}

fn too_many(reason: String) -> Error {
    Error::Aws {
        service: "ecr",
        operation: "ListImageReferrers",
        message: format!("listing not used: {reason}"),
        retryable: false,
    }
}

/// One listed referrer as a descriptor, or why it is refused.
fn descriptor(r: &aws_sdk_ecr::types::ImageReferrer) -> Result<Descriptor, String> {
    let digest: Digest = r.digest().parse().map_err(|e| format!("digest: {e}"))?;
    if !media_type_ok(r.media_type()) {
        return Err("media type is not a media type".into());
    }
    let artifact_type = match r.artifact_type() {
        Some(t) if !media_type_ok(t) => return Err("artifact type is not a media type".into()),
        other => other.map(str::to_string),
    };
    let size = u64::try_from(r.size())
        .ok()
        .filter(|s| *s <= MAX_MANIFEST_BYTES)
        .ok_or_else(|| format!("size {} is not a manifest's", r.size()))?;
    Ok(Descriptor {
        media_type: r.media_type().to_string(),
        digest,
        size,
        urls: Vec::new(),
        artifact_type,
        platform: None,
        annotations: None,
    })
}
