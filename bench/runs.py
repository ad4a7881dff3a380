"""Running the tools: one timed process (or several) under `/usr/bin/time -v`, the
machine's idle share over it, and one run's record."""

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


@dataclass
class Run:
    tool: str
    wall_s: float
    rss_kib: int
    cpu_s: float
    ok: bool
    traffic: dict = field(default_factory=dict)
    idle: float | None = None  # the machine's idle share during the run
    loadavg: float | None = None
    ferry: dict | None = None
    checks: dict = field(default_factory=dict)
    note: str = ""

    def as_json(self) -> dict:
        d = {
            "tool": self.tool, "wall_s": round(self.wall_s, 3), "peak_rss_mib": round(self.rss_kib / 1024, 1),
            "cpu_s": round(self.cpu_s, 2), "ok": self.ok,
            "machine_idle": None if self.idle is None else round(self.idle, 3), "loadavg_1m": self.loadavg, "traffic": self.traffic, "checks": self.checks,
        }
        if self.ferry is not None:
            d["ferry_report"] = self.ferry
        if self.note:
            d["note"] = self.note
        return d


def cpu_ticks() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of the machine, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(f), f[3] + f[4]


class Idle:
    """The machine's idle share over the last timed run: the machine is shared, and a
    run that found no idle CPU says so."""

    last: float | None = None

    def __init__(self):
        self.start = cpu_ticks()

    def stop(self):
        end = cpu_ticks()
        total = end[0] - self.start[0]
        Idle.last = (end[1] - self.start[1]) / total if total else None


def timed(argv: list[str], work: Path, env=None) -> tuple[float, int, float, subprocess.CompletedProcess]:
    """Run under /usr/bin/time -v: wall seconds (monotonic), peak RSS KiB (largest
    process of the tree), user+sys seconds."""
    tv = work / "time.txt"
    cmd = ["/usr/bin/time", "-v", "-o", str(tv)] + argv
    idle = Idle()
    t0 = time.monotonic()
    cp = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    idle.stop()
    text = tv.read_text(errors="replace")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    return wall, rss, user + sys_, cp


def run_parallel(argvs: list[list[str]], work: Path, width: int | None = None, env=None):
    """Several commands, at most `width` at a time (default: all at once), each under
    /usr/bin/time -v: wall of the whole, peak RSS of each, CPU sum, and (time file,
    process, stdout, stderr) of each."""
    width = width or len(argvs)
    pending = list(enumerate(argvs))
    running, done = [], []
    idle = Idle()
    t0 = time.monotonic()
    while pending or running:
        while pending and len(running) < width:
            i, argv = pending.pop(0)
            tv, out, err = (work / f"{k}-{i}.txt" for k in ("time", "out", "err"))
            with open(out, "wb") as o, open(err, "wb") as e:
                p = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(tv)] + argv, stdout=o, stderr=e,
                                     stdin=subprocess.DEVNULL, env=env)
            running.append((i, tv, out, err, p))
        time.sleep(0.005)
        for job in [j for j in running if j[4].poll() is not None]:
            running.remove(job)
            done.append(job)
    wall = time.monotonic() - t0
    idle.stop()
    rss, cpu, outs = [], 0.0, []
    for _, tv, out, err, p in sorted(done, key=lambda j: j[0]):
        text = tv.read_text(errors="replace")
        rss.append(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)))
        cpu += float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
        cpu += float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
        outs.append((tv, p, out.read_text(errors="replace"), err.read_text(errors="replace")))
    return wall, rss, cpu, outs
