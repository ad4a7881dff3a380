//! `ferry sync`: execute the plan (the backfill ECR replication does not do).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use ferry::sync::{self, ItemResult, Outcome};
use indicatif::{ProgressBar, ProgressStyle};

use super::context;
use crate::cli::{OutputFormat, SyncArgs};
use crate::output::{self, human_bytes};

/// Plan, then copy and delete with bounded concurrency.
pub(crate) async fn run(args: SyncArgs) -> Result<ExitCode, ferry::Error> {
    let config = context::load_config(&args.config.config, args.config.region.as_deref())?;
    let replicator = context::replicator(
        config,
        args.concurrency.into(),
        args.config.plain_http,
        context::Access::Write,
    )
    .await?;
    let plan = sync::plan_for_sync(&replicator).await?;
    output::invalid_names(&plan.invalid_names);
    if args.dry_run {
        let s = &plan.summary;
        say!(
            "dry run: {} to copy, {} in place, {} conflicts, {} to delete, {} archived, {} to archive, {} to restore; {} to move",
            s.copy,
            s.skip,
            s.conflict,
            s.delete,
            s.archived,
            s.archive,
            s.restore,
            human_bytes(s.bytes_to_move)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let work = plan.items.len() as u64;
    let bar = if std::io::stderr().is_terminal() && args.output == OutputFormat::Text {
        let b = ProgressBar::new(work);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} images {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress: Arc<dyn Fn(&ItemResult) + Send + Sync> = {
        let bar = bar.clone();
        let bytes = bytes.clone();
        Arc::new(move |r: &ItemResult| {
            let moved = r.report.as_ref().map_or(0, |x| x.bytes);
            let total = bytes.fetch_add(moved, std::sync::atomic::Ordering::Relaxed) + moved;
            match &bar {
                Some(b) => {
                    b.inc(1);
                    b.set_message(human_bytes(total));
                }
                None if r.outcome != Outcome::Skipped => {
                    let err = r
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    tell!(
                        "{:<8} {}{err}",
                        format!("{:?}", r.outcome).to_lowercase(),
                        r.item.destination_display()
                    );
                }
                None => {}
            }
        })
    };
    let report = sync::sync(&replicator, plan, args.concurrency.into(), progress).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| ferry::Error::Unsupported(e.to_string()))?;
        std::fs::write(path, text).map_err(|source| ferry::Error::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    match args.output {
        OutputFormat::Json => output::json(&report),
        OutputFormat::Text => {
            let t = &report.totals;
            say!("{:<12} {:>8}", "copied", t.copied);
            say!("{:<12} {:>8}", "in place", t.skipped);
            say!("{:<12} {:>8}", "deleted", t.deleted);
            say!("{:<12} {:>8}", "conflicts", t.conflicts);
            say!("{:<12} {:>8}", "failed", t.failed);
            say!("{:<12} {:>8}", "archived", t.archived);
            if t.storage_class_changes > 0 {
                say!("{:<12} {:>8}", "re-classed", t.storage_class_changes);
            }
            if t.untag_unsupported > 0 {
                say!("{:<12} {:>8}", "kept tags", t.untag_unsupported);
            }
            say!("{:<12} {:>8}", "bytes", human_bytes(t.bytes));
            say!(
                "{:<12} {:>8}",
                "blobs",
                format!(
                    "{} copied, {} mounted, {} present",
                    t.blobs_copied, t.blobs_mounted, t.blobs_skipped
                )
            );
            say!("{:<12} {:>8}", "requests", report.requests.total);
            say!(
                "{:<12} {:>8}",
                "time",
                format!("{:.1} s", report.duration_ms as f64 / 1000.0)
            );
            for r in report
                .items
                .iter()
                .filter(|r| r.outcome == Outcome::Failed || r.outcome == Outcome::Conflict)
            {
                tell!(
                    "{}: {}",
                    r.item.destination_display(),
                    r.error.as_deref().unwrap_or("failed")
                );
            }
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
