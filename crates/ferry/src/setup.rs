//! Building the engine's clients from the environment and the replication config, once
//! per process.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{
    Authenticator, AwsEcrTokens, Credential, CredentialSource, DockerConfig, EcrTokenSource, Secret,
};
use crate::aws::{AccessKeys, AwsContext, RegistryAccess};
use crate::aws::{read_role_of, role_of};
use crate::config::{ApiRates, Registry, ReplicationConfig, RepositoryTemplate};
use crate::error::Error;
use crate::registry::{ApiClass, ClientOptions, Endpoints, RegistryClient};

/// Where credentials and endpoints come from.
#[derive(Clone, Debug, Default)]
pub struct ClientSetup {
    /// Use plain HTTP for registries without an endpoint override.
    pub plain_http: bool,
    /// Extra endpoint overrides (besides `FERRY_REGISTRY_ENDPOINTS`).
    pub endpoints: Vec<(String, String)>,
    /// Client tuning.
    pub options: ClientOptions,
    /// Mint ECR tokens through a destination's `readRoleArn` or with the ambient identity,
    /// never through its `roleArn` (a read-only client: the reconcile function).
    pub without_roles: bool,
    /// Mint ECR tokens through a destination's `readRoleArn` where it names one, else its
    /// `roleArn` (a client that only reads: `ferry plan|verify|status`).
    pub prefer_read_roles: bool,
}

impl ClientSetup {
    /// Build the registry client: Docker config credentials (`DOCKER_CONFIG`), ECR tokens
    /// through the AWS SDK for ECR hosts, endpoint overrides from the environment.
    pub fn build(&self, aws: Option<AwsContext>) -> Result<RegistryClient, Error> {
        let ecr = aws.map(AwsEcrTokens::new);
        self.assemble(ecr, Vec::new(), Endpoints::from_env()?)
    }

    /// Build the client for a replication config: also its `registries` endpoint
    /// overrides and request rates, its destinations' roles (ECR tokens minted with the assumed role) and
    /// their Secrets Manager credentials. ECR registries with `credentialsSecretArn` or an
    /// `apiEndpoint` mint their tokens through `aws` bound by [`bind_registries`] (done
    /// here when the caller has not): pass the same bound context to the ECR control
    /// plane.
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
        let aws = match aws {
            Some(aws) => Some(bind_registries(config, aws).await?),
            None => None,
        };
        let tokens = aws.clone().map(AwsEcrTokens::new);
        // One credential route per destination (host and the repositories its template
        // renders), so two destinations on one registry push each with its own role or
        // secret.
        let mut routes = Vec::new();
        for d in &destinations {
            // A reading client mints through the destination's read role, when it names
            // one, and never through its write role.
            let role = if self.without_roles {
                read_role_of(d)
            } else if self.prefer_read_roles {
                read_role_of(d).or_else(|| role_of(d))
            } else {
                role_of(d)
            };
            if let Some(role) = role {
                routes.push((
                    d.registry_host(),
                    d.template.clone(),
                    CredentialSource::Role(role),
                ));
            }
            // An ECR destination's secret holds access keys, bound in `aws`: its tokens are
            // minted with them.
            if let Some(arn) = d
                .credentials_secret_arn
                .as_ref()
                .filter(|_| !d.registry.is_ecr())
            {
                let aws = needs_aws(aws.as_ref(), &d.path)?;
                routes.push((
                    d.registry_host(),
                    d.template.clone(),
                    CredentialSource::Static(secret_credential(aws, arn).await?),
                ));
            }
        }
        if let Some(source) = config.source_registry().filter(|r| !r.is_ecr())
            && let Some(arn) = config
                .source
                .as_ref()
                .and_then(|s| s.credentials_secret_arn.as_ref())
        {
            let aws = needs_aws(aws.as_ref(), "source")?;
            routes.push((
                source.host(),
                None,
                CredentialSource::Static(secret_credential(aws, arn).await?),
            ));
        }
        let mut options = self.options.clone();
        for (host, e) in &config.registries {
            if !e.ca_certificates.is_empty() {
                options
                    .ca_certificates
                    .insert(host.clone(), e.ca_certificates.clone());
            }
            if let Some(rates) = &e.rates {
                options
                    .rates
                    .entry(host.clone())
                    .or_default()
                    .extend(rate_classes(rates));
            }
        }
        ClientSetup {
            options,
            ..self.clone()
        }
        .assemble(tokens, routes, endpoints)
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
            auth = auth.with_route(&host, template.as_ref().map(|t| t.name_regex()), source);
        }
        endpoints = endpoints.with_plain_http(self.plain_http);
        for (host, url) in &self.endpoints {
            endpoints.insert(host, url)?;
        }
        Ok(RegistryClient::new(auth, endpoints, self.options.clone())?)
    }
}

/// A registry's `rates` by API class.
fn rate_classes(rates: &ApiRates) -> impl Iterator<Item = (ApiClass, u32)> {
    rates
        .given()
        .into_iter()
        .filter_map(|(key, rate)| ApiClass::from_config_key(key).map(|class| (class, rate)))
}

fn needs_aws<'a>(aws: Option<&'a AwsContext>, path: &str) -> Result<&'a AwsContext, Error> {
    aws.ok_or_else(|| {
        Error::Config(format!(
            "{path}: credentialsSecretArn needs AWS credentials"
        ))
    })
}

/// The AWS context for a config: `aws` with every ECR registry whose source or destination
/// names `credentialsSecretArn` bound to the access keys that secret holds, and every
/// ECR registry with `registries.<host>.apiEndpoint` bound to that endpoint (see
/// [`AwsContext::ecr`]). Registries `aws` binds already are left as they are, so each
/// secret is read once per process. Pass the result to the ECR control plane and to
/// [`ClientSetup::build_for_config`].
pub async fn bind_registries(
    config: &ReplicationConfig,
    mut aws: AwsContext,
) -> Result<AwsContext, Error> {
    // (account, region) → (secret, API endpoint).
    let mut wanted: BTreeMap<(String, String), (Option<String>, Option<String>)> = BTreeMap::new();
    let mut want_secret = |registry: &Registry, arn: Option<&String>| {
        if let (
            Registry::Ecr {
                registry_id,
                region,
            },
            Some(arn),
        ) = (registry, arn)
        {
            wanted
                .entry((registry_id.clone(), region.clone()))
                .or_default()
                .0
                .get_or_insert_with(|| arn.clone());
        }
    };
    if let Some(source) = config.source_registry() {
        let arn = config
            .source
            .as_ref()
            .and_then(|s| s.credentials_secret_arn.as_ref());
        want_secret(&source, arn);
    }
    for d in config
        .destinations()
        .map_err(|e| Error::Config(e.to_string()))?
    {
        want_secret(&d.registry, d.credentials_secret_arn.as_ref());
    }
    for (host, endpoint) in &config.registries {
        if let (
            Registry::Ecr {
                registry_id,
                region,
            },
            Some(url),
        ) = (Registry::from_host(host), &endpoint.api_endpoint)
        {
            wanted.entry((registry_id, region)).or_default().1 = Some(url.clone());
        }
    }
    for ((account, region), (secret, api_endpoint)) in wanted {
        if aws.registry_access(&account, &region).is_some() {
            continue;
        }
        let keys = match secret {
            Some(arn) => Some(access_keys(&secret_text(&aws, &arn).await?, &arn)?),
            None => None,
        };
        aws = aws.with_registry(&account, &region, RegistryAccess { keys, api_endpoint });
    }
    Ok(aws)
}

/// The text of a Secrets Manager secret, read with the base identity in the region of its
/// ARN (`arn:<partition>:secretsmanager:<region>:…`).
async fn secret_text(aws: &AwsContext, arn: &str) -> Result<Secret, Error> {
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
    Ok(Secret::new(out.secret_string().unwrap_or_default()))
}

/// Registry credentials from a Secrets Manager secret holding
/// `{"username": "…", "password": "…"}`.
async fn secret_credential(aws: &AwsContext, arn: &str) -> Result<Credential, Error> {
    #[derive(serde::Deserialize)]
    struct Pair {
        username: String,
        password: String,
    }
    let text = secret_text(aws, arn).await?;
    // The error never quotes the text: it is a secret.
    let pair: Pair = serde_json::from_str(text.expose()).map_err(|_| {
        Error::Config(format!(
            "secret {arn} must hold JSON {{\"username\": …, \"password\": …}}"
        ))
    })?;
    Ok(Credential::basic(&pair.username, &pair.password))
}

/// An access key pair from a secret's text `{"accessKeyId": "…", "secretAccessKey": "…"}`.
pub(crate) fn access_keys(text: &Secret, arn: &str) -> Result<AccessKeys, Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Keys {
        access_key_id: String,
        secret_access_key: String,
    }
    let keys: Keys = serde_json::from_str(text.expose())
        .ok()
        .filter(|k: &Keys| !k.access_key_id.is_empty() && !k.secret_access_key.is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "secret {arn} must hold JSON {{\"accessKeyId\": …, \"secretAccessKey\": …}} (the access keys of the \
                 ECR registry's partition)"
            ))
        })?;
    Ok(AccessKeys {
        access_key_id: keys.access_key_id,
        secret_access_key: Secret::new(keys.secret_access_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_rate_reaches_its_api_class() {
        let rates = ApiRates {
            put_image: Some(1),
            initiate_layer_upload: Some(2),
            upload_layer_part: Some(3),
            complete_layer_upload: Some(4),
            batch_check_layer_availability: Some(5),
            get_download_url_for_layer: Some(6),
            batch_get_image: Some(7),
        };
        let classes: BTreeMap<ApiClass, u32> = rate_classes(&rates).collect();
        assert_eq!(classes.len(), ApiClass::ALL.len(), "{classes:?}");
        assert_eq!(classes[&ApiClass::PutImage], 1);
        assert_eq!(classes[&ApiClass::BatchGetImage], 7);
        assert_eq!(rate_classes(&ApiRates::default()).count(), 0);
    }

    #[test]
    fn access_keys_are_read_and_never_printed() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:cn-keys-AbC";
        let keys = access_keys(
            &Secret::new(
                r#"{"accessKeyId": "AKIDCN0000EXAMPLE", "secretAccessKey": "wJalr-cn-secret"}"#,
            ),
            arn,
        )
        .unwrap();
        assert_eq!(keys.access_key_id, "AKIDCN0000EXAMPLE");
        assert_eq!(keys.secret_access_key.expose(), "wJalr-cn-secret");
        let shown = format!("{keys:?}");
        assert!(!shown.contains("wJalr"), "{shown}");
        assert!(!shown.contains("AKIDCN0000EXAMPLE"), "{shown}");
        assert!(shown.contains("…MPLE"), "{shown}");
        for bad in [
            r#"{"username": "u", "password": "wJalr-cn-secret"}"#,
            r#"{"accessKeyId": "", "secretAccessKey": "wJalr-cn-secret"}"#,
            "wJalr-cn-secret",
        ] {
            let error = access_keys(&Secret::new(bad), arn).unwrap_err().to_string();
            assert!(error.contains("accessKeyId"), "{error}");
            assert!(
                !error.contains("wJalr"),
                "the error quotes the secret: {error}"
            );
        }
    }
}
