//! The archive storage class against `aws-smithy-mocks` stand-ins: moto 5.2 has no
//! `imageStatus` / `lastArchivedAt` in DescribeImages (it ignores the `imageStatus`
//! filter and lists every image as if active) and no UpdateImageStorageClass, so every
//! test here stands in for ECR. What moto has (listing with the filter, plans and syncs of
//! active images) is tested end to end in `tests/tests/ecr_archive.rs`.

use std::sync::Arc;

use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::operation::update_image_storage_class::{
    UpdateImageStorageClassError, UpdateImageStorageClassOutput,
};
use aws_sdk_ecr::types::{ImageDetail, Repository};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;

use super::tests::{control, registry};
use super::*;
use crate::auth::Authenticator;
use crate::config::ReplicationConfig;
use crate::copy::{Copier, CopyOptions};
use crate::registry::{ClientOptions, Endpoints, RegistryClient};
use crate::replicate::Replicator;
use crate::sync::{Action, Outcome};

const SOURCE: &str = "111111111111";
const DESTINATION: &str = "222222222222";

fn digest(n: u8) -> Digest {
    Digest::of(&[n])
}

/// A DescribeImages entry; `status` `None` is an entry without `imageStatus` (moto).
fn image(n: u8, tag: &str, status: Option<&str>) -> ImageDetail {
    let mut d = ImageDetail::builder()
        .image_digest(digest(n).as_str())
        .image_tags(tag)
        .image_size_in_bytes(1000);
    if let Some(s) = status {
        d = d.image_status(aws_sdk_ecr::types::ImageStatus::from(s));
        if s != "ACTIVE" {
            d = d.last_archived_at(aws_smithy_types::DateTime::from_secs(1_790_000_000));
        }
    }
    d.build()
}

/// DescribeImages of `account`, answered only when the request asks for every status
/// (`imageStatus` `ANY`): without the filter ECR lists active images only.
fn listing(account: &'static str, images: Vec<ImageDetail>) -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(move |r| {
            r.registry_id() == Some(account)
                && r.image_ids().is_empty()
                && r.filter().and_then(|f| f.image_status())
                    == Some(&aws_sdk_ecr::types::ImageStatusFilter::Any)
        })
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_image_details(Some(images.clone()))
                .build()
        })
}

fn repositories() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_repositories).then_output(|| {
        DescribeRepositoriesOutput::builder()
            .repositories(Repository::builder().repository_name("app").build())
            .build()
    })
}

/// UpdateImageStorageClass of image `n` at the destination to `class`.
fn storage_class(n: u8, class: &'static str, after: &'static str) -> Rule {
    mock!(aws_sdk_ecr::Client::update_image_storage_class)
        .match_requests(move |r| {
            r.registry_id() == Some(DESTINATION)
                && r.repository_name() == Some("app")
                && r.image_id().and_then(|i| i.image_digest()) == Some(digest(n).as_str())
                && r.target_storage_class().map(|c| c.as_str()) == Some(class)
        })
        .then_output(move || {
            UpdateImageStorageClassOutput::builder()
                .image_status(aws_sdk_ecr::types::ImageStatus::from(after))
                .build()
        })
}

// moto lacks `imageStatus` and `lastArchivedAt` in DescribeImages.
#[tokio::test]
async fn listing_reads_every_status_and_when_it_was_archived() {
    let rule = listing(
        "111111111111",
        vec![
            image(1, "active", Some("ACTIVE")),
            image(2, "archived", Some("ARCHIVED")),
            image(3, "restoring", Some("ACTIVATING")),
            image(4, "moto", None),
        ],
    );
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let images = control(client)
        .list_images(&registry(), None, "app")
        .await
        .unwrap();
    let states: Vec<_> = images.iter().map(|e| e.archived.clone()).collect();
    assert_eq!(states[0], None);
    assert_eq!(states[3], None, "no imageStatus is active");
    let archived = states[1].clone().expect("archived");
    assert_eq!(archived.status, ImageStatus::Archived);
    assert_eq!(
        archived.last_archived_at.as_deref(),
        Some("2026-09-21T14:13:20Z")
    );
    assert_eq!(
        states[2].as_ref().map(|s| s.status),
        Some(ImageStatus::Activating)
    );
    assert_eq!(rule.num_calls(), 1);
}

// moto lacks UpdateImageStorageClass.
#[tokio::test]
async fn update_storage_class_names_the_image_and_the_class() {
    let archive = storage_class(7, "ARCHIVE", "ARCHIVED");
    let restore = storage_class(7, "STANDARD", "ACTIVATING");
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&archive, &restore]);
    let ecr = control(client);
    let at = EcrRegistry::new(DESTINATION, "eu-west-1");
    let status = ecr
        .update_storage_class(&at, None, "app", &digest(7), true)
        .await
        .unwrap();
    assert_eq!(status, ImageStatus::Archived);
    let status = ecr
        .update_storage_class(&at, None, "app", &digest(7), false)
        .await
        .unwrap();
    assert_eq!(status, ImageStatus::Activating);
    assert_eq!((archive.num_calls(), restore.num_calls()), (1, 1));
}

// moto lacks UpdateImageStorageClass (and never answers ImageArchivedException).
#[tokio::test]
async fn image_archived_exception_is_a_permanent_archived_error() {
    let rule = mock!(aws_sdk_ecr::Client::update_image_storage_class).then_error(|| {
        UpdateImageStorageClassError::generic(
            ErrorMetadata::builder()
                .code("ImageArchivedException")
                .message("The specified image is archived")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let err = control(client)
        .update_storage_class(&registry(), None, "app", &digest(1), true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "archived", "{err}");
    assert!(!err.is_retryable());
    assert_eq!(rule.num_calls(), 1, "not retried");
}

#[test]
fn registry_answers_about_archives_are_recognised_loosely() {
    assert!(is_archived_answer(
        400,
        Some("ImageArchivedException"),
        "ImageArchivedException: ..."
    ));
    assert!(is_archived_answer(
        403,
        Some("DENIED"),
        "DENIED: image is archived"
    ));
    assert!(is_archived_answer(404, None, "Image Archived"));
    assert!(!is_archived_answer(
        404,
        Some("MANIFEST_UNKNOWN"),
        "manifest unknown"
    ));
    assert!(!is_archived_answer(
        503,
        None,
        "archive service unavailable"
    ));
}

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
