//! ECR Image Action events as dispatch receives them: `ferry_pipeline::event::parse_event`,
//! then the jobs `ferry_pipeline::dispatch::jobs_for` makes of them under an example
//! configuration.
//!
//! The first byte picks a mode: `0` fills the fields of a valid push event with fuzzed
//! strings; anything else reads the rest as the event's JSON.
#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use ferry::config::ReplicationConfig;
use ferry::reference::{validate_repository, validate_tag};
use ferry_pipeline::dispatch::jobs_for;
use ferry_pipeline::event::{ActionType, Incoming, parse_event};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[path = "job_checks.rs"]
mod job_checks;

static CONFIGS: LazyLock<Vec<ReplicationConfig>> = LazyLock::new(|| {
    [
        include_str!("../../examples/config/native-replication.json"),
        include_str!("../../examples/config/dr-fanout.json"),
        include_str!("../../examples/config/central-distribution.json"),
    ]
    .iter()
    .map(|t| ReplicationConfig::from_json(t).expect("example config"))
    .collect()
});

#[derive(Arbitrary, Debug)]
struct Fields {
    account: String,
    region: String,
    action: String,
    result: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
    id: String,
    time: String,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let value = if mode == 0 {
        let Ok(f) = Fields::arbitrary(&mut Unstructured::new(rest)) else {
            return;
        };
        let mut detail = json!({
            "result": f.result,
            "repository-name": f.repository,
            "action-type": f.action,
        });
        if let Some(t) = f.tag {
            detail["image-tag"] = t.into();
        }
        if let Some(d) = f.digest {
            detail["image-digest"] = d.into();
        }
        json!({
            "version": "0",
            "id": f.id,
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": f.account,
            "time": f.time,
            "region": f.region,
            "resources": [],
            "detail": detail,
        })
    } else {
        match serde_json::from_slice::<serde_json::Value>(rest) {
            Ok(v) => v,
            Err(_) => return,
        }
    };

    let Ok(Incoming::Image(action)) = parse_event(value) else {
        return;
    };
    assert!(!action.event_id.is_empty());
    assert!(action.registry.is_ecr(), "{:?}", action.registry);
    assert!(
        validate_repository(&action.repository).is_ok(),
        "accepted repository {:?}",
        action.repository
    );
    if let Some(t) = &action.tag {
        assert!(validate_tag(t).is_ok(), "accepted tag {t:?}");
    }
    if matches!(action.action_type, ActionType::Push | ActionType::Delete) {
        assert!(action.digest.is_some(), "a push or delete without a digest");
    }
    for config in CONFIGS.iter() {
        if let Ok(Ok(jobs)) = jobs_for(&action, config) {
            for job in &jobs {
                job_checks::check_job(job);
                assert_eq!(job.source.repository, action.repository);
                assert_eq!(job.source.digest, action.digest);
            }
        }
    }
});
