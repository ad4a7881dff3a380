//! Building the engine's clients from the environment, once per process.

use std::sync::Arc;

use crate::auth::{Authenticator, AwsEcrTokens, DockerConfig, EcrTokenSource};
use crate::aws::AwsContext;
use crate::error::Error;
use crate::registry::{ClientOptions, Endpoints, RegistryClient};

/// Where credentials and endpoints come from.
#[derive(Clone, Debug, Default)]
pub struct ClientSetup {
    /// Use plain HTTP for registries without an endpoint override.
    pub plain_http: bool,
    /// Extra endpoint overrides (besides `FERRY_REGISTRY_ENDPOINTS`).
    pub endpoints: Vec<(String, String)>,
    /// Client tuning.
    pub options: ClientOptions,
}

impl ClientSetup {
    /// Build the registry client: Docker config credentials (`DOCKER_CONFIG`), ECR tokens
    /// through the AWS SDK for ECR hosts, endpoint overrides from the environment.
    pub fn build(&self, aws: Option<AwsContext>) -> Result<RegistryClient, Error> {
        let docker = DockerConfig::load_default()?;
        let ecr: Option<Arc<dyn EcrTokenSource>> =
            aws.map(|a| Arc::new(AwsEcrTokens::new(a)) as Arc<dyn EcrTokenSource>);
        let auth = Authenticator::new(docker, ecr);
        let mut endpoints = Endpoints::from_env()?.with_plain_http(self.plain_http);
        for (host, url) in &self.endpoints {
            endpoints.insert(host, url)?;
        }
        RegistryClient::new(auth, endpoints, self.options.clone())
    }
}
