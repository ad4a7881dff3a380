//! The test proxy's WAN mode as a process, for `make bench` (issue #12).
//!
//! ```text
//! wanproxy --upstream URL [--delay-ms 40] [--bandwidth-mbit N] [--connection-mbit N]
//!          [--ecr-quotas] [--ecr-rate ACTION=N]... [--counts FILE]
//! ```
//!
//! Starts a [`Proxy`] on `127.0.0.1:<free port>` in front of `URL` with
//! [`WanMode`]: `--delay-ms` per request (default 40), `--bandwidth-mbit` caps the whole
//! proxy and, unless `--connection-mbit` says otherwise, each connection too. Prints its
//! URL (`http://127.0.0.1:PORT`) on stdout, runs until SIGTERM or SIGINT, then writes its
//! counts as JSON to `--counts` (requests by method and endpoint kind, total, requests
//! delayed, bytes throttled each way).
//!
//! `--ecr-quotas` adds the ECR mode's request quotas and nothing else of it (no
//! authentication, redirects or upload quirks): a token bucket per ECR API action at ECR's
//! default rates, each registry request counted against its action's, 429
//! `TOOMANYREQUESTS` above it. `--ecr-rate putImage=20` (the config's `rates` keys) sets
//! one action's rate and implies `--ecr-quotas`. The counts then hold the 429s by action
//! and how many requests each action's bucket let through.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_e2e::Proxy;
use ferry_e2e::proxy::{ApiClass, EcrMode, EcrQuotas, WanMode};
use serde_json::json;

const USAGE: &str = "usage: wanproxy --upstream URL [--delay-ms MS] [--bandwidth-mbit N] \
[--connection-mbit N] [--ecr-quotas] [--ecr-rate ACTION=N]... [--counts FILE]";

fn main() {
    if let Err(err) = run() {
        eprintln!("wanproxy: {err:#}");
        std::process::exit(1);
    }
}

struct Args {
    upstream: String,
    mode: WanMode,
    quotas: Option<EcrQuotas>,
    counts: Option<PathBuf>,
}

/// `putImage=20`: the action (a config `rates` key) and its rate.
fn ecr_rate(text: &str) -> Result<(ApiClass, u32)> {
    let (key, rate) = text
        .split_once('=')
        .with_context(|| format!("--ecr-rate {text}: ACTION=N"))?;
    let api = ApiClass::from_config_key(key).with_context(|| {
        format!("--ecr-rate {text}: {key} is not an action (putImage, batchGetImage, ...)")
    })?;
    let rate: u32 = rate
        .parse()
        .with_context(|| format!("--ecr-rate {text}: {rate} is not a rate"))?;
    if rate == 0 {
        bail!("--ecr-rate {text}: at least 1 per second");
    }
    Ok((api, rate))
}

fn parse() -> Result<Args> {
    let mut upstream = None;
    let mut delay_ms = 40u64;
    let mut proxy_mbit = None;
    let mut connection_mbit = None;
    let mut counts = None;
    let mut quotas: Option<EcrQuotas> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--upstream" => upstream = Some(value()?),
            "--delay-ms" => delay_ms = value()?.parse().context("--delay-ms")?,
            "--bandwidth-mbit" => {
                proxy_mbit = Some(value()?.parse::<u64>().context("--bandwidth-mbit")?)
            }
            "--connection-mbit" => {
                connection_mbit = Some(value()?.parse::<u64>().context("--connection-mbit")?)
            }
            "--ecr-quotas" => {
                quotas.get_or_insert_with(EcrQuotas::default);
            }
            "--ecr-rate" => {
                let (api, rate) = ecr_rate(&value()?)?;
                quotas = Some(quotas.take().unwrap_or_default().with(api, rate));
            }
            "--counts" => counts = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let upstream = upstream.context(USAGE)?;
    let connection_mbit = connection_mbit.or(proxy_mbit);
    Ok(Args {
        upstream,
        mode: WanMode {
            delay: Duration::from_millis(delay_ms),
            per_connection_bps: connection_mbit.map(|m| m * 1_000_000),
            per_proxy_bps: proxy_mbit.map(|m| m * 1_000_000),
        },
        quotas,
        counts,
    })
}

fn run() -> Result<()> {
    let args = parse()?;
    let proxy = Proxy::start_for(&args.upstream, None)?;
    proxy.set_wan(args.mode);
    if let Some(quotas) = args.quotas {
        proxy.set_ecr_mode(quotas_only(quotas));
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", proxy.url()).context("printing the URL")?;
    stdout.flush().context("printing the URL")?;
    ferry_e2e::block(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        anyhow::Ok(())
    })?;
    if let Some(path) = args.counts {
        std::fs::write(&path, counts(&proxy).to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The ECR mode with its request quotas and none of its other behaviours.
fn quotas_only(quotas: EcrQuotas) -> EcrMode {
    EcrMode {
        registry_host: String::new(),
        password: None,
        redirect_blobs: false,
        broken_chunked_upload: false,
        quotas: Some(quotas),
        immutable_tags: false,
        manifest_delete_unsupported: false,
        reject_index_referrers: false,
    }
}

fn counts(proxy: &Proxy) -> serde_json::Value {
    let mut by_kind = BTreeMap::new();
    for ((method, kind), n) in proxy.counts() {
        by_kind.insert(format!("{method} {kind:?}"), n);
    }
    let stats = proxy.wan_stats();
    let ecr = proxy.ecr_counts();
    let throttled: BTreeMap<&str, usize> = ApiClass::ALL
        .into_iter()
        .map(|api| (api.name(), ecr.throttled_of(api)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let admitted: BTreeMap<&str, usize> = ApiClass::ALL
        .into_iter()
        .map(|api| (api.name(), proxy.ecr_admitted(api).len()))
        .filter(|(_, n)| *n > 0)
        .collect();
    json!({
        "total": proxy.total_requests(),
        "by_kind": by_kind,
        "delayed_requests": stats.delayed_requests,
        "delayed_ms": stats.delayed.as_millis() as u64,
        "bytes_up": stats.bytes_up,
        "bytes_down": stats.bytes_down,
        "connections": stats.connections.len(),
        "over_limit": stats.connections.iter().map(|b| b.over_limit).sum::<u64>()
            + stats.proxy_bucket.map_or(0, |b| b.over_limit),
        "throttled": ecr.throttled,
        "throttled_by_api": throttled,
        "admitted_by_api": admitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ecr_rate_names_an_action_by_its_config_key_and_a_positive_rate() {
        assert_eq!(
            ecr_rate("batchGetImage=4000").unwrap(),
            (ApiClass::BatchGetImage, 4000)
        );
        assert_eq!(ecr_rate("putImage=20").unwrap(), (ApiClass::PutImage, 20));
        for wrong in ["PutImage=20", "putImage", "putImage=0", "putImage=x", "=5"] {
            assert!(ecr_rate(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn the_quota_mode_plays_only_the_quotas() {
        let mode = quotas_only(EcrQuotas::default().with(ApiClass::PutImage, 20));
        assert_eq!(mode.quotas.as_ref().unwrap().rate(ApiClass::PutImage), 20);
        assert_eq!(
            mode.quotas.as_ref().unwrap().rate(ApiClass::BatchGetImage),
            2000
        );
        assert!(mode.password.is_none() && !mode.redirect_blobs && !mode.broken_chunked_upload);
        assert!(!mode.immutable_tags && !mode.manifest_delete_unsupported);
    }
}
