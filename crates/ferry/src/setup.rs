//! Building the engine's clients from the environment and the replication config, once
//! per process.

use std::sync::Arc;

use crate::auth::{
    Authenticator, AwsEcrTokens, Credential, CredentialSource, DockerConfig, EcrTokenSource,
};
use crate::aws::AwsContext;
use crate::config::{ReplicationConfig, RepositoryTemplate};
use crate::error::Error;
use crate::registry::{ClientOptions, Endpoints, RegistryClient};
use crate::replicate::role_of;

/// Where credentials and endpoints come from.
#[derive(Clone, Debug, Default)]
pub struct ClientSetup {
    /// Use plain HTTP for registries without an endpoint override.
    pub plain_http: bool,
    /// Extra endpoint overrides (besides `FERRY_REGISTRY_ENDPOINTS`).
    pub endpoints: Vec<(String, String)>,
    /// Client tuning.
    pub options: ClientOptions,
    /// Mint ECR tokens with the ambient identity only, never through a destination's
    /// `roleArn` (a read-only client: the reconcile function).
    pub without_roles: bool,
}

impl ClientSetup {
    /// Build the registry client: Docker config credentials (`DOCKER_CONFIG`), ECR tokens
    /// through the AWS SDK for ECR hosts, endpoint overrides from the environment.
    pub fn build(&self, aws: Option<AwsContext>) -> Result<RegistryClient, Error> {
        let ecr = aws.map(AwsEcrTokens::new);
        self.assemble(ecr, Vec::new(), Endpoints::from_env()?)
    }

    /// Build the client for a replication config: also its `registries` endpoint
    /// overrides, its destinations' roles (ECR tokens minted with the assumed role) and
    /// their Secrets Manager credentials.
    pub async fn build_for_config(
        &self,
        config: &ReplicationConfig,
        aws: Option<AwsContext>,
    ) -> Result<RegistryClient, Error> {
        let mut endpoints = Endpoints::from_env()?;
        for (host, e) in &config.registries {
            match &e.endpoint {
                Some(url) => endpoints.insert(host, url)?,
                None if e.plain_http => endpoints.insert(host, &format!("http://{host}"))?,
                None => {}
            }
        }
        let destinations = config
            .destinations()
            .map_err(|e| Error::Config(e.to_string()))?;
        let tokens = aws.clone().map(AwsEcrTokens::new);
        // One credential route per destination (host and the repositories its template
        // renders), so two destinations on one registry push each with its own role or
        // secret.
        let mut routes = Vec::new();
        for d in &destinations {
            if let Some(role) = role_of(d).filter(|_| !self.without_roles) {
                routes.push((
                    d.registry_host(),
                    d.template.clone(),
                    CredentialSource::Role(role),
                ));
            }
            if let Some(arn) = &d.credentials_secret_arn {
                let aws = aws.as_ref().ok_or_else(|| {
                    Error::Config(format!(
                        "{}: credentialsSecretArn needs AWS credentials",
                        d.path
                    ))
                })?;
                routes.push((
                    d.registry_host(),
                    d.template.clone(),
                    CredentialSource::Static(secret_credential(aws, arn).await?),
                ));
            }
        }
        self.assemble(tokens, routes, endpoints)
    }

    fn assemble(
        &self,
        tokens: Option<AwsEcrTokens>,
        routes: Vec<(String, Option<RepositoryTemplate>, CredentialSource)>,
        mut endpoints: Endpoints,
    ) -> Result<RegistryClient, Error> {
        let docker = DockerConfig::load_default()?;
        let ecr = tokens.map(|t| Arc::new(t) as Arc<dyn EcrTokenSource>);
        let mut auth = Authenticator::new(docker, ecr);
        for (host, template, source) in routes {
            auth = auth.with_route(&host, template.as_ref(), source);
        }
        endpoints = endpoints.with_plain_http(self.plain_http);
        for (host, url) in &self.endpoints {
            endpoints.insert(host, url)?;
        }
        RegistryClient::new(auth, endpoints, self.options.clone())
    }
}

/// Registry credentials from a Secrets Manager secret holding
/// `{"username": "…", "password": "…"}`. The secret's region is the one in its ARN.
async fn secret_credential(aws: &AwsContext, arn: &str) -> Result<Credential, Error> {
    let region = arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1");
    let client = aws_sdk_secretsmanager::Client::new(&aws.config_for(region, None).await);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| crate::aws::sdk_error("secretsmanager", "GetSecretValue", e))?;
    #[derive(serde::Deserialize)]
    struct Pair {
        username: String,
        password: String,
    }
    let text = out.secret_string().unwrap_or_default();
    let pair: Pair = serde_json::from_str(text).map_err(|_| {
        Error::Config(format!(
            "secret {arn} must hold JSON {{\"username\": …, \"password\": …}}"
        ))
    })?;
    Ok(Credential::basic(&pair.username, &pair.password))
}
