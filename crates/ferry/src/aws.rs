//! AWS SDK configuration shared by every AWS call: one base config, and per region and
//! role a derived config whose credentials the SDK caches and refreshes.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::Mutex;

/// A role to assume for a destination account (assume-role mode).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AssumeRole {
    /// Role ARN.
    pub role_arn: String,
    /// External ID the role's trust policy requires, if any.
    pub external_id: Option<String>,
}

impl std::fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The external ID is a shared secret of sorts: do not print it.
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Derived configs by region and role.
type Derived = HashMap<(String, Option<AssumeRole>), SdkConfig>;

/// The base SDK config plus a cache of per-(region, role) configs.
#[derive(Clone, Debug)]
pub struct AwsContext {
    base: SdkConfig,
    derived: Arc<Mutex<Derived>>,
}

impl AwsContext {
    /// Load the base config from the environment (credentials chain, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`).
    pub async fn from_env() -> AwsContext {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        AwsContext::new(base)
    }

    /// Wrap an existing config.
    pub fn new(base: SdkConfig) -> AwsContext {
        AwsContext {
            base,
            derived: Arc::default(),
        }
    }

    /// The base config.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// A config for `region`, with credentials from `role` when given (STS AssumeRole with
    /// its external ID; the SDK caches the session and refreshes it before expiry).
    pub async fn config_for(&self, region: &str, role: Option<&AssumeRole>) -> SdkConfig {
        let key = (region.to_string(), role.cloned());
        let mut derived = self.derived.lock().await;
        if let Some(c) = derived.get(&key) {
            return c.clone();
        }
        let mut builder = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()));
        if let Some(role) = role {
            let mut p = aws_config::sts::AssumeRoleProvider::builder(role.role_arn.clone())
                .session_name("ferry")
                .configure(&self.base);
            if let Some(id) = &role.external_id {
                p = p.external_id(id.clone());
            }
            let provider = p.build().await;
            builder = builder.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let config = builder.build();
        derived.insert(key, config.clone());
        config
    }

    /// An ECR client for a region and optional role.
    pub async fn ecr(&self, region: &str, role: Option<&AssumeRole>) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.config_for(region, role).await)
    }
}

/// Turn an SDK error into the engine's error, keeping the service's error code and
/// whether the SDK thinks it transient or throttling.
pub fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    err: aws_sdk_ecr::error::SdkError<E, R>,
) -> crate::error::Error
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ecr::error::SdkError;
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            matches!(
                code,
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "ServiceUnavailable"
                    | "ServerException"
                    | "InternalFailure"
                    | "RequestTimeout"
            )
        }
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("ServiceError"),
            se.err().message().unwrap_or_default()
        ),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    };
    crate::error::Error::Aws {
        service,
        operation,
        message,
        retryable,
    }
}
