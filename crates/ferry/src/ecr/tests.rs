//! ECR control-plane calls against `aws-smithy-mocks` stand-ins: only for behaviour moto
//! cannot play (each test says which API or field moto lacks). Everything moto has is
//! tested end to end in `tests/tests/ecr_control.rs`.

use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::types::{ImageTagMutability, ImageTagMutabilityExclusionFilter, Repository};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::*;

/// An [`EcrControl`] whose every ECR call is answered by `client`.
pub(crate) fn control(client: aws_sdk_ecr::Client) -> EcrControl {
    let base = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    EcrControl::new(AwsContext::new(base).with_ecr_client(client))
}

/// The registry the stand-in tests address.
pub(crate) fn registry() -> EcrRegistry {
    EcrRegistry {
        account: "111111111111".into(),
        region: "eu-west-1".into(),
        fips: false,
        suffix: "amazonaws.com".into(),
    }
}

// The stand-in's wiring (`AwsContext::with_ecr_client`), on a call moto also plays: the
// request reaches the rule with its registry ID, and the answer is read as from ECR.
#[tokio::test]
async fn repository_settings_read_the_mutability_exclusions() {
    let rule = mock!(aws_sdk_ecr::Client::describe_repositories)
        .match_requests(|r| {
            r.repository_names() == ["app"] && r.registry_id() == Some("111111111111")
        })
        .then_output(|| {
            DescribeRepositoriesOutput::builder()
                .repositories(
                    Repository::builder()
                        .repository_name("app")
                        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
                        .image_tag_mutability_exclusion_filters(
                            ImageTagMutabilityExclusionFilter::builder()
                                .filter("latest")
                                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let settings = control(client)
        .repository_settings(&registry(), None, "app")
        .await
        .unwrap()
        .unwrap();
    assert!(settings.tag_immutable("v1"));
    assert!(!settings.tag_immutable("latest"));
    assert_eq!(rule.num_calls(), 1);
}

/// A role of the registry's own account (111111111111).
fn own_role() -> AssumeRole {
    AssumeRole {
        role_arn: "arn:aws:iam::111111111111:role/ferry-writer".into(),
        external_id: None,
    }
}

// moto 5.2 has no GetAccountSetting.
#[tokio::test]
async fn blob_mounting_follows_the_account_setting_read_with_that_accounts_credentials() {
    use aws_sdk_ecr::operation::get_account_setting::GetAccountSettingOutput;
    for (value, expected) in [("ENABLED", Some(true)), ("DISABLED", Some(false))] {
        let rule = mock!(aws_sdk_ecr::Client::get_account_setting)
            .match_requests(|r| r.name() == Some("BLOB_MOUNTING"))
            .then_output(move || {
                GetAccountSettingOutput::builder()
                    .name("BLOB_MOUNTING")
                    .value(value)
                    .build()
            });
        let ecr = control(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]));
        assert_eq!(
            ecr.blob_mounting(&registry(), Some(&own_role())).await,
            expected
        );
        assert_eq!(rule.num_calls(), 1);
    }

    // A role of another account would read that account's setting: not asked at all.
    let rule = mock!(aws_sdk_ecr::Client::get_account_setting)
        .then_output(|| GetAccountSettingOutput::builder().value("ENABLED").build());
    let ecr = control(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]));
    let other = AssumeRole {
        role_arn: "arn:aws:iam::999999999999:role/ferry-writer".into(),
        external_id: None,
    };
    assert_eq!(ecr.blob_mounting(&registry(), Some(&other)).await, None);
    assert_eq!(rule.num_calls(), 0);

    // An error (no permission, an API the region lacks) is "unknown", never "off".
    let denied = mock!(aws_sdk_ecr::Client::get_account_setting).then_error(|| {
        aws_sdk_ecr::operation::get_account_setting::GetAccountSettingError::unhandled(
            "AccessDeniedException",
        )
    });
    let ecr = control(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&denied]));
    assert_eq!(
        ecr.blob_mounting(&registry(), Some(&own_role())).await,
        None
    );
}
