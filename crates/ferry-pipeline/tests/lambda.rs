//! The built `dispatch` Lambda binary, run by `cargo lambda watch` (the Lambda runtime API
//! emulator) and invoked with `cargo lambda invoke` and an ECR Image Action event: the
//! function initialises from its environment (inline config, queue URL, moto), answers the
//! invocation, and its jobs are on the SQS FIFO queue.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use ferry_e2e::Moto;
use ferry_e2e::process::{find_tool, free_port, port_open, workspace_root};
use serde_json::{Value, json};

/// `cargo lambda watch` in its own process group, which is killed (the watcher and the
/// function it started) on drop.
struct Watch {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Watch {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn dispatch_binary_under_cargo_lambda_watch_answers_an_ecr_event() {
    if find_tool("cargo-lambda").is_none() {
        eprintln!("SKIPPED: cargo-lambda is not installed (scripts/setup installs it; CI has it)");
        return;
    }
    let moto = Moto::start().expect("moto");
    let rt = tokio::runtime::Builder::new_current_thread()
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
    let env_file = dir.path().join("function.env");
    let mut env = format!("FERRY_CONFIG='{config}'\nFERRY_JOBS_QUEUE_URL={queue}\nRUST_LOG=info\n");
    for (k, v) in moto.aws_env() {
        env.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&env_file, env).unwrap();
    let port = free_port().unwrap();
    let log = dir.path().join("watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut command = Command::new("cargo");
    command
        .current_dir(workspace_root())
        .args([
            "lambda",
            "watch",
            "--invoke-port",
            &port.to_string(),
            "--ignore-changes",
        ])
        .args(["-p", "ferry-fn-dispatch", "--bin", "dispatch"])
        .arg("--env-file")
        .arg(&env_file)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    let watch = Watch {
        child: command.spawn().expect("cargo lambda watch"),
        log,
    };

    let started = Instant::now();
    while !port_open(port) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "cargo lambda watch never listened:\n{}",
            watch.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

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
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, event.to_string()).unwrap();
    // The first invocation compiles and starts the function: allow for a cold build.
    let mut last = String::new();
    let response: Value = loop {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "no answer from the function: {last}\n{}",
            watch.log_text()
        );
        let out = Command::new("cargo")
            .current_dir(workspace_root())
            .args([
                "lambda",
                "invoke",
                "dispatch",
                "--invoke-port",
                &port.to_string(),
                "--output-format",
                "json",
            ])
            .arg("--data-file")
            .arg(&event_file)
            .output()
            .expect("cargo lambda invoke");
        if out.status.success() {
            break serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
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
    let mut groups: Vec<String> = received
        .messages()
        .iter()
        .filter_map(|m| {
            m.attributes()?
                .get(&MessageSystemAttributeName::MessageGroupId)
                .cloned()
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api",
            "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api"
        ]
    );
    let body: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(body["source"]["tag"], "v1.3.0");
    drop(watch);
}
