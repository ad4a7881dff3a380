//! One image to many targets: each target's result is its own, and the image's blobs are
//! read from the source once for all the destination registries that lack them
//! ([`Copier::fan_out_blobs`](crate::copy::Copier::fan_out_blobs)).

use futures::StreamExt;

use super::{Replicated, Replicator};
use crate::config::Target;
use crate::copy::{CopyOptions, FanOutParticipant, FanOutReport};
use crate::digest::Digest;
use crate::error::Error;
use crate::reference::Reference;
use crate::registry::Repo;

impl Replicator {
    /// [`Replicator::replicate`] of `source` to every target, `width` copies at a time;
    /// the results are in the order of `targets`, each the target's own.
    ///
    /// First, for every target at once: its repository is made sure of and its
    /// destination asked whether it already holds the image (the copy then takes that
    /// answer instead of asking again). Then every blob that two or more destination
    /// registries lack is read from the source once and streamed to all of them
    /// ([`FanOutReport`]). Then the copies run as they would alone, finding those blobs in
    /// place. Nothing that fails for one target fails another: a target whose
    /// preparation or upload failed is left to its own copy, which fails or succeeds on its
    /// own.
    pub async fn replicate_many(
        &self,
        source: &Reference,
        targets: &[&Target],
        options: Option<CopyOptions>,
        width: usize,
    ) -> (Vec<Result<Replicated, Error>>, FanOutReport) {
        let opts = options.unwrap_or_else(|| self.copier.options().clone());
        let mut created = vec![false; targets.len()];
        let mut fanned = FanOutReport::default();
        if targets.len() > 1
            && let Some(digest) = self.source_digest(source, &opts).await
        {
            let copier = self.copier.with_options(opts.clone());
            let prepared = futures::future::join_all(
                targets
                    .iter()
                    .map(|t| self.prepare(source, t, &digest, &opts)),
            )
            .await;
            let mut participants = Vec::new();
            for (i, p) in prepared.into_iter().enumerate() {
                if let Some((made, wanted)) = p {
                    created[i] = made;
                    participants.extend(wanted);
                }
            }
            let src = Repo::new(&source.registry, &source.repository);
            match copier.fan_out_blobs(&src, &digest, &participants).await {
                Ok(r) => fanned = r,
                Err(e) => {
                    tracing::debug!(source = %source, error = %e, "fan-out: each copy reads on its own")
                }
            }
        }
        // Boxed, so that the future stays `Send` for every lifetime a caller's trait
        // object asks for.
        type Copy<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = (usize, Result<Replicated, Error>)> + Send + 'a>,
        >;
        let copies: Vec<Copy<'_>> = targets
            .iter()
            .copied()
            .enumerate()
            .map(|(i, t)| {
                let opts = opts.clone();
                Box::pin(async move { (i, self.replicate(source, t, Some(opts)).await) })
                    as Copy<'_>
            })
            .collect();
        let mut results: Vec<(usize, Result<Replicated, Error>)> = futures::stream::iter(copies)
            .buffer_unordered(width.max(1))
            .collect()
            .await;
        results.sort_by_key(|(i, _)| *i);
        let results = results
            .into_iter()
            .map(|(i, r)| {
                r.map(|mut r| {
                    r.created_repository |= created[i];
                    r
                })
            })
            .collect();
        (results, fanned)
    }

    /// The digest the source names (its tag read through the shared reads when it names
    /// none); `None` when it cannot be read now (each copy then finds out on its own).
    async fn source_digest(&self, source: &Reference, opts: &CopyOptions) -> Option<Digest> {
        if let Some(d) = &source.digest {
            return Some(d.clone());
        }
        let tag = source.tag.as_deref()?;
        let copier = self.copier.with_options(opts.clone());
        let repo = Repo::new(&source.registry, &source.repository);
        copier
            .head_source(&repo, tag)
            .await
            .ok()
            .flatten()
            .map(|h| h.digest)
    }

    /// Before the fan-out, for one target: its repository (whether Ferry created it), and
    /// the participant it is unless it already holds the image. `None` when its repository
    /// or its destination cannot be reached now: its copy finds out on its own.
    async fn prepare(
        &self,
        source: &Reference,
        target: &Target,
        digest: &Digest,
        opts: &CopyOptions,
    ) -> Option<(bool, Option<FanOutParticipant>)> {
        let (made, ()) = futures::join!(
            self.ensure_repository(source, target),
            self.learn_blob_mounting(target)
        );
        let made = made.ok()?;
        let dst = Self::destination_ref(source, target);
        let repo = Repo::new(&dst.registry, &dst.repository);
        let reference = source.tag.clone().unwrap_or_else(|| digest.to_string());
        let at = self
            .copier
            .client()
            .head_manifest(&repo, &reference)
            .await
            .ok()?
            .map(|h| h.digest);
        let unfiltered = target.platforms.is_empty();
        if let Some(shared) = &opts.shared_reads
            && (unfiltered || source.tag.is_some())
        {
            // The copy takes this answer instead of asking the destination again.
            shared.seed_destination(&repo, &reference, at.clone());
        }
        if unfiltered && at.as_ref() == Some(digest) {
            return Some((made, None));
        }
        Some((
            made,
            Some(FanOutParticipant {
                dst: repo,
                platforms: target.platforms.clone(),
            }),
        ))
    }
}
