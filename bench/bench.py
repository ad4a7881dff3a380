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
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The modules' imports form a DAG with this entry point on top (bench/check_imports.py,
# `make lint`): the scenario modules, then the helpers they share.
import backfill  # noqa: E402  bench/backfill.py
import authorize  # noqa: E402  bench/authorize.py
import coldstart  # noqa: E402  bench/coldstart.py
import fanout  # noqa: E402  bench/fanout.py
import scale  # noqa: E402  bench/scale.py
import wan  # noqa: E402  bench/wan.py
from datasets import big_dataset, fan_dataset, many_dataset  # noqa: E402
from harness import Bench  # noqa: E402
from registries import ROOT, Registry, log  # noqa: E402
from report import build_report, machine  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferry", default=str(ROOT / "target/release/ferry"))
    p.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 5)))
    p.add_argument("--big-mib", type=int, default=int(os.environ.get("BENCH_BIG_MIB", 1024)))
    p.add_argument("--repos", type=int, default=20)
    p.add_argument("--tags", type=int, default=10)
    p.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", 1.0)),
                   help="layer size factor of the many-images and fan-out datasets")
    p.add_argument("--scenarios", default=os.environ.get(
        "BENCH_SCENARIOS", "big,many,warm,fan,fanout,wan-many,wan-warm,wan-big,wan-pipeline,scale,coldstart,backfill,authorize"),
        help="comma-separated; the wan-* scenarios (bench/wan.py) write wan.md / wan.json, "
             "scale (bench/scale.py) scale.md / scale.json, coldstart (bench/coldstart.py) "
             "coldstart.md / coldstart.json, authorize (bench/authorize.py) authorize.md / authorize.json")
    p.add_argument("--authorize-example", default=os.environ.get(
        "BENCH_AUTHORIZE_EXAMPLE", str(ROOT / "target/release/examples/authorize_scale")),
        help="the authorize scenario's program "
             "(cargo build --release -p ferry-pipeline --example authorize_scale)")
    p.add_argument("--authorize-accounts", type=int, default=int(os.environ.get("BENCH_AUTHORIZE_ACCOUNTS", 5000)),
                   help="accounts of the authorize scenario's organization destination (x 4 regions)")
    p.add_argument("--functions", default=os.environ.get("BENCH_FUNCTIONS", str(ROOT / "target/release")),
                   help="directory of the release Lambda binaries dispatch, replicate, reconcile "
                        "(cargo build --release -p ferry-fn-dispatch -p ferry-fn-replicate -p ferry-fn-reconcile)")
    p.add_argument("--coldstart-runs", type=int, default=int(os.environ.get("BENCH_COLDSTART_RUNS", 10)),
                   help="cold starts per function and config source of the coldstart scenario")
    p.add_argument("--synthetic", default=os.environ.get("BENCH_SYNTHETIC", str(ROOT / "target/release/synthetic")),
                   help="the generated registry of the scale scenario (cargo build -p ferry-e2e --bin synthetic)")
    p.add_argument("--scale-repos", type=int, default=int(os.environ.get("BENCH_SCALE_REPOS", 10000)),
                   help="repositories of the scale scenario")
    p.add_argument("--scale-tags", type=int, default=int(os.environ.get("BENCH_SCALE_TAGS", 10)),
                   help="tags per repository of the scale scenario")
    p.add_argument("--wanproxy", default=os.environ.get("BENCH_WANPROXY", str(ROOT / "target/release/wanproxy")),
                   help="the WAN proxy binary (cargo build -p ferry-e2e --bin wanproxy)")
    p.add_argument("--wan-delay-ms", type=int, default=int(os.environ.get("BENCH_WAN_DELAY_MS", 40)),
                   help="delay per request of the WAN proxies")
    p.add_argument("--wan-mbit", type=int, default=int(os.environ.get("BENCH_WAN_MBIT", 200)),
                   help="bandwidth cap of the WAN proxies, per connection and per proxy")
    p.add_argument("--wan-pipeline-pushes", type=int, default=int(os.environ.get("BENCH_WAN_PUSHES", 50)),
                   help="pushes of the wan-pipeline scenario (scripts/pipeline-demo --latency N)")
    p.add_argument("--wan-pipeline-interval-ms", type=int, default=int(os.environ.get("BENCH_WAN_PUSH_INTERVAL_MS", 0)),
                   help="a push every this many ms in the wan-pipeline scenario (0: each as the previous one's "
                        "event is published)")
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
    p.add_argument("--backfill", default=str(ROOT / "target/release/examples/backfill"),
                   help="the backfill scenario's program (cargo build -p ferry-pipeline --example backfill)")
    p.add_argument("--backfill-images", type=int, default=500, help="images of the backfill scenario")
    p.add_argument("--backfill-destinations", type=int, default=600,
                   help="destinations of the backfill scenario (accounts x 2 regions)")
    p.add_argument("--backfill-cap", type=int, default=10000,
                   help="jobs one reconcile run enqueues in the backfill scenario (FERRY_MAX_JOBS_PER_RUN)")
    p.add_argument("--backfill-sqs-jobs", type=int, default=2000,
                   help="jobs the backfill scenario enqueues into moto's SQS (0: none)")
    p.add_argument("--name", default=os.environ.get("BENCH_NAME", "latest"), help="results file stem")
    args = p.parse_args()

    wanted = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    # The backfill scenario runs its own program and needs no registry, peer or ferry.
    registries_wanted = [x for x in wanted if x != "backfill"]
    for tool in ("docker-registry", "skopeo", "curl", "/usr/bin/time") if registries_wanted else ():
        if not shutil.which(tool):
            print(f"bench: {tool} is missing (scripts/bench installs it)", file=sys.stderr)
            return 2
    if registries_wanted and not Path(args.ferry).exists():
        print(f"bench: no ferry binary at {args.ferry}", file=sys.stderr)
        return 2
    wan_wanted = [x for x in wanted if x.startswith("wan-")]
    if wan_wanted and not Path(args.wanproxy).exists():
        print(f"bench: no wanproxy binary at {args.wanproxy} (cargo build -p ferry-e2e --bin wanproxy)",
              file=sys.stderr)
        return 2
    if "backfill" in wanted and not Path(args.backfill).exists():
        print(f"bench: no backfill program at {args.backfill} (cargo build -p ferry-pipeline --example backfill)",
              file=sys.stderr)
        return 2
    if "scale" in wanted and not Path(args.synthetic).exists():
        print(f"bench: no synthetic binary at {args.synthetic} (cargo build -p ferry-e2e --bin synthetic)",
              file=sys.stderr)
        return 2
    if "wan-pipeline" in wanted and not shutil.which("moto_server"):
        print("bench: moto_server is missing (scripts/setup installs it); the wan-pipeline scenario needs it",
              file=sys.stderr)
        return 2
    if "coldstart" in wanted:
        missing = [f for f in ("dispatch", "replicate", "reconcile") if not (Path(args.functions) / f).exists()]
        if missing or not shutil.which("moto_server"):
            print(f"bench: the coldstart scenario needs moto_server and the release binaries {missing} in "
                  f"{args.functions} (scripts/bench builds them)", file=sys.stderr)
            return 2
    if "authorize" in wanted and not Path(args.authorize_example).exists():
        print(f"bench: no authorize_scale example at {args.authorize_example} "
              "(cargo build --release -p ferry-pipeline --example authorize_scale)", file=sys.stderr)
        return 2
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
            ds = fanout.dataset(bench.work, args.scale)
            sources.append(ds.registry)
            log(f"scenario fanout: {ds.description}, to {args.fanout} destinations")
            scen["fanout"] = ({"description": f"{ds.description}, to {args.fanout} destinations on at most "
                                              f"{args.fanout_registries} docker-registry processes",
                               "unique_bytes": ds.unique_bytes}, fanout.run(bench, ds, bench.fanout_sizes))
            ds.registry.stop()
        scale_res = None
        if "scale" in wanted:
            log(f"scenario scale: {args.scale_repos} repositories x {args.scale_tags} tags")
            scale_res = scale.run(bench, args.scale_repos, args.scale_tags)
        coldstart_res = None
        if "coldstart" in wanted:
            log(f"scenario coldstart: {args.coldstart_runs} cold starts per function and config source")
            coldstart_res = coldstart.run(bench, Path(args.functions).resolve(), args.coldstart_runs)
        backfill_res = None
        if "backfill" in wanted:
            log(f"scenario backfill: {args.backfill_images} images x {args.backfill_destinations} destinations")
            backfill_res = backfill.run(args.backfill, bench.work, args.backfill_images,
                                        args.backfill_destinations, args.backfill_cap, args.backfill_sqs_jobs)
        authorize_res = None
        if "authorize" in wanted:
            log(f"scenario authorize: {args.authorize_accounts} accounts x 4 regions")
            authorize_res = authorize.run(Path(args.authorize_example), max(args.runs, 3),
                                          args.authorize_accounts, 4)
        wan_scen = {}
        if wan_wanted:
            wan_scen = wan.run(bench, wan_wanted)
    finally:
        for r in sources:
            r.stop()
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports = []

    def titled(key: str, title: str, program: str, res: dict, body: str):
        """A scenario's own results file: `key`.md / .json (or `<name>-key`)."""
        stem = key if args.name == "latest" else f"{args.name}-{key}"
        md = "\n".join([f"# {title} ({datetime.date.today()})", "",
                        f"Machine: {info['nproc']} CPUs, load {' '.join(info['loadavg_start'])} at the start, "
                        f"{' '.join(info['loadavg_end'])} at the end; {program}.", "", body])
        reports.append((stem, ({"machine": info, key: res}, md)))

    if scale_res is not None:
        titled("scale", "Ferry at scale", f"ferry `{args.ferry}`", scale_res, scale.report(scale_res))
    if coldstart_res is not None:
        stem = "coldstart" if args.name == "latest" else f"{args.name}-coldstart"
        reports.append((stem, coldstart.report(info, coldstart_res, args.functions)))
    if backfill_res is not None:
        stem = "backfill" if args.name == "latest" else f"{args.name}-backfill"
        md = "\n".join([f"# Backfill of a new OU ({datetime.date.today()})", "",
                        f"Machine: {info['nproc']} CPUs, load {' '.join(info['loadavg_start'])} at the start.", "",
                        backfill.report(backfill_res)])
        reports.append((stem, ({"machine": info, "backfill": backfill_res}, md)))
    if authorize_res is not None:
        titled("authorize", "Ferry's authorization at scale", f"`{args.authorize_example}`", authorize_res,
               authorize.report(authorize_res))
    if scen or not (wan_wanted or scale_res is not None or coldstart_res is not None
                    or backfill_res is not None or authorize_res is not None):
        def fanout_section(sc, row, target):
            return fanout.report(sc, bench.fanout_sizes, args.fanout_width, row, target)

        reports.append((args.name, build_report(bench, info, scen, {"fanout": fanout_section})))
    if wan_wanted:
        stem = "wan" if args.name == "latest" else f"{args.name}-wan"
        reports.append((stem, wan.report(bench, info, wan_scen)))
    for stem, (data, md) in reports:
        (out / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
        (out / f"{stem}.md").write_text(md)
        print(md)
        log(f"wrote {out / (stem + '.md')} and .json")
    shutil.rmtree(bench.work, ignore_errors=True)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
