"""The scale scenario (issue #12, section 4): `ferry plan` and `ferry verify` over a
source of R repositories × T tags (default 10,000 × 10 = 100,000 images) and a destination
of the same size (warm: it holds every image) or an empty one (cold).

Both registries are `synthetic` processes (tests/src/bin/synthetic.rs): a generated
registry answering `_catalog`, `tags/list` and manifest HEAD/GET at the distribution API's
shape, with manifests made on the fly, so 100,000 images need no push and no storage. It
counts every request (`GET /_stats`). Peak RSS and CPU come from /usr/bin/time -v; the
memory per image is (peak RSS − the same command's peak RSS over a 1-repository
baseline) / images. Goal: at most ~1 KiB per image.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import bench as b  # noqa: E402  (bench.py registers itself as `bench`)


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
        b.stop_process(self.proc)


def config(work: Path, src: Synthetic, dst: Synthetic, name: str) -> Path:
    path = work / f"scale-{name}.json"
    path.write_text(json.dumps({
        "source": {"registry": src.host},
        "registries": {src.host: {"plainHttp": True}, dst.host: {"plainHttp": True}},
        "rules": [{"destinations": [{"registry": dst.host}]}],
    }))
    return path


def one(bench, binary: str, repos: int, tags: int, warm: bool, command: str) -> dict:
    src = Synthetic(binary, repos, tags)
    dst = Synthetic(binary, repos if warm else 0, tags if warm else 0)
    try:
        cfg = config(bench.work, src, dst, f"{command}-{repos}-{tags}-{warm}")
        wall, rss, cpu, cp = b.timed([bench.ferry, command, "-c", str(cfg), "--output", "json"], bench.work)
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
                "source_requests": src.counts(), "destination_requests": dst.counts()}
    finally:
        src.stop()
        dst.stop()


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
            b.log(f"scale {command} {'warm' if warm else 'cold'}: {big['wall_s']} s, "
                  f"{big['peak_rss_kib'] / 1024:.1f} MiB peak ({big['rss_per_image_bytes']} B/image)")
            if not big["ok"]:
                bench.failures.append(f"scale {command}: exit {big['exit']}: {big['stderr_tail']}")
            out["runs"].append(big)
    return out


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
    return "\n".join(lines)
