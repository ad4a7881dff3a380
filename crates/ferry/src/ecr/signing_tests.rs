//! Managed signing, ListImageReferrers and pull-through cache rules against
//! `aws-smithy-mocks` stand-ins: moto 5.2 has none of GetSigningConfiguration,
//! ListImageReferrers and DescribePullThroughCacheRules. Each answer is what ECR's API
//! model allows, including hostile values at each boundary.

use aws_sdk_ecr::operation::describe_pull_through_cache_rules::DescribePullThroughCacheRulesOutput;
use aws_sdk_ecr::operation::get_signing_configuration::{
    GetSigningConfigurationError, GetSigningConfigurationOutput,
};
use aws_sdk_ecr::operation::list_image_referrers::{
    ListImageReferrersError, ListImageReferrersOutput,
};
use aws_sdk_ecr::types::error::{SigningConfigurationNotFoundException, ValidationException};
use aws_sdk_ecr::types::{
    ImageReferrer, PullThroughCacheRule, SigningConfiguration, SigningRepositoryFilter,
    SigningRepositoryFilterType, SigningRule as SdkRule,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;

use super::tests::{control, registry};
use super::*;

fn sdk_rule(profile: &str, filters: &[&str]) -> SdkRule {
    let mut b = SdkRule::builder().signing_profile_arn(profile);
    for f in filters {
        b = b.repository_filters(
            SigningRepositoryFilter::builder()
                .filter(*f)
                .filter_type(SigningRepositoryFilterType::WildcardMatch)
                .build()
                .unwrap(),
        );
    }
    b.build().unwrap()
}

fn signing_answer(account: &'static str, rules: Vec<SdkRule>) -> GetSigningConfigurationOutput {
    let mut c = SigningConfiguration::builder();
    for r in rules {
        c = c.rules(r);
    }
    GetSigningConfigurationOutput::builder()
        .registry_id(account)
        .signing_configuration(c.build().unwrap())
        .build()
}

// moto lacks GetSigningConfiguration.
#[tokio::test]
async fn signing_rules_select_repositories_and_hostile_filters_never_widen_them() {
    let profile = "arn:aws:signer:eu-west-1:111111111111:/signing-profiles/prod";
    let rule = mock!(aws_sdk_ecr::Client::get_signing_configuration).then_output(move || {
        signing_answer(
            "111111111111",
            vec![
                // One good filter and two that are no repository wildcard.
                sdk_rule(profile, &["team/*", "x\u{0}*", "Evil/*"]),
                // Only hostile filters: dropped, never "every repository".
                sdk_rule("arn:aws:signer:x\n:evil", &["\u{1b}[31m*"]),
            ],
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let config = control(client)
        .signing_configuration(&registry(), None)
        .await
        .unwrap()
        .expect("a configuration");
    assert_eq!(config.rules.len(), 1, "{config:?}");
    assert_eq!(config.rules[0].filters, ["team/*"]);
    assert_eq!(config.profile_for("team/api"), Some(profile));
    assert_eq!(config.profile_for("other/api"), None);
    assert_eq!(rule.num_calls(), 1);
}

// moto lacks GetSigningConfiguration.
#[tokio::test]
async fn a_rule_without_filters_signs_everything_and_a_bad_profile_is_not_shown() {
    let rule = mock!(aws_sdk_ecr::Client::get_signing_configuration)
        .then_output(|| signing_answer("111111111111", vec![sdk_rule("arn:aws:x\u{7}", &[])]));
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let config = control(client)
        .signing_configuration(&registry(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        config.profile_for("any/repo"),
        Some("<invalid profile ARN>")
    );
}

// moto lacks GetSigningConfiguration. The API has no registry ID: the answer for another
// account (the caller's own, when the destination is written without a role into it) is
// not the destination's.
#[tokio::test]
async fn a_signing_configuration_of_another_account_or_none_is_not_used() {
    let other = mock!(aws_sdk_ecr::Client::get_signing_configuration)
        .then_output(|| signing_answer("999999999999", vec![sdk_rule("arn:aws:signer:p", &[])]));
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&other]);
    assert_eq!(
        control(client)
            .signing_configuration(&registry(), None)
            .await
            .unwrap(),
        None
    );
    let none = mock!(aws_sdk_ecr::Client::get_signing_configuration).then_error(|| {
        GetSigningConfigurationError::SigningConfigurationNotFoundException(
            SigningConfigurationNotFoundException::builder()
                .meta(
                    ErrorMetadata::builder()
                        .code("SigningConfigurationNotFoundException")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&none]);
    assert_eq!(
        control(client)
            .signing_configuration(&registry(), None)
            .await
            .unwrap(),
        None
    );
}

fn referrer(digest: &str, media_type: &str, artifact: Option<&str>, size: i64) -> ImageReferrer {
    let mut b = ImageReferrer::builder()
        .digest(digest)
        .media_type(media_type)
        .size(size);
    if let Some(a) = artifact {
        b = b.artifact_type(a);
    }
    b.build().unwrap()
}

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

// moto lacks ListImageReferrers.
#[tokio::test]
async fn image_referrers_are_paged_and_hostile_entries_refused() {
    let subject = Digest::of(b"subject");
    let (good1, good2) = (Digest::of(b"sig"), Digest::of(b"sbom"));
    let (g1, g2) = (good1.to_string(), good2.to_string());
    let first = mock!(aws_sdk_ecr::Client::list_image_referrers)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            ListImageReferrersOutput::builder()
                .referrers(referrer(&g1, OCI, Some(signing::NOTATION_SIGNATURE), 700))
                .referrers(referrer("sha256:../../etc", OCI, None, 10))
                .referrers(referrer(
                    &Digest::of(b"big").to_string(),
                    OCI,
                    None,
                    i64::MAX,
                ))
                .referrers(referrer(&Digest::of(b"neg").to_string(), OCI, None, -1))
                .referrers(referrer(
                    &Digest::of(b"mt").to_string(),
                    "x\r\nEvil: 1",
                    None,
                    1,
                ))
                .next_token("page-2")
                .build()
        });
    let second = mock!(aws_sdk_ecr::Client::list_image_referrers)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            ListImageReferrersOutput::builder()
                .referrers(referrer(&g2, OCI, Some("application/spdx+json"), 500))
                .build()
        });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&first, &second]);
    let listed = control(client)
        .list_image_referrers(&registry(), None, "app", &subject)
        .await
        .unwrap()
        .expect("an answer");
    let digests: Vec<_> = listed.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(digests, [good1, good2]);
    assert_eq!(
        listed[0].artifact_type.as_deref(),
        Some(signing::NOTATION_SIGNATURE)
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

// moto lacks ListImageReferrers.
#[tokio::test]
async fn image_referrers_stop_at_a_repeated_token_and_fall_back_on_refusal() {
    let subject = Digest::of(b"subject");
    let looping = mock!(aws_sdk_ecr::Client::list_image_referrers).then_output(|| {
        ListImageReferrersOutput::builder()
            .next_token("same")
            .build()
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&looping]);
    let err = control(client)
        .list_image_referrers(&registry(), None, "app", &subject)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("page token repeats"), "{err}");
    assert_eq!(looping.num_calls(), 2);

    // A refusal (an endpoint or policy without the API): no answer, so the caller falls
    // back to the tag schema.
    let refused = mock!(aws_sdk_ecr::Client::list_image_referrers).then_error(|| {
        ListImageReferrersError::ValidationException(
            ValidationException::builder()
                .meta(ErrorMetadata::builder().code("ValidationException").build())
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&refused]);
    assert_eq!(
        control(client)
            .list_image_referrers(&registry(), None, "app", &subject)
            .await
            .unwrap(),
        None
    );
}

// moto lacks DescribePullThroughCacheRules.
#[tokio::test]
async fn pull_through_prefixes_must_be_repository_names() {
    let rule = mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules)
        .match_requests(|r| r.registry_id() == Some("111111111111"))
        .then_output(|| {
            let p = |prefix: &str| {
                PullThroughCacheRule::builder()
                    .ecr_repository_prefix(prefix)
                    .upstream_registry_url("registry-1.docker.io")
                    .build()
            };
            DescribePullThroughCacheRulesOutput::builder()
                .pull_through_cache_rules(p("docker-hub"))
                .pull_through_cache_rules(p("../evil"))
                .pull_through_cache_rules(p("Quay"))
                .pull_through_cache_rules(p(""))
                .pull_through_cache_rules(p("docker-hub"))
                .pull_through_cache_rules(PullThroughCacheRule::builder().build())
                .build()
        });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let prefixes = control(client)
        .pull_through_prefixes(&registry(), None)
        .await
        .unwrap();
    assert_eq!(prefixes, ["docker-hub"]);
}
