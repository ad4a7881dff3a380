"""The coldstart scenario (issue #12, section 4): how long each Lambda function takes from
process start to its first `GET /runtime/invocation/next` (**init**: tracing, the SDK
config, the config read and validated, the clients built) and to the answer of its first
event (**first event**: init plus one handled invocation), release builds.

Each function binary (`dispatch`, `replicate`, `reconcile`, built by
`cargo build --release -p ferry-fn-dispatch -p ferry-fn-replicate -p ferry-fn-reconcile`)
is started as Lambda starts it: `AWS_LAMBDA_RUNTIME_API` pointing at a small Lambda
runtime API emulator (below, one per run, on a free loopback port), the Lambda variables
(`AWS_LAMBDA_FUNCTION_NAME`, `..._MEMORY_SIZE`, `..._VERSION`, `AWS_LAMBDA_LOG_FORMAT=JSON`,
`AWS_LAMBDA_LOG_LEVEL`, `RUST_LOG` as infra/template.yaml sets it), keys and a region in the
environment, `HOME` an empty directory (no `~/.aws`), and `AWS_ENDPOINT_URL` at a
`moto_server` the scenario starts (SQS queue, SSM parameter). Two config sources:

- **SSM parameter** (`FERRY_CONFIG_PARAMETER`, what infra/template.yaml deploys): the
  config is read from moto's SSM at init, one loopback call to a Python server;
- **inline** (`FERRY_CONFIG`): no call at init.

Events: dispatch gets testdata/events/ecr-image-action-push.json, which the config
matches (source 123456789012 in us-east-1): its answer sends 2 jobs to the SQS FIFO queue
at moto. replicate gets an SQS event with zero records (no registry to copy from; its
answer is an empty `batchItemFailures`). reconcile gets a scheduled event: its run lists
the source's repositories through moto's ECR (none), so it enqueues nothing; moto answers
its DescribePullThroughCacheRules with a 500 (not implemented), which the SDK retries with
backoff, so reconcile's first event measures moto more than Ferry.

The times are taken by the emulator (monotonic clock, the same process that started the
function, from just before `Popen`). The machine's idle share and load average are
recorded per run (the machine is shared).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from registries import ROOT, log, request, stop_process
from report import fmt_pct
from runs import Idle
from services import Moto

FUNCTIONS = ("dispatch", "replicate", "reconcile")
PACKAGES = tuple(f"ferry-fn-{f}" for f in FUNCTIONS)
GOAL_INIT_MS = 50.0
API = "/2018-06-01/runtime"
REGION, ACCOUNT = "us-east-1", "123456789012"
PARAMETER = "/ferry/config"
CONFIG = {
    "source": {"registryId": ACCOUNT, "region": REGION},
    "rules": [{"destinations": [{"registryId": ACCOUNT, "region": "eu-west-1"},
                                {"registryId": "222222222222", "region": "us-west-2"}]}],
}
SCHEDULED = {
    "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
    "source": "aws.events", "account": ACCOUNT, "time": "2026-12-01T00:00:00Z", "region": REGION,
    "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ferry-reconcile"], "detail": {},
}


# ---- the Lambda runtime API emulator --------------------------------------------------

class RuntimeApi:
    """The Lambda runtime API as `lambda_runtime` 1.5 calls it, for one process and one
    event: `GET /2018-06-01/runtime/invocation/next` answers the event once (with the
    `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and
    `-Trace-Id` headers) and then holds every later poll until `stop`;
    `POST .../invocation/{id}/response`, `.../invocation/{id}/error` and
    `POST .../init/error` end the run. Times are `time.monotonic()` at the request."""

    def __init__(self, event: bytes, function: str, deadline_s: int = 60):
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ferry-{function}"
        self.deadline_s = deadline_s
        self.cond = threading.Condition()
        self.taken = False
        self.stopped = False
        self.first_next: float | None = None
        self.done: float | None = None
        self.outcome: str | None = None  # response, error, init-error
        self.answer: bytes = b""
        self.error_type: str | None = None
        self.polls = 0
        api = self

        class Handler(_Handler):
            pass

        Handler.api = api
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def next(self, now: float) -> bool:
        """True: answer the event; False: stopped (the poll after the event waits here)."""
        with self.cond:
            self.polls += 1
            if self.first_next is None:
                self.first_next = now
            if not self.taken:
                self.taken = True
                return True
            while not self.stopped:
                self.cond.wait()
            return False

    def finish(self, now: float, outcome: str, answer: bytes, error_type: str | None) -> None:
        with self.cond:
            if self.done is None:
                self.done, self.outcome, self.answer, self.error_type = now, outcome, answer, error_type
            self.cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.done is not None, timeout)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # the function is killed at the end of its run, its connections with it


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the runtime client keeps its connection
    api: RuntimeApi

    def log_message(self, *args) -> None:
        pass

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: bytes = b"", headers: tuple = ()) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        now = time.monotonic()
        if self.path != f"{API}/invocation/next":
            return self.reply(404, b'{"errorMessage": "unknown path"}')
        if not self.api.next(now):
            return self.reply(500, b'{"errorMessage": "the emulator stopped"}')
        a = self.api
        deadline_ms = int(time.time() * 1000) + a.deadline_s * 1000
        self.reply(200, a.event, (
            ("Lambda-Runtime-Aws-Request-Id", a.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", a.arn),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
        ))

    def do_POST(self) -> None:  # noqa: N802
        now = time.monotonic()
        data = self.body()
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        prefix = f"{API}/invocation/{self.api.request_id}/"
        if self.path == f"{API}/init/error":
            self.api.finish(now, "init-error", data, error_type)
        elif self.path == prefix + "response":
            self.api.finish(now, "response", data, None)
        elif self.path == prefix + "error":
            self.api.finish(now, "error", data, error_type)
        else:
            return self.reply(404, b'{"errorMessage": "unknown path or request id"}')
        self.reply(202, b'{"status": "OK"}')


# ---- moto: the queue and the parameter --------------------------------------------------

def aws_json(moto, service: str, target: str, body: dict, version: str) -> dict:
    """One JSON-protocol call to moto (which checks no signature: the credential scope
    only routes the call to `service`)."""
    auth = (f"AWS4-HMAC-SHA256 Credential=testing/20261201/{REGION}/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0")
    status, _, data = request(f"127.0.0.1:{moto.port}", "POST", "/", body=json.dumps(body).encode(),
                                headers={"X-Amz-Target": target, "Authorization": auth,
                                         "Content-Type": f"application/x-amz-json-{version}"},
                                length=len(json.dumps(body).encode()))
    if status != 200:
        raise RuntimeError(f"moto {target}: {status} {data[:300]!r}")
    return json.loads(data or b"{}")


def prepare(moto) -> dict:
    queue = aws_json(moto, "sqs", "AmazonSQS.CreateQueue", {
        "QueueName": "ferry-jobs.fifo",
        "Attributes": {"FifoQueue": "true", "ContentBasedDeduplication": "false"}}, "1.0")["QueueUrl"]
    aws_json(moto, "ssm", "AmazonSSM.PutParameter",
             {"Name": PARAMETER, "Value": json.dumps(CONFIG), "Type": "String"}, "1.1")
    return {"queue": queue}


def env_for(function: str, api: str, moto, home: Path, queue: str, source: str) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TZ": ":UTC", "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": api, "AWS_LAMBDA_FUNCTION_NAME": f"ferry-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO", "RUST_LOG": "info",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto.port}",
    }
    if source == "ssm":
        env["FERRY_CONFIG_PARAMETER"] = PARAMETER
    else:
        env["FERRY_CONFIG"] = json.dumps(CONFIG)
    if function in ("dispatch", "reconcile"):
        env["FERRY_JOBS_QUEUE_URL"] = queue
    if function == "replicate":
        env["FERRY_EVENT_BUS_NAME"] = "ferry-results"
    return env


def event_for(function: str) -> bytes:
    if function == "dispatch":
        return (ROOT / "testdata/events/ecr-image-action-push.json").read_bytes()
    if function == "replicate":
        return json.dumps({"Records": []}).encode()
    return json.dumps(SCHEDULED).encode()


# ---- runs ------------------------------------------------------------------------------

def one(binary: Path, function: str, source: str, moto, home: Path, queue: str, functions_log: Path) -> dict:
    api = RuntimeApi(event_for(function), function)
    env = env_for(function, api.address, moto, home, queue, source)
    idle = Idle()
    proc = None
    try:
        with open(functions_log, "ab") as out:
            t0 = time.monotonic()
            proc = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=home)
        finished = api.wait(30)
        exit_code = proc.poll()
    finally:
        if proc is not None:
            stop_process(proc)
        api.stop()
        idle.stop()
    ms = lambda t: None if t is None else round((t - t0) * 1000, 2)  # noqa: E731
    ok = finished and api.outcome == "response"
    return {
        "function": function, "config": source, "ok": ok,
        "init_ms": ms(api.first_next), "first_event_ms": ms(api.done),
        "outcome": api.outcome or ("exited" if exit_code is not None else "timeout"),
        "exit_before_answer": exit_code, "error_type": api.error_type,
        "answer": api.answer.decode("utf-8", "replace")[:400],
        "machine_idle": None if Idle.last is None else round(Idle.last, 3),
        "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
    }


def summary(runs: list[dict]) -> dict:
    def stats(key):
        xs = [r[key] for r in runs if r["ok"] and r[key] is not None]
        return {"median": round(statistics.median(xs), 2), "max": round(max(xs), 2),
                "min": round(min(xs), 2)} if xs else None
    idle = [r["machine_idle"] for r in runs if r["machine_idle"] is not None]
    return {"runs": len(runs), "ok_runs": sum(r["ok"] for r in runs), "init_ms": stats("init_ms"),
            "first_event_ms": stats("first_event_ms"),
            "machine_idle": round(statistics.median(idle), 3) if idle else None,
            "loadavg_1m": round(statistics.median(r["loadavg_1m"] for r in runs), 2)}


def run(bench, functions_dir: Path, runs: int, sources=("ssm", "inline")) -> dict:
    moto = Moto(bench.work)
    home = Path(tempfile.mkdtemp(prefix="coldstart-home-", dir=bench.work))
    functions_log = bench.work / "coldstart-functions.log"
    try:
        queue = prepare(moto)["queue"]
        cases = [(f, s) for s in sources for f in FUNCTIONS]
        out: dict = {f"{f} ({s})": [] for f, s in cases}
        for i in range(runs):
            order = cases[i % len(cases):] + cases[:i % len(cases)]
            for f, s in order:
                r = one(functions_dir / f, f, s, moto, home, queue, functions_log)
                out[f"{f} ({s})"].append(r)
                if not r["ok"]:
                    bench.failures.append(f"coldstart {f} ({s}): {r['outcome']} {r['error_type'] or ''} "
                                          f"{r['answer'][:200]}")
            log(f" coldstart round {i + 1}/{runs}: " + ", ".join(
                f"{k} {v[-1]['init_ms']}/{v[-1]['first_event_ms']} ms" for k, v in out.items()))
        return {"runs": runs, "goal_init_ms": GOAL_INIT_MS, "moto_api_calls": moto.api_calls(),
                "summary": {k: summary(v) for k, v in out.items()}, "all": out,
                "functions_log_tail": functions_log.read_text(errors="replace")[-2000:] if functions_log.exists() else ""}
    finally:
        moto.stop()
        shutil.rmtree(home, ignore_errors=True)


def report(info: dict, res: dict, functions_dir: str) -> tuple[dict, str]:
    lines = [
        f"# Lambda cold start ({info['date']})", "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), load {' '.join(info['loadavg_start'])} at the start, "
        f"{' '.join(info.get('loadavg_end', []))} at the end; commit {info['ferry_commit']}; release binaries "
        f"in `{functions_dir}`. {res['runs']} runs per function and config source, order rotated; times from "
        "just before `Popen` to the first `GET /runtime/invocation/next` (init) and to the first "
        "`POST .../response` (first event), taken by the runtime API emulator of bench/coldstart.py. "
        "moto_server stands in for SQS, SSM and ECR on loopback.", "",
        f"| function | config | init median | init max | first event median | first event max "
        f"| goal: init ≤ {GOAL_INIT_MS:.0f} ms | machine idle (median) | load 1 min | ok runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in res["summary"].items():
        function, source = name.split(" (")
        source = {"ssm)": "SSM parameter", "inline)": "FERRY_CONFIG"}[source]
        init, first = s["init_ms"], s["first_event_ms"]
        met = "—" if init is None else ("met" if init["median"] <= GOAL_INIT_MS else "**missed**")
        f = lambda x, k: "—" if x is None else f"{x[k]:.1f} ms"  # noqa: E731
        lines.append(f"| {function} | {source} | {f(init, 'median')} | {f(init, 'max')} | {f(first, 'median')} | "
                     f"{f(first, 'max')} | {met} | {fmt_pct(s['machine_idle'])} | {s['loadavg_1m']} | "
                     f"{s['ok_runs']}/{s['runs']} |")
    lines += ["", "Events: dispatch an ECR Image Action PUSH the config matches (2 jobs sent to SQS); replicate "
              "an SQS event with zero records; reconcile a scheduled event (moto's ECR lists no repository, "
              "no job). reconcile's first event is not a Ferry figure: moto does not implement ECR's "
              "DescribePullThroughCacheRules and answers 500, which the SDK retries with backoff (standard "
              "mode, 3 attempts) before Ferry goes on without pull-through rules. The goal is judged on the "
              "median; the max is beside it.", ""]
    return {"machine": info, "coldstart": res}, "\n".join(lines)
