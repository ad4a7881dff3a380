//! The ECR control plane through moto: repositories created with the source's settings,
//! cross-account writes through STS AssumeRole with an external ID, and DescribeImages
//! listing. Registry content lives in ECR-shaped docker-registry instances.

use aws_config::SdkConfig;
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability};
use ferry_e2e::block;
use ferry_e2e::ecr::endpoints_env;
use ferry_e2e::ferry::describe;
use ferry_e2e::fixtures;
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, run_ferry};
use serde_json::json;

const ACCOUNT_A: &str = "123456789012";
const ACCOUNT_B: &str = "222222222222";

fn sdk(moto: &Moto, region: &str) -> SdkConfig {
    moto.sdk_config(region)
}

fn sync(moto: &Moto, ecrs: &[&EcrRegistry], config: serde_json::Value) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("ferry.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");
    let docker = DockerConfig::new().expect("docker config");
    let mut env = moto.aws_env();
    env.push(endpoints_env(ecrs));
    env.push(docker.env());
    run_ferry(
        [
            "sync",
            "-c",
            path.to_str().expect("utf8"),
            "--output",
            "json",
        ],
        &env,
    )
    .expect("ferry runs")
}

#[test]
fn sync_creates_the_destination_repository_with_the_source_settings() {
    let moto = Moto::start().expect("moto");
    let src = EcrRegistry::start(ACCOUNT_A, "us-east-1").expect("source");
    let dst = EcrRegistry::start(ACCOUNT_A, "eu-west-1").expect("destination");
    let fixture = fixtures::single_image(&src, "team/api", "v1", 801).expect("fixture");
    let east = aws_sdk_ecr::Client::new(&sdk(&moto, "us-east-1"));
    block(
        east.create_repository()
            .repository_name("team/api")
            .image_tag_mutability(ImageTagMutability::Immutable)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(true)
                    .build(),
            )
            .send(),
    )
    .expect("source repository in moto");

    let out = sync(
        &moto,
        &[&src, &dst],
        json!({
            "source": {"registryId": ACCOUNT_A, "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": ACCOUNT_A, "region": "eu-west-1"}]}]
        }),
    );
    assert!(out.status.success(), "{}", describe(&out));

    let west = aws_sdk_ecr::Client::new(&sdk(&moto, "eu-west-1"));
    let repos = block(
        west.describe_repositories()
            .repository_names("team/api")
            .send(),
    )
    .expect("describe");
    let repo = repos.repositories().first().expect("created in eu-west-1");
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|s| s.scan_on_push()),
        Some(true)
    );
    assert_eq!(
        dst.registry()
            .manifest_digest("team/api", "v1")
            .expect("head")
            .as_deref(),
        Some(fixture.digest.as_str())
    );
    // A second sync finds the repository and the image in place.
    let again = sync(
        &moto,
        &[&src, &dst],
        json!({
            "source": {"registryId": ACCOUNT_A, "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": ACCOUNT_A, "region": "eu-west-1"}]}]
        }),
    );
    assert!(again.status.success(), "{}", describe(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).expect("report");
    assert_eq!(report["totals"]["copied"], 0);
    assert_eq!(report["totals"]["skipped"], 1);
}

#[test]
fn sync_writes_to_another_account_through_an_assumed_role() {
    let moto = Moto::start().expect("moto");
    let src = EcrRegistry::start(ACCOUNT_A, "us-east-1").expect("source");
    // The destination registry accepts only account B's token, which only the assumed
    // role's credentials can mint.
    let dst = EcrRegistry::start(ACCOUNT_B, "us-west-2").expect("destination");
    let fixture = fixtures::oci_index(&src, "golden/base", "2.0.0", 802).expect("fixture");
    let role = format!("arn:aws:iam::{ACCOUNT_B}:role/ferry-writer");
    let out = sync(
        &moto,
        &[&src, &dst],
        json!({
            "source": {"registryId": ACCOUNT_A, "region": "us-east-1"},
            "rules": [{"destinations": [{
                "registryId": ACCOUNT_B, "region": "us-west-2",
                "repositoryName": "platform/{repository}",
                "roleArn": role, "externalId": "ferry-test"
            }]}]
        }),
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        dst.registry()
            .manifest_digest("platform/golden/base", "2.0.0")
            .expect("head")
            .as_deref(),
        Some(fixture.digest.as_str())
    );

    // The repository was created in account B (seen with the role's credentials), not in A.
    let base = sdk(&moto, "us-west-2");
    let sts = aws_sdk_sts::Client::new(&base);
    let assumed = block(
        sts.assume_role()
            .role_arn(&role)
            .role_session_name("check")
            .external_id("ferry-test")
            .send(),
    )
    .expect("assume role");
    let c = assumed.credentials().expect("credentials");
    let creds = aws_sdk_ecr::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "assumed",
    );
    let as_b = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&base)
            .credentials_provider(creds)
            .build(),
    );
    let in_b = block(
        as_b.describe_repositories()
            .repository_names("platform/golden/base")
            .send(),
    )
    .expect("describe in B");
    assert_eq!(in_b.repositories().len(), 1);
    assert_eq!(in_b.repositories()[0].registry_id(), Some(ACCOUNT_B));
    let as_a = aws_sdk_ecr::Client::new(&base);
    let in_a = block(
        as_a.describe_repositories()
            .repository_names("platform/golden/base")
            .send(),
    );
    assert!(in_a.is_err(), "the repository must not exist in account A");
}

#[test]
fn describe_images_lists_tags_and_digests_without_a_request_per_tag() {
    let moto = Moto::start().expect("moto");
    let config = sdk(&moto, "us-east-1");
    let client = aws_sdk_ecr::Client::new(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []
    })
    .to_string();
    // moto computes its own image digest (not the SHA-256 of the bytes, unlike ECR): take
    // the one PutImage answers as the expected value.
    let put_digest = block(async {
        client
            .create_repository()
            .repository_name("team/listing")
            .send()
            .await
            .expect("create");
        let mut digest = None;
        for tag in ["v1", "v2"] {
            let out = client
                .put_image()
                .repository_name("team/listing")
                .image_manifest(&manifest)
                .image_tag(tag)
                .send()
                .await
                .expect("put image");
            digest = out
                .image()
                .and_then(|i| i.image_id())
                .and_then(|i| i.image_digest())
                .map(str::to_string);
        }
        digest.expect("PutImage answers a digest")
    });
    let ecr = ferry::ecr::EcrControl::new(ferry::aws::AwsContext::new(config.clone()));
    let registry = ferry::reference::EcrRegistry::new(ACCOUNT_A, "us-east-1");
    let images = block(ecr.list_images(&registry, None, "team/listing")).expect("list");
    assert_eq!(images.len(), 1, "{images:?}");
    let mut tags = images[0].tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["v1".to_string(), "v2".to_string()]);
    assert_eq!(images[0].digest.as_str(), put_digest);
    assert!(
        block(ecr.list_images(&registry, None, "missing/repo"))
            .expect("missing")
            .is_empty()
    );

    // Deletes go through BatchDeleteImage.
    block(ecr.delete_image(&registry, None, "team/listing", Some("v1"), None)).expect("delete tag");
    let left = block(
        client
            .batch_get_image()
            .repository_name("team/listing")
            .image_ids(ImageIdentifier::builder().image_tag("v1").build())
            .send(),
    )
    .expect("batch get");
    assert!(left.images().is_empty(), "v1 deleted");
    let repos = block(ecr.list_repositories(&registry, None)).expect("repositories");
    assert_eq!(repos, vec!["team/listing".to_string()]);
}
