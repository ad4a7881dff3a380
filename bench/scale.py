"""The scale scenario (issue #12, section 4): `ferry plan` and `ferry verify` over a
source of R repositories × T tags (default 10,000 × 10 = 100,000 images) and a destination
of the same size (warm: it holds every image) or an empty one (cold).

Both registries are `synthetic` processes (tests/src/bin/synthetic.rs): a generated
registry answering `_catalog`, `tags/list` and manifest HEAD/GET at the distribution API's
shape, with manifests made on the fly, so 100,000 images need no push and no storage. It
counts every request (`GET /_stats`). Peak RSS and CPU come from /usr/bin/time -v; the
memory per image is (peak RSS − the same command's peak RSS over a 1-repository
baseline) / images. Goal: at most ~1 KiB per image.

A fifth run is `ferry verify` (reconcile's drift plan) of the warm pair at ECR's request
quotas over a WAN: each registry behind a `wanproxy --ecr-quotas` (40 ms per request, a
token bucket per ECR API action at ECR's default rates, 429 above it) and the config
giving both hosts those rates (`registries.<host>.rates`), as an ECR registry has them
by default. It reports the wall time against the quotas' floor (each side's manifest
HEADs at BatchGetImage's 2,000/s, the two sides one after the other), the 429s (goal:
none), and whether reconcile fits in one 15-minute Lambda invocation.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from registries import log, stop_process
from runs import timed
from services import WanProxy

# ECR's default request rates per API action (registries.<host>.rates keys).
ECR_RATES = {"putImage": 10, "initiateLayerUpload": 100, "uploadLayerPart": 500,
             "completeLayerUpload": 100, "batchCheckLayerAvailability": 1000,
             "getDownloadUrlForLayer": 3000, "batchGetImage": 2000}
# One Lambda invocation at most.
LAMBDA_TIMEOUT_S = 900


class Synthetic:
    def __init__(self, binary: str, repos: int, tags: int):
        self.proc = subprocess.Popen([binary, "--repos", str(repos), "--tags", str(tags)],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"synthetic did not start: {self.url!r}")
        self.host = self.url[len("http://"):]

    def counts(self) -> dict:
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as r:
            return json.loads(r.read())["requests"]

    def stop(self):
        stop_process(self.proc)


def config(work: Path, src, dst, name: str, rates: dict | None = None) -> Path:
    """`src`, `dst`: anything with a `host`; `rates`: both registries' request quotas."""
    path = work / f"scale-{name}.json"
    endpoint = {"plainHttp": True, **({"rates": rates} if rates else {})}
    path.write_text(json.dumps({
        "source": {"registry": src.host},
        "registries": {src.host: endpoint, dst.host: endpoint},
        "rules": [{"destinations": [{"registry": dst.host}]}],
    }))
    return path


def one(bench, binary: str, repos: int, tags: int, warm: bool, command: str,
        ecr_delay_ms: int | None = None) -> dict:
    """One command over a generated pair; with `ecr_delay_ms`, each registry behind a
    `wanproxy --ecr-quotas` of that delay and the config claiming ECR's rates."""
    src = Synthetic(binary, repos, tags)
    dst = Synthetic(binary, repos if warm else 0, tags if warm else 0)
    proxies = []
    try:
        name = f"{command}-{repos}-{tags}-{warm}"
        if ecr_delay_ms is None:
            cfg = config(bench.work, src, dst, name)
        else:
            proxies = [WanProxy(bench.args.wanproxy, reg, bench.work, ecr_delay_ms, None,
                                    ("--ecr-quotas",)) for reg in (src, dst)]
            cfg = config(bench.work, proxies[0], proxies[1], f"{name}-ecr", ECR_RATES)
        wall, rss, cpu, cp = timed([bench.ferry, command, "-c", str(cfg), "--output", "json"], bench.work)
        ok = cp.returncode == 0 or (command == "verify" and not warm and cp.returncode == 3)
        summary = {}
        if cp.stdout.strip():
            try:
                summary = json.loads(cp.stdout).get("summary", {})
            except json.JSONDecodeError:
                summary = {}
        return {"command": command, "warm": warm, "repositories": repos, "tags": tags,
                "images": repos * tags, "wall_s": round(wall, 2), "peak_rss_kib": rss,
                "cpu_s": round(cpu, 2), "exit": cp.returncode, "ok": ok,
                "summary": summary, "stderr_tail": cp.stderr[-400:] if not ok else "",
                "source_requests": src.counts(), "destination_requests": dst.counts(),
                **({"ecr": ecr_figures(proxies, ecr_delay_ms, wall)} if proxies else {})}
    finally:
        for p in proxies:
            p.stop()
        src.stop()
        dst.stop()


def ecr_figures(proxies: list, delay_ms: int, wall: float) -> dict:
    """What the two quota proxies counted, and the quotas' floor for what they let
    through: each side's requests of each action at its rate, the sides in turn."""
    counts = [p.stop() for p in proxies]
    rates = {k[0].upper() + k[1:]: v for k, v in ECR_RATES.items()}
    floor = sum(max((n / rates[api] for api, n in c.get("admitted_by_api", {}).items()),
                    default=0.0) for c in counts)
    return {"delay_ms": delay_ms,
            "throttled": sum(c.get("throttled", 0) for c in counts),
            "throttled_by_api": [c.get("throttled_by_api", {}) for c in counts],
            "admitted_by_api": [c.get("admitted_by_api", {}) for c in counts],
            "floor_s": round(floor, 2), "over_floor": round(wall / floor, 2) if floor else None}


def run(bench, repos: int, tags: int) -> dict:
    binary = str(Path(bench.args.synthetic).resolve())
    out = {"repositories": repos, "tags": tags, "runs": []}
    for command in ("plan", "verify"):
        for warm in (True, False):
            base = one(bench, binary, 1, 1, warm, command)
            big = one(bench, binary, repos, tags, warm, command)
            big["baseline_rss_kib"] = base["peak_rss_kib"]
            big["rss_per_image_bytes"] = round(
                max(0, big["peak_rss_kib"] - base["peak_rss_kib"]) * 1024 / max(1, big["images"]))
            log(f"scale {command} {'warm' if warm else 'cold'}: {big['wall_s']} s, "
                  f"{big['peak_rss_kib'] / 1024:.1f} MiB peak ({big['rss_per_image_bytes']} B/image)")
            if not big["ok"]:
                bench.failures.append(f"scale {command}: exit {big['exit']}: {big['stderr_tail']}")
            out["runs"].append(big)
    if Path(bench.args.wanproxy).exists():
        big = one(bench, binary, repos, tags, True, "verify", ecr_delay_ms=bench.args.wan_delay_ms)
        big["rss_per_image_bytes"] = None
        e = big["ecr"]
        log(f"scale verify warm at ECR's quotas over {e['delay_ms']} ms: {big['wall_s']} s "
              f"(floor {e['floor_s']} s), {e['throttled']} answers 429")
        if not big["ok"]:
            bench.failures.append(f"scale verify at ECR's quotas: exit {big['exit']}: {big['stderr_tail']}")
        out["ecr"] = big
    else:
        log(f"scale: no wanproxy at {bench.args.wanproxy}: the run at ECR's quotas is left out")
    return out


def admitted(by_api: dict) -> str:
    """`BatchGetImage 100,000`."""
    return ", ".join(f"{api} {n:,}" for api, n in sorted(by_api.items())) or "none"


def report(res: dict) -> str:
    lines = [f"## scale: {res['repositories']:,} repositories × {res['tags']} tags "
             f"({res['repositories'] * res['tags']:,} images), generated registries", "",
             "| command | destination | wall | peak RSS | per image (goal ≤ 1 KiB) | CPU | source requests | destination requests |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        per = r["rss_per_image_bytes"]
        lines.append(
            f"| `ferry {r['command']}` | {'warm (every image)' if r['warm'] else 'cold (empty)'} | "
            f"{r['wall_s']} s | {r['peak_rss_kib'] / 1024:.1f} MiB | {per} B "
            f"({'met' if per <= 1024 else 'missed'}) | {r['cpu_s']} s | "
            f"{sum(r['source_requests'].values()):,} | {sum(r['destination_requests'].values()):,} |")
    lines.append("")
    e = res.get("ecr")
    if e:
        q = e["ecr"]
        fits = e["wall_s"] <= LAMBDA_TIMEOUT_S
        lines += [f"### `ferry verify` (reconcile's drift plan) at ECR's request quotas, {q['delay_ms']} ms per request", "",
                  "Each registry behind `wanproxy --ecr-quotas`; the config gives both hosts ECR's default rates.", "",
                  "| wall | quotas' floor | ÷ floor | 429 answers (goal 0) | one 15-min Lambda invocation | requests let through (source; destination) | peak RSS |",
                  "|---|---|---|---|---|---|---|",
                  f"| {e['wall_s']} s | {q['floor_s']} s | {q['over_floor']} × | {q['throttled']} | "
                  f"{'fits' if fits else 'does not fit'} ({e['wall_s'] / LAMBDA_TIMEOUT_S:.0%} of it) | "
                  f"{admitted(q['admitted_by_api'][0])}; {admitted(q['admitted_by_api'][1])} | "
                  f"{e['peak_rss_kib'] / 1024:.1f} MiB |", ""]
    return "\n".join(lines)
