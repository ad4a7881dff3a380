//! `ferry plan`, `ferry verify` and `ferry validate`.

use std::process::ExitCode;

use ferry::sync::{self, Action};

use super::context;
use crate::cli::{ConfigArgs, OutputFormat, PlanArgs, ValidateArgs};
use crate::output::{self, human_bytes};

/// Print what a sync would do.
pub(crate) async fn run_plan(args: PlanArgs) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config.config, args.config.region.as_deref())?;
    let (replicator, organizations) =
        context::resolved_replicator(config, 8, args.config.plain_http, context::Access::Read)
            .await?;
    let plan = sync::plan(&replicator).await?;
    output::invalid_names(&plan.invalid_names);
    let repositories = plan
        .items
        .iter()
        .map(|i| &*i.source_repository)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let overlaps = native_warnings(&replicator, Some(repositories)).await;
    match args.output {
        OutputFormat::Json => {
            /// The plan with the warnings beside it, encoded straight to the output.
            #[derive(serde::Serialize)]
            #[serde(rename_all = "camelCase")]
            struct PlanOutput<'a, O: serde::Serialize, G: serde::Serialize> {
                #[serde(flatten)]
                plan: &'a sync::Plan,
                #[serde(skip_serializing_if = "<[_]>::is_empty")]
                native_overlaps: &'a [O],
                #[serde(skip_serializing_if = "<[_]>::is_empty")]
                organizations: &'a [G],
            }
            output::json(&PlanOutput {
                plan: &plan,
                native_overlaps: &overlaps,
                organizations: &organizations,
            })
        }
        OutputFormat::Text => {
            for o in &organizations {
                say!("{}", context::organization_summary(o));
                let ids: Vec<&str> = o.accounts.iter().map(|a| a.id.as_str()).collect();
                say!("  accounts: {}", ids.join(" "));
            }
            for i in plan
                .items
                .iter()
                .filter(|i| i.action != Action::Skip || args.all)
            {
                let action = format!("{:?}", i.action).to_lowercase();
                let digest = i
                    .digest
                    .as_ref()
                    .map_or(String::new(), |d| short(d.as_str()));
                let existing = i
                    .existing
                    .as_ref()
                    .map_or(String::new(), |d| format!(" (holds {})", short(d.as_str())));
                let archived = i
                    .archived
                    .as_ref()
                    .map_or(String::new(), |a| format!(" [{a}]"));
                say!(
                    "{action:<8} {}  {digest}{existing}{archived}",
                    i.destination_display()
                );
            }
            for n in &plan.self_signed {
                say!("signing  {n}");
            }
            for n in &plan.pull_through_left_out {
                say!("cache    {n}");
            }
            let s = &plan.summary;
            let storage = if s.archive + s.restore > 0 {
                format!(", {} to archive, {} to restore", s.archive, s.restore)
            } else {
                String::new()
            };
            say!(
                "plan: {} to copy, {} in place, {} conflicts, {} to delete, {} extra, {} archived{storage}; {} to move",
                s.copy,
                s.skip,
                s.conflict,
                s.delete,
                s.extra,
                s.archived,
                human_bytes(s.bytes_to_move)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Report drift; exit 3 when there is any.
pub(crate) async fn run_verify(
    args: ConfigArgs,
    format: OutputFormat,
) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config, args.region.as_deref())?;
    let replicator = context::replicator(config, 8, args.plain_http, context::Access::Read).await?;
    let plan = sync::plan_for_drift(&replicator).await?;
    output::invalid_names(&plan.invalid_names);
    let drifted = sync::drift_iter(&plan).count();
    // Archived source images: neither copied nor drift, but shown.
    let archived: Vec<serde_json::Value> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Archived)
        .map(|i| {
            serde_json::json!({
                "destination": i.destination_display(),
                "sourceDigest": i.digest,
                "status": i.archived.as_ref().map(|a| a.status),
                "lastArchivedAt": i.archived.as_ref().and_then(|a| a.last_archived_at.clone()),
            })
        })
        .collect();
    match format {
        OutputFormat::Json => output::json(&VerifyReport {
            plan: &plan,
            archived: &archived,
        }),
        OutputFormat::Text => {
            for d in sync::drift_iter(&plan) {
                let src = d
                    .source_digest
                    .as_ref()
                    .map_or("-".into(), |x| short(x.as_str()));
                let dst = d
                    .destination_digest
                    .as_ref()
                    .map_or("-".into(), |x| short(x.as_str()));
                say!(
                    "{:<9} {}  source {src}  destination {dst}",
                    d.kind,
                    d.destination
                );
            }
            for i in plan.items.iter().filter(|i| i.action == Action::Archived) {
                let state = i
                    .archived
                    .as_ref()
                    .map_or("archived".into(), |a| a.to_string());
                say!(
                    "{:<9} {}  source {}  {state}",
                    "archived",
                    i.destination_display(),
                    i.digest.as_ref().map_or("-".into(), |x| short(x.as_str()))
                );
            }
            say!(
                "verify: {} checked, {} drifted, {} archived at the source (not copied)",
                plan.items.len(),
                drifted,
                archived.len()
            );
        }
    }
    Ok(if drifted == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `verify`'s JSON report, written straight from the plan: its drift items are made one
/// at a time as they are written, never all held beside the plan.
struct VerifyReport<'a> {
    plan: &'a sync::Plan,
    archived: &'a [serde_json::Value],
}

impl serde::Serialize for VerifyReport<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        struct Drift<'a>(&'a sync::Plan);
        impl serde::Serialize for Drift<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(sync::drift_iter(self.0))
            }
        }
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("drift", &Drift(self.plan))?;
        m.serialize_entry("archived", self.archived)?;
        m.serialize_entry("checked", &self.plan.items.len())?;
        m.end()
    }
}

/// Validate a config file; with `--resolve`, also read the accounts of its organization
/// destinations and print them.
pub(crate) async fn run_validate(args: ValidateArgs) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config, args.region.as_deref())?;
    let organizations = config
        .rules
        .iter()
        .flat_map(|r| &r.destinations)
        .filter(|d| d.is_organization())
        .count();
    let concrete = if organizations == 0 {
        config.clone()
    } else {
        // What the document names without asking AWS: its other destinations.
        let mut rest = config.clone();
        for rule in &mut rest.rules {
            rule.destinations.retain(|d| !d.is_organization());
        }
        rest
    };
    let destinations = concrete
        .destinations()
        .map_err(|e| ferry::Error::Config(e.to_string()))?;
    let org_note = if organizations == 0 {
        String::new()
    } else {
        format!(" and {organizations} organization destinations (accounts read at run time)")
    };
    say!(
        "{}: valid, {} rules, {} destinations{org_note}",
        args.config.display(),
        config.rules.len(),
        destinations.len()
    );
    if args.resolve && organizations > 0 {
        let aws = ferry::aws::AwsContext::from_env().await;
        let resolution = context::resolve_organizations(&config, &aws).await?;
        for o in &resolution.organizations {
            say!("{}", context::organization_summary(o));
            for a in &o.accounts {
                say!("  {}  {}", a.id, a.name);
            }
            for (a, why) in &o.skipped {
                let why = serde_json::to_value(why).unwrap_or_default();
                say!(
                    "  {}  {}  skipped: {} ({})",
                    a.id,
                    a.name,
                    why.as_str().unwrap_or_default(),
                    a.status
                );
            }
        }
        let all = resolution
            .config
            .destinations()
            .map_err(|e| ferry::Error::Config(e.to_string()))?;
        say!("resolved: {} destinations", all.len());
    }
    if args.against_registry {
        let (replicator, _) =
            context::resolved_replicator(config, 8, args.plain_http, context::Access::Read).await?;
        let overlaps = native_warnings(&replicator, None).await;
        say!(
            "against the registry: {} overlaps with ECR native replication",
            overlaps.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the source's native replication and the config write the same repositories: a
/// warning each on stderr. A source whose native rules cannot be read is a warning too
/// (the plan does not depend on it).
async fn native_warnings(
    replicator: &ferry::replicate::Replicator,
    repositories: Option<Vec<String>>,
) -> Vec<ferry::config::NativeOverlap> {
    match sync::native_overlaps(replicator, repositories).await {
        Ok(overlaps) => {
            for o in &overlaps {
                tell!("warning: {}", o.message());
            }
            overlaps
        }
        Err(e) => {
            tell!("warning: could not read the source's native replication rules: {e}");
            Vec::new()
        }
    }
}

fn short(d: &str) -> String {
    d.chars().take(19).collect()
}
