//! `find_signatures` and `check` against a tiny registry on loopback: fixed answers per
//! path, one request per connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{cosign_payload, cosign_sign, cosign_verifiers, digest, p256};
use crate::auth::Authenticator;
use crate::digest::Digest;
use crate::gate::signature::*;
use crate::registry::{ClientOptions, Endpoints, RegistryClient, Repo};

/// Answers by `METHOD /path` (query dropped): content type and body.
type Routes = HashMap<String, (String, Vec<u8>)>;

async fn serve(routes: Routes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        // Bounded: a test makes a few dozen requests at most.
        for _ in 0..200 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&seen).to_string();
                let line = head.lines().next().unwrap_or_default();
                let mut parts = line.split(' ');
                let method = parts.next().unwrap_or_default();
                let path = parts.next().unwrap_or_default().split('?').next().unwrap();
                let lookup = if method == "HEAD" { "GET" } else { method };
                let answer = match routes.get(&format!("{lookup} {path}")) {
                    Some((content_type, body)) => {
                        let mut answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ndocker-content-digest: {}\r\nconnection: close\r\n\r\n",
                            body.len(),
                            Digest::of(body)
                        )
                        .into_bytes();
                        if method != "HEAD" {
                            answer.extend_from_slice(body);
                        }
                        answer
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = socket.write_all(&answer).await;
            });
        }
    });
    host
}

fn client() -> RegistryClient {
    RegistryClient::new(
        Authenticator::anonymous(),
        Endpoints::new(),
        ClientOptions::default(),
    )
    .unwrap()
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A signature manifest with one layer (`blob`, of `media_type`, `annotations`); its
/// bytes, and the routes for it and its blob added to `routes`.
fn add_signature(
    routes: &mut Routes,
    blob: &[u8],
    media_type: &str,
    annotations: serde_json::Value,
    artifact_type: Option<&str>,
) -> Vec<u8> {
    let empty = b"{}";
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(empty).as_str(), "size": 2},
        "layers": [{"mediaType": media_type, "digest": Digest::of(blob).as_str(), "size": blob.len(), "annotations": annotations}],
        "subject": {"mediaType": MANIFEST, "digest": digest().as_str(), "size": 100},
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = json!(t);
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    routes.insert(
        format!("GET /v2/app/manifests/{}", Digest::of(&bytes)),
        (MANIFEST.into(), bytes.clone()),
    );
    routes.insert(
        format!("GET /v2/app/blobs/{}", Digest::of(blob)),
        ("application/octet-stream".into(), blob.to_vec()),
    );
    bytes
}

/// The referrers API's answer for `digest()`: `manifests`.
fn add_referrers(routes: &mut Routes, manifests: serde_json::Value) {
    let listing = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
    routes.insert(
        format!("GET /v2/app/referrers/{}", digest()),
        (INDEX.into(), serde_json::to_vec(&listing).unwrap()),
    );
}

/// `check` of `digest()` under `key`, now.
async fn check_under(key: &rcgen::KeyPair, client: &RegistryClient, repo: &Repo) -> Outcome {
    check(
        &cosign_verifiers(key),
        client,
        repo,
        &digest(),
        SystemTime::now(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn cosign_tag_and_referrers_are_found_and_checked() {
    let key = p256();
    let payload = cosign_payload(digest().as_str(), COSIGN_SIGNATURE_TYPE);
    let mut routes = Routes::new();
    // The tag a cosign signature lives at, signed by the trusted key.
    let sig = add_signature(
        &mut routes,
        &payload,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        json!({COSIGN_SIGNATURE_ANNOTATION: cosign_sign(&key, &payload)}),
        None,
    );
    routes.insert(
        format!("GET /v2/app/manifests/{}.sig", digest().fallback_tag()),
        (MANIFEST.into(), sig),
    );
    // A referrer of Notation's type whose envelope is garbage.
    let notation = add_signature(
        &mut routes,
        b"not an envelope",
        JWS_MEDIA_TYPE,
        json!({}),
        Some(NOTATION_ARTIFACT_TYPE),
    );
    add_referrers(
        &mut routes,
        json!([
            {"mediaType": MANIFEST, "digest": Digest::of(&notation).as_str(), "size": notation.len(), "artifactType": NOTATION_ARTIFACT_TYPE},
            {"mediaType": MANIFEST, "digest": Digest::of(b"x").as_str(), "size": 10, "artifactType": "application/spdx+json"},
        ]),
    );
    let host = serve(routes).await;
    let repo = Repo::new(host, "app");
    let client = client();

    let found = find_signatures(&client, &repo, &digest()).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(matches!(&found[0], Candidate::Cosign { .. }));
    assert!(matches!(&found[1], Candidate::Notation { .. }));

    let trusted = Outcome::Trusted {
        by: "cosign key".into(),
    };
    assert_eq!(check_under(&key, &client, &repo).await, trusted);
    // Under another key: both rejected, each with its reason.
    match check_under(&p256(), &client, &repo).await {
        Outcome::Rejected { reasons } => {
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            assert!(reasons[0].contains("does not verify"), "{reasons:?}");
            assert!(reasons[1].contains("unsupported"), "{reasons:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unsigned_image_has_no_signature() {
    let mut routes = Routes::new();
    add_referrers(&mut routes, json!([]));
    let host = serve(routes).await;
    let repo = Repo::new(host, "app");
    assert_eq!(
        check_under(&p256(), &client(), &repo).await,
        Outcome::Rejected {
            reasons: vec!["no signature".into()]
        }
    );
}

#[tokio::test]
async fn oversized_signature_manifests_are_not_read() {
    let mut routes = Routes::new();
    add_referrers(
        &mut routes,
        json!([
            {"mediaType": MANIFEST, "digest": Digest::of(b"big").as_str(), "size": 10_000_000, "artifactType": COSIGN_ARTIFACT_TYPE},
        ]),
    );
    let host = serve(routes).await;
    let found = find_signatures(&client(), &Repo::new(host, "app"), &digest())
        .await
        .unwrap();
    match found.as_slice() {
        [
            Candidate::Unreadable {
                rejection: Rejection::Malformed(m),
                ..
            },
        ] => {
            assert!(m.contains("more than"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}
