//! The AWS calls a run really made, from moto's request recorder ([`crate::Moto::recording`]),
//! checked against `infra/check/calls.json`, the table of every call each function role
//! makes (which `infra/check/tests/calls.rs` evaluates against the rendered IAM policies).
//!
//! A recorded request names its caller by the access key of its SigV4 `Authorization`
//! header, its service by the credential scope, and its operation by `X-Amz-Target` (JSON
//! protocols: ECR, SQS, SSM, EventBridge, Organizations) or the form body's `Action`
//! (query protocols: STS). Registry API traffic (pushes, pulls) goes to the registries,
//! not to AWS, and is not in the recording.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use serde_json::Value;

/// One recorded AWS API request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// The access key that signed it.
    pub access_key: String,
    /// The signing name (`ecr`, `sqs`, `sts`...).
    pub service: String,
    /// The API operation (`SendMessageBatch`).
    pub operation: String,
    /// What it was made on, when the request names it plainly (queue URL, parameter name,
    /// role ARN, repository), else empty.
    pub resource: String,
}

impl Call {
    /// The IAM action that authorizes the call, `None` for calls no policy governs
    /// (`sts:GetCallerIdentity`).
    pub fn iam_action(&self) -> Option<String> {
        iam_action(&self.service, &self.operation)
    }
}

/// The IAM action of an operation: the operation's own name except for SQS's batch
/// operations, which are authorized by their single-message actions, and
/// `sts:GetCallerIdentity`, which needs no permission.
pub fn iam_action(service: &str, operation: &str) -> Option<String> {
    let action = match (service, operation) {
        ("sts", "GetCallerIdentity") => return None,
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        (_, op) => op,
    };
    Some(format!("{service}:{action}"))
}

fn header<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn body(entry: &Value) -> Result<String> {
    let raw = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"].as_bool().unwrap_or(false) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .context("a recorded body")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        Ok(raw.to_string())
    }
}

fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The call a recorded request made; `None` for requests that are not AWS API calls
/// (moto's own `/moto-api/` endpoints, unsigned requests).
pub fn parse(entry: &Value) -> Result<Option<Call>> {
    let url = entry["url"].as_str().unwrap_or_default();
    if url.contains("/moto-api/") {
        return Ok(None);
    }
    let Some(auth) = header(entry, "Authorization") else {
        return Ok(None);
    };
    let scope = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split([',', ' ']).next())
        .ok_or_else(|| anyhow!("{url}: no credential scope in {auth:?}"))?;
    // AKID/date/region/service/aws4_request
    let parts: Vec<&str> = scope.split('/').collect();
    anyhow::ensure!(parts.len() == 5, "{url}: credential scope {scope:?}");
    let (access_key, service) = (parts[0].to_string(), parts[3].to_string());
    let body = body(entry)?;
    let (operation, resource) = match header(entry, "X-Amz-Target") {
        Some(target) => {
            let op = target.rsplit('.').next().unwrap_or(target).to_string();
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let resource = ["QueueUrl", "Name", "repositoryName", "ParentId"]
                .iter()
                .find_map(|k| json[*k].as_str())
                .or_else(|| json["Entries"][0]["EventBusName"].as_str())
                .unwrap_or_default()
                .to_string();
            (op, resource)
        }
        None => {
            let op = form_value(&body, "Action")
                .ok_or_else(|| anyhow!("{url}: neither X-Amz-Target nor Action: {body:?}"))?;
            (op, form_value(&body, "RoleArn").unwrap_or_default())
        }
    };
    Ok(Some(Call {
        access_key,
        service,
        operation,
        resource,
    }))
}

/// Every AWS call of a recording.
pub fn parse_all(recording: &[Value]) -> Result<Vec<Call>> {
    Ok(recording
        .iter()
        .map(parse)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// The calls of a recording by the role that made them, as `infra/check/calls.json` names
/// roles: `functions` maps the access keys a run gave its functions to their roles;
/// every other key is one moto issued for an assumed role, named by `assumed` from the
/// role's name (the identity moto gives the key). The harness's own key, `testing`, is
/// left out. A key of neither kind fails: a call nobody can answer for.
pub fn by_role(
    moto: &crate::Moto,
    calls: Vec<Call>,
    functions: &BTreeMap<String, &'static str>,
    assumed: impl Fn(&str) -> Option<&'static str>,
) -> Result<BTreeMap<&'static str, Vec<Call>>> {
    let mut roles: BTreeMap<String, &'static str> = functions.clone();
    let mut out: BTreeMap<&'static str, Vec<Call>> = BTreeMap::new();
    for call in calls {
        if call.access_key == HARNESS_KEY {
            continue;
        }
        let role = match roles.get(&call.access_key) {
            Some(role) => *role,
            None => {
                let keys = crate::moto::Keys {
                    access_key_id: call.access_key.clone(),
                    secret_access_key: "unused".into(),
                    session_token: "unused".into(),
                };
                let arn = moto.identity(&keys)?;
                let name = arn.split('/').nth(1).unwrap_or_default();
                let role = assumed(name).ok_or_else(|| {
                    anyhow!(
                        "a call by {}, {arn}: no function's and no role Ferry assumes",
                        call.access_key
                    )
                })?;
                roles.insert(call.access_key.clone(), role);
                role
            }
        };
        out.entry(role).or_default().push(call);
    }
    Ok(out)
}

/// The access key of the harness's own requests ([`crate::Moto::sdk_config`]).
pub const HARNESS_KEY: &str = "testing";

/// `infra/check/calls.json`: (role, action) pairs, the role as the templates name it
/// (`ReplicateRole`, `AssumeRole` of the destination stack...), over every stack variant.
#[derive(Clone, Debug, Default)]
pub struct Table {
    granted: BTreeSet<(String, String)>,
}

impl Table {
    /// Reads the workspace's `infra/check/calls.json`.
    pub fn load() -> Result<Table> {
        let path = crate::process::workspace_root().join("infra/check/calls.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Table::from_json(&serde_json::from_str(&text)?)
    }

    /// From the table's JSON.
    pub fn from_json(doc: &Value) -> Result<Table> {
        let calls = doc["calls"].as_array().context("calls.json: no calls")?;
        let mut granted = BTreeSet::new();
        for c in calls {
            let field = |k: &str| {
                c[k].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("calls.json: {c}: no {k}"))
            };
            granted.insert((field("role")?, field("action")?));
        }
        Ok(Table { granted })
    }

    /// Whether the table lists `action` for `role`.
    pub fn grants(&self, role: &str, action: &str) -> bool {
        self.granted
            .contains(&(role.to_string(), action.to_string()))
    }

    /// Each recorded call of `role` whose IAM action the table does not list for that role,
    /// as `role: action (operation on resource)`, sorted and without repeats.
    pub fn missing<'a>(
        &self,
        role: &str,
        calls: impl IntoIterator<Item = &'a Call>,
    ) -> Vec<String> {
        let mut out = BTreeSet::new();
        for call in calls {
            if let Some(action) = call.iam_action()
                && !self.grants(role, &action)
            {
                out.insert(format!(
                    "{role}: {action} ({} on {:?}) is not in infra/check/calls.json",
                    call.operation, call.resource
                ));
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(target: Option<&str>, service: &str, body: &str) -> Value {
        let mut headers = json!({
            "Authorization": format!(
                "AWS4-HMAC-SHA256 Credential=ASIAKEY/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            )
        });
        if let Some(t) = target {
            headers["X-Amz-Target"] = json!(t);
        }
        json!({"headers": headers, "method": "POST", "url": "http://127.0.0.1:1/", "body": body, "body_encoded": false})
    }

    #[test]
    fn json_and_query_requests_name_their_operation_and_action() {
        let send = parse(&recorded(
            Some("AmazonSQS.SendMessageBatch"),
            "sqs",
            r#"{"QueueUrl": "https://q/jobs.fifo", "Entries": []}"#,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                send.access_key.as_str(),
                send.operation.as_str(),
                send.resource.as_str()
            ),
            ("ASIAKEY", "SendMessageBatch", "https://q/jobs.fifo")
        );
        assert_eq!(send.iam_action().as_deref(), Some("sqs:SendMessage"));
        let assume = parse(&recorded(
            None,
            "sts",
            "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&Version=2011-06-15",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(assume.iam_action().as_deref(), Some("sts:AssumeRole"));
        assert_eq!(assume.resource, "arn:aws:iam::1:role/r");
        let who = parse(&recorded(
            None,
            "sts",
            "Action=GetCallerIdentity&Version=2011-06-15",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            who.iam_action(),
            None,
            "GetCallerIdentity needs no permission"
        );
        let moto_api =
            json!({"headers": {}, "url": "http://127.0.0.1:1/moto-api/reset", "body": ""});
        assert_eq!(parse(&moto_api).unwrap(), None);
    }

    /// The check can fail: a call the table does not list for the role is named.
    #[test]
    fn a_call_missing_from_the_table_is_named() {
        let table = Table::from_json(&json!({"calls": [
            {"stack": "hub", "role": "DispatchRole", "action": "sqs:SendMessage"},
            {"stack": "hub", "role": "ReplicateRole", "action": "ecr:PutImage"}
        ]}))
        .unwrap();
        let calls = [
            parse(&recorded(Some("AmazonSQS.SendMessageBatch"), "sqs", "{}"))
                .unwrap()
                .unwrap(),
            parse(&recorded(
                Some("AmazonEC2ContainerRegistry_V20150921.PutImage"),
                "ecr",
                r#"{"repositoryName": "golden/app"}"#,
            ))
            .unwrap()
            .unwrap(),
        ];
        assert_eq!(
            table.missing("DispatchRole", &calls),
            vec![
                "DispatchRole: ecr:PutImage (PutImage on \"golden/app\") is not in infra/check/calls.json"
                    .to_string()
            ]
        );
        assert!(table.missing("ReplicateRole", &calls[1..]).is_empty());
    }

    #[test]
    fn the_workspace_table_loads() {
        let table = Table::load().unwrap();
        assert!(table.grants("ReplicateRole", "ecr:PutImage"));
        assert!(!table.grants("DispatchRole", "ecr:PutImage"));
    }
}
