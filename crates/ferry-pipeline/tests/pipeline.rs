//! End-to-end tests of the event-driven pipeline (issue #4): ECR events published to moto's
//! EventBridge, routed to SQS as the infra routes them, the real dispatch and replicate
//! handlers driven by the local poller, real registries, result events read back from the
//! result bus.

mod support;

use std::collections::BTreeMap;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use ferry_e2e::proxy::{InjectRule, PathKind, Proxy};
use ferry_e2e::{EcrRegistry, fixtures};
use ferry_pipeline::dispatch::Ignored;
use ferry_pipeline::job::{Job, Origin};
use ferry_pipeline::reconcile::{Pacing, reconcile};
use ferry_pipeline::{ReplicationResult, Status};
use serde_json::json;
use support::conflict::ImmutableProxy;
use support::{Options, Sandbox, detail, push_details};

fn digest_at(r: &EcrRegistry, repo: &str, reference: &str) -> Option<String> {
    r.registry()
        .manifest_digest(repo, reference)
        .expect("HEAD manifest")
}

fn for_dest<'a>(results: &'a [ReplicationResult], r: &EcrRegistry) -> Vec<&'a ReplicationResult> {
    results
        .iter()
        .filter(|x| x.destination.registry == r.ecr_host())
        .collect()
}

#[test]
fn the_same_event_delivered_twice_copies_once_then_skips() {
    let sb = Sandbox::start().expect("sandbox");
    sb.record_calls().expect("recorder");
    let f = fixtures::single_image(&sb.src, "team/api", "v1", 11).expect("fixture");
    sb.publish(&[detail(
        "PUSH",
        "team/api",
        Some("v1"),
        &f.digest,
        &f.media_type,
    )])
    .expect("publish");
    // EventBridge delivers at least once: deliver the very same event (same id) again.
    let delivered = sb.drain_queue(&sb.events_queue).expect("events");
    assert_eq!(delivered.len(), 1);
    for _ in 0..2 {
        sb.rt
            .block_on(
                sb.sqs
                    .send_message()
                    .queue_url(&sb.events_queue)
                    .message_body(&delivered[0])
                    .send(),
            )
            .expect("redeliver");
    }
    let d = sb.run_dispatch().expect("dispatch");
    assert_eq!((d.received, d.acked, d.failed), (2, 2, 0));
    assert_eq!(
        sb.queue_depth(&sb.jobs_queue).unwrap(),
        2,
        "FIFO deduplication: one job per destination, not four"
    );

    let jobs = sb.drain_queue(&sb.jobs_queue).expect("jobs");
    let mut entries = Vec::new();
    for (i, body) in jobs.iter().chain(jobs.iter()).enumerate() {
        let job = Job::decode(body).expect("job");
        // The second delivery of each job (a redelivery after the deduplication window).
        entries.push(
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .message_group_id(job.group_id())
                .message_deduplication_id(format!("{}-{i}", job.deduplication_id()))
                .build()
                .unwrap(),
        );
    }
    sb.send_jobs(entries).unwrap();
    let r = sb.run_replicate(2).expect("replicate");
    assert_eq!((r.received, r.acked, r.failed), (4, 4, 0));

    let results = sb.results().expect("results");
    assert_eq!(results.len(), 4, "{results:#?}");
    for dst in sb.destinations() {
        let mine = for_dest(&results, dst);
        let statuses: Vec<Status> = mine.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Status::Succeeded, Status::Skipped],
            "{}",
            dst.ecr_host()
        );
        assert_eq!(mine[0].blobs_copied, f.blobs.len() as u64);
        assert_eq!(mine[0].bytes, f.blob_bytes());
        assert_eq!(
            (mine[1].blobs_copied, mine[1].bytes),
            (0, 0),
            "the second delivery moves nothing"
        );
        assert_eq!(mine[0].event_id, mine[1].event_id);
        assert_eq!(
            digest_at(dst, "team/api", "v1").as_deref(),
            Some(f.digest.as_str())
        );
    }
    assert_eq!(sb.metrics.sum("Jobs", &[("status", "SKIPPED")]), 2.0);
    assert_eq!(
        sb.metrics.sum("BytesCopied", &[]),
        2.0 * f.blob_bytes() as f64
    );
    // Every AWS call dispatch and replicate made in this run is in infra/check/calls.json
    // for the role that made it: replicate's own (the source, account A's destination in
    // registry-policy mode, result events) and through account B's write role.
    let calls = sb.calls_in_table().expect("recorded calls");
    let actions = |role: &str| -> Vec<String> {
        let mut a: Vec<String> = calls[role].iter().filter_map(|c| c.iam_action()).collect();
        a.sort();
        a.dedup();
        a
    };
    assert_eq!(actions("DispatchRole"), ["sqs:SendMessage"]);
    for (role, action) in [
        ("ReplicateRole", "ecr:CreateRepository"),
        ("ReplicateRole", "events:PutEvents"),
        ("ReplicateRole", "sts:AssumeRole"),
        ("AssumeRole", "ecr:CreateRepository"),
    ] {
        assert!(
            actions(role).iter().any(|a| a == action),
            "{role}: {:?}",
            actions(role)
        );
    }
}

#[test]
fn late_job_never_moves_a_tag_back() {
    let sb = Sandbox::start().expect("sandbox");
    let a = fixtures::single_image(&sb.src, "team/api", "v1", 21).expect("A");
    let event_a = detail("PUSH", "team/api", Some("v1"), &a.digest, &a.media_type);
    let b = fixtures::single_image(&sb.src, "team/api", "v1", 22).expect("B");
    let event_b = detail("PUSH", "team/api", Some("v1"), &b.digest, &b.media_type);
    // The jobs are delivered B first, then A.
    sb.publish(&[event_b]).unwrap();
    sb.run_dispatch().unwrap();
    sb.publish(&[event_a]).unwrap();
    sb.run_dispatch().unwrap();
    sb.run_replicate(2).unwrap();
    let results = sb.results().unwrap();
    assert_eq!(results.len(), 4);
    for dst in sb.destinations() {
        assert_eq!(
            digest_at(dst, "team/api", "v1").as_deref(),
            Some(b.digest.as_str()),
            "v1 ends at B"
        );
        assert_eq!(
            digest_at(dst, "team/api", &a.digest).as_deref(),
            Some(a.digest.as_str()),
            "A kept by digest"
        );
        let late = for_dest(&results, dst)
            .into_iter()
            .find(|r| r.digest.as_deref() == Some(a.digest.as_str()))
            .unwrap();
        assert_eq!(late.superseded_by.as_deref(), Some(b.digest.as_str()));
        assert_eq!(late.status, Status::Succeeded);
    }
}

#[test]
fn multi_arch_push_with_n_plus_one_events_copies_each_blob_once() {
    let sb = Sandbox::start_with(
        Options {
            rule: json!({"untagged": true}),
            ..Options::default()
        },
        &BTreeMap::new(),
    )
    .unwrap();
    let f = fixtures::oci_index(&sb.src, "team/multi", "v2", 31).expect("index");
    assert_eq!(f.manifests.len(), 3, "index and two platforms");
    let events = push_details(&f);
    assert_eq!(events.len(), 3);
    sb.publish(&events).unwrap();
    sb.run_dispatch().unwrap();
    assert_eq!(
        sb.queue_depth(&sb.jobs_queue).unwrap(),
        6,
        "3 events x 2 destinations"
    );
    sb.run_replicate(2).unwrap();
    let results = sb.results().unwrap();
    assert_eq!(results.len(), 6);
    for dst in sb.destinations() {
        let mine = for_dest(&results, dst);
        let copied: u64 = mine.iter().map(|r| r.blobs_copied).sum();
        let bytes: u64 = mine.iter().map(|r| r.bytes).sum();
        assert_eq!(
            copied,
            f.blobs.len() as u64,
            "each blob once at {}",
            dst.ecr_host()
        );
        assert_eq!(bytes, f.blob_bytes());
        assert_eq!(
            digest_at(dst, "team/multi", "v2").as_deref(),
            Some(f.digest.as_str())
        );
    }
    // Without `untagged`, the children's digest-only events make no job.
    let plain = Sandbox::start().unwrap();
    let child = detail(
        "PUSH",
        "team/multi",
        None,
        &f.manifests[1],
        "application/vnd.oci.image.manifest.v1+json",
    );
    let mut event: serde_json::Value = serde_json::from_str(&json!({
        "version": "0", "id": "child-1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": support::ACCOUNT_A, "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": []
    }).to_string()).unwrap();
    event["detail"] = child;
    let d = plain.dispatch_raw(event).unwrap();
    assert_eq!((d.jobs.len(), d.ignored), (0, Some(Ignored::Untagged)));
}

#[test]
fn poison_and_forged_jobs_are_acknowledged_without_a_request_and_hold_no_group() {
    let west_registry = EcrRegistry::start(support::ACCOUNT_B, "us-west-2").unwrap();
    let proxy = Proxy::start(west_registry.registry()).unwrap();
    let routes = BTreeMap::from([(west_registry.ecr_host(), proxy.url())]);
    let mut sb = Sandbox::start_with(Options::default(), &routes).unwrap();
    sb.west = west_registry;
    let f = fixtures::single_image(&sb.src, "team/api", "v1", 41).unwrap();
    let west = sb.west.ecr_host();
    let group = format!("{west}/team/api");
    // Ahead of the real jobs, in the west destination's own FIFO group: a body that is
    // not a job, a copy into a repository the config does not name (with a role of the
    // sender's choosing), and a delete the rule does not allow.
    let forged = |action: &str, repository: &str| {
        json!({"version": 1, "action": action,
               "source": {"registry": sb.src.ecr_host(), "repository": "team/api", "tag": "v1", "digest": f.digest},
               "target": {"registry": west, "repository": repository,
                          "roleArn": "arn:aws:iam::999999999999:role/attacker", "deletes": true},
               "eventId": format!("forged-{action}"), "eventTime": "2026-01-01T00:00:00Z",
               "enqueuedAt": "2026-01-01T00:00:00Z"})
        .to_string()
    };
    let entries = [
        (
            "p",
            "{\"version\": 1, \"action\": \"copy\", \"source\": 42}".to_string(),
        ),
        ("c", forged("copy", "evil/place")),
        ("d", forged("delete", "team/api")),
    ]
    .into_iter()
    .map(|(id, body)| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .message_group_id(&group)
            .message_deduplication_id(format!("forged-{id}"))
            .build()
            .unwrap()
    })
    .collect::<Vec<_>>();
    sb.send_jobs(entries).unwrap();
    sb.dispatch_push(&f).unwrap();
    proxy.reset_counts();
    let report = sb.replicate_batch(None).unwrap();
    let count = |s: Status| report.outcomes.iter().filter(|o| o.status == s).count();
    assert_eq!(
        (count(Status::Rejected), count(Status::Succeeded)),
        (3, 2),
        "{:#?}",
        report.outcomes
    );
    assert!(
        report.response().batch_item_failures.is_empty(),
        "nothing goes back to the queue"
    );
    assert_eq!(report.outcomes.iter().filter(|o| o.poison).count(), 1);
    assert_eq!(sb.metrics.sum("MalformedEvents", &[]), 1.0);
    assert_eq!(sb.metrics.sum("RejectedJobs", &[]), 3.0);
    let results = sb.results().unwrap();
    let rejected: Vec<_> = results
        .iter()
        .filter(|r| r.status == Status::Rejected)
        .collect();
    assert_eq!(rejected.len(), 2, "a result event for each forged job");
    assert!(
        rejected
            .iter()
            .all(|r| r.error_code.as_deref() == Some("rejected"))
    );
    // The west registry saw only the real job's requests: nothing for evil/place, no
    // delete.
    let requests = proxy.requests();
    assert!(!requests.is_empty(), "the real job reached the registry");
    for r in &requests {
        assert!(
            !r.path.contains("evil") && r.method != "DELETE",
            "{} {}",
            r.method,
            r.path
        );
    }
    assert_eq!(
        sb.west
            .registry()
            .manifest_digest("team/api", "v1")
            .unwrap()
            .as_deref(),
        Some(f.digest.as_str()),
        "the real job, behind them in its group, ran and the delete did not"
    );
    // Nothing is redelivered and nothing reaches the dead-letter queue.
    sb.run_replicate(2).unwrap();
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), 0);
    assert!(sb.drain_queue(&sb.jobs_dlq).unwrap().is_empty());

    // A malformed event at dispatch: a clear error naming the event, counted, no job.
    let before = sb.metrics.sum("MalformedEvents", &[]);
    let err = sb
        .dispatch_raw(json!({"id": "bad-1", "source": "aws.ecr", "detail-type": "ECR Image Action", "detail": {"action-type": "PUSH"}}))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("malformed event bad-1: "),
        "{err}"
    );
    assert_eq!(sb.metrics.sum("MalformedEvents", &[]), before + 1.0);
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), 0);
}

#[test]
fn a_fifo_group_stays_ordered_under_a_retryable_failure() {
    let west_registry = EcrRegistry::start(support::ACCOUNT_B, "us-west-2").unwrap();
    let proxy = Proxy::start(west_registry.registry()).unwrap();
    let routes = BTreeMap::from([(west_registry.ecr_host(), proxy.url())]);
    let mut sb = Sandbox::start_with(Options::default(), &routes).unwrap();
    sb.west = west_registry;
    let v1 = fixtures::single_image(&sb.src, "team/api", "v1", 51).unwrap();
    let v2 = fixtures::single_image(&sb.src, "team/api", "v2", 52).unwrap();
    sb.publish(&[detail(
        "PUSH",
        "team/api",
        Some("v1"),
        &v1.digest,
        &v1.media_type,
    )])
    .unwrap();
    sb.run_dispatch().unwrap();
    sb.publish(&[detail(
        "PUSH",
        "team/api",
        Some("v2"),
        &v2.digest,
        &v2.media_type,
    )])
    .unwrap();
    sb.run_dispatch().unwrap();
    // Both attempts (client retries: 1) of the first manifest PUT at us-west-2 fail.
    proxy.inject(InjectRule {
        method: Some(reqwest::Method::PUT),
        kind: Some(PathKind::Manifest),
        status: 503,
        retry_after: None,
        times: 2,
    });

    let first = sb.replicate_batch(None).unwrap();
    let by_tag =
        |r: &ferry_pipeline::replicate::BatchReport, host: &str| -> Vec<(String, Status)> {
            r.outcomes
                .iter()
                .filter_map(|o| {
                    let job = o.result.as_ref().map(|x| {
                        (
                            x.destination.registry.clone(),
                            x.source.tag.clone().unwrap(),
                        )
                    });
                    job.filter(|(h, _)| h == host).map(|(_, t)| (t, o.status))
                })
                .collect()
        };
    let west_host = sb.west.ecr_host();
    let statuses: Vec<Status> = first.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Succeeded,
            Status::Retry,
            Status::Succeeded,
            Status::Retry
        ],
        "{first:#?}"
    );
    assert!(
        first.outcomes[3]
            .error
            .as_deref()
            .unwrap()
            .contains("earlier job of its FIFO group")
    );
    assert!(
        first.outcomes[3].engine.is_zero(),
        "v2 never started before v1"
    );
    assert_eq!(
        by_tag(&first, &sb.eu.ecr_host()),
        [
            ("v1".to_string(), Status::Succeeded),
            ("v2".to_string(), Status::Succeeded)
        ]
    );
    assert_eq!(digest_at(&sb.west, "team/api", "v2"), None);

    let second = sb.replicate_batch(None).unwrap();
    assert_eq!(
        by_tag(&second, &west_host),
        [
            ("v1".to_string(), Status::Succeeded),
            ("v2".to_string(), Status::Succeeded)
        ]
    );
    let results = sb.results().unwrap();
    let west: Vec<String> = for_dest(&results, &sb.west)
        .iter()
        .map(|r| r.source.tag.clone().unwrap())
        .collect();
    assert_eq!(west, ["v1", "v2"], "completed in push order");
    assert_eq!(
        digest_at(&sb.west, "team/api", "v2").as_deref(),
        Some(v2.digest.as_str())
    );
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), 0);
}

#[test]
fn an_immutable_conflict_is_reported_and_the_destination_left_unchanged() {
    let eu_registry = EcrRegistry::start(support::ACCOUNT_A, "eu-west-1").unwrap();
    let proxy = ImmutableProxy::start(&eu_registry.registry().url()).unwrap();
    let routes = BTreeMap::from([(eu_registry.ecr_host(), proxy.url())]);
    let mut sb = Sandbox::start_with(Options::default(), &routes).unwrap();
    sb.eu = eu_registry;
    let held =
        fixtures::single_image(&sb.eu, "team/api", "v1", 61).expect("prepared at the destination");
    let f = fixtures::single_image(&sb.src, "team/api", "v1", 62).unwrap();
    sb.dispatch_push(&f).unwrap();
    let r = sb.run_replicate(2).unwrap();
    assert_eq!(
        (r.received, r.acked, r.failed),
        (2, 2, 0),
        "a conflict is acknowledged, not retried"
    );
    let results = sb.results().unwrap();
    let eu = for_dest(&results, &sb.eu);
    assert_eq!(eu.len(), 1);
    assert_eq!(eu[0].status, Status::Conflict);
    assert_eq!(eu[0].error_code.as_deref(), Some("tag-conflict"));
    assert!(
        eu[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains(&held.digest),
        "{:?}",
        eu[0].error_message
    );
    assert_eq!(proxy.refused(), 1);
    assert_eq!(
        digest_at(&sb.eu, "team/api", "v1").as_deref(),
        Some(held.digest.as_str()),
        "unchanged"
    );
    let west = for_dest(&results, &sb.west);
    assert_eq!(west[0].status, Status::Succeeded);
    assert_eq!(sb.metrics.sum("Jobs", &[("status", "CONFLICT")]), 1.0);
}

#[test]
fn reconcile_repairs_a_dropped_event() {
    let sb = Sandbox::start().unwrap();
    let seen = fixtures::single_image(&sb.src, "team/api", "v1", 71).unwrap();
    sb.publish(&[detail(
        "PUSH",
        "team/api",
        Some("v1"),
        &seen.digest,
        &seen.media_type,
    )])
    .unwrap();
    sb.run_dispatch().unwrap();
    sb.run_replicate(1).unwrap();
    // Pushed, but EventBridge dropped its event.
    let dropped = fixtures::oci_index(&sb.src, "team/web", "v3", 72).unwrap();
    let queue = sb.job_queue();
    let run = sb
        .rt
        .block_on(reconcile(
            "run-1",
            &sb.replicator,
            &queue,
            &sb.metrics,
            &Pacing::capped(100),
        ))
        .unwrap();
    assert_eq!(
        (run.drift, run.enqueued, run.conflicts, run.capped),
        (2, 2, 0, false),
        "{run:?}"
    );
    sb.run_replicate(1).unwrap();
    let results = sb.results().unwrap();
    let repaired: Vec<&ReplicationResult> = results
        .iter()
        .filter(|r| r.origin == Origin::Reconcile)
        .collect();
    assert_eq!(repaired.len(), 2);
    assert!(
        repaired
            .iter()
            .all(|r| r.status == Status::Succeeded && r.event_id == "reconcile:run-1")
    );
    for dst in sb.destinations() {
        assert_eq!(
            digest_at(dst, "team/web", "v3").as_deref(),
            Some(dropped.digest.as_str())
        );
    }
    let again = sb
        .rt
        .block_on(reconcile(
            "run-2",
            &sb.replicator,
            &queue,
            &sb.metrics,
            &Pacing::capped(100),
        ))
        .unwrap();
    assert_eq!((again.drift, again.enqueued), (0, 0));
}

#[test]
fn a_released_failure_is_retried_at_once_not_after_the_visibility_timeout() {
    let west_registry = EcrRegistry::start(support::ACCOUNT_B, "us-west-2").unwrap();
    let proxy = Proxy::start(west_registry.registry()).unwrap();
    let routes = BTreeMap::from([(west_registry.ecr_host(), proxy.url())]);
    // A visibility timeout far longer than the drain below waits.
    let options = Options {
        visibility_timeout: 120,
        ..Options::default()
    };
    let mut sb = Sandbox::start_with(options, &routes).unwrap();
    sb.west = west_registry;
    let f = fixtures::single_image(&sb.src, "team/api", "v1", 61).unwrap();
    sb.dispatch_push(&f).unwrap();
    // Both attempts (client retries: 1) of the first manifest PUT at us-west-2 fail.
    proxy.inject(InjectRule {
        method: Some(reqwest::Method::PUT),
        kind: Some(PathKind::Manifest),
        status: 503,
        retry_after: None,
        times: 2,
    });
    // Three empty one-second receives end the drain: the job can only be done by then if
    // its failure was made visible again at once.
    let stats = sb.run_replicate(3).unwrap();
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert_eq!(stats.acked, 2, "{stats:?}");
    assert_eq!(
        digest_at(&sb.west, "team/api", "v1"),
        Some(f.digest.clone())
    );
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), 0);
}
