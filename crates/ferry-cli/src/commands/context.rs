//! Loading a replication config and building the replicator, shared by plan, sync and
//! verify.

use std::path::Path;
use std::sync::Arc;

use ferry::aws::AwsContext;
use ferry::config::{ReplicationConfig, Resolution, ResolvedOrganization, Severity, Skipped};
use ferry::copy::{Copier, CopyOptions};
use ferry::ecr::EcrControl;
use ferry::organizations::{self, AwsOrganizations};
use ferry::replicate::Replicator;
use ferry::setup::{ClientSetup, bind_registries};

/// Read and validate a config file; warnings go to stderr. A source named only by its
/// account (the `registryId` of `describe-registry` output) is taken in `region`, else
/// AWS_REGION, else AWS_DEFAULT_REGION, and stderr says so.
pub(super) fn load_config(
    path: &Path,
    region: Option<&str>,
) -> Result<ReplicationConfig, ferry::Error> {
    let text = std::fs::read_to_string(path).map_err(|source| ferry::Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let invalid = |e: ferry::config::ConfigError| ferry::Error::Config(e.to_string());
    let mut loaded = ReplicationConfig::load(&text, None).map_err(invalid)?;
    let account_only = loaded
        .config
        .source
        .as_ref()
        .is_some_and(|s| s.registry.is_none() && s.registry_id.is_some() && s.region.is_none());
    if account_only {
        let (region, from) = match region {
            Some(r) => (Some(r.to_owned()), "--region"),
            None => match std::env::var("AWS_REGION") {
                Ok(r) if !r.is_empty() => (Some(r), "AWS_REGION"),
                _ => (
                    std::env::var("AWS_DEFAULT_REGION").ok(),
                    "AWS_DEFAULT_REGION",
                ),
            },
        };
        if let Some(region) = region.filter(|r| !r.is_empty()) {
            let here = ferry::config::SourceSpec {
                region: Some(region.clone()),
                ..Default::default()
            };
            loaded = ReplicationConfig::load(&text, Some(&here)).map_err(invalid)?;
            let account = loaded
                .config
                .source
                .as_ref()
                .and_then(|s| s.registry_id.clone());
            tell!(
                "source: account {} (from the document) in {region} (from {from})",
                account.unwrap_or_default()
            );
        }
    }
    for w in &loaded.warnings {
        if w.severity == Severity::Warning {
            tell!("warning: {w}");
        }
    }
    Ok(loaded.config)
}

/// What a command does at the destinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// Only reads (`plan`, `verify`, `status`, `validate --against-registry`): through each
    /// destination's `readRoleArn` where it names one, else its `roleArn`.
    Read,
    /// Writes (`sync`): through each destination's `roleArn`.
    Write,
}

/// The replicator for a config: registry client with the config's endpoints, roles and
/// secrets; the ECR control plane when the config names any ECR registry. Organization
/// destinations are resolved first (summary on stderr).
pub(super) async fn replicator(
    config: ReplicationConfig,
    concurrency: usize,
    plain_http: bool,
    access: Access,
) -> Result<Replicator, ferry::Error> {
    let (replicator, organizations) =
        resolved_replicator(config, concurrency, plain_http, access).await?;
    for o in &organizations {
        tell!("{}", organization_summary(o));
    }
    Ok(replicator)
}

/// Reads the accounts of the config's organization destinations from AWS Organizations
/// (afresh: the CLI keeps no cache) and resolves them.
pub(super) async fn resolve_organizations(
    config: &ReplicationConfig,
    aws: &AwsContext,
) -> Result<Resolution, ferry::Error> {
    organizations::resolve(config, &AwsOrganizations::new(aws.clone())).await
}

/// One line per organization destination: what it names and what it resolved to.
pub(super) fn organization_summary(o: &ResolvedOrganization) -> String {
    let skipped = |why: Skipped| o.skipped.iter().filter(|(_, w)| *w == why).count();
    format!(
        "organization: {} ({}): {} accounts × {} regions ({}) = {} destinations; skipped: {} not active, {} excluded, {} source",
        o.path,
        o.scope,
        o.accounts.len(),
        o.regions.len(),
        o.regions.join(", "),
        o.destination_count(),
        skipped(Skipped::NotActive),
        skipped(Skipped::Excluded),
        skipped(Skipped::Source),
    )
}

/// Like [`replicator`], also returning what each organization destination resolved to.
pub(super) async fn resolved_replicator(
    config: ReplicationConfig,
    concurrency: usize,
    plain_http: bool,
    access: Access,
) -> Result<(Replicator, Vec<ResolvedOrganization>), ferry::Error> {
    // The AWS context is loaded once, for Organizations and ECR alike.
    let mut base = None;
    let (config, organizations) = if config.has_organization_destinations() {
        let aws = AwsContext::from_env().await;
        let resolution = resolve_organizations(&config, &aws).await?;
        base = Some(aws);
        (resolution.config, resolution.organizations)
    } else {
        (config, Vec::new())
    };
    let uses_ecr = config.source_registry().is_some_and(|r| r.is_ecr())
        || config
            .destinations()
            .map_err(|e| ferry::Error::Config(e.to_string()))?
            .iter()
            .any(|d| d.registry.is_ecr());
    // ECR registries with their own access keys (another partition's) or API endpoint
    // are bound once, for the registry client and the ECR control plane alike.
    let aws = if uses_ecr {
        let aws = match base {
            Some(aws) => aws,
            None => AwsContext::from_env().await,
        };
        Some(bind_registries(&config, aws).await?)
    } else {
        None
    };
    let client = ClientSetup {
        plain_http,
        prefer_read_roles: access == Access::Read,
        ..Default::default()
    }
    .build_for_config(&config, aws.clone())
    .await?;
    let copier = Copier::new(
        client,
        CopyOptions {
            blob_concurrency: concurrency.max(1),
            ..Default::default()
        },
    );
    let replicator = Replicator::new(copier, aws.map(EcrControl::new), Arc::new(config));
    let replicator = match access {
        Access::Read => replicator.preferring_read_roles(),
        Access::Write => replicator,
    };
    Ok((replicator, organizations))
}
