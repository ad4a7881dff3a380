//! `--latency N`: event-to-replica latency of N pushes with the pipeline polling
//! concurrently, and where each job's time went.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use chrono::{DateTime, Utc};
use ferry_e2e::fixtures;
use ferry_pipeline::replicate::JobOutcome;
use ferry_pipeline::{ReplicationResult, Status};

use crate::support::{Sandbox, detail};
use crate::{REPOS, Timeline, lock, start_pipeline, wait_results};

/// `n` pushes, one every `interval` (or back to back), each event published as its push
/// completes, with the pipeline polling meanwhile.
pub(crate) fn measure(
    sb: &Sandbox,
    n: usize,
    interval: Duration,
    concurrency: usize,
) -> Result<()> {
    println!(
        "\n== Latency: {n} pushes, one event each as its push completes, {}, pipeline polling concurrently (up to {concurrency} replicate invocations at once)",
        if interval.is_zero() {
            "back to back".to_string()
        } else {
            format!("one push every {} ms", interval.as_millis())
        }
    );
    let pipeline = start_pipeline(sb, concurrency);
    // Each repository's first push creates it at both destinations: a warm-up, not
    // measured (steady-state replication is into repositories that exist).
    let warm_started = std::time::Instant::now();
    let mut warm = Vec::new();
    for r in 0..REPOS.min(n) {
        let f = fixtures::single_image(&sb.src, &format!("load/app{r}"), "warm", 9_000 + r as u64)?;
        warm.push(detail(
            "PUSH",
            &f.repo,
            Some(&f.tag),
            &f.digest,
            &f.media_type,
        ));
    }
    sb.publish(&warm)?;
    let mut seen = Vec::new();
    wait_results(sb, &mut seen, 2 * warm.len(), Duration::from_secs(300))?;
    println!(
        "   warm-up: {} repositories created at both destinations by their first push ({} ms, not measured)",
        warm.len(),
        warm_started.elapsed().as_millis()
    );
    pipeline
        .outcomes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();

    let started = std::time::Instant::now();
    let mut published: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut put_events = Vec::with_capacity(n);
    let mut transfer = 0u64;
    for i in 0..n {
        let f = fixtures::single_image(
            &sb.src,
            &format!("load/app{}", i % REPOS),
            &format!("b{i}"),
            10_000 + i as u64,
        )?;
        transfer = transfer.max(f.blob_bytes());
        let put = std::time::Instant::now();
        let ids = sb.publish(&[detail(
            "PUSH",
            &f.repo,
            Some(&f.tag),
            &f.digest,
            &f.media_type,
        )])?;
        // The clock starts when EventBridge has the event in the events queue: moto's
        // PutEvents returns once its rule has delivered it (the time it took is printed
        // beside the figures; in AWS that leg is EventBridge's own delivery).
        published.insert(ids[0].clone(), Utc::now());
        put_events.push(put.elapsed().as_secs_f64() * 1000.0);
        let next = started + interval * (i as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    let mut results = Vec::new();
    wait_results(sb, &mut results, 2 * n, Duration::from_secs(600))?;
    let outcomes = pipeline
        .outcomes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let timeline = std::mem::take(&mut *lock(&pipeline.timeline));
    pipeline.finish(sb);

    let mut lat: Vec<f64> = results
        .iter()
        .filter_map(|r| {
            published
                .get(&r.event_id)
                .map(|t| (r.completed_at - *t).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    ensure!(
        lat.len() == 2 * n,
        "{} latencies for {} jobs",
        lat.len(),
        2 * n
    );
    let done: Vec<&(JobOutcome, Duration, usize)> = outcomes
        .iter()
        .filter(|(o, _, _)| o.status != Status::Retry)
        .collect();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let own = sorted(
        done.iter()
            .map(|(o, _, _)| (o.total - o.engine).as_secs_f64() * 1000.0)
            .collect(),
    );
    let publish = sorted(
        done.iter()
            .map(|(_, p, batch)| p.as_secs_f64() * 1000.0 / *batch as f64)
            .collect(),
    );
    let engine = sorted(
        done.iter()
            .map(|(o, _, _)| o.engine.as_secs_f64() * 1000.0)
            .collect(),
    );
    let all_ok = results.iter().all(|r| r.status == Status::Succeeded);
    println!(
        "   jobs: {} (2 destinations x {n} pushes), all SUCCEEDED: {all_ok}",
        lat.len()
    );
    println!(
        "   event-to-replica latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 100.0)
    );
    println!("   transfer per image: {transfer} bytes (the largest image's blobs)");
    print_stages(&results, &published, &timeline);
    put_events.sort_by(f64::total_cmp);
    let p50_p99 = |what: &str, v: &[f64], decimals: usize| {
        println!(
            "   {what}: p50 {:.decimals$} ms, p99 {:.decimals$} ms",
            percentile(v, 50.0),
            percentile(v, 99.0)
        );
    };
    p50_p99(
        "before the clock: PutEvents (moto routing the event to the events queue)",
        &put_events,
        0,
    );
    p50_p99("per job: copy (engine)", &engine, 0);
    p50_p99(
        "replicate's own overhead per job (handler time minus copy time)",
        &own,
        3,
    );
    p50_p99(
        "plus result publishing (PutEvents to moto, per job of its batch)",
        &publish,
        0,
    );
    Ok(())
}

/// Where each job's time went, stage by stage (p50 / p99 / max of each), and the stages of
/// the slowest jobs.
fn print_stages(
    results: &[ReplicationResult],
    published: &BTreeMap<String, DateTime<Utc>>,
    timeline: &Timeline,
) {
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| {
        (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
    };
    // [events queue -> dispatch, dispatch -> job sent, job sent -> replicate, replicate -> done]
    let mut rows: Vec<(f64, [f64; 4])> = Vec::new();
    for r in results {
        let (Some(p), Some(d), Some(seen)) = (
            published.get(&r.event_id),
            timeline.dispatched.get(&r.event_id),
            timeline
                .received
                .get(&(r.event_id.clone(), r.destination.registry.clone())),
        ) else {
            continue;
        };
        rows.push((
            ms(*p, r.completed_at),
            [
                ms(*p, *d),
                ms(*d, seen.sent),
                ms(seen.sent, seen.received),
                ms(seen.received, r.completed_at),
            ],
        ));
    }
    let names = [
        "events queue -> dispatch",
        "dispatch -> job in the jobs queue",
        "jobs queue -> replicate",
        "replicate -> replica (copy)",
    ];
    // The first stage starts when PutEvents returned: dispatch may have the event a few ms
    // before moto's answer arrives (a negative time).
    println!("   stages ({} jobs timed): p50 / p99 / max ms", rows.len());
    for (i, name) in names.iter().enumerate() {
        let mut v: Vec<f64> = rows.iter().map(|(_, s)| s[i]).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "     {name:<36} {:>6.0} / {:>6.0} / {:>6.0}",
            percentile(&v, 50.0),
            percentile(&v, 99.0),
            percentile(&v, 100.0)
        );
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (total, s) in rows.iter().take(3) {
        println!(
            "     slow job: {total:.0} ms = {:.0} + {:.0} + {:.0} + {:.0}",
            s[0], s[1], s[2], s[3]
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
