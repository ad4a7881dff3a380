//! Property tests of Ferry's CloudFormation templates, asserted as data.
//!
//! Every template is parsed with a plain YAML parser (long form, no short tags) and rendered
//! for given parameter values by `ferry_infra_check::render`; the assertions compare exact
//! values so that a changed queue setting, a widened IAM action or a lost alarm fails here.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use ferry_infra_check::{
    Rendered, actions, get_att, iam_statements, load, pattern_matches, read_text, reference,
    render, statement,
};
use serde_json::{Value, json};

// ------------------------------------------------------------------ templates as text

#[test]
fn templates_are_long_form_and_name_no_account() {
    for name in TEMPLATES {
        let text = read_text(name).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split(" #").next().unwrap_or_default();
            assert!(
                !code.contains(": !")
                    && !code.trim_start().starts_with("- !")
                    && !code.contains(" !Ref"),
                "{name}:{}: short-form tag: {line}",
                n + 1
            );
            // No hard-coded 12-digit account ID anywhere (patterns use [0-9]{12}).
            let digits: Vec<&str> = code
                .split(|c: char| !c.is_ascii_digit())
                .filter(|run| run.len() == 12)
                .collect();
            assert!(
                digits.is_empty(),
                "{name}:{}: account ID in template: {line}",
                n + 1
            );
        }
        let doc = load(name).unwrap();
        assert_eq!(
            doc["AWSTemplateFormatVersion"],
            json!("2010-09-09"),
            "{name}"
        );
    }
    assert_eq!(
        load(HUB).unwrap()["Transform"],
        json!("AWS::Serverless-2016-10-31")
    );
    assert_eq!(
        load(DESTINATION).unwrap().get("Transform"),
        None,
        "StackSets: plain CloudFormation"
    );
    assert_eq!(load(FORWARDER).unwrap().get("Transform"), None);
}

#[test]
fn every_checkov_skip_has_a_reason() {
    let mut skipped = BTreeSet::new();
    for name in TEMPLATES {
        let doc = load(name).unwrap();
        for (id, res) in doc["Resources"].as_object().unwrap() {
            for skip in res
                .pointer("/Metadata/checkov/skip")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let check = skip["id"].as_str().unwrap_or_default();
                let comment = skip["comment"].as_str().unwrap_or_default();
                assert!(check.starts_with("CKV_"), "{name}/{id}: {skip}");
                assert!(
                    comment.len() > 40,
                    "{name}/{id}: skip of {check} needs a real reason"
                );
                skipped.insert(format!("{id}:{check}"));
            }
            // The one cfn-lint waiver: W3037 (unknown action) for ecr:ListImageReferrers,
            // which cfn-lint's IAM action list lacks; docs/deploy.md section 10 says why.
            if let Some(waiver) = res.pointer("/Metadata/cfn-lint") {
                assert_eq!(
                    waiver.pointer("/config/ignore_checks"),
                    Some(&json!(["W3037"])),
                    "{name}/{id}: cfn-lint waivers belong in docs"
                );
                let policies = serde_json::to_string(&res["Properties"]["Policies"]).unwrap();
                assert!(policies.contains("ecr:ListImageReferrers"), "{name}/{id}");
                skipped.insert(format!("{id}:W3037"));
            }
        }
    }
    assert_eq!(
        skipped,
        BTreeSet::from([
            "AlarmTopic:CKV_AWS_26".to_owned(),
            "AssumeRole:W3037".to_owned(),
            "ReadRole:W3037".to_owned(),
            "ReplicateFunction:CKV_AWS_116".to_owned()
        ])
    );
    assert!(
        guide().contains("**W3037**"),
        "docs/deploy.md explains W3037"
    );

    // Global skips: each id in skip-check is preceded by a comment giving the reason.
    let text = read_text(".checkov.yaml").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut global = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = line.trim().strip_prefix("- CKV_") {
            assert!(
                lines[i - 1].trim_start().starts_with('#'),
                ".checkov.yaml: CKV_{id} has no reason above it"
            );
            global.push(format!("CKV_{id}"));
        }
    }
    assert_eq!(
        global,
        strings(&["CKV_AWS_27", "CKV_AWS_158", "CKV_AWS_115", "CKV_AWS_173"])
    );
}

// ------------------------------------------------------------------ queues

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

    // Only the two rules may use the events DLQ through its queue policy.
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

// ------------------------------------------------------------------ functions

#[test]
fn functions_follow_the_cargo_lambda_contract() {
    for arch in ["arm64", "x86_64"] {
        let r = hub(&[("Architecture", arch)]);
        for (id, binary) in FUNCTIONS {
            let res = r.resource(id).unwrap();
            assert_eq!(res["Type"], json!("AWS::Serverless::Function"), "{id}");
            assert_eq!(
                res["Metadata"]["BuildMethod"],
                json!("rust-cargolambda"),
                "{id}: SAM builds it with cargo lambda"
            );
            assert_eq!(
                res["Metadata"]["BuildProperties"],
                json!({"Binary": binary}),
                "{id}"
            );
            let p = r.props(id);
            assert_eq!(
                p["CodeUri"],
                json!(".."),
                "{id}: the workspace root, relative to infra/"
            );
            assert_eq!(p["Handler"], json!("bootstrap"), "{id}");
            assert_eq!(p["Runtime"], json!("provided.al2023"), "{id}");
            assert_eq!(p["Architectures"], json!([arch]), "{id}");
            assert_eq!(
                p["Role"],
                get_att(&id.replace("Function", "Role"), "Arn"),
                "{id}"
            );
            assert_eq!(
                p["LoggingConfig"],
                json!({
                    "LogFormat": "JSON",
                    "ApplicationLogLevel": "INFO",
                    "SystemLogLevel": "INFO",
                    "LogGroup": reference(&id.replace("Function", "LogGroup")),
                }),
                "{id}"
            );
            assert_eq!(p["Tracing"], json!("PassThrough"), "{id}");
            assert_eq!(
                p.get("VpcConfig"),
                None,
                "{id}: no VPC unless subnets are given"
            );
            assert_eq!(
                p.get("Policies"),
                None,
                "{id}: permissions come from the explicit role only"
            );
        }
    }
    assert_eq!(
        load(HUB).unwrap()["Parameters"]["Architecture"]["Default"],
        json!("arm64")
    );
    // EMF metric lines have no "level": Lambda files them as INFO, so the application log
    // level must never be above INFO or the metrics are dropped.
    let doc = load(HUB).unwrap();
    assert_eq!(
        doc["Parameters"]["LogLevel"]["AllowedValues"],
        json!(["trace", "debug", "info"])
    );
    for level in ["trace", "debug", "info"] {
        let r = hub(&[("LogLevel", level)]);
        for (id, _) in FUNCTIONS {
            let lambda_level = r.props(id)["LoggingConfig"]["ApplicationLogLevel"].clone();
            assert_eq!(lambda_level, json!(level.to_uppercase()), "{id}");
            assert_eq!(
                r.props(id)["Environment"]["Variables"]["RUST_LOG"],
                json!(level),
                "{id}"
            );
        }
    }
    assert!(
        render(&doc, &[("LogLevel", "warn")]).is_err(),
        "warn would drop the EMF metrics"
    );
}

#[test]
fn functions_in_the_workspace_match_the_template() {
    // Once the function crates exist, each must build the binary the template names
    // (sam build runs `cargo lambda build --bin <Binary>` at the workspace root): the
    // package's default binary or a [[bin]] of that name.
    let root = repo_root();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (_, binary) in FUNCTIONS {
        let manifest = root.join("functions").join(binary).join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name_line = format!("name = \"{binary}\"");
        assert!(
            text.lines().any(|l| l.trim() == name_line),
            "{}: no package or [[bin]] named {binary}",
            manifest.display()
        );
        if workspace.contains("\"functions/") {
            assert!(
                workspace.contains(&format!("\"functions/{binary}\"")),
                "functions/{binary} is not a workspace member"
            );
        }
    }
}

#[test]
fn parameters_reach_the_functions_environment() {
    let r = hub(&[("ReplicationConfig", "{}")]);
    let env = |id: &str| r.props(id)["Environment"]["Variables"].clone();
    assert_eq!(
        env("DispatchFunction"),
        json!({
            "FERRY_CONFIG_PARAMETER": reference("ConfigParameter"),
            "FERRY_JOBS_QUEUE_URL": reference("JobsQueue"),
            "RUST_LOG": "info",
        })
    );
    assert_eq!(
        env("ReplicateFunction"),
        json!({
            "FERRY_CONFIG_PARAMETER": reference("ConfigParameter"),
            "FERRY_EVENT_BUS_NAME": reference("ResultEventBus"),
            "FERRY_JOB_CONCURRENCY": "4",
            "RUST_LOG": "info",
        })
    );
    assert_eq!(
        env("ReconcileFunction"),
        json!({
            "FERRY_CONFIG_PARAMETER": reference("ConfigParameter"),
            "FERRY_JOBS_QUEUE_URL": reference("JobsQueue"),
            "FERRY_MAX_JOBS_PER_RUN": "1000",
            "RUST_LOG": "info",
        })
    );
    let param = r.props("ConfigParameter");
    assert_eq!(param["Name"], json!("/ferry/ferry/config"));
    assert_eq!(param["Type"], json!("String"));
    assert_eq!(param["Value"], json!("{}"));
    assert_eq!(param["Tier"], json!("Intelligent-Tiering"));

    let r = hub(&[
        ("ExistingConfigParameterName", "/team/ferry-config"),
        ("LogLevel", "debug"),
        ("ReplicateJobConcurrency", "8"),
        ("ReconcileMaxJobsPerRun", "50"),
        ("ReplicateMemorySize", "2048"),
        ("ConfigParameterTier", "Advanced"),
    ]);
    assert!(
        r.resource("ConfigParameter").is_none(),
        "an existing parameter replaces the stack's"
    );
    for (id, _) in FUNCTIONS {
        let p = r.props(id);
        assert_eq!(
            p["Environment"]["Variables"]["FERRY_CONFIG_PARAMETER"],
            json!("/team/ferry-config"),
            "{id}"
        );
        assert_eq!(
            p["Environment"]["Variables"]["RUST_LOG"],
            json!("debug"),
            "{id}"
        );
        assert_eq!(
            p["LoggingConfig"]["ApplicationLogLevel"],
            json!("DEBUG"),
            "{id}"
        );
    }
    assert_eq!(
        r.props("ReplicateFunction")["Environment"]["Variables"]["FERRY_JOB_CONCURRENCY"],
        json!("8")
    );
    assert_eq!(r.props("ReplicateFunction")["MemorySize"], json!("2048"));
    assert_eq!(
        r.props("ReconcileFunction")["Environment"]["Variables"]["FERRY_MAX_JOBS_PER_RUN"],
        json!("50")
    );
    let statements = iam_statements(&r);
    for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
        let st = statement(&statements, role, "ReadConfiguration").unwrap();
        assert_eq!(
            st["Resource"],
            json!("arn:aws:ssm:us-east-1:111111111111:parameter/team/ferry-config"),
            "{role}"
        );
    }
    assert_eq!(
        r.doc["Outputs"]["ConfigParameterName"]["Value"],
        json!("/team/ferry-config"),
        "the output names the parameter in use"
    );

    // The stack refuses to start without a configuration.
    let rules =
        &load(HUB).unwrap()["Rules"]["ConfigurationIsGiven"]["Assertions"][0]["Assert"]["Fn::Or"];
    assert_eq!(
        rules,
        &json!([
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReplicationConfig"}, ""]}]},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingConfigParameterName"}, ""]}]}
        ])
    );
    let doc = load(HUB).unwrap();
    assert_eq!(
        doc["Parameters"]["ReplicationConfig"]["MaxLength"],
        json!(4096)
    );
    assert_eq!(
        doc["Parameters"]["ConfigParameterTier"]["AllowedValues"],
        json!(["Standard", "Advanced", "Intelligent-Tiering"])
    );
}

#[test]
fn replicate_consumes_the_jobs_queue_with_partial_batch_failures() {
    let r = hub(&[]);
    let events = r.props("ReplicateFunction")["Events"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(events.keys().collect::<Vec<_>>(), vec!["Jobs"]);
    assert_eq!(
        events["Jobs"],
        json!({
            "Type": "SQS",
            "Properties": {
                "Queue": get_att("JobsQueue", "Arn"),
                "BatchSize": "10",
                "Enabled": true,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": "10"},
            }
        })
    );
    let r = hub(&[
        ("ReplicateMaximumConcurrency", "250"),
        ("ReplicateBatchSize", "3"),
    ]);
    let jobs = &r.props("ReplicateFunction")["Events"]["Jobs"]["Properties"];
    assert_eq!(jobs["ScalingConfig"]["MaximumConcurrency"], json!("250"));
    assert_eq!(jobs["BatchSize"], json!("3"));

    let params = &load(HUB).unwrap()["Parameters"];
    assert_eq!(params["ReplicateMaximumConcurrency"]["MinValue"], json!(2));
    assert_eq!(
        params["ReplicateMaximumConcurrency"]["MaxValue"],
        json!(1000)
    );
    assert_eq!(
        params["ReplicateBatchSize"]["MaxValue"],
        json!(10),
        "FIFO event sources take at most 10"
    );
}

#[test]
fn dispatch_rule_matches_successful_pushes_deletes_and_storage_class_changes_only() {
    let r = hub(&[]);
    let rule = r.props("EcrImageActionRule");
    let pattern = json!({
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action", "ECR Referrer Action"],
        "detail": {"result": ["SUCCESS"], "action-type": ["PUSH", "DELETE", "UPDATE_STORAGE_CLASS"]},
    });
    assert_eq!(rule["EventPattern"], pattern);
    assert_eq!(rule["EventBusName"], json!("default"));
    assert_eq!(rule["State"], json!("ENABLED"));
    assert_eq!(
        rule["Targets"],
        json!([{
            "Id": "dispatch",
            "Arn": get_att("DispatchFunction", "Arn"),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10},
            "DeadLetterConfig": {"Arn": get_att("EventsDeadLetterQueue", "Arn")},
        }])
    );
    let perm = r.props("EcrImageActionPermission");
    assert_eq!(perm["FunctionName"], get_att("DispatchFunction", "Arn"));
    assert_eq!(perm["Principal"], json!("events.amazonaws.com"));
    assert_eq!(perm["SourceArn"], get_att("EcrImageActionRule", "Arn"));

    // The shared sample push event, and variations that must not match.
    let push = json!({
        "version": "0", "id": "4f1d2c1e-0000-4a7b-9c3e-f00000000001",
        "detail-type": "ECR Image Action", "source": "aws.ecr", "account": "123456789012",
        "time": "2026-11-23T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "result": "SUCCESS", "repository-name": "team/api",
            "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234abcd",
            "action-type": "PUSH", "image-tag": "v1.3.0",
            "manifest-media-type": "application/vnd.oci.image.index.v1+json"
        }
    });
    assert!(pattern_matches(&rule["EventPattern"], &push));
    let mut delete = push.clone();
    delete["detail"]["action-type"] = json!("DELETE");
    assert!(pattern_matches(&rule["EventPattern"], &delete));
    // An archive or restore (rules with `archive: "follow"`).
    let mut archive = push.clone();
    archive["detail"]["action-type"] = json!("UPDATE_STORAGE_CLASS");
    assert!(pattern_matches(&rule["EventPattern"], &archive));
    for (pointer, value) in [
        ("/detail/result", "FAILURE"),
        ("/detail/action-type", "SCAN"),
        ("/detail-type", "ECR Replication Action"),
        ("/source", "aws.ecr-public"),
    ] {
        let mut other = push.clone();
        *other.pointer_mut(pointer).unwrap() = json!(value);
        assert!(
            !pattern_matches(&rule["EventPattern"], &other),
            "{pointer}={value} must not match"
        );
    }

    // dispatch's own async retries end in the events DLQ too.
    let p = r.props("DispatchFunction");
    assert_eq!(
        p["DeadLetterQueue"],
        json!({"Type": "SQS", "TargetArn": get_att("EventsDeadLetterQueue", "Arn")})
    );
    assert_eq!(
        p["EventInvokeConfig"],
        json!({"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2})
    );
}

#[test]
fn reconcile_runs_on_a_schedule() {
    let r = hub(&[]);
    let rule = r.props("ReconcileScheduleRule");
    assert_eq!(rule["ScheduleExpression"], json!("rate(15 minutes)"));
    assert_eq!(
        rule["Targets"][0]["Arn"],
        get_att("ReconcileFunction", "Arn")
    );
    assert_eq!(
        rule["Targets"][0]["DeadLetterConfig"]["Arn"],
        get_att("EventsDeadLetterQueue", "Arn")
    );
    assert_eq!(
        r.props("ReconcileSchedulePermission")["SourceArn"],
        get_att("ReconcileScheduleRule", "Arn")
    );
    let r = hub(&[("ReconcileSchedule", "cron(0 * * * ? *)")]);
    assert_eq!(
        r.props("ReconcileScheduleRule")["ScheduleExpression"],
        json!("cron(0 * * * ? *)")
    );
}

// ------------------------------------------------------------------ observability

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

    // Job metrics carry the dimensions destination and status (crates/ferry-pipeline).
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
        assert_eq!(m[0]["label"], json!(status));
        assert_eq!(
            m[0]["expression"],
            json!(format!(
                "SUM(SEARCH('{{Ferry,destination,status}} MetricName=\"Jobs\" status=\"{status}\"', 'Sum', 300))"
            ))
        );
    }
    let latency = &by_title["Replication latency p50 / p99 by destination (ms)"]["metrics"];
    for (i, stat) in ["p50", "p99"].iter().enumerate() {
        assert_eq!(
            latency[i][0]["expression"],
            json!(format!(
                "SEARCH('{{Ferry,destination,status}} MetricName=\"ReplicationLatency\" status=\"SUCCEEDED\"', '{stat}', 300)"
            ))
        );
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
        "ReplicationLatency",
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

// ------------------------------------------------------------------ IAM

#[test]
fn iam_is_least_privilege_in_every_template_and_variant() {
    check_least_privilege("hub defaults", &hub(&[]));
    check_least_privilege("hub all features", &hub(HUB_ALL));
    check_least_privilege("hub all features, SecureString", &hub_all_secure());
    check_least_privilege("destination minimal", &destination(DEST_MIN));
    check_least_privilege("destination all features", &destination(DEST_ALL));
    check_least_privilege("forwarder", &forwarder(&[("HubRegion", "us-east-1")]));
    check_least_privilege(
        "forwarder cross-account",
        &forwarder(&[("HubRegion", "us-east-1"), ("HubAccountId", "999999999999")]),
    );
    for (action, reason) in STAR_RESOURCE_ALLOWED {
        assert!(!reason.is_empty(), "{action}");
    }
}

/// The expected actions of every hub statement (Sid → actions); docs/deploy.md has the
/// same table with the reason of each action.
fn expected_hub_statements(
    all: bool,
    secure: bool,
) -> BTreeMap<(&'static str, &'static str), Vec<String>> {
    let pull = sorted(&ECR_PULL);
    let push = sorted(&ECR_PUSH);
    let list = sorted(&[
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:ListImages",
        "ecr:BatchGetImage",
        "ecr:ListImageReferrers",
    ]);
    let logs = sorted(&["logs:CreateLogStream", "logs:PutLogEvents"]);
    let xray = sorted(&["xray:PutTraceSegments", "xray:PutTelemetryRecords"]);
    let mut m = BTreeMap::new();
    for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
        m.insert((role, "WriteOwnLogs"), logs.clone());
        m.insert((role, "ReadConfiguration"), strings(&["ssm:GetParameter"]));
        if all {
            m.insert((role, "XRayTraces"), xray.clone());
        }
    }
    m.insert(
        ("EventsDeadLetterQueuePolicy", "EventBridgeRuleDeadLetters"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(
        ("JobsQueuePolicy", "OnlyDispatchAndReconcileSendJobs"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(("DispatchRole", "SendJobs"), strings(&["sqs:SendMessage"]));
    m.insert(
        ("DispatchRole", "AsyncDeadLetters"),
        strings(&["sqs:SendMessage"]),
    );
    for role in ["DispatchRole", "ReplicateRole"] {
        m.insert(
            (role, "ReadPullThroughCacheRules"),
            strings(&["ecr:DescribePullThroughCacheRules"]),
        );
    }
    m.insert(
        ("ReplicateRole", "ConsumeJobs"),
        sorted(&[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        ]),
    );
    m.insert(
        ("ReplicateRole", "PublishResults"),
        strings(&["events:PutEvents"]),
    );
    m.insert(
        ("ReplicateRole", "EcrRegistryLogin"),
        strings(&["ecr:GetAuthorizationToken"]),
    );
    m.insert(
        ("ReplicateRole", "ReadAccountSettings"),
        strings(&["ecr:GetAccountSetting"]),
    );
    m.insert(("ReplicateRole", "PullFromSources"), pull);
    m.insert(("ReconcileRole", "SendJobs"), strings(&["sqs:SendMessage"]));
    m.insert(
        ("ReconcileRole", "AsyncDeadLetters"),
        strings(&["sqs:SendMessage"]),
    );
    m.insert(
        ("ReconcileRole", "EcrRegistryLogin"),
        strings(&["ecr:GetAuthorizationToken"]),
    );
    m.insert(("ReconcileRole", "ListSources"), list.clone());
    m.insert(
        ("ReconcileRole", "ReadRegistrySettings"),
        sorted(&[
            "ecr:DescribePullThroughCacheRules",
            "ecr:GetSigningConfiguration",
        ]),
    );
    m.insert(
        ("ReplicateRole", "ReadSigningConfiguration"),
        strings(&["ecr:GetSigningConfiguration"]),
    );
    if all {
        m.insert(("ReplicateRole", "PushToDestinations"), push);
        m.insert(
            ("ReplicateRole", "AssumeDestinationRoles"),
            strings(&["sts:AssumeRole"]),
        );
        m.insert(
            ("ReplicateRole", "ReadRegistryCredentials"),
            strings(&["secretsmanager:GetSecretValue"]),
        );
        m.insert(
            ("ReplicateRole", "DecryptSecrets"),
            strings(&["kms:Decrypt"]),
        );
        m.insert(
            ("ReplicateRole", "CreateKmsEncryptedRepositories"),
            sorted(&["kms:DescribeKey", "kms:CreateGrant"]),
        );
        m.insert(("ReconcileRole", "ListDestinations"), list);
        m.insert(
            ("ReconcileRole", "AssumeDestinationReadRoles"),
            strings(&["sts:AssumeRole"]),
        );
        m.insert(
            ("ReconcileRole", "ReadRegistryCredentials"),
            strings(&["secretsmanager:GetSecretValue"]),
        );
        m.insert(
            ("ReconcileRole", "DecryptSecrets"),
            strings(&["kms:Decrypt"]),
        );
    }
    if secure {
        for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
            m.insert((role, "DecryptConfiguration"), strings(&["kms:Decrypt"]));
        }
    }
    m
}

#[test]
fn hub_statements_are_exactly_the_documented_ones() {
    for (label, r, all, secure) in [
        ("defaults", hub(&[]), false, false),
        ("all features", hub(HUB_ALL), true, false),
        ("all features, SecureString", hub_all_secure(), true, true),
    ] {
        let mut found = BTreeMap::new();
        for (origin, st) in iam_statements(&r) {
            let role = origin.split('/').next().unwrap().to_owned();
            let sid = st["Sid"]
                .as_str()
                .unwrap_or_else(|| panic!("{label} {origin}: statement without Sid"))
                .to_owned();
            assert!(
                found.insert((role, sid), actions(&st)).is_none(),
                "{label} {origin}: duplicate Sid"
            );
        }
        let expected: BTreeMap<(String, String), Vec<String>> =
            expected_hub_statements(all, secure)
                .into_iter()
                .map(|((role, sid), a)| ((role.to_owned(), sid.to_owned()), a))
                .collect();
        assert_eq!(found, expected, "{label}");
    }
}

#[test]
fn hub_statements_are_scoped_to_their_resources() {
    let r = hub(&[]);
    let s = iam_statements(&r);
    let res = |role: &str, sid: &str| statement(&s, role, sid).unwrap()["Resource"].clone();
    assert_eq!(
        res("ReplicateRole", "PullFromSources"),
        json!([SOURCE_REPOS])
    );
    assert_eq!(res("ReconcileRole", "ListSources"), json!([SOURCE_REPOS]));
    assert_eq!(res("ReplicateRole", "EcrRegistryLogin"), json!("*"));
    assert_eq!(
        res("ReplicateRole", "PublishResults"),
        get_att("ResultEventBus", "Arn")
    );
    assert_eq!(
        res("ReplicateRole", "ConsumeJobs"),
        get_att("JobsQueue", "Arn")
    );
    assert_eq!(res("DispatchRole", "SendJobs"), get_att("JobsQueue", "Arn"));
    assert_eq!(
        res("ReconcileRole", "SendJobs"),
        get_att("JobsQueue", "Arn")
    );
    assert_eq!(
        res("DispatchRole", "AsyncDeadLetters"),
        get_att("EventsDeadLetterQueue", "Arn")
    );
    assert_eq!(
        res("ReplicateRole", "WriteOwnLogs"),
        get_att("ReplicateLogGroup", "Arn")
    );
    assert_eq!(
        res("DispatchRole", "ReadConfiguration"),
        json!("arn:aws:ssm:us-east-1:111111111111:parameter/ferry/ferry/config")
    );
    // The statement exists only when the allow-list is given (no sts, kms, secrets by default).
    for (_, st) in &s {
        for a in actions(st) {
            assert!(
                !a.starts_with("sts:")
                    && !a.starts_with("kms:")
                    && !a.starts_with("secretsmanager:"),
                "{a} without its parameter"
            );
        }
    }

    let r = hub(HUB_ALL);
    let s = iam_statements(&r);
    let res = |role: &str, sid: &str| statement(&s, role, sid).unwrap()["Resource"].clone();
    let dest: Vec<&str> = DEST_REPOS.split(',').collect();
    assert_eq!(res("ReplicateRole", "PushToDestinations"), json!(dest));
    assert_eq!(res("ReconcileRole", "ListDestinations"), json!(dest));
    assert_eq!(
        res("ReplicateRole", "AssumeDestinationRoles"),
        json!([DEST_ROLES])
    );
    assert_eq!(
        res("ReconcileRole", "AssumeDestinationReadRoles"),
        json!([DEST_READ_ROLES])
    );
    assert_eq!(
        res("ReplicateRole", "ReadRegistryCredentials"),
        json!([SECRET])
    );
    assert_eq!(
        res("ReplicateRole", "CreateKmsEncryptedRepositories"),
        json!([KMS_KEY])
    );
    assert_eq!(
        statement(&s, "ReplicateRole", "CreateKmsEncryptedRepositories").unwrap()["Condition"],
        json!({"StringLike": {"kms:ViaService": "ecr.*.amazonaws.com"}})
    );
    assert_eq!(
        statement(&s, "ReplicateRole", "DecryptSecrets").unwrap()["Condition"],
        json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}})
    );
    assert_eq!(
        res("ReplicateRole", "PullFromSources"),
        json!([
            "arn:aws:ecr:us-east-1:111111111111:repository/team/*",
            "arn:aws:ecr:eu-central-1:111111111111:repository/*"
        ])
    );
    for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
        assert_eq!(
            r.props(role)["PermissionsBoundary"],
            json!("arn:aws:iam::111111111111:policy/boundary")
        );
        assert_eq!(
            r.props(role)["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}])
        );
    }
    for (id, _) in FUNCTIONS {
        assert_eq!(
            r.props(id)["VpcConfig"],
            json!({
                "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                "SecurityGroupIds": ["sg-0123456789abcdef0"],
            }),
            "{id}"
        );
        assert_eq!(r.props(id)["Tracing"], json!("Active"), "{id}");
    }
}

// ------------------------------------------------------------------ forwarder

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

// ------------------------------------------------------------------ documentation

#[test]
fn the_deployment_guide_names_every_parameter() {
    let guide = guide();
    for name in TEMPLATES {
        let doc = load(name).unwrap();
        for param in doc["Parameters"].as_object().unwrap().keys() {
            assert!(
                guide.contains(&format!("`{param}`")),
                "docs/deploy.md does not name the {name} parameter `{param}`"
            );
        }
    }
}

#[test]
fn the_deployment_guide_lists_every_statement_and_action() {
    let guide = guide();
    let iam = &guide[guide
        .find("## 9. IAM")
        .expect("docs/deploy.md has the IAM section")..];
    let renders = [
        hub(HUB_ALL),
        hub_all_secure(),
        destination(DEST_ALL),
        forwarder(&[("HubRegion", "us-east-1")]),
        hub_org_role(),
        hub_org_direct(),
        org_reader(&[]),
    ];
    for r in &renders {
        for (origin, st) in iam_statements(r) {
            if let Some(sid) = st.get("Sid").and_then(Value::as_str) {
                assert!(
                    iam.contains(sid),
                    "docs/deploy.md does not list statement {sid} ({origin})"
                );
            }
            for a in actions(&st) {
                let short = a.split_once(':').map(|(_, name)| name).unwrap_or(&a);
                assert!(
                    iam.contains(&format!("`{a}`")) || iam.contains(&format!("`{short}`")),
                    "docs/deploy.md does not list {a} ({origin})"
                );
            }
        }
    }
    // Every waiver is documented.
    for check in [
        "CKV_AWS_27",
        "CKV_AWS_158",
        "CKV_AWS_115",
        "CKV_AWS_173",
        "CKV_AWS_116",
        "CKV_AWS_26",
    ] {
        assert!(
            guide.contains(check),
            "docs/deploy.md does not explain the waiver of {check}"
        );
    }
    for endpoint in [
        "ecr.api", "ecr.dkr", "s3", "sqs", "events", "sts", "ssm", "logs",
    ] {
        assert!(
            guide.contains(&format!("com.amazonaws.<region>.{endpoint}`")),
            "VPC endpoint {endpoint}"
        );
    }
}
