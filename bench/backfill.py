"""The backfill scenario of `make bench`: a new OU's backfill, planned and enqueued.

500 golden images to 600 destinations (300 accounts x 2 regions) = 300,000 copies, none
there yet. The example `crates/ferry-pipeline/examples/backfill.rs` (built by
`scripts/bench`) runs reconcile over a synthetic drift source, with the in-memory failure
ledger (its cursor) and the in-memory queue, `--backfill-cap` jobs a run, until every copy
was enqueued once; then, against a `moto_server`, one run enqueues `--backfill-sqs-jobs`
jobs into a real SQS FIFO queue. It prints the plan and enqueue times (seconds) as JSON.

The figures are set beside the fleet's bound (bench/README.md, "Backfill of a new OU"):
the time the replicate fleet needs for the same copies, bytes / (concurrency x
per-function throughput), and at least copies / (10 PutImage per second per destination
registry x registries). Goal: planning and enqueueing take at most 10 % of it.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

from registries import log
from services import Moto

# The fleet of the bound: the hub's defaults (ReplicateMaximumConcurrency 10 x
# ReplicateJobConcurrency 4), a golden image of 200 MiB of which a destination lacks all,
# 50 MiB/s per function (same-region ECR to ECR), PutImage at 10/s per registry.
CONCURRENCY = 10 * 4
IMAGE_MIB = 200
FUNCTION_MIB_S = 50.0
PUT_IMAGE_PER_S = 10.0
GOAL_SHARE = 0.10


def bound(jobs: int, destinations: int) -> dict:
    """The fleet's time for `jobs` copies: the bytes bound and the PutImage bound."""
    bytes_s = jobs * IMAGE_MIB / (CONCURRENCY * FUNCTION_MIB_S)
    # Every destination registry takes 10 PutImage a second; each copy is one PutImage
    # (a manifest, plus one per child of an index: 1 here).
    registries = max(1, destinations)
    put_s = jobs / (PUT_IMAGE_PER_S * registries)
    return {"bytes_s": bytes_s, "put_image_s": put_s, "bound_s": max(bytes_s, put_s)}


def run(example: str, work: Path, images: int, destinations: int, cap: int, sqs_jobs: int) -> dict:
    """Run the example (and its SQS part against a fresh moto when `moto_server` exists)."""
    argv = [example, "--images", str(images), "--destinations", str(destinations), "--cap", str(cap)]
    moto = None
    env = None
    if sqs_jobs > 0 and shutil.which("moto_server"):
        moto = Moto(work)
        env = moto.env()
        argv += ["--sqs-endpoint", env["AWS_ENDPOINT_URL"], "--sqs-jobs", str(sqs_jobs)]
    try:
        log(f"backfill: {' '.join(argv)}")
        cp = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    finally:
        if moto is not None:
            moto.stop()
    if cp.returncode != 0:
        raise RuntimeError(f"backfill example failed ({cp.returncode}): {cp.stderr[-2000:]}")
    res = json.loads(cp.stdout.strip().splitlines()[-1])
    res["bound"] = bound(res["jobs"], res["destinations"])
    res["runs_at_1000"] = math.ceil(res["jobs"] / 1000)
    res["share"] = (res["plan_s"] + res["enqueue_s"]) / res["bound"]["bound_s"]
    return res


def report(res: dict) -> str:
    """The markdown section: the figures beside the goal."""
    b = res["bound"]
    build = "debug build" if res.get("debug") else "release build"
    lines = [
        f"## Backfill: {res['images']} images x {res['destinations']} destinations ({build})", "",
        "| what | figure | goal |", "|---|---|---|",
        f"| copies planned and enqueued (memory queue) | {res['enqueued']:,} "
        f"({res['distinct_enqueued']:,} distinct) | {res['jobs']:,}, each once |",
        f"| reconcile runs at {res['cap']:,} jobs a run | {res['runs']} | ceil(jobs / cap) = "
        f"{math.ceil(res['jobs'] / res['cap'])} |",
        f"| time to plan (all runs) | {res['plan_s']:.1f} s | |",
        f"| time to enqueue (all runs) | {res['enqueue_s']:.1f} s | |",
        f"| fleet bound: bytes / (concurrency x throughput) | {b['bytes_s'] / 3600:.1f} h | |",
        f"| fleet bound: PutImage 10/s per destination registry | {b['put_image_s'] / 60:.1f} min | |",
        f"| planning + enqueueing / fleet bound | {100 * res['share']:.2f} % | <= {100 * GOAL_SHARE:.0f} % |",
        f"| runs at the default cap of 1,000 | {res['runs_at_1000']} (x 15 min = "
        f"{res['runs_at_1000'] * 15 / 60:.0f} h) | |",
    ]
    if "sqs" in res:
        s = res["sqs"]
        rate = s["jobs"] / s["enqueue_s"] if s["enqueue_s"] else float("inf")
        lines.append(f"| moto SQS: {s['jobs']:,} jobs enqueued ({s['in_queue']:,} in the queue) | plan "
                     f"{s['plan_s']:.1f} s, enqueue {s['enqueue_s']:.1f} s ({rate:,.0f} jobs/s) | |")
    lines += ["", f"Fleet of the bound: {CONCURRENCY} jobs at once (ReplicateMaximumConcurrency 10 x "
                  f"ReplicateJobConcurrency 4), {IMAGE_MIB} MiB an image, {FUNCTION_MIB_S:.0f} MiB/s a "
                  "function.", ""]
    return "\n".join(lines)
