//! An AWS Organizations tree in moto: organizational units, member accounts (moto gives
//! them random 12-digit IDs), moves between units, closed (SUSPENDED) accounts.
//!
//! Verified against moto 5.2: `CreateAccount` puts the account under the root,
//! `ListAccountsForParent` pages by 20, `CloseAccount` makes the account `SUSPENDED`.

use anyhow::{Context, Result, anyhow};
use aws_sdk_organizations::Client;
use aws_sdk_organizations::types::OrganizationFeatureSet;

use crate::moto::Moto;

/// An organization in one moto server, created by moto's default account (the
/// management account).
#[derive(Debug)]
pub struct Organization {
    client: Client,
    rt: tokio::runtime::Runtime,
    /// The root's ID (`r-…`).
    pub root: String,
}

impl Organization {
    /// Creates the organization (all features).
    pub fn create(moto: &Moto) -> Result<Self> {
        Self::create_with(&moto.sdk_config(crate::moto::DEFAULT_REGION))
    }

    /// Creates the organization (all features) as the account of `config`'s credentials,
    /// e.g. keys of a role assumed in another account ([`Moto::assume_role`]).
    pub fn create_with(config: &aws_config::SdkConfig) -> Result<Self> {
        let client = Client::new(config);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(
            client
                .create_organization()
                .feature_set(OrganizationFeatureSet::All)
                .send(),
        )
        .context("CreateOrganization")?;
        let root = Self::root_of(&client, &rt)?;
        Ok(Self { client, rt, root })
    }

    fn root_of(client: &Client, rt: &tokio::runtime::Runtime) -> Result<String> {
        let roots = rt
            .block_on(client.list_roots().send())
            .context("ListRoots")?;
        Ok(roots
            .roots()
            .first()
            .and_then(|r| r.id())
            .ok_or_else(|| anyhow!("moto answered no root"))?
            .to_string())
    }

    /// A new organizational unit under `parent`; its ID.
    pub fn unit(&self, parent: &str, name: &str) -> Result<String> {
        let out = self
            .rt
            .block_on(
                self.client
                    .create_organizational_unit()
                    .parent_id(parent)
                    .name(name)
                    .send(),
            )
            .context("CreateOrganizationalUnit")?;
        out.organizational_unit()
            .and_then(|u| u.id())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no OU id"))
    }

    /// A new account named `name` in `parent`; its ID.
    pub fn account(&self, parent: &str, name: &str) -> Result<String> {
        let out = self
            .rt
            .block_on(
                self.client
                    .create_account()
                    .account_name(name)
                    .email(format!("{name}@example.com"))
                    .send(),
            )
            .context("CreateAccount")?;
        let id = out
            .create_account_status()
            .and_then(|s| s.account_id())
            .ok_or_else(|| anyhow!("no account id"))?
            .to_string();
        if parent != self.root {
            self.move_account(&id, &self.root, parent)?;
        }
        Ok(id)
    }

    /// `count` new accounts in `parent`, named `{prefix}-{i}`; their IDs.
    pub fn accounts(&self, parent: &str, prefix: &str, count: usize) -> Result<Vec<String>> {
        (0..count)
            .map(|i| self.account(parent, &format!("{prefix}-{i}")))
            .collect()
    }

    /// Moves `account` from `from` to `to`.
    pub fn move_account(&self, account: &str, from: &str, to: &str) -> Result<()> {
        self.rt
            .block_on(
                self.client
                    .move_account()
                    .account_id(account)
                    .source_parent_id(from)
                    .destination_parent_id(to)
                    .send(),
            )
            .context("MoveAccount")?;
        Ok(())
    }

    /// Closes `account` (moto makes it `SUSPENDED`).
    pub fn close(&self, account: &str) -> Result<()> {
        self.rt
            .block_on(self.client.close_account().account_id(account).send())
            .context("CloseAccount")?;
        Ok(())
    }
}
