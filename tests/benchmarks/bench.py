"""Benchmark this morgan against the original Morgan 0.15.0 on a synthetic upstream.

    /work/venv/bin/python tests/benchmarks/bench.py [--quick] [--work /tmp/morgan-bench]

See README.md in this folder for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import artifacts
import probes
import report
import runner
import serverbench
import workload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/morgan-bench"),
        help="work dir: generated upstream (cached), venv, trees, logs, reports",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="30 projects, no big files, short server tests: a one-minute check",
    )
    parser.add_argument(
        "--scale",
        choices=("quick", "full", "real", "real300"),
        help="the workload: full (default), quick (as --quick), real: the page shapes of "
        "the largest projects (thousands of files over hundreds of versions), 3 environments, "
        "or real300: those shapes in a closure of 300 projects, 2 environments",
    )
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per figure; the report shows the median"
    )
    parser.add_argument("--latencies", default="0,50", help="upstream latencies in ms")
    parser.add_argument(
        "--jobs",
        default="8,16,32",
        help="-j values to compare (cold runs at the highest latency); '' for none",
    )
    parser.add_argument("--skip-morgan", action="store_true", help="only run this morgan")
    parser.add_argument(
        "--unannounced-metadata",
        action="store_true",
        help="the upstream's pages name no PEP 658 metadata (its files are still served), "
        "as the default index behind some proxies",
    )
    parser.add_argument("--skip-servers", action="store_true")
    parser.add_argument("--clients", type=int, default=50, help="concurrent server clients")
    parser.add_argument("--server-seconds", type=float, help="per rate test (default 10, quick 3)")
    parser.add_argument(
        "--memory-limit-mib",
        type=int,
        default=4096,
        help="kill a server whose RSS passes this during the big downloads",
    )
    parser.add_argument(
        "--keep-trees",
        action="store_true",
        help="keep every mirrored tree (default: drop the -j sweep's)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="per mirror run, seconds")
    parser.add_argument(
        "--quiet-load",
        type=float,
        help="before each measurement, wait until the 1-minute load average is below this",
    )
    parser.add_argument("--quiet-wait", type=float, default=180, help="...but at most this long")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def as_dict(result: runner.RunResult) -> dict:
    data = asdict(result)
    data.update(
        requests=result.requests,
        fetched=result.fetched,
        max_rss_bytes=result.peak_rss_kib * 1024,
        ru_maxrss_bytes=result.max_rss_kib * 1024,
        log=str(result.log),
    )
    return data


def summary(result: runner.RunResult) -> str:
    text = (
        f"{result.wall:.2f} s, exit {result.exit_code}, "
        f"{result.peak_rss_kib / 1024:.0f} MiB peak RSS, {result.requests} requests, "
        f"{result.fetched / 2**20:.1f} MiB, {result.files} files"
    )
    if result.exit_code != 0:
        text += "\n    " + "\n    ".join(result.stderr_tail[-5:])
    return text


def cold_and_warm(args, tool, *, label, index, config, upstream, runs_dir, jobs=None) -> dict:
    """``--repeat`` cold runs into an empty tree, each followed by a warm one: lists of results."""
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    for repeat in range(args.repeat):
        runner.set_aside(index, args.trash)
        for kind in ("cold", "warm"):
            result = measured_run(
                args,
                tool,
                label=f"{label}-{kind}" + (f"-{repeat + 1}" if args.repeat > 1 else ""),
                index=index,
                config=config,
                upstream=upstream,
                runs_dir=runs_dir,
                jobs=jobs,
            )
            runs[kind].append(as_dict(result))
    return runs


def median_runs(runs: dict[str, list[dict]]) -> dict:
    """The run of median wall time for cold and for warm, with every wall time alongside."""
    chosen = {}
    for kind, results in runs.items():
        ordered = sorted(results, key=lambda run: run["wall"])
        chosen[kind] = {**ordered[len(ordered) // 2], "walls": [run["wall"] for run in results]}
    return chosen


def mirror_runs(args, tools, upstream, *, config, manifest, latency, runs_dir) -> dict:
    upstream.latency(latency)
    largest = max(
        (f for p in manifest["projects"].values() for f in p["files"]), key=lambda f: f["size"]
    )
    downloads = [
        probes.loopback_throughput(upstream.url, f"/files/{largest['path']}") for _ in range(3)
    ]
    throughput, probe_bytes = max(downloads)
    collected: dict[str, dict[str, list[dict]]] = {key: {"cold": [], "warm": []} for key in tools}
    for repeat in range(args.repeat):  # the tools take turns, so that noise hits both
        for key, tool in tools.items():
            one = argparse.Namespace(**{**vars(args), "repeat": 1})
            runs = cold_and_warm(
                one,
                tool,
                label=f"{latency:g}ms" + (f"-r{repeat + 1}" if args.repeat > 1 else ""),
                index=runs_dir / f"{key}-{latency:g}ms",
                config=config,
                upstream=upstream,
                runs_dir=runs_dir,
            )
            for kind in ("cold", "warm"):
                collected[key][kind] += runs[kind]
    block: dict = {key: median_runs(runs) for key, runs in collected.items()}
    cold = block["ours"]["cold"]
    disk = probes.disk_throughput(runs_dir)
    block["transfer_bound"] = {
        "throughput": throughput,
        "probe_bytes": probe_bytes,
        "depth": manifest["depth"],
        "seconds": cold["fetched"] / throughput + manifest["depth"] * latency / 1000,
        "jobs": args.default_jobs,
        "request_floor": cold["requests"] * latency / 1000 / args.default_jobs,
        "disk_throughput": disk,
        "disk_seconds": cold["fetched"] / disk,
    }
    return block


def jobs_sweep(args, tool, upstream, *, config, latency, runs_dir) -> dict:
    upstream.latency(latency)
    runs = {}
    for jobs in [int(j) for j in args.jobs.split(",") if j.strip()]:
        index = runs_dir / f"ours-j{jobs}-{latency:g}ms"
        found = cold_and_warm(
            args,
            tool,
            label=f"j{jobs}-{latency:g}ms",
            index=index,
            config=config,
            upstream=upstream,
            runs_dir=runs_dir,
            jobs=jobs,
        )
        runs[str(jobs)] = median_runs(found)
        if not args.keep_trees:
            runner.set_aside(index, args.trash)
    return {"latency_ms": latency, "runs": runs}


def default_jobs(tool: runner.Tool) -> int:
    """This morgan's default -j, as its --help states it (it is being tuned)."""
    text = subprocess.run(
        [str(tool.executable), "--help"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"parallel requests \(default: (\d+)\)", " ".join(text.split()))
    return int(match.group(1)) if match else 8


def wait_for_quiet(args) -> None:
    """On a shared machine, wait (a while) for the 1-minute load average to settle."""
    if args.quiet_load is None:
        return
    deadline = time.monotonic() + args.quiet_wait
    while os.getloadavg()[0] > args.quiet_load and time.monotonic() < deadline:
        time.sleep(5)


def measured_run(args, tool, *, label, index, config, upstream, runs_dir, jobs=None):
    wait_for_quiet(args)
    log(f"{tool.name}: {label} (load {os.getloadavg()[0]:.1f})")
    result = runner.run_mirror(
        tool,
        label=label,
        index=index,
        config=config,
        upstream=upstream.url,
        logs=runs_dir / "logs",
        jobs=jobs,
        timeout=args.timeout,
    )
    log("  " + summary(result))
    return result


def server_runs(args, runs_dir: Path, latency: float) -> dict:
    seconds = args.server_seconds or (3.0 if args.quick else 10.0)
    servers: dict = {"clients": args.clients, "seconds": seconds}
    kinds = [("ours", serverbench.OURS, "ours")]
    if not args.skip_morgan:
        kinds.append(("morgan", serverbench.MORGAN, "morgan"))
    if serverbench.nginx_binary():  # nginx in front of our tree
        kinds.append(("nginx", serverbench.NGINX, "ours"))
    else:
        log("nginx is not installed: not measured")
    for key, kind, tree in kinds:
        index = runs_dir / f"{tree}-{latency:g}ms"
        wait_for_quiet(args)
        log(f"measuring the {kind.name} server on {index} (load {os.getloadavg()[0]:.1f})")
        servers[key] = serverbench.measure_server(
            kind,
            index,
            runs_dir,
            clients=args.clients,
            duration=seconds,
            memory_limit_mib=args.memory_limit_mib,
            log=log,
        )
    return servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    scale = getattr(workload.Scale, args.scale or ("quick" if args.quick else "full"))()
    log(f"workload: {scale.name}, seed {args.seed}")
    generated = workload.generate(scale, args.seed)
    # trees are set aside between runs, deleted at the end (see runner.set_aside)
    args.trash, stamp = work / "discarded", work / "discarded-at"
    tree = artifacts.ensure_tree(work, generated, log, lambda: runner.note_deletion(stamp))
    manifest = artifacts.load_manifest(tree)
    config = tree / "morgan.ini"
    tools = {"ours": runner.ours()}
    args.default_jobs = default_jobs(tools["ours"])
    if not args.skip_morgan:
        tools["morgan"] = runner.original_morgan(work, log, lambda: runner.note_deletion(stamp))
    runs_dir = work / "runs" / (scale.name + ("-unannounced" if args.unannounced_metadata else ""))
    latencies = [float(v) for v in args.latencies.split(",")]
    results: dict = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": probes.machine(),
        "ours_default_jobs": args.default_jobs,
        "repeat": args.repeat,
        "workload": {
            "scale": scale.name,
            "seed": args.seed,
            "projects": len(manifest["projects"]),
            "closure": manifest["closure"],
            "depth": manifest["depth"],
            "files": manifest["files"],
            "bytes": manifest["bytes"],
            "top_level": manifest["top_level"],
            "environments": len(generated.environments()),
            "unannounced": args.unannounced_metadata,
        },
        "latencies": {},
    }
    runner.settle(args.trash, stamp, log)
    upstream = probes.Upstream(
        tree, runs_dir / "logs", unannounced_metadata=args.unannounced_metadata
    )
    try:
        log(f"upstream at {upstream.url}simple/")
        for latency in latencies:
            results["latencies"][f"{latency:g}"] = mirror_runs(
                args,
                tools,
                upstream,
                config=config,
                manifest=manifest,
                latency=latency,
                runs_dir=runs_dir,
            )
        if args.jobs.strip():
            results["jobs"] = jobs_sweep(
                args,
                tools["ours"],
                upstream,
                config=config,
                latency=max(latencies),
                runs_dir=runs_dir,
            )
    finally:
        upstream.stop()
        runner.empty_trash(args.trash, stamp)
    if not args.skip_servers:
        results["servers"] = server_runs(args, runs_dir, min(latencies))
    text = report.render(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = work / f"report-{scale.name}-{stamp}.md"
    out.write_text(text)
    (work / f"results-{scale.name}-{stamp}.json").write_text(json.dumps(results, indent=1))
    print(text)
    log(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
