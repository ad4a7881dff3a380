//! `ferry plan`, `ferry verify` and `ferry validate`.

use std::process::ExitCode;

use ferry::sync::{self, Action};

use super::context;
use crate::cli::{ConfigArgs, OutputFormat, PlanArgs, ValidateArgs};
use crate::output::{self, human_bytes};

/// Print what a sync would do.
pub async fn run_plan(args: PlanArgs) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config.config)?;
    let replicator = context::replicator(config, 8, args.config.plain_http).await?;
    let plan = sync::plan(&replicator).await?;
    output::invalid_names(&plan.invalid_names);
    match args.output {
        OutputFormat::Json => output::json(&plan),
        OutputFormat::Text => {
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
                println!(
                    "{action:<8} {}  {digest}{existing}",
                    i.destination_display()
                );
            }
            let s = &plan.summary;
            println!(
                "plan: {} to copy, {} in place, {} conflicts, {} to delete, {} extra; {} to move",
                s.copy,
                s.skip,
                s.conflict,
                s.delete,
                s.extra,
                human_bytes(s.bytes_to_move)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Report drift; exit 3 when there is any.
pub async fn run_verify(args: ConfigArgs, format: OutputFormat) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config)?;
    let replicator = context::replicator(config, 8, args.plain_http).await?;
    let plan = sync::plan(&replicator).await?;
    output::invalid_names(&plan.invalid_names);
    let drift = sync::drift(&plan);
    match format {
        OutputFormat::Json => {
            output::json(&serde_json::json!({ "drift": drift, "checked": plan.items.len() }))
        }
        OutputFormat::Text => {
            for d in &drift {
                let src = d
                    .source_digest
                    .as_ref()
                    .map_or("-".into(), |x| short(x.as_str()));
                let dst = d
                    .destination_digest
                    .as_ref()
                    .map_or("-".into(), |x| short(x.as_str()));
                println!(
                    "{:<9} {}  source {src}  destination {dst}",
                    d.kind, d.destination
                );
            }
            println!(
                "verify: {} checked, {} drifted",
                plan.items.len(),
                drift.len()
            );
        }
    }
    Ok(if drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Validate a config file.
pub fn run_validate(args: ValidateArgs) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config)?;
    let destinations = config
        .destinations()
        .map_err(|e| ferry::Error::Config(e.to_string()))?;
    println!(
        "{}: valid, {} rules, {} destinations",
        args.config.display(),
        config.rules.len(),
        destinations.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn short(d: &str) -> String {
    d.chars().take(19).collect()
}
