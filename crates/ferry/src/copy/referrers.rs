//! Referrers (signatures, SBOMs, attestations): the OCI 1.1 referrers API, its tag-schema
//! fallback (`sha256-<hex>`), and cosign's `.sig` / `.att` / `.sbom` tags.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::{Copier, Job, budget};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Descriptor, Parsed};
use crate::registry::RawManifest;
use crate::report::{RejectedReferrer, Tally};

/// Tag suffixes cosign uses next to `sha256-<hex>`.
const COSIGN_SUFFIXES: &[&str] = &["sig", "att", "sbom"];

/// The image whose referrers are copied. It goes to the destination by digest before its
/// first referrer does (a registry may refuse a referrer whose subject it does not hold),
/// and only then: an image without referrers is PUT once, by its tag.
pub(crate) struct Subject<'a> {
    raw: &'a RawManifest,
    pushed: OnceCell<()>,
}

impl<'a> Subject<'a> {
    /// A subject not yet at the destination.
    pub(crate) fn new(raw: &'a RawManifest) -> Self {
        Subject {
            raw,
            pushed: OnceCell::new(),
        }
    }

    /// A subject the destination already holds.
    pub(crate) fn present(raw: &'a RawManifest) -> Self {
        Subject {
            raw,
            pushed: OnceCell::new_with(Some(())),
        }
    }

    /// Whether the subject went out by digest already.
    pub(crate) fn is_pushed(&self) -> bool {
        self.pushed.initialized()
    }

    /// PUT the subject by digest, once.
    pub(crate) async fn ensure(&self, job: &Job) -> Result<(), Error> {
        self.pushed
            .get_or_try_init(|| {
                job.client
                    .put_manifest(&job.dst, self.raw.digest.as_str(), self.raw)
            })
            .await
            .map(|_| ())
            .map_err(Error::from)
    }
}

/// What the source holds of one subject's referrers, read before any is copied.
pub(crate) struct Discovered {
    /// The referrers API's (or ECR's `ListImageReferrers`) listing, when one answered.
    listed: Option<Vec<Descriptor>>,
    /// Else the tag-schema fallback index, when the source holds one.
    fallback: Option<budget::Held>,
    /// Cosign's tags the source holds, with their manifests.
    cosign: Vec<(String, budget::Held)>,
}

impl Copier {
    /// The source repository's tags, to look referrer tags up in instead of asking for
    /// each: the plan's listing when it read them, else (a copy without shared reads, such
    /// as `ferry copy`) one `tags/list`. `None` when they are not known (the listing was
    /// refused: a pull-only credential may not list): then every candidate is asked for.
    async fn source_tags(&self, job: &Job) -> Option<Arc<BTreeSet<String>>> {
        match &self.options().shared_reads {
            Some(shared) => shared.tags_of(&job.src),
            None => match job.client.list_tags(&job.src).await {
                Ok(tags) => Some(Arc::new(tags.into_iter().collect())),
                Err(e) => {
                    tracing::debug!(error = %e, "tags not listed: referrer tags are asked for one by one");
                    None
                }
            },
        }
    }

    /// Copy every referrer of `subject` found at the source, before the subject's tag.
    pub(crate) async fn copy_referrers(
        &self,
        job: &Job,
        subject: &Subject<'_>,
    ) -> Result<(), Error> {
        let found = self.discover_referrers(job, &subject.raw.digest).await?;
        self.copy_discovered(job, subject, found).await
    }

    /// Read what the source holds of `subject`'s referrers, without writing anything: a
    /// copy runs this while the subject's own content is copied. The listing (referrers
    /// API, else ECR's) and the tag list are asked at once; then the fallback index (only
    /// when nothing listed them) and cosign's tags at once. Referrer tags exist only in
    /// the tag list: with it known, no other is asked for.
    pub(crate) async fn discover_referrers(
        &self,
        job: &Job,
        subject: &Digest,
    ) -> Result<Discovered, Error> {
        let fallback_tag = subject.fallback_tag();
        let listing = async {
            match self
                .source_referrers(&job.client, &job.src, subject)
                .await?
            {
                Some(listed) => Ok(Some(listed)),
                None => self.ecr_referrers(job, subject).await,
            }
        };
        let (listed, tags) = futures::join!(listing, self.source_tags(job));
        let listed = listed?;
        let listed_tag = |t: &str| tags.as_ref().is_none_or(|tags| tags.contains(t));
        let fallback = async {
            if listed.is_some() || !listed_tag(&fallback_tag) {
                return Ok(None);
            }
            // Held at depth 1 while its referrers are copied at depth 2.
            self.fetch_unsized(job, &job.src, &fallback_tag, 1).await
        };
        let cosign = futures::future::try_join_all(
            COSIGN_SUFFIXES
                .iter()
                .filter(|s| !(**s == "sig" && self.options().skip_signatures))
                .map(|s| format!("{fallback_tag}.{s}"))
                .filter(|t| listed_tag(t))
                .map(|tag| async move {
                    let m = self.fetch_unsized(job, &job.src, &tag, 1).await?;
                    Ok::<_, Error>(m.map(|m| (tag, m)))
                }),
        );
        let (fallback, cosign) = futures::try_join!(fallback, cosign)?;
        Ok(Discovered {
            listed,
            fallback,
            cosign: cosign.into_iter().flatten().collect(),
        })
    }

    /// Copy what [`Copier::discover_referrers`] found, before the subject's tag.
    pub(crate) async fn copy_discovered(
        &self,
        job: &Job,
        subject: &Subject<'_>,
        found: Discovered,
    ) -> Result<(), Error> {
        let fallback_tag = subject.raw.digest.fallback_tag();
        let subject_digest = &subject.raw.digest;
        match (found.listed, found.fallback) {
            (Some(listed), _) => {
                let mut found = Vec::with_capacity(listed.len());
                for d in listed {
                    if self.skipped_signature(&d) {
                        continue;
                    }
                    if self.copy_referrer(job, subject, &d, 1).await? {
                        found.push(d);
                    }
                }
                if !found.is_empty()
                    && job
                        .client
                        .referrers_api(&job.dst, subject_digest)
                        .await?
                        .is_none()
                {
                    // The destination has no referrers API: keep its tag-schema index
                    // up to date, as the OCI spec asks of clients.
                    self.merge_fallback_index(job, &fallback_tag, &found)
                        .await?;
                }
            }
            (None, Some(index)) => {
                let listed = match manifest::parse(&index.raw.bytes) {
                    Ok(Parsed::Index { manifests, .. }) => manifests,
                    _ => Vec::new(),
                };
                let mut found = Vec::with_capacity(listed.len());
                let mut skipped = 0;
                for d in &listed {
                    if self.skipped_signature(d) {
                        skipped += 1;
                        continue;
                    }
                    if self.copy_referrer(job, subject, d, 2).await? {
                        found.push(d.clone());
                    }
                }
                if found.len() == listed.len() && skipped == 0 {
                    // Every entry refers to this image: the source's index, as it is.
                    self.put_tag_if_needed(job, &fallback_tag, &index.raw)
                        .await?;
                } else if !found.is_empty() {
                    // Never list at the destination what was refused.
                    self.merge_fallback_index(job, &fallback_tag, &found)
                        .await?;
                }
            }
            (None, None) => {}
        }
        for (tag, m) in &found.cosign {
            Tally::add(&job.tally.referrers, 1);
            subject.ensure(job).await?;
            self.copy_manifest(job, m, 1, true).await?;
            self.put_tag_if_needed(job, tag, &m.raw).await?;
        }
        Ok(())
    }

    /// Whether `d` is a signature left behind because the destination signs itself.
    fn skipped_signature(&self, d: &Descriptor) -> bool {
        let skip = self.options().skip_signatures
            && d.artifact_type.as_deref() == Some(crate::ecr::NOTATION_SIGNATURE);
        if skip {
            tracing::info!(referrer = %d.digest, "signature not copied: the destination signs images itself");
        }
        skip
    }

    /// An ECR source's referrers of `digest` through `ListImageReferrers`, when the
    /// options carry the ECR control plane and the source is an ECR registry reached at
    /// its own host (a local endpoint override has no ECR API behind it).
    async fn ecr_referrers(
        &self,
        job: &Job,
        digest: &crate::digest::Digest,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let Some(ecr) = &self.options().ecr else {
            return Ok(None);
        };
        let crate::config::Registry::Ecr {
            registry_id,
            region,
        } = crate::config::Registry::from_host(&job.src.registry)
        else {
            return Ok(None);
        };
        if job.client.endpoints().is_overridden(&job.src.registry) {
            return Ok(None);
        }
        let registry = crate::reference::EcrRegistry::new(&registry_id, &region);
        ecr.list_image_referrers(&registry, None, &job.src.repository, digest)
            .await
    }

    /// Copy one listed referrer of `subject`, fetched at `depth` of the manifest budget;
    /// `false` when it was refused because its own `subject` is not `subject` (a
    /// registry's referrers listing is untrusted: it must not make Ferry copy another
    /// image's, or any, manifest under this one's name).
    async fn copy_referrer(
        &self,
        job: &Job,
        subject_image: &Subject<'_>,
        d: &Descriptor,
        depth: usize,
    ) -> Result<bool, Error> {
        let subject = &subject_image.raw.digest;
        if job
            .client
            .head_manifest(&job.dst, d.digest.as_str())
            .await?
            .is_some()
        {
            Tally::add(&job.tally.referrers, 1);
            Tally::add(&job.tally.manifests_skipped, 1);
            return Ok(true);
        }
        let m = self.fetch_child(job, d, depth).await?;
        let names = manifest::parse(&m.raw.bytes)
            .ok()
            .and_then(|p| p.subject().map(|s| s.digest.clone()));
        if names.as_ref() != Some(subject) {
            tracing::warn!(
                repository = %job.src.repository,
                referrer = %d.digest,
                subject = %subject,
                names = ?names.as_ref().map(|n| n.to_string()),
                "referrer refused: its subject is not the image being copied"
            );
            return Ok(false);
        }
        Tally::add(&job.tally.referrers, 1);
        subject_image.ensure(job).await?;
        match self.copy_manifest(job, &m, depth, false).await {
            Ok(_) => Ok(true),
            Err(Error::Registry {
                method,
                url,
                status: status @ (400 | 405 | 415),
                message,
                ..
            }) if method == "PUT" && url.contains("/manifests/") => {
                // The destination does not store this referrer (ECR: a referrer of an
                // index). The image is still copied; the refusal is reported.
                tracing::warn!(
                    repository = %job.dst.repository,
                    referrer = %d.digest,
                    status,
                    %message,
                    "referrer rejected by the destination"
                );
                job.tally
                    .referrers_rejected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(RejectedReferrer {
                        digest: d.digest.clone(),
                        code: "REFERRER_REJECTED".into(),
                        status,
                        message,
                    });
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn put_tag_if_needed(&self, job: &Job, tag: &str, m: &RawManifest) -> Result<(), Error> {
        let at_dst = job.client.head_manifest(&job.dst, tag).await?;
        if at_dst.map(|h| h.digest) != Some(m.digest.clone()) {
            job.client.put_manifest(&job.dst, tag, m).await?;
        }
        Ok(())
    }

    /// Write (or extend) the destination's `sha256-<hex>` referrers index. This is a new
    /// document the destination needs, not a copy, so it is built here.
    async fn merge_fallback_index(
        &self,
        job: &Job,
        tag: &str,
        found: &[Descriptor],
    ) -> Result<(), Error> {
        let mut all: Vec<Descriptor> = match self.fetch_unsized(job, &job.dst, tag, 1).await? {
            Some(existing) => match manifest::parse(&existing.raw.bytes) {
                Ok(Parsed::Index { manifests, .. }) => manifests,
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        let before = all.len();
        for d in found {
            if !all.iter().any(|e| e.digest == d.digest) {
                all.push(d.clone());
            }
        }
        if all.len() == before && before > 0 {
            return Ok(());
        }
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": all,
        });
        let bytes =
            Bytes::from(serde_json::to_vec(&doc).map_err(|e| Error::Unsupported(e.to_string()))?);
        let m = RawManifest {
            digest: crate::digest::Digest::of(&bytes),
            bytes,
            media_type: manifest::OCI_INDEX.to_string(),
        };
        Ok(job.client.put_manifest(&job.dst, tag, &m).await?)
    }
}
