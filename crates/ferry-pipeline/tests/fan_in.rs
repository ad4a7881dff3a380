//! Fan-in deletes: one destination repository fed by two source repositories (two rules
//! rendering one name). A delete at one source never removes the copy another selecting
//! source still holds.

use std::sync::Arc;

use ferry::config::ReplicationConfig;
use ferry::copy::{Copier, CopyOptions};
use ferry::replicate::Replicator;
use ferry::setup::ClientSetup;
use ferry_e2e::Registry;
use ferry_e2e::fixtures::single_image;
use ferry_pipeline::job::Origin;
use ferry_pipeline::replicate::Engine;
use ferry_pipeline::{Job, JobAction, JobSource};
use serde_json::json;

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
    let delete = |repository: &str| {
        Job::new(
            JobAction::Delete,
            JobSource {
                registry: src.host(),
                repository: repository.into(),
                tag: Some("v1".into()),
                digest: None,
            },
            &target,
            "ev-1",
            chrono::Utc::now(),
            Origin::Event,
        )
    };

    // `a:v1` goes at the source; `x/a:v1` still holds the image.
    let status = ferry_e2e::http::send(
        reqwest::Method::DELETE,
        &format!("{}/v2/a/manifests/{}", src.url(), image.digest),
        None,
        &[],
        None,
    )
    .expect("delete at the source")
    .status;
    assert_eq!(status, 202);
    let changed = runtime
        .block_on(Engine::delete(&replicator, &delete("a"), &target))
        .expect("delete job");
    assert!(!changed, "nothing deleted while another source holds it");
    assert_eq!(
        dst.manifest_digest("x/a", "v1").expect("head").as_deref(),
        Some(image.digest.as_str()),
        "the copy stays"
    );
}
