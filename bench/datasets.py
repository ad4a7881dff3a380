"""The bench's datasets: random layers (fixed seed), each a valid gzip stream of stored
blocks, so that no tool recompresses them (skopeo compresses layers it detects as
uncompressed), OCI manifests and configs with the right `diff_ids`."""

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

from registries import MiB, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, SEED, Registry, log, push_blob, push_manifest


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


