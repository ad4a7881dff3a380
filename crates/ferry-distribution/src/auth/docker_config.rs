//! Credentials from the Docker `config.json` that docker, skopeo and crane share.
//!
//! Looks in `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Reads `auths`
//! (`auth` = base64 `user:password`, or `username`/`password`, or `identitytoken`) and
//! runs `credHelpers` / `credsStore` helpers (`docker-credential-<name> get`).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::{Credential, Secret};
use crate::error::Error;
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};

#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    auths: HashMap<String, Entry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The parsed Docker config: static credentials per registry host and helper names.
#[derive(Default)]
pub struct DockerConfig {
    auths: HashMap<String, Credential>,
    helpers: HashMap<String, String>,
    store: Option<String>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("hosts", &self.auths.keys().collect::<Vec<_>>())
            .field("helpers", &self.helpers)
            .field("store", &self.store)
            .finish()
    }
}

impl DockerConfig {
    /// The config file's path: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Load from the default path; a missing file is an empty config.
    pub fn load_default() -> Result<DockerConfig, Error> {
        match Self::default_path() {
            Some(p) => Self::load(&p),
            None => Ok(DockerConfig::default()),
        }
    }

    /// Load a config file; a missing file is an empty config, a malformed one an error.
    pub fn load(path: &Path) -> Result<DockerConfig, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig::default());
            }
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|reason| Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
        })
    }

    /// Parse config.json text.
    pub fn parse(text: &str) -> Result<DockerConfig, String> {
        let file: File =
            serde_json::from_str(text).map_err(|e| format!("invalid config.json: {e}"))?;
        let mut auths = HashMap::new();
        for (key, entry) in file.auths {
            if let Some(cred) = entry_credential(&entry)? {
                auths.insert(normalise_key(&key), cred);
            }
        }
        Ok(DockerConfig {
            auths,
            helpers: file
                .cred_helpers
                .into_iter()
                .map(|(k, v)| (normalise_key(&k), v))
                .collect(),
            store: file.creds_store.filter(|s| !s.is_empty()),
        })
    }

    /// Credentials for a registry host, from `auths` or a credential helper.
    pub fn credential(&self, host: &str) -> Result<Option<Credential>, Error> {
        let key = normalise_key(host);
        if let Some(helper) = self.helpers.get(&key) {
            return run_helper(helper, &key);
        }
        if let Some(c) = self.auths.get(&key) {
            return Ok(Some(c.clone()));
        }
        match &self.store {
            Some(store) => run_helper(store, &key),
            None => Ok(None),
        }
    }
}

fn entry_credential(entry: &Entry) -> Result<Option<Credential>, String> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(Secret::new(token))));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "an `auth` value is not base64".to_string())?;
        let text =
            String::from_utf8(raw).map_err(|_| "an `auth` value is not UTF-8".to_string())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| "an `auth` value is not `user:password`".to_string())?;
        return Ok(Some(Credential::basic(user, pass)));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credential::basic(u, p))),
        _ => Ok(None),
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/` → `h:5000`.
fn normalise_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | DOCKER_HUB_API => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

fn run_helper(name: &str, host: &str) -> Result<Option<Credential>, Error> {
    let program = format!("docker-credential-{name}");
    let helper_err = |msg: String| Error::Auth {
        registry: host.to_string(),
        repository: String::new(),
        status: 0,
        message: format!("credential helper {program}: {msg}"),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| helper_err(format!("cannot start: {e}")))?;
    // For docker.io the helpers know the legacy key.
    let server = if host == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| helper_err(format!("cannot write: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| helper_err(format!("failed: {e}")))?;
    if !out.status.success() {
        // Helpers answer "credentials not found" with a failure status.
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|_| helper_err("answered something other than JSON credentials".into()))?;
    if a.username == "<token>" {
        return Ok(Some(Credential::IdentityToken(Secret::new(a.secret))));
    }
    Ok(Some(Credential::basic(&a.username, &a.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_in_every_form() {
        let cfg = DockerConfig::parse(
            r#"{"auths":{
                "127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},
                "https://index.docker.io/v1/":{"username":"hub","password":"pw"},
                "ghcr.io":{"identitytoken":"tok"},
                "empty.io":{}
            }}"#,
        )
        .expect("parse");
        match cfg.credential("127.0.0.1:5000").expect("ok") {
            Some(Credential::Basic { username, password }) => {
                assert_eq!((username.as_str(), password.expose()), ("user", "pass"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            cfg.credential("docker.io").expect("ok"),
            Some(Credential::Basic { .. })
        ));
        assert!(matches!(
            cfg.credential("ghcr.io").expect("ok"),
            Some(Credential::IdentityToken(_))
        ));
        assert!(cfg.credential("empty.io").expect("ok").is_none());
        assert!(cfg.credential("other.io").expect("ok").is_none());
    }

    #[test]
    fn debug_hides_secrets() {
        let cfg = DockerConfig::parse(r#"{"auths":{"h.io":{"auth":"dXNlcjpzM2NyM3Q="}}}"#)
            .expect("parse");
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("dXNlcjpzM2NyM3Q"),
            "{shown}"
        );
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(DockerConfig::parse(r#"{"auths":{"h":{"auth":"%%%"}}}"#).is_err());
        assert!(DockerConfig::parse("not json").is_err());
    }

    #[test]
    fn missing_file_is_empty() {
        let cfg = DockerConfig::load(Path::new("/nonexistent/config.json")).expect("ok");
        assert!(cfg.credential("h").expect("ok").is_none());
    }
}
