//! Trust boundaries of the hub's template (issue 9, "Infra least privilege" and "Jobs are
//! requests"): who may put jobs on the queue, who may invoke replicate, which repositories
//! the hub may read, and how the configuration is kept. Whom a destination trusts:
//! `destination_trust.rs`.

mod common;

use common::*;
use ferry_infra_check::policy::{Request, applies, substitute};
use ferry_infra_check::{
    Rendered, actions, as_list, get_att, iam_statements, load, reference, render, statement,
};
use serde_json::{Value, json};

const JOBS_QUEUE: &str = "arn:aws:sqs:us-east-1:111111111111:ferry-JobsQueue-DDD.fifo";

/// The hub's resource ARNs as CloudFormation will resolve them.
fn hub_arns() -> Vec<(Value, &'static str)> {
    vec![
        (get_att("DispatchRole", "Arn"), DISPATCH_ROLE),
        (get_att("ReplicateRole", "Arn"), REPLICATE_ROLE),
        (get_att("ReconcileRole", "Arn"), RECONCILE_ROLE),
        (get_att("JobsQueue", "Arn"), JOBS_QUEUE),
    ]
}

/// The statements of every queue policy attached to the jobs queue, with ARNs resolved.
fn jobs_queue_policy(r: &Rendered) -> Vec<Value> {
    r.resources_of_type("AWS::SQS::QueuePolicy")
        .filter(|(_, p)| as_list(&p["Properties"]["Queues"]).contains(&reference("JobsQueue")))
        .flat_map(|(_, p)| as_list(&p["Properties"]["PolicyDocument"]["Statement"]))
        .map(|st| substitute(&st, &hub_arns()))
        .collect()
}

/// Whether the jobs queue's resource policy denies `req` (an explicit Deny wins over any
/// identity policy).
fn denied(statements: &[Value], req: &Request) -> bool {
    statements
        .iter()
        .any(|st| st["Effect"] == json!("Deny") && applies(st, req).unwrap())
}

#[test]
fn only_ferrys_functions_may_send_jobs() {
    for (label, r) in [("defaults", hub(&[])), ("all features", hub(HUB_ALL))] {
        let policy = jobs_queue_policy(&r);
        assert!(!policy.is_empty(), "{label}: the jobs queue has no policy");
        for st in &policy {
            assert_eq!(
                st["Effect"],
                json!("Deny"),
                "{label}: the jobs queue policy grants nothing: {st}"
            );
        }
        let send = |who: &str| Request::by(who, "sqs:SendMessage", JOBS_QUEUE);
        // Replicate sends back the destinations of a job for several to try again.
        for allowed in [DISPATCH_ROLE, RECONCILE_ROLE, REPLICATE_ROLE] {
            assert!(!denied(&policy, &send(allowed)), "{label}: {allowed}");
        }
        for other in [
            ACCOUNT_ROOT,
            "arn:aws:iam::111111111111:role/Admin",
            "arn:aws:iam::111111111111:user/deployer",
            "arn:aws:iam::999999999999:role/ferry-DispatchRole-AAA",
        ] {
            assert!(denied(&policy, &send(other)), "{label}: {other} may send");
        }
        for service in ["events.amazonaws.com", "sns.amazonaws.com"] {
            let req = Request::by_service(service, "sqs:SendMessage", JOBS_QUEUE);
            assert!(denied(&policy, &req), "{label}: {service} may send");
        }
        // replicate still consumes; the Deny is about sending only.
        for action in [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        ] {
            let req = Request::by(REPLICATE_ROLE, action, JOBS_QUEUE);
            assert!(!denied(&policy, &req), "{label}: replicate {action}");
        }
        // Moving a job to the DLQ is done by SQS itself (the redrive policy), and the DLQ
        // gets no policy that could stop it.
        assert_eq!(
            r.props("JobsQueue")["RedrivePolicy"]["deadLetterTargetArn"],
            get_att("JobsDeadLetterQueue", "Arn")
        );
        assert!(
            r.resources_of_type("AWS::SQS::QueuePolicy").all(|(_, p)| {
                !as_list(&p["Properties"]["Queues"]).contains(&reference("JobsDeadLetterQueue"))
            }),
            "{label}: the jobs DLQ has no queue policy"
        );
    }

    // The operator's carve-out (e.g. the role that redrives the jobs DLQ back, which
    // needs sqs:SendMessage on the jobs queue) is explicit and names principals.
    let ops = "arn:aws:iam::111111111111:role/ops-*";
    let r = hub(&[("JobsQueueSenderArns", ops)]);
    let policy = jobs_queue_policy(&r);
    let send = |who: &str| Request::by(who, "sqs:SendMessage", JOBS_QUEUE);
    assert!(!denied(
        &policy,
        &send("arn:aws:iam::111111111111:role/ops-redrive")
    ));
    assert!(!denied(&policy, &send(DISPATCH_ROLE)));
    assert!(denied(
        &policy,
        &send("arn:aws:iam::111111111111:role/Admin")
    ));
    assert!(!denied(&policy, &send(REPLICATE_ROLE)));
    let doc = load(HUB).unwrap();
    assert_eq!(
        doc["Parameters"]["JobsQueueSenderArns"]["Default"],
        json!("")
    );
    for everyone in ["*", "arn:aws:iam::*:role/*", "111111111111"] {
        assert!(
            render(
                &doc,
                &with(
                    &[("SourceRepositoryArns", SOURCE_REPOS)],
                    &[("JobsQueueSenderArns", everyone)]
                )
            )
            .is_err(),
            "JobsQueueSenderArns={everyone} must be refused"
        );
    }
}

/// Whether `v` refers to the resource `id` (`Ref`, `Fn::GetAtt`, `${id}` / `${id.Attr}`).
fn refers_to(v: &Value, id: &str) -> bool {
    match v {
        Value::Object(m) => {
            if m.get("Ref") == Some(&json!(id))
                || m.get("Fn::GetAtt")
                    .and_then(|a| a.get(0))
                    .is_some_and(|a| a == id)
            {
                return true;
            }
            if let Some(Value::String(s)) = m.get("Fn::Sub")
                && (s.contains(&format!("${{{id}}}")) || s.contains(&format!("${{{id}.")))
            {
                return true;
            }
            m.values().any(|i| refers_to(i, id))
        }
        Value::Array(items) => items.iter().any(|i| refers_to(i, id)),
        _ => false,
    }
}

#[test]
fn replicate_can_be_invoked_only_by_its_sqs_event_source() {
    for (label, r) in [("defaults", hub(&[])), ("all features", hub(HUB_ALL))] {
        // Nothing but alarms (which only read its metrics) names the replicate function:
        // no AWS::Lambda::Permission, function URL, rule or schedule target, subscription
        // or other event source mapping.
        for (id, res) in r.doc["Resources"].as_object().unwrap() {
            if id == "ReplicateFunction" {
                continue;
            }
            let kind = res["Type"].as_str().unwrap();
            if kind == "AWS::CloudWatch::Alarm" {
                continue;
            }
            assert!(
                !refers_to(res, "ReplicateFunction"),
                "{label}: {id} ({kind}) refers to the replicate function"
            );
        }
        let p = r.props("ReplicateFunction");
        for key in ["FunctionUrlConfig", "AutoPublishAlias", "EventInvokeConfig"] {
            assert_eq!(p.get(key), None, "{label}: ReplicateFunction {key}");
        }
        let events = p["Events"].as_object().unwrap();
        assert_eq!(
            events.keys().collect::<Vec<_>>(),
            vec!["Jobs"],
            "{label}: one event source"
        );
        assert_eq!(events["Jobs"]["Type"], json!("SQS"));
        assert_eq!(
            events["Jobs"]["Properties"]["Queue"],
            get_att("JobsQueue", "Arn")
        );
        // The other functions' invoke permissions are for one service and one source each.
        for (id, perm) in r.resources_of_type("AWS::Lambda::Permission") {
            let props = &perm["Properties"];
            assert!(
                [
                    get_att("DispatchFunction", "Arn"),
                    get_att("ReconcileFunction", "Arn")
                ]
                .contains(&props["FunctionName"]),
                "{label}: {id}"
            );
            assert_eq!(props["Principal"], json!("events.amazonaws.com"), "{id}");
            assert!(
                props.get("SourceArn").is_some(),
                "{label}: {id} has no SourceArn"
            );
        }
    }
}

#[test]
fn the_hub_reads_only_the_source_repositories_the_operator_names() {
    let doc = load(HUB).unwrap();
    let decl = &doc["Parameters"]["SourceRepositoryArns"];
    assert_eq!(
        decl.get("Default"),
        None,
        "no default of every repository in the account: the operator names the sources"
    );
    for sources in [
        SOURCE_REPOS,
        "arn:aws:ecr:us-east-1:111111111111:repository/team/api,arn:aws:ecr:eu-central-1:111111111111:repository/base-*",
    ] {
        let r = hub(&[("SourceRepositoryArns", sources)]);
        let given: Vec<Value> = sources.split(',').map(|s| json!(s)).collect();
        let s = iam_statements(&r);
        assert_eq!(
            statement(&s, "ReplicateRole", "PullFromSources").unwrap()["Resource"],
            json!(given)
        );
        assert_eq!(
            statement(&s, "ReconcileRole", "ListSources").unwrap()["Resource"],
            json!(given)
        );
        // No hub statement reads any other repository (destinations are not given here).
        for (origin, st) in &s {
            if actions(st).iter().any(|a| ECR_PULL.contains(&a.as_str())) {
                for res in as_list(&st["Resource"]) {
                    assert!(given.contains(&res), "{origin}: reads {res}");
                }
            }
        }
    }
    for bad in [
        "",
        "*",
        "arn:aws:ecr:us-east-1:*:repository/*",
        "arn:aws:ecr:us-east-1:111111111111:*",
        "arn:aws:s3:::bucket/*",
    ] {
        assert!(
            render(&doc, &[("SourceRepositoryArns", bad)]).is_err(),
            "SourceRepositoryArns={bad:?} must be refused"
        );
    }
}

#[test]
fn the_configuration_is_no_echo_and_can_be_a_secure_string() {
    let doc = load(HUB).unwrap();
    assert_eq!(
        doc["Parameters"]["ReplicationConfig"]["NoEcho"],
        json!(true)
    );
    // CloudFormation cannot create a SecureString: the stack's own parameter is a String.
    let r = hub(&[("ReplicationConfig", "{}")]);
    assert_eq!(r.props("ConfigParameter")["Type"], json!("String"));
    assert_eq!(r.rule_failures, Vec::<String>::new());

    // A SecureString the operator created, under a customer managed key: each function
    // may read that parameter and decrypt through SSM, for that parameter only.
    let (name, key) = (SECURE_CONFIG, CONFIG_KEY);
    let param_arn = "arn:aws:ssm:us-east-1:111111111111:parameter/ferry/secure-config";
    let r = hub(&[
        ("ExistingConfigParameterName", name),
        ("ConfigKmsKeyArn", key),
    ]);
    assert_eq!(r.rule_failures, Vec::<String>::new());
    assert!(r.resource("ConfigParameter").is_none());
    let s = iam_statements(&r);
    for role in ["DispatchRole", "ReplicateRole", "ReconcileRole"] {
        assert_eq!(
            statement(&s, role, "ReadConfiguration").unwrap()["Resource"],
            json!(param_arn),
            "{role}"
        );
        let decrypt = statement(&s, role, "DecryptConfiguration")
            .unwrap_or_else(|| panic!("{role} cannot decrypt the configuration"));
        assert_eq!(actions(decrypt), strings(&["kms:Decrypt"]), "{role}");
        assert_eq!(decrypt["Resource"], json!(key), "{role}");
        assert_eq!(
            decrypt["Condition"],
            json!({"StringEquals": {
                "kms:ViaService": "ssm.us-east-1.amazonaws.com",
                "kms:EncryptionContext:PARAMETER_ARN": param_arn,
            }}),
            "{role}"
        );
    }
    // Dispatch reads the configuration only: no other KMS permission, even with KmsKeyArns.
    let r = hub_all_secure();
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let s = iam_statements(&r);
    for (origin, st) in &s {
        if origin.starts_with("DispatchRole/") && actions(st).iter().any(|a| a.starts_with("kms:"))
        {
            assert_eq!(st["Sid"], json!("DecryptConfiguration"), "{origin}");
        }
    }
    // A key for the stack's own (String) parameter makes no sense: refused.
    let r = hub(&[("ReplicationConfig", "{}"), ("ConfigKmsKeyArn", key)]);
    assert!(
        !r.rule_failures.is_empty(),
        "ConfigKmsKeyArn without a SecureString"
    );
    assert_eq!(doc["Parameters"]["ConfigKmsKeyArn"]["Default"], json!(""));
}
