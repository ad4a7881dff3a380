//! The accounts of organization destinations, read from AWS Organizations
//! (`ListAccountsForParent` and `ListChildren` for an OU and its descendants, `ListAccounts`
//! for the whole organization; every call paginated), through `organizationRoleArn` when the
//! destination names one (a role in the management account or a delegated administrator).
//!
//! The functions keep the answers for a TTL ([`CachedDirectory`], default 15 minutes), so an
//! account added to an OU receives images within that time with no config change; each CLI
//! run reads them afresh. When a refresh fails, the last answer is kept (and the failure
//! logged) for at most [`DEFAULT_MAX_STALE`]: an Organizations outage does not stop
//! replication to the accounts already known, and an answer older than that is dropped, not
//! trusted forever (an account that left the organization a day ago receives nothing more).
//! [`resolve_available`] resolves what can be read and names the scopes that could not be,
//! so an unreadable organization fails only its own destinations.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_organizations::types::ChildType;

use crate::aws::{AssumeRole, AwsContext, sdk_error};
use crate::config::{
    AccountQuery, AccountScope, AccountState, OrgAccount, OrgAccounts, ReplicationConfig,
    Resolution,
};
use crate::error::Error;

/// How long the functions keep an organization's accounts.
pub const DEFAULT_ORGANIZATION_TTL: Duration = Duration::from_secs(15 * 60);

/// The oldest answer the functions fall back to when a refresh fails.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// More accounts than AWS Organizations allows in one organization (its quota is 10,000 by
/// default): an answer past this is refused rather than held.
pub const MAX_ACCOUNTS: usize = 100_000;

/// Organizational units visited at most for one query (AWS allows five levels of nesting
/// and 2,000 OUs by default).
pub const MAX_UNITS: usize = 10_000;

/// Where the accounts of an organization destination come from.
#[async_trait]
pub trait AccountDirectory: Send + Sync + std::fmt::Debug {
    /// Every account of the query's scope, whatever its state.
    async fn accounts(&self, query: &AccountQuery) -> Result<Vec<OrgAccount>, Error>;
}

/// Resolve every organization destination of `config` through `directory`.
pub async fn resolve(
    config: &ReplicationConfig,
    directory: &dyn AccountDirectory,
) -> Result<Resolution, Error> {
    let mut answers = OrgAccounts::new();
    for query in config.account_queries() {
        let accounts = directory.accounts(&query).await?;
        answers.insert(query, accounts);
    }
    config
        .resolve_accounts(&answers)
        .map_err(|e| Error::Config(e.to_string()))
}

/// A scope whose accounts could not be read.
#[derive(Debug, Clone)]
pub struct Unread {
    /// What was asked.
    pub query: AccountQuery,
    /// Why it failed (its code and message).
    pub error: String,
}

/// Resolve every organization destination of `config` through `directory`, as far as it
/// can be read: a scope whose accounts cannot be read resolves to no account and is named
/// in the answer, so the configuration's other destinations are unaffected.
pub async fn resolve_available(
    config: &ReplicationConfig,
    directory: &dyn AccountDirectory,
) -> Result<(Resolution, Vec<Unread>), Error> {
    let mut answers = OrgAccounts::new();
    let mut unread = Vec::new();
    for query in config.account_queries() {
        match directory.accounts(&query).await {
            Ok(accounts) => {
                answers.insert(query, accounts);
            }
            Err(error) => {
                tracing::error!(scope = %query.scope, code = error.code(), error = %error, "the organization's accounts could not be read: its destinations are skipped until they can be");
                unread.push(Unread {
                    error: format!("{}: {error}", error.code()),
                    query: query.clone(),
                });
                answers.insert(query, Vec::new());
            }
        }
    }
    let resolution = config
        .resolve_accounts(&answers)
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok((resolution, unread))
}

/// AWS Organizations through the SDK.
#[derive(Clone, Debug)]
pub struct AwsOrganizations {
    aws: AwsContext,
}

impl AwsOrganizations {
    /// Over the process's AWS context.
    pub fn new(aws: AwsContext) -> AwsOrganizations {
        AwsOrganizations { aws }
    }

    async fn client(&self, role_arn: Option<&str>) -> aws_sdk_organizations::Client {
        // Organizations has one global endpoint per partition; any region of the partition
        // the process runs in reaches it.
        let region = self
            .aws
            .base()
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let role = role_arn.map(|arn| AssumeRole {
            role_arn: arn.to_string(),
            external_id: None,
        });
        aws_sdk_organizations::Client::new(&self.aws.config_for(&region, role.as_ref()).await)
    }
}

fn account(a: &aws_sdk_organizations::types::Account) -> Option<OrgAccount> {
    use aws_sdk_organizations::types::AccountStatus;
    let id = a.id()?.to_string();
    let status = a.status().map(|s| s.as_str().to_string());
    let state = match a.status() {
        Some(AccountStatus::Active) => AccountState::Active,
        _ => AccountState::Inactive,
    };
    Some(OrgAccount {
        id,
        name: a.name().unwrap_or_default().to_string(),
        state,
        status: status.unwrap_or_else(|| "UNKNOWN".into()),
    })
}

/// Adds one page of accounts to `out`; past `limit` accounts in all, the answer is refused
/// (an error naming the limit), never cut to the limit.
fn take_page(
    out: &mut Vec<OrgAccount>,
    page: impl Iterator<Item = OrgAccount>,
    limit: usize,
) -> Result<(), Error> {
    out.extend(page);
    if out.len() > limit {
        return Err(too_many("accounts", limit));
    }
    Ok(())
}

fn too_many(what: &str, limit: usize) -> Error {
    Error::Config(format!(
        "AWS Organizations answered more than {limit} {what}: refused"
    ))
}

#[async_trait]
impl AccountDirectory for AwsOrganizations {
    async fn accounts(&self, query: &AccountQuery) -> Result<Vec<OrgAccount>, Error> {
        let client = self.client(query.role_arn.as_deref()).await;
        let mut out = Vec::new();
        match &query.scope {
            AccountScope::Organization => {
                let mut pages = client.list_accounts().into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| sdk_error("organizations", "ListAccounts", e))?;
                    take_page(
                        &mut out,
                        page.accounts().iter().filter_map(account),
                        MAX_ACCOUNTS,
                    )?;
                }
            }
            AccountScope::Unit { id, recursive } => {
                let mut seen = BTreeSet::from([id.clone()]);
                let mut queue = VecDeque::from([id.clone()]);
                while let Some(unit) = queue.pop_front() {
                    let mut pages = client
                        .list_accounts_for_parent()
                        .parent_id(&unit)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page
                            .map_err(|e| sdk_error("organizations", "ListAccountsForParent", e))?;
                        take_page(
                            &mut out,
                            page.accounts().iter().filter_map(account),
                            MAX_ACCOUNTS,
                        )?;
                    }
                    if !recursive {
                        continue;
                    }
                    let mut pages = client
                        .list_children()
                        .parent_id(&unit)
                        .child_type(ChildType::OrganizationalUnit)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page =
                            page.map_err(|e| sdk_error("organizations", "ListChildren", e))?;
                        for child in page.children() {
                            let Some(child) = child.id() else { continue };
                            // A unit seen before is not walked again: no answer can loop us.
                            if seen.insert(child.to_string()) {
                                if seen.len() > MAX_UNITS {
                                    return Err(too_many("organizational units", MAX_UNITS));
                                }
                                queue.push_back(child.to_string());
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }
}

/// Keeps each query's answer for a TTL; on a failed refresh, keeps serving the last answer.
#[derive(Debug)]
pub struct CachedDirectory {
    inner: Arc<dyn AccountDirectory>,
    ttl: Duration,
    max_stale: Duration,
    entries: tokio::sync::Mutex<HashMap<AccountQuery, (Instant, Vec<OrgAccount>)>>,
}

impl CachedDirectory {
    /// Over `inner`, keeping answers for `ttl`, and falling back to the last answer when a
    /// refresh fails for at most [`DEFAULT_MAX_STALE`].
    pub fn new(inner: Arc<dyn AccountDirectory>, ttl: Duration) -> CachedDirectory {
        CachedDirectory {
            inner,
            ttl,
            max_stale: DEFAULT_MAX_STALE,
            entries: tokio::sync::Mutex::default(),
        }
    }

    /// The same cache, falling back to an answer at most `max_stale` old.
    pub fn with_max_stale(mut self, max_stale: Duration) -> CachedDirectory {
        self.max_stale = max_stale;
        self
    }
}

#[async_trait]
impl AccountDirectory for CachedDirectory {
    async fn accounts(&self, query: &AccountQuery) -> Result<Vec<OrgAccount>, Error> {
        let mut entries = self.entries.lock().await;
        if let Some((at, accounts)) = entries.get(query)
            && at.elapsed() < self.ttl
        {
            return Ok(accounts.clone());
        }
        match self.inner.accounts(query).await {
            Ok(accounts) => {
                entries.insert(query.clone(), (Instant::now(), accounts.clone()));
                Ok(accounts)
            }
            Err(error) => match entries.get(query) {
                Some((at, stale)) if at.elapsed() < self.max_stale => {
                    tracing::warn!(scope = %query.scope, error = %error, code = error.code(), "reading the organization's accounts failed: keeping the last answer");
                    Ok(stale.clone())
                }
                Some(_) => {
                    tracing::error!(scope = %query.scope, error = %error, code = error.code(), "reading the organization's accounts failed and the last answer is too old to trust: dropped");
                    entries.remove(query);
                    Err(error)
                }
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A directory whose answer the test changes, counting the calls (no AWS here: the
    /// cache's own behaviour; the AWS side is tested against moto in `tests/`).
    #[derive(Debug, Default)]
    struct Scripted {
        answer: Mutex<Option<Vec<OrgAccount>>>,
        calls: Mutex<usize>,
    }

    #[async_trait]
    impl AccountDirectory for Scripted {
        async fn accounts(&self, _: &AccountQuery) -> Result<Vec<OrgAccount>, Error> {
            *self.calls.lock().unwrap() += 1;
            self.answer
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| Error::Config("organizations is down".into()))
        }
    }

    fn one(id: &str) -> Vec<OrgAccount> {
        vec![OrgAccount {
            id: id.into(),
            name: id.into(),
            state: AccountState::Active,
            status: "ACTIVE".into(),
        }]
    }

    #[test]
    fn more_accounts_than_the_limit_are_refused_not_cut() {
        let mut out = Vec::new();
        take_page(&mut out, one("111111111111").into_iter(), 2).unwrap();
        take_page(&mut out, one("222222222222").into_iter(), 2).unwrap();
        let error = take_page(&mut out, one("333333333333").into_iter(), 2).unwrap_err();
        assert_eq!(error.code(), "config");
        assert!(
            error.to_string().contains("more than 2 accounts: refused"),
            "{error}"
        );
    }

    fn query() -> AccountQuery {
        AccountQuery {
            scope: AccountScope::Organization,
            role_arn: None,
        }
    }

    #[tokio::test]
    async fn answers_are_kept_for_the_ttl_and_kept_when_a_refresh_fails() {
        let inner = Arc::new(Scripted::default());
        *inner.answer.lock().unwrap() = Some(one("111111111111"));
        let cached = CachedDirectory::new(inner.clone(), Duration::from_secs(3600));
        assert_eq!(
            cached.accounts(&query()).await.unwrap(),
            one("111111111111")
        );
        *inner.answer.lock().unwrap() = Some(one("222222222222"));
        assert_eq!(
            cached.accounts(&query()).await.unwrap(),
            one("111111111111")
        );
        assert_eq!(*inner.calls.lock().unwrap(), 1);

        let fresh = CachedDirectory::new(inner.clone(), Duration::ZERO);
        assert_eq!(fresh.accounts(&query()).await.unwrap(), one("222222222222"));
        *inner.answer.lock().unwrap() = None;
        assert_eq!(fresh.accounts(&query()).await.unwrap(), one("222222222222"));
        assert_eq!(*inner.calls.lock().unwrap(), 3);
        let never = CachedDirectory::new(inner, Duration::ZERO);
        assert!(never.accounts(&query()).await.is_err());
    }

    #[tokio::test]
    async fn an_answer_older_than_the_bound_is_dropped_not_trusted_forever() {
        let inner = Arc::new(Scripted::default());
        *inner.answer.lock().unwrap() = Some(one("111111111111"));
        let cached = CachedDirectory::new(inner.clone(), Duration::ZERO)
            .with_max_stale(Duration::from_millis(50));
        assert_eq!(
            cached.accounts(&query()).await.unwrap(),
            one("111111111111")
        );
        *inner.answer.lock().unwrap() = None;
        assert_eq!(
            cached.accounts(&query()).await.unwrap(),
            one("111111111111"),
            "a recent answer is kept through an outage"
        );
        // The bound is a duration the cache compares, not a wall-clock assertion: wait
        // until the answer is surely older than it.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(cached.accounts(&query()).await.is_err(), "too old: dropped");
        assert!(
            cached.accounts(&query()).await.is_err(),
            "and not brought back by the next call"
        );
    }

    #[tokio::test]
    async fn an_unreadable_scope_resolves_to_no_account_and_is_named() {
        let config = ReplicationConfig::from_json(
            r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
                "rules": [{"destinations": [
                  {"organization": true, "regions": ["eu-west-1"]},
                  {"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
        )
        .unwrap();
        let down = Scripted::default();
        let (resolution, unread) = resolve_available(&config, &down).await.unwrap();
        assert_eq!(unread.len(), 1);
        assert_eq!(unread[0].query.scope, AccountScope::Organization);
        let hosts: Vec<String> = resolution
            .config
            .destinations()
            .unwrap()
            .iter()
            .map(|d| d.registry_host())
            .collect();
        assert_eq!(hosts, ["222222222222.dkr.ecr.eu-west-1.amazonaws.com"]);
    }
}
