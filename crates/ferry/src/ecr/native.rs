//! Reading the source registry's native replication configuration (`DescribeRegistry`).

use crate::aws::{AssumeRole, sdk_error};
use crate::config::NativeRule;
use crate::error::Error;
use crate::reference::EcrRegistry;

use super::EcrControl;

/// More rules than ECR allows (10) are not ECR's answer: refused.
const MAX_NATIVE_RULES: usize = 100;

impl EcrControl {
    /// The registry's native replication rules (empty when none are configured).
    pub async fn native_replication(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Result<Vec<NativeRule>, Error> {
        let client = self.aws().ecr(registry, role).await;
        let out = client
            .describe_registry()
            .send()
            .await
            .map_err(|e| sdk_error("ecr", "DescribeRegistry", e))?;
        let rules = out
            .replication_configuration()
            .map(|c| c.rules())
            .unwrap_or_default();
        if rules.len() > MAX_NATIVE_RULES {
            return Err(Error::Aws {
                service: "ecr",
                operation: "DescribeRegistry",
                message: format!("{} replication rules: more than ECR allows", rules.len()),
                retryable: false,
            });
        }
        Ok(rules
            .iter()
            .map(|rule| NativeRule {
                destinations: rule
                    .destinations()
                    .iter()
                    .map(|d| (d.registry_id().to_owned(), d.region().to_owned()))
                    .collect(),
                prefixes: rule
                    .repository_filters()
                    .iter()
                    .map(|f| f.filter().to_owned())
                    .collect(),
            })
            .collect())
    }
}
