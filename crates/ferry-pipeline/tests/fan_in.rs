//! Fan-in deletes: one destination repository fed by two source repositories (two rules
//! rendering one name). A delete at one source never removes the copy another selecting
//! source still holds.

use std::sync::Arc;

use ferry::config::{ReplicationConfig, Target};
use ferry::copy::{Copier, CopyOptions};
use ferry::replicate::Replicator;
use ferry::setup::ClientSetup;
use ferry_e2e::Registry;
use ferry_e2e::fixtures::single_image;
use ferry_pipeline::job::Origin;
use ferry_pipeline::replicate::Engine;
use ferry_pipeline::{Job, JobAction, JobSource};
use serde_json::json;

/// A delete job of `repository:v1` at `registry` for `target`.
fn delete_job(registry: &str, repository: &str, target: &Target) -> Job {
    Job::new(
        JobAction::Delete,
        JobSource {
            registry: registry.into(),
            repository: repository.into(),
            tag: Some("v1".into()),
            digest: None,
        },
        target,
        "ev",
        chrono::Utc::now(),
        Origin::Event,
    )
}

/// Deletes the manifest `digest` of `repository` at `registry` (HTTP 202).
fn delete_manifest(registry: &Registry, repository: &str, digest: &str) {
    let status = ferry_e2e::http::send(
        reqwest::Method::DELETE,
        &format!("{}/v2/{repository}/manifests/{digest}", registry.url()),
        None,
        &[],
        None,
    )
    .expect("delete at the source")
    .status;
    assert_eq!(status, 202);
}

#[test]
fn a_delete_at_one_source_keeps_the_copy_another_source_still_holds() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let src = Registry::start().expect("source");
    let dst = Registry::start().expect("destination");
    // `a` lands in `x/a`, and so does the source's own `x/a`; both rules propagate deletes.
    let config = Arc::new(
        ReplicationConfig::from_json(
            &json!({
                "source": {"registry": src.host()},
                "rules": [
                    {"repositoryFilters": [{"filter": "a", "filterType": "PREFIX_MATCH"}], "deletes": true,
                     "destinations": [{"registry": dst.host(), "repositoryName": "x/{repository}"}]},
                    {"repositoryFilters": [{"filter": "x/", "filterType": "PREFIX_MATCH"}], "deletes": true,
                     "destinations": [{"registry": dst.host()}]}
                ]
            })
            .to_string(),
        )
        .expect("config"),
    );
    // The same image in both sources, and its copy at the destination.
    let image = single_image(&src, "a", "v1", 971).expect("fixture");
    single_image(&src, "x/a", "v1", 971).expect("the same image in the other source");
    assert_eq!(
        src.manifest_digest("x/a", "v1").expect("head").as_deref(),
        Some(image.digest.as_str())
    );
    single_image(&dst, "x/a", "v1", 971).expect("the copy");
    assert_eq!(
        dst.manifest_digest("x/a", "v1").expect("head").as_deref(),
        Some(image.digest.as_str())
    );

    let client = runtime
        .block_on(ClientSetup::default().build_for_config(&config, None))
        .expect("client");
    let replicator = Replicator::new(
        Copier::new(client, CopyOptions::default()),
        None,
        config.clone(),
    );
    let target = config
        .destinations_for("a", Some("v1"))
        .expect("targets")
        .remove(0);
    assert_eq!(target.repository, "x/a");
    // `a:v1` goes at the source; `x/a:v1` still holds the image.
    delete_manifest(&src, "a", &image.digest);
    let changed = runtime
        .block_on(Engine::delete(
            &replicator,
            &delete_job(&src.host(), "a", &target),
            &target,
        ))
        .expect("delete job");
    assert!(!changed, "nothing deleted while another source holds it");
    assert_eq!(
        dst.manifest_digest("x/a", "v1").expect("head").as_deref(),
        Some(image.digest.as_str()),
        "the copy stays"
    );
}

/// Forwarders of two regions feed one configuration (`source.regions`) and one
/// destination repository: a delete in one region leaves the copy the other region's
/// image still needs. The two ECR registries are local registries behind their ECR
/// host names.
#[test]
fn a_delete_in_one_region_keeps_the_copy_another_region_still_holds() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let east = Registry::start().expect("us-east-1");
    let west = Registry::start().expect("eu-west-1");
    let dst = Registry::start().expect("destination");
    const EAST: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
    const WEST: &str = "111111111111.dkr.ecr.eu-west-1.amazonaws.com";
    let config = Arc::new(
        ReplicationConfig::from_json(
            &json!({
                "source": {"registryId": "111111111111", "regions": ["us-east-1", "eu-west-1"]},
                "registries": {dst.host(): {"endpoint": dst.url(), "plainHttp": true}},
                "rules": [{"deletes": true, "destinations": [{"registry": dst.host()}]}]
            })
            .to_string(),
        )
        .expect("config"),
    );
    let image = single_image(&east, "app", "v1", 972).expect("fixture");
    single_image(&west, "app", "v1", 972).expect("the same image in the other region");
    single_image(&dst, "app", "v1", 972).expect("the copy");
    assert_eq!(
        dst.manifest_digest("app", "v1").expect("head").as_deref(),
        Some(image.digest.as_str())
    );
    let setup = ClientSetup {
        endpoints: vec![
            (EAST.to_string(), east.url()),
            (WEST.to_string(), west.url()),
        ],
        ..Default::default()
    };
    let client = runtime
        .block_on(setup.build_for_config(&config, None))
        .expect("client");
    let replicator = Replicator::new(
        Copier::new(client, CopyOptions::default()),
        None,
        config.clone(),
    );
    let bound = config
        .for_source(&ferry::config::Registry::from_host(EAST))
        .expect("a listed region");
    let target = bound
        .destinations_for("app", Some("v1"))
        .expect("targets")
        .remove(0);
    let delete = delete_job(EAST, "app", &target);
    delete_manifest(&east, "app", &image.digest);
    let changed = runtime
        .block_on(Engine::delete(&replicator, &delete, &target))
        .expect("delete job");
    assert!(!changed, "nothing deleted while eu-west-1 holds it");
    assert_eq!(
        dst.manifest_digest("app", "v1").expect("head").as_deref(),
        Some(image.digest.as_str()),
        "the copy stays"
    );

    // Gone in both regions: the delete is carried out.
    delete_manifest(&west, "app", &image.digest);
    let changed = runtime
        .block_on(Engine::delete(&replicator, &delete, &target))
        .expect("delete job");
    assert!(changed, "deleted once no region holds it");
    assert_eq!(dst.manifest_digest("app", "v1").expect("head"), None);
}
