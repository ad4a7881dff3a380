//! ECR behaviours Ferry handles, each played by the test proxy's ECR mode in front of an
//! ECR-shaped registry (htpasswd user `AWS`, password = what moto's
//! GetAuthorizationToken returns), reached under its ECR host name through
//! `FERRY_REGISTRY_ENDPOINTS`, with moto as the ECR control plane.
//!
//! One test per behaviour of `docs/ecr-notes.md` "Registry endpoint":
//! 1. an expired token gets 401: the engine mints a new one and retries;
//! 2. blob GETs redirect (307) to an object store that refuses `Authorization`;
//! 3. chunked uploads are broken (PATCH 201, later chunks dropped): never used;
//! 4. manifest PUTs above 10/s get 429 `TOOMANYREQUESTS`: the engine backs off;
//! 5. an immutable tag overwrite gets 400 `TAG_INVALID`: a tag conflict, never retried;
//! 6. manifest DELETE is unsupported (405): deletes go through BatchDeleteImage.

use ferry_e2e::block;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ecr::types::ImageIdentifier;
use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures::{self, Fixture};
use ferry_e2e::imageset::{SetSpec, push_image_set};
use ferry_e2e::moto::{DEFAULT_ACCOUNT, DEFAULT_REGION, auth_token_password};
use ferry_e2e::proxy::{EcrMode, ExpireRule, PathKind};
use ferry_e2e::registry::Credentials;
use ferry_e2e::{Moto, Registry, error_codes, parse_report, skopeo, verify_copy};
use reqwest::Method;
use serde_json::{Value, json};

use ferry_e2e::ecr_env::{EcrEnv as Ecr, moto_calls_of};

fn sdk_ecr(moto: &Moto) -> aws_sdk_ecr::Client {
    let creds = aws_sdk_ecr::config::Credentials::new("testing", "testing", None, None, "test");
    let config = block(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(Region::new(DEFAULT_REGION))
            .credentials_provider(creds)
            .load(),
    );
    aws_sdk_ecr::Client::new(&config)
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// 1. The proxy refuses a valid token as expired (401 with a Basic challenge): once on
///    the first manifest PUT of a copy, once on the first request of another. Each time
///    the engine calls GetAuthorizationToken once more and sends the refused request
///    again, and the copy succeeds.
#[test]
fn ecr_expired_token_is_refreshed() {
    let env = Ecr::start(|m| m);
    let src = Registry::start().expect("source");
    let images: Vec<Fixture> = (0..3)
        .map(|i| fixtures::oci_index(&src, &format!("team/tok{i}"), "v1", 910 + i).expect("fx"))
        .collect();

    // Baseline: one token per run.
    let (out, baseline) = moto_calls_of(&env.moto, || {
        env.copy(&images[0].reference, &env.reference("team/tok0", "v1"))
    });
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(baseline, 1, "GetAuthorizationToken calls of a plain copy");
    assert_eq!(env.proxy.ecr_counts().expired, 0);

    // Expired on the first manifest PUT, mid-copy.
    env.proxy.reset_counts();
    env.proxy.expire_token_on(ExpireRule {
        method: Some(Method::PUT),
        kind: Some(PathKind::Manifest),
        times: 1,
        denied: false,
    });
    let (out, calls) = moto_calls_of(&env.moto, || {
        env.copy(&images[1].reference, &env.reference("team/tok1", "v1"))
    });
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(env.proxy.ecr_counts().expired, 1);
    assert_eq!(calls, baseline + 1, "a new token after the 401");
    let log = env.proxy.requests();
    let refused = log
        .iter()
        .position(|r| r.fault == Some("ecr-expired"))
        .expect("the refused request");
    let again = log[refused + 1..]
        .iter()
        .find(|r| r.key == log[refused].key)
        .unwrap_or_else(|| panic!("{} never sent again", log[refused].key));
    assert_eq!(again.status, 201, "{again:?}");
    verify_copy(&src, &images[1], env.registry(), "team/tok1").expect("verified");

    // Expired on whatever comes first.
    env.proxy.reset_counts();
    env.proxy.expire_token();
    let (out, calls) = moto_calls_of(&env.moto, || {
        env.copy(&images[2].reference, &env.reference("team/tok2", "v1"))
    });
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(env.proxy.ecr_counts().expired, 1);
    assert_eq!(env.proxy.requests()[0].fault, Some("ecr-expired"));
    assert_eq!(calls, baseline + 1, "a new token after the 401");
    verify_copy(&src, &images[2], env.registry(), "team/tok2").expect("verified");
    // Nothing reached the registry without the token.
    assert_eq!(env.proxy.ecr_counts().unauthorized, 0);
}

/// 1b. The token expires just as a blob's monolithic upload PUT arrives. The PUT's body
///     is a stream that cannot be sent again as is, but the transfer as a whole can.
#[test]
fn ecr_expired_token_during_a_blob_upload_is_refreshed() {
    let env = Ecr::start(|m| m);
    let src = Registry::start().expect("source");
    let image = fixtures::single_image(&src, "team/upload", "v1", 915).expect("fixture");
    env.proxy.expire_token_on(ExpireRule {
        method: Some(Method::PUT),
        kind: Some(PathKind::BlobUpload),
        times: 1,
        denied: false,
    });
    let (out, calls) = moto_calls_of(&env.moto, || {
        env.copy(&image.reference, &env.reference("team/upload", "v1"))
    });
    assert_eq!(env.proxy.ecr_counts().expired, 1);
    assert!(
        out.status.success(),
        "a 401 on the upload PUT is not refreshed:\n{}",
        describe(&out)
    );
    assert_eq!(calls, 2, "a new token after the 401");
    verify_copy(&src, &image, env.registry(), "team/upload").expect("verified");
}

/// 2. Pulling from ECR: every blob GET is redirected (307) to a pre-signed URL on
///    another origin, which answers 400 to any request carrying `Authorization`.
#[test]
fn ecr_blob_get_redirects_to_an_object_store_that_refuses_authorization() {
    let env = Ecr::start(|m| m);
    let image = fixtures::oci_index(&env.ecr, "team/pull", "v1", 920).expect("fixture");
    let dst = Registry::start().expect("destination");
    let dst_ref = dst.reference("team/pull", "v1");
    let out = env.copy(&env.reference("team/pull", "v1"), &dst_ref);
    let stats = env.proxy.object_store_stats();
    assert!(
        out.status.success(),
        "{}\nobject store: {stats:?}",
        describe(&out)
    );
    assert_eq!(
        stats.rejected_auth, 0,
        "Authorization reached the object store"
    );
    assert_eq!(stats.unsigned, 0);
    let redirected = env
        .proxy
        .requests()
        .iter()
        .filter(|r| r.status == 307 && r.kind == PathKind::Blob)
        .count();
    assert_eq!(redirected, image.blobs.len(), "one redirect per blob");
    assert_eq!(stats.served, image.blobs.len() as u64, "{stats:?}");
    // The registry side always got the token.
    assert!(env.proxy.requests().iter().all(|r| r.authorization));
    verify_copy(env.registry(), &image, &dst, "team/pull").expect("verified");
}

/// 3. The proxy's PATCH really is broken (a two-chunk upload through it is refused at
///    its final PUT), and Ferry never sends a PATCH: POST and one PUT per blob.
#[test]
fn ecr_chunked_upload_is_never_relied_on() {
    let env = Ecr::start(|m| m);
    let creds = Credentials::new("AWS", &auth_token_password(env.ecr.account()));

    // The trap is armed: chunk 1 is stored, chunk 2 answered 201 and dropped.
    let data = ferry_e2e::imageset::bytes_of(930, 256 * 1024);
    let digest = skopeo::sha256_digest(&data);
    let base = env.proxy.url();
    let send = |method: Method, url: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]| {
        ferry_e2e::http::send(method, url, Some(&creds), headers, body).expect("request")
    };
    let start = send(
        Method::POST,
        &format!("{base}/v2/team/chunked/blobs/uploads/"),
        None,
        &[],
    );
    assert_eq!(start.status, 202);
    let mut location = start.header("Location").expect("Location").to_string();
    for (i, chunk) in data.chunks(128 * 1024).enumerate() {
        let range = format!("{}-{}", i * 128 * 1024, i * 128 * 1024 + chunk.len() - 1);
        let patched = send(
            Method::PATCH,
            &absolute(&base, &location),
            Some(chunk.to_vec()),
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
        );
        assert_eq!(patched.status, 201, "PATCH {i} answers 201 as ECR does");
        location = patched.header("Location").expect("Location").to_string();
    }
    let location = absolute(&base, &location);
    let separator = if location.contains('?') { '&' } else { '?' };
    let finish = send(
        Method::PUT,
        &format!("{location}{separator}digest={digest}"),
        None,
        &[],
    );
    assert_eq!(finish.status, 400, "the dropped chunk breaks the blob");
    assert!(
        !env.registry()
            .has_blob("team/chunked", &digest)
            .expect("HEAD")
    );
    assert_eq!(
        (
            env.proxy.ecr_counts().patches_forwarded,
            env.proxy.ecr_counts().patches_dropped
        ),
        (1, 1)
    );

    // Ferry, with a 6 MiB layer (over ECR's 5 MB minimum part) and smaller ones.
    env.proxy.reset_counts();
    let src = Registry::start().expect("source");
    let image = fixtures::large_layer_image(&src, "team/chunked", "v1", 931, 6 * 1024 * 1024)
        .expect("fixture");
    let out = env.copy(&image.reference, &env.reference("team/chunked", "v1"));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        env.proxy.count("PATCH", PathKind::BlobUpload),
        0,
        "PATCH sent"
    );
    let puts = env.proxy.count("PUT", PathKind::BlobUpload);
    assert_eq!(puts, image.blobs.len(), "one monolithic PUT per blob");
    let report = parse_report(&out).expect("report");
    assert_eq!(report.requests.by_method.get("PATCH"), None);
    verify_copy(&src, &image, env.registry(), "team/chunked").expect("verified");
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

/// 4. 14 multi-arch images (two of them signed) synced with 8 in flight need over 60
///    manifest PUTs in a burst; the proxy accepts 10 per second and answers the rest 429
///    `TOOMANYREQUESTS` (ECR's error body, no `Retry-After`). The engine keeps ECR's
///    quotas itself (`ecr_quotas.rs`), so the config claims a raised PutImage quota of
///    100/s that the registry does not grant: the unexpected 429s are the AIMD limiter's
///    and the retries'. The sync converges in one run and the engine saw every 429.
#[test]
fn ecr_manifest_put_throttling_backs_off_and_converges() {
    let env = Ecr::start(|m| m);
    let src = Registry::start().expect("source");
    let spec = SetSpec {
        index_every: 1,
        base_size: 64 * 1024,
        runtime_size: 16 * 1024,
        own_size: 4 * 1024,
        ..SetSpec::small("burst", 6, 2, 940)
    };
    let mut images = push_image_set(&src, &spec).expect("image set");
    for i in 0..2 {
        images.push(
            fixtures::signed_index(&src, &format!("burst{i}/signed"), "v1", 941 + i)
                .expect("signed index"),
        );
    }
    let config = json!({
        "source": {"registry": src.host()},
        "rules": [{
            "repositoryFilters": [{"filter": "burst", "filterType": "PREFIX_MATCH"}],
            "destinations": [{"registryId": DEFAULT_ACCOUNT, "region": DEFAULT_REGION}]
        }],
        "registries": {env.ecr.ecr_host(): {"rates": {"putImage": 100}}}
    });
    let started = Instant::now();
    let (out, report) = env.sync(&config, &["--concurrency", "8"]);
    let elapsed = started.elapsed();
    let counts = env.proxy.ecr_counts();
    let puts = env.proxy.count("PUT", PathKind::Manifest);
    eprintln!(
        "{} images in {elapsed:?}: {puts} manifest PUTs, {} throttled; engine: {}",
        images.len(),
        counts.throttled,
        report["requests"]
    );
    assert!(
        out.status.success(),
        "{}\nthrottled: {counts:?}",
        describe(&out)
    );
    assert_eq!(u(&report, &["totals", "failed"]), 0);
    // Every tag: 14 images plus the two signature tags (which the copies of the signed
    // images may already have brought over).
    assert_eq!(
        u(&report, &["totals", "copied"]) + u(&report, &["totals", "skipped"]),
        16,
        "{}",
        report["totals"]
    );
    assert!(counts.throttled > 0, "the burst was never throttled");
    assert_eq!(
        u(&report, &["requests", "throttled"]),
        counts.throttled as u64,
        "the engine saw every 429"
    );
    // The proxy let through no more than 10 per second (plus the burst of 10).
    let accepted: Vec<Duration> = env
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.kind == PathKind::Manifest && r.fault.is_none())
        .map(|r| r.at)
        .collect();
    let span = accepted.last().copied().unwrap_or_default() - accepted[0];
    assert!(
        accepted.len() as f64 <= 10.0 + 10.0 * span.as_secs_f64() + 1.0,
        "{} PUTs accepted in {span:?}",
        accepted.len()
    );
    for image in &images {
        if image.referrers.is_empty() {
            assert_eq!(
                env.registry()
                    .manifest_digest(&image.repo, &image.tag)
                    .expect("HEAD")
                    .as_deref(),
                Some(image.digest.as_str()),
                "{}:{}",
                image.repo,
                image.tag
            );
        } else {
            verify_copy(&src, image, env.registry(), &image.repo).expect("verified");
        }
    }
    let sample = &images[0];
    verify_copy(&src, sample, env.registry(), &sample.repo).expect("verified");
}

/// 5. The destination tag is immutable and holds another image: the tag PUT gets 400
///    `TAG_INVALID`, which is a `tag-conflict` (exit 1), sent exactly once, and the tag
///    keeps its image.
#[test]
fn ecr_immutable_tag_overwrite_is_a_tag_conflict_never_retried() {
    let env = Ecr::start(EcrMode::immutable);
    let existing = fixtures::single_image(&env.ecr, "x", "v1", 950).expect("existing image");
    let src = Registry::start().expect("source");
    let wanted = fixtures::single_image(&src, "x", "v1", 951).expect("source image");
    assert_ne!(existing.digest, wanted.digest);

    let out = env.copy(&wanted.reference, &env.reference("x", "v1"));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        error_codes(&out).contains(&"tag-conflict".to_string()),
        "{}",
        describe(&out)
    );
    assert_eq!(
        env.registry()
            .manifest_digest("x", "v1")
            .expect("HEAD")
            .as_deref(),
        Some(existing.digest.as_str()),
        "the tag was moved"
    );
    let tag_puts: Vec<_> = env
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == "/v2/x/manifests/v1")
        .collect();
    assert_eq!(tag_puts.len(), 1, "tag PUTs: {tag_puts:#?}");
    assert_eq!(tag_puts[0].status, 400);
    assert_eq!(tag_puts[0].fault, Some("ecr-tag-invalid"));
    assert_eq!(env.proxy.ecr_counts().tag_invalid, 1);
}

/// 6. A tag deleted at the source is deleted at an ECR destination whose rule says
///    `"deletes": true` through the ECR API's BatchDeleteImage (moto), never with a
///    registry DELETE, which the proxy answers 405 `UNSUPPORTED` as ECR does.
#[test]
fn ecr_manifest_delete_is_unsupported_so_deletes_use_batch_delete_image() {
    let env = Ecr::start(|m| m);
    let src = Registry::start().expect("source");
    let images = push_image_set(&src, &SetSpec::small("gone", 1, 2, 960)).expect("images");
    let repo = images[0].repo.clone();
    let config = json!({
        "source": {"registry": src.host()},
        "rules": [{
            "repositoryFilters": [{"filter": "gone", "filterType": "PREFIX_MATCH"}],
            "deletes": true,
            "destinations": [{"registryId": DEFAULT_ACCOUNT, "region": DEFAULT_REGION}]
        }]
    });
    let (out, report) = env.sync(&config, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(u(&report, &["totals", "copied"]), 2);

    // The ECR control plane holds the tags too, as ECR would.
    let ecr = sdk_ecr(&env.moto);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []
    })
    .to_string();
    let tag = images[0].tag.clone();
    block(async {
        // Created by the first sync (ensure_repository); create it if it is not there.
        let _ = ecr.create_repository().repository_name(&repo).send().await;
        ecr.put_image()
            .repository_name(&repo)
            .image_manifest(&manifest)
            .image_tag(&tag)
            .send()
            .await
            .expect("put image in moto");
    });
    let in_moto = |tag: &str| {
        block(
            ecr.batch_get_image()
                .repository_name(&repo)
                .image_ids(ImageIdentifier::builder().image_tag(tag).build())
                .send(),
        )
        .expect("batch get image")
        .images()
        .len()
    };
    assert_eq!(in_moto(&tag), 1);

    // Delete the tag's image at the source, then sync again.
    let deleted = ferry_e2e::http::send(
        Method::DELETE,
        &format!("{}/v2/{repo}/manifests/{}", src.url(), images[0].digest),
        None,
        &[],
        None,
    )
    .expect("delete at the source");
    assert_eq!(deleted.status, 202);
    env.proxy.reset_counts();
    let (out, report) = env.sync(&config, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        u(&report, &["totals", "deleted"]),
        1,
        "{}",
        report["totals"]
    );
    assert_eq!(in_moto(&tag), 0, "BatchDeleteImage removed the tag");
    assert_eq!(env.proxy.count("DELETE", PathKind::Manifest), 0);
    assert_eq!(env.proxy.ecr_counts().delete_unsupported, 0);
    assert!(
        env.proxy.requests().iter().all(|r| r.method != "DELETE"),
        "a DELETE reached the registry endpoint"
    );

    // The registry endpoint would have refused it.
    let creds = Credentials::new("AWS", &auth_token_password(env.ecr.account()));
    let refused = ferry_e2e::http::send(
        Method::DELETE,
        &format!(
            "{}/v2/{repo}/manifests/{}",
            env.proxy.url(),
            images[0].digest
        ),
        Some(&creds),
        &[],
        None,
    )
    .expect("DELETE through the proxy");
    assert_eq!(refused.status, 405);
    assert!(String::from_utf8_lossy(&refused.body).contains("UNSUPPORTED"));
}
