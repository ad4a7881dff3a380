//! Replicating one image to one configured target: make sure the destination repository
//! exists, copy, and never move a destination tag back to an older digest. Shared by
//! `ferry sync` and the Lambda `replicate` function, so both behave the same.

mod archive;
mod fanout;
mod referrer;

use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::aws::AssumeRole;
use crate::config::{Destination, Registry, ReplicationConfig, Target};
use crate::copy::{Copier, CopyOptions};
use crate::digest::Digest;
use crate::ecr::{EcrControl, Ensured, RepositorySettings};
use crate::error::Error;
use crate::gate::GateCheck;
use crate::reference::{EcrRegistry, Reference};
use crate::registry::Repo;
use crate::report::CopyReport;

/// What replicating one image did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replicated {
    /// The copy of the image the job named (by digest, and tagged unless superseded).
    pub report: CopyReport,
    /// When the source tag had moved on since the job was made: the copy of the digest it
    /// points at now, which took the tag.
    pub superseded_by: Option<CopyReport>,
    /// Whether Ferry created the destination repository.
    pub created_repository: bool,
}

/// Replicates images to configured targets.
#[derive(Clone, Debug)]
pub struct Replicator {
    copier: Copier,
    ecr: Option<EcrControl>,
    config: Arc<ReplicationConfig>,
    /// Destination repositories known to exist (checked once per process).
    ensured: Arc<Mutex<HashSet<(String, String)>>>,
    /// Destination registries whose blob mounting is decided (by the config, or by the
    /// account's `BLOB_MOUNTING` setting, read once per process).
    mounting_known: Arc<PerHost<()>>,
    /// Whether destinations are read (listed) through their `roleArn`. The reconcile
    /// function reads them through their `readRoleArn` or its own identity instead: the
    /// write role trusts only replicate, so the function that reads untrusted listings can
    /// never write.
    list_with_roles: bool,
    /// Read through `readRoleArn` before `roleArn` (the CLI's plan, verify and status).
    prefer_read_roles: bool,
    /// Destination registries' managed signing configurations (read once per process).
    signing: Arc<PerHost<Option<crate::ecr::SigningConfig>>>,
    /// The promotion gates' check of a long-lived process (verdicts remembered for
    /// [`GATE_MEMORY`]), built on first use.
    gates: Arc<std::sync::OnceLock<GateCheck>>,
}

/// How long a long-lived replicator remembers a gate's verdict: the jobs of one burst (an
/// image fanned out to hundreds of destinations) share one evaluation, and a held image is
/// seen released within this time.
pub const GATE_MEMORY: std::time::Duration = std::time::Duration::from_secs(30);

/// Something read once per destination registry: concurrent first readers of one host
/// wait for a single answer, and hosts never wait for each other.
#[derive(Debug)]
struct PerHost<T>(Mutex<HashMap<String, Arc<tokio::sync::OnceCell<T>>>>);

impl<T> Default for PerHost<T> {
    fn default() -> Self {
        PerHost(Mutex::default())
    }
}

impl<T> PerHost<T> {
    /// The cell of `host`.
    fn cell(&self, host: &str) -> Arc<tokio::sync::OnceCell<T>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_owned())
            .or_default()
            .clone()
    }

    /// Marked done without reading (the config decided).
    fn settle(&self, host: &str, value: T) {
        let _ = self.cell(host).set(value);
    }
}

pub use crate::aws::{read_role_of, role_of};

impl Replicator {
    /// Over a copier (whose client knows the config's endpoints and roles), an ECR control
    /// plane (absent: no repository management) and the config.
    pub fn new(
        copier: Copier,
        ecr: Option<EcrControl>,
        config: Arc<ReplicationConfig>,
    ) -> Replicator {
        let known = PerHost::default();
        for (host, registry) in &config.registries {
            if let Some(allowed) = registry.blob_mounting {
                copier.set_blob_mounting(host, allowed);
                known.settle(host, ());
            }
        }
        Replicator {
            copier,
            ecr,
            config,
            ensured: Arc::default(),
            mounting_known: Arc::new(known),
            list_with_roles: true,
            prefer_read_roles: false,
            signing: Arc::default(),
            gates: Arc::default(),
        }
    }

    /// A replicator that reads destinations through their read roles (`readRoleArn`) or
    /// with its own identity, never through their write roles (the reconcile function; its
    /// client must be built likewise, see [`crate::setup::ClientSetup::without_roles`]).
    pub fn reading_without_roles(mut self) -> Replicator {
        self.list_with_roles = false;
        self
    }

    /// A replicator that reads through the destinations' read roles where they name one,
    /// else through their write roles (`ferry plan|verify|status`: an operator may be
    /// trusted by the read role only).
    pub fn preferring_read_roles(mut self) -> Replicator {
        self.prefer_read_roles = true;
        self
    }

    /// The role to read (list) `destination` with: a reading replicator, its read role or
    /// none; one preferring read roles, its read role, else its write role; otherwise its
    /// write role, else its read role.
    pub fn listing_role(&self, destination: &Destination) -> Option<AssumeRole> {
        if !self.list_with_roles {
            read_role_of(destination)
        } else if self.prefer_read_roles {
            read_role_of(destination).or_else(|| role_of(destination))
        } else {
            role_of(destination).or_else(|| read_role_of(destination))
        }
    }

    /// The copier.
    pub fn copier(&self) -> &Copier {
        &self.copier
    }

    /// The config.
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// The ECR control plane, if any.
    pub fn ecr(&self) -> Option<&EcrControl> {
        self.ecr.as_ref()
    }

    /// The promotion gates' check shared by every job of this replicator (verdicts
    /// remembered for [`GATE_MEMORY`]).
    pub fn gate_check(&self) -> &GateCheck {
        self.gates.get_or_init(|| {
            GateCheck::new(self.copier.client().clone(), self.ecr.clone()).remembering(GATE_MEMORY)
        })
    }

    /// The destination reference for a source image and target.
    pub fn destination_ref(source: &Reference, target: &Target) -> Reference {
        Reference {
            registry: target.destination.registry_host(),
            repository: target.repository.clone(),
            tag: source.tag.clone(),
            digest: None,
        }
    }

    /// Replicate `source` (registry/repository with a tag, a digest or both) to `target`.
    ///
    /// When the job names both a tag and a digest (an event), the source tag is read again
    /// first: if it has moved on, the job's digest is copied by digest only and the tag
    /// follows the source's current digest, so a late job never moves a tag back.
    /// `options` overrides the copier's (deadline, concurrency); referrers and platforms
    /// follow the target (with `target.platforms`, an index is written anew with only those
    /// platforms: [`CopyOptions::platforms`]).
    pub async fn replicate(
        &self,
        source: &Reference,
        target: &Target,
        options: Option<CopyOptions>,
    ) -> Result<Replicated, Error> {
        let mut opts = options.unwrap_or_else(|| self.copier.options().clone());
        opts.referrers = target.referrers;
        opts.platforms = target.platforms.clone();
        if opts.ecr.is_none() {
            opts.ecr = self.ecr.clone();
        }
        // Once per process per destination (repository): its signing, its repository,
        // its mounting setting; at once.
        let signs = async {
            target.referrers
                && !target.referrers_explicit
                && self.destination_signs(target).await.is_some()
        };
        let (signs, created, ()) = futures::join!(
            signs,
            self.ensure_repository(source, target),
            self.learn_blob_mounting(target)
        );
        opts.skip_signatures = signs;
        let created = created?;
        let copier = self.copier.with_options(opts);
        let dst = Self::destination_ref(source, target);

        if let (Some(tag), Some(digest)) = (&source.tag, &source.digest) {
            // Does the source tag still point at the job's digest? Asked while the content
            // is copied; only the tag waits for the answer.
            let src_repo = Repo::new(&source.registry, &source.repository);
            let now: std::sync::Mutex<Option<Digest>> = std::sync::Mutex::default();
            let confirm = async {
                let mut at = copier.head_source(&src_repo, tag).await?.map(|h| h.digest);
                if at.as_ref() != Some(digest) {
                    // What another job of the batch read may be older than this job: ask
                    // the source itself before deciding the tag moved (and to what).
                    at = copier
                        .head_source_fresh(&src_repo, tag)
                        .await?
                        .map(|h| h.digest);
                }
                let same = at.as_ref() == Some(digest);
                *now.lock().unwrap_or_else(|p| p.into_inner()) = at;
                Ok(same)
            };
            let (report, tagged) = copier
                .copy_confirmed(source, &dst, Box::pin(confirm))
                .await?;
            if tagged {
                return Ok(Replicated {
                    report,
                    superseded_by: None,
                    created_repository: created,
                });
            }
            // The tag moved (or was deleted) after this job was made: the job's content
            // is there untagged; the tag goes to whatever the source holds now.
            let moved_to = now.lock().unwrap_or_else(|p| p.into_inner()).take();
            let superseded_by = match moved_to {
                Some(_) => Some(copier.copy(&source.with_tag(tag), &dst).await?),
                None => None,
            };
            return Ok(Replicated {
                report,
                superseded_by,
                created_repository: created,
            });
        }
        let report = copier.copy(source, &dst).await?;
        Ok(Replicated {
            report,
            superseded_by: None,
            created_repository: created,
        })
    }

    /// The AWS Signer profile with which an ECR destination signs the images pushed to
    /// `target.repository` itself (ECR managed signing), if it does. Read once per
    /// destination registry with the destination's role (a reading replicator: its own
    /// identity); a configuration that cannot be
    /// read counts as none (the source's signatures are then copied, as without it).
    pub async fn destination_signs(&self, target: &Target) -> Option<String> {
        let ecr = self.ecr.as_ref()?;
        let Registry::Ecr {
            registry_id,
            region,
        } = &target.destination.registry
        else {
            return None;
        };
        let host = target.destination.registry_host();
        let cell = self.signing.cell(&host);
        let config = cell
            .get_or_init(|| async {
                let registry = EcrRegistry::new(registry_id, region);
                // A reading replicator (reconcile) reads with its own identity, never
                // through the destination's write role.
                let role = self.listing_role(&target.destination);
                match ecr.signing_configuration(&registry, role.as_ref()).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(registry = %host, error = %e, "managed signing configuration not read: the source's signatures are copied");
                        None
                    }
                }
            })
            .await;
        config
            .as_ref()
            .and_then(|c| c.profile_for(&target.repository))
            .map(str::to_string)
    }

    /// Make sure an ECR destination repository exists, with the source repository's
    /// settings (tag mutability and exclusions, scan on push, encryption type) and the
    /// destination's own KMS key. Checked once per process per repository.
    async fn ensure_repository(&self, source: &Reference, target: &Target) -> Result<bool, Error> {
        let Some(ecr) = &self.ecr else {
            return Ok(false);
        };
        let Registry::Ecr {
            registry_id,
            region,
        } = &target.destination.registry
        else {
            return Ok(false);
        };
        let key = (
            target.destination.registry_host(),
            target.repository.clone(),
        );
        if self
            .ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(false);
        }
        let mut settings = match EcrRegistry::from_host(&source.registry) {
            Some(src) => ecr
                .repository_settings(&src, None, &source.repository)
                .await?
                .unwrap_or_default(),
            None => RepositorySettings::default(),
        };
        settings.kms_key = target.destination.kms_key.clone();
        let dst = EcrRegistry::new(registry_id, region);
        let role = role_of(&target.destination);
        let outcome = ecr
            .ensure_repository(
                &dst,
                role.as_ref(),
                &target.repository,
                &settings,
                target.destination.use_creation_template,
            )
            .await?;
        self.ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        Ok(outcome == Ensured::Created)
    }

    /// For an ECR destination registry not yet decided: read its account's
    /// `BLOB_MOUNTING` setting (once per process, under a lock so concurrent copies ask
    /// once, each registry on its own) and turn mounts off where it is not enabled. Unknown leaves mounts on.
    async fn learn_blob_mounting(&self, target: &Target) {
        let (
            Some(ecr),
            Registry::Ecr {
                registry_id,
                region,
            },
        ) = (&self.ecr, &target.destination.registry)
        else {
            return;
        };
        let host = target.destination.registry_host();
        self.mounting_known
            .cell(&host)
            .get_or_init(|| async {
                let role = role_of(&target.destination);
                let registry = EcrRegistry::new(registry_id, region);
                if let Some(enabled) = ecr.blob_mounting(&registry, role.as_ref()).await {
                    tracing::debug!(%host, enabled, "BLOB_MOUNTING");
                    self.copier.set_blob_mounting(&host, enabled);
                }
            })
            .await;
    }

    /// Propagate a delete: remove `tag` (or, without a tag, the image `digest`) at the
    /// target, and nothing else. ECR destinations untag with BatchDeleteImage. Other
    /// registries delete manifests, not tags (the OCI DELETE by digest removes every tag of
    /// that manifest): the manifest is deleted only when no other tag of the destination
    /// repository points at it, besides those in `deleting` (tags this same run deletes);
    /// otherwise [`Error::UntagUnsupported`] and it stays.
    pub async fn delete(
        &self,
        target: &Target,
        tag: Option<&str>,
        digest: Option<&Digest>,
        deleting: &[String],
    ) -> Result<(), Error> {
        let dst = Repo::new(target.destination.registry_host(), &target.repository);
        match (&target.destination.registry, &self.ecr) {
            (
                Registry::Ecr {
                    registry_id,
                    region,
                },
                Some(ecr),
            ) => {
                let reg = EcrRegistry::new(registry_id, region);
                let role = role_of(&target.destination);
                ecr.delete_image(&reg, role.as_ref(), &target.repository, tag, digest)
                    .await
            }
            _ => {
                let client = self.copier.client();
                // Only the manifest the tag points at, and only if it is the digest the
                // event named (or any, when none was named).
                let at = match tag {
                    Some(t) => client.head_manifest(&dst, t).await?.map(|h| h.digest),
                    None => digest.cloned(),
                };
                let Some(d) = at.filter(|d| digest.is_none_or(|want| want == d)) else {
                    return Ok(());
                };
                if let Some(tag) = tag {
                    let others = self.other_tags_at(&dst, tag, &d, deleting).await?;
                    if !others.is_empty() {
                        return Err(Error::UntagUnsupported {
                            registry: dst.registry.clone(),
                            repository: dst.repository.clone(),
                            tag: tag.to_string(),
                            digest: d.to_string(),
                            others,
                        });
                    }
                }
                client.delete_manifest(&dst, &d).await?;
                Ok(())
            }
        }
    }

    /// Tags of `dst` other than `tag` and `deleting` that point at `digest` (at most
    /// [`MAX_NAMED_OTHERS`] named; the search stops there).
    async fn other_tags_at(
        &self,
        dst: &Repo,
        tag: &str,
        digest: &Digest,
        deleting: &[String],
    ) -> Result<Vec<String>, Error> {
        let client = self.copier.client();
        let tags = client.list_tags(dst).await?;
        let candidates = tags
            .into_iter()
            .filter(|t| t != tag && !deleting.iter().any(|d| d == t));
        let mut heads = futures::stream::iter(candidates)
            .map(|t| async move {
                let head = client.head_manifest(dst, &t).await;
                (t, head)
            })
            .buffer_unordered(8);
        let mut others = Vec::new();
        while let Some((t, head)) = heads.next().await {
            if head?.is_some_and(|h| h.digest == *digest) {
                others.push(t);
                if others.len() >= MAX_NAMED_OTHERS {
                    break;
                }
            }
        }
        others.sort();
        Ok(others)
    }
}

/// How many other tags of a manifest a refused tag delete names.
const MAX_NAMED_OTHERS: usize = 5;

#[cfg(test)]
mod tests;
