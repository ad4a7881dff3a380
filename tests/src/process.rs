//! Child processes, free ports, readiness polling and tool lookup.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Returns a loopback port that was free a moment ago (bind `127.0.0.1:0`, read, release).
///
/// Another process may grab it before the caller binds it, so services started on it are
/// started in a retry loop (see [`crate::registry::Registry::start`]).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound address")?
        .port())
}

/// Whether the socket listening on `127.0.0.1:port` (or `0.0.0.0:port`) belongs to
/// process `pid` or one of its descendants (Linux: `/proc/net/tcp{,6}` and `/proc/*/fd`).
///
/// A port from [`free_port`] can reach two services started at once: the one that binds
/// it first answers, and the other would take that answer for its own readiness and run
/// its test against another test's server. Readiness checks therefore ask who listens.
pub fn port_held_by(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    !inodes.is_empty() && process_tree(pid).iter().any(|p| holds_socket(*p, &inodes))
}

/// Inodes of the sockets in state LISTEN on `port`, from `/proc/net/tcp` and `tcp6`.
fn listening_inodes(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "0A" {
                continue;
            }
            let local_port = fields[1]
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    inodes
}

/// `pid` and its descendants (`/proc/PID/task/*/children`).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() && tree.len() < 64 {
        let tasks = format!("/proc/{}/task", tree[i]);
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    tree
}

fn holds_socket(pid: u32, inodes: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Finds `tool` on `PATH`, or fails with a hint to run `scripts/setup`.
pub fn require_tool(tool: &str) -> Result<PathBuf> {
    find_tool(tool)
        .with_context(|| format!("`{tool}` is not on PATH: run scripts/setup (or make setup)"))
}

/// Finds `tool` on `PATH`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A running child process, killed when dropped.
///
/// The child stays in the test's process group, so a test runner that kills a timed-out
/// test's group (nextest does) takes the services down with it.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log handle")?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Process id of the child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` when the child has already exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("polling {}", self.name))
    }

    /// The child's combined stdout/stderr so far (for error messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `ready` every 100 ms until it returns true, the child exits, or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.exited()? {
                bail!(
                    "{} exited early ({status}):\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Wrappers such as pyenv shims exec the real program, so the pid is the service.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when something accepts TCP connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_held_by_its_process_and_not_by_another() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(port_held_by(std::process::id(), port));
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!port_held_by(other.id(), port));
        other.kill().unwrap();
        other.wait().unwrap();
        drop(listener);
        assert!(!port_held_by(std::process::id(), port));
    }

    #[test]
    fn a_port_held_by_a_child_counts_for_its_parent() {
        // A process whose child listens: as a shim that starts the real server.
        let port = free_port().unwrap();
        let mut shell = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import socket,subprocess,sys; subprocess.run([sys.executable, '-c', \
                     'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", {port})); \
                     s.listen(); time.sleep(30)'])"
                ),
            ])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !port_held_by(shell.id(), port) {
            assert!(Instant::now() < deadline, "the child never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut unrelated = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!port_held_by(unrelated.id(), port));
        unrelated.kill().unwrap();
        unrelated.wait().unwrap();
        let tree: Vec<String> = process_tree(shell.id())
            .iter()
            .map(u32::to_string)
            .collect();
        let _ = Command::new("kill").arg("-KILL").args(&tree).status();
        shell.wait().unwrap();
    }
}
