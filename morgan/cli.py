"""The command line: ``morgan [options] COMMAND [options]``.

Options may stand before or after the command, as scripts written for Morgan do
both. Only this module prints; errors a user can meet become one line and an
exit status (2 for configuration and usage, 1 for a run that left something
out, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from morgan import __version__
from morgan.config import MirrorConfig
from morgan.errors import MorganError
from morgan.generate import MODES, environment_block, requirements_block
from morgan.index import DEFAULT_INDEX_URL, IndexClient, normalize_index_url
from morgan.lock import IndexLock
from morgan.mirror import Mirrorer, MirrorOptions, copy_server
from morgan.progress import LiveLine, Progress, format_size
from morgan.selection import DEFAULT_PACKAGE_TYPE_REGEX, SelectionOptions

COMMANDS = ("mirror", "serve", "copy_server", "generate_env", "generate_reqs", "version")
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_JOBS = 32


def _index_url(value: str) -> str:
    try:
        return normalize_index_url(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _jobs(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 64")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError("must be a number of seconds from 0 to 3600")
    return seconds


def _add_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Every option, on the main parser (with defaults) and on each command (without)."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    add = parser.add_argument
    add(
        "-i", "--index-path", default=default(str(Path.cwd())), help="the index folder (default: .)"
    )
    add("-c", "--config", default=default(None), help="config file (default: INDEX/morgan.ini)")
    add(
        "-I",
        "--index-url",
        type=_index_url,
        default=default(DEFAULT_INDEX_URL),
        help=f"upstream simple index (default: {DEFAULT_INDEX_URL})",
    )
    add(
        "-a",
        "--mirror-all-versions",
        action="store_true",
        default=default(False),
        help="mirror every matching version of the [requirements] (dependencies: newest only)",
    )
    add(
        "-W",
        "--mirror-all-wheels",
        action="store_true",
        default=default(False),
        help="mirror every compatible wheel of a version, not only the best one per environment",
    )
    add(
        "--package-type-regex",
        default=default(DEFAULT_PACKAGE_TYPE_REGEX),
        help=f"file endings to mirror, as a regex (default: {DEFAULT_PACKAGE_TYPE_REGEX})",
    )
    add(
        "--skip-server-copy",
        action="store_true",
        default=default(False),
        help="do not copy server.py into the index",
    )
    add(
        "-j",
        "--jobs",
        type=_jobs,
        default=default(DEFAULT_JOBS),
        help=f"parallel requests (default: {DEFAULT_JOBS})",
    )
    add(
        "--verify",
        action="store_true",
        default=default(False),
        help="mirror: re-hash every file already in the index instead of trusting unchanged ones",
    )
    add("-v", "--verbose", action="store_true", default=default(False), help="say more")
    add("-q", "--quiet", action="store_true", default=default(False), help="errors only")
    add("-e", "--env", default=default("local"), help="generate_env: the environment's name")
    add(
        "-m", "--mode", choices=MODES, default=default(">="), help="generate_reqs: version operator"
    )
    add("-H", "--host", default=default("0.0.0.0"), help="serve: address to listen on")  # noqa: S104
    add("-p", "--port", type=int, default=default(8080), help="serve: port (default: 8080)")
    add("--no-metadata", action="store_true", default=default(False), help="serve: no PEP 658")
    add("--certfile", default=default(None), help="serve: TLS certificate (PEM)")
    add("--keyfile", default=default(None), help="serve: TLS private key (PEM)")
    add("--auth-file", default=default(None), help="serve: basic-auth password file")
    add(
        "--threads",
        type=int,
        default=default(8),
        help="serve: threads that build answers (default: 8)",
    )
    add(
        "--max-connections",
        type=int,
        default=default(1000),
        help="serve: open connections at most (default: 1000)",
    )
    add(
        "--timeout",
        type=_seconds,
        default=default(60.0),
        help="seconds to wait for a silent peer: the index (mirror) or a client (serve)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="morgan", description="A PyPI mirror for restricted and air-gapped networks."
    )
    _add_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    helps = {
        "mirror": "download everything morgan.ini asks for into the index",
        "serve": "serve the index to pip and uv",
        "copy_server": "copy server.py into the index",
        "generate_env": "print an [env.NAME] block for this interpreter",
        "generate_reqs": "print a [requirements] block for the installed distributions",
        "version": "print morgan's version",
    }
    for command in COMMANDS:
        _add_options(commands.add_parser(command, help=helps[command]), defaults=False)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("morgan")
    root.handlers.clear()
    root.setLevel(level)
    root.propagate = False
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    if not verbose:
        logging.getLogger("urllib3").setLevel(logging.ERROR)


def _mirror(args: argparse.Namespace) -> int:
    index_path = Path(args.index_path).resolve()
    config = MirrorConfig.from_file(args.config or str(index_path / "morgan.ini"))
    client = IndexClient(
        args.index_url,
        connections=args.jobs,
        connect_timeout=min(args.timeout, 10.0),
        read_timeout=args.timeout,
    )
    progress = Progress()
    live = LiveLine(progress, sys.stderr) if sys.stderr.isatty() and not args.quiet else None
    if live is not None:
        for handler in logging.getLogger("morgan").handlers:
            handler.addFilter(live.log_filter)
    options = MirrorOptions(
        index_path=index_path,
        jobs=args.jobs,
        verify=args.verify,
        progress=progress,
        on_tick=live.tick if live else None,
        selection=SelectionOptions(
            all_versions=args.mirror_all_versions,
            all_wheels=args.mirror_all_wheels,
            package_type_regex=args.package_type_regex,
        ),
    )
    index_path.mkdir(parents=True, exist_ok=True)
    with IndexLock(index_path):
        try:
            report = Mirrorer(config, client, options).run()
        finally:
            client.close()
            if live is not None:
                live.clear()
        if not args.skip_server_copy:
            copy_server(index_path)
    print(
        f"mirrored {len(report.projects)} projects, {len(report.files)} files: "
        f"{report.downloaded} downloaded ({format_size(report.bytes_downloaded)}), "
        f"{report.reused} already present ({format_size(report.bytes_reused)}); "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
        + (":" if report.errors or report.warnings else "")
    )
    # said as they happened, in whatever order the work finished; here sorted, for diffs
    for message in sorted(report.errors):
        print(f"  error: {message}")
    for message in sorted(report.warnings):
        print(f"  warning: {message}")
    return EXIT_OK if report.ok else EXIT_INCOMPLETE


def _serve(args: argparse.Namespace) -> int:
    from morgan import server  # noqa: PLC0415 - the server is standalone; load it only to serve

    argv = ["-i", args.index_path, "-H", args.host, "-p", str(args.port)]
    argv += ["--timeout", str(args.timeout), "--threads", str(args.threads)]
    argv += ["--max-connections", str(args.max_connections)]
    if args.no_metadata:
        argv.append("--no-metadata")
    if args.quiet:
        argv.append("--quiet")
    for flag, value in (
        ("--certfile", args.certfile),
        ("--keyfile", args.keyfile),
        ("--auth-file", args.auth_file),
    ):
        if value:
            argv += [flag, value]
    return int(server.main(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        if args.command == "version":
            print(f"morgan {__version__}")
        elif args.command == "generate_env":
            sys.stdout.write(environment_block(args.env))
        elif args.command == "generate_reqs":
            sys.stdout.write(requirements_block(args.mode))
        elif args.command == "copy_server":
            print(f"copied {copy_server(Path(args.index_path).resolve())}")
        elif args.command == "serve":
            return _serve(args)
        else:
            return _mirror(args)
    except MorganError as error:
        print(f"morgan: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ValueError) else EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("morgan: interrupted; run the same command again to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        print(f"morgan: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


def entry_point() -> None:
    code = main()
    # The work is over: an interrupt while the interpreter winds down changes nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
