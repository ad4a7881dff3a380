//! AWS SDK configuration shared by every AWS call. The context itself ([`AwsContext`],
//! [`AssumeRole`], a registry's own [`AccessKeys`] and API endpoint) is the distribution
//! client's, which mints ECR tokens with it ([`ferry_distribution::aws`]); the engine adds
//! the roles a destination of the configuration names, and SDK errors as its own error.

pub use ferry_distribution::aws::{AccessKeys, AssumeRole, AwsContext, RegistryAccess};

/// Turn an SDK error into the engine's error, keeping the service's error code and
/// whether the SDK thinks it transient or throttling
/// ([`ferry_distribution::aws::sdk_error`], converted).
pub fn sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    err: aws_sdk_ecr::error::SdkError<E, R>,
) -> crate::error::Error
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    ferry_distribution::aws::sdk_error(service, operation, err).into()
}

/// The role a destination names, for assume-role mode.
pub fn role_of(d: &crate::config::Destination) -> Option<AssumeRole> {
    assumed(d.role_arn.as_ref(), d)
}

/// The role a destination names for reading (`readRoleArn`), if any.
pub fn read_role_of(d: &crate::config::Destination) -> Option<AssumeRole> {
    assumed(d.read_role_arn.as_ref(), d)
}

/// `arn` assumed with the destination's external ID.
fn assumed(arn: Option<&String>, d: &crate::config::Destination) -> Option<AssumeRole> {
    arn.map(|arn| AssumeRole {
        role_arn: arn.clone(),
        external_id: d.external_id.clone(),
    })
}
