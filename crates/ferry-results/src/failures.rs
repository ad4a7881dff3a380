//! The failing images, from result events: per destination and source image, the latest
//! result when it is a failure (`FAILED`, `CONFLICT`, `REJECTED`), how often it failed and
//! when first and last. An image whose latest result at a destination succeeded (or was
//! skipped) is not failing any more, however often it failed before.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::{ReplicationResult, Status};

/// One failing image at one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Destination registry host.
    pub destination: String,
    /// Destination repository.
    pub repository: String,
    /// The source image: `registry/repository[:tag][@digest]`.
    pub image: String,
    /// The latest result's status: `FAILED`, `CONFLICT` or `REJECTED`.
    pub status: Status,
    /// The latest result's error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The latest result's error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Failures of this image at this destination in the window.
    pub count: usize,
    /// The first failure in the window.
    pub first_seen: DateTime<Utc>,
    /// The latest failure.
    pub last_seen: DateTime<Utc>,
}

/// Whether a result is a failure an operator acts on.
fn failing(status: Status) -> bool {
    matches!(status, Status::Failed | Status::Conflict | Status::Rejected)
}

/// The source image of a result, as people name it.
fn image_of(r: &ReplicationResult) -> String {
    let mut image = format!("{}/{}", r.source.registry, r.source.repository);
    if let Some(tag) = &r.source.tag {
        image.push(':');
        image.push_str(tag);
    }
    if let Some(digest) = r
        .source
        .digest
        .as_ref()
        .map(|d| d.as_str().to_string())
        .or_else(|| r.digest.clone())
    {
        image.push('@');
        image.push_str(&digest);
    }
    image
}

/// Destination registry, destination repository, source image.
type Key = (String, String, String);

/// The failing images among `results` (in any order), the most recent failure first.
pub fn failures(results: impl IntoIterator<Item = ReplicationResult>) -> Vec<Failure> {
    // Per (destination, repository, source image): the latest result, and the failures.
    let mut by_key: HashMap<Key, (ReplicationResult, Vec<DateTime<Utc>>)> = HashMap::new();
    for r in results {
        let key = (
            r.destination.registry.clone(),
            r.destination.repository.clone(),
            image_of(&r),
        );
        let failed_at = failing(r.status).then_some(r.completed_at);
        let entry = by_key.entry(key).or_insert_with(|| (r.clone(), Vec::new()));
        if r.completed_at >= entry.0.completed_at {
            entry.0 = r;
        }
        entry.1.extend(failed_at);
    }
    let mut out: Vec<Failure> = by_key
        .into_iter()
        .filter(|(_, (latest, _))| failing(latest.status))
        .map(
            |((destination, repository, image), (latest, times))| Failure {
                destination,
                repository,
                image,
                status: latest.status,
                error_code: latest.error_code,
                error_message: latest.error_message,
                count: times.len(),
                first_seen: times.iter().min().copied().unwrap_or(latest.completed_at),
                last_seen: times.iter().max().copied().unwrap_or(latest.completed_at),
            },
        )
        .collect();
    out.sort_by(|a, b| {
        b.last_seen.cmp(&a.last_seen).then_with(|| {
            (&a.destination, &a.repository, &a.image).cmp(&(
                &b.destination,
                &b.repository,
                &b.image,
            ))
        })
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::testing::sample;

    fn result(
        repo: &str,
        dest: &str,
        status: Status,
        at: &str,
        code: Option<&str>,
    ) -> ReplicationResult {
        let mut r = sample();
        r.source.repository = repo.into();
        r.destination.registry = dest.into();
        r.destination.repository = repo.into();
        r.status = status;
        r.completed_at = at.parse().unwrap();
        r.error_code = code.map(str::to_string);
        r
    }

    #[test]
    fn only_images_whose_latest_result_failed_are_listed_with_counts() {
        let rows = failures([
            result(
                "a",
                "d1",
                Status::Failed,
                "2026-01-01T10:00:00Z",
                Some("auth"),
            ),
            result(
                "a",
                "d1",
                Status::Failed,
                "2026-01-01T10:15:00Z",
                Some("auth"),
            ),
            // The same image elsewhere succeeded: only d1 fails.
            result("a", "d2", Status::Succeeded, "2026-01-01T10:01:00Z", None),
            // Failed, then succeeded: resolved.
            result(
                "b",
                "d1",
                Status::Failed,
                "2026-01-01T10:00:00Z",
                Some("unreachable"),
            ),
            result("b", "d1", Status::Succeeded, "2026-01-01T10:20:00Z", None),
            // An immutable tag.
            result(
                "c",
                "d1",
                Status::Conflict,
                "2026-01-01T10:30:00Z",
                Some("tag-conflict"),
            ),
            result("d", "d1", Status::Skipped, "2026-01-01T10:30:00Z", None),
        ]);
        let got: Vec<(&str, &str, Status, Option<&str>, usize)> = rows
            .iter()
            .map(|f| {
                (
                    f.repository.as_str(),
                    f.destination.as_str(),
                    f.status,
                    f.error_code.as_deref(),
                    f.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("c", "d1", Status::Conflict, Some("tag-conflict"), 1),
                ("a", "d1", Status::Failed, Some("auth"), 2),
            ]
        );
        assert_eq!(rows[1].first_seen.to_rfc3339(), "2026-01-01T10:00:00+00:00");
        assert_eq!(rows[1].last_seen.to_rfc3339(), "2026-01-01T10:15:00+00:00");
        assert_eq!(rows[1].image, "s/a:v1@sha256:00");
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["errorCode"], "auth");
        assert_eq!(json["status"], "FAILED");
        assert_eq!(json["firstSeen"], "2026-01-01T10:00:00Z");
    }
}
