//! Account settings that change what the registry endpoint does (`GetAccountSetting`).

use crate::aws::AssumeRole;
use crate::reference::EcrRegistry;

use super::EcrControl;

impl EcrControl {
    /// The `BLOB_MOUNTING` account setting of `registry`'s account: `Some(true)` when it is
    /// `ENABLED`. The setting is read for the account of the credentials used, so it is
    /// only asked with credentials of the registry's own account: its bound access keys,
    /// `role` when the role lives in that account, or Ferry's own identity when that is
    /// the account. `None` when that cannot be known (another account's credentials, no
    /// permission, an older API): the caller then tries mounts, which cost nothing on
    /// ECR where a refused mount opens the upload session anyway.
    pub async fn blob_mounting(
        &self,
        registry: &EcrRegistry,
        role: Option<&AssumeRole>,
    ) -> Option<bool> {
        let bound = self
            .aws()
            .registry_access(&registry.account, &registry.region)
            .is_some_and(|a| a.keys.is_some());
        let account = match role {
            _ if bound => registry.account.clone(),
            Some(role) => role.role_arn.split(':').nth(4)?.to_owned(),
            None => self.aws().caller_account(&registry.region).await?,
        };
        if account != registry.account {
            return None;
        }
        let client = self.aws().ecr(registry, role).await;
        match client
            .get_account_setting()
            .name("BLOB_MOUNTING")
            .send()
            .await
        {
            Ok(out) => Some(
                out.value()
                    .is_some_and(|v| v.eq_ignore_ascii_case("ENABLED")),
            ),
            Err(e) => {
                tracing::debug!(registry = %registry.host(), error = %crate::aws::sdk_error("ecr", "GetAccountSetting", e), "BLOB_MOUNTING unknown");
                None
            }
        }
    }
}
