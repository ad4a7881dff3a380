//! ECR managed signing end to end: the signature ECR pushes after the image (its own
//! `ECR Referrer Action` event) reaches every destination, through moto's EventBridge and
//! SQS, the real dispatch and replicate handlers and real registries. moto 5.2 has no
//! GetSigningConfiguration: the destinations here sign nothing themselves (that path is
//! tested against a stand-in in `ferry::ecr::signing_tests`).

mod support;

use ferry_e2e::{EcrRegistry, fixtures};
use ferry_pipeline::Status;
use ferry_pipeline::job::JobAction;
use serde_json::json;
use support::{Sandbox, detail, push_details};

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
