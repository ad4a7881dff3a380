"""The fan-out scenario of `make bench` (issue #10): one image to N destination registries.

One image (3 layers, the largest 64 MiB) goes to 25, 100 and 250 destinations
(`--fanout`). The destinations are ECR-shaped host names
(`<12-digit account>.dkr.ecr.<region>.amazonaws.com`), several per `docker-registry`
process (`--fanout-registries`, default 25), each with its own repository prefix
(`dNNN/`), so every destination is a repository nobody else writes to:

- **ferry sync, ECR names**: one `ferry sync -c CONFIG` whose config has the N ECR
  destinations, each mapped by `registries.<host>.endpoint` (plain HTTP) onto its
  process, with `repositoryName: dNNN/{repository}`. Ferry mints an ECR token per
  destination registry and creates each repository through the AWS SDK, answered by a
  `moto_server` (`AWS_ENDPOINT_URL`, dummy keys) started for the run; its API calls are
  counted.
- **ferry sync, OCI names**: the same with `{registry: "dstNNN.fanout.test"}`
  destinations (same endpoint overrides, same repositories): no AWS calls, so the
  difference is what the ECR control plane (moto here) costs.
- **skopeo copy, W at a time**: one `skopeo copy` process per destination, W
  (`--fanout-width`, default 8 = Ferry's default `--concurrency`) at a time, straight to
  `127.0.0.1:PORT/dNNN/...` (skopeo has no endpoint override for pushes, and it needs
  no token here). Each skopeo gets its own empty blob-info cache (a private mount
  namespace as root, else its own `$HOME`): otherwise skopeo would mount blobs across
  destinations that share a process, which separate registries never allow.

Bytes and requests come from the registries' access logs; requests are attributed to a
destination by its repository prefix (`/v2/` version checks name no repository and are
counted apart). After every run each destination's manifest digest must equal the
source's.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from datasets import Dataset, make_layer, push_image
from harness import Bench
from registries import MiB, Registry, SEED, log
from report import fmt_mib, fmt_s, median
from runs import run_parallel, timed
from services import Moto

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1")
REPO, TAG = "fan/app", "v1"
SKOPEO_CACHE = Path("/var/lib/containers/cache")  # skopeo's blob-info cache as root


def account(i: int) -> str:
    return f"{210000000000 + 7 * i:012d}"


def ecr_host(i: int) -> str:
    return f"{account(i)}.dkr.ecr.{REGIONS[i % len(REGIONS)]}.amazonaws.com"


def oci_host(i: int) -> str:
    return f"dst{i:03d}.fanout.test"


def prefix(i: int) -> str:
    return f"d{i:03d}"


def dataset(work: Path, scale: float) -> Dataset:
    """One image: layers of 64, 4 and 1 MiB (times `scale`) and a config."""
    reg = Registry(work, "src-fanout")
    rng = random.Random(SEED + 10)
    layers = [make_layer(rng, max(1, int(n * scale * MiB))) for n in (64, 4, 1)]
    sizes: dict = {}
    d = push_image(reg, REPO, TAG, layers, "fanout", sizes)
    ds = Dataset("fanout", reg, [(REPO, TAG, d)], sizes)
    ds.description = (f"one image, {len(layers)} layers ({', '.join(f'{l.size / MiB:.1f}' for l in layers)} MiB) "
                      f"and a config, {ds.unique_bytes / MiB:.1f} MiB")
    return ds


class Fanout:
    def __init__(self, bench: Bench, ds: Dataset):
        self.bench, self.ds = bench, ds
        self.args = bench.args
        self.work = bench.work

    def registries(self, n: int) -> list[Registry]:
        count = min(n, self.args.fanout_registries)
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda k: Registry(self.work, f"fan{k:02d}"), range(count)))

    def config(self, n: int, regs: list[Registry], ecr: bool) -> Path:
        dests, overrides = [], {}
        for i in range(n):
            reg = regs[i % len(regs)]
            host = ecr_host(i) if ecr else oci_host(i)
            overrides[host] = {"endpoint": f"http://{reg.host}", "plainHttp": True}
            dest = ({"registryId": account(i), "region": REGIONS[i % len(REGIONS)]} if ecr else {"registry": host})
            dests.append(dict(dest, repositoryName=f"{prefix(i)}/{{repository}}"))
        path = self.work / f"fanout-{n}-{'ecr' if ecr else 'oci'}.json"
        path.write_text(json.dumps({"source": {"registry": self.ds.registry.host}, "registries": overrides,
                                    "rules": [{"destinations": dests}]}, indent=1))
        return path

    def per_destination(self, n: int, regs, marks) -> tuple[list, list, int]:
        """Traffic of each process, and per destination: requests and bytes of completed
        blob uploads; requests naming no repository (`/v2/`)."""
        time.sleep(0.2)  # the access log line is written after the answer
        procs = [r.traffic(m, self.ds.sizes, settle=False) for r, m in zip(regs, marks)]
        dests = [{"requests": 0, "bytes_written": 0, "uploads": {}, "mounts": 0} for _ in range(n)]
        unattributed = 0
        for reg, m in zip(regs, marks):
            for method, path, q, status, _ in reg.requests(m):
                parts = path.split("/")
                i = int(parts[2][1:]) if len(parts) > 2 and parts[2][:1] == "d" and parts[2][1:].isdigit() else None
                if i is None or i >= n:
                    unattributed += 1
                    continue
                dests[i]["requests"] += 1
                if method == "PUT" and "/blobs/uploads/" in path and status == 201 and "digest" in q:
                    d = q["digest"][0]
                    dests[i]["uploads"][d] = dests[i]["uploads"].get(d, 0) + 1
                    dests[i]["bytes_written"] += self.ds.sizes.get(d, 0)
                elif method == "POST" and "mount" in q and status == 201:
                    dests[i]["mounts"] += 1
        return procs, dests, unattributed

    def checks(self, n: int, regs) -> dict:
        digest = self.ds.tags[0][2]

        def one(i):
            return regs[i % len(regs)].manifest_digest(f"{prefix(i)}/{REPO}", TAG) == digest
        with ThreadPoolExecutor(8) as pool:
            good = sum(pool.map(one, range(n)))
        return {"destinations": n, "manifest_digest_wrong_or_missing": n - good}

    def finish(self, label, n, regs, marks, wall, rss, cpu, cp, ok, ferry=None, moto_calls=None, note=""):
        """`marks`: the source's, then each process's."""
        procs, dests, unattributed = self.per_destination(n, regs, marks[1:])
        src_t = self.ds.registry.traffic(marks[0], self.ds.sizes, settle=False)
        checks = self.checks(n, regs)
        ok = ok and not checks["manifest_digest_wrong_or_missing"]
        run = self.bench.record(label, wall, rss, cpu, cp, ok, src_t, procs, self.ds, ferry, checks, note)
        req = [d["requests"] for d in dests]
        written = [d["bytes_written"] for d in dests]
        run.traffic.update({
            "destination_count": n,
            "registry_processes": len(regs),
            "source_requests": src_t.requests,
            "requests_each_destination": req,
            # one blob uploaded twice to one destination repository would show here
            "max_uploads_of_one_blob_per_destination": max(max(d["uploads"].values(), default=0) for d in dests),
            "requests_per_destination": {"median": statistics.median(req), "min": min(req), "max": max(req)},
            "requests_unattributed": unattributed,
            "bytes_written_per_destination": {"min": min(written), "max": max(written)},
            "mounts": sum(d["mounts"] for d in dests),
            "source_reads_of_image": round(src_t.blob_get_bytes / self.ds.unique_bytes, 2),
            "aws_api_calls": moto_calls,
        })
        return run

    # ---- the tools -------------------------------------------------------------------

    def ferry(self, n: int, ecr: bool):
        label = f"ferry sync, {n} {'ECR' if ecr else 'OCI'} names"
        regs = self.registries(n)
        moto = Moto(self.work) if ecr else None
        try:
            cfg = self.config(n, regs, ecr)
            marks = [self.ds.registry.mark()] + [r.mark() for r in regs]
            argv = [self.bench.ferry, "sync", "-c", str(cfg), "--output", "json",
                    "--concurrency", str(self.args.fanout_width)]
            wall, rss, cpu, cp = timed(argv, self.work, env=moto.env() if moto else None)
            rep = self.bench.ferry_json(cp)
            ferry = rep and {"totals": rep.get("totals"), "requests": rep.get("requests"),
                             "duration_ms": rep.get("duration_ms")}
            return self.finish(label, n, regs, marks, wall, rss, cpu, cp, cp.returncode == 0,
                               ferry, moto.api_calls() if moto else None)
        finally:
            if moto:
                moto.stop()
            self.stop(regs)

    def skopeo(self, n: int):
        label = f"{n} × skopeo copy, {self.args.fanout_width} at a time"
        regs = self.registries(n)
        caches = Path(tempfile.mkdtemp(prefix="skopeo-caches-", dir=self.work))
        root = os.geteuid() == 0
        if root:
            SKOPEO_CACHE.mkdir(parents=True, exist_ok=True)
        try:
            argvs = []
            for i in range(n):
                copy = ("skopeo copy --all --src-tls-verify=false --dest-tls-verify=false "
                        f"docker://{self.ds.registry.host}/{REPO}:{TAG} "
                        f"docker://{regs[i % len(regs)].host}/{prefix(i)}/{REPO}:{TAG}")
                cache = caches / str(i)
                cache.mkdir()
                if root:  # its own empty blob-info cache, in a private mount namespace
                    argvs.append(["unshare", "-m", "sh", "-c", f'mount --bind "$0" {SKOPEO_CACHE} && exec {copy}',
                                  str(cache)])
                else:  # rootless skopeo keeps the cache under $HOME
                    argvs.append(["env", f"HOME={cache}"] + copy.split())
            marks = [self.ds.registry.mark()] + [r.mark() for r in regs]
            wall, rss, cpu, outs = run_parallel(argvs, self.work, self.args.fanout_width)
            failed = [p for _, p, _, _ in outs if p.returncode != 0]
            cp = subprocess.CompletedProcess([], failed[0].returncode if failed else 0, "",
                                             "".join(e for _, p, _, e in outs if p.returncode != 0))
            return self.finish(label, n, regs, marks, wall, max(rss), cpu, cp, not failed,
                               note=f"peak RSS: the largest process; their sum {sum(rss) / 1024:.0f} MiB")
        finally:
            shutil.rmtree(caches, ignore_errors=True)
            self.stop(regs)

    @staticmethod
    def stop(regs):
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda r: r.stop(), regs))
        os.sync()


def run(bench: Bench, ds: Dataset, sizes: list[int]) -> dict:
    """Every size: Ferry (ECR and OCI names) and skopeo alternated, `--fanout-runs` rounds."""
    f = Fanout(bench, ds)
    runs: dict = {}
    saved = bench.args.runs
    bench.args.runs = bench.args.fanout_runs
    try:
        for n in sizes:
            log(f" fan-out to {n} destinations on {min(n, bench.args.fanout_registries)} registries")
            tools = {
                f"ferry sync, {n} ECR names": lambda n=n: f.ferry(n, ecr=True),
                f"ferry sync, {n} OCI names": lambda n=n: f.ferry(n, ecr=False),
                f"{n} × skopeo copy, {bench.args.fanout_width} at a time": lambda n=n: f.skopeo(n),
            }
            runs.update(bench.alternate(tools, lambda t: t()))
    finally:
        bench.args.runs = saved
    return runs


def report(sc: dict, sizes: list[int], width: int, row, target) -> list[str]:
    """Rows of the results table, targets, and the fan-out table (markdown lines)."""
    sm = sc["summary"]
    runs = sc["runs"]
    image = sc["dataset"]["unique_bytes"]
    md = ["", "## Fan-out", "",
          f"Image {image / MiB:.1f} MiB. Ferry: one `ferry sync --concurrency {width}`; skopeo: one "
          f"`skopeo copy` per destination, {width} at a time. Medians over the runs; *source reads* is MiB "
          "read from the source divided by the image's size; requests per destination are attributed by "
          "repository prefix (`/v2/` checks apart).", "",
          "| destinations | tool | wall s | × skopeo | source reads (× image) | MiB written | MiB written per destination | "
          "source requests | requests per destination, median (min–max) | `/v2/` checks | AWS API calls | mounts | "
          "wrong or missing |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        sk_name = f"{n} × skopeo copy, {width} at a time"
        names = [f"ferry sync, {n} ECR names", f"ferry sync, {n} OCI names", sk_name]
        if not all(x in sm for x in names):
            continue
        sk = sm[sk_name]
        for name in names:
            s = sm[name]
            rs = runs[name]
            ok = [r for r in rs if r["ok"]] or rs
            tr = lambda k: median([r["traffic"].get(k) for r in ok])  # noqa: E731
            per = median([r["traffic"]["requests_per_destination"]["median"] for r in ok])
            lo = min(r["traffic"]["requests_per_destination"]["min"] for r in ok)
            hi = max(r["traffic"]["requests_per_destination"]["max"] for r in ok)
            wmin = min(r["traffic"]["bytes_written_per_destination"]["min"] for r in ok)
            wmax = max(r["traffic"]["bytes_written_per_destination"]["max"] for r in ok)
            calls = tr("aws_api_calls")
            wrong = max(r["checks"].get("manifest_digest_wrong_or_missing", n) for r in rs)
            ratio = "" if name == sk_name else f"{s['wall_s']['median'] / sk['wall_s']['median']:.2f}"
            per_w = f"{wmin / MiB:.1f}" if wmin == wmax else f"{wmin / MiB:.1f}–{wmax / MiB:.1f}"
            md.append(f"| {n} | {name.replace(f', {n}', ',') if name != sk_name else 'skopeo copy'} "
                      f"| {fmt_s(s['wall_s']['median'])} | {ratio} | {tr('source_reads_of_image'):.2f} "
                      f"| {fmt_mib(s['bytes_to_destinations'])} | {per_w} | {tr('source_requests'):.0f} | {per:.0f} ({lo}–{hi}) "
                      f"| {tr('requests_unattributed'):.0f} | {'—' if calls is None else f'{calls:.0f}'} "
                      f"| {tr('mounts'):.0f} | {wrong} of {n} |")
            row(f"fan-out ×{n}", name if name == sk_name else name.replace(f", {n}", ","), s,
                None if name == sk_name else sk, "skopeo")
        for name in names[:2]:
            reads = median([x["traffic"]["source_reads_of_image"] for x in runs[name]])
            target(f"fan-out ×{n}", f"{name}: source reads ≤ 1.1 × the image", f"{reads:.2f} ×",
                   reads <= 1.1)
            r = sm[name]["wall_s"]["median"] / sk["wall_s"]["median"]
            target(f"fan-out ×{n}", f"report {name} vs {sk_name}",
                   f"{r:.3f} ×; source read {median([x['traffic']['source_reads_of_image'] for x in runs[name]]):.2f} × "
                   f"the image (skopeo {median([x['traffic']['source_reads_of_image'] for x in runs[sk_name]]):.2f} ×)",
                   sm[name]["ok_runs"] > 0)
    return md
