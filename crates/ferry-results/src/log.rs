//! Reading result events back: the replicate function logs every result event it publishes
//! ([`crate::log_result`]) to its CloudWatch log group, which, unlike an EventBridge
//! bus, can be read. `ferry status --results-log-group NAME` finds the last result of an
//! image at each destination there with `FilterLogEvents`.
//!
//! Log lines are untrusted text: a line that does not parse as a result event is skipped,
//! and only results for the image asked about (source registry, repository, and digest or
//! `supersededBy`) are kept. The result only annotates the state `ferry status` reads from
//! the destination itself.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use ferry::Digest;
use ferry::status::{LastResult, ResultHistory};
use serde_json::Value;

use crate::event::{RESULT_LOG_FIELD, RESULT_LOG_MESSAGE, ReplicationResult};

/// Pages of `FilterLogEvents` read at most for one image.
pub const MAX_PAGES: usize = 100;

/// A result event in a log line of the replicate function, if the line carries one: a
/// JSON line (`fields.result_event`, or `result_event`, holding the result's JSON as a
/// string or object; a wrapper whose `message` is such a line), or a text line that is
/// exactly what [`crate::log_result`] writes: `INFO result event result_event={...}`,
/// the JSON running to the end of the line. Text elsewhere in a line (a registry's error
/// message quoted in a failure line, say) is never taken for a result.
pub fn parse_logged(line: &str) -> Option<ReplicationResult> {
    parse_at(line.trim(), 0)
}

fn parse_at(text: &str, depth: usize) -> Option<ReplicationResult> {
    if depth > 2 {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let obj = v.as_object()?;
        let field = obj
            .get(RESULT_LOG_FIELD)
            .or_else(|| obj.get("fields").and_then(|f| f.get(RESULT_LOG_FIELD)));
        return match field {
            Some(Value::String(s)) => serde_json::from_str(s).ok(),
            Some(other) => serde_json::from_value(other.clone()).ok(),
            None => obj
                .get("message")
                .and_then(Value::as_str)
                .and_then(|m| parse_at(m.trim(), depth + 1)),
        };
    }
    let rest = text.strip_prefix("INFO")?.trim_start();
    let json = rest.strip_prefix(&format!("{RESULT_LOG_MESSAGE} {RESULT_LOG_FIELD}="))?;
    let mut stream = serde_json::Deserializer::from_str(json).into_iter::<ReplicationResult>();
    let result = stream.next()?.ok()?;
    json[stream.byte_offset()..]
        .trim()
        .is_empty()
        .then_some(result)
}

/// Of `results`, the latest (by `completedAt`) per destination among those for
/// `repository@digest` of `source_registry`.
pub fn latest_for(
    results: impl IntoIterator<Item = ReplicationResult>,
    source_registry: &str,
    repository: &str,
    digest: &Digest,
) -> Vec<LastResult> {
    let digest = digest.as_str();
    let mut latest: HashMap<(String, String), ReplicationResult> = HashMap::new();
    for r in results {
        let ours = r.source.registry == source_registry
            && r.source.repository == repository
            && (r.digest.as_deref() == Some(digest) || r.superseded_by.as_deref() == Some(digest));
        if !ours {
            continue;
        }
        let key = (
            r.destination.registry.clone(),
            r.destination.repository.clone(),
        );
        match latest.get(&key) {
            Some(seen) if seen.completed_at >= r.completed_at => {}
            _ => {
                latest.insert(key, r);
            }
        }
    }
    let mut out: Vec<LastResult> = latest
        .into_values()
        .map(|r| LastResult {
            registry: r.destination.registry,
            repository: r.destination.repository,
            status: r.status.as_str().to_string(),
            completed_at: r
                .completed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            error_code: r.error_code,
        })
        .collect();
    out.sort_by(|a, b| (&a.registry, &a.repository).cmp(&(&b.registry, &b.repository)));
    out
}

/// The replicate function's log group, read with `FilterLogEvents`.
#[derive(Clone, Debug)]
pub struct ResultsLog {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
}

impl ResultsLog {
    /// The log group `group` (`/ferry/<stack>/replicate`), in the region and with the
    /// credentials of `config`.
    pub fn new(config: &SdkConfig, group: &str) -> ResultsLog {
        ResultsLog {
            client: aws_sdk_cloudwatchlogs::Client::new(config),
            group: group.to_string(),
        }
    }
}

impl ResultsLog {
    /// Every result event logged since `start` (by log time), at most [`MAX_PAGES`] pages
    /// of `FilterLogEvents`; the flag says whether pages were left unread.
    pub async fn results_since(
        &self,
        start: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<ReplicationResult>, bool), ferry::Error> {
        self.filter(
            &format!("\"{RESULT_LOG_FIELD}\""),
            Some(start.timestamp_millis()),
        )
        .await
    }

    /// The result events of the lines `FilterLogEvents` matches with `pattern` (since
    /// `start`, in milliseconds), at most [`MAX_PAGES`] pages; the flag says whether
    /// pages were left unread.
    async fn filter(
        &self,
        pattern: &str,
        start: Option<i64>,
    ) -> Result<(Vec<ReplicationResult>, bool), ferry::Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .filter_log_events()
                .log_group_name(&self.group)
                .set_start_time(start)
                .filter_pattern(pattern)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| ferry::aws::sdk_error("logs", "FilterLogEvents", e))?;
            found.extend(
                out.events()
                    .iter()
                    .filter_map(|e| e.message())
                    .filter_map(parse_logged),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok((found, false)),
            }
        }
        Ok((found, true))
    }
}

#[async_trait]
impl ResultHistory for ResultsLog {
    async fn last_results(
        &self,
        source_registry: &str,
        repository: &str,
        digest: &Digest,
    ) -> Result<Vec<LastResult>, ferry::Error> {
        // A quoted term matches the digest wherever it stands in the line.
        let (found, _) = self.filter(&format!("\"{digest}\""), None).await?;
        Ok(latest_for(found, source_registry, repository, digest))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::event::testing::sample;
    use crate::event::{Status, log_result};

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// What `log_result` writes, through the functions' own formatters (JSON and text, as
    /// `logging::init_tracing` sets them up).
    fn logged(r: &ReplicationResult, json: bool) -> String {
        let buffer = Buffer::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_target(false)
            .without_time();
        if json {
            let subscriber = builder
                .json()
                .with_current_span(false)
                .with_span_list(false)
                .finish();
            tracing::subscriber::with_default(subscriber, || log_result(r));
        } else {
            let subscriber = builder.with_ansi(false).finish();
            tracing::subscriber::with_default(subscriber, || log_result(r));
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.trim().to_string()
    }

    #[test]
    fn a_logged_result_reads_back_from_json_and_text_logs() {
        let r = sample();
        let json = logged(&r, true);
        assert_eq!(parse_logged(&json).as_ref(), Some(&r), "{json}");
        let text = logged(&r, false);
        assert_eq!(parse_logged(&text).as_ref(), Some(&r), "{text}");
        // Lambda's own JSON wrapper around a line.
        let wrapped =
            serde_json::json!({"timestamp": "x", "level": "INFO", "message": json}).to_string();
        assert_eq!(parse_logged(&wrapped).as_ref(), Some(&r));
    }

    #[test]
    fn other_lines_are_skipped() {
        for line in [
            "",
            "START RequestId: 1 Version: $LATEST",
            r#"{"level":"INFO","fields":{"message":"job done"}}"#,
            r#"{"fields":{"result_event":"{not json"}}"#,
            "result_event={\"status\":\"SUCCEEDED\"}",
        ] {
            assert!(parse_logged(line).is_none(), "{line}");
        }
    }

    #[test]
    fn a_result_quoted_inside_another_line_is_not_a_result() {
        // A registry's error body lands in a failure line; it must not pin the last result.
        let forged = logged(&sample(), false).replace("INFO result event ", "");
        for line in [
            format!("WARN job failed code=registry error=registry said: {forged}"),
            format!("INFO job done note={forged}"),
            format!("{} trailing", logged(&sample(), false)),
        ] {
            assert!(parse_logged(&line).is_none(), "{line}");
        }
    }

    #[test]
    fn the_latest_result_per_destination_of_this_image_is_kept() {
        let digest = Digest::of(b"image");
        let at = |r: &mut ReplicationResult, t: &str| r.completed_at = t.parse().unwrap();
        let mut failed = sample();
        failed.source.registry = "src".into();
        failed.digest = Some(digest.to_string());
        failed.status = Status::Failed;
        failed.error_code = Some("unreachable".into());
        at(&mut failed, "2026-01-01T00:00:01Z");
        let mut later = failed.clone();
        later.status = Status::Succeeded;
        later.error_code = None;
        at(&mut later, "2026-01-01T00:00:01.5Z");
        let mut superseded = failed.clone();
        superseded.destination.registry = "d2".into();
        superseded.digest = Some(Digest::of(b"older").to_string());
        superseded.superseded_by = Some(digest.to_string());
        let mut other_image = later.clone();
        other_image.digest = Some(Digest::of(b"other").to_string());
        at(&mut other_image, "2026-01-02T00:00:00Z");
        let mut other_source = later.clone();
        other_source.source.registry = "elsewhere".into();
        at(&mut other_source, "2026-01-02T00:00:00Z");

        let found = latest_for(
            [later, failed, superseded, other_image, other_source],
            "src",
            "a",
            &digest,
        );
        let got: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|r| {
                (
                    r.registry.as_str(),
                    r.status.as_str(),
                    r.completed_at.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("d", "SUCCEEDED", "2026-01-01T00:00:01.500Z"),
                ("d2", "FAILED", "2026-01-01T00:00:01.000Z"),
            ]
        );
    }
}
