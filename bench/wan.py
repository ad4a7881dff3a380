"""The WAN scenarios of `make bench` (issue #12, section 1).

Every tool goes through two `wanproxy` processes (tests/src/bin/wanproxy.rs, the test
proxy's WAN mode): one in front of the source registry, one in front of the destination,
each adding `--wan-delay-ms` (40) to every request before its answer's headers and
capping body bandwidth at `--wan-mbit` (200 Mbit/s) per connection and per proxy. Fresh
proxies for every run, so their counts are the run's.

- `wan-many`: the many-images set (20 repositories × 10 tags, shared base), `ferry sync`
  against `skopeo sync`, each from an empty destination.
- `wan-warm`: the same set, destination already holding it (filled once by each tool
  directly, not through the proxies), `ferry sync` against `skopeo sync`.
- `wan-big`: one 1 GiB layer, `ferry copy` and `skopeo copy` against the bandwidth-cap
  limit (layer bytes × 8 / cap) and a `curl` GET | PUT through the same proxies.
- `wan-pipeline`: `scripts/pipeline-demo --latency N --wan-ms D`, event-to-replica p50/p99
  against 3 × (critical-path round trips × D + transfer time).

Requests are counted by the registries' access logs as in every other scenario (the
proxies forward each request once) and set against the theoretical minimum of
[`minimum_requests`], computed from the dataset.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from datasets import Dataset, big_dataset, many_dataset
from harness import Bench
from registries import MiB, OCI_MANIFEST, ROOT, Registry, SEED, log, request
from report import fmt_pct, fmt_s, summarize
from runs import Idle, timed
from services import WanProxy

GOALS = {
    "wan-many": 0.15,  # × skopeo sync
    "wan-warm": 0.10,  # × skopeo sync (warm)
    "wan-big": 1.05,  # × the bandwidth-cap limit
    "wan-pipeline": 3.0,  # × (critical-path round trips × delay + transfer)
}

# The pipeline's critical path from the job to the replica's tag, in round trips of the
# WAN (see bench/README.md, "wan-pipeline"; asserted by ferry-pipeline's critical_path
# test): the source tag check, the destination HEAD and the source manifest GET at once
# (1), the destination blob HEADs (1), each blob's upload POST with its source GET (1), the
# blob PUTs (1), the tag's manifest PUT (1).
PIPELINE_ROUND_TRIPS = 5
# Destinations of every pipeline-demo push: both copies cross the source's WAN proxy.
PIPELINE_DESTINATIONS = 2


def image_blobs(reg: Registry, repo: str, tag: str) -> list[str]:
    """The config and layer digests of one image manifest."""
    status, _, body = request(reg.host, "GET", f"/v2/{repo}/manifests/{tag}",
                                headers={"Accept": OCI_MANIFEST})
    if status != 200:
        raise RuntimeError(f"GET manifest {repo}:{tag}: {status}")
    m = json.loads(body)
    return [m["config"]["digest"]] + [layer["digest"] for layer in m["layers"]]


def minimum_requests(ds: Dataset) -> dict:
    """The fewest requests a sync of `ds` (single-platform images, no referrers) can make,
    source and destination together, cold (empty destination) and warm (destination
    holding every tag). With T tags, R repositories, B blobs distinct in the registry, P
    (repository, blob) pairs:

    - both: the catalog (1), `tags/list` per repository (R) and a manifest HEAD per tag
      (T) at the source, a manifest HEAD per tag at the destination (T) to learn what is
      there (no `/v2/` check: an anonymous registry needs none, a 401 on the first
      request names the realm);
    - cold, besides: the referrers API probe (1), a manifest GET per tag (T) and a blob
      GET per distinct blob (B) at the source; at the destination a HEAD, POST and
      monolithic PUT for a blob's first repository (3 B), a mount for every other
      repository holding it (P − B), a manifest PUT per tag (T):
      `2 + R + 4 T + 3 B + P`;
    - warm: `1 + R + 2 T`.
    The formula and why each request is needed: bench/README.md, "The fewest requests".
    """
    per_repo: dict = {}
    for repo, tag, _ in ds.tags:
        per_repo.setdefault(repo, set()).update(image_blobs(ds.registry, repo, tag))
    t, r = len(ds.tags), len(per_repo)
    pairs = sum(len(s) for s in per_repo.values())
    blobs = len(set().union(*per_repo.values())) if per_repo else 0
    return {
        "tags": t, "repositories": r, "blobs": blobs, "repo_blob_pairs": pairs,
        "cold": 2 + r + 4 * t + 3 * blobs + pairs,
        "warm": 1 + r + 2 * t,
    }


class Wan:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.args = bench.args
        self.work = bench.work
        self.binary = str(Path(self.args.wanproxy).resolve())

    def proxies(self, src: Registry, dst: Registry) -> tuple[WanProxy, WanProxy]:
        a = self.args
        return (WanProxy(self.binary, src, self.work, a.wan_delay_ms, a.wan_mbit),
                WanProxy(self.binary, dst, self.work, a.wan_delay_ms, a.wan_mbit))

    def through(self, label, ds, dst, argv, check, ferry_rep=False):
        """One run of `argv(src_host, dst_host)` through fresh proxies; `check()` → checks."""
        ps, pd = self.proxies(ds.registry, dst)
        try:
            m0, d0 = ds.registry.mark(), dst.mark()
            wall, rss, cpu, cp = timed(argv(ps.host, pd.host), self.work)
        finally:
            cs, cd = ps.stop(), pd.stop()
        src_t, dst_t = ds.registry.traffic(m0, ds.sizes), dst.traffic(d0, ds.sizes)
        checks = check()
        ok = cp.returncode == 0 and not any(v for k, v in checks.items() if k.endswith("missing")) \
            and checks.get("layer_present", True)
        rep = self.bench.ferry_json(cp) if ferry_rep else None
        ferry = rep and {"totals": rep.get("totals"), "requests": rep.get("requests"),
                         "duration_ms": rep.get("duration_ms")}
        run = self.bench.record(label, wall, rss, cpu, cp, ok, src_t, [dst_t], ds, ferry, checks)
        run.traffic["wan_proxies"] = {"source": cs, "destination": cd}
        return run

    # ---- many and warm ---------------------------------------------------------------

    def sync_config(self, src_host: str, dst_host: str) -> Path:
        path = self.work / f"wan-sync-{src_host.split(':')[1]}-{dst_host.split(':')[1]}.json"
        path.write_text(json.dumps({"source": {"registry": src_host},
                                    "rules": [{"destinations": [{"registry": dst_host}]}]}))
        return path

    def skopeo_yaml(self, src_host: str, ds: Dataset) -> Path:
        path = self.work / f"wan-skopeo-{src_host.split(':')[1]}.yaml"
        lines = [f"{src_host}:", "  tls-verify: false", "  images:"] + [f"    {r}: []" for r in ds.repos]
        path.write_text("\n".join(lines) + "\n")
        return path

    def ferry_sync(self, ds, dst, label):
        return self.through(
            label, ds, dst,
            lambda s, d: [self.bench.ferry, "sync", "-c", str(self.sync_config(s, d)), "--output", "json"],
            lambda: self.bench.check_tags(ds, dst), ferry_rep=True)

    def skopeo_sync(self, ds, dst, label):
        return self.through(
            label, ds, dst,
            lambda s, d: ["skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all",
                          "--dest-tls-verify=false", str(self.skopeo_yaml(s, ds)), d],
            lambda: self.bench.check_tags(ds, dst, self.bench.skopeo_name(ds)))

    def many(self, ds: Dataset) -> dict:
        def fresh(f, label):
            return self.bench.on_fresh(lambda dst: f(ds, dst, label))
        tools = {
            "ferry sync": lambda: fresh(self.ferry_sync, "ferry sync"),
            "skopeo sync": lambda: fresh(self.skopeo_sync, "skopeo sync"),
        }
        return self.bench.alternate(tools, lambda f: f())

    def warm(self, ds: Dataset) -> dict:
        dst, = self.bench.fresh()
        try:
            log("  filling the warm destination directly (ferry sync, then skopeo sync)")
            self.bench.many_ferry(ds, dst, "ferry sync (fill)")
            self.bench.many_skopeo(ds, dst, "skopeo sync (fill)")
            tools = {
                "ferry sync (warm)": lambda: self.ferry_sync(ds, dst, "ferry sync (warm)"),
                "skopeo sync (warm)": lambda: self.skopeo_sync(ds, dst, "skopeo sync (warm)"),
            }
            return self.bench.alternate(tools, lambda f: f())
        finally:
            dst.stop()
            os.sync()

    # ---- big -------------------------------------------------------------------------

    def big(self, ds: Dataset) -> dict:
        repo, tag, _ = ds.tags[0]
        layer = max(ds.sizes, key=ds.sizes.get)

        def run(label, argv, check_layer=False):
            def one(dst):
                def check():
                    if check_layer:
                        status, _, _ = request(dst.host, "HEAD", f"/v2/{repo}/blobs/{layer}")
                        return {"layer_present": status == 200}
                    return self.bench.check_tags(ds, dst)
                return self.through(label, ds, dst, argv, check, ferry_rep=label.startswith("ferry"))
            return self.bench.on_fresh(one)

        def curl(s, d):
            script = (
                "set -euo pipefail\n"
                f'loc=$(curl -sSf -X POST -D - -o /dev/null "http://{d}/v2/{repo}/blobs/uploads/" '
                "| tr -d '\\r' | awk 'tolower($1)==\"location:\" {print $2}')\n"
                f'curl -sSf "http://{s}/v2/{repo}/blobs/{layer}" '
                f'| curl -sSf -o /dev/null -T - -H "Content-Type: application/octet-stream" "$loc&digest={layer}"\n'
            )
            return ["bash", "-c", script]

        tools = {
            "ferry copy": lambda: run("ferry copy", lambda s, d: [
                self.bench.ferry, "copy", f"{s}/{repo}:{tag}", f"{d}/{repo}:{tag}", "--output", "json"]),
            "skopeo copy": lambda: run("skopeo copy", lambda s, d: [
                "skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{s}/{repo}:{tag}", f"docker://{d}/{repo}:{tag}"]),
            "curl GET | PUT": lambda: run("curl GET | PUT", curl, check_layer=True),
        }
        return self.bench.alternate(tools, lambda f: f())

    # ---- pipeline --------------------------------------------------------------------

    def pipeline(self) -> dict:
        """`scripts/pipeline-demo --latency N --wan-ms D`: its p50/p99 lines."""
        argv = [str(ROOT / "scripts/pipeline-demo"), "--release",
                "--latency", str(self.args.wan_pipeline_pushes),
                "--interval-ms", str(self.args.wan_pipeline_interval_ms),
                "--wan-ms", str(self.args.wan_delay_ms), "--wan-mbit", str(self.args.wan_mbit)]
        log(f"  {' '.join(argv)}")
        idle = Idle()
        t0 = time.monotonic()
        cp = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT)
        wall = time.monotonic() - t0
        idle.stop()
        m = re.search(r"event-to-replica latency: p50 (\d+) ms, p99 (\d+) ms, max (\d+) ms", cp.stdout)
        t = re.search(r"transfer per image: (\d+) bytes", cp.stdout)
        pe = re.search(r"PutEvents \(moto routing the event to the events queue\) p50 (\d+) ms, p99 (\d+) ms", cp.stdout)
        eng = re.search(r"per job: copy \(engine\) p50 (\d+) ms, p99 (\d+) ms", cp.stdout)
        load = float(Path("/proc/loadavg").read_text().split()[0])
        stages = [{"stage": x.group(1), "p50_ms": int(x.group(2)), "p99_ms": int(x.group(3)),
                   "max_ms": int(x.group(4))}
                  for x in re.finditer(r"^ {5}(\S.*?\S) +(-?\d+) / +(-?\d+) / +(-?\d+)$", cp.stdout, re.M)]
        out = {"ok": cp.returncode == 0 and m is not None, "stages": stages, "wall_s": round(wall, 1),
               "machine_idle": Idle.last, "loadavg_1m": load,
               "p50_ms": int(m.group(1)) if m else None, "p99_ms": int(m.group(2)) if m else None,
               "max_ms": int(m.group(3)) if m else None,
               "image_bytes": int(t.group(1)) if t else None,
               "put_events_p50_ms": int(pe.group(1)) if pe else None,
               "engine_p50_ms": int(eng.group(1)) if eng else None,
               "engine_p99_ms": int(eng.group(2)) if eng else None,
               "interval_ms": self.args.wan_pipeline_interval_ms,
               "pushes": self.args.wan_pipeline_pushes, "output_tail": cp.stdout[-3000:]}
        if not out["ok"]:
            self.bench.failures.append(f"wan-pipeline: exit {cp.returncode}: {(cp.stderr or '')[-600:]}")
        return out


def run(bench: Bench, wanted: list[str]) -> dict:
    """The wanted WAN scenarios: {name: (dataset description, runs)} (the pipeline's:
    (description, its figures))."""
    w = Wan(bench)
    a = bench.args
    scen: dict = {}
    if "wan-big" in wanted:
        ds = big_dataset(bench.work, a.big_mib)
        try:
            log(f"scenario wan-big: {ds.description}")
            scen["wan-big"] = ({"description": ds.description, "unique_bytes": ds.unique_bytes,
                                "layer_bytes": max(ds.sizes.values())}, w.big(ds))
        finally:
            ds.registry.stop()
    if "wan-many" in wanted or "wan-warm" in wanted:
        ds = many_dataset(bench.work, a.repos, a.tags, a.scale)
        try:
            minimum = minimum_requests(ds)
            desc = {"description": ds.description, "unique_bytes": ds.unique_bytes, "unique_blobs": len(ds.sizes),
                    "tags": len(ds.tags), "repositories": len(ds.repos), "minimum_requests": minimum}
            if "wan-many" in wanted:
                log(f"scenario wan-many: {ds.description}")
                scen["wan-many"] = (desc, w.many(ds))
            if "wan-warm" in wanted:
                log("scenario wan-warm: the same set, destination already holding it")
                scen["wan-warm"] = (dict(desc, description="the many-images set, destination already holding it"),
                                    w.warm(ds))
        finally:
            ds.registry.stop()
    if "wan-pipeline" in wanted:
        log("scenario wan-pipeline")
        scen["wan-pipeline"] = ({"description": f"{a.wan_pipeline_pushes} pushes through scripts/pipeline-demo"},
                                w.pipeline())
    return scen


def report(bench: Bench, info: dict, scen: dict) -> tuple[dict, str]:
    """bench/results/wan.json and wan.md: every figure beside its peer and goal."""
    a = bench.args
    cap_bps = a.wan_mbit * 1_000_000
    rows, targets = [], []
    out: dict = {"machine": info, "settings": {"runs": a.runs, "seed": SEED, "delay_ms": a.wan_delay_ms,
                                               "bandwidth_mbit": a.wan_mbit}, "scenarios": {}}

    def target(scenario, text, value, met):
        targets.append({"scenario": scenario, "target": text, "measured": value, "met": bool(met)})

    def row(scenario, tool, s, ratio="", goal="", minimum=None, note=""):
        req = s["requests_total"]
        per_min = "" if minimum is None or req is None else f"{req / minimum:.2f}"
        rows.append(f"| {scenario} | {tool.replace('|', chr(92) + '|')} | {fmt_s(s['wall_s']['median'])} ({fmt_s(s['wall_s']['min'])}–"
                    f"{fmt_s(s['wall_s']['max'])}) | {ratio} | {goal} | {req:.0f} | "
                    f"{'' if minimum is None else minimum} | {per_min} | {s['peak_rss_mib']:.1f} | "
                    f"{fmt_pct(s['machine_idle'])} | {note} |")

    for name, (desc, runs) in scen.items():
        if name == "wan-pipeline":
            out["scenarios"][name] = {"dataset": desc, "result": runs}
            continue
        out["scenarios"][name] = {
            "dataset": desc, "summary": {t: summarize(rs) for t, rs in runs.items()},
            "runs": {t: [r.as_json() for r in rs] for t, rs in runs.items()}}
    s = out["scenarios"]
    if "wan-big" in s:
        sm, layer = s["wan-big"]["summary"], s["wan-big"]["dataset"]["layer_bytes"]
        limit = layer * 8 / cap_bps
        for tool in ("ferry copy", "skopeo copy", "curl GET | PUT"):
            r = sm[tool]["wall_s"]["median"] / limit
            row("wan-big", tool, sm[tool], f"{r:.2f} × cap limit", "≤ 1.05" if tool == "ferry copy" else "",
                note="layer only" if tool.startswith("curl") else "")
        r = sm["ferry copy"]["wall_s"]["median"] / limit
        target("wan-big", f"Ferry ≤ 1.05 × the bandwidth-cap limit ({layer / MiB:.0f} MiB at {a.wan_mbit} Mbit/s "
               f"= {limit:.2f} s)", f"{r:.3f} × (skopeo {sm['skopeo copy']['wall_s']['median'] / limit:.3f} ×, curl "
               f"{sm['curl GET | PUT']['wall_s']['median'] / limit:.3f} ×)", r <= 1.05 and sm["ferry copy"]["ok_runs"])
    for name, ferry, skopeo, kind in (("wan-many", "ferry sync", "skopeo sync", "cold"),
                                      ("wan-warm", "ferry sync (warm)", "skopeo sync (warm)", "warm")):
        if name not in s:
            continue
        sm = s[name]["summary"]
        minimum = s[name]["dataset"]["minimum_requests"][kind]
        f, sk = sm[ferry], sm[skopeo]
        r = f["wall_s"]["median"] / sk["wall_s"]["median"]
        row(name, ferry, f, f"{r:.2f} × skopeo", f"≤ {GOALS[name]:.2f}", minimum)
        row(name, skopeo, sk, "", "", minimum)
        target(name, f"Ferry ≤ {GOALS[name]:.2f} × skopeo sync", f"{r:.3f} ×", r <= GOALS[name] and f["ok_runs"])
        goal = 1.05 if kind == "cold" else 1.0
        target(name, f"requests ≤ {goal:.2f} × the {kind} minimum ({minimum}, bench/README.md)",
               f"{f['requests_total'] / minimum:.2f} × ({f['requests_total']:.0f}; skopeo "
               f"{sk['requests_total'] / minimum:.2f} ×)", f["requests_total"] <= goal * minimum)
    if "wan-pipeline" in s:
        p = s["wan-pipeline"]["result"]
        # Every push goes to both destinations through the source's proxy: its cap carries
        # the image twice.
        transfer = (p["image_bytes"] or 0) * PIPELINE_DESTINATIONS * 8 / cap_bps
        bound = PIPELINE_ROUND_TRIPS * a.wan_delay_ms / 1000 + transfer
        p99 = None if p["p99_ms"] is None else p["p99_ms"] / 1000
        rows.append(f"| wan-pipeline | replicate (p50 / p99 / max) | {fmt_s(None if p['p50_ms'] is None else p['p50_ms'] / 1000)}"
                    f" / {fmt_s(p99)} / {fmt_s(None if p['max_ms'] is None else p['max_ms'] / 1000)} | "
                    f"{'—' if p99 is None else f'{p99 / bound:.2f}'} × bound | ≤ 3 | | | | | "
                    f"{fmt_pct(p['machine_idle'])} | {p['pushes']} pushes; bound = {PIPELINE_ROUND_TRIPS} RTT × "
                    f"{a.wan_delay_ms} ms + {transfer * 1000:.0f} ms transfer (the image × {PIPELINE_DESTINATIONS} "
                    f"destinations at the source's cap) = {bound * 1000:.0f} ms; copy alone p50 / p99 "
                    f"{p.get('engine_p50_ms')} / {p.get('engine_p99_ms')} ms; before the clock, moto's PutEvents "
                    f"p50 {p.get('put_events_p50_ms')} ms |")
        target("wan-pipeline", f"p99 event-to-replica ≤ 3 × ({PIPELINE_ROUND_TRIPS} round trips × {a.wan_delay_ms} ms "
               f"+ transfer {transfer * 1000:.0f} ms) = {3 * bound * 1000:.0f} ms",
               "—" if p99 is None else f"{p99 * 1000:.0f} ms = {p99 / bound:.2f} × the bound",
               p99 is not None and p99 <= 3 * bound)
    out["targets"] = targets
    out["failures"] = bench.failures
    md = [
        "# Ferry benchmark over a WAN (issue #12)",
        "",
        f"Measured {info['date']} by `scripts/bench --scenarios {','.join(scen)}`, {a.runs} runs per tool, "
        f"tools alternated, medians. Every tool through two `wanproxy` processes (one before the source, one "
        f"before the destination): {a.wan_delay_ms} ms per request, {a.wan_mbit} Mbit/s per connection and per "
        "proxy. Requests counted by the registries' access logs (source + destination), set against the "
        "theoretical minimum of bench/README.md computed from the dataset.",
        "",
        "## Machine",
        "",
        f"- {info['nproc']} CPUs ({info['cpu']}), {info['memory']} memory, kernel {info['kernel']}, {info['os']}",
        f"- {info['ferry']} (commit {info['ferry_commit']}); {info['skopeo']}; {info['docker_registry']}",
        f"- load average at start {' '.join(info['loadavg_start'])}, at end {' '.join(info.get('loadavg_end', []))} "
        "(the machine is shared)",
        "",
        "## Datasets (seed 6)",
        "",
        *[f"- **{n}**: {sc['dataset']['description']}" for n, sc in s.items()],
        "",
        "## Results",
        "",
        "| scenario | tool | wall s, median (min–max) | ratio | goal | requests | minimum | ÷ minimum | peak RSS MiB "
        "| machine idle | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Targets",
        "",
        "| scenario | target | measured | |",
        "|---|---|---|---|",
        *[f"| {t['scenario']} | {t['target']} | {t['measured']} | {'met' if t['met'] else '**missed**'} |"
          for t in targets],
    ]
    stages = s.get("wan-pipeline", {}).get("result", {}).get("stages")
    if stages:
        md += ["", "## wan-pipeline: where each job's time went", "",
               "From PutEvents' return (the clock's start) to the replica's tag, per job "
               "(`scripts/pipeline-demo` prints it); the first stage can be negative: dispatch may "
               "have the event before moto's PutEvents answer arrives.", "",
               "| stage | p50 ms | p99 ms | max ms |", "|---|---|---|---|",
               *[f"| {x['stage']} | {x['p50_ms']} | {x['p99_ms']} | {x['max_ms']} |" for x in stages]]
    if bench.failures:
        md += ["", "## Failures", ""] + [f"- `{x[:300]}`" for x in bench.failures]
    return out, "\n".join(md) + "\n"
