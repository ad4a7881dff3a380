//! Unit tests of the replicator: which identity reads and writes each destination.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::auth::Authenticator;
use crate::registry::{ClientOptions, Endpoints, RegistryClient};

const WRITE: &str = "arn:aws:iam::222222222222:role/ferry-destination-us-west-2";
const READ: &str = "arn:aws:iam::222222222222:role/ferry-destination-read-us-west-2";

fn config(read_role: bool) -> ReplicationConfig {
    let read = if read_role {
        r#", "readRoleArn": "arn:aws:iam::{accountId}:role/ferry-destination-read-{region}""#
    } else {
        ""
    };
    ReplicationConfig::from_json(&format!(
        r#"{{"source": {{"registryId": "111111111111", "region": "us-east-1"}},
            "rules": [{{"destinations": [{{"registryId": "222222222222", "region": "us-west-2",
               "roleArn": "arn:aws:iam::{{accountId}}:role/ferry-destination-{{region}}"{read}}}]}}]}}"#
    ))
    .unwrap()
}

fn replicator(config: &ReplicationConfig, ecr: Option<EcrControl>) -> Replicator {
    let client = RegistryClient::new(
        Authenticator::anonymous(),
        Endpoints::new(),
        ClientOptions::default(),
    )
    .unwrap();
    Replicator::new(
        Copier::new(client, CopyOptions::default()),
        ecr,
        Arc::new(config.clone()),
    )
}

fn listing(r: &Replicator, d: &Destination) -> Option<String> {
    r.listing_role(d).map(|role| role.role_arn)
}

#[test]
fn a_reading_replicator_never_lists_through_write_roles() {
    let without = config(false);
    let destination = without.destinations().unwrap().remove(0);
    let cli = replicator(&without, None);
    assert_eq!(
        listing(&cli, &destination).as_deref(),
        Some(WRITE),
        "the CLI reads through the role"
    );
    assert_eq!(
        listing(
            &replicator(&without, None).reading_without_roles(),
            &destination
        ),
        None
    );

    let with = config(true);
    let destination = with.destinations().unwrap().remove(0);
    assert_eq!(
        destination.read_role_arn.as_deref(),
        Some(READ),
        "placeholders rendered"
    );
    assert_eq!(
        listing(
            &replicator(&with, None).reading_without_roles(),
            &destination
        )
        .as_deref(),
        Some(READ),
        "reconcile reads through the read role"
    );
    assert_eq!(
        listing(
            &replicator(&with, None).preferring_read_roles(),
            &destination
        )
        .as_deref(),
        Some(READ),
        "plan, verify and status too"
    );
    assert_eq!(
        listing(&replicator(&with, None), &destination).as_deref(),
        Some(WRITE),
        "sync and replicate keep the write role"
    );
}

/// A stand-in for STS and ECR on loopback (no real part answers both here with the roles of
/// a test config): every request is answered 400, and the body of every AssumeRole call is
/// kept.
async fn recording_aws() -> (String, Arc<StdMutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let assumed = Arc::new(StdMutex::new(Vec::new()));
    let seen_roles = assumed.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen_roles = seen_roles.clone();
            tokio::spawn(async move {
                // The whole request: headers, then `content-length` bytes of body.
                let mut seen = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        if text.contains("Action=AssumeRole") {
                            let body = text[end + 4..].replace("%3A", ":").replace("%2F", "/");
                            seen_roles.lock().unwrap().push(body);
                        }
                        break;
                    }
                }
                let body = r#"{"__type":"AccessDeniedException","message":"stand-in"}"#;
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, assumed)
}

/// The roles the replicator assumed to read the destination's signing configuration.
async fn roles_assumed_reading_signing(
    read_role: bool,
    mode: fn(Replicator) -> Replicator,
) -> Vec<String> {
    let config = config(read_role);
    let target = config
        .destinations_for("app", Some("v1"))
        .unwrap()
        .remove(0);
    let (url, assumed) = recording_aws().await;
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .load()
        .await;
    let ecr = EcrControl::new(crate::aws::AwsContext::new(base));
    let r = mode(replicator(&config, Some(ecr)));
    let limit = std::time::Duration::from_secs(60);
    let signs = tokio::time::timeout(limit, r.destination_signs(&target)).await;
    assert_eq!(
        signs.expect("answered"),
        None,
        "the stand-in denies everything"
    );
    let bodies = assumed.lock().unwrap().clone();
    [WRITE, READ]
        .into_iter()
        .filter(|role| {
            bodies.iter().any(|b| {
                b.contains(&format!("RoleArn={role}&")) || b.ends_with(&format!("RoleArn={role}"))
            })
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn reading_the_signing_configuration_never_assumes_a_write_role() {
    // Reconcile's replicator: no read role, its own identity; a read role, only that.
    assert!(
        roles_assumed_reading_signing(false, Replicator::reading_without_roles)
            .await
            .is_empty()
    );
    assert_eq!(
        roles_assumed_reading_signing(true, Replicator::reading_without_roles).await,
        [READ]
    );
    // The copying replicator reads through the write role (the stand-in sees it).
    assert_eq!(roles_assumed_reading_signing(true, |r| r).await, [WRITE]);
}
