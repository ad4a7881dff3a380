//! Unit tests of the authenticator: schemes per host, token reuse and refresh, routes.

use super::*;
use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};

struct CountingTokens(AtomicUsize);

#[async_trait]
impl EcrTokenSource for CountingTokens {
    async fn token(
        &self,
        registry: &EcrRegistry,
        _role: Option<&crate::aws::AssumeRole>,
    ) -> Result<EcrToken, Error> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(EcrToken {
            username: "AWS".into(),
            password: Secret::new(format!("{}-token-{n}", registry.account)),
            expires_at: SystemTime::now() + Duration::from_secs(12 * 3600),
        })
    }
}

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

#[tokio::test]
async fn ecr_token_is_cached_and_refreshed_on_401() {
    let tokens = Arc::new(CountingTokens(AtomicUsize::new(0)));
    let auth = Authenticator::new(DockerConfig::default(), Some(tokens.clone()));
    let h1 = auth
        .header(ECR, "repository:a:pull")
        .await
        .expect("ok")
        .expect("header");
    let h2 = auth
        .header(ECR, "repository:b:pull")
        .await
        .expect("ok")
        .expect("header");
    assert_eq!(h1, h2);
    assert_eq!(tokens.0.load(Ordering::SeqCst), 1, "cached");
    let http = reqwest::Client::new();
    let h3 = auth
        .unauthorized(
            &http,
            ECR,
            &url::Url::parse(&format!("https://{ECR}/")).expect("url"),
            "repository:a:pull",
            Some("Basic realm=\"x\""),
        )
        .await
        .expect("ok")
        .expect("header");
    assert_ne!(h1, h3, "a 401 mints a new token");
    assert_eq!(tokens.0.load(Ordering::SeqCst), 2);
    assert_eq!(format!("{h3:?}"), "<redacted>");
}

/// Counts like [`CountingTokens`], taking a while to answer as the real API does.
struct SlowTokens(CountingTokens);

#[async_trait]
impl EcrTokenSource for SlowTokens {
    async fn token(
        &self,
        registry: &EcrRegistry,
        role: Option<&crate::aws::AssumeRole>,
    ) -> Result<EcrToken, Error> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.token(registry, role).await
    }
}

#[tokio::test]
async fn concurrent_first_requests_mint_one_ecr_token() {
    let tokens = Arc::new(SlowTokens(CountingTokens(AtomicUsize::new(0))));
    let auth = Arc::new(Authenticator::new(
        DockerConfig::default(),
        Some(tokens.clone()),
    ));
    let calls = (0..30).map(|i| {
        let auth = auth.clone();
        tokio::spawn(async move { auth.header(ECR, &format!("repository:r{i}:pull")).await })
    });
    let headers: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|h| h.expect("joined").expect("ok").expect("header"))
        .collect();
    assert!(headers.iter().all(|h| *h == headers[0]));
    assert_eq!(
        tokens.0.0.load(Ordering::SeqCst),
        1,
        "one token for 30 callers"
    );
    assert_eq!(auth.ecr_tokens_minted(ECR).await, 1);
    // Thirty requests answered 401 on one expiry refresh once, not thirty times.
    let http = reqwest::Client::new();
    let endpoint = url::Url::parse(&format!("https://{ECR}/")).expect("url");
    let refreshes = (0..30).map(|_| {
        auth.unauthorized(
            &http,
            ECR,
            &endpoint,
            "repository:a:pull",
            Some("Basic realm=\"x\""),
        )
    });
    for h in futures::future::join_all(refreshes).await {
        assert_ne!(h.expect("ok").expect("header"), headers[0]);
    }
    assert_eq!(tokens.0.0.load(Ordering::SeqCst), 2);
    assert_eq!(auth.ecr_tokens_minted(ECR).await, 2);
}

#[tokio::test]
async fn anonymous_hosts_send_nothing() {
    let auth = Authenticator::anonymous();
    assert!(
        auth.header("127.0.0.1:5000", "")
            .await
            .expect("ok")
            .is_none()
    );
    auth.mark_anonymous("127.0.0.1:5000", "").await;
    assert!(
        auth.header("127.0.0.1:5000", "")
            .await
            .expect("ok")
            .is_none()
    );
}

#[tokio::test]
async fn explicit_credentials_win() {
    let auth = Authenticator::anonymous().with_credential("h.io", Credential::basic("u", "p"));
    let h = auth.header("h.io", "").await.expect("ok").expect("header");
    assert_eq!(h.expose(), "Basic dTpw");
}

/// Records the role of every token it mints.
#[derive(Default)]
struct RoleTokens(std::sync::Mutex<Vec<Option<String>>>);

#[async_trait]
impl EcrTokenSource for RoleTokens {
    async fn token(
        &self,
        _registry: &EcrRegistry,
        role: Option<&crate::aws::AssumeRole>,
    ) -> Result<EcrToken, Error> {
        let arn = role.map(|r| r.role_arn.clone());
        self.0.lock().unwrap().push(arn.clone());
        Ok(EcrToken {
            username: "AWS".into(),
            password: Secret::new(format!("token-of-{}", arn.unwrap_or_default())),
            expires_at: SystemTime::now() + Duration::from_secs(12 * 3600),
        })
    }
}

#[tokio::test]
async fn two_destinations_on_one_host_each_use_their_own_credential() {
    // What the templates `a/{repository}` and `b/{repository}` match.
    let t = |s: &str| regex::Regex::new(s).unwrap();
    let secret = |u: &str| CredentialSource::Static(Credential::basic(u, "p"));
    let auth = Authenticator::anonymous()
        .with_route("h.io", Some(t("^a/.+$")), secret("alice"))
        .with_route("h.io", Some(t("^b/.+$")), secret("bob"));
    let user = |h: Option<Secret>| {
        let b64 = h
            .expect("header")
            .expose()
            .trim_start_matches("Basic ")
            .to_string();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    let a = auth
        .header("h.io", "repository:a/app:pull,push")
        .await
        .unwrap();
    let b = auth
        .header("h.io", "repository:b/app:pull,push")
        .await
        .unwrap();
    assert_eq!(user(a), "alice:p");
    assert_eq!(
        user(b),
        "bob:p",
        "the second destination is not overwritten"
    );
    assert!(
        auth.header("h.io", "repository:c/app:pull")
            .await
            .unwrap()
            .is_none(),
        "a repository no destination renders gets neither"
    );

    let tokens = Arc::new(RoleTokens::default());
    let role = |name: &str| {
        CredentialSource::Role(crate::aws::AssumeRole {
            role_arn: format!("arn:aws:iam::123456789012:role/{name}"),
            external_id: None,
        })
    };
    let auth = Authenticator::new(DockerConfig::default(), Some(tokens.clone()))
        .with_route(ECR, Some(t("^a/.+$")), role("writer-a"))
        .with_route(ECR, Some(t("^b/.+$")), role("writer-b"));
    let ha = auth.header(ECR, "repository:a/x:pull,push").await.unwrap();
    let hb = auth.header(ECR, "repository:b/x:pull,push").await.unwrap();
    let hs = auth.header(ECR, "repository:src:pull").await.unwrap();
    assert_ne!(ha, hb);
    assert_ne!(ha, hs);
    let mut minted = tokens.0.lock().unwrap().clone();
    minted.sort();
    assert_eq!(
        minted,
        [
            None,
            Some("arn:aws:iam::123456789012:role/writer-a".to_string()),
            Some("arn:aws:iam::123456789012:role/writer-b".to_string()),
        ],
        "one token per role, and the source read with the process's own identity"
    );
}
