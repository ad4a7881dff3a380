//! `ferry failures`: the failing images, from the result events of the replicate
//! function's log group ([`ferry_results::failures`]), or the entries of the failure
//! ledger ([`ferry_results::ledger`], `--ledger-table`).

use std::process::ExitCode;

use ferry::aws::AwsContext;
use ferry_results::{Failure, ResultsLog, failures};

use crate::cli::{FailuresArgs, OutputFormat};
use crate::output;

/// List the failing images; exit 1 when there are any.
pub(crate) async fn run(args: FailuresArgs) -> Result<ExitCode, ferry::Error> {
    if let Some(table) = &args.ledger_table {
        return ledger::run(table, args.output).await;
    }
    let group = args.results_log_group.as_deref().unwrap_or_default();
    let since = chrono::Duration::from_std(args.since)
        .map_err(|e| ferry::Error::Config(format!("--since: {e}")))?;
    let start = chrono::Utc::now() - since;
    let log = ResultsLog::new(AwsContext::from_env().await.base(), group);
    let (results, truncated) = log.results_since(start).await?;
    if truncated {
        tell!(
            "warning: more result events than ferry reads at once since {}: the oldest pages were not read; give a shorter --since",
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    let rows = failures(results);
    match args.output {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => text(&rows),
    }
    Ok(exit_code(rows.is_empty()))
}

/// 0 when nothing fails, 1 otherwise.
fn exit_code(none: bool) -> ExitCode {
    if none {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn text(rows: &[Failure]) {
    if rows.is_empty() {
        say!("no failing image");
        return;
    }
    for f in rows {
        say!(
            "{:<9} {:<18} {:>4}x  {} .. {}  {}/{}  <- {}",
            f.status.as_str(),
            f.error_code.as_deref().unwrap_or("-"),
            f.count,
            f.first_seen
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            f.last_seen
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            f.destination,
            f.repository,
            f.image
        );
        if let Some(message) = &f.error_message {
            say!("          {message}");
        }
    }
}

mod ledger;

#[cfg(test)]
mod tests {
    use crate::cli::parse_since;
    use std::time::Duration;

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_since("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "1", "h", "1w", "0s", "31d", "-1h", "1.5h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
