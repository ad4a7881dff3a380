//! The archive storage class against `aws-smithy-mocks` stand-ins: moto 5.2 has no
//! `imageStatus` / `lastArchivedAt` in DescribeImages (it ignores the `imageStatus`
//! filter and lists every image as if active) and no UpdateImageStorageClass, so every
//! test here stands in for ECR. What moto has (listing with the filter, plans and syncs of
//! active images) is tested end to end in `tests/tests/ecr_archive.rs`.

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

pub(crate) const SOURCE: &str = "111111111111";
pub(crate) const DESTINATION: &str = "222222222222";

pub(crate) fn digest(n: u8) -> Digest {
    Digest::of(&[n])
}

/// A DescribeImages entry; `status` `None` is an entry without `imageStatus` (moto).
pub(crate) fn image(n: u8, tag: &str, status: Option<&str>) -> ImageDetail {
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
pub(crate) fn listing(account: &'static str, images: Vec<ImageDetail>) -> Rule {
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

pub(crate) fn repositories() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_repositories).then_output(|| {
        DescribeRepositoriesOutput::builder()
            .repositories(Repository::builder().repository_name("app").build())
            .build()
    })
}

/// UpdateImageStorageClass of image `n` at the destination to `class`.
pub(crate) fn storage_class(n: u8, class: &'static str, after: &'static str) -> Rule {
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
