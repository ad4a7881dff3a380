//! ECR-shaped registries: local htpasswd registries that accept exactly the credentials
//! moto's `GetAuthorizationToken` returns, reached under an ECR host name through the
//! engine's endpoint override (`FERRY_REGISTRY_ENDPOINTS`).

use anyhow::Result;

use crate::moto;
use crate::registry::{self, Registry};

/// Name of the environment variable holding the engine's endpoint overrides.
pub const ENDPOINTS_ENV: &str = "FERRY_REGISTRY_ENDPOINTS";

/// A local registry standing in for `<account>.dkr.ecr.<region>.amazonaws.com`.
#[derive(Debug)]
pub struct EcrRegistry {
    registry: Registry,
    account: String,
    region: String,
}

impl EcrRegistry {
    /// Starts an htpasswd registry with user `AWS` and password `<account>-auth-token`.
    pub fn start(account: &str, region: &str) -> Result<Self> {
        let registry = Registry::start_with_auth("AWS", &moto::auth_token_password(account))?;
        Ok(Self {
            registry,
            account: account.to_string(),
            region: region.to_string(),
        })
    }

    /// Starts one for moto's default account in `us-east-1`.
    pub fn start_default() -> Result<Self> {
        Self::start(moto::DEFAULT_ACCOUNT, moto::DEFAULT_REGION)
    }

    /// The local registry behind the ECR name (use it for skopeo and direct API checks).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The AWS account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The AWS region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// `<account>.dkr.ecr.<region>.amazonaws.com` (`.amazonaws.com.cn` in the China
    /// regions).
    pub fn ecr_host(&self) -> String {
        let suffix = if self.region.starts_with("cn-") {
            ".cn"
        } else {
            ""
        };
        format!(
            "{}.dkr.ecr.{}.amazonaws.com{suffix}",
            self.account, self.region
        )
    }

    /// `<ecr host>=http://127.0.0.1:PORT`, one entry of `FERRY_REGISTRY_ENDPOINTS`.
    pub fn endpoint_override(&self) -> String {
        format!("{}={}", self.ecr_host(), self.registry.url())
    }

    /// `<ecr host>/REPO:TAG` (or `@sha256:…`), the name the engine is given.
    pub fn reference(&self, repo: &str, reference: &str) -> String {
        registry::image_reference(&self.ecr_host(), repo, reference)
    }
}

/// The `FERRY_REGISTRY_ENDPOINTS` variable mapping every given ECR host to its local URL.
pub fn endpoints_env(registries: &[&EcrRegistry]) -> (String, String) {
    let value = registries
        .iter()
        .map(|r| r.endpoint_override())
        .collect::<Vec<_>>()
        .join(",");
    (ENDPOINTS_ENV.to_string(), value)
}

/// The push event ECR sends (`testdata/events/ecr-image-action-push.json`) for
/// `repo:tag` in `account`'s registry; the digest and media type are the vendored event's
/// unless the caller sets them.
pub fn push_event(account: &str, region: &str, repo: &str, tag: &str) -> serde_json::Value {
    let path = crate::process::workspace_root().join("testdata/events/ecr-image-action-push.json");
    let text = std::fs::read_to_string(&path).expect("the vendored push event");
    let mut event: serde_json::Value = serde_json::from_str(&text).expect("json");
    event["account"] = serde_json::json!(account);
    event["region"] = serde_json::json!(region);
    event["detail"]["repository-name"] = serde_json::json!(repo);
    event["detail"]["image-tag"] = serde_json::json!(tag);
    event
}
