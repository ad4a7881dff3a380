"""How the bench runs a tool and records it: one run against fresh destination registries
(its wall time, RSS, CPU, the registries' traffic, the tag checks), the alternation of the
tools over the rounds, and the loopback scenarios built on them (big, many, warm, fan).
The scenario modules (fanout.py, wan.py) drive their tools through the same `Bench`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from datasets import Dataset
from registries import MiB, Registry, log, request
from runs import Idle, Run, run_parallel, timed


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

