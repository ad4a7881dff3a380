//! Hundreds of destinations (issue #10): one push fans out through dispatch → SQS FIFO
//! (moto) → replicate to 30 destinations on real registries, each verified with skopeo,
//! while the source is read once per replicate invocation; and dispatch of one push to 500
//! destinations takes 50 `SendMessageBatch` calls.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use ferry_e2e::proxy::{PathKind, Proxy};
use ferry_e2e::{EcrRegistry, Registry, fixtures, verify_copy};
use ferry_pipeline::Status;
use ferry_pipeline::queue::{JobQueue, SqsJobQueue};
use serde_json::{Value, json};
use support::{ACCOUNT_A, Options, Sandbox, detail};

/// Destination registries, and repository templates on each: 3 × 10 destinations.
const REGISTRIES: usize = 3;
const TEMPLATES: usize = 10;

fn template(j: usize) -> String {
    format!("fan{j}/{{repository}}")
}

/// The replicate jobs of the fan-out, drained batch by batch.
#[test]
fn one_push_to_thirty_destinations_reads_the_source_once_per_batch() {
    let src = EcrRegistry::start(ACCOUNT_A, "us-east-1").unwrap();
    let proxy = Proxy::start(src.registry()).unwrap();
    let dsts: Vec<Registry> = (0..REGISTRIES)
        .map(|_| Registry::start().unwrap())
        .collect();
    let mut destinations = Vec::new();
    let mut registries = serde_json::Map::new();
    for r in &dsts {
        registries.insert(r.host(), json!({"plainHttp": true}));
        for j in 0..TEMPLATES {
            destinations.push(json!({"registry": r.host(), "repositoryName": template(j)}));
        }
    }
    let options = Options {
        rule: json!({"destinations": destinations}),
        registries,
        ..Options::default()
    };
    let routes = BTreeMap::from([(src.ecr_host(), proxy.url())]);
    let mut sb = Sandbox::start_with(options, &routes).unwrap();
    sb.src = src;
    // An index of two platforms: three manifests, three blobs.
    let f = fixtures::oci_index(&sb.src, "team/api", "v1", 71).unwrap();
    sb.dispatch_push(&f).unwrap();
    let n = REGISTRIES * TEMPLATES;
    assert_eq!(
        sb.queue_depth(&sb.jobs_queue).unwrap(),
        n,
        "one job per destination"
    );

    let mut done = 0;
    let mut batches = 0;
    let mut blob_gets = 0;
    while done < n {
        proxy.reset_counts();
        let report = sb.replicate_batch(None).unwrap();
        let jobs = report.outcomes.len();
        assert!(jobs > 0, "the queue ran dry after {done} of {n} jobs");
        assert!(
            report
                .outcomes
                .iter()
                .all(|o| o.status == Status::Succeeded),
            "{:#?}",
            report.outcomes
        );
        done += jobs;
        batches += 1;
        let seen = proxy.requests();
        let manifests: Vec<_> = seen
            .iter()
            .filter(|r| r.kind == PathKind::Manifest)
            .collect();
        let fetched = manifests
            .iter()
            .filter(|r| r.method == "GET" && r.status == 200)
            .count();
        eprintln!(
            "batch {batches}: {jobs} jobs, source: {} requests, {} manifest requests ({fetched} GETs answered 200), {} blob GETs",
            seen.len(),
            manifests.len(),
            proxy.count("GET", PathKind::Blob)
        );
        assert_eq!(
            fetched,
            f.manifests.len(),
            "batch {batches} of {jobs} jobs: the graph's manifests once, not once per job"
        );
        let mut keys = HashSet::new();
        for r in &manifests {
            assert!(
                keys.insert((r.method.clone(), r.path.clone())),
                "batch {batches}: {} {} asked twice",
                r.method,
                r.path
            );
        }
        assert_eq!(
            proxy.count("HEAD", PathKind::Manifest),
            1,
            "the source tag read once per batch"
        );
        assert!(proxy.count("GET", PathKind::Referrers) <= 1);
        blob_gets += proxy.count("GET", PathKind::Blob);
    }
    assert_eq!(done, n);
    assert!(batches < n, "jobs were batched ({batches} batches)");
    // Blobs cross from the source once per destination registry; the other repositories
    // of that registry mount them.
    assert!(
        blob_gets <= REGISTRIES * f.blobs.len(),
        "{blob_gets} source blob GETs for {} blobs and {REGISTRIES} registries",
        f.blobs.len()
    );
    let client = sb.replicator.copier().client().clone();
    let tokens = sb.rt.block_on(client.ecr_tokens_minted(&sb.src.ecr_host()));
    assert_eq!(tokens, 1, "one source ECR token for {n} jobs");

    let results = sb.results().unwrap();
    assert_eq!(results.len(), n);
    assert!(results.iter().all(|r| r.status == Status::Succeeded));
    // Every destination, checked with skopeo (four at a time).
    let targets: Vec<(&Registry, String)> = dsts
        .iter()
        .flat_map(|r| (0..TEMPLATES).map(move |j| (r, format!("fan{j}/team/api"))))
        .collect();
    for chunk in targets.chunks(4) {
        std::thread::scope(|s| {
            let checks: Vec<_> = chunk
                .iter()
                .map(|(r, repo)| {
                    let f = &f;
                    let src = sb.src.registry();
                    s.spawn(move || verify_copy(src, f, r, repo))
                })
                .collect();
            for (c, (r, repo)) in checks.into_iter().zip(chunk) {
                c.join()
                    .expect("verify thread")
                    .unwrap_or_else(|e| panic!("{}/{repo}: {e:#}", r.host()));
            }
        });
    }
}

/// Counts the SendMessageBatch requests an SQS client puts on the wire (retries included).
#[derive(Debug, Default)]
struct BatchCalls(Arc<AtomicUsize>);

impl Intercept for BatchCalls {
    fn name(&self) -> &'static str {
        "BatchCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        if context.request().headers().get("x-amz-target") == Some("AmazonSQS.SendMessageBatch") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn one_push_to_five_hundred_destinations_is_fifty_send_message_batch_calls() {
    const N: usize = 500;
    let destinations: Vec<Value> = (0..N)
        .map(|i| json!({"registry": "fan.example", "repositoryName": format!("d{i}/{{repository}}")}))
        .collect();
    let sb = Sandbox::start_with(
        Options {
            rule: json!({"destinations": destinations}),
            ..Options::default()
        },
        &BTreeMap::new(),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sb.sdk)
            .interceptor(BatchCalls(calls.clone()))
            .build(),
    );
    let queue = SqsJobQueue::new(sqs, &sb.jobs_queue);
    let digest = ferry::Digest::of(b"fan-out").to_string();
    let mut event = json!({
        "version": "0", "id": "fan-out-1", "detail-type": "ECR Image Action",
        "source": "aws.ecr", "account": ACCOUNT_A, "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1", "resources": []
    });
    event["detail"] = detail(
        "PUSH",
        "team/api",
        Some("v1"),
        &digest,
        "application/vnd.oci.image.manifest.v1+json",
    );
    let started = Instant::now();
    let dispatched = sb
        .rt
        .block_on(ferry_pipeline::dispatch::dispatch(
            event,
            &sb.config,
            &queue,
            &sb.metrics,
        ))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(dispatched.jobs.len(), N);
    assert_eq!(calls.load(Ordering::SeqCst), N / 10, "ten jobs a call");
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), N);
    // What reconcile counts against its cap: the same jobs, through GetQueueAttributes.
    assert_eq!(sb.rt.block_on(queue.backlog()).unwrap(), Some(N));
    // The figure for bench/results/findings.md (not asserted: wall time is the machine's).
    eprintln!(
        "dispatch of one push to {N} destinations: {} SendMessageBatch calls, {:.0} ms",
        calls.load(Ordering::SeqCst),
        took.as_secs_f64() * 1000.0
    );
}

/// One push to 30 destinations on three registries travels as one job
/// (`FERRY_DESTINATIONS_PER_JOB`): replicate reads each blob from the source once. The
/// third registry refuses every manifest: its ten destinations, and only they, go back to
/// the queue as one job of their own, while the other twenty are done; once that registry
/// is healed, that job completes them.
#[test]
fn one_job_for_thirty_destinations_reads_each_blob_once_and_retries_only_the_failed_ones() {
    let src = EcrRegistry::start(ACCOUNT_A, "us-east-1").unwrap();
    let proxy = Proxy::start(src.registry()).unwrap();
    let dsts: Vec<Registry> = (0..REGISTRIES)
        .map(|_| Registry::start().unwrap())
        .collect();
    let bad = Proxy::start(&dsts[2]).unwrap();
    let hosts = [dsts[0].host(), dsts[1].host(), bad.host()];
    let mut destinations = Vec::new();
    let mut registries = serde_json::Map::new();
    for host in &hosts {
        registries.insert(host.clone(), json!({"plainHttp": true}));
        for j in 0..TEMPLATES {
            destinations.push(json!({"registry": host, "repositoryName": template(j)}));
        }
    }
    let options = Options {
        rule: json!({"destinations": destinations}),
        registries,
        destinations_per_job: 50,
        ..Options::default()
    };
    let routes = BTreeMap::from([(src.ecr_host(), proxy.url())]);
    let mut sb = Sandbox::start_with(options, &routes).unwrap();
    sb.src = src;
    let f = fixtures::oci_index(&sb.src, "team/api", "v1", 72).unwrap();
    bad.inject(ferry_e2e::proxy::InjectRule {
        method: Some(reqwest::Method::PUT),
        kind: Some(PathKind::Manifest),
        status: 500,
        retry_after: None,
        times: 10_000,
    });
    sb.record_calls().unwrap();
    sb.dispatch_push(&f).unwrap();
    let n = REGISTRIES * TEMPLATES;
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), 1, "one job");

    proxy.reset_counts();
    let report = sb.replicate_batch(None).unwrap();
    assert_eq!(report.outcomes.len(), n, "one outcome per destination");
    let count = |s: Status| report.outcomes.iter().filter(|o| o.status == s).count();
    assert_eq!(
        count(Status::Succeeded),
        2 * TEMPLATES,
        "{:#?}",
        report.outcomes
    );
    assert_eq!(count(Status::Retry), TEMPLATES);
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o.requeued == (o.status == Status::Retry))
    );
    assert!(
        report.response().batch_item_failures.is_empty(),
        "the message is done"
    );
    // Every blob of the image once from the source, for the three registries.
    let mut reads: BTreeMap<String, usize> = BTreeMap::new();
    for r in proxy.requests() {
        if r.kind == PathKind::Blob && r.method == "GET" && r.status == 200 {
            *reads.entry(r.path.clone()).or_default() += 1;
        }
    }
    assert_eq!(reads.len(), f.blobs.len(), "{reads:?}");
    assert!(reads.values().all(|&n| n == 1), "{reads:?}");

    // What went back: one job for the ten destinations of the failing registry.
    bad.heal();
    assert_eq!(sb.queue_depth(&sb.jobs_queue).unwrap(), 1);
    let again = sb.replicate_batch(None).unwrap();
    assert_eq!(again.outcomes.len(), TEMPLATES, "{:#?}", again.outcomes);
    assert!(again.outcomes.iter().all(|o| o.status == Status::Succeeded));
    assert!(
        again
            .outcomes
            .iter()
            .filter_map(|o| o.result.as_ref())
            .all(|r| format!("{:?}", r.destination).contains(&bad.host())),
        "only the failed registry's destinations: {:#?}",
        again.outcomes
    );
    // Every AWS call of the run is granted in calls.json to the role that made it, the
    // part sent back by replicate (with its own key) included.
    let calls = sb.calls_in_table().expect("recorded calls");
    assert!(
        calls["ReplicateRole"]
            .iter()
            .any(|c| c.iam_action().as_deref() == Some("sqs:SendMessage")),
        "replicate sent the part to try again: {:#?}",
        calls["ReplicateRole"]
    );
    let results = sb.results().unwrap();
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == Status::Succeeded)
            .count(),
        n
    );
    for (r, j) in [(&dsts[0], 0), (&dsts[1], 5), (&dsts[2], 9)] {
        verify_copy(sb.src.registry(), &f, r, &format!("fan{j}/team/api"))
            .unwrap_or_else(|e| panic!("{}: {e:#}", r.host()));
    }
}
