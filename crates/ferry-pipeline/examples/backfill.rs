//! The backfill of a new OU, planned and enqueued (`make bench --scenarios backfill`):
//! `--images` source images (50 repositories × tags) to `--destinations` ECR destinations
//! (accounts × 2 regions), every copy missing. Reconcile runs over a synthetic drift source
//! with the in-memory ledger (its cursor) and queue, `--cap` jobs a run, until every copy
//! was enqueued once; with `--sqs-endpoint` (a moto server) one more run enqueues
//! `--sqs-jobs` jobs into a real SQS FIFO queue there.
//!
//! Prints one JSON object: the jobs, the runs, and the time spent planning (finding,
//! ordering and selecting the drift, building the jobs) and enqueueing (the queue's
//! `send`), in seconds, and whether this is a debug build.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry::Digest;
use ferry::config::{ReplicationConfig, Target};
use ferry_pipeline::job::Job;
use ferry_pipeline::ledger::{Ledger, MemoryLedger};
use ferry_pipeline::queue::{JobQueue, MemoryQueue, SqsJobQueue};
use ferry_pipeline::reconcile::{DriftItem, DriftSource, Pacing, reconcile};
use ferry_pipeline::{JobAction, JobSource, Metrics, PipelineError};

const SOURCE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
const REPOSITORIES: usize = 50;

/// Every image missing at every destination.
struct Synthetic {
    items: Vec<DriftItem>,
}

#[async_trait(?Send)]
impl DriftSource for Synthetic {
    async fn drift(&self) -> Result<Vec<DriftItem>, PipelineError> {
        Ok(self.items.clone())
    }
}

impl Synthetic {
    fn new(images: usize, destinations: usize) -> Synthetic {
        let destinations_json: Vec<String> = (0..destinations)
            .map(|i| {
                format!(
                    r#"{{"registryId": "{:012}", "region": "{}"}}"#,
                    200_000_000_000u64 + (i / 2) as u64,
                    ["us-east-1", "eu-west-1"][i % 2]
                )
            })
            .collect();
        let config = ReplicationConfig::from_json(&format!(
            r#"{{"source": {{"registryId": "111111111111", "region": "us-east-1"}},
                "rules": [{{"destinations": [{}]}}]}}"#,
            destinations_json.join(",")
        ))
        .expect("the synthetic config");
        let per_repository = images.div_ceil(REPOSITORIES);
        let mut items = Vec::with_capacity(images * destinations);
        for image in 0..images {
            let repository = format!("golden/app{:02}", image / per_repository);
            let tag = format!("v{}", image % per_repository);
            let targets: Vec<Target> = config
                .destinations_for(&repository, Some(&tag))
                .expect("targets");
            let source = JobSource {
                registry: SOURCE.into(),
                repository,
                tag: Some(tag.clone()),
                digest: Some(Digest::of(format!("{image}").as_bytes())),
            };
            items.extend(targets.into_iter().map(|target| DriftItem {
                action: JobAction::Copy,
                source: source.clone(),
                target,
                conflict: false,
                gate: None,
            }));
        }
        Synthetic { items }
    }
}

/// A queue that times its `send` calls.
struct Timed<Q> {
    queue: Q,
    spent: Mutex<Duration>,
}

#[async_trait]
impl<Q: JobQueue> JobQueue for Timed<Q> {
    async fn send(&self, jobs: &[Job]) -> Result<(), PipelineError> {
        let started = Instant::now();
        let out = self.queue.send(jobs).await;
        *self.spent.lock().unwrap() += started.elapsed();
        out
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn number(name: &str, default: usize) -> usize {
    arg(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name}: a number"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), PipelineError> {
    let images = number("--images", 500);
    let destinations = number("--destinations", 600);
    let cap = number("--cap", 1000);
    let started = Instant::now();
    let source = Synthetic::new(images, destinations);
    let drift_s = started.elapsed().as_secs_f64();
    let total = source.items.len();

    let ledger = MemoryLedger::default();
    let metrics = Metrics::memory();
    let queue = Timed {
        queue: MemoryQueue::default(),
        spent: Mutex::default(),
    };
    let pacing = Pacing {
        max_jobs: cap,
        ledger: Some(&ledger),
        fingerprint: "bench",
        now: chrono::Utc::now(),
    };
    let mut runs = 0;
    let mut enqueued = 0;
    let started = Instant::now();
    loop {
        runs += 1;
        let r = reconcile(&format!("run-{runs}"), &source, &queue, &metrics, &pacing).await?;
        enqueued += r.enqueued;
        if r.cursor.is_none() || runs > total {
            break;
        }
    }
    let all_s = started.elapsed().as_secs_f64();
    let enqueue_s = queue.spent.lock().unwrap().as_secs_f64();
    let jobs = queue.queue.jobs();
    let distinct: std::collections::HashSet<String> =
        jobs.iter().map(|j| j.deduplication_id()).collect();
    assert_eq!(ledger.cursor().await?, None, "the last run reached the end");

    let mut out = serde_json::json!({
        "images": images,
        "destinations": destinations,
        "jobs": total,
        "enqueued": enqueued,
        "distinct_enqueued": distinct.len(),
        "cap": cap,
        "runs": runs,
        "drift_s": drift_s,
        "plan_s": all_s - enqueue_s,
        "enqueue_s": enqueue_s,
        "debug": cfg!(debug_assertions),
    });

    let endpoint = arg("--sqs-endpoint", "");
    if !endpoint.is_empty() {
        let sqs_jobs = number("--sqs-jobs", 2000).min(total);
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let client = aws_sdk_sqs::Client::new(&sdk);
        let url = client
            .create_queue()
            .queue_name("backfill-jobs.fifo")
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("CreateQueue")
            .queue_url()
            .unwrap_or_default()
            .to_string();
        let sqs = Timed {
            queue: SqsJobQueue::new(client.clone(), &url),
            spent: Mutex::default(),
        };
        let fresh = MemoryLedger::default();
        let pacing = Pacing {
            max_jobs: sqs_jobs,
            ledger: Some(&fresh),
            ..pacing
        };
        let started = Instant::now();
        let r = reconcile("sqs", &source, &sqs, &metrics, &pacing).await?;
        let all = started.elapsed().as_secs_f64();
        let enqueue = sqs.spent.lock().unwrap().as_secs_f64();
        let attributes = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("GetQueueAttributes");
        let in_queue = attributes
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        out["sqs"] = serde_json::json!({
            "jobs": r.enqueued,
            "in_queue": in_queue,
            "plan_s": all - enqueue,
            "enqueue_s": enqueue,
        });
    }
    println!("{out}");
    Ok(())
}
