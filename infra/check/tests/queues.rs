//! The hub's queues asserted as data: the jobs queue is FIFO, encrypted and redrives to a
//! FIFO dead-letter queue; its visibility timeout is six times the replicate timeout.

mod common;

use std::collections::BTreeSet;

use common::*;
use ferry_infra_check::{get_att, load, reference};
use serde_json::json;

#[test]
fn jobs_queue_is_fifo_encrypted_and_redrives_to_a_fifo_dlq() {
    let r = hub(&[]);
    let jobs = r.props("JobsQueue");
    assert_eq!(jobs["FifoQueue"], json!(true));
    assert_eq!(
        jobs["ContentBasedDeduplication"],
        json!(false),
        "dispatch supplies deduplication ids"
    );
    assert_eq!(jobs["SqsManagedSseEnabled"], json!(true));
    assert_eq!(jobs.get("KmsMasterKeyId"), None);
    assert_eq!(
        jobs["RedrivePolicy"],
        json!({"deadLetterTargetArn": get_att("JobsDeadLetterQueue", "Arn"), "maxReceiveCount": 5})
    );

    let dlq = r.props("JobsDeadLetterQueue");
    assert_eq!(
        dlq["FifoQueue"],
        json!(true),
        "a FIFO queue's DLQ must be FIFO"
    );
    assert_eq!(dlq["SqsManagedSseEnabled"], json!(true));
    assert_eq!(dlq["MessageRetentionPeriod"], json!(14 * 24 * 3600));

    let events_dlq = r.props("EventsDeadLetterQueue");
    assert_eq!(
        events_dlq.get("FifoQueue"),
        None,
        "EventBridge and Lambda DLQs must be standard queues"
    );
    assert_eq!(events_dlq["SqsManagedSseEnabled"], json!(true));
    assert_eq!(events_dlq["MessageRetentionPeriod"], json!(14 * 24 * 3600));

    // Only the three rules may use the events DLQ through its queue policy.
    let policy = r.props("EventsDeadLetterQueuePolicy");
    assert_eq!(
        policy["Queues"],
        json!([reference("EventsDeadLetterQueue")])
    );
    let st = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(st["Principal"], json!({"Service": "events.amazonaws.com"}));
    assert_eq!(st["Action"], json!("sqs:SendMessage"));
    assert_eq!(
        st["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!([
            get_att("EcrImageActionRule", "Arn"),
            get_att("ScanCompletedRule", "Arn"),
            get_att("ReconcileScheduleRule", "Arn")
        ])
    );
}

#[test]
fn visibility_timeout_is_six_times_the_replicate_timeout() {
    let doc = load(HUB).unwrap();
    let allowed: Vec<u64> = doc["Parameters"]["ReplicateTimeout"]["AllowedValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(allowed, vec![60, 120, 180, 300, 600, 900]);
    assert_eq!(doc["Parameters"]["ReplicateTimeout"]["Default"], json!(900));
    let mapped: BTreeSet<u64> = doc["Mappings"]["ReplicateTimeouts"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    assert_eq!(
        mapped,
        allowed.iter().copied().collect(),
        "one mapping row per allowed timeout"
    );

    for timeout in allowed {
        assert!(timeout <= 900, "Lambda's maximum timeout is 900 s");
        let t = timeout.to_string();
        let r = hub(&[("ReplicateTimeout", &t)]);
        assert_eq!(r.props("ReplicateFunction")["Timeout"], json!(t));
        let visibility = r.props("JobsQueue")["VisibilityTimeout"].as_u64().unwrap();
        assert_eq!(visibility, 6 * timeout, "timeout {timeout}");
        assert!(visibility <= 43_200, "SQS maximum visibility timeout");
    }
}
