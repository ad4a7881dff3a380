//! Which credential a request uses: chosen per destination (registry host and the
//! repositories its `repositoryName` template renders), not per host, so two destinations
//! on one registry with different roles or secrets each push with their own.

use regex::Regex;

use super::Credential;
use crate::aws::AssumeRole;

/// Where a route's credential comes from.
#[derive(Clone, Debug)]
pub enum CredentialSource {
    /// Fixed credentials (for example from AWS Secrets Manager).
    Static(Credential),
    /// ECR tokens minted with this role (assume-role mode).
    Role(AssumeRole),
}

/// One destination's credential: for `host`, and for the repositories `pattern` matches
/// (`None`: every repository of the host). The pattern is the destination's
/// `repositoryName` template as an anchored regular expression (the engine's
/// `RepositoryTemplate::name_regex`).
#[derive(Debug)]
pub(super) struct Route {
    host: String,
    pattern: Option<Regex>,
    pub(super) source: CredentialSource,
}

/// Every route, in the order they were added.
#[derive(Debug, Default)]
pub(super) struct Routes(Vec<Route>);

impl Routes {
    pub(super) fn add(
        &mut self,
        host: &str,
        repositories: Option<Regex>,
        source: CredentialSource,
    ) {
        self.0.push(Route {
            host: host.to_string(),
            pattern: repositories,
            source,
        });
    }

    /// The route for `repository` at `host`: the first whose template renders the name,
    /// else the first that covers the whole host.
    pub(super) fn find(&self, host: &str, repository: Option<&str>) -> Option<usize> {
        let on_host = |r: &&Route| r.host == host;
        self.0
            .iter()
            .position(|r| {
                on_host(&r)
                    && r.pattern
                        .as_ref()
                        .zip(repository)
                        .is_some_and(|(p, name)| p.is_match(name))
            })
            .or_else(|| {
                self.0
                    .iter()
                    .position(|r| on_host(&r) && r.pattern.is_none())
            })
    }

    pub(super) fn get(&self, index: usize) -> &Route {
        &self.0[index]
    }

    /// Hosts with a route (for Debug, no secrets).
    pub(super) fn hosts(&self) -> Vec<&str> {
        self.0.iter().map(|r| r.host.as_str()).collect()
    }
}

/// The repository a token scope is for: the first `repository:<name>:<actions>` (a mount's
/// second scope names the repository mounted from, read with the same credential).
pub(super) fn scope_repository(scope: &str) -> Option<&str> {
    let first = scope.split(' ').next()?;
    let rest = first.strip_prefix("repository:")?;
    let (name, _) = rest.rsplit_once(':')?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> CredentialSource {
        CredentialSource::Role(AssumeRole {
            role_arn: format!("arn:aws:iam::222222222222:role/{name}"),
            external_id: None,
        })
    }

    fn arn(routes: &Routes, host: &str, repo: Option<&str>) -> Option<String> {
        routes
            .find(host, repo)
            .map(|i| match &routes.get(i).source {
                CredentialSource::Role(r) => r.role_arn.clone(),
                CredentialSource::Static(_) => "static".into(),
            })
    }

    #[test]
    fn each_destination_on_one_host_gets_its_own_credential() {
        // What the templates `team-a/{repository}` and `team-b/{repository}` match.
        let t = |s: &str| Regex::new(s).unwrap();
        let mut routes = Routes::default();
        routes.add("r.example", Some(t("^team-a/.+$")), role("a"));
        routes.add("r.example", Some(t("^team-b/.+$")), role("b"));
        routes.add("r.example", None, role("whole-host"));
        let host = "r.example";
        assert!(
            arn(&routes, host, Some("team-a/api"))
                .unwrap()
                .ends_with("/a")
        );
        assert!(
            arn(&routes, host, Some("team-b/api"))
                .unwrap()
                .ends_with("/b")
        );
        assert!(
            arn(&routes, host, Some("other"))
                .unwrap()
                .ends_with("/whole-host")
        );
        assert!(arn(&routes, host, None).unwrap().ends_with("/whole-host"));
        assert_eq!(arn(&routes, "elsewhere.example", Some("team-a/api")), None);
    }

    #[test]
    fn scopes() {
        assert_eq!(
            scope_repository("repository:team/api:pull,push"),
            Some("team/api")
        );
        assert_eq!(
            scope_repository("repository:dst/x:pull,push repository:src/y:pull"),
            Some("dst/x")
        );
        assert_eq!(scope_repository(""), None);
        assert_eq!(scope_repository("registry:catalog:*"), None);
        assert_eq!(scope_repository("repository::pull"), None);
    }
}
