"""The results as Markdown: mirror runs, the -j sweep, the servers, and the targets."""

from __future__ import annotations

MIB = 1024 * 1024


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:.0f} s"


def _mib(count: float | None) -> str:
    if count is None:
        return "-"
    return f"{count / MIB:.1f} MiB" if count < 100 * MIB else f"{count / MIB:.0f} MiB"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "-"
    value = ours / theirs
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def _n(value: object) -> str:
    return "-" if value is None else str(value)


class _Absent(dict):
    """A run that did not happen (--skip-morgan): every figure is missing."""

    def __missing__(self, key: str) -> None:
        return None


def _rows(table: list[list[str]]) -> list[str]:
    header, *body = table
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def _run_rows(ours: dict, theirs: dict, when: str) -> list[list[str]]:
    def row(name: str, key: str, fmt) -> list[str]:
        return [f"{when}: {name}", fmt(ours[key]), fmt(theirs[key]), _ratio(ours[key], theirs[key])]

    def walls(run: dict) -> str:
        times = run["walls"] or []
        spread = f" ({min(times):.2f}-{max(times):.2f})" if len(times) > 1 else ""
        return _s(run["wall"]) + spread

    return [
        [f"{when}: wall time", walls(ours), walls(theirs), _ratio(ours["wall"], theirs["wall"])],
        row("peak RSS", "max_rss_bytes", _mib),
        row("requests", "requests", _n),
        row("bytes fetched", "fetched", _mib),
        [f"{when}: exit status", _n(ours["exit_code"]), _n(theirs["exit_code"]), ""],
        row("files in tree", "files", _n),
    ]


KINDS = (
    ("page", "pages"),
    ("not_modified", "304s"),
    ("metadata", "metadata"),
    ("file", "files"),
    ("range", "ranges"),
    ("redirect", "redirects"),
    ("missing", "404s"),
)


def _kinds(counters: dict) -> str:
    parts = [f"{counters[key]} {name}" for key, name in KINDS if counters.get(key)]
    return ", ".join(parts) or "none"


def mirror_section(latency: str, block: dict) -> list[str]:
    ours = block["ours"]
    theirs = block.get("morgan") or {"cold": _Absent(), "warm": _Absent()}
    table = [["", "ours", "Morgan 0.15.0", "ours / Morgan"]]
    table += _run_rows(ours["cold"], theirs["cold"], "cold")
    table += _run_rows(ours["warm"], theirs["warm"], "warm")
    table.append(
        ["tree size", _mib(ours["cold"]["tree_bytes"]), _mib(theirs["cold"]["tree_bytes"]), ""]
    )
    bound = block["transfer_bound"]
    lines = [f"### Upstream latency {latency} ms", ""]
    lines += _rows(table)
    lines += [
        "",
        "Requests by kind: "
        + "; ".join(
            f"{name} {label}: {_kinds(block[key][label]['counters'])}"
            for key, name in (("ours", "ours"), ("morgan", "Morgan"))
            if key in block
            for label in ("cold", "warm")
        )
        + ".",
    ]
    lines += [
        "",
        f"Loopback throughput (one {_mib(bound['probe_bytes'])} download, plain socket): "
        f"{bound['throughput'] / MIB:.0f} MiB/s. Transfer-bound time = our cold bytes "
        f"/ throughput + depth {bound['depth']} x {latency} ms = {_s(bound['seconds'])}; "
        f"our cold run is **{block['ours']['cold']['wall'] / bound['seconds']:.1f}x** that.",
        "",
    ]
    if bound.get("disk_throughput"):
        lines += [
            f"Disk where the trees go (256 MiB written and fsynced): "
            f"{bound['disk_throughput'] / MIB:.0f} MiB/s, so writing our cold bytes takes "
            f"{_s(bound['disk_seconds'])} at least.",
            "",
        ]
    if bound.get("jobs") and float(latency):
        lines += [
            f"Request floor at our default -j {bound['jobs']}: cold requests x {latency} ms / "
            f"{bound['jobs']} = {_s(bound['request_floor'])} (the transfer-bound time counts "
            "the latency once per dependency level; every file and page costs one too).",
            "",
        ]
    return lines


def jobs_section(jobs: dict) -> list[str]:
    latency = jobs["latency_ms"]
    table = [
        ["-j", "cold", "cold floor", "warm", "warm floor", "cold peak RSS", "requests", "exit"]
    ]
    for value, runs in jobs["runs"].items():
        cold, warm = runs["cold"], runs["warm"]
        table.append(
            [
                value,
                _s(cold["wall"]),
                _s(cold["requests"] * latency / 1000 / int(value)),
                _s(warm["wall"]),
                _s(warm["requests"] * latency / 1000 / int(value)),
                _mib(cold["max_rss_bytes"]),
                f"{cold['requests']} / {warm['requests']}",
                f"{cold['exit_code']} / {warm['exit_code']}",
            ]
        )
    best_cold = min(jobs["runs"].items(), key=lambda item: item[1]["cold"]["wall"])[0]
    best_warm = min(jobs["runs"].items(), key=lambda item: item[1]["warm"]["wall"])[0]
    return [
        f"### Our runs by -j at {latency:g} ms",
        "",
        *_rows(table),
        "",
        f"Fastest: cold -j {best_cold}, warm -j {best_warm}. A floor is requests x {latency:g} ms"
        " / j: what the request count and the latency allow j parallel requests, whatever the "
        "code does.",
        "",
    ]


def server_section(servers: dict) -> list[str]:
    names = {"ours": "ours (server.py)", "morgan": "Morgan 0.15.0", "nginx": "nginx (our tree)"}
    present = [key for key in names if key in servers]

    def rate(result: dict, key: str) -> str:
        part = result[key]
        errors = f", {part['errors']} errors" if part["errors"] else ""
        tail = f"p99 {part.get('p99_ms', 0):.0f} ms, max {part.get('max_ms', 0):.0f} ms"
        return f"{part['per_second']:.0f}/s ({tail}{errors})"

    def big(server: str, key: str) -> str:
        part = servers[server]["big"]
        if key == "peak":
            if server == "nginx":
                return "- (worker processes)"
            if part["killed_over_limit_mib"]:
                return f"> {part['killed_over_limit_mib']} MiB (killed)"
            return _mib(part["peak_rss_kib"] * 1024)
        ok = part["requests"]
        return f"{ok} of {ok + part['errors']} in {_s(part['seconds'])}"

    def ratio(key: str) -> list[str]:
        if "morgan" not in servers:
            return []
        return [_ratio(servers["ours"][key]["per_second"], servers["morgan"][key]["per_second"])]

    clients = servers["clients"]
    largest = _mib(servers["ours"]["largest_file_bytes"])
    rest = [""] if "morgan" in servers else []
    table = [["", *(names[k] for k in present), *(["ours / Morgan"] if rest else [])]]
    table.append(
        [f"project pages, {clients} clients (pip's Accept)"]
        + [rate(servers[k], "pages") for k in present]
        + ratio("pages")
    )
    table.append(
        [f"small files (<= 256 KiB), {clients} clients"]
        + [rate(servers[k], "small_files") for k in present]
        + ratio("small_files")
    )
    table.append(
        ["RSS at rest (after one page)"]
        + ["-" if k == "nginx" else _mib(servers[k]["baseline_rss_kib"] * 1024) for k in present]
        + rest
    )
    table.append(
        [f"peak RSS, {clients} clients x largest file ({largest})"]
        + [big(k, "peak") for k in present]
        + rest
    )
    table.append(["largest-file downloads completed"] + [big(k, "done") for k in present] + rest)
    return ["### Servers", "", *_rows(table), ""]


def targets_section(results: dict) -> list[str]:
    lines = ["### Targets", ""]
    latencies = results["latencies"]
    high = latencies.get("50") or latencies[max(latencies, key=float)]
    ours, theirs = high["ours"], high["morgan"]
    checks = []
    speedup = theirs["cold"]["wall"] / ours["cold"]["wall"]
    checks.append(("cold at 50 ms >= 5x faster than Morgan", f"{speedup:.1f}x", speedup >= 5))
    bound = ours["cold"]["wall"] / high["transfer_bound"]["seconds"]
    checks.append(("cold within 2x of transfer-bound", f"{bound:.1f}x", bound <= 2))
    warm = theirs["warm"]["wall"] / ours["warm"]["wall"]
    checks.append(("warm >= 20x faster than Morgan", f"{warm:.1f}x", warm >= 20))
    checks.append(("warm under 2 s", _s(ours["warm"]["wall"]), ours["warm"]["wall"] < 2))
    rss = max(b["ours"]["cold"]["max_rss_bytes"] for b in latencies.values())
    checks.append(("cold peak RSS < 150 MB", _mib(rss), rss < 150e6))
    servers = results.get("servers")
    if servers:
        ratio = servers["ours"]["pages"]["per_second"] / servers["morgan"]["pages"]["per_second"]
        checks.append(("server pages >= Morgan's", f"{ratio:.2f}x", ratio >= 1))
        growth = (
            servers["ours"]["big"]["peak_rss_kib"] - servers["ours"]["baseline_rss_kib"]
        ) * 1024
        checks.append(
            (
                "server memory flat under big downloads (growth < 64 MiB)",
                f"+{_mib(growth)}",
                growth < 64 * MIB,
            )
        )
    table = [["target", "measured", "met"]]
    table += [[name, value, "yes" if ok else "**no**"] for name, value, ok in checks]
    return [*lines, *_rows(table), ""]


def _load_range(results: dict) -> str:
    loads = [
        run["load_before"]
        for block in results["latencies"].values()
        for key in ("ours", "morgan")
        if key in block
        for run in block[key].values()
    ]
    for runs in results.get("jobs", {}).get("runs", {}).values():
        loads += [run["load_before"] for run in runs.values()]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"


def render(results: dict) -> str:
    machine, workload = results["machine"], results["workload"]
    lines = [
        f"## morgan benchmark ({workload['scale']}) - {results['date']}",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.0f} GiB "
        f"RAM, {machine['kernel']}, Python {machine['python']}. Shared machine: figures move a "
        "few per cent between runs.",
        "",
        f"Our morgan as checked out, default -j {results.get('ours_default_jobs', '?')}. "
        + (
            f"Each figure is the median of {results['repeat']} runs (range in brackets)."
            if results.get("repeat", 1) > 1
            else "One run per figure."
        ),
        "",
        f"Upstream: {workload['projects']} projects ({workload['closure']} in the requirements' "
        f"closure, dependency depth {workload['depth']}), {workload['files']} files, "
        f"{_mib(workload['bytes'])}; {workload['environments']} environments, "
        f"{workload['top_level']} top-level requirements; PEP 691 JSON + PEP 658 metadata"
        + (" (served, not named on the pages), " if workload.get("unannounced") else ", ")
        + "ETag/Last-Modified, on loopback in its own process.",
        "",
        "Requests and bytes are counted by the upstream (bytes = response bodies). Peak RSS is "
        "the child's own VmHWM, read at its exit (ru_maxrss would also carry the harness's), "
        "plus the peak of the processes it started (morgan's download process). "
        "Warm = the same command again, nothing new upstream. "
        f"1-minute load average when the runs started: {_load_range(results)}.",
        "",
    ]
    for latency, block in results["latencies"].items():
        lines += mirror_section(latency, block)
    if results.get("jobs"):
        lines += jobs_section(results["jobs"])
    if results.get("servers"):
        lines += server_section(results["servers"])
    if "morgan" in next(iter(results["latencies"].values())):
        lines += targets_section(results)
    return "\n".join(lines) + "\n"
