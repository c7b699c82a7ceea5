"""Facts about the machine the figures come from, and the probes that bound a run.

The loopback probe reads one big file from the upstream with a plain socket; the
disk probe writes and fsyncs where the trees go. Together with the latency they
say how fast a cold mirror could possibly be on this machine.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from fakepypi import control
from runner import clean_environment

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            names = [
                line.split(":", 1)[1].strip() for line in stream if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def loopback_throughput(upstream_url: str, path: str) -> tuple[float, int]:
    """(bytes per second, bytes) of one download read from a plain socket, from its first byte."""
    host, port = upstream_url.split("//", 1)[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        early = len(head) - head.index(b"\r\n\r\n") - 4
        view = memoryview(bytearray(4 * 1024 * 1024))
        started = time.perf_counter()
        total = 0
        while got := sock.recv_into(view):
            total += got
        elapsed = time.perf_counter() - started
    return total / elapsed, total + early


def disk_throughput(folder: Path, size: int = 256 * 1024 * 1024) -> float:
    """Bytes per second of writing ``size`` random bytes and fsyncing them, where trees go."""
    folder.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(4 * 1024 * 1024)
    probe = folder / ".disk-probe"
    started = time.perf_counter()
    with probe.open("wb") as out:
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - started
    probe.unlink()
    return size / elapsed


class Upstream:
    """The fake PyPI in its own process."""

    def __init__(self, tree: Path, logs: Path, *, unannounced_metadata: bool = False) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stderr = (logs / "upstream.err").open("ab")
        extra = ["--unannounced-metadata"] if unannounced_metadata else []
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "fakepypi.py"), "--root", str(tree), *extra],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=clean_environment(),
            start_new_session=True,
        )
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"upstream did not start: {line!r}; see {logs / 'upstream.err'}")
        self.url = line.split(" ", 1)[1]

    def latency(self, milliseconds: float) -> None:
        control(self.url, f"latency?ms={milliseconds}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.stderr.close()
