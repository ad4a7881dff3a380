//! The sandbox's registries, started before it so that proxies can stand in front.

use std::collections::BTreeMap;

use anyhow::Result;
use ferry_e2e::EcrRegistry;
use ferry_e2e::proxy::{Proxy, WanMode};

use super::{ACCOUNT_A, ACCOUNT_B};

/// The sandbox's three registries.
pub(crate) struct Registries {
    /// Source: account A, us-east-1.
    pub src: EcrRegistry,
    /// Destination: account A, eu-west-1.
    pub eu: EcrRegistry,
    /// Destination: account B, us-west-2.
    pub west: EcrRegistry,
}

impl Registries {
    /// Start all three.
    pub(crate) fn start() -> Result<Registries> {
        Ok(Registries {
            src: EcrRegistry::start(ACCOUNT_A, "us-east-1")?,
            eu: EcrRegistry::start(ACCOUNT_A, "eu-west-1")?,
            west: EcrRegistry::start(ACCOUNT_B, "us-west-2")?,
        })
    }

    /// A WAN proxy ([`WanMode`]) before each registry's route (its entry in `routes`, else
    /// the registry itself); `routes` then sends each ECR host through its proxy. Pushes
    /// and checks that go to the registries directly cross no WAN.
    pub(crate) fn behind_wan(
        &self,
        mode: WanMode,
        routes: &mut BTreeMap<String, String>,
    ) -> Result<Vec<Proxy>> {
        let mut proxies = Vec::new();
        for r in [&self.src, &self.eu, &self.west] {
            let upstream = routes
                .get(&r.ecr_host())
                .cloned()
                .unwrap_or_else(|| r.registry().url());
            let proxy = Proxy::start_for(&upstream, None)?;
            proxy.set_wan(mode);
            routes.insert(r.ecr_host(), proxy.url());
            proxies.push(proxy);
        }
        Ok(proxies)
    }
}
