//! Registries on a private certificate authority: a CA and a server certificate made in
//! the test with `openssl`, a second `docker-registry` serving an existing registry's
//! storage over TLS with that certificate, and a TCP forwarder that counts connections
//! (so a test can tell one attempt from six).

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::process::{self, ChildGuard};
use crate::registry::{Registry, storage_yaml};

/// A certificate authority made for one test, and a server certificate it signed for
/// `localhost` and `127.0.0.1`.
#[derive(Debug)]
pub struct PrivateCa {
    dir: TempDir,
}

impl PrivateCa {
    /// Makes the CA (P-256) and the server certificate with `openssl`.
    pub fn generate() -> Result<Self> {
        let openssl = process::require_tool("openssl")?;
        let dir = tempfile::Builder::new().prefix("ferry-ca-").tempdir()?;
        let at = |name: &str| dir.path().join(name);
        std::fs::write(
            at("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        let steps = [
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
             -subj /CN=Ferry-Test-CA -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt",
            "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
             -keyout server.key -out server.csr",
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
             -extfile server.ext -out server.crt",
        ];
        for step in steps {
            let args: Vec<&str> = step.split_whitespace().collect();
            let out = Command::new(&openssl)
                .args(&args)
                .current_dir(dir.path())
                .output()
                .context("running openssl")?;
            if !out.status.success() {
                bail!(
                    "openssl {}: {}",
                    args[0],
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(Self { dir })
    }

    /// The CA certificate (PEM file).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.ca_path())?)
    }

    fn server(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.crt"),
            self.dir.path().join("server.key"),
        )
    }
}

/// A `docker-registry` serving another registry's storage over TLS, with a certificate
/// of a [`PrivateCa`]; killed on drop.
#[derive(Debug)]
pub struct TlsFront {
    _child: ChildGuard,
    port: u16,
    _dir: TempDir,
}

impl TlsFront {
    /// Serves `registry`'s storage over TLS (anonymous access) on a free port.
    pub fn serve(registry: &Registry, ca: &PrivateCa) -> Result<Self> {
        let binary = process::require_tool("docker-registry")?;
        let dir = tempfile::Builder::new().prefix("ferry-tls-").tempdir()?;
        let (cert, key) = ca.server();
        let port = process::free_port()?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            storage_yaml(&registry.storage_root(), port, None, Some((&cert, &key))),
        )?;
        let mut command = Command::new(binary);
        command.arg("serve").arg(&config);
        let mut child = ChildGuard::spawn(
            "docker-registry (TLS)",
            command,
            &dir.path().join("registry.log"),
        )?;
        let pid = child.pid();
        child.wait_ready(Duration::from_secs(20), || {
            process::port_open(port) && process::port_held_by(pid, port)
        })?;
        Ok(Self {
            _child: child,
            port,
            _dir: dir,
        })
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A TCP forwarder to `127.0.0.1:<target>` that counts the connections it accepts; it
/// stops accepting when dropped.
#[derive(Debug)]
pub struct CountingForwarder {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl CountingForwarder {
    /// Listens on a free loopback port.
    pub fn start(target: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                pipe(&client, &upstream);
            }
        });
        Ok(Self { port, accepted })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Copies bytes both ways between two sockets on two threads.
fn pipe(a: &TcpStream, b: &TcpStream) {
    for (from, to) in [(a, b), (b, a)] {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let _: io::Result<u64> = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}
