//! The built `dispatch` Lambda binary (`target/debug/dispatch`, from the workspace build),
//! run against the Lambda Runtime API (`ferry_e2e::lambda_runtime`, the documented protocol
//! on loopback) and invoked with an ECR Image Action event: the function initialises from
//! its environment (inline config, queue URL, moto), answers the invocation, and its jobs
//! are on the SQS FIFO queue. A malformed event is answered on the error endpoint with the
//! pipeline's error code, and the function keeps serving.

use std::process::Command;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use ferry_e2e::lambda_runtime::{Function, Outcome, RuntimeApi};
use ferry_e2e::process::workspace_root;
use ferry_e2e::{Moto, workspace_bin};
use serde_json::{Value, json};

/// The function binary the workspace build made; built here when a narrower test run
/// has not (`cargo build --workspace` in `make test` makes it).
fn function_binary(package: &str, name: &str) -> std::path::PathBuf {
    let binary = workspace_bin(name);
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["build", "-p", package, "--bin", name])
            .status()
            .expect("cargo build");
        assert!(status.success(), "cargo build -p {package} failed");
    }
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

#[test]
fn dispatch_binary_under_the_runtime_api_answers_an_ecr_event() {
    let binary = function_binary("ferry-fn-dispatch", "dispatch");
    let moto = Moto::start().expect("moto");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sdk = rt.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load(),
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = rt
        .block_on(
            sqs.create_queue()
                .queue_name("ferry-jobs.fifo")
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
                .send(),
        )
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let config = json!({
        "source": {"registryId": "123456789012", "region": "us-east-1"},
        "rules": [{"destinations": [{"registryId": "123456789012", "region": "eu-west-1"},
                                    {"registryId": "222222222222", "region": "us-west-2"}]}]
    });

    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("FERRY_CONFIG".into(), config.to_string()),
        ("FERRY_JOBS_QUEUE_URL".into(), queue.clone()),
        ("RUST_LOG".into(), "info".into()),
    ];
    env.extend(moto.aws_env());
    let api = rt.block_on(RuntimeApi::start()).expect("runtime api");
    let mut function = Function::start(
        &binary,
        &api,
        "ferry-dispatch",
        &env,
        &dir.path().join("dispatch.log"),
    )
    .expect("start dispatch");

    let event: Value = json!({
        "version": "0",
        "id": "5e1f0000-0000-4000-8000-00000000cafe",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": "team/api",
            "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234abcd",
            "action-type": "PUSH",
            "image-tag": "v1.3.0",
            "manifest-media-type": "application/vnd.oci.image.index.v1+json"
        }
    });
    let outcome = rt
        .block_on(api.invoke(&event, Duration::from_secs(120)))
        .unwrap_or_else(|e| panic!("{e}\n{}", function.log_text()));
    let Outcome::Response(response) = outcome else {
        panic!("{outcome:?}\n{}", function.log_text());
    };
    assert_eq!(
        response["eventId"], "5e1f0000-0000-4000-8000-00000000cafe",
        "{response}"
    );
    assert_eq!(response["ignored"], Value::Null);
    let jobs = response["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2);
    let received = rt
        .block_on(
            sqs.receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send(),
        )
        .unwrap();
    let groups: Vec<String> = received
        .messages()
        .iter()
        .filter_map(|m| {
            m.attributes()?
                .get(&MessageSystemAttributeName::MessageGroupId)
                .cloned()
        })
        .collect();
    // One job for both destinations (FERRY_DESTINATIONS_PER_JOB, default 50), in the
    // first destination's FIFO group.
    assert_eq!(
        groups,
        ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api"]
    );
    let body: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(body["source"]["tag"], "v1.3.0");
    assert_eq!(
        body["moreTargets"][0]["registry"],
        "222222222222.dkr.ecr.us-west-2.amazonaws.com"
    );

    // A malformed Image Action (a repository name outside the distribution grammar): the
    // handler's error reaches the error endpoint with its code, nothing is enqueued, and
    // the same process answers the next invocation.
    let mut hostile = event.clone();
    hostile["id"] = json!("5e1f0000-0000-4000-8000-00000000dead");
    hostile["detail"]["repository-name"] = json!("team/api/../../other");
    let outcome = rt
        .block_on(api.invoke(&hostile, Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("{e}\n{}", function.log_text()));
    match &outcome {
        Outcome::Error { error_type, body } => {
            assert_eq!(error_type, "malformed-event", "{body}");
            assert!(
                body["errorMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("5e1f0000-0000-4000-8000-00000000dead"),
                "{body}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let outcome = rt
        .block_on(api.invoke(&event, Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("{e}\n{}", function.log_text()));
    assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    assert!(function.running(), "{}", function.log_text());
    assert_eq!(api.init_error(), None);
}
