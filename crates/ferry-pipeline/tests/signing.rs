//! ECR managed signing end to end: the signature ECR pushes after the image (its own
//! `ECR Referrer Action` event) reaches every destination, through moto's EventBridge and
//! SQS, the real dispatch and replicate handlers and real registries; and a destination
//! that signs images itself gets the source's signatures only with `referrers: true`
//! written out. moto 5.2 has no GetSigningConfiguration: that test's ECR control plane is
//! an `aws-smithy-mocks` stand-in (registries, queues and events stay real).

mod support;

use std::sync::Arc;

use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::operation::get_signing_configuration::GetSigningConfigurationOutput;
use aws_sdk_ecr::types::{
    Repository, SigningConfiguration, SigningRepositoryFilter, SigningRepositoryFilterType,
    SigningRule,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use ferry::aws::AwsContext;
use ferry::ecr::EcrControl;
use ferry::replicate::Replicator;
use ferry_e2e::{EcrRegistry, fixtures};
use ferry_pipeline::Status;
use ferry_pipeline::job::JobAction;
use serde_json::json;
use support::{ACCOUNT_B, Options, Sandbox, detail, push_details};

fn digest_at(r: &EcrRegistry, repo: &str, reference: &str) -> Option<String> {
    r.registry()
        .manifest_digest(repo, reference)
        .expect("HEAD manifest")
}

#[test]
fn a_signature_pushed_after_its_image_reaches_every_destination() {
    let sb = Sandbox::start().expect("sandbox");
    let mut f = fixtures::single_image(&sb.src, "team/api", "v1", 41).expect("fixture");
    sb.publish(&push_details(&f)).expect("publish");
    sb.run_dispatch().expect("dispatch");
    sb.run_replicate(2).expect("replicate");
    for dst in sb.destinations() {
        assert_eq!(
            digest_at(dst, "team/api", "v1").as_deref(),
            Some(f.digest.as_str())
        );
    }

    // ECR signs the image after the push: a Notation signature whose subject is it.
    let (_, subject) = sb
        .src
        .registry()
        .manifest("team/api", &f.digest)
        .expect("GET")
        .expect("subject");
    fixtures::attach_referrer(
        &fixtures::Target::from(&sb.src),
        &mut f,
        subject.len() as u64,
        fixtures::media::NOTATION_SIGNATURE,
        &json!({"payload": "eyJ0YXJnZXRBcnRpZmFjdCI6e319", "signature": "ZmFrZQ"}),
    )
    .expect("signature");
    let signature = f.referrers.last().expect("signature").clone();
    for dst in sb.destinations() {
        assert_eq!(digest_at(dst, "team/api", &signature), None);
    }

    // Its own events: the digest-only push (no rule has `untagged`: no job) and the
    // Referrer Action (one referrer job per destination).
    let mut referrer = detail(
        "PUSH",
        "team/api",
        None,
        &signature,
        "application/vnd.oci.image.manifest.v1+json",
    );
    referrer["artifact-media-type"] = json!(fixtures::media::NOTATION_SIGNATURE);
    sb.publish(std::slice::from_ref(&referrer))
        .expect("publish push");
    sb.publish_as("ECR Referrer Action", &[referrer])
        .expect("publish referrer");
    let d = sb.run_dispatch().expect("dispatch");
    assert_eq!((d.received, d.acked, d.failed), (2, 2, 0));
    assert_eq!(
        sb.queue_depth(&sb.jobs_queue).unwrap(),
        2,
        "one job per destination"
    );
    let r = sb.run_replicate(2).expect("replicate");
    assert_eq!((r.received, r.acked, r.failed), (2, 2, 0));

    let fallback = format!("sha256-{}", f.digest.trim_start_matches("sha256:"));
    for dst in sb.destinations() {
        assert_eq!(
            digest_at(dst, "team/api", &signature).as_deref(),
            Some(signature.as_str()),
            "{}",
            dst.ecr_host()
        );
        // distribution has no referrers API: the destination's tag-schema index lists it.
        let (_, index) = dst
            .registry()
            .manifest("team/api", &fallback)
            .expect("GET")
            .expect("fallback index");
        let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(index["manifests"][0]["digest"], json!(signature));
        // The image was not moved again.
        assert_eq!(
            digest_at(dst, "team/api", "v1").as_deref(),
            Some(f.digest.as_str())
        );
    }
    let results = sb.results().expect("results");
    let referrer_results: Vec<_> = results
        .iter()
        .filter(|x| x.action == JobAction::Referrer)
        .collect();
    assert_eq!(referrer_results.len(), 2, "{results:#?}");
    assert!(
        referrer_results
            .iter()
            .all(|x| x.status == Status::Succeeded && x.blobs_copied == 2),
        "{referrer_results:#?}"
    );
}

const PROFILE: &str = "arn:aws:signer:us-west-2:222222222222:/signing-profiles/prod";

/// The sandbox's engine with an ECR control plane that answers GetSigningConfiguration
/// (moto lacks it) as account B's registry: it signs `team/*` itself. Account A's
/// destination gets the same answer, which names account B, so it is not A's.
fn signing_replicator(sb: &Sandbox) -> Replicator {
    let signing = mock!(aws_sdk_ecr::Client::get_signing_configuration).then_output(|| {
        let rule = SigningRule::builder()
            .signing_profile_arn(PROFILE)
            .repository_filters(
                SigningRepositoryFilter::builder()
                    .filter("team/*")
                    .filter_type(SigningRepositoryFilterType::WildcardMatch)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        GetSigningConfigurationOutput::builder()
            .registry_id(ACCOUNT_B)
            .signing_configuration(SigningConfiguration::builder().rules(rule).build().unwrap())
            .build()
    });
    let repositories = mock!(aws_sdk_ecr::Client::describe_repositories).then_output(|| {
        DescribeRepositoriesOutput::builder()
            .repositories(Repository::builder().repository_name("team/api").build())
            .build()
    });
    // Replicate also asks for the destination account's BLOB_MOUNTING setting (moto lacks
    // it too): unknown, so mounts are tried as before.
    let mounting = mock!(aws_sdk_ecr::Client::get_account_setting).then_error(|| {
        aws_sdk_ecr::operation::get_account_setting::GetAccountSettingError::unhandled(
            "AccessDeniedException",
        )
    });
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&signing, &repositories, &mounting]
    );
    let aws = AwsContext::new(sb.sdk.clone()).with_ecr_client(client);
    Replicator::new(
        sb.replicator.copier().clone(),
        Some(EcrControl::new(aws)),
        sb.config.clone(),
    )
}

fn a_destination_that_signs_itself(explicit: bool) {
    let rule = if explicit {
        json!({"referrers": true})
    } else {
        json!({})
    };
    let sb = Sandbox::start_with(
        Options {
            rule,
            ..Options::default()
        },
        &Default::default(),
    )
    .expect("sandbox");
    let mut f = fixtures::single_image(&sb.src, "team/api", "v1", 43).expect("fixture");
    let (_, subject) = sb
        .src
        .registry()
        .manifest("team/api", &f.digest)
        .expect("GET")
        .expect("subject");
    fixtures::attach_referrer(
        &fixtures::Target::from(&sb.src),
        &mut f,
        subject.len() as u64,
        fixtures::media::NOTATION_SIGNATURE,
        &json!({"payload": "e30", "signature": "ZmFrZQ"}),
    )
    .expect("signature");
    let signature = f.referrers.last().expect("signature").clone();
    let replicator = signing_replicator(&sb);

    // The plan says which destination signs itself, and whether signatures still go.
    let plan = sb
        .rt
        .block_on(ferry::sync::plan(&replicator))
        .expect("plan");
    let west = format!("{}/team/api", sb.west.ecr_host());
    assert_eq!(
        plan.self_signed
            .iter()
            .map(|n| (
                n.destination.as_str(),
                n.signing_profile_arn.as_str(),
                n.copies_source_signatures
            ))
            .collect::<Vec<_>>(),
        [(west.as_str(), PROFILE, explicit)]
    );

    sb.publish(&push_details(&f)).expect("publish");
    sb.run_dispatch().expect("dispatch");
    let report = sb
        .replicate_batch(Some(Arc::new(replicator)))
        .expect("replicate");
    assert_eq!(report.response().batch_item_failures.len(), 0);
    for dst in sb.destinations() {
        assert_eq!(
            digest_at(dst, "team/api", "v1").as_deref(),
            Some(f.digest.as_str())
        );
    }
    // Account A does not sign: the source's signature is there.
    assert_eq!(
        digest_at(&sb.eu, "team/api", &signature).as_deref(),
        Some(signature.as_str())
    );
    // Account B signs itself: the source's signature only with `referrers: true`.
    assert_eq!(
        digest_at(&sb.west, "team/api", &signature).is_some(),
        explicit,
        "explicit: {explicit}"
    );
}

#[test]
fn a_destination_that_signs_itself_gets_no_source_signature_by_default() {
    a_destination_that_signs_itself(false);
}

#[test]
fn a_destination_that_signs_itself_gets_the_source_signatures_with_referrers_true() {
    a_destination_that_signs_itself(true);
}
