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

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
SEED = 6  # issue #6

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ACCESS_RE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')


@dataclass
class Traffic:
    """What one registry saw between two marks of its access log."""

    requests: int = 0
    by_method: dict = field(default_factory=dict)
    blob_get_bytes: int = 0  # bytes of blob GET answers (what left the registry)
    blob_gets: int = 0
    uploads: dict = field(default_factory=dict)  # digest -> completed uploads (201)
    mounts: int = 0  # cross-repository mounts answered 201
    manifest_puts: int = 0
    cpu_s: float = 0.0  # the registry's CPU seconds over the run

    def as_json(self) -> dict:
        return {
            "requests": self.requests,
            "by_method": dict(sorted(self.by_method.items())),
            "blob_gets": self.blob_gets,
            "blob_get_bytes": self.blob_get_bytes,
            "uploads": sum(self.uploads.values()),
            "mounts": self.mounts,
            "manifest_puts": self.manifest_puts,
            "registry_cpu_s": round(self.cpu_s, 2),
        }


class Registry:
    """A `docker-registry` (CNCF distribution) with filesystem storage in its own
    directory, on a free loopback port, access log on (it is how requests are counted)."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        self.proc = None
        last = "never started"
        for _ in range(5):
            self.port = free_port()
            config = self.dir / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: error\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'storage'}\n"
                "  delete:\n    enabled: true\n"
                "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: ferry-bench-{self.port}\n"
            )
            self.access = self.dir / "access.log"
            out = open(self.access, "ab")
            err = open(self.dir / "registry.err", "ab")
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            out.close()
            err.close()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    status, _, _ = request(self.host, "GET", "/v2/")
                    if status == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            last = (self.dir / "registry.err").read_text(errors="replace")[-500:]
            self._kill()
        raise RuntimeError(f"docker-registry {name} did not start: {last}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def mark(self) -> tuple[int, float]:
        return self.access.stat().st_size, self.cpu()

    def cpu(self) -> float:
        """CPU seconds (user + system) the registry process has used so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def requests(self, since: tuple[int, float]):
        """Requests logged since the mark `since`: (method, path, query, status, size)."""
        with open(self.access, "rb") as f:
            f.seek(since[0])
            for raw in f:
                m = ACCESS_RE.match(raw.decode("utf-8", "replace"))
                if not m:
                    continue
                method, uri, status, size = m.group(1), m.group(2), int(m.group(3)), m.group(4)
                path, _, query = uri.partition("?")
                yield method, path, urllib.parse.parse_qs(query), status, size

    def traffic(self, since: tuple[int, float], sizes: dict, settle=True) -> Traffic:
        """Requests logged since the mark `since`; completed uploads by digest, sized with
        `sizes`; the registry's CPU time since then. `settle=False`: the caller has already
        waited for the last access log lines."""
        if settle:
            time.sleep(0.2)  # the access log line is written after the answer
        t = Traffic(cpu_s=self.cpu() - since[1])
        for method, path, q, status, size in self.requests(since):
            t.requests += 1
            t.by_method[method] = t.by_method.get(method, 0) + 1
            if method == "GET" and "/blobs/sha256:" in path and status in (200, 206):
                t.blob_gets += 1
                t.blob_get_bytes += 0 if size == "-" else int(size)
            elif method == "PUT" and "/blobs/uploads/" in path and status == 201 and "digest" in q:
                d = q["digest"][0]
                t.uploads[d] = t.uploads.get(d, 0) + 1
            elif method == "POST" and "mount" in q and status == 201:
                t.mounts += 1
            elif method == "PUT" and "/manifests/" in path and status == 201:
                t.manifest_puts += 1
        return t

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        status, headers, _ = request(
            self.host, "HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
        )
        return headers.get("docker-content-digest") if status == 200 else None

    def _kill(self) -> None:
        stop_process(self.proc)

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_process(proc: subprocess.Popen | None) -> None:
    """Terminate a server we started (SIGTERM, then SIGKILL after 10 s)."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(host, method, path, body=None, headers=None, length=None):
    """One HTTP/1.1 request; `body` may be bytes or a binary file. Returns
    (status, lower-cased headers, body bytes)."""
    conn = http.client.HTTPConnection(host, timeout=600, blocksize=MiB)
    try:
        h = dict(headers or {})
        if body is not None and length is not None:
            h["Content-Length"] = str(length)
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def push_blob(host: str, repo: str, digest: str, data=None, path: Path | None = None, size=None):
    status, headers, _ = request(host, "HEAD", f"/v2/{repo}/blobs/{digest}")
    if status == 200:
        return
    status, headers, body = request(host, "POST", f"/v2/{repo}/blobs/uploads/", body=b"", length=0)
    if status != 202:
        raise RuntimeError(f"POST upload {repo}: {status} {body[:200]!r}")
    loc = urllib.parse.urlsplit(headers["location"])
    target = f"{loc.path}?{loc.query}&digest={digest}" if loc.query else f"{loc.path}?digest={digest}"
    hdrs = {"Content-Type": "application/octet-stream"}
    if path is not None:
        with open(path, "rb") as f:
            status, _, body = request(host, "PUT", target, body=f, headers=hdrs, length=size)
    else:
        status, _, body = request(host, "PUT", target, body=data, headers=hdrs, length=len(data))
    if status != 201:
        raise RuntimeError(f"PUT blob {repo} {digest}: {status} {body[:200]!r}")


def push_manifest(host: str, repo: str, tag: str, manifest: bytes) -> str:
    status, headers, body = request(
        host, "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
        headers={"Content-Type": OCI_MANIFEST}, length=len(manifest),
    )
    if status != 201:
        raise RuntimeError(f"PUT manifest {repo}:{tag}: {status} {body[:200]!r}")
    return headers["docker-content-digest"]


# --------------------------------------------------------------------------------------
# Datasets: random layers (fixed seed), each a valid gzip stream of stored blocks, so
# that no tool recompresses them (skopeo compresses layers it detects as uncompressed).
# --------------------------------------------------------------------------------------

def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    digest: str
    size: int
    diff_id: str
    data: bytes | None = None
    path: Path | None = None


def make_layer(rng: random.Random, payload: int, path: Path | None = None) -> Layer:
    """`payload` random bytes as a gzip stream (level 0: stored blocks). In memory, or
    streamed to `path` for big layers."""
    comp = zlib.compressobj(level=0, wbits=31)
    outer, inner = hashlib.sha256(), hashlib.sha256()
    size = 0
    chunks = []
    out = open(path, "wb") if path else None
    left = payload

    def emit(b: bytes):
        nonlocal size
        if b:
            outer.update(b)
            size += len(b)
            if out:
                out.write(b)
            else:
                chunks.append(b)

    while left:
        n = min(left, 4 * MiB)
        raw = rng.randbytes(n)
        inner.update(raw)
        emit(comp.compress(raw))
        left -= n
    emit(comp.flush())
    if out:
        out.close()
    return Layer(
        digest="sha256:" + outer.hexdigest(), size=size, diff_id="sha256:" + inner.hexdigest(),
        data=None if path else b"".join(chunks), path=path,
    )


def image_manifest(layers: list[Layer], label: str) -> tuple[bytes, bytes]:
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"bench": label}},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": l.digest, "size": l.size} for l in layers],
    }, sort_keys=True).encode()
    return config, manifest


@dataclass
class Dataset:
    name: str
    registry: Registry
    tags: list  # (repo, tag, manifest digest)
    sizes: dict  # blob digest -> size (configs and layers)
    description: str = ""

    @property
    def unique_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def repos(self) -> list[str]:
        return sorted({r for r, _, _ in self.tags})


def push_image(reg: Registry, repo: str, tag: str, layers: list[Layer], label: str, sizes: dict) -> str:
    config, manifest = image_manifest(layers, label)
    for l in layers:
        push_blob(reg.host, repo, l.digest, data=l.data, path=l.path, size=l.size)
        sizes[l.digest] = l.size
    push_blob(reg.host, repo, sha(config), data=config)
    sizes[sha(config)] = len(config)
    return push_manifest(reg.host, repo, tag, manifest)


def big_dataset(work: Path, big_mib: int) -> Dataset:
    reg = Registry(work, "src-big")
    rng = random.Random(SEED)
    path = work / "big-layer.gz"
    log(f"generating a {big_mib} MiB layer")
    layer = make_layer(rng, big_mib * MiB, path)
    sizes: dict = {}
    log("pushing it")
    d = push_image(reg, "big/blob", "v1", [layer], "big", sizes)
    path.unlink()
    return Dataset("big", reg, [("big/blob", "v1", d)], sizes,
                   f"one image: one {layer.size / MiB:.0f} MiB layer ({layer.digest[:19]}…) and a config")


def many_dataset(work: Path, repos: int, tags: int, scale: float) -> Dataset:
    """`repos` repositories × `tags` tags. Three base stacks shared across repositories,
    one layer per repository shared by its tags, one small layer and a config per tag."""
    reg = Registry(work, "src-many")
    rng = random.Random(SEED + 1)
    mib = lambda n: max(1, int(n * scale * MiB))  # noqa: E731
    bases = [
        [make_layer(rng, mib(24)), make_layer(rng, mib(8))],
        [make_layer(rng, mib(16))],
        [make_layer(rng, mib(12)), make_layer(rng, mib(4))],
    ]
    sizes: dict = {}
    out = []
    for r in range(repos):
        repo = f"bench/app-{r:02d}"
        shared = make_layer(rng, mib(2))
        for t in range(tags):
            tag = f"1.{t}.0"
            own = make_layer(rng, mib(0.375))
            layers = bases[r % len(bases)] + [shared, own]
            out.append((repo, tag, push_image(reg, repo, tag, layers, f"{repo}:{tag}", sizes)))
    ds = Dataset("many", reg, out, sizes)
    referenced = sum(sum(l.size for l in bases[r % 3]) for r in range(repos)) * tags
    ds.description = (
        f"{repos} repositories × {tags} tags = {len(out)} tags; {len(sizes)} unique blobs, "
        f"{ds.unique_bytes / MiB:.0f} MiB unique (base layers alone referenced "
        f"{referenced / MiB:.0f} MiB over all tags)"
    )
    return ds


def fan_dataset(work: Path, scale: float) -> Dataset:
    reg = Registry(work, "src-fan")
    rng = random.Random(SEED + 2)
    layers = [make_layer(rng, max(1, int(n * scale * MiB))) for n in (96, 64, 48, 32, 16)]
    sizes: dict = {}
    d = push_image(reg, "fan/app", "v1", layers, "fan", sizes)
    ds = Dataset("fan", reg, [("fan/app", "v1", d)], sizes)
    ds.description = f"one image, {len(layers)} layers, {ds.unique_bytes / MiB:.0f} MiB"
    return ds


# --------------------------------------------------------------------------------------
# Running tools
# --------------------------------------------------------------------------------------

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

    def many(self, ds: Dataset) -> dict:
        def fresh_run(f, label):
            dst, = self.fresh()
            try:
                return f(ds, dst, label)
            finally:
                dst.stop()
                os.sync()
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


def build_report(bench: Bench, info: dict, scen: dict) -> tuple[dict, str]:
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
    fan_md: list = []
    if "fanout" in s:
        import fanout  # bench/fanout.py
        fan_md = fanout.report(s["fanout"], bench.fanout_sizes, bench.args.fanout_width, row, target)
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
        *fan_md,
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferry", default=str(ROOT / "target/release/ferry"))
    p.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 5)))
    p.add_argument("--big-mib", type=int, default=int(os.environ.get("BENCH_BIG_MIB", 1024)))
    p.add_argument("--repos", type=int, default=20)
    p.add_argument("--tags", type=int, default=10)
    p.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", 1.0)),
                   help="layer size factor of the many-images and fan-out datasets")
    p.add_argument("--scenarios", default=os.environ.get("BENCH_SCENARIOS", "big,many,warm,fan,fanout"))
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
    finally:
        for r in sources:
            r.stop()
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    data, md = build_report(bench, info, scen)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(md)
    print(md)
    log(f"wrote {out / (args.name + '.md')} and .json")
    shutil.rmtree(bench.work, ignore_errors=True)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.modules["bench"] = sys.modules[__name__]  # bench/fanout.py imports this module as `bench`
    sys.exit(main())
