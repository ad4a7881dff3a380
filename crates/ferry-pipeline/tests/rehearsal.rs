//! Deploy rehearsal: docs/deploy.md's steps, in order, against moto's CloudFormation
//! (`tests/rehearsal/deploy.py`: the SecureString configuration, the SAM-transformed hub,
//! the organization reader in the management account, the destination StackSet over an OU
//! of two member accounts in two regions, a forwarder), then the three functions run with
//! exactly the environment the deployed Lambda functions have, read back from moto's Lambda
//! API, and the credentials of their deployed roles. Images pushed to the hub's registry
//! arrive in both member accounts, in both regions: one by an ECR event through dispatch,
//! one by reconcile's drift; replicate runs as the deployed SQS event source mapping invokes
//! it.
//!
//! The functions run in process, through the library's `DispatchFunction`,
//! `ReplicateFunction` and `ReconcileFunction` (what the binaries wrap): serving the built
//! binaries behind a Lambda runtime API would cost a release build and a Lambda emulator
//! per CI run. moto checks no IAM policy; what the functions may do is checked by the call
//! recording below against infra/check/calls.json, whose every row infra/check evaluates
//! against the rendered policies.
//!
//! Every AWS call the functions make is recorded (moto's request recorder) and attributed to
//! the role that made it by its access key: each function's own role, and the roles it
//! assumes (the destinations' write and read roles, the organization reader). Each
//! recorded call's IAM action must be listed in calls.json for that role.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use ferry_e2e::calls::{Call, Table, by_role, parse_all};
use ferry_e2e::deploy::{deploy, event_source_mappings, function_configuration, resource_table};
use ferry_e2e::moto::Keys;
use ferry_e2e::organizations::Organization;
use ferry_e2e::{EcrRegistry, Fixture, Moto, fixtures, verify_copy};
use ferry_pipeline::functions::{DispatchFunction, ReconcileFunction, ReplicateFunction};
use ferry_pipeline::poller::{Invoker, Poller};
use serde_json::{Value, json};

const HUB: &str = ferry_e2e::moto::DEFAULT_ACCOUNT;
const MANAGEMENT: &str = "999999999999";
const HUB_REGION: &str = "us-east-1";
const DESTINATION_REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const FORWARDER_REGION: &str = "us-west-2";
const READER: &str = "arn:aws:iam::999999999999:role/ferry-organization-reader";

/// The resource types moto 5.2's CloudFormation cannot create, by template: it skips them
/// (a warning in its log, no resource). The rehearsal asserts this exact list, so a type
/// that moto learns, or a new one it lacks, changes the test.
const NOT_SUPPORTED: [(&str, &str); 6] = [
    ("destination", "AWS::ECR::RepositoryCreationTemplate"),
    ("forwarder", "AWS::CloudWatch::Alarm"),
    ("forwarder", "AWS::SQS::QueuePolicy"),
    ("hub", "AWS::CloudWatch::Alarm"),
    ("hub", "AWS::Lambda::EventInvokeConfig"),
    ("hub", "AWS::SQS::QueuePolicy"),
];

/// The README's golden-images configuration, with the local registries standing in for
/// the ECR hosts, and `deletes` on, so that the run takes the delete path too.
fn golden_config(unit: &str, registries: &[&EcrRegistry]) -> Value {
    let endpoints: serde_json::Map<String, Value> = registries
        .iter()
        .map(|r| {
            let endpoint = json!({"endpoint": r.registry().url(), "plainHttp": true});
            (r.ecr_host(), endpoint)
        })
        .collect();
    json!({
        "source": {"registryId": HUB, "region": HUB_REGION},
        "registries": endpoints,
        "rules": [{
            "deletes": true,
            "repositoryFilters": [{"filter": "golden/", "filterType": "PREFIX_MATCH"}],
            "tagFilters": [{"filter": ">=1.0.0", "filterType": "SEMVER"}],
            "destinations": [{
                "organizationalUnit": unit,
                "regions": DESTINATION_REGIONS,
                "roleArn": "arn:aws:iam::{accountId}:role/ferry-destination-{region}",
                "readRoleArn": "arn:aws:iam::{accountId}:role/ferry-destination-read-{region}",
                "externalId": "ferry-golden",
                "organizationRoleArn": READER
            }]
        }]
    })
}

/// The README's hub parameters (golden images, step 2) and the destination StackSet's
/// (deploy.md section 4).
fn deploy_spec(unit: &str, config: &Value) -> Value {
    let repos = DESTINATION_REGIONS
        .map(|r| format!("arn:aws:ecr:{r}:*:repository/golden/*"))
        .join(",");
    json!({
        "hub": {"account": HUB, "region": HUB_REGION},
        "management": MANAGEMENT,
        "forwarderRegion": FORWARDER_REGION,
        "config": config,
        "configParameter": "/ferry/config",
        "hubParameters": {
            "OrganizationAccess": "role",
            "OrganizationRoleArn": READER,
            "SourceRepositoryArns": format!("arn:aws:ecr:{HUB_REGION}:{HUB}:repository/golden/*"),
            "DestinationRoleArns": "arn:aws:iam::*:role/ferry-destination-*",
            "DestinationReadRoleArns": "arn:aws:iam::*:role/ferry-destination-read-*",
            "DestinationRepositoryArns": repos,
        },
        "readerParameters": {},
        "destinationParameters": {
            "HubAccountId": HUB,
            "RepositoryPrefix": "golden",
            "CreateAssumeRole": "true",
            "ExternalId": "ferry-golden",
        },
        "organizationalUnit": unit,
        "destinationRegions": DESTINATION_REGIONS,
    })
}

/// A deployed function: what Lambda would run it with.
struct Deployed {
    name: String,
    timeout: Duration,
    keys: Keys,
    env: Vec<(String, String)>,
}

impl Deployed {
    /// Reads the function back from moto's Lambda API and assumes its role, as Lambda does
    /// for each execution environment.
    fn read(moto: &Moto, name: &str) -> Deployed {
        let config = function_configuration(moto, name).expect("the deployed function");
        let role = config["Role"].as_str().expect("Role");
        let keys = moto.assume_role(role, name).expect("the function's role");
        let variables = config["Environment"]["Variables"]
            .as_object()
            .expect("the function's Environment.Variables");
        // What the Lambda service sets, then the stack's variables exactly as deployed.
        let mut env: Vec<(String, String)> = [
            ("AWS_REGION", HUB_REGION),
            ("AWS_DEFAULT_REGION", HUB_REGION),
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_ACCESS_KEY_ID", &keys.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key),
            ("AWS_SESSION_TOKEN", &keys.session_token),
            // The one stand-in: AWS itself is moto.
            ("AWS_ENDPOINT_URL", &moto.endpoint()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // Lambda's variables are strings; moto keeps a Number parameter's value (the
        // Ref of `ReplicateJobConcurrency`...) as a JSON number: its decimal text.
        env.extend(variables.iter().map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{name}: {k} = {other}"),
            };
            (k.clone(), text)
        }));
        let timeout = Duration::from_secs(config["Timeout"].as_u64().expect("Timeout"));
        Deployed {
            name: name.to_string(),
            timeout,
            keys,
            env,
        }
    }

    /// Makes this function's environment the process's: every `AWS_*` and `FERRY_*`
    /// variable of the test process is removed first, so nothing but the deployed
    /// environment reaches the function.
    fn enter(&self) {
        let stale: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("AWS_") || k.starts_with("FERRY_") || k == "RUST_LOG")
            .collect();
        // SAFETY: this test binary holds this one test (nextest runs it in a process of its
        // own), and the variables change on the test's thread between invocations, while
        // its current-thread runtime runs nothing.
        unsafe {
            for k in stale {
                std::env::remove_var(k);
            }
            for (k, v) in &self.env {
                std::env::set_var(k, v);
            }
        }
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{}: no {name} in its environment", self.name))
    }
}

/// Replicate as its SQS event source mapping invokes it.
struct Function<'a> {
    function: &'a ReplicateFunction,
    timeout: Duration,
}

#[async_trait::async_trait]
impl Invoker for Function<'_> {
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        let mut event = SqsEvent::default();
        event.records = messages;
        let response = self
            .function
            .handle(event, SystemTime::now() + self.timeout)
            .await;
        Ok(response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect())
    }
}

/// The ECR Image Action event of a push to the hub's registry.
fn push_event(f: &Fixture) -> Value {
    let mut event = ferry_e2e::ecr::push_event(HUB, HUB_REGION, &f.repo, &f.tag);
    event["detail"]["image-digest"] = json!(f.digest);
    event["detail"]["manifest-media-type"] = json!(f.media_type);
    event
}

/// The roles Ferry assumes, by name, as calls.json names them.
fn assumed_role(name: &str) -> Option<&'static str> {
    match name {
        "ferry-organization-reader" => Some("OrganizationReaderRole"),
        n if n.starts_with("ferry-destination-read-") => Some("ReadRole"),
        n if n.starts_with("ferry-destination-") => Some("AssumeRole"),
        _ => None,
    }
}

#[test]
fn the_documented_deploy_replicates_into_two_member_accounts() {
    let moto = Moto::start_recording().expect("moto");
    // The organization: a management account, an OU of two member accounts.
    let management = moto
        .assume_role(
            &format!("arn:aws:iam::{MANAGEMENT}:role/OrganizationAccountAccessRole"),
            "rehearsal",
        )
        .expect("the management account");
    let org = Organization::create_with(&moto.sdk_config_with(HUB_REGION, &management))
        .expect("organization");
    let unit = org.unit(&org.root, "golden").expect("ou");
    let members = org.accounts(&unit, "member", 2).expect("accounts");
    let src = EcrRegistry::start(HUB, HUB_REGION).expect("source registry");
    let destinations: Vec<EcrRegistry> = members
        .iter()
        .flat_map(|a| DESTINATION_REGIONS.map(|r| (a.clone(), r)))
        .map(|(a, r)| EcrRegistry::start(&a, r).expect("destination registry"))
        .collect();
    let mut all: Vec<&EcrRegistry> = vec![&src];
    all.extend(destinations.iter());
    let config = golden_config(&unit, &all);

    // Deploy, as the guide says.
    let report = deploy(&moto, &deploy_spec(&unit, &config)).expect("deploy");
    let table = resource_table(&report).expect("resource table");
    println!("template | resource type | moto's CloudFormation | logical ids");
    for row in &table {
        println!(
            "{} | {} | {} | {}",
            row.template,
            row.resource_type,
            row.status,
            row.logical.join(" ")
        );
    }
    let not_supported: BTreeSet<(String, String)> = table
        .iter()
        .filter(|r| r.status == "not-supported")
        .map(|r| (r.template.clone(), r.resource_type.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = NOT_SUPPORTED
        .iter()
        .map(|(t, r)| (t.to_string(), r.to_string()))
        .collect();
    assert_eq!(not_supported, expected, "moto's unsupported resource types");
    for row in &table {
        assert!(
            ["created", "not-created: condition", "not-supported"].contains(&row.status.as_str()),
            "{row:?}"
        );
    }
    let stacks = report["stacks"].as_array().expect("stacks");
    let instances: BTreeSet<(String, String)> = stacks
        .iter()
        .filter(|s| s["name"] == "StackSet ferry-destination")
        .map(|s| {
            (
                s["account"].as_str().unwrap().into(),
                s["region"].as_str().unwrap().into(),
            )
        })
        .collect();
    let wanted: BTreeSet<(String, String)> = members
        .iter()
        .flat_map(|a| DESTINATION_REGIONS.map(|r| (a.clone(), r.to_string())))
        .collect();
    assert_eq!(
        instances, wanted,
        "one destination stack per member account and region"
    );
    let hub = &stacks.iter().find(|s| s["name"] == "ferry").expect("hub")["outputs"];
    let output = |k: &str| hub[k].as_str().unwrap_or_else(|| panic!("hub output {k}"));

    let dispatch = Deployed::read(&moto, output("DispatchFunctionName"));
    let replicate = Deployed::read(&moto, output("ReplicateFunctionName"));
    let reconcile = Deployed::read(&moto, output("ReconcileFunctionName"));
    assert_eq!(dispatch.var("FERRY_CONFIG_PARAMETER"), "/ferry/config");
    let mappings = event_source_mappings(&moto, &replicate.name).expect("mappings");
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    let mapping = &mappings[0];
    let jobs_queue = dispatch.var("FERRY_JOBS_QUEUE_URL").to_string();
    assert_eq!(reconcile.var("FERRY_JOBS_QUEUE_URL"), jobs_queue);
    let queue_name = mapping["EventSourceArn"].as_str().expect("EventSourceArn");
    assert!(
        jobs_queue.ends_with(queue_name.rsplit(':').next().unwrap()),
        "{jobs_queue} vs {queue_name}"
    );
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let batch_size = mapping["BatchSize"].as_i64().expect("BatchSize") as i32;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `expected`: messages. The copies of one image to the four destinations travel as one
    // job (FERRY_DESTINATIONS_PER_JOB), a delete as one job per destination.
    let replicate_all = |expected: usize| {
        replicate.enter();
        let function = rt
            .block_on(ReplicateFunction::from_env())
            .expect("replicate init");
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config_with(HUB_REGION, &replicate.keys));
        let mut poller = Poller::new(sqs, &jobs_queue);
        poller.batch_size = batch_size;
        let invoker = Function {
            function: &function,
            timeout: replicate.timeout,
        };
        let stats = rt.block_on(poller.drain(&invoker, 2, 50)).expect("drain");
        assert_eq!((stats.acked, stats.failed), (expected, 0), "{stats:?}");
    };

    moto.recorder("start-recording").expect("recorder");
    // 1. A push: its event through dispatch, the jobs through replicate.
    let first = fixtures::single_image(&src, "golden/app", "1.0.0", 1).expect("push");
    dispatch.enter();
    let dispatcher = rt
        .block_on(DispatchFunction::from_env())
        .expect("dispatch init");
    let dispatched = rt
        .block_on(dispatcher.handle(push_event(&first)))
        .expect("dispatched");
    assert_eq!(dispatched.jobs.len(), 4, "two accounts, two regions");
    replicate_all(1);
    // 2. A push whose event never came: reconcile finds it, replicate copies it.
    let second = fixtures::single_image(&src, "golden/app", "1.1.0", 2).expect("push");
    reconcile.enter();
    let reconciler = rt
        .block_on(ReconcileFunction::from_env())
        .expect("reconcile init");
    let run = rt
        .block_on(reconciler.handle("rehearsal"))
        .expect("reconcile");
    assert_eq!(run.enqueued, 4, "{run:?}");
    replicate_all(1);
    for dst in &destinations {
        for image in [&first, &second] {
            verify_copy(src.registry(), image, dst.registry(), "golden/app")
                .unwrap_or_else(|e| panic!("{}: {e:#}", dst.ecr_host()));
        }
    }
    // 3. A delete at the source: its event through dispatch, four delete jobs through
    // replicate, each a BatchDeleteImage at a destination through its write role. (moto's
    // ECR holds no image, the registries do: moto answers ImageNotFound, which is success,
    // and the registries keep their copies. What this step shows is the path and its calls.)
    let deleted = ferry_e2e::http::send(
        reqwest::Method::DELETE,
        &format!(
            "{}/v2/golden/app/manifests/{}",
            src.registry().url(),
            first.digest
        ),
        src.registry().credentials(),
        &[],
        None,
    )
    .expect("delete at the source");
    assert_eq!(deleted.status, 202);
    let mut event = push_event(&first);
    event["detail"]["action-type"] = json!("DELETE");
    event["detail"]
        .as_object_mut()
        .expect("detail")
        .remove("manifest-media-type");
    dispatch.enter();
    let dispatched = rt.block_on(dispatcher.handle(event)).expect("dispatched");
    assert_eq!(dispatched.jobs.len(), 4, "{dispatched:?}");
    replicate_all(4);
    moto.recorder("stop-recording").expect("recorder");

    // Every call the functions made, by role, against calls.json.
    let recording = moto.recording().expect("recording");
    let calls = parse_all(&recording).expect("recorded calls");
    let functions: BTreeMap<String, &'static str> = [
        (&dispatch, "DispatchRole"),
        (&replicate, "ReplicateRole"),
        (&reconcile, "ReconcileRole"),
    ]
    .into_iter()
    .map(|(f, role)| (f.keys.access_key_id.clone(), role))
    .collect();
    let by_role = by_role(&moto, calls, &functions, assumed_role).expect("attributed calls");
    let calls_table = Table::load().expect("calls.json");
    let mut missing = Vec::new();
    for (role, calls) in &by_role {
        let actions: BTreeSet<String> = calls.iter().filter_map(Call::iam_action).collect();
        println!(
            "{role}: {}",
            actions.into_iter().collect::<Vec<_>>().join(" ")
        );
        missing.extend(calls_table.missing(role, calls));
    }
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "calls the table does not list"
    );
    let made = |role: &str, action: &str| {
        by_role
            .get(role)
            .is_some_and(|c| c.iter().any(|c| c.iam_action().as_deref() == Some(action)))
    };
    for (role, action) in [
        ("DispatchRole", "sqs:SendMessage"),
        ("DispatchRole", "ssm:GetParameter"),
        ("ReplicateRole", "sqs:ReceiveMessage"),
        ("ReplicateRole", "events:PutEvents"),
        ("ReconcileRole", "sqs:SendMessage"),
        // Pushes and listings are registry API requests (to the registries, not AWS): the
        // write role's AWS calls create the repositories, the read role's log in.
        ("AssumeRole", "ecr:CreateRepository"),
        ("AssumeRole", "ecr:BatchDeleteImage"),
        ("ReadRole", "ecr:GetAuthorizationToken"),
        (
            "OrganizationReaderRole",
            "organizations:ListAccountsForParent",
        ),
    ] {
        assert!(made(role, action), "{role} never made {action}");
    }
    // Whom each function assumed: the reader, and replicate the write roles only,
    // reconcile the read roles only.
    for (role, allowed) in [
        ("DispatchRole", "ferry-organization-reader"),
        ("ReplicateRole", "ferry-destination-"),
        ("ReconcileRole", "ferry-destination-read-"),
    ] {
        for call in by_role[role].iter().filter(|c| c.operation == "AssumeRole") {
            let name = call.resource.rsplit('/').next().unwrap_or_default();
            let ok = call.resource == READER
                || (name.starts_with(allowed)
                    && (role != "ReplicateRole" || !name.contains("-read-")));
            assert!(ok, "{role} assumed {}", call.resource);
        }
    }
}
