//! AWS SDK configuration shared by every AWS call: one base config, and per region and
//! role a derived config whose credentials the SDK caches and refreshes. An ECR registry
//! may be bound to its own access keys (another partition's: [`RegistryAccess`]) and ECR
//! API endpoint; every ECR call for it then uses them, never the base credentials.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::Mutex;

use crate::reference::EcrRegistry;
use crate::secret::Secret;

/// A static AWS access key pair (from a Secrets Manager secret): the identity Ferry uses
/// for one ECR registry in another partition.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeys {
    /// Access key ID (`AKIA…`).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key ID names an identity: show its last four characters, as the IAM console
        // does, and never the secret.
        let id = &self.access_key_id;
        let tail = id.get(id.len().saturating_sub(4)..).unwrap_or_default();
        f.debug_struct("AccessKeys")
            .field("access_key_id", &format!("…{tail}"))
            .field("secret_access_key", &self.secret_access_key)
            .finish()
    }
}

/// How Ferry reaches one ECR registry's API, when not with the base config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryAccess {
    /// The registry's own access keys: its ECR token and every ECR API call for it are
    /// signed with them (never with the base credentials, never through an assumed role).
    pub keys: Option<AccessKeys>,
    /// Base URL of the ECR API for this registry (`registries.<host>.apiEndpoint`),
    /// instead of the SDK's endpoint for the region (or `AWS_ENDPOINT_URL`).
    pub api_endpoint: Option<String>,
}

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

/// Registry bindings by (account, region).
type Bindings = HashMap<(String, String), RegistryAccess>;

/// The base SDK config plus a cache of per-(region, role) configs, and the ECR registries
/// bound to their own keys or endpoint.
#[derive(Clone, Debug)]
pub struct AwsContext {
    base: SdkConfig,
    derived: Arc<Mutex<Derived>>,
    registries: Arc<Bindings>,
    /// Tests only: the ECR client every [`AwsContext::ecr`] call returns (an
    /// `aws-smithy-mocks` client standing in for an ECR API moto lacks).
    ecr_override: Option<aws_sdk_ecr::Client>,
    /// The account of the base credentials (STS GetCallerIdentity), asked once.
    caller: Arc<tokio::sync::OnceCell<Option<String>>>,
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
            registries: Arc::default(),
            ecr_override: None,
            caller: Arc::default(),
        }
    }

    /// The same context answering every ECR call with `client`, whatever the registry
    /// or role. For tests that stand in for an ECR API moto does not have
    /// (`aws-smithy-mocks`); production code never calls it.
    #[doc(hidden)]
    pub fn with_ecr_client(mut self, client: aws_sdk_ecr::Client) -> AwsContext {
        self.ecr_override = Some(client);
        self
    }

    /// The same context with the ECR registry `account` in `region` reached through
    /// `access` (its own keys, its own API endpoint) for every ECR call.
    pub fn with_registry(
        mut self,
        account: &str,
        region: &str,
        access: RegistryAccess,
    ) -> AwsContext {
        Arc::make_mut(&mut self.registries).insert((account.to_owned(), region.to_owned()), access);
        self
    }

    /// How the registry `account` in `region` is bound, if it is.
    pub fn registry_access(&self, account: &str, region: &str) -> Option<&RegistryAccess> {
        self.registries
            .get(&(account.to_owned(), region.to_owned()))
    }

    /// The account of the base credentials (STS GetCallerIdentity in `region`, asked once
    /// per context); `None` when STS cannot say.
    pub async fn caller_account(&self, region: &str) -> Option<String> {
        self.caller
            .get_or_init(|| async {
                let config = self.config_for(region, None).await;
                let out = aws_sdk_sts::Client::new(&config)
                    .get_caller_identity()
                    .send()
                    .await;
                match out {
                    Ok(o) => o.account().map(str::to_owned),
                    Err(e) => {
                        tracing::debug!(error = %e, "GetCallerIdentity failed");
                        None
                    }
                }
            })
            .await
            .clone()
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

    /// An ECR client for `registry`: in its region, with its bound access keys when it has
    /// them (then `role` is not used: validation refuses both on one destination), else
    /// the base credentials or those of `role`; at its bound API endpoint, if any.
    pub async fn ecr(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> aws_sdk_ecr::Client {
        if let Some(client) = &self.ecr_override {
            return client.clone();
        }
        let access = self.registry_access(&registry.account, &registry.region);
        let config = match access.and_then(|a| a.keys.as_ref()) {
            Some(keys) => self.config_with_keys(&registry.region, keys),
            None => self.config_for(&registry.region, role).await,
        };
        let mut builder = aws_sdk_ecr::config::Builder::from(&config);
        if let Some(url) = access.and_then(|a| a.api_endpoint.as_deref()) {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_ecr::Client::from_conf(builder.build())
    }

    /// A config for `region` signed with `keys` only: the base config's credentials
    /// provider is replaced, so no base credential can be sent with it.
    fn config_with_keys(&self, region: &str, keys: &AccessKeys) -> SdkConfig {
        let credentials = Credentials::new(
            keys.access_key_id.clone(),
            keys.secret_access_key.expose().to_owned(),
            None,
            None,
            "ferry-credentials-secret",
        );
        self.base
            .to_builder()
            .region(Region::new(region.to_string()))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build()
    }
}

/// Turn an SDK error into the distribution client's error, keeping the service's error code and
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
    if let SdkError::ServiceError(se) = &err
        && se.err().code() == Some("ImageArchivedException")
    {
        return crate::error::Error::Archived {
            registry: service.to_string(),
            repository: String::new(),
            reference: operation.to_string(),
            message,
        };
    }
    crate::error::Error::Aws {
        service,
        operation,
        message,
        retryable,
    }
}
