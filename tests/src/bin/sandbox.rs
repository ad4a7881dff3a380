//! The e2e sandbox as a command, for `make demo` and for poking at by hand.
//!
//! ```text
//! sandbox up --state DIR        start a plain source and an htpasswd destination registry,
//!                               write DIR/env (shell variables), run until SIGTERM/SIGINT
//! sandbox fixtures --state DIR  push a signed two-platform image to the source, print JSON
//! sandbox down --state DIR      stop the `up` process and wait for it
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_e2e::fixtures::{self, Target};
use ferry_e2e::scenario::Sandbox;

const USAGE: &str = "usage: sandbox up|fixtures|down --state DIR";

fn main() {
    if let Err(err) = run() {
        eprintln!("sandbox: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, state) = match args.as_slice() {
        [command, flag, dir] if flag == "--state" => (command.as_str(), PathBuf::from(dir)),
        _ => bail!("{USAGE}"),
    };
    match command {
        "up" => up(&state),
        "fixtures" => push_fixtures(&state),
        "down" => down(&state),
        _ => bail!("{USAGE}"),
    }
}

fn up(state: &Path) -> Result<()> {
    std::fs::create_dir_all(state).context("creating the state dir")?;
    let sandbox = Sandbox::start()?;
    let creds = sandbox
        .dst
        .credentials()
        .context("destination has no credentials")?;
    let env = format!(
        "SANDBOX_PID={pid}\nSRC_HOST={src}\nDST_HOST={dst}\nDST_USER={user}\nDST_PASSWORD={password}\nDOCKER_CONFIG={config}\nSRC_REGISTRY_PID={src_pid}\nDST_REGISTRY_PID={dst_pid}\n",
        pid = std::process::id(),
        src = sandbox.src.host(),
        dst = sandbox.dst.host(),
        user = creds.username,
        password = creds.password,
        config = sandbox.config.dir().display(),
        src_pid = sandbox.src.pid(),
        dst_pid = sandbox.dst.pid(),
    );
    let partial = state.join("env.partial");
    std::fs::write(&partial, env).context("writing env")?;
    std::fs::rename(&partial, state.join("env")).context("publishing env")?;
    eprintln!(
        "sandbox: source http://{} (anonymous), destination http://{} (htpasswd)",
        sandbox.src.host(),
        sandbox.dst.host()
    );
    wait_for_signal()?;
    drop(sandbox);
    let _ = std::fs::remove_file(state.join("env"));
    eprintln!("sandbox: registries stopped");
    Ok(())
}

fn wait_for_signal() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        }
        anyhow::Ok(())
    })
}

fn read_env(state: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(state.join("env"))
        .context("reading DIR/env: is `sandbox up` running?")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn var<'a>(env: &'a [(String, String)], key: &str) -> Result<&'a str> {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .with_context(|| format!("{key} missing from DIR/env"))
}

fn push_fixtures(state: &Path) -> Result<()> {
    let env = read_env(state)?;
    let target = Target {
        host: var(&env, "SRC_HOST")?.to_string(),
        credentials: None,
    };
    let fixture = fixtures::signed_index(target, "demo/app", "v1", 2026)?;
    let summary = serde_json::json!({
        "reference": fixture.reference,
        "digest": fixture.digest,
        "media_type": fixture.media_type,
        "manifests": fixture.manifests,
        "blobs": fixture.blobs.iter().map(|b| &b.digest).collect::<Vec<_>>(),
        "blob_bytes": fixture.blob_bytes(),
        "referrers": fixture.referrers,
        "extra_tags": fixture.extra_tags,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn down(state: &Path) -> Result<()> {
    let env = match read_env(state) {
        Ok(env) => env,
        Err(_) => return Ok(()), // nothing running
    };
    let pid = var(&env, "SANDBOX_PID")?.to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .context("running kill")?;
    if !status.success() {
        return Ok(()); // already gone
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while proc_dir.exists() && !is_zombie(&proc_dir) {
        if Instant::now() > deadline {
            bail!("sandbox {pid} did not stop within 15 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn is_zombie(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
