//! Running the built `ferry` binary and reading its JSON report.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::process::workspace_root;

/// How long one `ferry` run may take before the harness kills it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Path of the `ferry` binary: `$CARGO_TARGET_DIR/debug/ferry`, else
/// `<workspace>/target/debug/ferry`. Build it with `cargo build -p ferry-cli`.
pub fn ferry_bin() -> PathBuf {
    workspace_bin("ferry")
}

/// Path of a binary the workspace build made (`cargo build --workspace` builds them all):
/// `$CARGO_TARGET_DIR/debug/NAME`, else `<workspace>/target/debug/NAME`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_relative() {
                workspace_root().join(dir)
            } else {
                dir
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(name)
}

/// Runs `ferry COMMAND -c <config> --output json EXTRA…`, `config` written to a temporary
/// file, with `envs` added to the environment; its output and its stdout read as JSON
/// (`Null` when stdout is not JSON).
pub fn run_with_config<K, V>(
    command: &str,
    config: &serde_json::Value,
    extra: &[&str],
    envs: &[(K, V)],
) -> Result<(Output, serde_json::Value)>
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let dir = tempfile::tempdir().context("temporary directory")?;
    let path = dir.path().join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(config)?).context("writing the config")?;
    let path = path.to_str().context("a UTF-8 temporary path")?;
    let mut args = vec![command, "-c", path, "--output", "json"];
    args.extend_from_slice(extra);
    let out = run_ferry(args, envs)?;
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    Ok((out, report))
}

/// The item of a JSON plan (`ferry plan --output json`) for `tag`; panics naming the plan
/// when there is none.
pub fn plan_item<'p>(plan: &'p serde_json::Value, tag: &str) -> &'p serde_json::Value {
    plan["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["tag"] == tag)
        .unwrap_or_else(|| panic!("no item for {tag} in {plan}"))
}

/// Runs `ferry ARGS` with `envs` added to the environment, killing it after
/// [`RUN_TIMEOUT`]. Fails only when the binary cannot be run; a failed copy is an
/// `Output` with a non-zero status.
pub fn run_ferry<I, S, K, V>(args: I, envs: &[(K, V)]) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let bin = ferry_bin();
    if !bin.exists() {
        bail!(
            "{} does not exist: run `cargo build -p ferry-cli` first",
            bin.display()
        );
    }
    let mut command = Command::new(&bin);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    run_with_timeout(command, RUN_TIMEOUT)
}

/// Like [`run_ferry`], under `/usr/bin/time -v`: also returns ferry's peak resident set
/// size in KiB.
pub fn run_ferry_with_peak_rss<I, S, K, V>(args: I, envs: &[(K, V)]) -> Result<(Output, u64)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let time = crate::process::require_tool("time")?;
    let report = tempfile::NamedTempFile::new().context("creating the time report file")?;
    let mut command = Command::new(time);
    command
        .arg("-v")
        .arg("-o")
        .arg(report.path())
        .arg(ferry_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = run_with_timeout(command, RUN_TIMEOUT)?;
    let text = std::fs::read_to_string(report.path()).context("reading the time report")?;
    let peak = text
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Maximum resident set size (kbytes):")
        })
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("no peak RSS in /usr/bin/time output:\n{text}"))?;
    Ok((output, peak))
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<Output> {
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for ferry")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} still running after {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The `error[<code>]` codes printed on stderr, in order.
pub fn error_codes(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("error[")?;
            let end = rest.find("]:")?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// A human-readable dump of a run (status, stdout, stderr) for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Parses the `--output json` report from stdout.
pub fn parse_report(output: &Output) -> Result<Report> {
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing the JSON report\n{}", describe(output)))
}

/// `ferry copy --output json` report.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    /// Source reference as given.
    pub source: String,
    /// Destination reference as given.
    pub destination: String,
    /// Digest of the copied top-level manifest.
    pub digest: String,
    /// Tags written at the destination.
    pub tags: Vec<String>,
    /// Manifest counters.
    pub manifests: ManifestCounts,
    /// Blob counters.
    pub blobs: BlobCounts,
    /// Bytes moved.
    pub bytes: u64,
    /// Referrer manifests copied.
    pub referrers: u64,
    /// HTTP requests made to all registries.
    pub requests: RequestCounts,
    /// Wall time.
    pub duration_ms: u64,
}

/// Manifests copied and skipped.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestCounts {
    /// Pushed to the destination.
    pub copied: u64,
    /// Already present.
    pub skipped: u64,
}

/// Blobs copied, skipped, mounted and foreign.
#[derive(Debug, Clone, Deserialize)]
pub struct BlobCounts {
    /// Streamed from source to destination.
    pub copied: u64,
    /// Already present at the destination.
    pub skipped: u64,
    /// Cross-repository mounts.
    pub mounted: u64,
    /// Foreign / non-distributable layers left alone.
    pub foreign: u64,
}

/// HTTP requests made, in total and per method.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestCounts {
    /// All requests.
    pub total: u64,
    /// Per HTTP method.
    pub by_method: BTreeMap<String, u64>,
}

/// A replication config written to a temp file, removed on drop.
#[derive(Debug)]
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    /// Writes `config` as `ferry.json` in a new temp dir.
    pub fn write(config: &serde_json::Value) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("ferry-config-").tempdir()?;
        let path = dir.path().join("ferry.json");
        std::fs::write(&path, serde_json::to_vec_pretty(config)?)?;
        Ok(Self { _dir: dir, path })
    }

    /// Its path, as an argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }
}
