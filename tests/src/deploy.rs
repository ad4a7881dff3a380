//! The deploy rehearsal's tools: `tests/rehearsal/deploy.py` (docs/deploy.md's steps against
//! moto's CloudFormation) run with aws-sam-cli's Python, and what the deployed stacks made,
//! read back through moto's Lambda API as the Lambda service would read it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::Value;

use crate::http;
use crate::moto::{DEFAULT_REGION, Moto};
use crate::process;

/// The Python interpreter of the `sam` command on PATH (aws-sam-cli's virtualenv, which has
/// samtranslator and boto3): the first word of its `#!` line.
pub fn sam_python() -> Result<PathBuf> {
    let sam = process::require_tool("sam")?;
    let text = std::fs::read(&sam).with_context(|| format!("reading {}", sam.display()))?;
    let first = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let interpreter = first
        .strip_prefix("#!")
        .and_then(|l| l.split_whitespace().next())
        .filter(|p| p.contains("python"))
        .ok_or_else(|| anyhow!("{}: not a Python console script ({first:?})", sam.display()))?;
    Ok(PathBuf::from(interpreter))
}

/// Runs `tests/rehearsal/deploy.py` against `moto` with `spec` on its stdin (the operator's
/// credentials: moto's default account); its report.
pub fn deploy(moto: &Moto, spec: &Value) -> Result<Value> {
    let script = process::workspace_root().join("tests/rehearsal/deploy.py");
    let mut command = Command::new(sam_python()?);
    command
        .arg(&script)
        .envs(moto.aws_env())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("starting deploy.py")?;
    child
        .stdin
        .take()
        .context("deploy.py stdin")?
        .write_all(spec.to_string().as_bytes())?;
    let out = child.wait_with_output().context("deploy.py")?;
    if !out.status.success() {
        bail!(
            "deploy.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("deploy.py's report")
}

fn lambda_get(moto: &Moto, path: &str) -> Result<Value> {
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{DEFAULT_REGION}/lambda/aws4_request, SignedHeaders=host, Signature=0"
    );
    let url = format!("{}/2015-03-31/{path}", moto.endpoint());
    let response = http::send(
        Method::GET,
        &url,
        None,
        &[("Authorization", &authorization)],
        None,
    )?;
    if response.status != 200 {
        bail!(
            "moto GET {path}: {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    serde_json::from_slice(&response.body).with_context(|| format!("moto GET {path}"))
}

/// A deployed function's configuration (`lambda:GetFunctionConfiguration`): `Role`,
/// `Timeout`, `Environment.Variables`...
pub fn function_configuration(moto: &Moto, name: &str) -> Result<Value> {
    lambda_get(moto, &format!("functions/{name}/configuration"))
}

/// The event source mappings of a deployed function (`lambda:ListEventSourceMappings`).
pub fn event_source_mappings(moto: &Moto, function: &str) -> Result<Vec<Value>> {
    let out = lambda_get(
        moto,
        &format!("event-source-mappings/?FunctionName={function}"),
    )?;
    Ok(out["EventSourceMappings"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// One row of the rehearsal's resource table: a resource type of a stack and what moto's
/// CloudFormation did with its resources (`created`, `not-created: condition`,
/// `not-supported`), with how many.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    /// The template (`hub`, `organization-reader`, `destination`, `forwarder`).
    pub template: String,
    /// `AWS::SQS::Queue`.
    pub resource_type: String,
    /// What moto did.
    pub status: String,
    /// The logical ids (of the first stack of the template, the StackSet's instances all
    /// having the same).
    pub logical: Vec<String>,
}

/// The report's resource table by template and type. Every instance of a template must
/// agree (the StackSet's four instances): otherwise it fails.
pub fn resource_table(report: &Value) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    let mut first_of: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    for stack in report["stacks"].as_array().context("report: stacks")? {
        let template = match stack["name"].as_str().unwrap_or_default() {
            "ferry" => "hub",
            "ferry-organization-reader" => "organization-reader",
            "StackSet ferry-destination" => "destination",
            "ferry-forwarder" => "forwarder",
            other => bail!("report: unknown stack {other}"),
        };
        let mut mine: Vec<Row> = Vec::new();
        for r in stack["resources"].as_array().context("resources")? {
            let (t, s, l) = (
                r["type"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
                r["logical"].as_str().unwrap_or_default(),
            );
            match mine
                .iter_mut()
                .find(|x| x.resource_type == t && x.status == s)
            {
                Some(row) => row.logical.push(l.to_string()),
                None => mine.push(Row {
                    template: template.to_string(),
                    resource_type: t.to_string(),
                    status: s.to_string(),
                    logical: vec![l.to_string()],
                }),
            }
        }
        mine.sort();
        match first_of.get(template) {
            Some(seen) if *seen != mine => bail!(
                "{template} in {} {}: {mine:?}, another instance: {seen:?}",
                stack["account"],
                stack["region"]
            ),
            Some(_) => {}
            None => {
                first_of.insert(template.to_string(), mine.clone());
                rows.extend(mine);
            }
        }
    }
    Ok(rows)
}
