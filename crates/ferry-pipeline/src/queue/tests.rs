//! SendMessageBatch partial failures. moto (the real SQS stand-in of the end-to-end tests)
//! cannot fail chosen entries on demand, so these tests run the real SDK client against a
//! small HTTP stand-in that speaks SQS's JSON protocol and answers each call as scripted.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;
use crate::job::{JobAction, JobSource, Origin};

/// How the stand-in answers one call, given its entry ids: the ids to fail (with whether
/// it is the sender's fault) and the ids to leave out of the answer altogether.
#[derive(Clone, Default)]
struct Answer {
    fail: Vec<(&'static str, bool)>,
    omit: Vec<&'static str>,
    status: Option<u16>,
}

#[derive(Default)]
struct StandIn {
    /// Per call, in order: the entry ids and deduplication ids it carried.
    calls: Mutex<Vec<Vec<(String, String)>>>,
    /// Answers for calls 0, 1, …; calls past the script succeed.
    script: Vec<Answer>,
}

async fn answer(State(st): State<Arc<StandIn>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(target, "AmazonSQS.SendMessageBatch");
    let req: Value = serde_json::from_slice(&body).expect("JSON request");
    let entries: Vec<(String, String)> = req["Entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["Id"].as_str().unwrap_or_default().to_string(),
                e["MessageDeduplicationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let n = {
        let mut calls = st.calls.lock().unwrap();
        calls.push(entries.clone());
        calls.len() - 1
    };
    let script = st.script.get(n).cloned().unwrap_or_default();
    if let Some(status) = script.status {
        let code = StatusCode::from_u16(status).expect("status");
        let body = json!({"__type": "InternalError", "message": "scripted"}).to_string();
        return (code, body).into_response();
    }
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for (id, _) in &entries {
        if let Some((_, sender)) = script.fail.iter().find(|(f, _)| f == id) {
            failed.push(
                json!({"Id": id, "SenderFault": sender, "Code": "InternalError",
                               "Message": "scripted failure"}),
            );
        } else if !script.omit.contains(&id.as_str()) {
            successful.push(json!({"Id": id, "MessageId": format!("m-{id}"),
                                   "MD5OfMessageBody": "00000000000000000000000000000000"}));
        }
    }
    let body = json!({"Successful": successful, "Failed": failed}).to_string();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/x-amz-json-1.0",
        )],
        body,
    )
        .into_response()
}

/// The stand-in on a free port, and a queue whose client (SDK retries off) talks to it.
async fn stand_in(script: Vec<Answer>) -> (Arc<StandIn>, SqsJobQueue) {
    let st = Arc::new(StandIn {
        script,
        ..StandIn::default()
    });
    let app = axum::Router::new()
        .route("/", axum::routing::post(answer))
        .with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    let mut queue = SqsJobQueue::new(
        aws_sdk_sqs::Client::from_conf(config),
        &format!("{url}/123456789012/jobs.fifo"),
    );
    queue.attempts = 3;
    (st, queue)
}

fn jobs(n: usize) -> Vec<Job> {
    let config = ferry::config::ReplicationConfig::from_json(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#,
    )
    .expect("config");
    (0..n)
        .map(|i| {
            let tag = format!("v{i}");
            let target = &config.destinations_for("app", Some(&tag)).expect("targets")[0];
            let source = JobSource {
                registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
                repository: "app".into(),
                tag: Some(tag.clone()),
                digest: Some(ferry::Digest::of(tag.as_bytes())),
            };
            Job::new(
                JobAction::Copy,
                source,
                target,
                "ev",
                chrono::Utc::now(),
                Origin::Event,
            )
        })
        .collect()
}

fn ids(call: &[(String, String)]) -> Vec<&str> {
    call.iter().map(|(id, _)| id.as_str()).collect()
}

#[tokio::test]
async fn failed_and_unanswered_entries_are_sent_again_and_only_they() {
    let (st, queue) = stand_in(vec![
        Answer {
            fail: vec![("3", false), ("7", false)],
            ..Answer::default()
        },
        Answer::default(),
        Answer {
            omit: vec!["5"],
            ..Answer::default()
        },
    ])
    .await;
    let jobs = jobs(25);
    queue.send(&jobs).await.expect("all sent");
    let calls = st.calls.lock().unwrap().clone();
    let shape: Vec<Vec<&str>> = calls.iter().map(|c| ids(c)).collect();
    let full = vec!["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    assert_eq!(
        shape,
        vec![
            full.clone(),
            vec!["3", "7"],
            full,
            vec!["5"],
            vec!["0", "1", "2", "3", "4"],
        ]
    );
    // The retried entries are the same jobs: their ids map back to the chunk's jobs.
    assert_eq!(calls[1][0].1, jobs[3].deduplication_id());
    assert_eq!(calls[1][1].1, jobs[7].deduplication_id());
    assert_eq!(calls[3][0].1, jobs[15].deduplication_id());
    let mut sent: Vec<String> = calls.iter().flatten().map(|(_, d)| d.clone()).collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 25, "every job reached the queue");
}

#[tokio::test]
async fn a_sender_fault_is_not_retried() {
    let (st, queue) = stand_in(vec![Answer {
        fail: vec![("2", true), ("4", false)],
        ..Answer::default()
    }])
    .await;
    let err = queue.send(&jobs(10)).await.expect_err("sender fault");
    assert!(err.to_string().contains("entry 2"), "{err}");
    assert_eq!(st.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_entry_that_keeps_failing_ends_in_an_error_after_the_attempts() {
    let always = Answer {
        fail: vec![("1", false)],
        ..Answer::default()
    };
    let (st, queue) = stand_in(vec![always.clone(), always.clone(), always]).await;
    let err = queue.send(&jobs(3)).await.expect_err("never sent");
    assert!(
        err.to_string().contains("1 jobs not sent after 3 attempts"),
        "{err}"
    );
    let shape: Vec<Vec<String>> = st
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| ids(c).into_iter().map(str::to_string).collect())
        .collect();
    assert_eq!(shape, [vec!["0", "1", "2"], vec!["1"], vec!["1"]]);
}

#[tokio::test]
async fn a_failed_call_is_left_to_the_sdks_retries() {
    let (st, queue) = stand_in(vec![Answer {
        status: Some(500),
        ..Answer::default()
    }])
    .await;
    queue.send(&jobs(4)).await.expect_err("the call failed");
    assert_eq!(
        st.calls.lock().unwrap().len(),
        1,
        "no second retry layer over the SDK's (off here)"
    );
}

/// The backlog is the sum of the counts the answer has; an answer that is not a count
/// (negative, text, larger than any queue) makes it unknown, never a guess.
#[test]
fn the_backlog_is_the_sum_of_the_counts_and_unknown_when_one_is_not_a_count() {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let names = [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ];
    let answer = |values: &[(&A, &str)]| {
        values
            .iter()
            .map(|(k, v)| ((*k).clone(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let counts = answer(&[(&names[0], "40"), (&names[1], "2"), (&names[2], "0")]);
    assert_eq!(super::backlog_of(&counts, &names), Some(42));
    assert_eq!(
        super::backlog_of(&answer(&[(&names[1], "7")]), &names),
        Some(7)
    );
    for hostile in ["-1", "many", "", "99999999999999999999999"] {
        let bad = answer(&[(&names[0], "1"), (&names[1], hostile)]);
        assert_eq!(super::backlog_of(&bad, &names), None, "{hostile:?}");
    }
}
