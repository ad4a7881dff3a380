//! moto's AWS mock (`moto_server`) on a free loopback port.
//!
//! Verified against moto 5.2: ECR `GetAuthorizationToken` answers base64 of
//! `AWS:<registryId>-auth-token` (default account `123456789012`; with `registryIds=[X, Y]`
//! one token per id), `proxyEndpoint` `https://<id>.dkr.ecr.<region>.amazonaws.com`, and a
//! fixed `expiresAt` of 1420070400 (2015-01-01): the token looks long expired.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use tempfile::TempDir;

use crate::http;
use crate::process::{self, ChildGuard};

/// The account moto uses when none is given.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The region the harness points the AWS SDK at.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A running `moto_server`, killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: ChildGuard,
    port: u16,
    _dir: TempDir,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` and waits until it answers.
    pub fn start() -> Result<Self> {
        Self::start_with_env(&[], false)
    }

    /// Starts one whose default account (the account of every access key it has not
    /// issued itself) is `account` (`MOTO_ACCOUNT_ID`): a second, separate AWS, e.g. the
    /// `aws-cn` partition of a cross-partition test.
    pub fn start_as(account: &str) -> Result<Self> {
        Self::start_with_env(&[("MOTO_ACCOUNT_ID", account)], false)
    }

    /// Starts one with moto's request recorder writing to its temp dir: between
    /// [`Moto::recorder`]`("start-recording")` and `("stop-recording")` every request is
    /// recorded, read back with [`Moto::recording`]. (`MOTO_ACCOUNT_ID` is not set: it
    /// would pin every request to one account, assumed roles' included.)
    pub fn start_recording() -> Result<Self> {
        Self::start_with_env(&[], true)
    }

    fn start_with_env(env: &[(&str, &str)], record: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-moto-")
            .tempdir()
            .context("creating the moto temp dir")?;
        let mut last_error = None;
        for _ in 0..5 {
            let port = process::free_port()?;
            let mut command = moto_command(port);
            command.envs(env.iter().copied());
            if record {
                command.env("MOTO_RECORDER_FILEPATH", dir.path().join(RECORDING));
            }
            let log = dir.path().join("moto.log");
            let mut child = ChildGuard::spawn("moto_server", command, &log)?;
            let url = format!("http://127.0.0.1:{port}/");
            let pid = child.pid();
            let ready = child.wait_ready(Duration::from_secs(60), || {
                process::port_open(port)
                    && process::port_held_by(pid, port)
                    && http::send(Method::GET, &url, None, &[], None)
                        .map(|r| r.status == 200)
                        .unwrap_or(false)
            });
            match ready {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto_server never started")))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Number of API calls moto has logged so far (its access log has one
    /// `"POST / HTTP/1.1"` line per AWS API call).
    pub fn api_calls(&self) -> usize {
        self.child
            .log_text()
            .lines()
            .filter(|line| line.contains("\"POST /"))
            .count()
    }

    /// An AWS SDK config for this server in `region`, with the harness's fake static
    /// credentials (moto's default account).
    pub fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        let creds = aws_sdk_ecr::config::Credentials::new("testing", "testing", None, None, "test");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(self.endpoint())
                .region(aws_config::Region::new(region.to_string()))
                .credentials_provider(creds)
                .load(),
        )
    }

    /// Environment for the AWS SDK: endpoint, fake static credentials, region, no IMDS.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", DEFAULT_REGION),
            ("AWS_DEFAULT_REGION", DEFAULT_REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Moto {
    /// One call of an AWS JSON-protocol API (ECR, CloudWatch Logs, ...): `service` is the
    /// signing name moto routes by (`ecr`, `logs`), `target` the `X-Amz-Target`
    /// (`Logs_20140328.CreateLogGroup`). moto checks no signature; the credential scope
    /// only names the region. Fails unless moto answers 200.
    pub fn json_call(
        &self,
        service: &str,
        target: &str,
        region: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
        );
        let response = http::send(
            Method::POST,
            &format!("{}/", self.endpoint()),
            None,
            &[
                ("X-Amz-Target", target),
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Authorization", &authorization),
            ],
            Some(serde_json::to_vec(body)?),
        )
        .with_context(|| format!("moto {target}"))?;
        if response.status != 200 {
            anyhow::bail!(
                "moto {target} answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        if response.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&response.body).with_context(|| format!("moto {target} body"))
    }

    /// Creates the log group and stream and puts `lines` there as log events (now).
    pub fn put_log_lines(&self, group: &str, stream: &str, lines: &[String]) -> Result<()> {
        let region = DEFAULT_REGION;
        self.json_call(
            "logs",
            "Logs_20140328.CreateLogGroup",
            region,
            &serde_json::json!({ "logGroupName": group }),
        )?;
        self.json_call(
            "logs",
            "Logs_20140328.CreateLogStream",
            region,
            &serde_json::json!({ "logGroupName": group, "logStreamName": stream }),
        )?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock")?
            .as_millis() as u64;
        let events: Vec<serde_json::Value> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| serde_json::json!({ "timestamp": now + i as u64, "message": line }))
            .collect();
        self.json_call(
            "logs",
            "Logs_20140328.PutLogEvents",
            region,
            &serde_json::json!({ "logGroupName": group, "logStreamName": stream, "logEvents": events }),
        )?;
        Ok(())
    }
}

/// The recorder's file in the server's temp dir.
const RECORDING: &str = "recording.jsonl";

impl Moto {
    /// `POST /moto-api/recorder/<action>`: `start-recording`, `stop-recording`,
    /// `reset-recording`.
    pub fn recorder(&self, action: &str) -> Result<()> {
        let url = format!("{}/moto-api/recorder/{action}", self.endpoint());
        let response = http::send(Method::POST, &url, None, &[], None)?;
        anyhow::ensure!(
            response.status == 200,
            "moto recorder {action}: {}",
            response.status
        );
        Ok(())
    }

    /// The requests recorded so far (`GET /moto-api/recorder/download-recording`): one JSON
    /// object per line with `headers`, `method`, `url`, `body` and `body_encoded`.
    pub fn recording(&self) -> Result<Vec<serde_json::Value>> {
        let url = format!("{}/moto-api/recorder/download-recording", self.endpoint());
        let response = http::send(Method::GET, &url, None, &[], None)?;
        anyhow::ensure!(
            response.status == 200,
            "moto recording: {}",
            response.status
        );
        String::from_utf8_lossy(&response.body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("a recorded request"))
            .collect()
    }

    /// `sts:AssumeRole` of `role_arn` with the harness's credentials: moto issues keys
    /// whose requests act in the role's account.
    pub fn assume_role(&self, role_arn: &str, session: &str) -> Result<Keys> {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config(DEFAULT_REGION));
        let out = crate::block(
            sts.assume_role()
                .role_arn(role_arn)
                .role_session_name(session)
                .send(),
        )
        .with_context(|| format!("AssumeRole {role_arn}"))?;
        let c = out.credentials().context("no credentials")?;
        Ok(Keys {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().to_string(),
        })
    }

    /// An AWS SDK config for this server in `region` with `keys`.
    pub fn sdk_config_with(&self, region: &str, keys: &Keys) -> aws_config::SdkConfig {
        let creds = aws_sdk_ecr::config::Credentials::new(
            keys.access_key_id.clone(),
            keys.secret_access_key.clone(),
            Some(keys.session_token.clone()),
            None,
            "assumed",
        );
        crate::block(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(self.endpoint())
                .region(aws_config::Region::new(region.to_string()))
                .credentials_provider(creds)
                .load(),
        )
    }

    /// The ARN of the identity `keys` belong to (`sts:GetCallerIdentity`), e.g.
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub fn identity(&self, keys: &Keys) -> Result<String> {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config_with(DEFAULT_REGION, keys));
        let out = crate::block(sts.get_caller_identity().send()).context("GetCallerIdentity")?;
        Ok(out.arn().unwrap_or_default().to_string())
    }
}

/// Temporary credentials moto issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret (moto checks no signature).
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
}

/// The registry password moto's `GetAuthorizationToken` hands out for `account`.
pub fn auth_token_password(account: &str) -> String {
    format!("{account}-auth-token")
}

fn moto_command(port: u16) -> Command {
    let port = port.to_string();
    // Prefer the console script; fall back to the module for installs without one.
    let mut command = match process::find_tool("moto_server") {
        Some(path) => Command::new(path),
        None => {
            let mut c = Command::new("python3");
            c.args(["-m", "moto.server"]);
            c
        }
    };
    command.args(["-H", "127.0.0.1", "-p", &port]);
    command.env("PYTHONPATH", python_path());
    command
}

/// `tests/moto` (its `sitecustomize.py` caches the JSONPath parses moto's EventBridge
/// otherwise rebuilds a parser for on every event it routes; see that file) before any
/// PYTHONPATH already set.
fn python_path() -> std::ffi::OsString {
    let ours = process::workspace_root().join("tests").join("moto");
    let mut paths = vec![ours];
    if let Some(given) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&given));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_starts_with_the_jsonpath_cache_first_on_its_python_path() {
        let first = std::env::split_paths(&python_path()).next().unwrap();
        let site = std::fs::read_to_string(first.join("sitecustomize.py")).unwrap();
        assert!(site.contains("lru_cache"), "{}", first.display());
    }
}
