//! The whole event-driven pipeline, locally (`scripts/pipeline-demo`, `make demo`):
//!
//! 1. sandbox: source registry for account A us-east-1, destinations A eu-west-1 and
//!    B us-west-2 (through an assumed role) behind moto's ECR, SQS, EventBridge and STS;
//!    EventBridge rules routing to SQS as `infra/template.yaml` does;
//! 2. pushes sample images: single, multi-arch, signed, and one whose tag is immutable at
//!    eu-west-1 and already holds other content there;
//! 3. publishes the ECR Image Action events ECR would (one per child manifest too);
//! 4. drives the real dispatch and replicate handlers from the queues until they drain;
//! 5. prints image, destination, status, bytes, latency;
//! 6. verifies the digests with skopeo, and tears everything down.
//!
//! `--latency N` then pushes N more images one after the other, each event published when
//! its push completes, with dispatch and replicate polling concurrently, and reports the
//! event-to-replica latency (p50/p99) and replicate's own overhead per job.
//! `--interval-ms I` starts a push every I ms instead of back to back; `--concurrency K`
//! (default 10, the template's `ReplicateMaximumConcurrency`) is how many replicate
//! invocations run at once, as the SQS event source mapping scales them.
//!
//! `--wan-ms D [--wan-mbit M]` puts the test proxy's WAN mode in front of each of the three
//! registries (the routes the pipeline's config uses): D ms per request, M Mbit/s per
//! connection and per proxy (`make bench`'s wan-pipeline scenario). Pushes and
//! checks go to the registries directly.

#[path = "../../tests/support/mod.rs"]
mod support;

mod latency;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use ferry_e2e::proxy::WanMode;
use ferry_e2e::{Fixture, fixtures, skopeo};
use ferry_pipeline::job::Job;
use ferry_pipeline::poller::{DispatchInvoker, Invoker, Poller};
use ferry_pipeline::replicate::{JobOutcome, ReplicateContext, replicate};
use ferry_pipeline::{ReplicationResult, Status};
use support::conflict::ImmutableProxy;
use support::{MotoEnvelope, Options, Registries, Sandbox, detail, push_details};

/// When each event and job reached each stage, keyed by event id (and destination).
#[derive(Default)]
struct Timeline {
    /// event id -> when dispatch was handed the event.
    dispatched: BTreeMap<String, DateTime<Utc>>,
    /// (event id, destination registry) -> when the job reached the jobs queue and
    /// replicate.
    received: BTreeMap<(String, String), JobSeen>,
}

/// When a job reached the jobs queue (moto's `SentTimestamp`) and replicate.
struct JobSeen {
    sent: DateTime<Utc>,
    received: DateTime<Utc>,
}

type SharedTimeline = Arc<Mutex<Timeline>>;

fn lock(t: &SharedTimeline) -> std::sync::MutexGuard<'_, Timeline> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// dispatch in process, noting when each event was handed over.
struct DispatchRecording<I> {
    inner: I,
    timeline: SharedTimeline,
}

#[async_trait]
impl<I: Invoker> Invoker for DispatchRecording<I> {
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        let now = Utc::now();
        {
            let mut t = lock(&self.timeline);
            for m in &messages {
                let id = m
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string));
                if let Some(id) = id {
                    t.dispatched.insert(id, now);
                }
            }
        }
        self.inner.invoke(messages).await
    }
}

/// replicate in process, keeping each batch's outcomes for the overhead figures.
struct Recording {
    ctx: ReplicateContext,
    outcomes: Arc<Mutex<Vec<(JobOutcome, Duration, usize)>>>,
    timeline: SharedTimeline,
}

#[async_trait]
impl Invoker for Recording {
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        let now = Utc::now();
        {
            let mut t = lock(&self.timeline);
            for m in &messages {
                let Ok(job) = Job::decode(m.body.as_deref().unwrap_or_default()) else {
                    continue;
                };
                let sent = m
                    .attributes
                    .get("SentTimestamp")
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(job.enqueued_at);
                t.received
                    .entry((job.event_id, job.target.registry))
                    .or_insert(JobSeen {
                        sent,
                        received: now,
                    });
            }
        }
        let mut event = SqsEvent::default();
        event.records = messages;
        let deadline = Some(std::time::Instant::now() + Duration::from_secs(300));
        let report = replicate(event, deadline, &self.ctx).await;
        let n = report.outcomes.len();
        let mut all = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        all.extend(
            report
                .outcomes
                .iter()
                .map(|o| (o.clone(), report.publish, n)),
        );
        Ok(report
            .response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect())
    }
}

/// Dispatch and replicate pollers running until stopped.
struct Pipeline {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    outcomes: Arc<Mutex<Vec<(JobOutcome, Duration, usize)>>>,
    timeline: SharedTimeline,
}

/// Repositories the latency pushes go to, in turn.
const REPOS: usize = 5;

/// Dispatch polling the events queue, and replicate polling the jobs queue with up to
/// `concurrency` invocations at once (the event source mapping's `MaximumConcurrency`).
fn start_pipeline(sb: &Sandbox, concurrency: usize) -> Pipeline {
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let timeline = SharedTimeline::default();
    let (config, metrics, queue) = (sb.config.clone(), sb.metrics.clone(), sb.job_queue());
    let mut events = Poller::new(sb.sqs.clone(), &sb.events_queue);
    events.wait = Duration::from_secs(1);
    let s = stop.clone();
    let t = timeline.clone();
    let dispatch = sb.rt.spawn(async move {
        let invoker = DispatchRecording {
            inner: MotoEnvelope(DispatchInvoker {
                config: &config,
                queue: &queue,
                metrics: &metrics,
            }),
            timeline: t,
        };
        while !s.load(Ordering::SeqCst) {
            if let Err(e) = events.poll_once(&invoker).await {
                eprintln!("dispatch poller: {e}");
            }
        }
    });
    let mut jobs = Poller::new(sb.sqs.clone(), &sb.jobs_queue);
    jobs.release_failed = true;
    let invoker: Arc<dyn Invoker> = Arc::new(Recording {
        ctx: sb.replicate_ctx(None),
        outcomes: outcomes.clone(),
        timeline: timeline.clone(),
    });
    let s = stop.clone();
    let replicate = sb.rt.spawn(async move {
        if let Err(e) = jobs.run(invoker, concurrency, s).await {
            eprintln!("replicate poller: {e}");
        }
    });
    Pipeline {
        stop,
        tasks: vec![dispatch, replicate],
        outcomes,
        timeline,
    }
}

impl Pipeline {
    fn finish(self, sb: &Sandbox) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = sb.rt.block_on(t);
        }
    }
}

/// Wait until `want` result events arrived (or time out); all results so far.
fn wait_results(
    sb: &Sandbox,
    seen: &mut Vec<ReplicationResult>,
    want: usize,
    timeout: Duration,
) -> Result<()> {
    let until = std::time::Instant::now() + timeout;
    while seen.len() < want {
        seen.extend(sb.results()?);
        if std::time::Instant::now() > until {
            bail!(
                "only {} of {want} result events after {timeout:?}",
                seen.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Cosign's `sha256-<64 hex>.sig` tags, shortened for the table.
fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("sha256-") {
        Some(rest) if rest.len() > 12 => format!(
            "sha256-{}….{}",
            &rest[..8],
            rest.rsplit('.').next().unwrap_or("")
        ),
        _ => tag.to_string(),
    }
}

/// The value after `flag` on the command line, parsed.
fn flag<T: std::str::FromStr>(flag: &str) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::args().skip_while(|a| a != flag).nth(1) {
        Some(v) => Ok(Some(v.parse().with_context(|| format!("{flag} {v}"))?)),
        None => Ok(None),
    }
}

fn main() -> Result<()> {
    let latency_pushes: usize = flag("--latency")?.unwrap_or(0);
    let interval = Duration::from_millis(flag("--interval-ms")?.unwrap_or(0));
    let concurrency: usize = flag("--concurrency")?.unwrap_or(10);
    let wan = flag::<u64>("--wan-ms")?.map(|ms| WanMode {
        delay: Duration::from_millis(ms),
        ..WanMode::default()
    });
    let wan = match (wan, flag::<u64>("--wan-mbit")?) {
        (Some(mode), Some(mbit)) => Some(WanMode::capped(mode.delay, mbit)),
        (mode, _) => mode,
    };
    println!(
        "== Starting the sandbox: moto (ECR, SQS, EventBridge, STS) and three ECR-shaped registries"
    );
    let registries = Registries::start()?;
    let immutable = ImmutableProxy::start(&registries.eu.registry().url())?;
    let mut routes = BTreeMap::from([(registries.eu.ecr_host(), immutable.url())]);
    let wan_proxies = match wan {
        Some(mode) => {
            println!(
                "   WAN: {} ms per request, {} per connection and per proxy, before every registry",
                mode.delay.as_millis(),
                mode.per_proxy_bps
                    .map_or("no bandwidth cap".to_string(), |b| format!(
                        "{} Mbit/s",
                        b / 1_000_000
                    ))
            );
            registries.behind_wan(mode, &mut routes)?
        }
        None => Vec::new(),
    };
    let sb = Sandbox::start_over(
        Options {
            visibility_timeout: 30,
            client_retries: 3,
            ..Options::default()
        },
        registries,
        &routes,
    )?;
    println!(
        "   source       {} -> {}",
        sb.src.ecr_host(),
        sb.src.registry().url()
    );
    println!(
        "   destination  {} -> {} (immutable tags)",
        sb.eu.ecr_host(),
        immutable.url()
    );
    println!(
        "   destination  {} -> {} (role {})",
        sb.west.ecr_host(),
        sb.west.registry().url(),
        support::ROLE_B
    );
    println!("   moto         {}", sb.moto.endpoint());

    println!("\n== Pushing sample images to the source");
    let held = fixtures::single_image(&sb.eu, "team/pinned", "1.0", 900)?;
    let images: Vec<Fixture> = vec![
        fixtures::single_image(&sb.src, "team/api", "v1", 901)?,
        fixtures::oci_index(&sb.src, "team/web", "v2", 902)?,
        fixtures::signed_index(&sb.src, "team/signed", "v1", 903)?,
        fixtures::single_image(&sb.src, "team/pinned", "1.0", 904)?,
    ];
    for f in &images {
        println!(
            "   {:<40} {} ({} manifests, {} blobs)",
            format!("{}:{}", f.repo, f.tag),
            f.digest,
            f.manifests.len(),
            f.blobs.len()
        );
    }
    println!(
        "   prepared at eu-west-1: team/pinned:1.0 = {} (immutable)",
        held.digest
    );

    println!("\n== Publishing the ECR Image Action events");
    let mut events = Vec::new();
    for f in &images {
        events.extend(push_details(f));
        for t in &f.extra_tags {
            events.push(detail(
                "PUSH",
                &f.repo,
                Some(t),
                &f.referrers[0],
                "application/vnd.oci.image.manifest.v1+json",
            ));
        }
    }
    let published_at = Utc::now();
    sb.publish(&events)?;
    println!(
        "   {} events (digest-only events of child manifests included)",
        events.len()
    );

    println!("\n== Driving dispatch and replicate until the queues drain");
    let pipeline = start_pipeline(&sb, concurrency);
    let expected_jobs = images.iter().map(|f| 1 + f.extra_tags.len()).sum::<usize>() * 2;
    let mut results = Vec::new();
    wait_results(&sb, &mut results, expected_jobs, Duration::from_secs(300))?;
    std::thread::sleep(Duration::from_secs(2));
    results.extend(sb.results()?);
    pipeline.finish(&sb);
    ensure!(
        sb.queue_depth(&sb.jobs_queue)? == 0,
        "jobs queue not drained"
    );

    println!(
        "\n{:<30} {:<60} {:<10} {:>10} {:>9}",
        "IMAGE", "DESTINATION", "STATUS", "BYTES", "LATENCY"
    );
    for r in &results {
        let image = format!(
            "{}:{}",
            r.source.repository,
            r.source
                .tag
                .as_deref()
                .map(short_tag)
                .unwrap_or_else(|| "<digest>".into())
        );
        let dest = format!("{}/{}", r.destination.registry, r.destination.repository);
        let latency = (r.completed_at - published_at).num_milliseconds();
        println!(
            "{image:<30} {dest:<60} {:<10} {:>10} {:>7}ms",
            r.status.as_str(),
            human(r.bytes),
            latency
        );
    }

    println!("\n== Verifying with skopeo");
    for f in &images {
        for dst in sb.destinations() {
            let at = skopeo::inspect_raw_digest(
                &dst.registry().reference(&f.repo, &f.tag),
                dst.registry().credentials(),
            )?;
            let conflict = f.repo == "team/pinned" && dst.ecr_host() == sb.eu.ecr_host();
            let want = if conflict { &held.digest } else { &f.digest };
            ensure!(
                at == *want,
                "{}:{} at {}: {at}, wanted {want}",
                f.repo,
                f.tag,
                dst.ecr_host()
            );
            println!(
                "   ok  {:<28} {:<46} {}{}",
                format!("{}:{}", f.repo, f.tag),
                dst.ecr_host(),
                at,
                if conflict {
                    "  (left unchanged: CONFLICT)"
                } else {
                    ""
                }
            );
        }
    }
    let conflicts = results
        .iter()
        .filter(|r| r.status == Status::Conflict)
        .count();
    ensure!(
        conflicts == 1,
        "expected exactly one CONFLICT, got {conflicts}"
    );
    ensure!(
        !results.iter().any(|r| r.status == Status::Failed),
        "a job FAILED"
    );

    if latency_pushes > 0 {
        latency::measure(&sb, latency_pushes, interval, concurrency)?;
    }
    for proxy in &wan_proxies {
        let stats = proxy.wan_stats();
        println!(
            "   WAN proxy {}: {} requests delayed, {} bytes down, {} bytes up",
            proxy.url(),
            stats.delayed_requests,
            stats.bytes_down,
            stats.bytes_up
        );
    }
    println!("\n== Tearing down");
    drop(sb);
    println!("demo: OK");
    Ok(())
}
