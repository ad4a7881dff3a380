//! `ferry status`: where one source image stands at every destination the config sends it
//! to, the answer ECR's `DescribeImageReplicationStatus` gives for native replication, for
//! every kind of destination.
//!
//! The source digest is resolved once (one manifest HEAD at the source, and one GET of it
//! when a target selects platforms: that target should hold the filtered index's digest,
//! computed from it); then each target gets one manifest HEAD, with its own credentials
//! (the registry client routes them per destination), [`STATUS_CONCURRENCY`] at a time. Only when a destination tag holds
//! another digest and the destination is ECR is its repository's tag mutability read
//! (`DescribeRepositories`), to tell a [`State::Conflict`] from a [`State::Different`].

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::{Registry, Target};
use crate::digest::Digest;
use crate::error::Error;
use crate::reference::{EcrRegistry, Reference};
use crate::registry::Repo;
use crate::replicate::Replicator;

/// Destinations asked at once.
pub const STATUS_CONCURRENCY: usize = 32;

/// Where the image stands at one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// The destination holds the source digest (under the tag, for a tag); for a target
    /// that selects platforms, the digest of the index of those platforms.
    Complete,
    /// The destination has no such tag (or digest), or not the repository.
    Missing,
    /// The destination tag holds another digest and can be moved.
    Different,
    /// The destination tag holds another digest and is immutable there (ECR): replication
    /// will not move it.
    Conflict,
    /// The destination could not be asked: connection refused or reset, timeout, 5xx or
    /// another unexpected answer (the error code says which).
    Unreachable,
    /// The destination refused the credentials (401/403, AWS access denied).
    Denied,
}

impl State {
    /// Every state, in the order reports count them.
    pub const ALL: [State; 6] = [
        State::Complete,
        State::Missing,
        State::Different,
        State::Conflict,
        State::Unreachable,
        State::Denied,
    ];

    /// The wire spelling (`COMPLETE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Complete => "COMPLETE",
            State::Missing => "MISSING",
            State::Different => "DIFFERENT",
            State::Conflict => "CONFLICT",
            State::Unreachable => "UNREACHABLE",
            State::Denied => "DENIED",
        }
    }

    /// The state a failed manifest HEAD stands for: `auth` errors, HTTP 401/403, a
    /// registry's `DENIED` and AWS access-denied codes are [`State::Denied`]; everything else
    /// (connection failures, timeouts, 5xx, refused redirects, unexpected answers) is
    /// [`State::Unreachable`].
    pub fn of_error(e: &Error) -> State {
        match e {
            Error::Auth { .. }
            | Error::Registry {
                status: 401 | 403, ..
            } => State::Denied,
            Error::Registry { message, .. } if message.contains("DENIED") => State::Denied,
            Error::Aws { message, .. } if aws_denied(message) => State::Denied,
            _ => State::Unreachable,
        }
    }
}

/// Whether an AWS error message (`Code: text`, see [`crate::aws::sdk_error`]) is an
/// access or credential refusal.
fn aws_denied(message: &str) -> bool {
    let code = message.split(':').next().unwrap_or_default().trim();
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "NotAuthorized"
    )
}

/// The last result event the pipeline reported for the image at one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastResult {
    /// Destination registry host.
    #[serde(skip)]
    pub registry: String,
    /// Destination repository.
    #[serde(skip)]
    pub repository: String,
    /// The result event's `status` (`SUCCEEDED`, `SKIPPED`, `FAILED`, `CONFLICT`, ...).
    pub status: String,
    /// Its `completedAt` (RFC 3339).
    pub completed_at: String,
    /// Its `errorCode`, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// Where the pipeline's result events can be read back (the replicate function's log
/// group). Implemented in `ferry-pipeline`, which owns the result event format.
#[async_trait]
pub trait ResultHistory: Send + Sync {
    /// The latest result, one per destination (registry and repository), for the image
    /// `repository@digest` of `source_registry`: results whose digest, or whose
    /// `supersededBy`, is `digest`.
    async fn last_results(
        &self,
        source_registry: &str,
        repository: &str,
        digest: &Digest,
    ) -> Result<Vec<LastResult>, Error>;
}

/// The source image as resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceImage {
    /// The reference asked about, as parsed (`host/repository:tag`).
    pub reference: String,
    /// Its manifest digest at the source.
    pub digest: Digest,
}

/// One destination's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// Destination registry host.
    pub destination: String,
    /// Destination repository.
    pub repository: String,
    /// Where the image stands.
    pub state: State,
    /// What the destination holds under the tag (COMPLETE, DIFFERENT, CONFLICT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The error code ([`Error::code`]) for UNREACHABLE and DENIED, or when the tag
    /// mutability of a DIFFERENT destination could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The error message, where there is a code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The pipeline's last result event for the image here, when a result history was
    /// given and holds one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_result: Option<LastResult>,
    /// A promotion gate that holds or blocks the image for this destination: why a
    /// MISSING image has not arrived, or (COMPLETE) a finding made after it was copied,
    /// reported and never acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::GateStatus>,
}

/// The whole answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The source image.
    pub source: SourceImage,
    /// Every destination the config selects for it, in config order.
    pub destinations: Vec<DestinationStatus>,
    /// Things that did not stop the answer (the result history could not be read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StatusReport {
    /// Whether the image is complete everywhere it should be (and should be somewhere).
    pub fn complete(&self) -> bool {
        !self.destinations.is_empty()
            && self.destinations.iter().all(|d| d.state == State::Complete)
    }

    /// How many destinations are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.destinations
            .iter()
            .filter(|d| d.state == state)
            .count()
    }
}

/// Where `image` (of the config's source registry, by tag or digest) stands at every
/// destination the replicator's config selects for it.
///
/// By tag: the targets of the rules selecting `repository:tag`, each HEADed by tag. By
/// digest only: every rule selecting the repository, whatever its tag filters, each HEADed
/// by digest (COMPLETE or MISSING). An image the source does not hold is
/// [`Error::NotFound`]; an image of another registry than the config's source is
/// [`Error::Config`]. `history`, when given, is read concurrently with the HEADs; when it
/// fails, the report carries a warning and no last results.
pub async fn status(
    replicator: &Replicator,
    image: &Reference,
    history: Option<&dyn ResultHistory>,
) -> Result<StatusReport, Error> {
    let config = replicator.config();
    let source = Registry::from_host(&image.registry);
    let bound = config.for_source(&source).ok_or_else(|| {
        Error::Config(format!(
            "{} is not the config's source registry{}",
            image.registry,
            config
                .source_registry()
                .map_or(String::new(), |s| format!(" ({})", s.host()))
        ))
    })?;
    let targets = match (&image.tag, &image.digest) {
        (Some(tag), _) => bound.destinations_for(&image.repository, Some(tag)),
        (None, Some(_)) => {
            let mut any_tag = bound.into_owned();
            for r in &mut any_tag.rules {
                r.untagged = true;
            }
            any_tag.destinations_for(&image.repository, None)
        }
        (None, None) => {
            return Err(Error::InvalidReference {
                input: image.to_string(),
                reason: "name a tag or a digest".into(),
            });
        }
    }
    .map_err(|e| Error::Config(e.to_string()))?;

    let client = replicator.copier().client();
    let src_repo = Repo::new(&image.registry, &image.repository);
    let asked = image
        .digest
        .as_ref()
        .map(Digest::to_string)
        .or_else(|| image.tag.clone())
        .unwrap_or_default();
    let digest = client
        .head_manifest(&src_repo, &asked)
        .await?
        .ok_or_else(|| Error::NotFound {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
            what: format!("manifest {asked} (the source does not hold this image)"),
        })?
        .digest;

    // A target that selects platforms holds an index of its own: the digest it should
    // hold is computed from the source index (one GET, only when some target selects).
    let source_index = match targets.iter().any(|t| !t.platforms.is_empty()) {
        true => client.get_manifest_opt(&src_repo, digest.as_str()).await?,
        false => None,
    };
    let want_at = |t: &Target| match &source_index {
        Some(raw) if !t.platforms.is_empty() => {
            match crate::copy::platforms::select_in(&src_repo, raw, &t.platforms) {
                Ok(Some(selection)) => selection.raw.digest,
                _ => digest.clone(),
            }
        }
        _ => digest.clone(),
    };
    let checks = futures::stream::iter(spread(&targets))
        .map(|(i, t)| {
            let want = want_at(t);
            async move { (i, check(replicator, image, t, &want).await) }
        })
        .buffer_unordered(STATUS_CONCURRENCY)
        .collect::<Vec<_>>();
    let lookup = async {
        match history {
            Some(h) => Some(
                h.last_results(&image.registry, &image.repository, &digest)
                    .await,
            ),
            None => None,
        }
    };
    let (mut answered, last) = futures::join!(checks, lookup);
    answered.sort_by_key(|(i, _)| *i);
    let mut destinations: Vec<DestinationStatus> = answered.into_iter().map(|(_, d)| d).collect();
    let mut warnings = Vec::new();
    // Gated destinations: the gates' verdict on the image (one evaluation per gate
    // choice, however many destinations share it).
    let gates = replicator.gate_check();
    for (d, t) in destinations.iter_mut().zip(&targets) {
        let image = crate::gate::GateImage {
            registry: &source,
            repository: &image.repository,
            digest: &digest,
        };
        match gates.verdict(t.gates.as_ref(), image, &t.platforms).await {
            Ok(verdict) => d.gate = crate::gate::GateStatus::of(&verdict),
            Err(e) => warnings.push(format!(
                "promotion gates of {} could not be judged: {}: {e}",
                d.destination,
                e.code()
            )),
        }
    }
    match last {
        Some(Ok(results)) => attach(&mut destinations, results),
        Some(Err(e)) => warnings.push(format!("last result events unavailable: {}: {e}", e.code())),
        None => {}
    }
    Ok(StatusReport {
        source: SourceImage {
            reference: image.to_string(),
            digest,
        },
        destinations,
        warnings,
    })
}

/// The targets with their place in config order, taken round robin over their registries:
/// the concurrency is then not spent waiting on one registry's own limit (16 requests at
/// once per host) while the others idle.
fn spread(targets: &[Target]) -> Vec<(usize, &Target)> {
    let mut queues: Vec<(String, Vec<(usize, &Target)>)> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let host = t.destination.registry_host();
        match queues.iter_mut().find(|(h, _)| *h == host) {
            Some((_, q)) => q.push((i, t)),
            None => queues.push((host, vec![(i, t)])),
        }
    }
    let longest = queues.iter().map(|(_, q)| q.len()).max().unwrap_or(0);
    (0..longest)
        .flat_map(|round| {
            queues
                .iter()
                .filter_map(move |(_, q)| q.get(round).copied())
        })
        .collect()
}

/// Give each destination its last result (the history answers one per destination).
fn attach(destinations: &mut [DestinationStatus], results: Vec<LastResult>) {
    for d in destinations {
        d.last_result = results
            .iter()
            .find(|r| r.registry == d.destination && r.repository == d.repository)
            .cloned();
    }
}

/// One manifest HEAD at one target (and, for a different digest at an ECR destination,
/// its tag mutability).
async fn check(
    replicator: &Replicator,
    image: &Reference,
    target: &Target,
    want: &Digest,
) -> DestinationStatus {
    let host = target.destination.registry_host();
    let repo = Repo::new(&host, &target.repository);
    let reference = image.tag.clone().unwrap_or_else(|| want.to_string());
    let mut out = DestinationStatus {
        destination: host,
        repository: target.repository.clone(),
        state: State::Missing,
        digest: None,
        code: None,
        message: None,
        last_result: None,
        gate: None,
    };
    match replicator
        .copier()
        .client()
        .head_manifest(&repo, &reference)
        .await
        .map_err(Error::from)
    {
        Ok(None) => {}
        Ok(Some(h)) if h.digest == *want => {
            out.state = State::Complete;
            out.digest = Some(h.digest);
        }
        Ok(Some(h)) => {
            out.digest = Some(h.digest);
            out.state = State::Different;
            if let Some(tag) = &image.tag {
                match tag_immutable(replicator, target, tag).await {
                    Ok(true) => out.state = State::Conflict,
                    Ok(false) => {}
                    Err(e) => {
                        out.code = Some(e.code().to_string());
                        out.message = Some(format!("tag mutability unknown: {e}"));
                    }
                }
            }
        }
        Err(e) => {
            out.state = State::of_error(&e);
            out.code = Some(e.code().to_string());
            out.message = Some(e.to_string());
        }
    }
    out
}

/// Whether `tag` is immutable in the target's repository: ECR destinations only (through
/// the control plane, with the destination's reading role); other registries have no
/// immutable tags Ferry can read.
async fn tag_immutable(replicator: &Replicator, target: &Target, tag: &str) -> Result<bool, Error> {
    let (
        Registry::Ecr {
            registry_id,
            region,
        },
        Some(ecr),
    ) = (&target.destination.registry, replicator.ecr())
    else {
        return Ok(false);
    };
    let role = replicator.listing_role(&target.destination);
    let settings = ecr
        .repository_settings(
            &EcrRegistry::new(registry_id, region),
            role.as_ref(),
            &target.repository,
        )
        .await?;
    Ok(settings.is_some_and(|s| s.tag_immutable(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(status: u16, message: &str) -> Error {
        Error::Registry {
            registry: "r".into(),
            method: "HEAD".into(),
            url: "/v2/a/manifests/v1".into(),
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn aws(message: &str) -> Error {
        Error::Aws {
            service: "ecr",
            operation: "GetAuthorizationToken",
            message: message.into(),
            retryable: false,
        }
    }

    #[test]
    fn refusals_are_denied() {
        let auth = Error::Auth {
            registry: "r".into(),
            repository: "a".into(),
            status: 401,
            message: "unauthorized".into(),
        };
        for e in [
            auth,
            registry(401, ""),
            registry(403, ""),
            registry(400, "DENIED: requested access to the resource is denied"),
            aws("AccessDeniedException: not authorized to perform ecr:GetAuthorizationToken"),
            aws(
                "UnrecognizedClientException: The security token included in the request is invalid",
            ),
            aws("ExpiredToken: expired"),
        ] {
            assert_eq!(State::of_error(&e), State::Denied, "{e}");
        }
    }

    #[test]
    fn transport_and_server_failures_are_unreachable() {
        let unreachable = Error::Unreachable {
            registry: "r".into(),
            message: "connection refused".into(),
        };
        let refused = Error::Refused {
            registry: "r".into(),
            target: "http://169.254.169.254".into(),
            reason: "link-local".into(),
        };
        for e in [
            unreachable,
            refused,
            Error::Deadline("late".into()),
            registry(500, ""),
            registry(503, ""),
            registry(429, "TOOMANYREQUESTS"),
            registry(400, "BAD"),
            aws("ThrottlingException: slow down"),
            aws("dispatch failure: connection refused"),
        ] {
            assert_eq!(State::of_error(&e), State::Unreachable, "{e}");
        }
    }

    #[test]
    fn targets_are_spread_round_robin_over_registries() {
        let config = crate::config::ReplicationConfig::from_json(
            r#"{"source": {"registry": "src:5000"}, "rules": [{"destinations": [
                {"registry": "a:5000", "repositoryName": "1/{repository}"},
                {"registry": "a:5000", "repositoryName": "2/{repository}"},
                {"registry": "a:5000", "repositoryName": "3/{repository}"},
                {"registry": "b:5000"},
                {"registry": "c:5000", "repositoryName": "1/{repository}"},
                {"registry": "c:5000", "repositoryName": "2/{repository}"}]}]}"#,
        )
        .unwrap();
        let targets = config.destinations_for("x", Some("v1")).unwrap();
        let order: Vec<usize> = spread(&targets).into_iter().map(|(i, _)| i).collect();
        assert_eq!(order, vec![0, 3, 4, 1, 5, 2]);
    }

    #[test]
    fn states_serialise_in_capitals() {
        for s in State::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }

    fn dest(state: State) -> DestinationStatus {
        DestinationStatus {
            destination: "r".into(),
            repository: "a".into(),
            state,
            digest: None,
            code: None,
            message: None,
            last_result: None,
            gate: None,
        }
    }

    #[test]
    fn complete_only_when_every_destination_is_complete_and_there_is_one() {
        let report = |states: &[State]| StatusReport {
            source: SourceImage {
                reference: "r/a:v1".into(),
                digest: Digest::of(b"x"),
            },
            destinations: states.iter().copied().map(dest).collect(),
            warnings: Vec::new(),
        };
        assert!(report(&[State::Complete, State::Complete]).complete());
        assert!(!report(&[State::Complete, State::Missing]).complete());
        assert!(!report(&[State::Conflict]).complete());
        assert!(
            !report(&[]).complete(),
            "an image sent nowhere is not complete"
        );
    }

    #[test]
    fn each_destination_gets_its_own_last_result() {
        let result = |registry: &str, at: &str, status: &str| LastResult {
            registry: registry.into(),
            repository: "a".into(),
            status: status.into(),
            completed_at: at.into(),
            error_code: None,
        };
        let mut ds = vec![dest(State::Complete), dest(State::Missing)];
        ds[1].destination = "other".into();
        attach(
            &mut ds,
            vec![
                result("r", "2024-05-01T10:05:00Z", "SUCCEEDED"),
                result("elsewhere", "2024-05-02T10:00:00Z", "SUCCEEDED"),
            ],
        );
        assert_eq!(
            ds[0].last_result.as_ref().map(|r| r.status.as_str()),
            Some("SUCCEEDED")
        );
        assert!(ds[1].last_result.is_none());
    }
}
