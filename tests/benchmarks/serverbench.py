"""Measuring a mirror's own server: pages and small files per second, memory under big downloads.

Each server runs from the tree its mirrorer wrote, in its own process; the load
comes from ``loadgen.py`` in another process, so neither shares a GIL with the
other or with this harness.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from runner import DIST_SUFFIXES, clean_environment

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ServerKind:
    name: str
    #: URL path of the project list; project pages and files hang below it
    prefix: str
    extra_args: tuple[str, ...]

    def command(self, index: Path, port: int) -> list[str]:
        server = str(index / "server.py")
        args = ["-i", str(index), "-H", "127.0.0.1", "-p", str(port), *self.extra_args]
        return [sys.executable, server, *args]


OURS = ServerKind("ours", "/simple/", ("--quiet",))
MORGAN = ServerKind("Morgan 0.15.0", "/", ())  # no quiet flag: it logs every request

NGINX_CONF = HERE.parent.parent / "contrib" / "nginx" / "morgan.conf"


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    candidates = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


@dataclass(frozen=True)
class NginxKind(ServerKind):
    """Debian's nginx with contrib/nginx/morgan.conf, as an operator would run it."""

    def command(self, index: Path, port: int) -> list[str]:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed")
        prefix = Path(tempfile.mkdtemp(prefix="morgan-bench-nginx-"))
        site = NGINX_CONF.read_text()
        site = re.sub(r"(?m)^(\s*listen) \S+;(\s*# CHANGE)", rf"\1 127.0.0.1:{port};\2", site)
        site = re.sub(r"(?m)^(\s*root) \S+;(\s*# CHANGE)", rf"\1 {index};\2", site)
        (prefix / "morgan.conf").write_text(site)
        temp = "".join(
            f"    {kind}_temp_path {prefix / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes auto;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n"
            f"    keepalive_requests 100000;\n{temp}    include {prefix / 'morgan.conf'};\n}}\n"
        )
        return [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]


NGINX = NginxKind("nginx", "/simple/", ())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


class RunningServer:
    def __init__(self, kind: ServerKind, index: Path, logs: Path) -> None:
        self.port = free_port()
        logs.mkdir(parents=True, exist_ok=True)
        self.log = logs / f"server-{kind.name.split()[0].lower()}.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                kind.command(index, self.port),
                stdout=log,
                stderr=log,
                env=clean_environment(),
                start_new_session=True,
            )
        _wait_until_listening(self.port, self.process)

    def kib(self, field: str) -> int:
        return _status_kib(self.process.pid, field)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _loadgen(port: int, paths: list[str], work: Path, *extra: str) -> dict:
    paths_file = work / "loadgen-paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    command = [sys.executable, str(HERE / "loadgen.py"), "--port", str(port)]
    command += ["--paths", str(paths_file), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def tree_contents(index: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(project folders, [(project/file, size)]) of a mirrored tree."""
    projects, files = [], []
    for entry in sorted(index.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        projects.append(entry.name)
        for item in entry.iterdir():
            if item.name.endswith(DIST_SUFFIXES) and not item.name.startswith("."):
                files.append((f"{entry.name}/{item.name}", item.stat().st_size))
    return projects, files


def measure_server(
    kind: ServerKind,
    index: Path,
    work: Path,
    *,
    clients: int,
    duration: float,
    memory_limit_mib: int,
    log=print,
) -> dict:
    projects, files = tree_contents(index)
    small = [f"{kind.prefix}{path}" for path, size in files if size <= 256 * 1024]
    largest_path, largest_size = max(files, key=lambda item: item[1])
    pages = [f"{kind.prefix}{project}/" for project in projects]
    result: dict = {"server": kind.name, "largest_file_bytes": largest_size}
    logs = work / "logs"

    server = RunningServer(kind, index, logs)
    try:
        log(f"  {kind.name} server: pages, {clients} clients, {duration:.0f} s")
        result["pages"] = _loadgen(
            server.port, pages, work, "--clients", str(clients), "--duration", str(duration)
        )
        log(f"  {kind.name} server: small files, {clients} clients, {duration:.0f} s")
        result["small_files"] = _loadgen(
            server.port, small, work, "--clients", str(clients), "--duration", str(duration)
        )
        result["after_rate_tests_hwm_kib"] = server.kib("VmHWM")
    finally:
        server.stop()

    server = RunningServer(kind, index, logs)
    try:
        _loadgen(server.port, pages[:1], work, "--clients", "1", "--once")  # warm up
        result["baseline_rss_kib"] = server.kib("VmRSS")
        log(
            f"  {kind.name} server: {clients} clients download {largest_path} "
            f"({largest_size / 2**20:.0f} MiB)"
        )
        result["big"] = _big_downloads(
            server, f"{kind.prefix}{largest_path}", work, clients, memory_limit_mib
        )
    finally:
        server.stop()
    return result


def _big_downloads(
    server: RunningServer, path: str, work: Path, clients: int, memory_limit_mib: int
) -> dict:
    """All clients fetch ``path`` at once; the server's memory is watched meanwhile."""
    peak = [server.kib("VmRSS")]
    killed = threading.Event()
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            rss = server.kib("VmRSS")
            peak[0] = max(peak[0], rss)
            if rss > memory_limit_mib * 1024:
                killed.set()
                server.stop()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        stats = _loadgen(
            server.port, [path], work, "--clients", str(clients), "--once", "--timeout", "600"
        )
    finally:
        hwm = server.kib("VmHWM")
        finished.set()
        watcher.join()
    stats["peak_rss_kib"] = max(peak[0], hwm)
    stats["killed_over_limit_mib"] = memory_limit_mib if killed.is_set() else None
    return stats
