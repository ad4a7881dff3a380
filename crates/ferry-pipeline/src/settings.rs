//! What a function reads at init: the replication config (inline `FERRY_CONFIG` or the SSM
//! parameter `FERRY_CONFIG_PARAMETER`, validated: a bad config fails the cold start with
//! the validation message) and its numeric settings.

use std::sync::Arc;

use ferry::aws::AwsContext;
use ferry::config::ReplicationConfig;
use ferry::ecr::EcrControl;
use ferry::replicate::Replicator;
use ferry::setup::{ClientSetup, bind_registries};
use ferry::{Copier, CopyOptions};

use crate::error::PipelineError;

/// Inline config JSON.
pub const ENV_CONFIG: &str = "FERRY_CONFIG";
/// Name (or ARN) of the SSM parameter holding the config.
pub const ENV_CONFIG_PARAMETER: &str = "FERRY_CONFIG_PARAMETER";
/// URL of the SQS FIFO jobs queue (dispatch, reconcile).
pub const ENV_JOBS_QUEUE_URL: &str = "FERRY_JOBS_QUEUE_URL";
/// Name or ARN of the result event bus (replicate).
pub const ENV_EVENT_BUS_NAME: &str = "FERRY_EVENT_BUS_NAME";
/// Jobs one reconcile run may enqueue.
pub const ENV_MAX_JOBS_PER_RUN: &str = "FERRY_MAX_JOBS_PER_RUN";
/// Jobs of one SQS batch run at once in replicate.
pub const ENV_JOB_CONCURRENCY: &str = "FERRY_JOB_CONCURRENCY";
/// Destinations one copy job may carry (dispatch and reconcile): replicate reads the image
/// from the source once for all of them. 1 sends one job per destination.
pub const ENV_DESTINATIONS_PER_JOB: &str = "FERRY_DESTINATIONS_PER_JOB";
/// Default [`ENV_DESTINATIONS_PER_JOB`].
pub const DEFAULT_DESTINATIONS_PER_JOB: usize = crate::job::MAX_JOB_TARGETS;

/// Where the config comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `FERRY_CONFIG`: the JSON itself.
    Inline(String),
    /// `FERRY_CONFIG_PARAMETER`: an SSM parameter name or ARN.
    Parameter(String),
}

impl ConfigSource {
    /// From the environment; `FERRY_CONFIG` wins when both are set.
    pub fn from_env() -> Result<ConfigSource, PipelineError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable lookup (tests).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ConfigSource, PipelineError> {
        let set = |k| get(k).filter(|v: &String| !v.trim().is_empty());
        match (set(ENV_CONFIG), set(ENV_CONFIG_PARAMETER)) {
            (Some(text), _) => Ok(ConfigSource::Inline(text)),
            (None, Some(name)) => Ok(ConfigSource::Parameter(name)),
            (None, None) => Err(PipelineError::Config(format!(
                "set {ENV_CONFIG_PARAMETER} (an SSM parameter holding the replication config) or {ENV_CONFIG} (the JSON)"
            ))),
        }
    }
}

/// Load and validate the config. Warnings are logged; errors carry the config's own
/// validation message, prefixed with where the config came from.
pub async fn load_config(
    source: &ConfigSource,
    ssm: Option<&aws_sdk_ssm::Client>,
) -> Result<Arc<ReplicationConfig>, PipelineError> {
    let (text, origin) = match source {
        ConfigSource::Inline(text) => (text.clone(), ENV_CONFIG.to_string()),
        ConfigSource::Parameter(name) => {
            let ssm = ssm.ok_or_else(|| {
                PipelineError::Config(format!("{ENV_CONFIG_PARAMETER} needs AWS credentials"))
            })?;
            let out = ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| {
                    PipelineError::Config(format!(
                        "reading SSM parameter {name}: {}",
                        crate::error::aws_error("ssm", "GetParameter", e)
                    ))
                })?;
            let text = out
                .parameter()
                .and_then(|p| p.value())
                .unwrap_or_default()
                .to_string();
            (text, format!("SSM parameter {name}"))
        }
    };
    parse_config(&text, &origin).map(Arc::new)
}

/// Parse and validate config text; `origin` names where it came from in the error.
pub fn parse_config(text: &str, origin: &str) -> Result<ReplicationConfig, PipelineError> {
    let loaded = ReplicationConfig::load(text, None)
        .map_err(|e| PipelineError::Config(format!("{origin}: {e}")))?;
    for w in &loaded.warnings {
        tracing::warn!(path = %w.path, "config warning: {}", w.message);
    }
    Ok(loaded.config)
}

/// The hub's identity is valid in the partition of its own region (`AWS_REGION`) only:
/// every ECR registry of the config in another partition needs its own access keys
/// (`credentialsSecretArn`), and every secret must be in the hub's partition.
pub fn check_hub_partition(
    config: &ReplicationConfig,
    region: Option<&str>,
) -> Result<(), PipelineError> {
    match region {
        Some(region) => config.check_home_region(region).map_err(|e| {
            PipelineError::Config(format!("in the hub's partition (AWS_REGION={region}): {e}"))
        }),
        None => Ok(()),
    }
}

/// A positive integer variable, or `default` when unset.
pub fn env_usize(name: &'static str, default: usize) -> Result<usize, PipelineError> {
    parse_usize(name, std::env::var(name).ok(), default)
}

fn parse_usize(
    name: &'static str,
    value: Option<String>,
    default: usize,
) -> Result<usize, PipelineError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(PipelineError::Env {
                name,
                message: format!("{v:?} is not a positive integer"),
            }),
        },
    }
}

/// A required variable.
pub fn env_required(name: &'static str) -> Result<String, PipelineError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or(PipelineError::Env {
            name,
            message: "not set".into(),
        })
}

/// The replicator for a config: the registry client with the config's endpoints, roles
/// and secrets, a copier, and the ECR control plane. Built once per process.
pub async fn build_replicator(
    config: Arc<ReplicationConfig>,
    aws: AwsContext,
) -> Result<Replicator, PipelineError> {
    replicator_with(config, aws, ClientSetup::default()).await
}

/// The reconcile function's replicator: it reads untrusted listings, so it reads the
/// destinations through their read roles (`readRoleArn`, which the destination stack
/// creates for it) or with its own identity (an opted-in registry policy lets it read), and
/// never assumes their write roles, which trust only replicate.
pub async fn build_reading_replicator(
    config: Arc<ReplicationConfig>,
    aws: AwsContext,
) -> Result<Replicator, PipelineError> {
    let setup = ClientSetup {
        without_roles: true,
        ..ClientSetup::default()
    };
    Ok(replicator_with(config, aws, setup)
        .await?
        .reading_without_roles())
}

async fn replicator_with(
    config: Arc<ReplicationConfig>,
    aws: AwsContext,
    setup: ClientSetup,
) -> Result<Replicator, PipelineError> {
    // ECR registries with their own access keys (another partition's) or API endpoint
    // are bound once, for the registry client and the ECR control plane alike.
    let aws = bind_registries(&config, aws).await?;
    let client = setup.build_for_config(&config, Some(aws.clone())).await?;
    let copier = Copier::new(client, CopyOptions::default());
    Ok(Replicator::new(copier, Some(EcrControl::new(aws)), config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_outside_the_hubs_partition_need_their_keys() {
        let config = parse_config(
            r#"{"source": {"registryId": "111122223333", "region": "cn-north-1"},
                "rules": [{"destinations": [{"registryId": "111122223333", "region": "cn-northwest-1"}]}]}"#,
            "FERRY_CONFIG",
        )
        .expect("valid for a CLI in China");
        assert!(check_hub_partition(&config, Some("cn-north-1")).is_ok());
        assert!(check_hub_partition(&config, None).is_ok());
        let error = check_hub_partition(&config, Some("us-east-1"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("AWS_REGION=us-east-1")
                && error.contains("source: `111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn` is in partition `aws-cn`")
                && error.contains("rules[0].destinations[0]"),
            "{error}"
        );
    }

    #[test]
    fn config_source_from_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            ConfigSource::from_lookup(env(&[(ENV_CONFIG_PARAMETER, "/ferry/config")])).unwrap(),
            ConfigSource::Parameter("/ferry/config".into())
        );
        assert_eq!(
            ConfigSource::from_lookup(env(&[(ENV_CONFIG_PARAMETER, "/p"), (ENV_CONFIG, "{}")]))
                .unwrap(),
            ConfigSource::Inline("{}".into())
        );
        let err = ConfigSource::from_lookup(env(&[(ENV_CONFIG, "  ")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_CONFIG_PARAMETER), "{err}");
    }

    #[tokio::test]
    async fn bad_config_fails_with_the_validation_message() {
        let err = load_config(
            &ConfigSource::Inline(
                r#"{"rules": [{"destinations": [{"region": "eu-west-1"}]}]}"#.into(),
            ),
            None,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("configuration: FERRY_CONFIG: "), "{err}");
        assert!(err.contains("registryId"), "{err}");
        let err = load_config(&ConfigSource::Parameter("/p".into()), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs AWS credentials"), "{err}");
    }

    /// The functions' clients keep the same quotas as the CLI's: ECR's defaults, and the
    /// config's `registries.<host>.rates` over them (replicate and reconcile alike).
    #[tokio::test]
    async fn the_functions_clients_keep_the_configs_request_rates() {
        use ferry::registry::ApiClass;
        let dr = "111122223333.dkr.ecr.us-west-2.amazonaws.com";
        let config = Arc::new(
            parse_config(
                &format!(
                    r#"{{"source": {{"registryId": "111122223333", "region": "us-east-1"}},
                        "registries": {{"{dr}": {{"rates": {{"putImage": 25}}}}}},
                        "rules": [{{"destinations": [{{"registryId": "111122223333", "region": "us-west-2"}}]}}]}}"#
                ),
                "FERRY_CONFIG",
            )
            .expect("config"),
        );
        let aws = AwsContext::new(
            aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        );
        let source = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
        for replicator in [
            build_replicator(config.clone(), aws.clone())
                .await
                .expect("replicator"),
            build_reading_replicator(config.clone(), aws.clone())
                .await
                .expect("reading replicator"),
        ] {
            let client = replicator.copier().client();
            assert_eq!(client.quota_rate(dr, ApiClass::PutImage), Some(25));
            assert_eq!(client.quota_rate(dr, ApiClass::BatchGetImage), Some(2_000));
            assert_eq!(client.quota_rate(source, ApiClass::PutImage), Some(10));
            assert_eq!(client.quota_rate("ghcr.io", ApiClass::PutImage), None);
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_usize(ENV_JOB_CONCURRENCY, None, 4).unwrap(), 4);
        assert_eq!(
            parse_usize(ENV_JOB_CONCURRENCY, Some("8".into()), 4).unwrap(),
            8
        );
        let err = parse_usize(ENV_JOB_CONCURRENCY, Some("0".into()), 4)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable FERRY_JOB_CONCURRENCY: \"0\" is not a positive integer"
        );
    }
}
