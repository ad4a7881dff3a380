//! `ferry copy`.

use std::process::ExitCode;

use ferry::aws::AwsContext;
use ferry::setup::ClientSetup;
use ferry::{Copier, CopyOptions, Reference};

use crate::cli::{CopyArgs, OutputFormat};
use crate::output;

/// Run the copy and print its report.
pub(crate) async fn run(args: CopyArgs) -> Result<ExitCode, ferry::Error> {
    let src = Reference::parse(&args.src)?;
    let dst = Reference::parse(&args.dst)?;
    let aws = if src.ecr().is_some() || dst.ecr().is_some() {
        Some(AwsContext::from_env().await)
    } else {
        None
    };
    let mut setup = ClientSetup {
        plain_http: args.plain_http,
        ..Default::default()
    };
    setup.options.ca_certificates = ca_certificates(&args.ca_certificates)?;
    let client = setup.build(aws)?;
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

/// `--ca-certificate HOST=PEM_FILE` options: host → the PEM certificates of its files.
fn ca_certificates(
    given: &[String],
) -> Result<std::collections::BTreeMap<String, Vec<String>>, ferry::Error> {
    let mut map = std::collections::BTreeMap::<String, Vec<String>>::new();
    for option in given {
        let (host, file) = option
            .split_once('=')
            .filter(|(h, f)| !h.is_empty() && !f.is_empty())
            .ok_or_else(|| {
                ferry::Error::Config(format!(
                    "--ca-certificate {option:?}: expected HOST[:PORT]=PEM_FILE"
                ))
            })?;
        let text = std::fs::read_to_string(file).map_err(|source| ferry::Error::Io {
            path: file.to_string(),
            source,
        })?;
        // One entry per certificate of the file (a bundle may hold several).
        let pems: Vec<String> = text
            .split_inclusive("-----END CERTIFICATE-----")
            .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
            .map(|block| block.trim().to_string())
            .collect();
        if pems.is_empty() {
            return Err(ferry::Error::Config(format!(
                "--ca-certificate {host}={file}: no PEM certificate in the file"
            )));
        }
        for pem in &pems {
            ferry::config::parse_ca_certificate(pem).map_err(|reason| {
                ferry::Error::Config(format!("--ca-certificate {host}={file}: {reason}"))
            })?;
        }
        map.entry(host.to_string()).or_default().extend(pems);
    }
    Ok(map)
}
