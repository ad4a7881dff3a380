"""The authorize scenario (issue #23, section 5): authorizing replication jobs and
dispatching one push at organization scale, in process, release build.

The example `crates/ferry-pipeline/examples/authorize_scale.rs`
(`cargo build --release -p ferry-pipeline --example authorize_scale`) resolves one
organization destination to accounts × regions (default 5,000 × 4 = 20,000 destinations),
builds the config's destination index once, authorizes 10,000 jobs for different
destinations through it, dispatches one push to every destination into the memory queue,
and times the linear search (`destinations_for`, what one authorization cost before the
index) once. It prints one JSON object; this scenario runs it `runs` times and reports the
medians beside the goal: at most 1 ms per authorized job.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

from registries import log

GOAL_MS_PER_JOB = 1.0
FIELDS = ("index_build_ms", "authorize_ms_per_job", "dispatch_ms", "linear_destinations_for_ms")


def run(example: Path, runs: int, accounts: int, regions: int) -> dict:
    samples = []
    for i in range(runs):
        out = subprocess.run([str(example), "--accounts", str(accounts), "--regions", str(regions)],
                             check=True, capture_output=True, text=True).stdout
        sample = json.loads(out)
        log(f"authorize run {i + 1}/{runs}: {sample['authorize_ms_per_job'] * 1000:.2f} us per job, "
            f"dispatch {sample['dispatch_ms']:.1f} ms for {sample['dispatch_jobs']} jobs")
        samples.append(sample)
    medians = {f: statistics.median(s[f] for s in samples) for f in FIELDS}
    return {"runs": samples, "median": medians, "destinations": samples[0]["destinations"],
            "dispatch_jobs": samples[0]["dispatch_jobs"],
            "examined_per_job": samples[0]["destinations_examined_per_job"],
            "goal_ms_per_job": GOAL_MS_PER_JOB,
            "met": medians["authorize_ms_per_job"] <= GOAL_MS_PER_JOB}


def report(res: dict) -> str:
    m = res["median"]
    lo_hi = lambda f: (min(s[f] for s in res["runs"]), max(s[f] for s in res["runs"]))  # noqa: E731
    per_job = m["authorize_ms_per_job"]
    lines = [
        f"## Authorize and dispatch at {res['destinations']:,} destinations", "",
        f"{len(res['runs'])} runs, medians (min–max); {res['examined_per_job']:g} destination(s) "
        f"examined per authorized job.", "",
        "| what | median | min–max | goal |",
        "|---|---:|---:|---|",
        f"| authorize, per job | {per_job * 1000:.2f} µs | {lo_hi('authorize_ms_per_job')[0] * 1000:.2f}–"
        f"{lo_hi('authorize_ms_per_job')[1] * 1000:.2f} µs | ≤ {GOAL_MS_PER_JOB:g} ms: "
        f"{'met' if res['met'] else 'MISSED'} |",
        f"| index build (once per config and source) | {m['index_build_ms']:.1f} ms | "
        f"{lo_hi('index_build_ms')[0]:.1f}–{lo_hi('index_build_ms')[1]:.1f} ms | |",
        f"| dispatch of one push to {res['dispatch_jobs']:,} jobs (memory queue) | {m['dispatch_ms']:.1f} ms | "
        f"{lo_hi('dispatch_ms')[0]:.1f}–{lo_hi('dispatch_ms')[1]:.1f} ms | |",
        f"| linear search for one image (before the index: per job) | {m['linear_destinations_for_ms']:.1f} ms | "
        f"{lo_hi('linear_destinations_for_ms')[0]:.1f}–{lo_hi('linear_destinations_for_ms')[1]:.1f} ms | |",
        "",
    ]
    return "\n".join(lines)
