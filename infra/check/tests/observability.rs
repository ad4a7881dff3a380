//! The hub's observability asserted as data: alarms on the dead-letter queues, job age,
//! errors, throttles and rejected jobs; log retention and the result bus output; the
//! dashboard.

mod common;

use std::collections::BTreeMap;

use common::*;
use ferry_infra_check::{Rendered, get_att, reference};
use serde_json::{Value, json};

fn alarm<'a>(r: &'a Rendered, namespace: &str, metric: &str, dimension: &Value) -> Vec<&'a Value> {
    r.resources_of_type("AWS::CloudWatch::Alarm")
        .map(|(_, a)| &a["Properties"])
        .filter(|p| p["Namespace"] == json!(namespace) && p["MetricName"] == json!(metric))
        .filter(|p| {
            p["Dimensions"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| &d["Value"] == dimension))
        })
        .collect()
}

#[test]
fn alarms_cover_dlqs_job_age_errors_throttles_and_rejected_jobs() {
    for (overrides, actions) in [
        (vec![], None),
        (
            vec![("AlarmEmail", "ops@example.com")],
            Some(json!([reference("AlarmTopic")])),
        ),
    ] {
        let r = hub(&overrides);
        let mut seen = 0;
        for queue in ["JobsDeadLetterQueue", "EventsDeadLetterQueue"] {
            let found = alarm(
                &r,
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &get_att(queue, "QueueName"),
            );
            assert_eq!(found.len(), 1, "{queue}");
            assert_eq!(
                found[0]["Threshold"],
                json!(0),
                "{queue}: any message in a DLQ alarms"
            );
            assert_eq!(
                found[0]["ComparisonOperator"],
                json!("GreaterThanThreshold"),
                "{queue}"
            );
            assert_eq!(found[0]["Statistic"], json!("Maximum"), "{queue}");
            assert_eq!(found[0].get("AlarmActions"), actions.as_ref(), "{queue}");
            seen += 1;
        }
        let age = alarm(
            &r,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            &get_att("JobsQueue", "QueueName"),
        );
        assert_eq!(age.len(), 1);
        assert_eq!(age[0]["Threshold"], json!("1800"));
        assert_eq!(age[0]["ComparisonOperator"], json!("GreaterThanThreshold"));
        assert_eq!(age[0].get("AlarmActions"), actions.as_ref());
        seen += 1;
        for (id, _) in FUNCTIONS {
            for metric in ["Errors", "Throttles"] {
                let found = alarm(&r, "AWS/Lambda", metric, &reference(id));
                assert_eq!(found.len(), 1, "{id} {metric}");
                assert_eq!(found[0]["Threshold"], json!(0), "{id} {metric}");
                assert_eq!(found[0]["Statistic"], json!("Sum"), "{id} {metric}");
                assert_eq!(
                    found[0]["Dimensions"][0]["Name"],
                    json!("FunctionName"),
                    "{id} {metric}"
                );
                assert_eq!(
                    found[0].get("AlarmActions"),
                    actions.as_ref(),
                    "{id} {metric}"
                );
                seen += 1;
            }
        }
        // A job the loaded config does not allow (a forged job on the queue) or an
        // undecodable body: acknowledged, never retried, so only this metric shows it.
        let rejected: Vec<&Value> = r
            .resources_of_type("AWS::CloudWatch::Alarm")
            .map(|(_, a)| &a["Properties"])
            .filter(|p| {
                p["Namespace"] == json!("Ferry") && p["MetricName"] == json!("RejectedJobs")
            })
            .collect();
        assert_eq!(rejected.len(), 1, "one RejectedJobs alarm");
        let unread: Vec<&Value> = r
            .resources_of_type("AWS::CloudWatch::Alarm")
            .map(|(_, a)| &a["Properties"])
            .filter(|p| {
                p["Namespace"] == json!("Ferry") && p["MetricName"] == json!("OrganizationUnread")
            })
            .collect();
        assert_eq!(unread.len(), 1, "one OrganizationUnread alarm");
        for (key, value) in [
            ("Statistic", json!("Sum")),
            ("Period", json!(300)),
            ("EvaluationPeriods", json!(1)),
            ("Threshold", json!(0)),
            ("ComparisonOperator", json!("GreaterThanThreshold")),
            ("TreatMissingData", json!("notBreaching")),
        ] {
            assert_eq!(rejected[0][key], value, "RejectedJobs {key}");
        }
        assert!(
            rejected[0].get("Dimensions").is_none(),
            "RejectedJobs is emitted without dimensions"
        );
        assert_eq!(rejected[0].get("AlarmActions"), actions.as_ref());
        seen += 1;
        // An organization scope that cannot be read: only its destinations wait, so no
        // function error shows it; this metric does.
        assert_eq!(unread[0]["Threshold"], json!(0));
        assert!(unread[0].get("Dimensions").is_none());
        assert_eq!(unread[0].get("AlarmActions"), actions.as_ref());
        seen += 1;
        // Permanent failures and conflicts are acknowledged, never retried: only the
        // Jobs metric by status shows them.
        for status in ["FAILED", "CONFLICT"] {
            let found: Vec<&Value> = r
                .resources_of_type("AWS::CloudWatch::Alarm")
                .map(|(_, a)| &a["Properties"])
                .filter(|p| {
                    p["Namespace"] == json!("Ferry")
                        && p["MetricName"] == json!("Jobs")
                        && p["Dimensions"] == json!([{"Name": "status", "Value": status}])
                })
                .collect();
            assert_eq!(found.len(), 1, "one {status} alarm");
            assert_eq!(found[0]["Statistic"], json!("Sum"), "{status}");
            assert_eq!(found[0]["Threshold"], json!(0), "{status}");
            assert_eq!(found[0].get("AlarmActions"), actions.as_ref(), "{status}");
            seen += 1;
        }
        // Copies a promotion gate blocked: dispatch's GateResults by status.
        let blocked: Vec<&Value> = r
            .resources_of_type("AWS::CloudWatch::Alarm")
            .map(|(_, a)| &a["Properties"])
            .filter(|p| {
                p["Namespace"] == json!("Ferry")
                    && p["MetricName"] == json!("GateResults")
                    && p["Dimensions"] == json!([{"Name": "status", "Value": "BLOCKED"}])
            })
            .collect();
        assert_eq!(blocked.len(), 1, "one BLOCKED alarm");
        assert_eq!(blocked[0]["Statistic"], json!("Sum"));
        assert_eq!(blocked[0]["Threshold"], json!(0));
        assert_eq!(blocked[0].get("AlarmActions"), actions.as_ref());
        seen += 1;
        let lag: Vec<&Value> = r
            .resources_of_type("AWS::CloudWatch::Alarm")
            .map(|(_, a)| &a["Properties"])
            .filter(|p| p["MetricName"] == json!("ReplicationLag"))
            .collect();
        assert_eq!(lag.len(), 1, "one replication lag alarm");
        assert_eq!(lag[0]["ExtendedStatistic"], json!("p99"));
        assert_eq!(
            lag[0]["Threshold"],
            json!("1800"),
            "ReplicationLagAlarmSeconds"
        );
        assert!(lag[0].get("Dimensions").is_none());
        assert_eq!(lag[0].get("AlarmActions"), actions.as_ref());
        seen += 1;
        assert_eq!(
            r.resources_of_type("AWS::CloudWatch::Alarm").count(),
            seen,
            "no unexpected alarm"
        );
        assert_eq!(r.resource("AlarmTopic").is_some(), actions.is_some());
        if actions.is_some() {
            let sub = r.props("AlarmEmailSubscription");
            assert_eq!(sub["Protocol"], json!("email"));
            assert_eq!(sub["Endpoint"], json!("ops@example.com"));
            assert_eq!(sub["TopicArn"], reference("AlarmTopic"));
            assert_eq!(
                r.doc["Outputs"]["AlarmTopicArn"]["Value"],
                reference("AlarmTopic")
            );
        } else {
            assert!(r.resource("AlarmEmailSubscription").is_none());
            assert!(r.doc["Outputs"].get("AlarmTopicArn").is_none());
        }
    }
}

#[test]
fn log_groups_have_retention_and_the_result_bus_is_an_output() {
    let r = hub(&[("LogRetentionDays", "90")]);
    for (id, binary) in FUNCTIONS {
        let lg = id.replace("Function", "LogGroup");
        let res = r.resource(&lg).unwrap();
        assert_eq!(res["Type"], json!("AWS::Logs::LogGroup"));
        assert_eq!(res["Properties"]["RetentionInDays"], json!("90"), "{lg}");
        assert_eq!(
            res["Properties"]["LogGroupName"],
            json!(format!("/ferry/ferry/{binary}")),
            "{lg}"
        );
    }
    assert_eq!(r.props("ResultEventBus")["Name"], json!("ferry-results"));
    assert_eq!(
        r.doc["Outputs"]["ResultEventBusName"]["Value"],
        reference("ResultEventBus")
    );
    assert_eq!(
        r.doc["Outputs"]["ResultEventBusArn"]["Value"],
        get_att("ResultEventBus", "Arn")
    );
    assert_eq!(
        r.doc["Outputs"]["ReplicateRoleArn"]["Value"],
        get_att("ReplicateRole", "Arn")
    );
    assert_eq!(
        r.doc["Outputs"]["ReconcileRoleArn"]["Value"],
        get_att("ReconcileRole", "Arn")
    );
}

#[test]
fn dashboard_shows_jobs_latency_and_dlq_depth() {
    let r = hub(&[]);
    let body = r.props("Dashboard")["DashboardBody"]["Fn::Sub"]
        .as_str()
        .unwrap()
        .to_owned();
    // Resource attributes stay as ${Res.Attr}: replace them to parse the JSON.
    let mut text = String::new();
    let mut rest = body.as_str();
    while let Some(i) = rest.find("${") {
        text.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap();
        text.push_str(&rest[i + 2..i + end].replace('.', "_"));
        rest = &rest[i + end + 1..];
    }
    text.push_str(rest);
    let dash: Value = serde_json::from_str(&text).unwrap();
    let widgets = dash["widgets"].as_array().unwrap();
    let by_title: BTreeMap<&str, &Value> = widgets
        .iter()
        .map(|w| (w["properties"]["title"].as_str().unwrap(), &w["properties"]))
        .collect();

    // Jobs carries the dimension status, nothing else has one (crates/ferry-pipeline):
    // plain metrics, no SEARCH (which stops at 500 series).
    assert!(!body.contains("SEARCH"), "no SEARCH expression");
    let jobs = by_title["Jobs by status"]["metrics"].as_array().unwrap();
    let statuses = [
        "SUCCEEDED",
        "SKIPPED",
        "FAILED",
        "CONFLICT",
        "RETRY",
        "REJECTED",
    ];
    assert_eq!(jobs.len(), statuses.len());
    for (m, status) in jobs.iter().zip(statuses) {
        assert_eq!(
            m.as_array().unwrap()[0..4],
            [
                json!("Ferry"),
                json!("Jobs"),
                json!("status"),
                json!(status)
            ]
        );
        assert_eq!(m[4]["stat"], json!("Sum"));
    }
    let lag = &by_title["Replication lag p50 / p99, push to replica (s)"]["metrics"];
    for (i, stat) in ["p50", "p99"].iter().enumerate() {
        assert_eq!(lag[i][1], json!("ReplicationLag"));
        assert_eq!(lag[i][2]["stat"], json!(stat));
    }
    let dlq = by_title["Dead-letter queue depth"];
    assert_eq!(dlq["metrics"][0][3], json!("JobsDeadLetterQueue_QueueName"));
    assert_eq!(
        dlq["metrics"][1][3],
        json!("EventsDeadLetterQueue_QueueName")
    );
    for w in widgets {
        assert_eq!(w["properties"]["region"], json!("us-east-1"));
    }
    // Every EMF metric of the functions' contract is on the dashboard.
    for metric in [
        "ReplicationLag",
        "BytesCopied",
        "BlobsCopied",
        "BlobsSkipped",
        "BlobsMounted",
        "Jobs",
        "Throttles",
        "Drift",
        "MalformedEvents",
        "RejectedJobs",
        "InvalidNames",
    ] {
        let quoted = format!("\"{metric}\"");
        let escaped = format!("\\\"{metric}\\\"");
        assert!(
            body.contains(&quoted) || body.contains(&escaped),
            "{metric} is not on the dashboard"
        );
    }
}
