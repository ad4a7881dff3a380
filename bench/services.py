"""Local processes a scenario starts beside its registries: a `moto_server` standing in
for AWS (the fanout and coldstart scenarios) and the `wanproxy` WAN emulator (the wan-* and
scale scenarios)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from registries import free_port, request, stop_process


class Moto:
    """A `moto_server` on a free loopback port for one run; counts the AWS API calls."""

    def __init__(self, work: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="moto-", dir=work))
        self.port = free_port()
        self.log = self.dir / "moto.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if request(f"127.0.0.1:{self.port}", "GET", "/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not start: {self.log.read_text(errors='replace')[-500:]}")

    def env(self) -> dict:
        return dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.port}", AWS_ACCESS_KEY_ID="testing",
                    AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                    AWS_EC2_METADATA_DISABLED="true")

    def api_calls(self) -> int:
        """moto logs one `"POST / HTTP/1.1"` line per AWS API call."""
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if '"POST /' in line)

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)



class WanProxy:
    """One `wanproxy` process in front of `upstream`."""

    count = 0

    def __init__(self, binary: str, upstream, work: Path, delay_ms: int, mbit: int | None,
                 extra: tuple[str, ...] = ()):
        """`upstream`: anything with a `host` (`127.0.0.1:PORT`); `mbit` None: no cap;
        `extra`: more flags (`--ecr-quotas`)."""
        WanProxy.count += 1
        stem = f"wanproxy-{upstream.host.rsplit(':', 1)[-1]}-{WanProxy.count}"
        self.counts_path = work / f"{stem}.json"
        self.err = work / f"{stem}.err"
        cap = ["--bandwidth-mbit", str(mbit)] if mbit else []
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [binary, "--upstream", f"http://{upstream.host}", "--delay-ms", str(delay_ms),
                 *cap, *extra, "--counts", str(self.counts_path)],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
                start_new_session=True,
            )
        url = self.proc.stdout.readline().strip()
        if not url.startswith("http://"):
            stop_process(self.proc)
            raise RuntimeError(f"wanproxy did not start: {self.err.read_text(errors='replace')[-500:]}")
        self.host = url.removeprefix("http://")

    def stop(self) -> dict:
        """SIGTERM; the counts it wrote on exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            return json.loads(self.counts_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

