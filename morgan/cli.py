"""The command line: ``morgan [options] COMMAND [options]``.

Options may stand before or after the command, as scripts written for Morgan do
both. Only this module prints; errors a user can meet become one line and an
exit status (2 for configuration and usage, 1 for a run that left something
out, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from morgan import __version__
from morgan.allocator import leave_to_the_system, tune_allocator, tune_collector
from morgan.bundle import export_bundle
from morgan.config import MirrorConfig
from morgan.errors import MorganError, UsageError
from morgan.generate import MODES, environment_block, requirements_block
from morgan.index import DEFAULT_INDEX_URL, normalize_index_url, redact
from morgan.lock import IndexLock
from morgan.lockinput import read_lock
from morgan.manifest import MANIFEST, Manifest, chains
from morgan.mirror import Mirrorer, MirrorOptions, MirrorReport, Tally, copy_server
from morgan.progress import LiveLine, Progress, format_size
from morgan.prune import prune
from morgan.selection import DEFAULT_PACKAGE_TYPE_REGEX, SelectionOptions
from morgan.tls import tls_settings
from morgan.upload import (
    FAILED,
    SKIPPED,
    UPLOADED,
    Outcome,
    Registry,
    files_to_upload,
    missing,
    resolve_credentials,
    upload_files,
)
from morgan.upstreams import TREE_ORIGIN, Upstreams, make_upstreams

COMMANDS = (
    "mirror",
    "serve",
    "copy_server",
    "generate_env",
    "generate_reqs",
    "version",
    "verify",
    "why",
    "export",
    "prune",
    "upload",
)
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


def _port(value: str) -> int:
    # never echoes the value: twine users type `upload -p TOKEN`, and -p is the port here
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(
            "must be a port number (upload takes its password as --password)"
        )
    return int(value)


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
    add(
        "--dry-run",
        action="store_true",
        default=default(False),
        help="mirror, prune, upload: say what would change, and change nothing",
    )
    add(
        "--lock",
        action="append",
        default=default(None),
        metavar="FILE",
        help="mirror: also mirror exactly what this lock file pins (pylock.toml, uv.lock, "
        "or a hashed requirements.txt); repeatable",
    )
    add(
        "--since",
        default=default(None),
        metavar="OLD_MANIFEST",
        help="export, upload: only what changed since this manifest (default: everything)",
    )
    add("-o", "--output", default=default(None), help="export: the bundle to write (a .tar)")
    add(
        "--quarantine",
        default=default(None),
        metavar="DIR",
        help="verify: move corrupt and unlisted files into DIR (outside the index)",
    )
    add(
        "--repository-url",
        default=default(None),
        metavar="URL",
        help="upload: the registry's upload address (twine's --repository-url)",
    )
    add("-u", "--username", default=default(None), help="upload: the registry user")
    add(
        "--password",
        default=default(None),
        help="upload: the password or token (default: $MORGAN_UPLOAD_PASSWORD, the URL, ~/.netrc)",
    )
    add(
        "--skip-existing",
        action="store_true",
        default=default(False),
        help="upload: a file the registry already has counts as done, not as an error",
    )
    add("-v", "--verbose", action="store_true", default=default(False), help="say more")
    add("-q", "--quiet", action="store_true", default=default(False), help="errors only")
    add(
        "--cert",
        default=default(None),
        metavar="CA_BUNDLE",
        help="PEM bundle of the CAs to trust for upstream HTTPS (default: $PIP_CERT, "
        "$REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE, $SSL_CERT_FILE, else the system's)",
    )
    add(
        "--client-cert",
        default=default(None),
        metavar="PEM",
        help="client certificate and its key, in one PEM file, for upstream HTTPS",
    )
    add("-e", "--env", default=default("local"), help="generate_env: the environment's name")
    add(
        "-m", "--mode", choices=MODES, default=default(">="), help="generate_reqs: version operator"
    )
    add("-H", "--host", default=default("0.0.0.0"), help="serve: address to listen on")  # noqa: S104
    add("-p", "--port", type=_port, default=default(8080), help="serve: port (default: 8080)")
    add("--no-metadata", action="store_true", default=default(False), help="serve: no PEP 658")
    add("--certfile", default=default(None), help="serve: TLS certificate (PEM)")
    add("--keyfile", default=default(None), help="serve: TLS private key (PEM)")
    add("--auth-file", default=default(None), help="serve: basic-auth password file")
    add(
        "--upload",
        action="store_true",
        default=default(False),
        help="serve: take twine uploads from the users of --auth-file",
    )
    add(
        "--max-upload-size",
        default=default(None),
        metavar="SIZE",
        help="serve: the largest upload (default 1G; K, M, G suffixes)",
    )
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
        "verify": "check every file of the index against its manifest.json",
        "why": "print the chains that pulled a project into the mirror",
        "export": "write a bundle (tar) of the index, or of what changed since a manifest",
        "prune": "remove the distributions the configuration no longer needs",
        "upload": "push the index's distributions into a package registry (as twine does)",
    }
    for command in COMMANDS:
        sub = commands.add_parser(command, help=helps[command])
        _add_options(sub, defaults=False)
        if command == "why":
            sub.add_argument("project", help="the project's name")
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
    tune_allocator()  # before the pool's threads exist
    tune_collector()
    index_path = Path(args.index_path).resolve()
    config = MirrorConfig.from_file(args.config or str(index_path / "morgan.ini"))
    upstreams = make_upstreams(
        config,
        index_path,
        args.index_url,
        tls=tls_settings(args.cert, args.client_cert),
        client_options={
            "connections": args.jobs,
            "connect_timeout": min(args.timeout, 10.0),
            "read_timeout": args.timeout,
        },
    )
    progress = Progress()
    live = LiveLine(progress, sys.stderr) if sys.stderr.isatty() and not args.quiet else None
    if live is not None:
        for handler in logging.getLogger("morgan").handlers:
            handler.addFilter(live.log_filter)
    locks = tuple(read_lock(path) for path in args.lock or ())
    options = MirrorOptions(
        index_path=index_path,
        locks=locks,
        dry_run=args.dry_run,
        jobs=args.jobs,
        verify=args.verify,
        progress=progress,
        on_tick=live.tick if live else None,
        copy_server=not args.skip_server_copy,
        selection=SelectionOptions(
            all_versions=args.mirror_all_versions,
            all_wheels=args.mirror_all_wheels,
            package_type_regex=args.package_type_regex,
        ),
    )
    try:
        with _interrupts_between_waits() as interrupt:
            options = dataclasses.replace(options, interrupt=interrupt)
            if args.dry_run:  # reads the tree, writes nothing: no lock either
                report = Mirrorer(config, upstreams, options).run()
            else:
                index_path.mkdir(parents=True, exist_ok=True)
                with IndexLock(index_path):
                    report = Mirrorer(config, upstreams, options).run()
    finally:
        upstreams.close()
        if live is not None:
            live.clear()
    if report.dry_run is not None:
        _print_dry_run(index_path, report)
        return EXIT_OK if report.ok else EXIT_INCOMPLETE
    print(
        f"mirrored {len(report.projects)} projects, {len(report.files)} files: "
        f"{report.downloaded} downloaded ({format_size(report.bytes_downloaded)}), "
        f"{report.reused} already present ({format_size(report.bytes_reused)}); "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings"
        + (":" if report.errors or report.warnings else "")
    )
    # said as they happened, in whatever order the work finished; here sorted, for diffs
    if upstreams.several:
        _print_origins(upstreams, report)
    for message in sorted(report.errors):
        print(f"  error: {message}")
    for message in sorted(report.warnings):
        print(f"  warning: {message}")
    return EXIT_OK if report.ok else EXIT_INCOMPLETE


@contextlib.contextmanager
def _interrupts_between_waits() -> Iterator[threading.Event]:
    """Ctrl-C during a mirror run: an event the run checks where it waits, so the
    KeyboardInterrupt is raised there rather than inside whatever lock the signal
    happens to land in (a second Ctrl-C raises at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield threading.Event()  # signals reach the main thread only (tests run in-process)
        return
    interrupt = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if interrupt.is_set():
            raise KeyboardInterrupt
        interrupt.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_origins(upstreams: Upstreams, report: MirrorReport) -> None:
    """Where each mirrored project came from, when there is more than one place."""
    by_origin: dict[str, list[str]] = {}
    for project, origin in upstreams.origins().items():
        if project in report.projects:
            by_origin.setdefault(origin, []).append(project)
    urls = upstreams.names()
    for origin in [*urls, TREE_ORIGIN]:
        if origin in by_origin:
            where = f"{origin} ({urls[origin]})" if origin in urls else "the tree's uploads"
            print(f"  from {where}: {', '.join(sorted(by_origin[origin]))}")


def _tally(tally: Tally) -> str:
    unknown = f", {tally.unknown} of unknown size" if tally.unknown else ""
    return f"{tally.files} files ({format_size(tally.bytes)}{unknown})"


def _print_dry_run(index_path: Path, report: MirrorReport) -> None:
    dry = report.dry_run
    assert dry is not None
    print(f"dry run: nothing written to {index_path}")
    for env, (added, kept, projects) in sorted(dry.environments.items()):
        print(f"  {env}: {len(projects)} projects; add {_tally(added)}, keep {_tally(kept)}")
    print(
        f"  in all: {len(report.projects)} projects; add {_tally(dry.added)}, "
        f"keep {_tally(dry.kept)}; no longer needed: {_tally(dry.unneeded)}"
    )
    for filename, size in dry.read_for_metadata:
        print(
            f"  metadata read from the file (downloaded, then discarded): {filename} "
            f"({format_size(size)})"
        )
    if report.errors or report.warnings:
        print(f"{len(report.errors)} errors, {len(report.warnings)} warnings:")
    for message in sorted(report.errors):
        print(f"  error: {message}")
    for message in sorted(report.warnings):
        print(f"  warning: {message}")


def _verify(args: argparse.Namespace) -> int:
    from morgan import server  # noqa: PLC0415 - the offline side's own verify, the same code

    argv = ["verify", "-i", args.index_path]
    if args.quarantine:
        argv += ["--quarantine", args.quarantine]
    return int(server.main(argv))


def _why(args: argparse.Namespace) -> int:
    index_path = Path(args.index_path).resolve()
    listed = Manifest.load(index_path / MANIFEST)
    found = chains(listed, args.project)
    if not found:
        known = any(f.project == canonicalize_name(args.project) for f in listed.files.values())
        state = "is in the mirror but no longer needed" if known else "is not in the mirror"
        print(f"morgan: {args.project} {state} (see {MANIFEST})", file=sys.stderr)
        return EXIT_INCOMPLETE
    for env, lines in found.items():
        print(f"{env}:")
        for line in lines:
            print(f"  {line}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    if not args.output:
        raise UsageError("export needs -o BUNDLE.tar (the bundle to write)")
    index_path = Path(args.index_path).resolve()
    with IndexLock(index_path):
        written = export_bundle(
            index_path, Path(args.output), since=Path(args.since) if args.since else None
        )
    print(
        f"wrote {written.path}: {written.members} files ({format_size(written.content_bytes)}), "
        f"{written.removed} removed; size {written.size} bytes, sha256 {written.sha256}"
    )
    return EXIT_OK


def _upload(args: argparse.Namespace) -> int:
    if not args.repository_url:
        raise UsageError("upload needs --repository-url URL (the registry's upload address)")
    if args.since and not Path(args.since).is_file():
        raise UsageError(f"--since {args.since}: no such manifest file")
    url, credentials = resolve_credentials(args.repository_url, args.username, args.password)
    index_path = Path(args.index_path).resolve()
    files = files_to_upload(index_path, Path(args.since) if args.since else None)
    size = format_size(sum(listed.size for listed in files))
    if args.dry_run:
        print(f"dry run: nothing sent to {redact(url)}")
        problems = [(listed.path, missing(index_path, listed)) for listed in files]
        for listed in files:
            print(f"  would upload {listed.path} ({format_size(listed.size)})")
        print(f"would upload {len(files)} files ({size})")
        for path, problem in problems:
            if problem:
                print(f"  error: {path}: {problem}")
        return EXIT_INCOMPLETE if any(problem for _, problem in problems) else EXIT_OK

    def said(outcome: Outcome) -> None:
        path, detail = outcome.file.path, f": {outcome.detail}" if outcome.detail else ""
        if outcome.result == FAILED:
            print(f"morgan: {path}{detail}", file=sys.stderr)
        elif not args.quiet:
            print(f"{outcome.result} {path} ({format_size(outcome.file.size)}){detail}")

    registry = Registry(
        url,
        credentials,
        tls=tls_settings(args.cert, args.client_cert),
        timeout=args.timeout,
    )
    try:
        outcomes = upload_files(
            index_path, registry, files, skip_existing=args.skip_existing, report=said
        )
    finally:
        registry.close()
    done = [o for o in outcomes if o.result == UPLOADED]
    failed = sorted(f"{o.file.path}: {o.detail}" for o in outcomes if o.result == FAILED)
    skipped = sum(o.result == SKIPPED for o in outcomes)
    print(
        f"uploaded {len(done)} files ({format_size(sum(o.file.size for o in done))}) to "
        f"{redact(url)}; skipped {skipped} (already there); failed {len(failed)}"
        + (":" if failed else "")
    )
    for message in failed:
        print(f"  error: {message}")
    return EXIT_INCOMPLETE if failed else EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    index_path = Path(args.index_path).resolve()
    config = MirrorConfig.from_file(args.config or str(index_path / "morgan.ini"))
    if args.dry_run:
        gone = prune(index_path, config, dry_run=True)
    else:
        with IndexLock(index_path):
            gone = prune(index_path, config, dry_run=False)
    verb = "would remove" if args.dry_run else "removed"
    for listed in gone:
        print(f"  {listed.path} ({format_size(listed.size)})")
    size = format_size(sum(listed.size for listed in gone))
    print(f"{verb} {len(gone)} files no longer needed ({size})")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from morgan import server  # noqa: PLC0415 - the server is standalone; load it only to serve

    argv = ["-i", args.index_path, "-H", args.host, "-p", str(args.port)]
    argv += ["--timeout", str(args.timeout), "--threads", str(args.threads)]
    argv += ["--max-connections", str(args.max_connections)]
    if args.no_metadata:
        argv.append("--no-metadata")
    if args.quiet:
        argv.append("--quiet")
    if args.upload:
        argv.append("--upload")
    for flag, value in (
        ("--certfile", args.certfile),
        ("--keyfile", args.keyfile),
        ("--auth-file", args.auth_file),
        ("--max-upload-size", args.max_upload_size),
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
        elif args.command == "verify":
            return _verify(args)
        elif args.command == "why":
            return _why(args)
        elif args.command == "export":
            return _export(args)
        elif args.command == "prune":
            return _prune(args)
        elif args.command == "upload":
            return _upload(args)
        else:
            return _mirror(args)
    except MorganError as error:
        print(f"morgan: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ValueError) else EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("morgan: interrupted; run the same command again to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`morgan why x | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INCOMPLETE
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"morgan: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_OK


def entry_point() -> None:
    code = main()
    # The work is over: an interrupt while the interpreter winds down changes nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    leave_to_the_system()
    sys.exit(code)
