//! Tests of the sandbox itself (no `ferry` needed): registries, fixtures, skopeo, moto
//! and the fault proxy behave as the end-to-end tests assume.

use ferry_e2e::fixtures::{self, Fixture};
use ferry_e2e::http::{self, MANIFEST_ACCEPT};
use ferry_e2e::proxy::{CutRule, InjectRule, PathKind, Proxy};
use ferry_e2e::{Credentials, DockerConfig, EcrRegistry, Moto, Registry, skopeo};
use reqwest::Method;

fn assert_pushed(registry: &Registry, fixture: &Fixture) {
    let creds = registry.credentials();
    let digest = skopeo::inspect_raw_digest(&fixture.reference, creds).expect("skopeo inspect");
    assert_eq!(
        digest, fixture.digest,
        "{} digest as built",
        fixture.reference
    );
    for manifest in fixture.manifests.iter().chain(&fixture.referrers) {
        assert_eq!(
            registry
                .manifest_digest(&fixture.repo, manifest)
                .expect("HEAD manifest")
                .as_deref(),
            Some(manifest.as_str()),
            "manifest {manifest} present"
        );
    }
    for blob in fixture.blobs.iter().chain(&fixture.referrer_blobs) {
        assert!(
            registry
                .has_blob(&fixture.repo, &blob.digest)
                .expect("HEAD blob"),
            "blob {} present",
            blob.digest
        );
    }
    let tags = registry.tags(&fixture.repo).expect("tags");
    for tag in std::iter::once(&fixture.tag).chain(&fixture.extra_tags) {
        assert!(tags.contains(tag), "tag {tag} in {tags:?}");
    }
    skopeo::copy_to_oci_dir(&fixture.reference, creds).expect("skopeo copy to oci dir");
}

#[test]
fn every_fixture_kind_pushes_with_digests_as_built() {
    let plain = Registry::start().expect("plain registry");
    let auth = Registry::start_with_auth("alice", "s3cret").expect("htpasswd registry");
    for registry in [&plain, &auth] {
        let built = [
            fixtures::single_image(registry, "single", "v1", 1),
            fixtures::oci_index(registry, "multi/oci", "v1", 2),
            fixtures::docker_manifest_list(registry, "multi/docker", "v1", 3),
            fixtures::signed_index(registry, "signed", "v1", 4),
            fixtures::image_with_referrer(registry, "referred", "v1", 5),
            fixtures::config_only_artifact(registry, "artifact", "v1", 6),
        ];
        for (kind, fixture) in built.into_iter().enumerate() {
            let fixture = fixture.unwrap_or_else(|err| panic!("fixture #{kind}: {err:#}"));
            assert_pushed(registry, &fixture);
        }
    }
}

#[test]
fn fixtures_are_deterministic_per_seed() {
    let a = Registry::start().expect("registry a");
    let b = Registry::start().expect("registry b");
    let one = fixtures::oci_index(&a, "x", "v1", 42).expect("fixture a");
    let two = fixtures::oci_index(&b, "x", "v1", 42).expect("fixture b");
    let three = fixtures::oci_index(&b, "x", "v2", 43).expect("fixture b2");
    assert_eq!(one.digest, two.digest);
    assert_ne!(one.digest, three.digest);
    assert_eq!(one.manifests.len(), 3);
    assert_eq!(
        one.blobs.len(),
        5,
        "shared layer counted once: {:?}",
        one.blobs
    );
}

#[test]
fn referrer_fallback_tag_lists_the_referrer() {
    let registry = Registry::start().expect("registry");
    let fixture = fixtures::image_with_referrer(&registry, "app", "v1", 7).expect("fixture");
    let tag = &fixture.extra_tags[0];
    assert_eq!(
        *tag,
        format!("sha256-{}", fixture.digest.trim_start_matches("sha256:"))
    );
    let (media_type, bytes) = registry
        .manifest("app", tag)
        .expect("GET fallback")
        .expect("fallback index present");
    assert_eq!(media_type, fixtures::media::OCI_INDEX);
    let index: serde_json::Value = serde_json::from_slice(&bytes).expect("index JSON");
    assert_eq!(index["manifests"][0]["digest"], fixture.referrers[0]);
    assert_eq!(index["manifests"][0]["artifactType"], fixtures::media::SPDX);
    let (_, referrer) = registry
        .manifest("app", &fixture.referrers[0])
        .expect("GET referrer")
        .expect("referrer present");
    let referrer: serde_json::Value = serde_json::from_slice(&referrer).expect("referrer JSON");
    assert_eq!(referrer["subject"]["digest"], fixture.digest);
}

#[test]
fn corrupted_blob_keeps_its_size_and_fails_verification() {
    let registry = Registry::start().expect("registry");
    let fixture = fixtures::single_image(&registry, "app", "v1", 8).expect("fixture");
    let layer = fixture.largest_blob().expect("a layer").clone();
    let path = registry.blob_path(&layer.digest);
    let before = std::fs::metadata(&path).expect("blob on disk").len();
    registry.corrupt_blob(&layer.digest).expect("corrupt");
    assert_eq!(
        std::fs::metadata(&path).expect("blob on disk").len(),
        before
    );
    let err = skopeo::copy_to_oci_dir(&fixture.reference, None).expect_err("must fail");
    assert!(
        format!("{err:#}").to_lowercase().contains("digest"),
        "{err:#}"
    );
}

#[test]
fn moto_token_opens_the_ecr_shaped_registry() {
    let moto = Moto::start().expect("moto");
    let ecr = EcrRegistry::start_default().expect("ecr registry");
    let response = http::send(
        Method::POST,
        &format!("{}/", moto.endpoint()),
        None,
        &[
            ("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"),
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=0",
            ),
        ],
        Some(b"{}".to_vec()),
    )
    .expect("GetAuthorizationToken");
    assert_eq!(response.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    let token = body["authorizationData"][0]["authorizationToken"]
        .as_str()
        .expect("token");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64");
    let decoded = String::from_utf8(decoded).expect("utf8");
    let (user, password) = decoded.split_once(':').expect("user:password");
    assert_eq!(user, "AWS");
    assert_eq!(password, "123456789012-auth-token");
    assert_eq!(
        body["authorizationData"][0]["proxyEndpoint"],
        format!("https://{}", ecr.ecr_host())
    );
    let base = format!("{}/v2/", ecr.registry().url());
    let creds = Credentials::new(user, password);
    assert_eq!(
        http::send(Method::GET, &base, Some(&creds), &[], None)
            .expect("GET /v2/")
            .status,
        200
    );
    assert_eq!(
        http::send(Method::GET, &base, None, &[], None)
            .expect("GET /v2/")
            .status,
        401
    );
    assert_eq!(
        ecr.endpoint_override(),
        format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com={}",
            ecr.registry().url()
        )
    );
}

#[test]
fn docker_config_is_what_skopeo_reads() {
    let registry = Registry::start_with_auth("bob", "pw").expect("registry");
    let fixture = fixtures::single_image(&registry, "app", "v1", 9).expect("fixture");
    let config = DockerConfig::for_registries(&[&registry]).expect("docker config");
    let output = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(config.config_path())
        .arg(format!("docker://{}", fixture.reference))
        .output()
        .expect("skopeo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(skopeo::sha256_digest(&output.stdout), fixture.digest);
}

#[test]
fn proxy_forwards_pushes_and_pulls() {
    let registry = Registry::start_with_auth("carol", "pw").expect("registry");
    let proxy = Proxy::start(&registry).expect("proxy");
    let target = fixtures::Target {
        host: proxy.host(),
        credentials: registry.credentials().cloned(),
    };
    // Pushing through the proxy exercises streamed PUT bodies and Location rewriting.
    let fixture = fixtures::oci_index(target, "via/proxy", "v1", 10).expect("push via proxy");
    assert!(proxy.count("POST", PathKind::BlobUpload) > 0);
    assert!(proxy.count("PUT", PathKind::Manifest) >= 3);
    assert_eq!(
        registry
            .manifest_digest("via/proxy", "v1")
            .expect("HEAD")
            .as_deref(),
        Some(fixture.digest.as_str())
    );
    proxy.reset_counts();
    skopeo::copy_to_oci_dir(&fixture.reference, registry.credentials()).expect("pull via proxy");
    assert!(proxy.count("GET", PathKind::Blob) >= fixture.blobs.len());
    // HEAD keeps Content-Length and the digest header.
    let blob = &fixture.blobs[0];
    let head = http::send(
        Method::HEAD,
        &format!("{}/v2/via/proxy/blobs/{}", proxy.url(), blob.digest),
        registry.credentials(),
        &[],
        None,
    )
    .expect("HEAD blob");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(blob.size.to_string().as_str())
    );
    let manifest = http::send(
        Method::HEAD,
        &format!("{}/v2/via/proxy/manifests/v1", proxy.url()),
        registry.credentials(),
        &[("Accept", MANIFEST_ACCEPT)],
        None,
    )
    .expect("HEAD manifest");
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(fixture.digest.as_str())
    );
}

#[test]
fn proxy_redirects_blobs_to_a_store_that_refuses_authorization() {
    let registry = Registry::start_with_auth("dave", "pw").expect("registry");
    let fixture = fixtures::single_image(&registry, "app", "v1", 11).expect("fixture");
    let proxy = Proxy::start(&registry).expect("proxy");
    proxy.set_redirect_blobs(true);
    let blob = fixture.largest_blob().expect("layer");
    let url = format!("{}/v2/app/blobs/{}", proxy.url(), blob.digest);
    let redirect = http::send(Method::GET, &url, registry.credentials(), &[], None).expect("GET");
    assert_eq!(redirect.status, 307);
    let location = redirect.header("Location").expect("Location").to_string();
    assert!(
        location.starts_with(&proxy.object_store_url()),
        "{location}"
    );
    let with_auth =
        http::send(Method::GET, &location, registry.credentials(), &[], None).expect("GET");
    assert_eq!(with_auth.status, 400);
    let without = http::send(Method::GET, &location, None, &[], None).expect("GET");
    assert_eq!(without.status, 200);
    assert_eq!(skopeo::sha256_digest(&without.body), blob.digest);
    let ranged = http::send(
        Method::GET,
        &location,
        None,
        &[("Range", "bytes=10-19")],
        None,
    )
    .expect("GET");
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len(), 10);
    let stats = proxy.object_store_stats();
    assert_eq!((stats.served, stats.rejected_auth), (2, 1));
}

#[test]
fn proxy_cuts_blob_bodies_and_forwards_ranges() {
    let registry = Registry::start().expect("registry");
    let fixture = fixtures::single_image(&registry, "app", "v1", 12).expect("fixture");
    let proxy = Proxy::start(&registry).expect("proxy");
    let blob = fixture.largest_blob().expect("layer").clone();
    proxy.cut_blob_body(CutRule {
        digest: Some(blob.digest.clone()),
        after_bytes: 100_000,
        attempts: 1,
    });
    let url = format!("{}/v2/app/blobs/{}", proxy.url(), blob.digest);
    let cut = http::send(Method::GET, &url, None, &[], None);
    assert!(
        cut.is_err(),
        "first GET must be cut: {:?}",
        cut.map(|r| r.body.len())
    );
    let resumed =
        http::send(Method::GET, &url, None, &[("Range", "bytes=100000-")], None).expect("GET");
    assert_eq!(resumed.status, 206);
    assert_eq!(resumed.body.len() as u64, blob.size - 100_000);
    let whole = http::send(Method::GET, &url, None, &[], None).expect("GET");
    assert_eq!(skopeo::sha256_digest(&whole.body), blob.digest);
    let records = proxy.requests();
    assert_eq!(records[0].fault, Some("cut"));
    assert_eq!(records[1].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(records[2].fault, None);
}

#[test]
fn proxy_injects_statuses() {
    let registry = Registry::start().expect("registry");
    fixtures::single_image(&registry, "app", "v1", 13).expect("fixture");
    let proxy = Proxy::start(&registry).expect("proxy");
    proxy.inject(InjectRule {
        method: Some(Method::GET),
        kind: Some(PathKind::Manifest),
        status: 429,
        retry_after: Some(1),
        times: 2,
    });
    let url = format!("{}/v2/app/manifests/v1", proxy.url());
    let accept = [("Accept", MANIFEST_ACCEPT)];
    for _ in 0..2 {
        let response = http::send(Method::GET, &url, None, &accept, None).expect("GET");
        assert_eq!(response.status, 429);
        assert_eq!(response.header("Retry-After"), Some("1"));
    }
    assert_eq!(
        http::send(Method::GET, &url, None, &accept, None)
            .expect("GET")
            .status,
        200
    );
    // HEAD does not match the GET rule.
    proxy.inject(InjectRule {
        method: None,
        kind: None,
        status: 503,
        retry_after: None,
        times: 1,
    });
    assert_eq!(
        http::send(Method::HEAD, &url, None, &accept, None)
            .expect("HEAD")
            .status,
        503
    );
    proxy.heal();
    assert_eq!(
        http::send(Method::HEAD, &url, None, &accept, None)
            .expect("HEAD")
            .status,
        200
    );
    assert_eq!(proxy.total_requests(), 5);
}
