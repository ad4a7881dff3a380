//! The test proxy's WAN mode as a process, for `make bench` (issue #12).
//!
//! ```text
//! wanproxy --upstream URL [--delay-ms 40] [--bandwidth-mbit N] [--connection-mbit N]
//!          [--counts FILE]
//! ```
//!
//! Starts a [`Proxy`] on `127.0.0.1:<free port>` in front of `URL` with
//! [`WanMode`]: `--delay-ms` per request (default 40), `--bandwidth-mbit` caps the whole
//! proxy and, unless `--connection-mbit` says otherwise, each connection too. Prints its
//! URL (`http://127.0.0.1:PORT`) on stdout, runs until SIGTERM or SIGINT, then writes its
//! counts as JSON to `--counts` (requests by method and endpoint kind, total, requests
//! delayed, bytes throttled each way).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_e2e::Proxy;
use ferry_e2e::proxy::WanMode;
use serde_json::json;

const USAGE: &str = "usage: wanproxy --upstream URL [--delay-ms MS] [--bandwidth-mbit N] \
[--connection-mbit N] [--counts FILE]";

fn main() {
    if let Err(err) = run() {
        eprintln!("wanproxy: {err:#}");
        std::process::exit(1);
    }
}

struct Args {
    upstream: String,
    mode: WanMode,
    counts: Option<PathBuf>,
}

fn parse() -> Result<Args> {
    let mut upstream = None;
    let mut delay_ms = 40u64;
    let mut proxy_mbit = None;
    let mut connection_mbit = None;
    let mut counts = None;
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
        counts,
    })
}

fn run() -> Result<()> {
    let args = parse()?;
    let proxy = Proxy::start_for(&args.upstream, None)?;
    proxy.set_wan(args.mode);
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

fn counts(proxy: &Proxy) -> serde_json::Value {
    let mut by_kind = BTreeMap::new();
    for ((method, kind), n) in proxy.counts() {
        by_kind.insert(format!("{method} {kind:?}"), n);
    }
    let stats = proxy.wan_stats();
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
    })
}
