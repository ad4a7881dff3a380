//! Loading a replication config and building the replicator, shared by plan, sync and
//! verify.

use std::path::Path;
use std::sync::Arc;

use ferry::aws::AwsContext;
use ferry::config::{ReplicationConfig, Severity};
use ferry::copy::{Copier, CopyOptions};
use ferry::ecr::EcrControl;
use ferry::replicate::Replicator;
use ferry::setup::{ClientSetup, bind_registries};

/// Read and validate a config file; warnings go to stderr.
pub fn load_config(path: &Path) -> Result<ReplicationConfig, ferry::Error> {
    let text = std::fs::read_to_string(path).map_err(|source| ferry::Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let loaded =
        ReplicationConfig::load(&text, None).map_err(|e| ferry::Error::Config(e.to_string()))?;
    for w in &loaded.warnings {
        if w.severity == Severity::Warning {
            eprintln!("warning: {w}");
        }
    }
    Ok(loaded.config)
}

/// The replicator for a config: registry client with the config's endpoints, roles and
/// secrets; the ECR control plane when the config names any ECR registry.
pub async fn replicator(
    config: ReplicationConfig,
    concurrency: usize,
    plain_http: bool,
) -> Result<Replicator, ferry::Error> {
    let uses_ecr = config.source_registry().is_some_and(|r| r.is_ecr())
        || config
            .destinations()
            .map_err(|e| ferry::Error::Config(e.to_string()))?
            .iter()
            .any(|d| d.registry.is_ecr());
    // ECR registries with their own access keys (another partition's) or API endpoint
    // are bound once, for the registry client and the ECR control plane alike.
    let aws = if uses_ecr {
        Some(bind_registries(&config, AwsContext::from_env().await).await?)
    } else {
        None
    };
    let client = ClientSetup {
        plain_http,
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
    Ok(Replicator::new(
        copier,
        aws.map(EcrControl::new),
        Arc::new(config),
    ))
}
