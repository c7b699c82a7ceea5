"""Several upstream indexes, private names, uploads kept, and corporate TLS (``morgan mirror``).

Two local fixture indexes stand for a company's private index and PyPI. A name
on both is the dependency-confusion case: whatever the public one offers under
it must never reach the tree unless the configuration says so.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib
import trustme
from builders import build_wheel
from packaging.utils import canonicalize_name
from support import ENVIRONMENTS, clean_client_env, skip_unless_ci, write_config
from upstream import FixtureIndex

from morgan.config import MirrorConfig
from morgan.errors import ConfigError

pytestmark = pytest.mark.usefixtures("quick_backoff")

ONE_ENV = {"linux312": ENVIRONMENTS["linux312"]}


def files_in(index: Path, project: str) -> set[str]:
    folder = index / project
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.name.endswith((".whl", ".tar.gz"))}


def pages_asked(upstream: FixtureIndex) -> set[str]:
    return {p.split("/")[2] for p in upstream.requests if p.startswith("/simple/")}


def config_with(index: Path, requirements: str, sections: str = "") -> Path:
    path = write_config(index / "morgan.ini", ONE_ENV, requirements)
    path.write_text(path.read_text() + "\n" + sections)
    return path


def mirror(run_morgan, index: Path, public: FixtureIndex, *args: str):  # type: ignore[no-untyped-def]
    return run_morgan("-i", str(index), "-I", public.url, "mirror", "--skip-server-copy", *args)


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    return tmp_path / "dists"


@pytest.fixture
def public(dists: Path) -> Iterator[FixtureIndex]:
    """PyPI, where someone published the company's private names with high versions."""
    with FixtureIndex() as index:
        index.add(build_wheel(dists / "public", "corp-utils", "99.0"))
        index.add(build_wheel(dists / "public", "shared", "1.0"))
        index.add(build_wheel(dists / "public", "app", "1.0", requires=["shared", "corp-utils"]))
        index.add(build_wheel(dists / "public", "helper", "2.0"))
        yield index


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> Path:
    """The company's CA, which signs the private index's certificate."""
    path = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def private(dists: Path, ca: trustme.CA) -> Iterator[FixtureIndex]:
    """The company's index, over HTTPS with a certificate of its own CA."""
    with FixtureIndex(tls=server_context(ca)) as index:
        index.add(build_wheel(dists / "private", "corp-utils", "1.0", requires=["helper"]))
        index.add(build_wheel(dists / "private", "shared", "9.0"))
        yield index


# -- several indexes -------------------------------------------------------------------------


def test_a_pinned_project_comes_from_its_index_only(  # type: ignore[no-untyped-def]
    run_morgan, tmp_path, *, public, private, ca_bundle
) -> None:
    index = tmp_path / "index"
    config_with(
        index,
        "app =",
        f"[index.corp]\nurl = {private.url}\nprojects = corp-utils\nexplicit = yes\n"
        f"cert = {ca_bundle}\n",
    )
    result = mirror(run_morgan, index, public)
    assert result.code == 0, result
    assert files_in(index, "corp-utils") == {"corp_utils-1.0-py3-none-any.whl"}
    assert "corp-utils" not in pages_asked(public)  # never even asked for
    # explicit: nothing else is looked up there; shared and helper come from the public index
    assert pages_asked(private) == {"corp-utils"}
    assert files_in(index, "shared") == {"shared-1.0-py3-none-any.whl"}
    assert f"from corp ({private.url}): corp-utils" in result.out
    assert f"from default ({public.url}): app, helper, shared" in result.out
    listed = json.loads((index / "manifest.json").read_text())
    assert listed["indexes"] == {"corp": private.url, "default": public.url}
    assert listed["files"]["corp-utils/corp_utils-1.0-py3-none-any.whl"]["index"] == "corp"
    assert listed["files"]["app/app-1.0-py3-none-any.whl"]["index"] == "default"
    # real pip, reading the tree alone, installs the private corp-utils, not PyPI's 99.0
    assert pip_download(index, ["app"], tmp_path / "got") == {
        "app": "1.0",
        "corp-utils": "1.0",
        "helper": "2.0",
        "shared": "1.0",
    }


def test_an_unpinned_project_comes_from_the_first_index_that_has_it_never_merged(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    private: FixtureIndex,
    ca_bundle: Path,
) -> None:
    index = tmp_path / "index"
    corp = f"[index.corp]\nurl = {private.url}\ncert = {ca_bundle}\n"
    config_with(index, "shared =\nhelper =", corp)
    result = mirror(run_morgan, index, public)
    assert result.code == 0, result
    assert files_in(index, "shared") == {"shared-9.0-py3-none-any.whl"}  # the first index's
    assert "shared" not in pages_asked(public)
    assert files_in(index, "helper") == {"helper-2.0-py3-none-any.whl"}  # not on corp: next

    # the first index's page is the whole story: a version only the next one has is no answer
    config_with(index, "shared = <2", corp)
    result = mirror(run_morgan, index, public)
    assert result.code == 1, result
    assert "shared" in result.out and "<2" in result.out
    assert "shared-1.0-py3-none-any.whl" not in files_in(index, "shared")


def test_an_index_that_fails_is_not_skipped_for_the_next(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    public: FixtureIndex,
    dists: Path,
) -> None:
    """Only "not found" moves on: a private index refusing us must not hand the name to PyPI."""
    with FixtureIndex(auth=("alice", "s3cret")) as locked:
        locked.add(build_wheel(dists / "locked", "corp-utils", "1.0"))
        index = tmp_path / "index"
        config_with(index, "corp-utils =", f"[index.corp]\nurl = {locked.url}\n")
        result = mirror(run_morgan, index, public)
    assert result.code == 1, result
    assert "HTTP 401" in result.out
    assert "corp-utils" not in pages_asked(public)
    assert not files_in(index, "corp-utils")


def test_credentials_come_from_the_variables_a_section_names(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    public: FixtureIndex,
    dists: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FixtureIndex(auth=("alice", "s3cret/+@")) as locked:
        locked.add(build_wheel(dists / "locked", "corp-utils", "1.0"))
        index = tmp_path / "index"
        section = f"[index.corp]\nurl = {locked.url}\nusername = alice\npassword-env = CORP_TOKEN\n"
        config_with(index, "corp-utils =", section)

        monkeypatch.delenv("CORP_TOKEN", raising=False)
        result = mirror(run_morgan, index, public)
        assert result.code == 2, result
        assert result.err.strip() == (
            "morgan: [index.corp] password-env names CORP_TOKEN, which is not set; "
            "set it before running morgan"
        )

        monkeypatch.setenv("CORP_TOKEN", "s3cret/+@")
        result = mirror(run_morgan, index, public)
    assert result.code == 0, result
    assert files_in(index, "corp-utils") == {"corp_utils-1.0-py3-none-any.whl"}
    assert "s3cret" not in result.out + result.err
    assert "s3cret" not in (index / "manifest.json").read_text()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("url = https://alice:hunter2@corp.example/simple/\n", "url: holds a password"),
        ("url = https://corp.example/simple/\npassword = hunter2\n", "password: a secret is never"),
        ("url = ftp://corp.example/simple/\n", "is not an http(s) URL"),
        ("url = https://corp.example:99999/simple/\n", "is not an http(s) URL"),
        ("projects = a\n", "no url"),
        ("url = https://corp.example/simple/\nexplicit = yes\n", "pins no project"),
        ("url = https://corp.example/simple/\ncolour = blue\n", "unknown key 'colour'"),
        ("url = https://corp.example/simple/\nexplicit = perhaps\n", "neither yes nor no"),
        ("url = https://corp.example/simple/\nprojects = ../etc\n", "is not a project name"),
        ("url = https://corp.example/simple/\nusername = me  # me\n", "username: has a comment"),
    ],
)
def test_index_sections_that_cannot_work_are_one_line(
    tmp_path: Path, section: str, message: str
) -> None:
    path = config_with(tmp_path, "app =", f"[index.corp]\n{section}")
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_one_project_cannot_be_pinned_to_two_indexes(tmp_path: Path) -> None:
    sections = (
        "[index.a]\nurl = https://a.example/simple/\nprojects = Corp_Utils\n"
        "[index.b]\nurl = https://b.example/simple/\nprojects = corp-utils\n"
    )
    with pytest.raises(ConfigError, match=r"corp-utils is pinned to both \[index.a\] and"):
        MirrorConfig.from_file(str(config_with(tmp_path, "app =", sections)))


def test_a_bare_name_in_requirements_is_still_refused_with_its_line(tmp_path: Path) -> None:
    path = config_with(tmp_path, "app =\nrequests", "[private]\ncorp-utils\n")
    with pytest.raises(ConfigError, match=r"line \d+: 'requests' is not 'name = value'"):
        MirrorConfig.from_file(str(path))


# -- private names and uploads ---------------------------------------------------------------


def test_a_private_name_is_never_asked_of_an_index(run_morgan, tmp_path, public) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "index"
    config_with(index, "app =", "[private]\ncorp-utils =\nCorp.Secret\n")
    config = MirrorConfig.from_file(str(index / "morgan.ini"))
    assert config.private == {"corp-utils", "corp-secret"}
    result = mirror(run_morgan, index, public)
    assert result.code == 1, result
    assert "corp-utils is private" in result.out
    assert "upload it to server.py --upload, or pin it" in result.out
    assert "corp-utils" not in pages_asked(public)
    assert not files_in(index, "corp-utils")


def pip_download(index: Path, requirements: list[str], dest: Path) -> dict[str, str]:
    """What real pip for the linux312 environment downloads from the tree: {project: version}."""
    command = [
        sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir",
        "--disable-pip-version-check", "--index-url", index.as_uri() + "/",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.12",
        "--platform", "manylinux2014_x86_64", "-d", str(dest), *requirements,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_client_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = {}
    for path in dest.iterdir():
        name, version = path.name.split("-")[:2]
        found[canonicalize_name(name)] = version
    return found


def upload(index: Path, wheel: Path, uploader: str = "alice") -> Path:
    """Land a wheel the way ``server.py --upload`` does: sidecars, then the file."""
    import zipfile  # noqa: PLC0415

    folder = index / "corp-utils"
    folder.mkdir(parents=True, exist_ok=True)
    data = wheel.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    target = folder / wheel.name
    Path(f"{target}.hash").write_text(f"sha256={sha256}")
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        Path(f"{target}.metadata").write_bytes(archive.read(member))
    record = {"uploader": uploader, "upload-time": "2026-11-29T10:00:00Z", "sha256": sha256}
    record["size"] = len(data)
    Path(f"{target}.uploaded").write_text(json.dumps(record))
    target.write_bytes(data)
    return target


def test_an_uploaded_project_comes_from_the_tree_and_is_never_replaced_or_pruned(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    public: FixtureIndex,
    dists: Path,
) -> None:
    index = tmp_path / "index"
    uploaded = upload(index, build_wheel(dists / "mine", "corp-utils", "1.5", requires=["helper"]))
    before = (uploaded.read_bytes(), uploaded.stat().st_mtime_ns)
    config_with(index, "app =")
    result = mirror(run_morgan, index, public)
    assert result.code == 0, result
    assert files_in(index, "corp-utils") == {uploaded.name}  # not the public 99.0
    assert "corp-utils" not in pages_asked(public)
    assert files_in(index, "helper") == {"helper-2.0-py3-none-any.whl"}  # its dependency
    assert "from the tree's uploads: corp-utils" in result.out
    assert (uploaded.read_bytes(), uploaded.stat().st_mtime_ns) == before
    got = pip_download(index, ["app"], tmp_path / "got")
    assert got == {"app": "1.0", "corp-utils": "1.5", "helper": "2.0", "shared": "1.0"}
    page = json.loads((index / "corp-utils" / "index.json").read_text())
    assert [f["filename"] for f in page["files"]] == [uploaded.name]
    listed = json.loads((index / "manifest.json").read_text())
    entry = listed["files"][f"corp-utils/{uploaded.name}"]
    assert entry["index"] == "uploads"
    assert {"environment": "*", "reason": "upload", "uploader": "alice"}.items() <= entry["why"][
        0
    ].items()
    result = run_morgan("-i", str(index), "why", "corp-utils")
    assert "uploaded by alice at 2026-11-29T10:00:00Z" in result.out
    # the lock file names the index of what came from one, and none for the upload
    lock = tomllib.loads((index / "pylock.linux312.toml").read_text())
    indexes = {package["name"]: package.get("index") for package in lock["packages"]}
    assert indexes == {
        "app": public.url,
        "corp-utils": None,
        "helper": public.url,
        "shared": public.url,
    }

    # no requirement needs it any more: prune leaves it all the same
    config_with(index, "helper =")
    assert mirror(run_morgan, index, public).code == 0
    result = run_morgan("-i", str(index), "prune")
    assert result.code == 0, result
    assert (uploaded.read_bytes(), uploaded.stat().st_mtime_ns) == before
    assert not files_in(index, "app")


def test_a_pinned_index_never_replaces_an_upload_of_the_same_name(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    public: FixtureIndex,
    dists: Path,
) -> None:
    index = tmp_path / "index"
    uploaded = upload(index, build_wheel(dists / "mine", "corp-utils", "99.0", requires=["x"]))
    before = uploaded.read_bytes()
    # pinned: the config says this name comes from that index, which has other bytes for it
    config_with(index, "corp-utils =", f"[index.pypi]\nurl = {public.url}\nprojects = corp-utils\n")
    result = mirror(run_morgan, index, public)
    assert result.code == 1, result
    assert f"{uploaded.name} was uploaded to this mirror" in result.out
    assert uploaded.read_bytes() == before


# -- TLS -------------------------------------------------------------------------------------


def https_index(ca: trustme.CA, dists: Path, *, client_ca: trustme.CA | None = None):  # type: ignore[no-untyped-def]
    context = server_context(ca)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
        # TLS 1.2 refuses a missing client certificate in the handshake; TLS 1.3 only after
        # it, so a loaded machine may see the connection reset before the alert is read
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    index = FixtureIndex(tls=context)
    index.add(build_wheel(dists / "tls", "corp-utils", "1.0"))
    return index


def test_an_untrusted_certificate_is_one_line_naming_the_host_and_the_fix(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    dists: Path,
    ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    index = tmp_path / "index"
    with https_index(ca, dists) as secure:
        config_with(index, "corp-utils =", f"[index.corp]\nurl = {secure.url}\n")
        started = time.monotonic()
        result = mirror(run_morgan, index, public)
        elapsed = time.monotonic() - started
    assert result.code == 1, result
    errors = [line for line in result.out.splitlines() if "TLS:" in line]
    assert errors, result.out
    host = secure.url.split("/")[2]
    assert f"TLS: the certificate of {host} is not signed by the system's CA" in errors[0]
    assert "--cert CA_BUNDLE" in errors[0]
    assert "corp-utils" not in pages_asked(public)
    assert elapsed < 30  # refused at once, not after rounds of retries with backoff


@pytest.mark.parametrize(
    "how", ["section", "option", "SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE folder"]
)
def test_a_private_ca_is_trusted_when_named(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    dists: Path,
    ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    bundle = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    index = tmp_path / "index"
    args: tuple[str, ...] = ()
    with https_index(ca, dists) as secure:
        section = f"[index.corp]\nurl = {secure.url}\n"
        if how == "section":
            section += "cert = ../corp-ca.pem\n"  # relative to morgan.ini
        elif how == "option":
            args = ("--cert", str(bundle))
        elif how.endswith("folder"):  # requests takes a folder of hashed certificates
            if shutil.which("openssl") is None:
                skip_unless_ci("openssl names the certificates of a CA folder")
            subject_hash = subprocess.run(
                ["openssl", "x509", "-hash", "-noout", "-in", str(bundle)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            folder = tmp_path / "cas"
            folder.mkdir()
            (folder / f"{subject_hash}.0").write_bytes(bundle.read_bytes())
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(folder))
        else:
            monkeypatch.setenv(how, str(bundle))
        config_with(index, "corp-utils =", section)
        result = mirror(run_morgan, index, public, *args)
    assert result.code == 0, result
    assert files_in(index, "corp-utils") == {"corp_utils-1.0-py3-none-any.whl"}


def test_a_client_certificate_is_shown_when_asked_for(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    dists: Path,
    ca: trustme.CA,
    ca_bundle: Path,
) -> None:
    client_ca = trustme.CA()
    identity = tmp_path / "me.pem"
    client_ca.issue_cert("morgan@corp.example").private_key_and_cert_chain_pem.write_to_path(
        str(identity)
    )
    index = tmp_path / "index"
    with https_index(ca, dists, client_ca=client_ca) as secure:
        section = f"[index.corp]\nurl = {secure.url}\ncert = {ca_bundle}\n"
        config_with(index, "corp-utils =", section)
        result = mirror(run_morgan, index, public)
        assert result.code == 1, result
        assert "TLS:" in result.out and "client certificate" in result.out
        assert "--client-cert" in result.out
        result = mirror(run_morgan, index, public, "--client-cert", str(identity))
    assert result.code == 0, result
    assert files_in(index, "corp-utils") == {"corp_utils-1.0-py3-none-any.whl"}


def test_an_expired_certificate_says_so(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    dists: Path,
    ca: trustme.CA,
    ca_bundle: Path,
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    ca.issue_cert(
        "127.0.0.1", not_before=long_ago, not_after=long_ago + datetime.timedelta(days=1)
    ).configure_cert(context)
    index = tmp_path / "index"
    with FixtureIndex(tls=context) as expired:
        expired.add(build_wheel(dists / "old", "corp-utils", "1.0"))
        section = f"[index.corp]\nurl = {expired.url}\ncert = {ca_bundle}\n"
        config_with(index, "corp-utils =", section)
        result = mirror(run_morgan, index, public)
    assert result.code == 1, result
    host = expired.url.split("/")[2]
    assert f"TLS: the certificate of {host} has expired; the index must renew it" in result.out


@pytest.mark.parametrize(
    ("option", "content", "message"),
    [
        ("--cert", None, "does not exist"),
        ("--cert", b"not a certificate", "is not a PEM bundle of CA certificates"),
        ("--client-cert", b"-----BEGIN JUNK-----", "is not one PEM file with a certificate"),
    ],
)
def test_unusable_certificate_files_are_one_line_before_any_connection(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    option: str,
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "file.pem"
    if content is not None:
        path.write_bytes(content)
    index = tmp_path / "index"
    config_with(index, "app =")
    result = mirror(run_morgan, index, public, option, str(path))
    assert result.code == 2, result
    assert result.err.count("\n") == 1 and message in result.err and option in result.err
    assert not public.requests


def test_the_environment_variables_are_honoured_in_pips_order(tmp_path: Path) -> None:
    from morgan.tls import tls_settings  # noqa: PLC0415

    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    for path in (first, second):
        trustme.CA().cert_pem.write_to_path(str(path))
    environ = {"SSL_CERT_FILE": str(second), "REQUESTS_CA_BUNDLE": str(first)}
    settings = tls_settings(None, None, environ=environ)
    assert (settings.ca_bundle, settings.ca_bundle_from) == (str(first), "REQUESTS_CA_BUNDLE")
    settings = tls_settings(str(second), None, environ={"PIP_CERT": str(first)})
    assert (settings.ca_bundle, settings.ca_bundle_from) == (str(second), "--cert")
    assert tls_settings(None, None, environ={}).ca_bundle is None


# -- the router on its own -------------------------------------------------------------------


def test_tree_urls_never_reach_outside_the_tree(tmp_path: Path, dists: Path) -> None:
    from morgan.config import IndexSection  # noqa: PLC0415
    from morgan.errors import UpstreamError  # noqa: PLC0415
    from morgan.index import IndexClient  # noqa: PLC0415
    from morgan.upstreams import Upstreams  # noqa: PLC0415

    index = tmp_path / "index"
    uploaded = upload(index, build_wheel(dists / "mine", "corp-utils", "1.5"))
    Path(f"{uploaded}.metadata").unlink()  # dropped by hand: read from the wheel itself
    (tmp_path / "secret").write_text("no")
    default = IndexSection(name="default", url="http://127.0.0.1:9/simple/")
    upstreams = Upstreams([(default, IndexClient(default.url))], index)
    assert upstreams.from_tree == {"corp-utils"}
    page = upstreams.get_project_page("corp-utils").page
    (file,) = page.files
    assert file.url == uploaded.as_uri()
    assert upstreams.get_bytes(f"{file.url}.metadata", 10_000).startswith(b"Metadata-Version")
    assert upstreams.get_range(file.url, 0, 3) == (b"PK\x03\x04", uploaded.stat().st_size)
    (index / "other").mkdir()
    for url in ((tmp_path / "secret").as_uri(), (index / "other" / "x.whl").as_uri()):
        with pytest.raises(UpstreamError, match="refusing 'file' URL"):  # not the tree's own
            upstreams.get_bytes(url, 100)
    for url in (
        f"{index.as_uri()}/corp-utils/../../secret",
        f"{index.as_uri()}/corp-utils/../morgan.ini",
        f"{index.as_uri()}/corp-utils/%2e%2e/x.whl",
    ):
        with pytest.raises(UpstreamError, match="refusing 'file' URL"):
            upstreams.get_bytes(url, 100)
    with pytest.raises(UpstreamError, match="it is never downloaded"), upstreams.stream(file.url):
        pass
    assert upstreams.origins() == {"corp-utils": "uploads"}


def test_a_user_without_a_password_is_refused_before_any_request(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent without its password, a registry may answer 404 for a private project, which
    would hand the name on to the next index."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)
    index = tmp_path / "index"
    for section in (
        "[index.corp]\nurl = https://corp.example/simple/\nusername = alice\n",
        "[index.corp]\nurl = https://alice@corp.example/simple/\n",
    ):
        config_with(index, "corp-utils =", section)
        result = mirror(run_morgan, index, public)
        assert result.code == 2, result
        assert result.err.strip() == (
            "morgan: [index.corp] names the user alice but no password: name the variable "
            "that holds it with password-env, or add the host to ~/.netrc"
        )
    assert not public.requests
    (tmp_path / ".netrc").write_text("machine corp.example login bob password s3cret\n")
    (tmp_path / ".netrc").chmod(0o600)
    result = mirror(run_morgan, index, public)
    assert result.code == 2, result
    assert "names the user alice, but ~/.netrc has the login bob for its host" in result.err
    (tmp_path / ".netrc").write_text("machine corp.example login alice password s3cret\n")
    assert mirror(run_morgan, index, public, "--dry-run").code == 1  # on to the (absent) host


def test_files_nobody_uploaded_are_never_resolved_from_for_a_private_name(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    public: FixtureIndex,
    dists: Path,
) -> None:
    """corp-utils was mirrored from the public index before the name was made private:
    from then on only the upload counts, and the run says what is left to prune."""
    index = tmp_path / "index"
    config_with(index, "corp-utils =")
    assert mirror(run_morgan, index, public).code == 0
    assert files_in(index, "corp-utils") == {"corp_utils-99.0-py3-none-any.whl"}
    uploaded = upload(index, build_wheel(dists / "mine", "corp-utils", "1.5"))
    config_with(index, "corp-utils =", "[private]\ncorp-utils\n")
    result = mirror(run_morgan, index, public)
    assert result.code == 0, result
    assert "corp-utils comes from uploads only, yet its folder holds files nobody uploaded" in (
        result.out
    )
    lock = tomllib.loads((index / "pylock.linux312.toml").read_text())
    assert [(p["name"], p["version"]) for p in lock["packages"]] == [("corp-utils", "1.5")]
    assert run_morgan("-i", str(index), "prune").code == 0
    assert files_in(index, "corp-utils") == {uploaded.name}


def test_an_upload_that_cannot_be_read_is_reported_and_kept(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    public: FixtureIndex,
    dists: Path,
) -> None:
    index = tmp_path / "index"
    broken = dists / "corp_utils-2.0-py3-none-any.whl"
    broken.parent.mkdir(parents=True, exist_ok=True)
    good = build_wheel(dists / "mine", "corp-utils", "1.5")
    upload(index, good)
    broken.write_bytes(good.read_bytes()[:200])  # a cut-off zip
    target = index / "corp-utils" / broken.name
    target.write_bytes(broken.read_bytes())
    Path(f"{target}.hash").write_text(f"sha256={hashlib.sha256(broken.read_bytes()).hexdigest()}")
    Path(f"{target}.uploaded").write_text(json.dumps({"uploader": "bob"}))
    config_with(index, "corp-utils =")
    result = mirror(run_morgan, index, public)
    assert target.is_file() and Path(f"{target}.uploaded").is_file()
    assert files_in(index, "corp-utils") == {good.name, broken.name}
    assert broken.name in result.out


def test_a_config_with_indexes_and_private_names_stays_readable_by_morgan_0_15(
    tmp_path: Path,
) -> None:
    """Morgan 0.15 reads morgan.ini with a plain ConfigParser and ignores other sections:
    written with ``name =``, the new sections do not stop it."""
    import configparser  # noqa: PLC0415

    sections = (
        "[index.corp]\nurl = https://corp.example/simple/\nprojects = corp-utils\n"
        "password-env = CORP_TOKEN\n[private]\ncorp-secret =\n"
    )
    path = config_with(tmp_path, "app =", sections)
    parser = configparser.ConfigParser(strict=False)  # as Morgan 0.15 builds it
    parser.read(path)
    assert [name for name in parser if name.startswith("env.")] == ["env.linux312"]
    assert MirrorConfig.from_file(str(path)).private == {"corp-secret"}


def test_a_user_in_the_url_takes_its_password_from_netrc(
    run_morgan,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    *,
    public: FixtureIndex,
    dists: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with FixtureIndex(auth=("alice", "s3cret")) as locked:
        locked.add(build_wheel(dists / "locked", "corp-utils", "1.0"))
        index = tmp_path / "index"
        url = locked.url.replace("http://", "http://alice@")
        config_with(index, "corp-utils =", f"[index.corp]\nurl = {url}\n")
        result = mirror(run_morgan, index, public)
    assert result.code == 0, result
    assert files_in(index, "corp-utils") == {"corp_utils-1.0-py3-none-any.whl"}
    assert "s3cret" not in result.out + result.err
