//! Trust boundaries of the templates (issue 9, "Infra least privilege" and "Jobs are
//! requests"): who may put jobs on the queue, who may invoke replicate, which repositories
//! the hub may read, whom a destination trusts, and how the configuration is kept.

mod common;

use common::*;
use ferry_infra_check::policy::{Request, applies, arn_like, identity_allows, substitute};
use ferry_infra_check::{
    Rendered, actions, as_list, get_att, iam_statements, load, reference, render, statement,
};
use serde_json::{Value, json};

const DISPATCH_ROLE: &str = "arn:aws:iam::111111111111:role/ferry-DispatchRole-AAA";
const REPLICATE_ROLE: &str = "arn:aws:iam::111111111111:role/ferry-ReplicateRole-BBB";
const RECONCILE_ROLE: &str = "arn:aws:iam::111111111111:role/ferry-ReconcileRole-CCC";
const JOBS_QUEUE: &str = "arn:aws:sqs:us-east-1:111111111111:ferry-JobsQueue-DDD.fifo";
const ACCOUNT_ROOT: &str = "arn:aws:iam::111111111111:root";

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
fn only_dispatch_and_reconcile_may_send_jobs() {
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
        for allowed in [DISPATCH_ROLE, RECONCILE_ROLE] {
            assert!(!denied(&policy, &send(allowed)), "{label}: {allowed}");
        }
        for other in [
            REPLICATE_ROLE,
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
    assert!(denied(&policy, &send(REPLICATE_ROLE)));
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

/// The destination with the hub's two roles named.
fn dest_with_roles(extra: &[(&'static str, &'static str)]) -> Rendered {
    let base = with(
        DEST_MIN,
        &[
            ("HubReplicateRoleArn", REPLICATE_ROLE),
            ("HubReconcileRoleArn", RECONCILE_ROLE),
            ("ManageRegistryPolicy", "true"),
        ],
    );
    destination(&with(&base, extra))
}

/// Every principal ARN (or pattern) named in a rendered destination: registry policy
/// statements and role trust policies.
fn destination_principals(r: &Rendered) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |origin: String, st: &Value| {
        for p in as_list(&st["Principal"]["AWS"]) {
            out.push((origin.clone(), p.as_str().unwrap_or("?").to_owned()));
        }
    };
    for (origin, st) in iam_statements(r) {
        add(origin, &st);
    }
    for (id, role) in r.resources_of_type("AWS::IAM::Role") {
        for st in as_list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]) {
            add(format!("{id} trust"), &st);
        }
    }
    out
}

#[test]
fn destination_trusts_the_hub_account_root_only_when_asked() {
    // No role ARNs and no explicit ask: CloudFormation refuses the stack.
    let r = destination(DEST_MIN);
    assert!(
        !r.rule_failures.is_empty(),
        "without the hub's role ARNs the stack must refuse, not trust the whole hub account"
    );
    let doc = load(DESTINATION).unwrap();
    assert_eq!(
        doc["Parameters"]["TrustHubAccountRoot"]["Default"],
        json!("false")
    );

    // With the roles: no statement or trust policy names the account root.
    let r = dest_with_roles(&[("CreateAssumeRole", "true"), ("ExternalId", "x-1234")]);
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let principals = destination_principals(&r);
    assert!(!principals.is_empty());
    for (origin, p) in &principals {
        assert!(!p.ends_with(":root"), "{origin} trusts {p}");
    }
    let s = iam_statements(&r);
    assert_eq!(
        statement(&s, "RegistryPolicy", "FerryPush").unwrap()["Principal"],
        json!({"AWS": REPLICATE_ROLE})
    );

    // Explicitly asked: the account root, for pushing and reading.
    let r = destination(&with(
        DEST_MIN,
        &[
            ("TrustHubAccountRoot", "true"),
            ("ManageRegistryPolicy", "true"),
            ("ExternalId", "x-1234"),
        ],
    ));
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let s = iam_statements(&r);
    for sid in ["FerryPush", "FerryReconcileRead"] {
        assert_eq!(
            statement(&s, "RegistryPolicy", sid).unwrap()["Principal"],
            json!({"AWS": ACCOUNT_ROOT}),
            "{sid}"
        );
    }
}

#[test]
fn native_replication_is_granted_only_when_asked() {
    let doc = load(DESTINATION).unwrap();
    assert_eq!(
        doc["Parameters"]["AllowNativeReplication"]["Default"],
        json!("false")
    );
    let r = dest_with_roles(&[]);
    for (origin, st) in iam_statements(&r) {
        assert!(
            !actions(&st).contains(&"ecr:ReplicateImage".to_owned()),
            "{origin}: native replication without AllowNativeReplication"
        );
    }
    let r = dest_with_roles(&[("AllowNativeReplication", "true")]);
    let s = iam_statements(&r);
    let native = statement(&s, "RegistryPolicy", "NativeReplication").unwrap();
    assert_eq!(
        actions(native),
        strings(&["ecr:CreateRepository", "ecr:ReplicateImage"])
    );
    // ECR native replication acts for the source account: its root is the principal.
    assert_eq!(native["Principal"], json!({"AWS": ACCOUNT_ROOT}));
}

/// Actions that change a destination repository.
pub const ECR_WRITE: [&str; 8] = [
    "ecr:InitiateLayerUpload",
    "ecr:UpdateImageStorageClass",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:CreateRepository",
    "ecr:BatchDeleteImage",
    "ecr:ReplicateImage",
];

#[test]
fn reconcile_reads_destinations_but_can_never_write_or_delete() {
    let r = dest_with_roles(&[
        ("CreateAssumeRole", "true"),
        ("ExternalId", "x-1234"),
        ("AllowNativeReplication", "true"),
    ]);
    // The write/delete role trusts the replicate role only.
    let trust = &r.props("AssumeRole")["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(as_list(trust).len(), 1);
    assert_eq!(trust[0]["Principal"], json!({"AWS": REPLICATE_ROLE}));
    assert_eq!(
        trust[0]["Condition"],
        json!({
            "ArnEquals": {"aws:PrincipalArn": REPLICATE_ROLE},
            "StringEquals": {"sts:ExternalId": "x-1234"},
        })
    );
    for (origin, p) in destination_principals(&r) {
        if p == RECONCILE_ROLE {
            assert!(
                origin.starts_with("RegistryPolicy") || origin == "ReadRole trust",
                "{origin} trusts reconcile"
            );
        }
    }
    // The registry policy lets reconcile read under the prefix, and nothing else.
    let repo = "arn:aws:ecr:us-east-1:111111111111:repository/golden/app";
    let registry: Vec<Value> = iam_statements(&r)
        .into_iter()
        .filter(|(origin, _)| origin == "RegistryPolicy")
        .map(|(_, st)| st)
        .collect();
    let allowed = |who: &str, action: &str| {
        registry.iter().any(|st| {
            st["Effect"] == json!("Allow") && applies(st, &Request::by(who, action, repo)).unwrap()
        })
    };
    for action in ECR_WRITE {
        assert!(!allowed(RECONCILE_ROLE, action), "reconcile may {action}");
    }
    for action in [
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:ListImages",
        "ecr:BatchGetImage",
    ] {
        assert!(
            allowed(RECONCILE_ROLE, action),
            "reconcile may not {action}"
        );
    }
    for action in [
        "ecr:PutImage",
        "ecr:BatchDeleteImage",
        "ecr:CreateRepository",
    ] {
        assert!(
            allowed(REPLICATE_ROLE, action),
            "replicate may not {action}"
        );
    }
}

/// Whether the reconcile role's identity policy in `r` allows `sts:AssumeRole` of `role_arn`.
fn reconcile_may_assume(r: &Rendered, role_arn: &str) -> bool {
    role_may_assume(r, "ReconcileRole", role_arn)
}

/// Whether the identity policy of hub role `role` in `r` allows `sts:AssumeRole` of
/// `role_arn` (an Allow applies, no Deny does: `identity_allows`, over `applies`).
fn role_may_assume(r: &Rendered, role: &str, role_arn: &str) -> bool {
    let statements: Vec<Value> = iam_statements(r)
        .into_iter()
        .filter(|(origin, _)| origin.split('/').next() == Some(role))
        .map(|(_, st)| st)
        .collect();
    identity_allows(&statements, "sts:AssumeRole", role_arn).unwrap()
}

/// The reconcile role's `Allow` statements with an `sts:` action.
fn reconcile_sts(r: &Rendered) -> Vec<Value> {
    iam_statements(r)
        .into_iter()
        .filter(|(origin, st)| {
            origin.starts_with("ReconcileRole")
                && st["Effect"] == json!("Allow")
                && actions(st).iter().any(|a| a.starts_with("sts:"))
        })
        .map(|(_, st)| st)
        .collect()
}

/// Reconcile reads untrusted listings: it may assume the destinations' read roles
/// (`DestinationReadRoleArns`, the configuration's `readRoleArn`) and never a write/delete
/// role, even when `DestinationRoleArns` (replicate's allow-list) is a pattern that matches
/// the read roles too. Its sts grants are exactly `AssumeDestinationReadRoles` on
/// `DestinationReadRoleArns` and, with `OrganizationAccess=role`, the read-only organization
/// reader; with `DestinationReadRoleArns` empty it may assume no destination role at all.
#[test]
fn reconcile_can_assume_read_roles_and_no_write_role() {
    // The example names are what the destination stack creates with its defaults.
    assert!(arn_like(DEST_ROLES, DEST_WRITE_ROLE));
    assert!(
        arn_like(DEST_ROLES, DEST_READ_ROLE),
        "replicate's pattern covers both"
    );
    assert!(arn_like(DEST_READ_ROLES, DEST_READ_ROLE));
    assert!(!arn_like(DEST_READ_ROLES, DEST_WRITE_ROLE));

    let without_read = with(HUB_ALL, &[("DestinationReadRoleArns", "")]);
    let org = |base: &[(&'static str, &'static str)]| {
        with(
            base,
            &[
                ("OrganizationAccess", "role"),
                ("OrganizationRoleArn", ORG_ROLE),
            ],
        )
    };
    let roles_only: &[(&str, &str)] = &[
        ("DestinationRoleArns", DEST_ROLES),
        ("DestinationReadRoleArns", DEST_READ_ROLES),
    ];
    // (label, hub, read roles granted, organization reader granted)
    for (label, r, read, reader) in [
        ("defaults", hub(&[]), false, false),
        ("write and read roles only", hub(roles_only), true, false),
        ("all features", hub(HUB_ALL), true, false),
        ("secure configuration", hub_all_secure(), true, false),
        (
            "all features, organization reader",
            hub(&org(HUB_ALL)),
            true,
            true,
        ),
        (
            "all features, organization direct",
            hub(&with(HUB_ALL, &[("OrganizationAccess", "direct")])),
            true,
            false,
        ),
        ("no read roles", hub(&without_read), false, false),
        (
            "no read roles, organization reader",
            hub(&org(&without_read)),
            false,
            true,
        ),
    ] {
        assert!(
            !reconcile_may_assume(&r, DEST_WRITE_ROLE),
            "{label}: reconcile may assume the write role"
        );
        assert_eq!(
            reconcile_may_assume(&r, DEST_READ_ROLE),
            read,
            "{label}: reconcile and the read role"
        );
        assert_eq!(
            reconcile_may_assume(&r, ORG_ROLE),
            reader,
            "{label}: reconcile and the organization reader"
        );
        let mut expected = Vec::new();
        if read {
            expected.push(json!({
                "Sid": "AssumeDestinationReadRoles",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": [DEST_READ_ROLES],
            }));
        }
        if reader {
            expected.push(json!({
                "Sid": "AssumeOrganizationReader",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": ORG_ROLE,
            }));
        }
        assert_eq!(
            reconcile_sts(&r),
            expected,
            "{label}: reconcile's sts grants"
        );
        if label != "defaults" {
            // Replicate still assumes the destination roles (the write role among them).
            let statements = iam_statements(&r);
            let st = statement(&statements, "ReplicateRole", "AssumeDestinationRoles");
            assert!(
                st.is_some(),
                "{label}: replicate still assumes destination roles"
            );
            assert!(
                role_may_assume(&r, "ReplicateRole", DEST_WRITE_ROLE),
                "{label}"
            );
        }
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
