//! `ferry failures --ledger-table NAME`: the images the failure ledger holds, each with
//! its error, how often it failed in a row, and when reconcile tries it again.

use std::process::ExitCode;

use ferry::aws::AwsContext;
use ferry_results::ledger::{LedgerEntry, LedgerTable, image_name};

use crate::cli::OutputFormat;
use crate::output;

/// List the ledger's entries; exit 1 when there are any.
pub(crate) async fn run(table: &str, format: OutputFormat) -> Result<ExitCode, ferry::Error> {
    let found = LedgerTable::new(AwsContext::from_env().await.base(), table)
        .entries()
        .await?;
    if found.malformed > 0 {
        tell!(
            "warning: {} items of {table} are not failure ledger entries: skipped",
            found.malformed
        );
    }
    if found.truncated {
        tell!(
            "warning: {table} holds more entries than ferry reads at once: the rest were not read"
        );
    }
    match format {
        OutputFormat::Json => output::json(&found.entries),
        OutputFormat::Text => text(&found.entries),
    }
    Ok(super::exit_code(found.entries.is_empty()))
}

fn text(entries: &[LedgerEntry]) {
    if entries.is_empty() {
        say!("no failing image in the ledger");
        return;
    }
    let time =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for e in entries {
        say!(
            "{:<9} {:<18} {:>4}x  {} .. {}  next {}  {}/{}  <- {} {}",
            e.status.as_str(),
            e.error_code,
            e.count,
            time(&e.first_seen),
            time(&e.last_seen),
            time(&e.next_attempt),
            e.destination,
            e.repository,
            e.action.as_str(),
            image_name(&e.source)
        );
        if let Some(message) = &e.error_message {
            say!("          {message}");
        }
    }
}
