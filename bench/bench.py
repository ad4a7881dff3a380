#!/usr/bin/env python3
"""Ferry's benchmark (`make bench`): Ferry against skopeo and the raw curl limit.

Everything runs on this machine: local `docker-registry` instances on free loopback
ports, datasets generated here from a fixed seed, and each scenario runs Ferry and its
peers alternately, several times, from an empty destination (a fresh registry on a new
port) except the warm scenario. Medians, Ferry/peer ratios, peak RSS, requests and bytes
(both read from the registries' own access logs, so every tool is counted the same way)
go to `bench/results/latest.json` and `bench/results/latest.md`.

Standard library only. See bench/README.md.
"""

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import *  # noqa: E402,F401,F403  (bench/fanout.py reads them as bench.*)
from registries import *  # noqa: E402,F401,F403
from registries import MiB, ROOT, SEED  # noqa: E402
from runs import *  # noqa: E402,F401,F403
from runs import Idle  # noqa: E402
from report import *  # noqa: E402,F401,F403
from report import build_report, machine  # noqa: E402



class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.ferry = str(Path(args.ferry).resolve())
        self.results: dict = {"scenarios": {}}
        self.failures: list[str] = []

    # ---- one run of a tool against fresh destinations -------------------------------

    def ferry_json(self, cp: subprocess.CompletedProcess) -> dict | None:
        try:
            return json.loads(cp.stdout)
        except json.JSONDecodeError:
            return None

    def check_tags(self, ds: Dataset, dst: Registry, name=lambda repo: repo) -> dict:
        missing = 0
        for repo, tag, digest in ds.tags:
            if dst.manifest_digest(name(repo), tag) != digest:
                missing += 1
        return {"tags_expected": len(ds.tags), "tags_wrong_or_missing": missing}

    def record(self, tool, wall, rss, cpu, cp, ok, src_t, dst_ts, ds, ferry=None, checks=None, note=""):
        uploads: dict = {}
        for t in dst_ts:
            for d, n in t.uploads.items():
                uploads[d] = uploads.get(d, 0) + n
        traffic = {
            "source": src_t.as_json(),
            "destinations": [t.as_json() for t in dst_ts],
            "requests_total": src_t.requests + sum(t.requests for t in dst_ts),
            "requests_destinations": sum(t.requests for t in dst_ts),
            "bytes_from_source": src_t.blob_get_bytes,
            "bytes_to_destinations": sum(ds.sizes.get(d, 0) * n for d, n in uploads.items()),
            "blob_uploads": sum(uploads.values()),
            "max_uploads_of_one_blob_per_destination": max(
                [max(t.uploads.values(), default=0) for t in dst_ts], default=0),
            "mounts": sum(t.mounts for t in dst_ts),
            "registries_cpu_s": round(src_t.cpu_s + sum(t.cpu_s for t in dst_ts), 2),
        }
        if not ok:
            err = (cp.stderr or "")[-800:] if cp is not None else ""
            self.failures.append(f"{tool}: exit {cp.returncode if cp else '?'}: {err}")
            log(f"  {tool} FAILED: {err}")
        load = float(Path("/proc/loadavg").read_text().split()[0])
        r = Run(tool, wall, rss, cpu, ok, traffic, Idle.last, load, ferry, checks or {}, note)
        log(f"  {tool:<28} {wall:7.2f} s  rss {rss / 1024:7.1f} MiB  req {traffic['requests_total']:5d}  "
            f"idle {100 * (Idle.last or 0):3.0f}%  "
            f"→dst {traffic['bytes_to_destinations'] / MiB:8.1f} MiB  checks {checks}")
        return r

    # ---- big blob --------------------------------------------------------------------

    def big(self, ds: Dataset) -> dict:
        repo, tag, _ = ds.tags[0]
        layer = max(ds.sizes, key=ds.sizes.get)
        tools = {
            "ferry copy": self.big_ferry,
            "skopeo copy": self.big_skopeo,
            "curl limit (GET | PUT)": self.big_curl,
        }
        runs = self.alternate(tools, lambda f: f(ds, repo, tag, layer))
        return runs

    def fresh(self, n=1) -> list[Registry]:
        return [Registry(self.work, f"dst{i}") for i in range(n)]

    def big_ferry(self, ds, repo, tag, layer):
        dst, = self.fresh()
        try:
            m0, d0 = ds.registry.mark(), dst.mark()
            wall, rss, cpu, cp = timed([self.ferry, "copy", f"{ds.registry.host}/{repo}:{tag}",
                                        f"{dst.host}/{repo}:{tag}", "--output", "json"], self.work)
            src_t, dst_t = ds.registry.traffic(m0, ds.sizes), dst.traffic(d0, ds.sizes)
            checks = self.check_tags(ds, dst)
            rep = self.ferry_json(cp)
            ferry = rep and {k: rep.get(k) for k in ("bytes", "blobs", "requests", "duration_ms")}
            return self.record("ferry copy", wall, rss, cpu, cp, cp.returncode == 0 and not checks["tags_wrong_or_missing"],
                               src_t, [dst_t], ds, ferry, checks)
        finally:
            dst.stop()
            os.sync()

    def big_skopeo(self, ds, repo, tag, layer):
        dst, = self.fresh()
        try:
            m0, d0 = ds.registry.mark(), dst.mark()
            wall, rss, cpu, cp = timed(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                                        f"docker://{ds.registry.host}/{repo}:{tag}", f"docker://{dst.host}/{repo}:{tag}"],
                                       self.work)
            src_t, dst_t = ds.registry.traffic(m0, ds.sizes), dst.traffic(d0, ds.sizes)
            checks = self.check_tags(ds, dst)
            return self.record("skopeo copy", wall, rss, cpu, cp, cp.returncode == 0 and not checks["tags_wrong_or_missing"],
                               src_t, [dst_t], ds, None, checks)
        finally:
            dst.stop()
            os.sync()

    def big_curl(self, ds, repo, tag, layer):
        dst, = self.fresh()
        script = (
            "set -euo pipefail\n"
            f'loc=$(curl -sSf -X POST -D - -o /dev/null "http://{dst.host}/v2/{repo}/blobs/uploads/" '
            "| tr -d '\\r' | awk 'tolower($1)==\"location:\" {print $2}')\n"
            f'curl -sSf "http://{ds.registry.host}/v2/{repo}/blobs/{layer}" '
            f'| curl -sSf -o /dev/null -T - -H "Content-Type: application/octet-stream" "$loc&digest={layer}"\n'
        )
        try:
            m0, d0 = ds.registry.mark(), dst.mark()
            wall, rss, cpu, cp = timed(["bash", "-c", script], self.work)
            src_t, dst_t = ds.registry.traffic(m0, ds.sizes), dst.traffic(d0, ds.sizes)
            status, _, _ = request(dst.host, "HEAD", f"/v2/{repo}/blobs/{layer}")
            checks = {"layer_present": status == 200}
            return self.record("curl limit (GET | PUT)", wall, rss, cpu, cp, cp.returncode == 0 and status == 200,
                               src_t, [dst_t], ds, None, checks, note="the 1 GiB layer only: no config, no manifest")
        finally:
            dst.stop()
            os.sync()

    # ---- many images and warm --------------------------------------------------------

    def sync_config(self, src: Registry, dsts: list[Registry], referrers=True) -> Path:
        path = self.work / f"sync-{src.port}-{'-'.join(str(d.port) for d in dsts)}.json"
        rule: dict = {"destinations": [{"registry": d.host} for d in dsts]}
        if not referrers:
            rule["referrers"] = False
        path.write_text(json.dumps({"source": {"registry": src.host}, "rules": [rule]}))
        return path

    def skopeo_yaml(self, ds: Dataset) -> Path:
        path = self.work / f"skopeo-{ds.registry.port}.yaml"
        lines = [f"{ds.registry.host}:", "  tls-verify: false", "  images:"]
        lines += [f"    {r}: []" for r in ds.repos]
        path.write_text("\n".join(lines) + "\n")
        return path

    @staticmethod
    def skopeo_name(ds: Dataset):
        """Where `skopeo sync` puts a repository: without --scoped, DEST/<last path
        component>. (--scoped would prefix the source host, and a host with a port makes an
        invalid reference: skopeo 1.9 exits with "invalid reference format".)"""
        return lambda repo: repo.rsplit("/", 1)[-1]

    def many_ferry(self, ds: Dataset, dst: Registry, label: str, keep_checks=True, referrers=True):
        cfg = self.sync_config(ds.registry, [dst], referrers)
        m0, d0 = ds.registry.mark(), dst.mark()
        wall, rss, cpu, cp = timed([self.ferry, "sync", "-c", str(cfg), "--output", "json"], self.work)
        src_t, dst_t = ds.registry.traffic(m0, ds.sizes), dst.traffic(d0, ds.sizes)
        rep = self.ferry_json(cp)
        ferry = rep and {"totals": rep.get("totals"), "requests": rep.get("requests"), "duration_ms": rep.get("duration_ms")}
        checks = self.check_tags(ds, dst) if keep_checks else {}
        ok = cp.returncode == 0 and not checks.get("tags_wrong_or_missing")
        return self.record(label, wall, rss, cpu, cp, ok, src_t, [dst_t], ds, ferry, checks)

    def many_skopeo(self, ds: Dataset, dst: Registry, label: str, keep_checks=True):
        yml = self.skopeo_yaml(ds)
        m0, d0 = ds.registry.mark(), dst.mark()
        argv = ["skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all", "--dest-tls-verify=false"]
        wall, rss, cpu, cp = timed(argv + [str(yml), dst.host], self.work)
        src_t, dst_t = ds.registry.traffic(m0, ds.sizes), dst.traffic(d0, ds.sizes)
        checks = self.check_tags(ds, dst, self.skopeo_name(ds)) if keep_checks else {}
        ok = cp.returncode == 0 and not checks.get("tags_wrong_or_missing")
        return self.record(label, wall, rss, cpu, cp, ok, src_t, [dst_t], ds, None, checks)

    def on_fresh(self, f):
        """`f(dst)` with a fresh destination registry, stopped afterwards."""
        dst, = self.fresh()
        try:
            return f(dst)
        finally:
            dst.stop()
            os.sync()

    def many(self, ds: Dataset) -> dict:
        def fresh_run(f, label):
            return self.on_fresh(lambda dst: f(ds, dst, label))
        tools = {
            "ferry sync": lambda: fresh_run(self.many_ferry, "ferry sync"),
            "skopeo sync": lambda: fresh_run(self.many_skopeo, "skopeo sync"),
            # skopeo 1.9 looks for no referrers or cosign tags: Ferry doing the same work.
            "ferry sync, referrers off": lambda: fresh_run(
                lambda d, dst, label: self.many_ferry(d, dst, label, referrers=False), "ferry sync, referrers off"),
        }
        return self.alternate(tools, lambda f: f())

    def warm(self, ds: Dataset) -> dict:
        dst, = self.fresh()
        try:
            log("  filling the warm destination (ferry sync, then skopeo sync)")
            self.many_ferry(ds, dst, "ferry sync (fill)")
            self.many_skopeo(ds, dst, "skopeo sync (fill)")
            tools = {
                "ferry sync (warm)": lambda: self.many_ferry(ds, dst, "ferry sync (warm)"),
                "skopeo sync (warm)": lambda: self.many_skopeo(ds, dst, "skopeo sync (warm)"),
            }
            return self.alternate(tools, lambda f: f())
        finally:
            dst.stop()
            os.sync()

    # ---- fan-out ---------------------------------------------------------------------

    def fan(self, ds: Dataset) -> dict:
        repo, tag, _ = ds.tags[0]

        def ferry_sync():
            dsts = self.fresh(3)
            try:
                cfg = self.sync_config(ds.registry, dsts)
                marks = ds.registry.mark(), [d.mark() for d in dsts]
                wall, rss, cpu, cp = timed([self.ferry, "sync", "-c", str(cfg), "--output", "json"], self.work)
                src_t = ds.registry.traffic(marks[0], ds.sizes)
                dst_ts = [d.traffic(m, ds.sizes) for d, m in zip(dsts, marks[1])]
                checks = {f"dst{i}": self.check_tags(ds, d)["tags_wrong_or_missing"] for i, d in enumerate(dsts)}
                rep = self.ferry_json(cp)
                ferry = rep and {"totals": rep.get("totals"), "requests": rep.get("requests"), "duration_ms": rep.get("duration_ms")}
                return self.record("ferry sync (3 destinations)", wall, rss, cpu, cp,
                                   cp.returncode == 0 and not any(checks.values()), src_t, dst_ts, ds, ferry, checks)
            finally:
                for d in dsts:
                    d.stop()
                os.sync()

        def ferry_parallel():
            dsts = self.fresh(3)
            try:
                marks = ds.registry.mark(), [d.mark() for d in dsts]
                wall, rss, cpu, outs = run_parallel(
                    [[self.ferry, "copy", f"{ds.registry.host}/{repo}:{tag}", f"{d.host}/{repo}:{tag}", "--output", "json"]
                     for d in dsts], self.work)
                src_t = ds.registry.traffic(marks[0], ds.sizes)
                dst_ts = [d.traffic(m, ds.sizes) for d, m in zip(dsts, marks[1])]
                checks = {f"dst{i}": self.check_tags(ds, d)["tags_wrong_or_missing"] for i, d in enumerate(dsts)}
                failed = [p for _, p, _, _ in outs if p.returncode != 0]
                cp = subprocess.CompletedProcess([], failed[0].returncode if failed else 0, "",
                                                 "".join(e for _, _, _, e in outs))
                r = self.record("3 × ferry copy in parallel", wall, max(rss), cpu, cp,
                                not failed and not any(checks.values()), src_t, dst_ts, ds, None, checks,
                                note=f"peak RSS is the largest of the 3 processes; their sum {sum(rss) / 1024:.1f} MiB")
                return r
            finally:
                for d in dsts:
                    d.stop()
                os.sync()

        def skopeo_seq():
            dsts = self.fresh(3)
            try:
                marks = ds.registry.mark(), [d.mark() for d in dsts]
                script = "set -euo pipefail\n" + "".join(
                    f"skopeo copy --all --src-tls-verify=false --dest-tls-verify=false "
                    f"docker://{ds.registry.host}/{repo}:{tag} docker://{d.host}/{repo}:{tag}\n" for d in dsts)
                wall, rss, cpu, cp = timed(["bash", "-c", script], self.work)
                src_t = ds.registry.traffic(marks[0], ds.sizes)
                dst_ts = [d.traffic(m, ds.sizes) for d, m in zip(dsts, marks[1])]
                checks = {f"dst{i}": self.check_tags(ds, d)["tags_wrong_or_missing"] for i, d in enumerate(dsts)}
                return self.record("3 × skopeo copy, sequential", wall, rss, cpu, cp,
                                   cp.returncode == 0 and not any(checks.values()), src_t, dst_ts, ds, None, checks)
            finally:
                for d in dsts:
                    d.stop()
                os.sync()

        tools = {
            "ferry sync (3 destinations)": ferry_sync,
            "3 × ferry copy in parallel": ferry_parallel,
            "3 × skopeo copy, sequential": skopeo_seq,
        }
        return self.alternate(tools, lambda f: f())

    # ---- alternation and summaries ---------------------------------------------------

    def alternate(self, tools: dict, call) -> dict:
        """Run every tool `runs` times, rotating the order each round so that no tool
        always goes first (page cache, disk flushes, other load)."""
        names = list(tools)
        runs: dict = {n: [] for n in names}
        for i in range(self.args.runs):
            order = names[i % len(names):] + names[:i % len(names)]
            log(f" round {i + 1}/{self.args.runs}: {', '.join(order)}")
            for n in order:
                runs[n].append(call(tools[n]))
        return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferry", default=str(ROOT / "target/release/ferry"))
    p.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 5)))
    p.add_argument("--big-mib", type=int, default=int(os.environ.get("BENCH_BIG_MIB", 1024)))
    p.add_argument("--repos", type=int, default=20)
    p.add_argument("--tags", type=int, default=10)
    p.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", 1.0)),
                   help="layer size factor of the many-images and fan-out datasets")
    p.add_argument("--scenarios", default=os.environ.get(
        "BENCH_SCENARIOS", "big,many,warm,fan,fanout,wan-many,wan-warm,wan-big,wan-pipeline,scale,coldstart"),
        help="comma-separated; the wan-* scenarios (bench/wan.py) write wan.md / wan.json, "
             "scale (bench/scale.py) scale.md / scale.json, coldstart (bench/coldstart.py) "
             "coldstart.md / coldstart.json")
    p.add_argument("--functions", default=os.environ.get("BENCH_FUNCTIONS", str(ROOT / "target/release")),
                   help="directory of the release Lambda binaries dispatch, replicate, reconcile "
                        "(cargo build --release -p ferry-fn-dispatch -p ferry-fn-replicate -p ferry-fn-reconcile)")
    p.add_argument("--coldstart-runs", type=int, default=int(os.environ.get("BENCH_COLDSTART_RUNS", 10)),
                   help="cold starts per function and config source of the coldstart scenario")
    p.add_argument("--synthetic", default=os.environ.get("BENCH_SYNTHETIC", str(ROOT / "target/release/synthetic")),
                   help="the generated registry of the scale scenario (cargo build -p ferry-e2e --bin synthetic)")
    p.add_argument("--scale-repos", type=int, default=int(os.environ.get("BENCH_SCALE_REPOS", 10000)),
                   help="repositories of the scale scenario")
    p.add_argument("--scale-tags", type=int, default=int(os.environ.get("BENCH_SCALE_TAGS", 10)),
                   help="tags per repository of the scale scenario")
    p.add_argument("--wanproxy", default=os.environ.get("BENCH_WANPROXY", str(ROOT / "target/release/wanproxy")),
                   help="the WAN proxy binary (cargo build -p ferry-e2e --bin wanproxy)")
    p.add_argument("--wan-delay-ms", type=int, default=int(os.environ.get("BENCH_WAN_DELAY_MS", 40)),
                   help="delay per request of the WAN proxies")
    p.add_argument("--wan-mbit", type=int, default=int(os.environ.get("BENCH_WAN_MBIT", 200)),
                   help="bandwidth cap of the WAN proxies, per connection and per proxy")
    p.add_argument("--wan-pipeline-pushes", type=int, default=int(os.environ.get("BENCH_WAN_PUSHES", 50)),
                   help="pushes of the wan-pipeline scenario (scripts/pipeline-demo --latency N)")
    p.add_argument("--wan-pipeline-interval-ms", type=int, default=int(os.environ.get("BENCH_WAN_PUSH_INTERVAL_MS", 0)),
                   help="a push every this many ms in the wan-pipeline scenario (0: each as the previous one's "
                        "event is published)")
    p.add_argument("--fanout", default=os.environ.get("BENCH_FANOUT", "25,100,250"),
                   help="destination counts of the fanout scenario (issue #10)")
    p.add_argument("--fanout-registries", type=int, default=25,
                   help="docker-registry processes the fanout destinations share")
    p.add_argument("--fanout-width", type=int, default=8,
                   help="ferry sync --concurrency, and skopeo copy processes at a time")
    p.add_argument("--fanout-runs", type=int, default=None,
                   help="runs per tool in the fanout scenario (default: --runs, at most 3)")
    p.add_argument("--work", default=os.environ.get("BENCH_WORK", f"/tmp/ferry-bench-{os.getuid()}"))
    p.add_argument("--out", default=os.environ.get("BENCH_OUT", str(ROOT / "bench/results")))
    p.add_argument("--name", default=os.environ.get("BENCH_NAME", "latest"), help="results file stem")
    args = p.parse_args()

    for tool in ("docker-registry", "skopeo", "curl", "/usr/bin/time"):
        if not shutil.which(tool):
            print(f"bench: {tool} is missing (scripts/bench installs it)", file=sys.stderr)
            return 2
    if not Path(args.ferry).exists():
        print(f"bench: no ferry binary at {args.ferry}", file=sys.stderr)
        return 2
    wanted = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    wan_wanted = [x for x in wanted if x.startswith("wan-")]
    if wan_wanted and not Path(args.wanproxy).exists():
        print(f"bench: no wanproxy binary at {args.wanproxy} (cargo build -p ferry-e2e --bin wanproxy)",
              file=sys.stderr)
        return 2
    if "scale" in wanted and not Path(args.synthetic).exists():
        print(f"bench: no synthetic binary at {args.synthetic} (cargo build -p ferry-e2e --bin synthetic)",
              file=sys.stderr)
        return 2
    if "wan-pipeline" in wanted and not shutil.which("moto_server"):
        print("bench: moto_server is missing (scripts/setup installs it); the wan-pipeline scenario needs it",
              file=sys.stderr)
        return 2
    if "coldstart" in wanted:
        missing = [f for f in ("dispatch", "replicate", "reconcile") if not (Path(args.functions) / f).exists()]
        if missing or not shutil.which("moto_server"):
            print(f"bench: the coldstart scenario needs moto_server and the release binaries {missing} in "
                  f"{args.functions} (scripts/bench builds them)", file=sys.stderr)
            return 2
    if "fanout" in wanted and not shutil.which("moto_server"):
        print("bench: moto_server is missing (scripts/setup installs it); the fanout scenario needs it",
              file=sys.stderr)
        return 2

    args.fanout_runs = args.fanout_runs or min(args.runs, 3)
    bench = Bench(args)
    bench.fanout_sizes = [int(x) for x in args.fanout.split(",") if x.strip()]
    info = machine(bench.ferry)
    log(f"machine: {info['nproc']} CPUs, {info['memory']}, load {' '.join(info['loadavg_start'])}")
    shutil.rmtree(bench.work, ignore_errors=True)
    bench.work.mkdir(parents=True)
    scen: dict = {}
    sources: list[Registry] = []
    try:
        if "big" in wanted:
            ds = big_dataset(bench.work, args.big_mib)
            sources.append(ds.registry)
            log(f"scenario big: {ds.description}")
            scen["big"] = ({"description": ds.description, "unique_bytes": ds.unique_bytes}, bench.big(ds))
            ds.registry.stop()
        if "many" in wanted or "warm" in wanted:
            ds = many_dataset(bench.work, args.repos, args.tags, args.scale)
            sources.append(ds.registry)
            desc = {"description": ds.description, "unique_bytes": ds.unique_bytes,
                    "unique_blobs": len(ds.sizes), "tags": len(ds.tags), "repositories": len(ds.repos)}
            if "many" in wanted:
                log(f"scenario many: {ds.description}")
                scen["many"] = (desc, bench.many(ds))
            if "warm" in wanted:
                log("scenario warm: the same set again, destination already holding it")
                scen["warm"] = (dict(desc, description="the many-images set, destination already holding it"),
                                bench.warm(ds))
            ds.registry.stop()
        if "fan" in wanted:
            ds = fan_dataset(bench.work, args.scale)
            sources.append(ds.registry)
            log(f"scenario fan-out: {ds.description}")
            scen["fan"] = ({"description": ds.description + ", to 3 destinations", "unique_bytes": ds.unique_bytes},
                           bench.fan(ds))
            ds.registry.stop()
        if "fanout" in wanted:
            import fanout  # bench/fanout.py
            ds = fanout.dataset(bench.work, args.scale)
            sources.append(ds.registry)
            log(f"scenario fanout: {ds.description}, to {args.fanout} destinations")
            scen["fanout"] = ({"description": f"{ds.description}, to {args.fanout} destinations on at most "
                                              f"{args.fanout_registries} docker-registry processes",
                               "unique_bytes": ds.unique_bytes}, fanout.run(bench, ds, bench.fanout_sizes))
            ds.registry.stop()
        scale_res = None
        if "scale" in wanted:
            import scale  # bench/scale.py
            log(f"scenario scale: {args.scale_repos} repositories x {args.scale_tags} tags")
            scale_res = scale.run(bench, args.scale_repos, args.scale_tags)
        coldstart_res = None
        if "coldstart" in wanted:
            import coldstart  # bench/coldstart.py
            log(f"scenario coldstart: {args.coldstart_runs} cold starts per function and config source")
            coldstart_res = coldstart.run(bench, Path(args.functions).resolve(), args.coldstart_runs)
        wan_scen = {}
        if wan_wanted:
            import wan  # bench/wan.py
            wan_scen = wan.run(bench, wan_wanted)
    finally:
        for r in sources:
            r.stop()
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    if scale_res is not None:
        import scale  # bench/scale.py
        stem = "scale" if args.name == "latest" else f"{args.name}-scale"
        md = "\n".join([f"# Ferry at scale ({datetime.date.today()})", "",
                        f"Machine: {info['nproc']} CPUs, load {' '.join(info['loadavg_start'])} at the start, "
                        f"{' '.join(info['loadavg_end'])} at the end; ferry `{args.ferry}`.", "",
                        scale.report(scale_res)])
        reports.append((stem, ({"machine": info, "scale": scale_res}, md)))
    if coldstart_res is not None:
        import coldstart  # bench/coldstart.py
        stem = "coldstart" if args.name == "latest" else f"{args.name}-coldstart"
        reports.append((stem, coldstart.report(info, coldstart_res, args.functions)))
    if scen or not (wan_wanted or scale_res is not None or coldstart_res is not None):
        import fanout  # bench/fanout.py

        def fanout_section(sc, row, target):
            return fanout.report(sc, bench.fanout_sizes, args.fanout_width, row, target)

        reports.append((args.name, build_report(bench, info, scen, {"fanout": fanout_section})))
    if wan_wanted:
        import wan  # bench/wan.py
        stem = "wan" if args.name == "latest" else f"{args.name}-wan"
        reports.append((stem, wan.report(bench, info, wan_scen)))
    for stem, (data, md) in reports:
        (out / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
        (out / f"{stem}.md").write_text(md)
        print(md)
        log(f"wrote {out / (stem + '.md')} and .json")
    shutil.rmtree(bench.work, ignore_errors=True)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.modules["bench"] = sys.modules[__name__]  # bench/fanout.py imports this module as `bench`
    sys.exit(main())
