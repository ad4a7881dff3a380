//! The archive storage class followed by replicate and sync, against `aws-smithy-mocks`
//! stand-ins for ECR (moto has no `imageStatus` nor UpdateImageStorageClass; see
//! `ecr/archive_tests.rs`, whose stand-ins these tests share).

use std::sync::Arc;

use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::types::Repository;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use crate::auth::Authenticator;
use crate::config::ReplicationConfig;
use crate::copy::{Copier, CopyOptions};
use crate::ecr::archive_tests::{
    DESTINATION, SOURCE, digest, image, listing, repositories, storage_class,
};
use crate::ecr::tests::control;
use crate::registry::{ClientOptions, Endpoints, RegistryClient};
use crate::replicate::Replicator;
use crate::sync::{Action, Outcome};

/// A replicator over the stand-in: source `111111111111` in us-east-1, one ECR destination
/// `222222222222` in eu-west-1 with deletes, and the rule's `archive` as given.
fn replicator(client: aws_sdk_ecr::Client, archive: &str) -> Replicator {
    replicator_with(
        client,
        &format!(
            r#"{{"source": {{"registryId": "{SOURCE}", "region": "us-east-1"}},
            "rules": [{{"deletes": true, "archive": "{archive}",
                        "destinations": [{{"registryId": "{DESTINATION}", "region": "eu-west-1"}}]}}]}}"#
        ),
    )
}

fn replicator_with(client: aws_sdk_ecr::Client, config: &str) -> Replicator {
    let config = ReplicationConfig::from_json(config).unwrap();
    let registry = RegistryClient::new(
        Authenticator::anonymous(),
        Endpoints::new(),
        ClientOptions::default(),
    )
    .unwrap();
    Replicator::new(
        Copier::new(registry, CopyOptions::default()),
        Some(control(client)),
        Arc::new(config),
    )
}

/// The source: v1 archived, v2 and v3 active, v4 being restored. The destination: v1
/// active, v3 and v4 archived, no v2.
fn registries() -> (Rule, Rule, Rule, Rule, Rule) {
    (
        listing(
            SOURCE,
            vec![
                image(1, "v1", Some("ARCHIVED")),
                image(2, "v2", Some("ACTIVE")),
                image(3, "v3", Some("ACTIVE")),
                image(4, "v4", Some("ACTIVATING")),
            ],
        ),
        listing(
            DESTINATION,
            vec![
                image(1, "v1", Some("ACTIVE")),
                image(3, "v3", Some("ARCHIVED")),
                image(4, "v4", Some("ARCHIVED")),
            ],
        ),
        repositories(),
        // The plan also asks for the source's pull-through cache rules: none.
        mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules).then_output(|| {
            aws_sdk_ecr::operation::describe_pull_through_cache_rules::DescribePullThroughCacheRulesOutput::builder().build()
        }),
        // And whether the destination signs images itself: no signing configuration.
        mock!(aws_sdk_ecr::Client::get_signing_configuration).then_output(|| {
            aws_sdk_ecr::operation::get_signing_configuration::GetSigningConfigurationOutput::builder().build()
        }),
    )
}

fn actions(plan: &crate::sync::Plan) -> Vec<(String, Action)> {
    plan.items
        .iter()
        .map(|i| (i.tag.clone().unwrap_or_default(), i.action))
        .collect()
}

// moto lacks `imageStatus` in DescribeImages.
#[tokio::test]
async fn archived_images_are_neither_copied_nor_drift_nor_deleted() {
    let (src, dst, repos, cache, signing) = registries();
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&src, &dst, &repos, &cache, &signing]
    );
    let plan = crate::sync::plan(&replicator(client, "ignore"))
        .await
        .unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("v1".into(), Action::Archived),
            ("v2".into(), Action::Copy),
            ("v3".into(), Action::Skip),
            ("v4".into(), Action::Archived),
        ],
        "the archived v1 is not deleted although the rule propagates deletes"
    );
    assert_eq!(
        (
            plan.summary.archived,
            plan.summary.copy,
            plan.summary.delete
        ),
        (2, 1, 0)
    );
    assert_eq!(
        plan.items[0].archived.as_ref().map(|a| a.to_string()),
        Some("archived since 2026-09-21T14:13:20Z".into())
    );
    let json = serde_json::to_value(&plan.items[0]).unwrap();
    assert_eq!(json["action"], "archived");
    assert_eq!(json["archived"]["lastArchivedAt"], "2026-09-21T14:13:20Z");
    let drift = crate::sync::drift(&plan);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].kind, "missing");
}

// moto lacks `imageStatus` in DescribeImages and UpdateImageStorageClass.
#[tokio::test]
async fn follow_archives_and_restores_the_destination_copies() {
    let (src, dst, repos, cache, signing) = registries();
    let archive = storage_class(1, "ARCHIVE", "ARCHIVED");
    let restore = storage_class(3, "STANDARD", "ACTIVATING");
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&src, &dst, &repos, &cache, &signing, &archive, &restore]
    );
    let replicator = replicator(client, "follow");
    let mut plan = crate::sync::plan(&replicator).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("v1".into(), Action::Archive),
            ("v2".into(), Action::Copy),
            ("v3".into(), Action::Restore),
            ("v4".into(), Action::Archived),
        ]
    );
    let kinds: Vec<_> = crate::sync::drift(&plan).iter().map(|d| d.kind).collect();
    assert_eq!(kinds, ["archive", "missing", "restore"]);
    // Execute the storage-class items only (the copy needs a registry).
    plan.items.retain(|i| i.action != Action::Copy);
    let report = crate::sync::sync(&replicator, plan, 2, Arc::new(|_| {})).await;
    let outcomes: Vec<_> = report.items.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::CopyArchived,
            Outcome::CopyRestored,
            Outcome::Archived
        ]
    );
    assert_eq!(
        (report.totals.storage_class_changes, report.totals.archived),
        (2, 1)
    );
    assert!(report.ok());
    assert_eq!((archive.num_calls(), restore.num_calls()), (1, 1));
}

/// DescribeImages of image 1 by digest at `account`, answering `status`.
fn status_of(account: &'static str, status: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(move |r| {
            r.registry_id() == Some(account)
                && r.image_ids().first().and_then(|i| i.image_digest()) == Some(digest(1).as_str())
        })
        .then_output(move || {
            DescribeImagesOutput::builder()
                .image_details(image(1, "v1", Some(status)))
                .build()
        })
}

/// Runs an archive (`archive`) or restore of image 1 with the source and the destination
/// copy in the given states; returns whether it acted and how often UpdateImageStorageClass
/// was called.
async fn follow(source: &'static str, held: &'static str, archive: bool) -> (bool, usize) {
    let (src, dst) = (status_of(SOURCE, source), status_of(DESTINATION, held));
    let update = storage_class(
        1,
        if archive { "ARCHIVE" } else { "STANDARD" },
        if archive { "ARCHIVED" } else { "ACTIVATING" },
    );
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&src, &dst, &update]);
    let replicator = replicator(client, "follow");
    let target = replicator
        .config()
        .destinations_for("app", Some("v1"))
        .unwrap()
        .remove(0);
    let acted = replicator
        .follow_source_storage_class(
            &crate::config::Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com"),
            "app",
            &digest(1),
            &target,
            archive,
            &[],
        )
        .await
        .unwrap();
    (acted, update.num_calls())
}

/// An archive at the source while another source repository, `other`, whose image lands in
/// the same destination repository holds the image in state `held_by_other`.
async fn follow_fan_in(held_by_other: &'static str) -> (bool, usize) {
    let src = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.registry_id() == Some(SOURCE) && r.repository_name() == Some("app"))
        .then_output(|| {
            DescribeImagesOutput::builder()
                .image_details(image(1, "v1", Some("ARCHIVED")))
                .build()
        });
    let other = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.registry_id() == Some(SOURCE) && r.repository_name() == Some("other"))
        .then_output(move || {
            DescribeImagesOutput::builder()
                .image_details(image(1, "v1", Some(held_by_other)))
                .build()
        });
    let dst = status_of(DESTINATION, "ACTIVE");
    let update = storage_class(1, "ARCHIVE", "ARCHIVED");
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&src, &other, &dst, &update]
    );
    let replicator = replicator(client, "follow");
    let target = replicator
        .config()
        .destinations_for("app", Some("v1"))
        .unwrap()
        .remove(0);
    let source = crate::config::Registry::from_host("111111111111.dkr.ecr.us-east-1.amazonaws.com");
    let acted = replicator
        .follow_source_storage_class(
            &source,
            "app",
            &digest(1),
            &target,
            true,
            &[(source.clone(), "other".to_string())],
        )
        .await
        .unwrap();
    (acted, update.num_calls())
}

// moto lacks `imageStatus` in DescribeImages and UpdateImageStorageClass.
#[tokio::test]
async fn an_archive_waits_while_another_source_of_the_copy_holds_it_active() {
    assert_eq!(follow_fan_in("ACTIVE").await, (false, 0));
    assert_eq!(follow_fan_in("ACTIVATING").await, (false, 0));
    assert_eq!(follow_fan_in("ARCHIVED").await, (true, 1));
}

// moto lacks `imageStatus` in DescribeImages and UpdateImageStorageClass.
#[tokio::test]
async fn a_followed_archive_or_restore_acts_only_on_what_the_registries_hold_now() {
    assert_eq!(follow("ARCHIVED", "ACTIVE", true).await, (true, 1));
    assert_eq!(follow("ACTIVE", "ARCHIVED", false).await, (true, 1));
    // A late archive of an image restored since, or a late restore of one archived again.
    assert_eq!(follow("ACTIVE", "ACTIVE", true).await, (false, 0));
    assert_eq!(follow("ARCHIVED", "ARCHIVED", false).await, (false, 0));
    // The copy is already where the source is.
    assert_eq!(follow("ARCHIVED", "ARCHIVED", true).await, (false, 0));
    assert_eq!(follow("ACTIVATING", "ACTIVATING", false).await, (false, 0));
}

/// DescribeImages (every status) of `repository` at the source: image 1 as `v1` in `status`.
fn listing_of(repository: &'static str, status: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(move |r| {
            r.registry_id() == Some(SOURCE)
                && r.repository_name() == Some(repository)
                && r.image_ids().is_empty()
        })
        .then_output(move || {
            DescribeImagesOutput::builder()
                .image_details(image(1, "v1", Some(status)))
                .build()
        })
}

// moto lacks `imageStatus` in DescribeImages.
#[tokio::test]
async fn a_plan_does_not_archive_a_copy_another_source_holds_active() {
    let (_, _, _, cache, signing) = registries();
    let (app, other) = (listing_of("app", "ARCHIVED"), listing_of("other", "ACTIVE"));
    let dst = listing(DESTINATION, vec![image(1, "v1", Some("ACTIVE"))]);
    let repos = mock!(aws_sdk_ecr::Client::describe_repositories).then_output(|| {
        DescribeRepositoriesOutput::builder()
            .repositories(Repository::builder().repository_name("app").build())
            .repositories(Repository::builder().repository_name("other").build())
            .build()
    });
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&app, &other, &dst, &repos, &cache, &signing]
    );
    // Both source repositories land in `merged`.
    let replicator = replicator_with(
        client,
        &format!(
            r#"{{"source": {{"registryId": "{SOURCE}", "region": "us-east-1"}},
            "rules": [{{"archive": "follow", "destinations": [{{"registryId": "{DESTINATION}",
                        "region": "eu-west-1", "repositoryName": "merged"}}]}}]}}"#
        ),
    );
    let plan = crate::sync::plan(&replicator).await.unwrap();
    let mut got: Vec<(String, Action)> = plan
        .items
        .iter()
        .map(|i| (i.source_repository.to_string(), i.action))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("app".to_string(), Action::Archived),
            ("other".to_string(), Action::Skip)
        ],
        "the copy `other` still holds active is not archived"
    );
    assert_eq!(plan.summary.archive, 0);
}
