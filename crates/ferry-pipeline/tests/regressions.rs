//! Inputs the fuzzers found (kept under `fuzz/regressions/`), as regression tests.

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Fuzz inputs may start with a selector byte before the JSON.
    let start = bytes.iter().position(|b| *b == b'{').unwrap_or(0);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[test]
fn event_repository_names_with_a_colon_or_trailing_slash_are_malformed() {
    for f in [
        "ecr_event/push-repository-with-colon.json",
        "ecr_event/repository-trailing-slash-dropped.json",
        "ecr_event/repository-with-colon-read-as-tag.json",
        "ecr_event/tag-trailing-slash-dropped.json",
    ] {
        let value: serde_json::Value = serde_json::from_str(&read(f)).expect("json");
        assert!(
            ferry_pipeline::event::parse_event(value).is_err(),
            "{f} must be refused"
        );
    }
}

#[test]
fn jobs_with_a_bad_target_are_refused_without_panicking() {
    for f in [
        "job/group-id-char-boundary.json",
        "job/target-registry-not-a-host.json",
    ] {
        let body = read(f);
        if let Ok(job) = ferry_pipeline::job::Job::decode(&body) {
            // Whatever decodes yields a valid group id (≤ 128 bytes, no panic).
            assert!(job.group_id().len() <= 128, "{f}");
        }
    }
}
