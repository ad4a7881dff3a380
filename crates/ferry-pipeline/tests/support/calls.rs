//! The sandbox's AWS calls, recorded by moto and checked against `infra/check/calls.json`:
//! dispatch's and replicate's own calls (by their keys, [`super::DISPATCH_KEY`] and
//! [`super::REPLICATE_KEY`]) and replicate's through the role it assumes in account B
//! ([`super::ROLE_B`], the destination stack's write role, `AssumeRole` in the table).

use std::collections::BTreeMap;

use anyhow::Result;
use ferry_e2e::calls::{Call, Table, by_role, parse_all};

use super::{DISPATCH_KEY, REPLICATE_KEY, Sandbox};

impl Sandbox {
    /// Start recording every request moto receives.
    pub(crate) fn record_calls(&self) -> Result<()> {
        self.moto.recorder("start-recording")
    }

    /// The calls recorded since [`Sandbox::record_calls`], by role; fails naming every call
    /// whose IAM action calls.json does not list for the role that made it.
    pub(crate) fn calls_in_table(&self) -> Result<BTreeMap<&'static str, Vec<Call>>> {
        self.moto.recorder("stop-recording")?;
        let calls = parse_all(&self.moto.recording()?)?;
        let functions = BTreeMap::from([
            (DISPATCH_KEY.to_string(), "DispatchRole"),
            (REPLICATE_KEY.to_string(), "ReplicateRole"),
        ]);
        let writer = super::ROLE_B.rsplit('/').next().unwrap_or_default();
        let roles = by_role(&self.moto, calls, &functions, |name| {
            (name == writer).then_some("AssumeRole")
        })?;
        let table = Table::load()?;
        let missing: Vec<String> = roles
            .iter()
            .flat_map(|(role, calls)| table.missing(role, calls))
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "calls the table does not list: {missing:#?}"
        );
        Ok(roles)
    }
}
