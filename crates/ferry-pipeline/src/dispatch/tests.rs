//! Unit tests of dispatch: which events make which jobs.
use super::*;
use ferry::Digest;

const SRC: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";

fn config(extra: &str) -> ReplicationConfig {
    ReplicationConfig::from_json(&format!(
        r#"{{"source": {{"registryId": "111111111111", "region": "us-east-1"}},
            "rules": [
              {{"destinations": [{{"registryId": "111111111111", "region": "eu-west-1"}},
                                 {{"registryId": "222222222222", "region": "us-west-2"}}],
                "repositoryFilters": [{{"filter": "team/", "filterType": "PREFIX_MATCH"}}]{extra}}},
              {{"destinations": [{{"registryId": "111111111111", "region": "us-east-1", "repositoryName": "mirror/{{repository}}"}}],
                "repositoryFilters": [{{"filter": "team/", "filterType": "PREFIX_MATCH"}}]}}
            ]}}"#
    ))
    .unwrap()
}

fn action(kind: ActionType, repository: &str, tag: Option<&str>) -> ImageAction {
    ImageAction {
        event_id: "ev".into(),
        event_time: "2026-01-01T00:00:00Z".parse().unwrap(),
        registry: Registry::from_host(SRC),
        action_type: kind,
        succeeded: true,
        repository: repository.into(),
        tag: tag.map(str::to_string),
        digest: Some(Digest::of(b"x")),
        referrer: false,
        storage_class: None,
    }
}

fn destinations(r: Result<Result<Vec<Job>, Ignored>, PipelineError>) -> Vec<String> {
    r.unwrap().unwrap().iter().map(Job::destination).collect()
}

#[test]
fn push_fans_out_one_job_per_destination() {
    let jobs = destinations(jobs_for(
        &action(ActionType::Push, "team/api", Some("v1")),
        &config(""),
    ));
    assert_eq!(
        jobs,
        [
            "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team/api",
            "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api",
            "111111111111.dkr.ecr.us-east-1.amazonaws.com/mirror/team/api",
        ]
    );
}

#[test]
fn filters() {
    let c = config("");
    let mut failed = action(ActionType::Push, "team/api", Some("v1"));
    failed.succeeded = false;
    assert_eq!(jobs_for(&failed, &c).unwrap(), Err(Ignored::NotSuccess));
    assert_eq!(
        jobs_for(
            &action(ActionType::UpdateStorageClass, "team/api", Some("v1")),
            &c
        )
        .unwrap(),
        Err(Ignored::ActionType)
    );
    assert_eq!(
        jobs_for(&action(ActionType::Push, "team/api", None), &c).unwrap(),
        Err(Ignored::Untagged)
    );
    assert_eq!(
        jobs_for(&action(ActionType::Push, "other", Some("v1")), &c).unwrap(),
        Err(Ignored::NoRule)
    );
    assert_eq!(
        jobs_for(&action(ActionType::Delete, "team/api", Some("v1")), &c).unwrap(),
        Err(Ignored::NoDeleteRule)
    );
    let mut elsewhere = action(ActionType::Push, "team/api", Some("v1"));
    elsewhere.registry = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
    assert_eq!(jobs_for(&elsewhere, &c).unwrap(), Err(Ignored::NotSource));
}

#[test]
fn untagged_and_deletes_follow_the_rule() {
    let c = config(r#", "untagged": true, "deletes": true"#);
    assert_eq!(
        destinations(jobs_for(&action(ActionType::Push, "team/api", None), &c)).len(),
        2,
        "only the rule with untagged"
    );
    let deletes = jobs_for(&action(ActionType::Delete, "team/api", Some("v1")), &c)
        .unwrap()
        .unwrap();
    assert_eq!(deletes.len(), 2, "only the rule with deletes");
    assert!(
        deletes
            .iter()
            .all(|j| j.action == JobAction::Delete && j.source.tag.as_deref() == Some("v1"))
    );
    let by_digest = jobs_for(&action(ActionType::Delete, "team/api", None), &c)
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.len(), 2);
}

#[test]
fn loop_guard_recognises_ferrys_own_copies() {
    let c = config("");
    // Ferry's copy of team/api into the source registry as mirror/team/api is selected
    // by no rule here (prefix team/), and is also recognised as a copy.
    assert!(own_copy(&c, &Registry::from_host(SRC), "mirror/team/api", Some("v1")).unwrap());
    assert!(!own_copy(&c, &Registry::from_host(SRC), "team/api", Some("v1")).unwrap());
    assert!(!own_copy(&c, &Registry::from_host(SRC), "mirror/other", Some("v1")).unwrap());
    // A rule selecting everything would loop without the guard.
    let everything = ReplicationConfig::from_json(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": "111111111111", "region": "eu-west-1"},
                                        {"registryId": "111111111111", "region": "us-east-1", "repositoryName": "dr-{repository}-x"}],
                       "repositoryFilters": [{"filter": "app*", "filterType": "WILDCARD"}]}]}"#,
    )
    .unwrap();
    let push = action(ActionType::Push, "dr-app-x", Some("v1"));
    assert!(own_copy(&everything, &push.registry, "dr-app-x", Some("v1")).unwrap());
    assert_eq!(jobs_for(&push, &everything).unwrap(), Err(Ignored::OwnCopy));
    assert_eq!(
        destinations(jobs_for(
            &action(ActionType::Push, "app", Some("v1")),
            &everything
        ))
        .len(),
        2
    );
}

#[test]
fn unpinned_sources_bind_the_events_registry() {
    // A describe-registry output: the account is named, the region is not.
    let c = ReplicationConfig::from_json(
        r#"{"registryId": "111111111111", "replicationConfiguration": {"rules": [
            {"destinations": [{"registryId": "222222222222", "region": "us-west-2",
                               "repositoryName": "{registryId}/{region}/{repository}"}]}]}}"#,
    )
    .unwrap();
    let mut west = action(ActionType::Push, "app", Some("v1"));
    west.registry = Registry::from_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com");
    assert_eq!(
        destinations(jobs_for(&west, &c)),
        ["222222222222.dkr.ecr.us-west-2.amazonaws.com/111111111111/eu-west-1/app"]
    );
    let mut other = action(ActionType::Push, "app", Some("v1"));
    other.registry = Registry::from_host("333333333333.dkr.ecr.us-east-1.amazonaws.com");
    assert_eq!(
        jobs_for(&other, &c).unwrap(),
        Err(Ignored::NotSource),
        "another account's push is never copied under this account's names"
    );
}

#[tokio::test]
async fn a_signature_push_reaches_every_destination_of_its_repository() {
    // The recorded ECR Referrer Action (testdata/events), moved to this test's source.
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../testdata/events/ecr-referrer-action.json"
    ))
    .unwrap();
    event["account"] = serde_json::json!("111111111111");
    // The rules' tag filters do not apply (the subject's tags are not in the event);
    // a rule with `referrers: false` gets no job.
    let c = ReplicationConfig::from_json(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [
              {"destinations": [{"registryId": "111111111111", "region": "eu-west-1"},
                                {"registryId": "222222222222", "region": "us-west-2"}],
               "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
               "tagFilters": [{"filter": "release-", "filterType": "PREFIX_MATCH"}]},
              {"destinations": [{"registryId": "333333333333", "region": "us-west-2"}],
               "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
               "referrers": false},
              {"destinations": [{"registryId": "444444444444", "region": "us-west-2"}],
               "repositoryFilters": [{"filter": "other/", "filterType": "PREFIX_MATCH"}]}
            ]}"#,
    )
    .unwrap();
    let queue = crate::queue::MemoryQueue::default();
    let metrics = Metrics::memory();
    let d = dispatch(event.clone(), &c, &queue, &metrics).await.unwrap();
    let mut got: Vec<(String, &'static str)> = d
        .jobs
        .iter()
        .map(|j| (j.destination(), j.action.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team/api".to_string(),
                "referrer"
            ),
            (
                "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api".to_string(),
                "referrer"
            ),
        ]
    );
    assert!(d.jobs.iter().all(|j| j.source.tag.is_none()
        && j.source.digest.as_ref().map(|x| x.as_str())
            == event["detail"]["image-digest"].as_str()));
    // Every job it makes is one the config authorizes (replicate checks again).
    for j in &d.jobs {
        let t = crate::authorize::authorize(j, &c).unwrap();
        assert!(t.referrers);
    }
    // A forged referrer job to the destination whose rule has `referrers: false` is
    // refused.
    let no_referrers = c
        .destinations_for("team/api", Some("v1"))
        .unwrap()
        .into_iter()
        .find(|t| !t.referrers)
        .unwrap();
    let mut forged = d.jobs[0].clone();
    forged.target = crate::job::JobTarget::from_target(&no_referrers);
    assert_eq!(
        crate::authorize::authorize(&forged, &c).unwrap_err().code,
        "not-configured"
    );
    // A repository no rule with referrers selects: no job.
    event["detail"]["repository-name"] = serde_json::json!("solo/app");
    let d = dispatch(event, &c, &queue, &metrics).await.unwrap();
    assert_eq!(d.ignored, Some(Ignored::NoRule));
}

#[tokio::test]
async fn a_tag_over_128_characters_is_reported_and_skipped() {
    let c = config("");
    let queue = crate::queue::MemoryQueue::default();
    let metrics = Metrics::memory();
    let event = serde_json::json!({
        "version": "0", "id": "long-1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "111111111111", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"action-type": "PUSH", "result": "SUCCESS",
        "repository-name": "team/api", "image-tag": "t".repeat(200),
        "image-digest": Digest::of(b"x").to_string()}});
    let d = dispatch(event, &c, &queue, &metrics).await.unwrap();
    assert_eq!((d.jobs.len(), d.ignored), (0, Some(Ignored::TagTooLong)));
    assert!(queue.jobs().is_empty(), "no job that could never succeed");
    assert_eq!(metrics.sum("InvalidNames", &[]), 1.0);
}

#[tokio::test]
async fn storage_class_events_make_archive_and_restore_jobs_for_following_rules() {
    let event = |text: &str| -> serde_json::Value {
        let mut e: serde_json::Value = serde_json::from_str(text).unwrap();
        e["account"] = "111111111111".into();
        e
    };
    let archive = event(include_str!(
        "../../../../testdata/events/ecr-image-action-archive.json"
    ));
    let restore = event(include_str!(
        "../../../../testdata/events/ecr-image-action-restore.json"
    ));
    let queue = crate::queue::MemoryQueue::default();
    let metrics = Metrics::memory();
    // No rule follows the archive: no job.
    let d = dispatch(archive.clone(), &config(""), &queue, &metrics)
        .await
        .unwrap();
    assert_eq!((d.jobs.len(), d.ignored), (0, Some(Ignored::NoArchiveRule)));
    // The first rule follows it: one job per destination of that rule, by digest (the
    // event names no tag, and the rule's tag filters do not apply).
    let c = config(
        r#", "archive": "follow", "tagFilters": [{"filter": "v*", "filterType": "WILDCARD"}]"#,
    );
    let d = dispatch(archive, &c, &queue, &metrics).await.unwrap();
    let jobs: Vec<_> = d.jobs.iter().map(|j| (j.action, j.destination())).collect();
    assert_eq!(
        jobs,
        [
            (
                JobAction::Archive,
                "111111111111.dkr.ecr.eu-west-1.amazonaws.com/team/api".to_string()
            ),
            (
                JobAction::Archive,
                "222222222222.dkr.ecr.us-west-2.amazonaws.com/team/api".to_string()
            ),
        ]
    );
    assert!(
        d.jobs
            .iter()
            .all(|j| j.source.tag.is_none() && j.source.digest.is_some())
    );
    let d = dispatch(restore, &c, &queue, &metrics).await.unwrap();
    assert!(d.jobs.len() == 2 && d.jobs.iter().all(|j| j.action == JobAction::Restore));
    assert_eq!(queue.jobs().len(), 4);
    // A job round-trips through the queue's encoding.
    let j = &d.jobs[0];
    assert_eq!(&Job::decode(&j.encode()).unwrap(), j);
}
