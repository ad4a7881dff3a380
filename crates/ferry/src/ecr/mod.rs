//! The ECR control plane: repository settings, create-if-missing, image listing and
//! deletes through the AWS API (the registry endpoint does not support manifest DELETE).

pub mod pull_through;
mod referrers;
pub mod scan;
pub mod signing;

pub use referrers::MAX_REFERRER_PAGES;
pub use signing::{NOTATION_SIGNATURE, SigningConfig, SigningRule};
mod archive;

pub use crate::registry::is_archived_answer;
pub use archive::{ArchiveState, ImageStatus};

use aws_sdk_ecr::types::{
    DescribeImagesFilter, EncryptionConfiguration, EncryptionType, ImageIdentifier,
    ImageScanningConfiguration, ImageStatusFilter, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType,
};

use crate::aws::{AssumeRole, AwsContext, sdk_error};
use crate::digest::Digest;
use crate::error::Error;
use crate::reference::EcrRegistry;

mod native;
mod settings;

/// Settings copied from a source repository to a repository Ferry creates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositorySettings {
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`.
    pub tag_mutability: Option<String>,
    /// Wildcard exclusion filters for the `*_WITH_EXCLUSION` modes.
    pub mutability_exclusions: Vec<String>,
    /// Scan on push.
    pub scan_on_push: bool,
    /// `AES256` or `KMS` (and variants).
    pub encryption_type: Option<String>,
    /// KMS key for the destination (from config: never the source's key).
    pub kms_key: Option<String>,
}

impl RepositorySettings {
    /// Whether tags are immutable, and the exclusion patterns of the `*_WITH_EXCLUSION`
    /// modes (the `immutable` of the sync's `RepoState` for a
    /// repository with these settings).
    pub fn immutability(&self) -> (bool, Vec<String>) {
        let mode = self.tag_mutability.as_deref().unwrap_or_default();
        (
            mode.starts_with("IMMUTABLE"),
            self.mutability_exclusions.clone(),
        )
    }

    /// Whether `tag` cannot be overwritten in a repository with these settings.
    pub fn tag_immutable(&self, tag: &str) -> bool {
        let (immutable, exclusions) = self.immutability();
        crate::config::tag_immutable(immutable, &exclusions, tag)
    }
}

/// Whether a repository had to be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// It was there.
    Existed,
    /// Ferry created it.
    Created,
    /// Left to the destination's repository creation template (created on push).
    Deferred,
}

/// One image as DescribeImages lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    /// Manifest digest.
    pub digest: Digest,
    /// Tags (empty for untagged).
    pub tags: Vec<String>,
    /// Size in bytes as ECR reports it.
    pub size: Option<u64>,
    /// Manifest media type.
    pub media_type: Option<String>,
    /// `None` for an active image; else archived (or being restored) and since when.
    pub archived: Option<ArchiveState>,
}

/// ECR API calls for registries in any region and account.
#[derive(Clone, Debug)]
pub struct EcrControl {
    aws: AwsContext,
}

impl EcrControl {
    /// Over an AWS context.
    pub fn new(aws: AwsContext) -> EcrControl {
        EcrControl { aws }
    }

    /// The AWS context.
    pub fn aws(&self) -> &AwsContext {
        &self.aws
    }

    /// A repository's settings, `None` when it does not exist.
    pub async fn repository_settings(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
    ) -> Result<Option<RepositorySettings>, Error> {
        let client = self.aws.ecr(registry, role).await;
        let out = client
            .describe_repositories()
            .registry_id(&registry.account)
            .repository_names(repository)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if is_code(&e, "RepositoryNotFoundException") => return Ok(None),
            Err(e) => return Err(sdk_error("ecr", "DescribeRepositories", e)),
        };
        let Some(r) = out.repositories().first() else {
            return Ok(None);
        };
        Ok(Some(RepositorySettings {
            tag_mutability: r.image_tag_mutability().map(|m| m.as_str().to_string()),
            mutability_exclusions: r
                .image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect(),
            scan_on_push: r
                .image_scanning_configuration()
                .is_some_and(|s| s.scan_on_push()),
            encryption_type: r
                .encryption_configuration()
                .map(|e| e.encryption_type().as_str().to_string()),
            kms_key: None,
        }))
    }

    /// Make sure a destination repository exists. Missing: create it with `settings`
    /// (or leave it to the registry's creation template when `defer_to_template`). A
    /// concurrent create is success.
    pub async fn ensure_repository(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        settings: &RepositorySettings,
        defer_to_template: bool,
    ) -> Result<Ensured, Error> {
        if self
            .repository_settings(registry, role, repository)
            .await?
            .is_some()
        {
            return Ok(Ensured::Existed);
        }
        if defer_to_template {
            return Ok(Ensured::Deferred);
        }
        let client = self.aws.ecr(registry, role).await;
        let mut req = client
            .create_repository()
            .registry_id(&registry.account)
            .repository_name(repository)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(settings.scan_on_push)
                    .build(),
            );
        if let Some(m) = &settings.tag_mutability {
            req = req.image_tag_mutability(ImageTagMutability::from(m.as_str()));
            for f in &settings.mutability_exclusions {
                let filter = ImageTagMutabilityExclusionFilter::builder()
                    .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                    .filter(f)
                    .build()
                    .map_err(|e| Error::Unsupported(format!("exclusion filter {f:?}: {e}")))?;
                req = req.image_tag_mutability_exclusion_filters(filter);
            }
        }
        let kms = settings.kms_key.as_deref();
        let enc = match (settings.encryption_type.as_deref(), kms) {
            (_, Some(key)) => Some(
                EncryptionConfiguration::builder()
                    .encryption_type(EncryptionType::Kms)
                    .kms_key(key)
                    .build(),
            ),
            // A KMS source without a destination key gets the destination's AWS-managed
            // KMS key: the source's key lives in another region and cannot be used.
            (Some(t), None) if t.starts_with("KMS") => Some(
                EncryptionConfiguration::builder()
                    .encryption_type(EncryptionType::from(t))
                    .build(),
            ),
            _ => None,
        };
        if let Some(enc) = enc {
            let enc =
                enc.map_err(|e| Error::Unsupported(format!("encryption configuration: {e}")))?;
            req = req.encryption_configuration(enc);
        }
        match req.send().await {
            Ok(_) => {
                tracing::info!(registry = %registry.host(), repository, "created repository");
                Ok(Ensured::Created)
            }
            Err(e) if is_code(&e, "RepositoryAlreadyExistsException") => Ok(Ensured::Existed),
            Err(e) => Err(sdk_error("ecr", "CreateRepository", e)),
        }
    }

    /// Every repository name of a registry (DescribeRepositories, paginated).
    pub async fn list_repositories(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Result<Vec<String>, Error> {
        let client = self.aws.ecr(registry, role).await;
        let mut pages = client
            .describe_repositories()
            .registry_id(&registry.account)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ecr", "DescribeRepositories", e))?;
            out.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name().map(str::to_string)),
            );
        }
        Ok(out)
    }

    /// Every image of a repository with its tags, digest and storage status
    /// (DescribeImages with `imageStatus` `ANY`, paginated: without the filter ECR lists
    /// only active images, and an archived source image would look deleted): no HEAD per
    /// tag. A missing repository has no images.
    pub async fn list_images(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
    ) -> Result<Vec<ImageEntry>, Error> {
        let client = self.aws.ecr(registry, role).await;
        let mut pages = client
            .describe_images()
            .registry_id(&registry.account)
            .repository_name(repository)
            .filter(
                DescribeImagesFilter::builder()
                    .image_status(ImageStatusFilter::Any)
                    .build(),
            )
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if is_code(&e, "RepositoryNotFoundException") => return Ok(Vec::new()),
                Err(e) => return Err(sdk_error("ecr", "DescribeImages", e)),
            };
            for d in page.image_details() {
                let Some(digest) = d.image_digest().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                out.push(ImageEntry {
                    digest,
                    tags: d.image_tags().to_vec(),
                    size: d.image_size_in_bytes().and_then(|s| u64::try_from(s).ok()),
                    media_type: d.image_manifest_media_type().map(str::to_string),
                    archived: ArchiveState::of(d),
                });
            }
        }
        Ok(out)
    }

    /// Delete a tag, or an image by digest (BatchDeleteImage). Already absent is success.
    pub async fn delete_image(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<(), Error> {
        let client = self.aws.ecr(registry, role).await;
        let id = ImageIdentifier::builder()
            .set_image_tag(tag.map(str::to_string))
            // With both, ECR deletes only while the tag still points at that digest: a
            // late delete never removes a newer push.
            .set_image_digest(digest.map(|d| d.to_string()))
            .build();
        let out = client
            .batch_delete_image()
            .registry_id(&registry.account)
            .repository_name(repository)
            .image_ids(id)
            .send()
            .await;
        match out {
            Ok(o) => {
                for f in o.failures() {
                    let code = f.failure_code().map(|c| c.as_str()).unwrap_or_default();
                    if code != "ImageNotFound" && code != "ImageTagDoesNotMatchDigest" {
                        return Err(Error::Aws {
                            service: "ecr",
                            operation: "BatchDeleteImage",
                            message: format!("{code}: {}", f.failure_reason().unwrap_or_default()),
                            retryable: false,
                        });
                    }
                }
                Ok(())
            }
            Err(e) if is_code(&e, "RepositoryNotFoundException") => Ok(()),
            Err(e) => Err(sdk_error("ecr", "BatchDeleteImage", e)),
        }
    }
}

impl EcrControl {
    /// DescribeImages of the one image `digest` in `repository`; `None` when the image or
    /// the repository does not exist.
    pub(crate) async fn describe_image(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<aws_sdk_ecr::types::ImageDetail>, Error> {
        let client = self.aws.ecr(registry, role).await;
        let out = client
            .describe_images()
            .registry_id(&registry.account)
            .repository_name(repository)
            .image_ids(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .send()
            .await;
        match out {
            Ok(o) => Ok(o.image_details().first().cloned()),
            Err(e)
                if is_code(&e, "ImageNotFoundException")
                    || is_code(&e, "RepositoryNotFoundException") =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("ecr", "DescribeImages", e)),
        }
    }
}

pub(crate) fn is_code<E, R>(e: &aws_sdk_ecr::error::SdkError<E, R>, code: &str) -> bool
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some(code)
}

#[cfg(test)]
pub(crate) mod archive_tests;
#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod signing_tests;
