//! `ferry`: copy, sync, plan, verify and status of container images between registries.

// `ferry::Error` carries registry, repository, digests and status in fields, which makes
// it large; errors are the cold path, so returning it by value is the clearer choice.
#![allow(clippy::result_large_err)]

#[macro_use]
mod output;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error[io]: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Copy(args) => commands::copy::run(args).await,
            Command::Plan(args) => commands::plan::run_plan(args).await,
            Command::Sync(args) => commands::sync::run(args).await,
            Command::Verify { config, output } => commands::plan::run_verify(config, output).await,
            Command::Validate(args) => commands::plan::run_validate(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Failures(args) => commands::failures::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => output::fail(&e),
    }
}

/// Whether log lines are coloured: only on a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::filter::{EnvFilter, filter_fn};
    use tracing_subscriber::prelude::*;
    let default = match verbose {
        // A refused certificate is Ferry's own `tls-untrusted` error, with the host and
        // the reason: the platform verifier's ERROR lines only repeat it.
        0 => "warn,rustls_platform_verifier=off",
        1 => "info,ferry=debug,rustls_platform_verifier=off",
        _ => "debug,ferry=trace,hyper=info,h2=info,rustls=info",
    };
    let filter = EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(colour(
                    std::io::IsTerminal::is_terminal(&std::io::stderr()),
                    std::env::var_os("NO_COLOR").as_deref(),
                ))
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .with_filter(filter_fn(ferry::log_allowed)),
        )
        .init();
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".as_ref())));
        assert!(!colour(true, Some("1".as_ref())));
        assert!(!colour(false, None));
    }
}
