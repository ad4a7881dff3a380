//! `ferry status IMAGE`: the engine's answer ([`ferry::status`]), printed.

use std::process::ExitCode;

use ferry::Reference;
use ferry::aws::AwsContext;
use ferry::status::{self, ResultHistory, State, StatusReport};
use ferry_results::ResultsLog;

use super::context;
use crate::cli::{OutputFormat, StatusArgs};
use crate::output;

/// Print where the image stands at each destination; exit 0 only when it is complete
/// everywhere.
pub(crate) async fn run(args: StatusArgs) -> Result<ExitCode, ferry::Error> {
    let image = Reference::parse(&args.image)?;
    let config = context::load_config(&args.config.config, args.config.region.as_deref())?;
    let replicator =
        context::replicator(config, 8, args.config.plain_http, context::Access::Read).await?;
    let history = match &args.results_log_group {
        Some(group) => Some(ResultsLog::new(AwsContext::from_env().await.base(), group)),
        None => None,
    };
    let report = status::status(
        &replicator,
        &image,
        history.as_ref().map(|h| h as &dyn ResultHistory),
    )
    .await?;
    for w in &report.warnings {
        tell!("warning: {w}");
    }
    if report.destinations.is_empty() {
        tell!(
            "warning: the config sends {} to no destination",
            report.source.reference
        );
    }
    match args.output {
        OutputFormat::Json => output::json(&report),
        OutputFormat::Text => text(&report),
    }
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text(report: &StatusReport) {
    say!(
        "source {}  {}",
        report.source.reference,
        report.source.digest
    );
    for d in &report.destinations {
        let mut line = format!(
            "{:<11} {}/{}",
            d.state.as_str(),
            d.destination,
            d.repository
        );
        if let (State::Different | State::Conflict, Some(found)) = (d.state, &d.digest) {
            line.push_str(&format!("  holds {found}"));
        }
        if let (Some(code), Some(message)) = (&d.code, &d.message) {
            line.push_str(&format!("  [{code}] {message}"));
        }
        if let Some(last) = &d.last_result {
            line.push_str(&format!(
                "  last result {} at {}",
                last.status, last.completed_at
            ));
            if let Some(code) = &last.error_code {
                line.push_str(&format!(" ({code})"));
            }
        }
        if let Some(gate) = &d.gate {
            line.push_str(&format!("  {}: {}", gate.verdict, gate.reason));
        }
        say!("{line}");
    }
    let counts: Vec<String> = State::ALL
        .iter()
        .map(|s| format!("{} {}", report.count(*s), s.as_str().to_lowercase()))
        .collect();
    say!(
        "status: {} destinations: {}",
        report.destinations.len(),
        counts.join(", ")
    );
}
