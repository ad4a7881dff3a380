//! Invariants every job must keep, shared by the `ecr_event` and `job` targets.

use ferry::reference::{validate_repository, validate_tag};
use ferry_pipeline::Job;

/// A job survives encode and decode, and its SQS ids are within SQS's rules.
pub fn check_job(job: &Job) {
    let body = job.encode();
    let again = Job::decode(&body).unwrap_or_else(|e| panic!("encoded job refused: {e}\n{body}"));
    assert_eq!(&again, job, "{body}");

    // MessageGroupId: at most 128 characters of alphanumerics and punctuation.
    let group = job.group_id();
    assert!(
        group.len() <= 128,
        "group id of {} bytes: {group:?}",
        group.len()
    );
    assert!(
        group.bytes().all(|b| b.is_ascii_graphic()),
        "group id outside SQS's character set: {group:?}"
    );
    // MessageDeduplicationId: a sha256 in hex.
    let dedup = job.deduplication_id();
    assert_eq!(dedup.len(), 64);
    assert!(dedup.bytes().all(|b| b.is_ascii_hexdigit()));

    let source = job
        .source_reference()
        .expect("a decoded job has a valid source");
    assert!(validate_repository(&source.repository).is_ok());
    if let Some(t) = &job.source.tag {
        assert!(validate_tag(t).is_ok(), "{t:?}");
    }
    let _ = job.destination();

    // Authorization against a fixed config never panics, and what it accepts is exactly
    // the job's destination, with the config's settings.
    let config = ferry::config::ReplicationConfig::from_json(
        r#"{"rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2",
             "repositoryName": "dr/{region}/{repository}"}]}]}"#,
    )
    .expect("static config");
    if let Ok(t) = ferry_pipeline::authorize::authorize(job, &config) {
        assert_eq!(t.repository, job.target.repository);
        assert_eq!(
            t.destination.registry,
            ferry::config::Registry::from_host(&job.target.registry)
        );
    }
}
