"""The bench's registries: `docker-registry` processes with their access logs (how every
tool's requests and bytes are counted), and the small HTTP client the bench pushes with."""

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
