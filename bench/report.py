"""The bench's loopback report: medians of the runs, the machine's description, and
bench/results/latest.md and latest.json."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from registries import MiB, ROOT, SEED


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs: list[Run]) -> dict:
    ok = [r for r in runs if r.ok]
    use = ok or runs
    tr = lambda k: median([r.traffic.get(k) for r in use])  # noqa: E731
    return {
        "runs": len(runs),
        "ok_runs": len(ok),
        "wall_s": {"median": round(median([r.wall_s for r in use]), 3),
                   "min": round(min(r.wall_s for r in use), 3), "max": round(max(r.wall_s for r in use), 3),
                   "all": [round(r.wall_s, 3) for r in runs]},
        "peak_rss_mib": round(median([r.rss_kib for r in use]) / 1024, 1),
        "peak_rss_mib_max": round(max(r.rss_kib for r in use) / 1024, 1),
        "cpu_s": round(median([r.cpu_s for r in use]), 2),
        "requests_total": tr("requests_total"),
        "requests_destinations": tr("requests_destinations"),
        "bytes_from_source": tr("bytes_from_source"),
        "bytes_to_destinations": tr("bytes_to_destinations"),
        "blob_uploads": tr("blob_uploads"),
        "mounts": tr("mounts"),
        "registries_cpu_s": tr("registries_cpu_s"),
        "machine_idle": median([r.idle for r in use]),
        "max_uploads_of_one_blob_per_destination": max(r.traffic.get("max_uploads_of_one_blob_per_destination", 0) for r in use),
    }


# --------------------------------------------------------------------------------------
# Machine description and report
# --------------------------------------------------------------------------------------

def cmd_out(argv) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (cp.stdout or cp.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine(ferry: str) -> dict:
    mem = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    cpu = "unknown"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    commit = cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    try:
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "crates/ferry", "crates/ferry-cli", "Cargo.lock"],
                               capture_output=True, text=True, timeout=30).stdout.split("\n")
        commit += " + uncommitted changes in crates/ferry*" if any(x.strip() for x in dirty) else ""
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "ferry": cmd_out([ferry, "--version"]),
        "ferry_commit": commit,
        "skopeo": cmd_out(["skopeo", "--version"]),
        "curl": cmd_out(["curl", "--version"]),
        "docker_registry": cmd_out(["docker-registry", "--version"]),
        "python": platform.python_version(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def fmt_s(x):
    return "—" if x is None else f"{x:.2f}"


def fmt_pct(x):
    return "—" if x is None else f"{100 * x:.0f} %"


def fmt_mib(b):
    return "—" if b is None else f"{b / MiB:,.0f}"


def build_report(bench: Bench, info: dict, scen: dict, sections: dict | None = None) -> tuple[dict, str]:
    """The loopback scenarios' JSON and markdown. `sections`: scenario name → a function
    `(scenario, row, target)` of a scenario module that adds its rows and targets and
    returns markdown lines of its own (fanout: `fanout.report`); this module imports no
    scenario module."""
    rows = []  # markdown rows
    targets = []

    def row(scenario, tool, s, ratio_to=None, ratio_label="", note=""):
        ratio = ""
        if ratio_to is not None:
            ratio = f"{s['wall_s']['median'] / ratio_to['wall_s']['median']:.2f} × {ratio_label}"
        rows.append(
            f"| {scenario} | {tool} | {fmt_s(s['wall_s']['median'])} "
            f"({fmt_s(s['wall_s']['min'])}–{fmt_s(s['wall_s']['max'])}) | {ratio} | {s['peak_rss_mib']:.1f} | "
            f"{s['cpu_s']:.1f} | {fmt_s(s['registries_cpu_s'])} | {fmt_pct(s['machine_idle'])} | {s['requests_total']:.0f} | {fmt_mib(s['bytes_from_source'])} | "
            f"{fmt_mib(s['bytes_to_destinations'])} | {note} |"
        )

    def target(scenario, text, value, met):
        targets.append({"scenario": scenario, "target": text, "measured": value, "met": bool(met)})

    out: dict = {"machine": info, "settings": {"runs": bench.args.runs, "seed": SEED}, "scenarios": {}}
    for name, (ds_desc, runs) in scen.items():
        summ = {tool: summarize(rs) for tool, rs in runs.items()}
        out["scenarios"][name] = {
            "dataset": ds_desc,
            "summary": summ,
            "runs": {tool: [r.as_json() for r in rs] for tool, rs in runs.items()},
        }

    s = out["scenarios"]
    if "big" in s:
        sm = s["big"]["summary"]
        f, sk, c = sm["ferry copy"], sm["skopeo copy"], sm["curl limit (GET | PUT)"]
        title = "big blob"
        row(title, "curl limit (GET \\| PUT)", c, note="layer only")
        row(title, "ferry copy", f, c, "limit")
        row(title, "skopeo copy", sk, c, "limit")
        fr = f["wall_s"]["median"] / c["wall_s"]["median"]
        sr = sk["wall_s"]["median"] / c["wall_s"]["median"]
        target(title, "Ferry ≤ 1.05 × the curl limit", f"{fr:.3f} × (skopeo {sr:.3f} ×)", fr <= 1.05 and f["ok_runs"])
        target(title, "Ferry peak RSS ≤ 64 MiB", f"{f['peak_rss_mib_max']:.1f} MiB (largest of the runs)",
               f["peak_rss_mib_max"] <= 64 and f["ok_runs"])
    if "many" in s:
        sm = s["many"]["summary"]
        f, sk = sm["ferry sync"], sm["skopeo sync"]
        title = "many images"
        unique = s["many"]["dataset"]["unique_bytes"]
        row(title, "ferry sync", f, sk, "skopeo")
        row(title, "skopeo sync", sk, note="--src yaml (every repository, one process), no --scoped")
        fo = sm.get("ferry sync, referrers off")
        if fo:
            row(title, "ferry sync, referrers off", fo, sk, "skopeo",
                note="rule `referrers: false`: no referrer or cosign-tag lookups, like skopeo 1.9")
        r = f["wall_s"]["median"] / sk["wall_s"]["median"]
        target(title, "Ferry sync ≤ 0.33 × skopeo sync", f"{r:.3f} ×", r <= 0.33 and f["ok_runs"])
        once = (f["bytes_to_destinations"] == unique and f["bytes_from_source"] == unique
                and f["max_uploads_of_one_blob_per_destination"] == 1)
        target(title, "unique bytes moved once per destination",
               f"{fmt_mib(f['bytes_from_source'])} MiB read from the source, {fmt_mib(f['bytes_to_destinations'])} MiB "
               f"uploaded, of {fmt_mib(unique)} MiB unique; each blob uploaded at most "
               f"{f['max_uploads_of_one_blob_per_destination']} ×; skopeo read {fmt_mib(sk['bytes_from_source'])} MiB",
               once)
    if "warm" in s:
        sm = s["warm"]["summary"]
        f, sk = sm["ferry sync (warm)"], sm["skopeo sync (warm)"]
        tags = s["warm"]["dataset"]["tags"]
        title = "warm no-op"
        per_dst = f["requests_destinations"] / tags
        per_all = f["requests_total"] / tags
        row(title, "ferry sync", f, sk, "skopeo", note=f"{per_dst:.2f} dst req/tag, {per_all:.2f} all req/tag")
        row(title, "skopeo sync", sk, note=f"{sk['requests_destinations'] / tags:.2f} dst req/tag, "
                                           f"{sk['requests_total'] / tags:.2f} all req/tag")
        target(title, "≤ 1 request per tag per destination (requests the destination registry saw)",
               f"{per_dst:.2f} at the destination ({f['requests_destinations']:.0f} for {tags} tags); "
               f"{per_all:.2f} counting the source too", per_dst <= 1.0 and f["ok_runs"])
        r = f["wall_s"]["median"] / sk["wall_s"]["median"]
        target(title, "report Ferry/skopeo time", f"{r:.3f} ×", True)
    if "fan" in s:
        sm = s["fan"]["summary"]
        f, fp, sk = sm["ferry sync (3 destinations)"], sm["3 × ferry copy in parallel"], sm["3 × skopeo copy, sequential"]
        title = "fan-out ×3"
        row(title, "ferry sync, 3 destinations", f, sk, "skopeo")
        row(title, "3 × ferry copy in parallel", fp, sk, "skopeo")
        row(title, "3 × skopeo copy, sequential", sk)
        r = f["wall_s"]["median"] / sk["wall_s"]["median"]
        target(title, "report time vs 3 sequential skopeo copies (Ferry: one `ferry sync` with 3 destinations)",
               f"{r:.3f} × (3 parallel `ferry copy`: "
               f"{fp['wall_s']['median'] / sk['wall_s']['median']:.3f} ×)", True)
    section_md: list = []
    for name, section in (sections or {}).items():
        if name in s:
            section_md += section(s[name], row, target)
    rows.append("| pipeline | — | see the pipeline bench (issue #6, another engineer's part) | | | | | | | | | |")
    out["targets"] = targets
    out["failures"] = bench.failures

    md = [
        "# Ferry benchmark",
        "",
        f"Measured {info['date']} by `make bench` (bench/bench.py), {bench.args.runs} runs per tool, tools "
        "alternated (order rotated each round), medians; each run from an empty destination (a fresh "
        "`docker-registry` on a new loopback port) except the warm scenario. Requests and bytes are "
        "counted by the registries' access logs (source and destinations), the same way for every tool; "
        "peak RSS and CPU by `/usr/bin/time -v`.",
        "",
        "## Machine",
        "",
        f"- {info['nproc']} CPUs ({info['cpu']}), {info['memory']} memory, kernel {info['kernel']}, {info['os']}",
        f"- {info['ferry']} (commit {info['ferry_commit']}, release build); {info['skopeo']}; {info['curl']}; "
        f"{info['docker_registry']}",
        f"- load average at start {' '.join(info['loadavg_start'])}, at end {' '.join(info.get('loadavg_end', []))} "
        "(the machine is shared: other builds ran alongside)",
        "",
        "## Datasets (seed 6)",
        "",
    ]
    for name, sc in s.items():
        md.append(f"- **{name}**: {sc['dataset']['description']}")
    md += [
        "",
        "## Results",
        "",
        "| scenario | tool | wall s, median (min–max) | ratio | peak RSS MiB | CPU s | registries' CPU s | machine idle | requests | MiB from source | MiB to destinations | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *section_md,
        "",
        "## Targets",
        "",
        "| scenario | target | measured | |",
        "|---|---|---|---|",
    ]
    for t in targets:
        md.append(f"| {t['scenario']} | {t['target']} | {t['measured']} | {'met' if t['met'] else '**missed**'} |")
    if bench.failures:
        md += ["", "## Failures", ""] + [f"- `{x[:300]}`" for x in bench.failures]
    md += ["", "Profiling findings and changes: bench/results/findings.md."]
    return out, "\n".join(md) + "\n"
