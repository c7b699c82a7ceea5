"""A load generator for the mirror servers, run as its own process.

``python loadgen.py --port P --paths FILE --clients 50 --duration 10`` keeps 50
clients busy for 10 s, each cycling through the URL paths in FILE over one
keep-alive connection (a new one whenever the server closes it), and prints a
JSON summary. ``--once`` makes every client fetch the first path once, all
starting together. Bodies are read into a scratch buffer and thrown away.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time

#: What pip 24 sends for a project page.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
USER_AGENT = "pip/24.0 (morgan benchmark)"


class Client:
    """One HTTP/1.1 connection, re-opened when the server closes it."""

    def __init__(self, host: str, port: int, accept: str, timeout: float) -> None:
        self.host, self.port, self.accept, self.timeout = host, port, accept, timeout
        self.sock: socket.socket | None = None
        self.reader = None
        self.scratch = bytearray(1024 * 1024)

    def get(self, path: str) -> tuple[int, int]:
        """(status, body bytes) of one GET; retries once on a stale keep-alive connection."""
        for attempt in (1, 2):
            fresh = self.sock is None
            if fresh:
                self._connect()
            try:
                return self._exchange(path)
            except (ConnectionError, EOFError):
                self.close()
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb", buffering=64 * 1024)

    def close(self) -> None:
        if self.sock is not None:
            self.reader.close()
            self.sock.close()
        self.sock = self.reader = None

    def _exchange(self, path: str) -> tuple[int, int]:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"User-Agent: {USER_AGENT}\r\nAccept: {self.accept}\r\n"
            "Accept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        status_line = self.reader.readline()
        if not status_line:
            raise EOFError("connection closed before the status line")
        version, status = status_line.split(b" ", 2)[:2]
        headers = {}
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep = connection != "close" and (version == b"HTTP/1.1" or connection == "keep-alive")
        if "content-length" in headers:
            size = self._drain(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            size = self._drain_chunked()
        elif int(status) in (204, 304) or 100 <= int(status) < 200:
            size = 0
        else:
            size, keep = self._drain(None), False
        if not keep:
            self.close()
        return int(status), size

    def _drain(self, length: int | None) -> int:
        view = memoryview(self.scratch)
        total = 0
        while length is None or total < length:
            want = len(view) if length is None else min(len(view), length - total)
            got = self.reader.readinto(view[:want])
            if not got:
                if length is None:
                    break
                raise EOFError("body cut short")
            total += got
        return total

    def _drain_chunked(self) -> int:
        total = 0
        while True:
            size = int(self.reader.readline().split(b";")[0], 16)
            if size == 0:
                while self.reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return total
            total += self._drain(size)
            self.reader.readline()


def run(args: argparse.Namespace, paths: list[str]) -> dict:
    """Drive the clients; rates count only what completed within the window."""
    stats: dict = {"requests": 0, "in_window": 0, "errors": 0, "bytes": 0, "statuses": {}}
    latencies: list[float] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(args.clients + 1)
    deadline = [0.0]

    def worker(number: int) -> None:
        client = Client(args.host, args.port, args.accept, args.timeout)
        mine = {"requests": 0, "in_window": 0, "errors": 0, "bytes": 0}
        statuses: dict[str, int] = {}
        times: list[float] = []
        start_gate.wait()
        position = number * 7919 % len(paths)
        while not (args.once and mine["requests"] + mine["errors"]):
            began = time.monotonic()
            if not args.once and began >= deadline[0]:
                break
            try:
                status, size = client.get(paths[position])
            except OSError:
                mine["errors"] += 1
                client.close()
                continue
            ended = time.monotonic()
            times.append(ended - began)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status in (200, 206):
                mine["requests"] += 1
                mine["in_window"] += ended <= deadline[0]
                mine["bytes"] += size
            else:
                mine["errors"] += 1
            position = (position + 1) % len(paths)
        client.close()
        with lock:
            for key, value in mine.items():
                stats[key] += value
            for key, count in statuses.items():
                stats["statuses"][key] = stats["statuses"].get(key, 0) + count
            latencies.extend(times)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline[0] = started + args.duration
    start_gate.wait()
    for thread in threads:
        thread.join()
    stats["seconds"] = time.monotonic() - started
    window = stats["seconds"] if args.once else args.duration
    stats["per_second"] = (stats["requests"] if args.once else stats["in_window"]) / window
    latencies.sort()
    if latencies:
        stats["p50_ms"] = latencies[len(latencies) // 2] * 1000
        stats["p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
        stats["max_ms"] = latencies[-1] * 1000
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paths", required=True, help="a file with one URL path a line")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--accept", default=PIP_ACCEPT)
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="connect/read timeout (pip's default: 15 s)"
    )
    args = parser.parse_args(argv)
    with open(args.paths) as stream:
        paths = [line.strip() for line in stream if line.strip()]
    print(json.dumps(run(args, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
