//! `ferry copy`.

use std::process::ExitCode;

use ferry::aws::AwsContext;
use ferry::setup::ClientSetup;
use ferry::{Copier, CopyOptions, Reference};

use crate::cli::{CopyArgs, OutputFormat};
use crate::output;

/// Run the copy and print its report.
pub async fn run(args: CopyArgs) -> Result<ExitCode, ferry::Error> {
    let src = Reference::parse(&args.src)?;
    let dst = Reference::parse(&args.dst)?;
    let aws = if src.ecr().is_some() || dst.ecr().is_some() {
        Some(AwsContext::from_env().await)
    } else {
        None
    };
    let client = ClientSetup {
        plain_http: args.plain_http,
        ..Default::default()
    }
    .build(aws)?;
    let options = CopyOptions {
        referrers: !args.no_referrers,
        recheck_referrers: args.recheck_referrers,
        blob_concurrency: args.concurrency.into(),
        ..Default::default()
    };
    let report = Copier::new(client, options).copy(&src, &dst).await?;
    match args.output {
        OutputFormat::Json => output::json(&report),
        OutputFormat::Text => output::copy_text(&report),
    }
    Ok(ExitCode::SUCCESS)
}
