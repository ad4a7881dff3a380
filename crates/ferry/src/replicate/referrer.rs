//! A referrer pushed after its subject (an ECR managed-signing signature, a late SBOM):
//! copied to a target only where its subject already is, so the subject's rules decide
//! where it goes. Where the subject is not there yet, its own copy brings the referrer
//! (it lists the source's referrers after writing the subject by digest).

use std::time::Instant;

use super::Replicator;
use crate::config::Target;
use crate::copy::CopyOptions;
use crate::error::Error;
use crate::manifest;
use crate::reference::Reference;
use crate::registry::Repo;
use crate::report::{CopyReport, CopyStatus, RequestCounts};

use super::Replicated;

impl Replicator {
    /// Bring the referrers of an image to `target` after the fact. `source` names a
    /// digest: a referrer (its `subject` is the image) or the image itself. Nothing is
    /// written when the image is not at the target (the report says `Skipped`); else the
    /// source's referrers of the image are copied as in a copy (signatures of a
    /// destination that signs itself left out unless the rule says `referrers: true`).
    pub async fn replicate_referrer(
        &self,
        source: &Reference,
        target: &Target,
        options: Option<CopyOptions>,
    ) -> Result<Replicated, Error> {
        let started = Instant::now();
        let digest = source
            .digest
            .clone()
            .ok_or_else(|| Error::InvalidReference {
                input: source.to_string(),
                reason: "a referrer job names a digest".into(),
            })?;
        let src_repo = Repo::new(&source.registry, &source.repository);
        let client = self.copier().client();
        let subject = match client.get_manifest_opt(&src_repo, digest.as_str()).await? {
            Some(m) => match manifest::parse(&m.bytes) {
                Ok(p) => p.subject().map(|s| s.digest.clone()).unwrap_or(digest),
                Err(_) => digest,
            },
            // Gone at the source already: nothing to bring.
            None => digest,
        };
        let image = source.with_digest(&subject);
        let dst = Reference {
            registry: target.destination.registry_host(),
            repository: target.repository.clone(),
            tag: None,
            digest: None,
        };
        let dst_repo = Repo::new(&dst.registry, &dst.repository);
        if !target.referrers
            || client
                .head_manifest(&dst_repo, subject.as_str())
                .await?
                .is_none()
        {
            tracing::info!(source = %image, destination = %dst, "referrer not copied: its subject is not at the destination (its own copy brings it)");
            return Ok(Replicated {
                report: CopyReport {
                    source: image.to_string(),
                    destination: dst.to_string(),
                    digest: subject,
                    filtered_digest: None,
                    platforms: Vec::new(),
                    tags: Vec::new(),
                    status: CopyStatus::Skipped,
                    manifests: Default::default(),
                    blobs: Default::default(),
                    bytes: 0,
                    referrers: 0,
                    referrers_rejected: Vec::new(),
                    requests: RequestCounts::default(),
                    duration_ms: started.elapsed().as_millis() as u64,
                },
                superseded_by: None,
                created_repository: false,
            });
        }
        // The image is in place: the copy then only looks for referrers it lacks.
        let mut opts = options.unwrap_or_else(|| self.copier().options().clone());
        opts.recheck_referrers = true;
        self.replicate(&image, target, Some(opts)).await
    }
}
