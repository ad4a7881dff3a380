//! Result events as the replicate function logs them, for the CLI commands that read them
//! back (`ferry status --results-log-group`, `ferry failures`).

use serde_json::{Value, json};

/// A result event (`detail`) of a copy of `source/repository:tag@digest` to
/// `registry/destination`, completed at `completed_at`; a `CONFLICT` carries
/// `tag-conflict`. Set other fields (`errorCode`, `errorMessage`) on the value.
pub fn result_event(
    source: (&str, &str, &str),
    digest: &str,
    destination: (&str, &str),
    status: &str,
    completed_at: &str,
) -> Value {
    let (registry, repository, tag) = source;
    json!({
        "status": status, "action": "copy",
        "source": {"registry": registry, "repository": repository, "tag": tag, "digest": digest},
        "destination": {"registry": destination.0, "repository": destination.1},
        "digest": digest, "tags": [tag], "bytes": 0, "blobsCopied": 0, "blobsSkipped": 0,
        "blobsMounted": 0, "durationMs": 1, "latencyMs": 2, "eventId": "e-1",
        "eventTime": "2026-03-01T10:00:00Z", "completedAt": completed_at,
        "origin": "event",
        "errorCode": if status == "CONFLICT" { Some("tag-conflict") } else { None },
    })
}

/// The replicate function's JSON log line for a result (`fields.result_event`).
pub fn json_line(result: &Value) -> String {
    json!({"level": "INFO", "fields": {"message": "result event", "result_event": result.to_string()}})
        .to_string()
}

/// The replicate function's text log line for a result.
pub fn text_line(result: &Value) -> String {
    format!("INFO result event result_event={result}")
}
