//! The hub's functions asserted as data: the cargo-lambda contract, the same functions as
//! the workspace, parameters reaching their environment, replicate consuming the jobs
//! queue, the dispatch rule's event pattern, and reconcile's schedule.

mod common;

use common::*;
use ferry_infra_check::{
    get_att, iam_statements, load, pattern_matches, reference, render, statement,
};
use serde_json::json;

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
            // HELD and BLOCKED results of promotion gates.
            "FERRY_EVENT_BUS_NAME": reference("ResultEventBus"),
            "FERRY_JOBS_QUEUE_URL": reference("JobsQueue"),
            "FERRY_DESTINATIONS_PER_JOB": "50",
            "RUST_LOG": "info",
        })
    );
    assert_eq!(
        env("ReplicateFunction"),
        json!({
            "FERRY_CONFIG_PARAMETER": reference("ConfigParameter"),
            "FERRY_EVENT_BUS_NAME": reference("ResultEventBus"),
            "FERRY_JOB_CONCURRENCY": "4",
            // Where the destinations of a job for several to try again go back.
            "FERRY_JOBS_QUEUE_URL": reference("JobsQueue"),
            "FERRY_LEDGER_TABLE": reference("LedgerTable"),
            "RUST_LOG": "info",
        })
    );
    assert_eq!(
        env("ReconcileFunction"),
        json!({
            "FERRY_CONFIG_PARAMETER": reference("ConfigParameter"),
            "FERRY_JOBS_QUEUE_URL": reference("JobsQueue"),
            "FERRY_DESTINATIONS_PER_JOB": "50",
            "FERRY_LEDGER_TABLE": reference("LedgerTable"),
            "FERRY_MAX_JOBS_PER_RUN": "3600",
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
