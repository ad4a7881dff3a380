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
