//! The forwarder stack (infra/forwarder.yaml) asserted as data: it sends what the hub's
//! rule accepts to the hub's default event bus, and nothing else.

mod common;

use common::*;
use ferry_infra_check::{get_att, iam_statements};
use serde_json::json;

#[test]
fn forwarder_sends_the_hub_pattern_to_the_hub_default_bus_only() {
    let hub_pattern = hub(&[]).props("EcrImageActionRule")["EventPattern"].clone();
    let r = forwarder(&[("HubRegion", "us-east-1")]);
    let rule = r.props("ForwardRule");
    assert_eq!(
        rule["EventPattern"], hub_pattern,
        "the forwarder must send what the hub's rule accepts"
    );
    let bus = json!("arn:aws:events:us-east-1:111111111111:event-bus/default");
    assert_eq!(rule["Targets"][0]["Arn"], bus);
    assert_eq!(
        rule["Targets"][0]["RoleArn"],
        get_att("ForwarderRole", "Arn")
    );
    assert_eq!(
        rule["Targets"][0]["DeadLetterConfig"]["Arn"],
        get_att("DeadLetterQueue", "Arn")
    );
    let statements: Vec<_> = iam_statements(&r)
        .into_iter()
        .filter(|(origin, _)| origin.starts_with("ForwarderRole/"))
        .collect();
    assert_eq!(statements.len(), 1);
    assert_eq!(
        statements[0].1,
        json!({"Sid": "PutOnHubDefaultBus", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus})
    );
    let trust = &r.props("ForwarderRole")["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"],
        json!({"Service": "events.amazonaws.com"})
    );
    assert_eq!(
        trust["Condition"],
        json!({"StringEquals": {"aws:SourceAccount": "111111111111"}})
    );
    assert_eq!(
        r.props("DeadLetterQueue")["SqsManagedSseEnabled"],
        json!(true)
    );

    let r = forwarder(&[("HubRegion", "us-east-1"), ("HubAccountId", "999999999999")]);
    assert_eq!(
        r.props("ForwardRule")["Targets"][0]["Arn"],
        json!("arn:aws:events:us-east-1:999999999999:event-bus/default")
    );
}

#[test]
fn forwarder_sends_scan_completions_as_the_hub_accepts_them() {
    // Scan completions release images a scan gate holds: a region whose pushes are
    // forwarded must forward its scans too, with the hub rule's pattern and target setup.
    let hub_pattern = hub(&[]).props("ScanCompletedRule")["EventPattern"].clone();
    assert_eq!(
        hub_pattern["detail-type"],
        json!(["ECR Image Scan", "Inspector2 Scan"])
    );
    let r = forwarder(&[("HubRegion", "us-east-1")]);
    let scan = r.props("ForwardScanRule");
    assert_eq!(scan["EventPattern"], hub_pattern);
    assert_eq!(scan["Targets"], r.props("ForwardRule")["Targets"]);
    let dlq = &r.props("DeadLetterQueuePolicy")["PolicyDocument"]["Statement"][0];
    assert_eq!(
        dlq["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!([
            get_att("ForwardRule", "Arn"),
            get_att("ForwardScanRule", "Arn")
        ])
    );
}
