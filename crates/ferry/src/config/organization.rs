//! Destinations from AWS Organizations: an `organizationalUnit` (children included unless
//! `recursive: false`) or the whole `organization`, in each of `regions`.
//!
//! The document names the unit; the accounts are facts of the organization, read at run
//! time (see `crate::organizations`). [`ReplicationConfig::resolve_accounts`] turns each
//! such destination into one ordinary ECR destination per `ACTIVE` account and region, so
//! everything downstream (matching, jobs and their authorization, credentials) works on
//! concrete destinations only. An unresolved organization destination is refused by
//! [`crate::config::Destination`] resolution, never silently skipped.
//!
//! Never a destination: the source account, `excludeAccounts`, accounts that are not
//! `ACTIVE` (suspended, pending closure), and an answer's ID that is not 12 digits (it would
//! become part of a host name).

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::ConfigError;
use super::model::{DestinationSpec, ReplicationConfig, ResolvedFrom};
use super::registry::{Registry, check_registry_id};

/// Which accounts an organization destination names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AccountScope {
    /// The accounts of one organizational unit (or root), and of its descendants when
    /// `recursive`.
    Unit {
        /// `ou-…` or `r-…`.
        id: String,
        /// Include child OUs, all the way down.
        recursive: bool,
    },
    /// Every account of the organization.
    Organization,
}

impl std::fmt::Display for AccountScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountScope::Unit {
                id,
                recursive: true,
            } => write!(f, "{id} and its child OUs"),
            AccountScope::Unit { id, .. } => write!(f, "{id} (not its child OUs)"),
            AccountScope::Organization => f.write_str("the whole organization"),
        }
    }
}

/// One question to AWS Organizations: a scope, read through a role (or the caller's own
/// identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountQuery {
    /// Which accounts.
    pub scope: AccountScope,
    /// `organizationRoleArn`: the role to read the organization through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// The state of an account, as AWS Organizations reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountState {
    /// A member in good standing: the only state that receives images.
    Active,
    /// Suspended, closed, pending closure, or anything else.
    Inactive,
}

/// An account of the organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgAccount {
    /// 12-digit account ID.
    pub id: String,
    /// The account's name.
    pub name: String,
    /// Whether it is `ACTIVE`.
    pub state: AccountState,
    /// The status as AWS reports it (`ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, …).
    pub status: String,
}

impl OrgAccount {
    /// An `ACTIVE` account named by its ID (stand-ins for AWS Organizations' answers).
    pub fn active(id: impl Into<String>) -> OrgAccount {
        let id = id.into();
        OrgAccount {
            name: id.clone(),
            id,
            state: AccountState::Active,
            status: "ACTIVE".into(),
        }
    }
}

/// The answers to a configuration's [`AccountQuery`]s.
pub type OrgAccounts = BTreeMap<AccountQuery, Vec<OrgAccount>>;

/// Why an account of the scope is not a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skipped {
    /// The source account.
    Source,
    /// Listed in `excludeAccounts`.
    Excluded,
    /// Not `ACTIVE`.
    NotActive,
    /// An ID that is not 12 digits: AWS Organizations' answer is untrusted input too, and
    /// an ID becomes part of a registry host name, so such an ID is never used.
    InvalidId,
}

/// What one organization destination resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedOrganization {
    /// JSON path of the organization destination.
    pub path: String,
    /// What it names.
    pub scope: AccountScope,
    /// Its regions.
    pub regions: Vec<String>,
    /// The accounts that are destinations, in account ID order.
    pub accounts: Vec<OrgAccount>,
    /// The accounts of the scope that are not, and why.
    pub skipped: Vec<(OrgAccount, Skipped)>,
}

impl ResolvedOrganization {
    /// Destinations this makes: accounts × regions.
    pub fn destination_count(&self) -> usize {
        self.accounts.len() * self.regions.len()
    }
}

/// A configuration whose organization destinations are resolved to accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The configuration with concrete destinations only.
    pub config: ReplicationConfig,
    /// Per organization destination, what it resolved to (document order).
    pub organizations: Vec<ResolvedOrganization>,
}

impl DestinationSpec {
    /// The question to AWS Organizations for an organization destination.
    pub fn account_query(&self) -> Option<AccountQuery> {
        let scope = match (&self.organizational_unit, self.organization) {
            (Some(id), _) => AccountScope::Unit {
                id: id.clone(),
                recursive: self.recursive,
            },
            (None, true) => AccountScope::Organization,
            (None, false) => return None,
        };
        Some(AccountQuery {
            scope,
            role_arn: self.organization_role_arn.clone(),
        })
    }

    /// The regions of an organization destination: `regions`, else `region`.
    pub fn organization_regions(&self) -> Vec<String> {
        let mut regions = self.regions.clone();
        regions.extend(self.region.iter().cloned());
        regions.sort();
        regions.dedup();
        regions
    }
}

impl ReplicationConfig {
    /// Whether any destination names an organizational unit or the organization.
    pub fn has_organization_destinations(&self) -> bool {
        self.rules
            .iter()
            .flat_map(|r| &r.destinations)
            .any(DestinationSpec::is_organization)
    }

    /// The distinct questions to AWS Organizations this configuration needs answered.
    pub fn account_queries(&self) -> Vec<AccountQuery> {
        let mut queries: Vec<AccountQuery> = self
            .rules
            .iter()
            .flat_map(|r| &r.destinations)
            .filter_map(DestinationSpec::account_query)
            .collect();
        queries.sort();
        queries.dedup();
        queries
    }

    /// The configuration with every organization destination replaced by one ECR
    /// destination per `ACTIVE` account of its scope (minus the source account and
    /// `excludeAccounts`) and region, in account order, each keeping the organization
    /// destination's other settings (`repositoryName`, `roleArn` with `{accountId}`, …).
    /// `accounts` must answer every [`ReplicationConfig::account_queries`] query.
    pub fn resolve_accounts(&self, accounts: &OrgAccounts) -> Result<Resolution, ConfigError> {
        let source_account = self.source_registry().and_then(|r| match r {
            Registry::Ecr { registry_id, .. } => Some(registry_id),
            Registry::Oci { .. } => None,
        });
        let source_account =
            source_account.or_else(|| self.source.as_ref().and_then(|s| s.registry_id.clone()));
        let mut config = self.clone();
        let mut organizations = Vec::new();
        for (r, rule) in config.rules.iter_mut().enumerate() {
            let mut destinations = Vec::with_capacity(rule.destinations.len());
            for (d, spec) in rule.destinations.drain(..).enumerate() {
                let Some(query) = spec.account_query() else {
                    destinations.push(spec);
                    continue;
                };
                let path = format!("rules[{r}].destinations[{d}]");
                let Some(found) = accounts.get(&query) else {
                    return Err(ConfigError::Unresolved {
                        path,
                        scope: query.scope.to_string(),
                    });
                };
                let mut found = found.clone();
                found.sort();
                found.dedup_by(|a, b| a.id == b.id);
                let regions = spec.organization_regions();
                let mut resolved = ResolvedOrganization {
                    path: path.clone(),
                    scope: query.scope.clone(),
                    regions: regions.clone(),
                    accounts: Vec::new(),
                    skipped: Vec::new(),
                };
                for account in found {
                    let skipped = if check_registry_id(&account.id).is_err() {
                        Some(Skipped::InvalidId)
                    } else if source_account.as_deref() == Some(account.id.as_str()) {
                        Some(Skipped::Source)
                    } else if spec.exclude_accounts.contains(&account.id) {
                        Some(Skipped::Excluded)
                    } else if account.state != AccountState::Active {
                        Some(Skipped::NotActive)
                    } else {
                        None
                    };
                    match skipped {
                        Some(why) => resolved.skipped.push((account, why)),
                        None => resolved.accounts.push(account),
                    }
                }
                for account in &resolved.accounts {
                    for region in &regions {
                        destinations.push(DestinationSpec {
                            registry_id: Some(account.id.clone()),
                            region: Some(region.clone()),
                            resolved_from: Some(ResolvedFrom { path: path.clone() }),
                            ..spec.account_settings()
                        });
                    }
                }
                organizations.push(resolved);
            }
            rule.destinations = destinations;
        }
        Ok(Resolution {
            config,
            organizations,
        })
    }

    /// Drops destinations resolved from an organization that are in `account`: the source
    /// account is never a destination of itself, also when the document leaves the source
    /// to be bound from each event.
    pub(crate) fn drop_resolved_account(&mut self, account: &str) {
        for rule in &mut self.rules {
            rule.destinations
                .retain(|d| d.resolved_from.is_none() || d.registry_id.as_deref() != Some(account));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, state: AccountState) -> OrgAccount {
        OrgAccount {
            id: id.into(),
            name: format!("acct-{id}"),
            state,
            status: match state {
                AccountState::Active => "ACTIVE".into(),
                AccountState::Inactive => "SUSPENDED".into(),
            },
        }
    }

    const CONFIG: &str = r#"{
      "source": {"registryId": "111111111111", "region": "us-east-1"},
      "rules": [{"destinations": [
        {"organizationalUnit": "ou-ab12-34cd56ef", "regions": ["eu-west-1", "us-west-2"],
         "excludeAccounts": ["333333333333"],
         "roleArn": "arn:aws:iam::{accountId}:role/ferry-writer",
         "repositoryName": "golden/{repository}"},
        {"registry": "ghcr.io"}
      ]}]
    }"#;

    fn answers(config: &ReplicationConfig) -> OrgAccounts {
        let query = config.account_queries().pop().unwrap();
        BTreeMap::from([(
            query,
            vec![
                account("444444444444", AccountState::Active),
                account("111111111111", AccountState::Active),
                account("333333333333", AccountState::Active),
                account("222222222222", AccountState::Active),
                account("555555555555", AccountState::Inactive),
                account("evil.example/x", AccountState::Active),
            ],
        )])
    }

    #[test]
    fn organization_destinations_become_one_per_active_account_and_region() {
        let config = ReplicationConfig::from_json(CONFIG).unwrap();
        assert!(config.has_organization_destinations());
        assert_eq!(
            config.account_queries(),
            vec![AccountQuery {
                scope: AccountScope::Unit {
                    id: "ou-ab12-34cd56ef".into(),
                    recursive: true
                },
                role_arn: None
            }]
        );
        let resolution = config.resolve_accounts(&answers(&config)).unwrap();
        let targets = resolution
            .config
            .destinations_for("app", Some("v1"))
            .unwrap();
        let hosts: Vec<String> = targets
            .iter()
            .map(|t| format!("{}/{}", t.destination.registry_host(), t.repository))
            .collect();
        assert_eq!(
            hosts,
            [
                "222222222222.dkr.ecr.eu-west-1.amazonaws.com/golden/app",
                "222222222222.dkr.ecr.us-west-2.amazonaws.com/golden/app",
                "444444444444.dkr.ecr.eu-west-1.amazonaws.com/golden/app",
                "444444444444.dkr.ecr.us-west-2.amazonaws.com/golden/app",
                "ghcr.io/app",
            ]
        );
        // `{accountId}` in roleArn is the destination account; the path names the origin.
        assert_eq!(
            targets[2].destination.role_arn.as_deref(),
            Some("arn:aws:iam::444444444444:role/ferry-writer")
        );
        assert_eq!(
            targets[2].destination.path,
            "rules[0].destinations[0] (account 444444444444, eu-west-1)"
        );
        let org = &resolution.organizations[0];
        assert_eq!(org.destination_count(), 4);
        let skipped: Vec<(&str, Skipped)> = org
            .skipped
            .iter()
            .map(|(a, why)| (a.id.as_str(), *why))
            .collect();
        assert_eq!(
            skipped,
            [
                ("111111111111", Skipped::Source),
                ("333333333333", Skipped::Excluded),
                ("555555555555", Skipped::NotActive),
                ("evil.example/x", Skipped::InvalidId)
            ]
        );
    }

    #[test]
    fn unresolved_organization_destinations_are_refused_not_skipped() {
        let config = ReplicationConfig::from_json(CONFIG).unwrap();
        let error = config.destinations_for("app", Some("v1")).unwrap_err();
        assert!(error.to_string().contains("AWS Organizations"), "{error}");
        let error = config.resolve_accounts(&OrgAccounts::new()).unwrap_err();
        assert!(matches!(error, ConfigError::Unresolved { .. }), "{error}");
    }

    #[test]
    fn an_unpinned_source_account_is_dropped_when_bound() {
        let text = CONFIG.replace(
            r#""source": {"registryId": "111111111111", "region": "us-east-1"},"#,
            "",
        );
        let config = ReplicationConfig::from_json(&text).unwrap();
        let resolution = config.resolve_accounts(&answers(&config)).unwrap();
        assert!(resolution.organizations[0].skipped.len() == 3);
        let event = Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com");
        let bound = resolution.config.for_source(&event).unwrap();
        let hosts: Vec<String> = bound
            .destinations_for("app", Some("v1"))
            .unwrap()
            .iter()
            .map(|t| t.destination.registry_host())
            .collect();
        assert!(
            !hosts.iter().any(|h| h.starts_with("111111111111")),
            "{hosts:?}"
        );
        assert_eq!(hosts.len(), 5, "{hosts:?}");
    }
}
