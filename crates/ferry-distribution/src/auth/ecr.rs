//! ECR registry credentials: `GetAuthorizationToken`, cached per registry until shortly
//! before expiry.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;

use super::Secret;
use crate::aws::{AssumeRole, AwsContext, sdk_error};
use crate::error::Error;
use crate::reference::EcrRegistry;

/// A registry password and when it stops working.
#[derive(Clone, Debug)]
pub struct EcrToken {
    /// Always `AWS` for ECR.
    pub username: String,
    /// The token.
    pub password: Secret,
    /// Expiry (12 h after issue for real ECR).
    pub expires_at: SystemTime,
}

/// Something that can mint ECR registry tokens. The AWS implementation is
/// [`AwsEcrTokens`]; tests can supply their own.
#[async_trait]
pub trait EcrTokenSource: Send + Sync {
    /// A token for the registry, minted with `role` when given (fresh: the caller
    /// caches, per registry and role).
    async fn token(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Result<EcrToken, Error>;
}

/// Tokens from `ecr:GetAuthorizationToken`, called in the registry's region, with the
/// ambient credentials or those of the role the destination names.
#[derive(Clone, Debug)]
pub struct AwsEcrTokens {
    aws: AwsContext,
}

impl AwsEcrTokens {
    /// Tokens with the ambient credentials, or an assumed role's.
    pub fn new(aws: AwsContext) -> AwsEcrTokens {
        AwsEcrTokens { aws }
    }
}

#[async_trait]
impl EcrTokenSource for AwsEcrTokens {
    async fn token(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Result<EcrToken, Error> {
        let client = self.aws.ecr(registry, role).await;
        // registryIds is deprecated in the API model but still selects the registry whose
        // token we get; a caller's own token works against any registry whose policy
        // allows it, so it is only a hint.
        #[allow(deprecated)]
        let out = client
            .get_authorization_token()
            .registry_ids(registry.account.clone())
            .send()
            .await
            .map_err(|e| sdk_error("ecr", "GetAuthorizationToken", e))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| aws_err("no authorizationData in the answer"))?;
        let encoded = data
            .authorization_token()
            .ok_or_else(|| aws_err("no authorizationToken in the answer"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| aws_err("authorizationToken is not base64"))?;
        let text =
            String::from_utf8(decoded).map_err(|_| aws_err("authorizationToken is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| aws_err("authorizationToken is not user:password"))?;
        let expires_at = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(12 * 3600));
        Ok(EcrToken {
            username: user.to_string(),
            password: Secret::new(pass),
            expires_at,
        })
    }
}

fn aws_err(msg: &str) -> Error {
    Error::Aws {
        service: "ecr",
        operation: "GetAuthorizationToken",
        message: msg.to_string(),
        retryable: false,
    }
}
