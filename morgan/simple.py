"""Parsing simple-API project pages, PEP 691 JSON and PEP 503 HTML, into one model.

Both parsers give the same :class:`~morgan.models.ProjectPage`, so nothing
after them cares which format the index spoke.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import posixpath
import re
import urllib.parse
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Any

from packaging.utils import canonicalize_name

from morgan.errors import PageError, UnsupportedAPIVersionError
from morgan.layout import path_hazard
from morgan.models import DistributionFile, ProjectPage

log = logging.getLogger(__name__)

MEDIA_JSON_V1 = "application/vnd.pypi.simple.v1+json"
MEDIA_HTML_V1 = "application/vnd.pypi.simple.v1+html"
MEDIA_HTML = "text/html"
#: JSON first, then HTML, as pip asks (PEP 691 content negotiation).
ACCEPT = f"{MEDIA_JSON_V1}, {MEDIA_HTML_V1};q=0.2, {MEDIA_HTML};q=0.01"
#: The newest API version this parser knows (PEP 700).
KNOWN_API_VERSION = (1, 1)
#: Hex digest lengths of the algorithms a download can be checked with; others are dropped
#: (the variable-length shake digests too).
_DIGEST_LENGTHS = {
    name: hashlib.new(name).digest_size * 2
    for name in sorted(hashlib.algorithms_guaranteed)
    if not name.startswith("shake_")
}
_ALGORITHMS = {name: name for name in _DIGEST_LENGTHS}
_HEX = re.compile(r"[0-9a-f]+")


def _short(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut to ``limit`` characters: hostile values stay on one short line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


#: Which files of a page to keep, by file name (the others are not even parsed).
KeepFile = Callable[[str], bool]


def parse_project_page(
    body: bytes, content_type: str, url: str, project: str, keep: KeepFile | None = None
) -> ProjectPage:
    """Parse a project page in the format its Content-Type names.

    ``keep`` leaves out the files it says no to: a real page lists thousands, and a
    mirror for a few environments needs a small part of them.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == MEDIA_JSON_V1:
        return parse_json_page(body, url, project, keep)
    if media_type in (MEDIA_HTML_V1, MEDIA_HTML, ""):
        return parse_html_page(body, url, project, keep)
    raise PageError(url, f"unexpected Content-Type {content_type!r}; is this a simple index?")


def check_api_version(version: str, url: str) -> None:
    """Refuse a newer major API version; accept a newer minor one with a warning."""
    match = re.fullmatch(r"[ \t]*([0-9]{1,20})\.([0-9]{1,20})[ \t]*", version)
    if match is None:
        raise PageError(url, f"api-version {_short(version)} is not MAJOR.MINOR")
    major, minor = int(match.group(1)), int(match.group(2))
    if major != KNOWN_API_VERSION[0]:
        raise UnsupportedAPIVersionError(url, version)
    if minor > KNOWN_API_VERSION[1]:
        log.warning(
            "%s: api-version %s is newer than this morgan knows; reading it as %d.%d",
            url,
            version.strip(),
            *KNOWN_API_VERSION,
        )


def _check_name(found: str, project: str, url: str) -> None:
    if canonicalize_name(found) != canonicalize_name(project):
        raise PageError(url, f"page is for project {_short(found)}, not {project!r}")


def _check_filename(filename: str, url: str) -> None:
    """Refuse a page that names a file with a path in it: the index is broken or hostile."""
    hazard = path_hazard(filename)
    if hazard is not None:
        raise PageError(
            url, f"lists a file named {_short(filename)}, which {hazard}; refusing the page"
        )


def _hashes(value: Mapping[Any, Any]) -> dict[str, str] | None:
    """The digests a download can be checked with; None if one of them is malformed.

    Algorithms hashlib cannot check are dropped. A digest of a known algorithm
    that is not hex of the right length makes the whole entry untrustworthy.
    """
    hashes = {}
    for key, given in value.items():
        # the names are a handful, and a page of 10,000 files repeats them: one string each
        algorithm = _ALGORITHMS.get(key) or _ALGORITHMS.get(str(key).lower())
        if algorithm is None or not isinstance(given, str):
            continue
        digest = given if _HEX.fullmatch(given) else given.strip().lower()
        if len(digest) != _DIGEST_LENGTHS[algorithm] or not _HEX.fullmatch(digest):
            return None
        hashes[algorithm] = digest
    return hashes


def _metadata_flag(value: Any) -> dict[str, str] | None:
    """PEP 691/714 core-metadata: True, False, or a dict of hashes (None if unusable)."""
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return _hashes(value)
    return None


def parse_json_page(
    body: bytes, url: str, project: str, keep: KeepFile | None = None
) -> ProjectPage:
    """Parse a PEP 691 JSON project page.

    The list of files is decoded one entry at a time, and an entry ``keep`` refuses
    is dropped at once: the largest real pages hold tens of thousands of entries,
    and the whole list, decoded, would weigh several times the page.
    """
    files: list[DistributionFile] = []
    shared: dict[str, str] = {}  # one string for the facts thousands of files repeat

    def take(raw: Any) -> None:
        if keep is not None and isinstance(raw, dict):
            filename = raw.get("filename")
            if isinstance(filename, str):
                _check_filename(filename, url)  # a hostile name refuses the page, kept or not
                if not keep(filename):
                    return
        file = _json_file(raw, url, shared)
        if file is not None:
            files.append(file)

    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        data, has_files = _scan_json_page(text, take)
    except PageError:
        raise  # what an entry says, not the JSON
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise PageError(url, f"invalid JSON ({str(error)[:200]})") from None
    if data is None:
        raise PageError(url, "JSON page is not an object")
    meta = data.get("meta")
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if not isinstance(version, str):
        raise PageError(url, "JSON page has no meta.api-version")
    check_api_version(version, url)
    name = data.get("name")
    if not isinstance(name, str):
        raise PageError(url, "JSON page has no project name")
    _check_name(name, project, url)
    if not has_files:
        raise PageError(url, "JSON page has no list of files")
    return ProjectPage(
        name=canonicalize_name(project), url=url, files=tuple(files), api_version=version
    )


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_DECODER = json.JSONDecoder()


def _scan_json_page(
    text: str, on_file: Callable[[Any], None]
) -> tuple[dict[str, Any] | None, bool]:
    """A JSON document decoded as ``json.loads`` would, except that the entries of a
    top-level ``"files"`` list go to ``on_file`` one by one instead of into the result.

    Returns the other top-level members (None if the document is no object) and
    whether a list of files was met. ValueError where the text is not JSON.
    """
    decode, space = _JSON_DECODER.raw_decode, _space_end
    index = space(text, 0)
    if text[index : index + 1] != "{":
        _, index = decode(text, index)  # any other JSON value is read (and checked), then refused
        if space(text, index) != len(text):
            raise ValueError("extra data after the JSON value")
        return None, False
    members: dict[str, Any] = {}
    has_files = False
    index = space(text, index + 1)
    if text[index : index + 1] == "}":
        index += 1
    else:
        while True:
            key, index = decode(text, index)
            if not isinstance(key, str):
                raise ValueError(f"a key that is not a string at {index}")
            index = space(text, index)
            if text[index : index + 1] != ":":
                raise ValueError(f"expecting ':' at {index}")
            index = space(text, index + 1)
            if key == "files" and text[index : index + 1] == "[":
                index = _scan_json_list(text, index, on_file)
                has_files = True
                members.pop(key, None)
            else:
                members[key], index = decode(text, index)
                has_files = has_files and key != "files"
            index = space(text, index)
            separator = text[index : index + 1]
            index = space(text, index + 1)
            if separator == "}":
                break
            if separator != ",":
                raise ValueError(f"expecting ',' or '}}' at {index}")
    if space(text, index) != len(text):
        raise ValueError("extra data after the JSON object")
    return members, has_files


def _scan_json_list(text: str, index: int, on_item: Callable[[Any], None]) -> int:
    """Decode the list at ``index`` item by item; the index just after it."""
    decode, space = _JSON_DECODER.raw_decode, _space_end
    index = space(text, index + 1)
    if text[index : index + 1] == "]":
        return index + 1
    while True:
        item, index = decode(text, index)
        on_item(item)
        index = space(text, index)
        separator = text[index : index + 1]
        index += 1
        if separator == "]":
            return index
        if separator != ",":
            raise ValueError(f"expecting ',' or ']' at {index - 1}")
        index = space(text, index)


def _space_end(text: str, index: int) -> int:
    """Where the JSON whitespace at ``index`` ends."""
    match = _JSON_SPACE.match(text, index)
    return match.end() if match else index


def _json_file(raw: Any, page_url: str, shared: dict[str, str]) -> DistributionFile | None:
    if not isinstance(raw, dict):
        log.warning("%s: ignoring a file entry that is not an object", page_url)
        return None
    filename, href, raw_hashes = raw.get("filename"), raw.get("url"), raw.get("hashes")
    if not (filename and isinstance(filename, str) and isinstance(href, str)) or not isinstance(
        raw_hashes, Mapping
    ):
        log.warning("%s: ignoring a file entry without filename, url and hashes", page_url)
        return None
    _check_filename(filename, page_url)
    hashes = _hashes(raw_hashes)
    if hashes is None:
        log.warning("%s: ignoring %s, whose hashes are malformed", page_url, _short(filename))
        return None
    requires_python = raw.get("requires-python")
    yanked = raw.get("yanked", False)
    if not isinstance(yanked, (bool, str)):
        yanked = bool(yanked)
    elif yanked == "":
        yanked = True
    metadata = raw.get("core-metadata", raw.get("dist-info-metadata"))
    size = raw.get("size")
    upload_time = raw.get("upload-time")
    try:
        absolute = _absolute_url(page_url, href)
    except ValueError:
        log.warning("%s: ignoring %s, whose URL cannot be parsed", page_url, _short(filename))
        return None
    return DistributionFile(
        filename=filename,
        url=absolute,
        hashes=hashes,
        requires_python=(
            shared.setdefault(requires_python, requires_python)
            if isinstance(requires_python, str)
            else None
        ),
        yanked=yanked,
        metadata_hashes=_metadata_flag(metadata),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        upload_time=(
            shared.setdefault(upload_time, upload_time) if isinstance(upload_time, str) else None
        ),
    )


#: A URL ``urljoin`` would return as it is: http(s), a plain host, and path segments
#: of plain characters none of which is ``.`` or ``..`` (PyPI's file URLs are such).
_PLAIN_ABSOLUTE = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/(?!\.\.?(?:/|$))[\w.~%+-]*)*"
)
#: A last path segment that joins to a folder URL by concatenation.
_PLAIN_NAME = re.compile(r"(?!\.\.?$)[\w.~%+-]+")
#: The relative or absolute path of a folder (no scheme, no host) before it.
_PLAIN_FOLDER = re.compile(r"/?(?:[\w.~%+-]+/)*")


def _absolute_url(page_url: str, href: str) -> str:
    """``urljoin(page_url, href)``, checked by ``urlsplit`` (ValueError if unparsable).

    A page lists thousands of files: the common shapes (an absolute plain URL, or a
    plain name under a folder the page already named) skip the general case.
    """
    if _PLAIN_ABSOLUTE.fullmatch(href):
        return href
    folder, slash, name = href.rpartition("/")
    if _PLAIN_NAME.fullmatch(name) and _PLAIN_FOLDER.fullmatch(folder + slash):
        joined = _join_folder(page_url, folder + slash or "./")
        if joined.endswith("/"):
            return joined + name
    absolute = urllib.parse.urljoin(page_url, href)
    urllib.parse.urlsplit(absolute)
    return absolute


@functools.lru_cache(maxsize=1024)
def _join_folder(page_url: str, folder: str) -> str:
    absolute = urllib.parse.urljoin(page_url, folder)
    urllib.parse.urlsplit(absolute)
    return absolute


class _AnchorCollector(HTMLParser):
    """Collects the ``<a>`` elements, ``<base>`` and API-version ``<meta>`` of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None
        self.api_version: str | None = None

    def error(self, message: str) -> None:
        """Python 3.9's html.parser calls this on a marked section it cannot read
        (``<![foo[``); without it, NotImplementedError (later versions raise ValueError)."""
        raise ValueError(message)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.anchors.append(attributes)
        elif tag == "base" and self.base is None and attributes.get("href"):
            self.base = attributes["href"]
        elif tag == "meta" and attributes.get("name") == "pypi:repository-version":
            self.api_version = attributes.get("content")


def _html_metadata(attributes: Mapping[str, str | None]) -> dict[str, str] | None:
    for name in ("data-core-metadata", "data-dist-info-metadata"):
        if name not in attributes:
            continue
        value = (attributes[name] or "").strip()
        if value.lower() == "true":
            return {}
        algorithm, sep, digest = value.partition("=")
        if sep and algorithm and digest:
            return {algorithm.lower(): digest.lower()}
        return None
    return None


def parse_html_page(
    body: bytes, url: str, project: str, keep: KeepFile | None = None
) -> ProjectPage:
    """Parse a PEP 503 HTML project page (with PEP 592/629/658/714 attributes)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PageError(url, "HTML page is not UTF-8") from None
    collector = _AnchorCollector()
    try:
        collector.feed(text)
        collector.close()
    except (AssertionError, ValueError) as error:  # html.parser's own complaints
        raise PageError(url, f"unparsable HTML ({error})") from None
    if collector.api_version is not None:
        check_api_version(collector.api_version, url)
    base = url
    if collector.base:
        try:
            base = urllib.parse.urljoin(url, collector.base)
            urllib.parse.urlsplit(base)
        except ValueError:
            log.warning("%s: ignoring a <base href> that cannot be parsed", url)
            base = url

    files = []
    for attributes in collector.anchors:
        file = _html_file(attributes, base, url)
        if file is not None and (keep is None or keep(file.filename)):
            files.append(file)
    return ProjectPage(
        name=canonicalize_name(project),
        url=url,
        files=tuple(files),
        api_version=collector.api_version or "1.0",
    )


def _html_file(
    attributes: Mapping[str, str | None], base: str, url: str
) -> DistributionFile | None:
    href = attributes.get("href") or ""
    try:
        absolute = urllib.parse.urljoin(base, href.strip())
        without_fragment, fragment = urllib.parse.urldefrag(absolute)
        path = urllib.parse.urlsplit(without_fragment).path
    except ValueError:
        log.warning("%s: ignoring a link whose URL cannot be parsed", base)
        return None
    name = posixpath.basename(path)
    if not name:
        return None  # a link to a folder, such as the index itself
    filename = urllib.parse.unquote(name)
    _check_filename(filename, url)
    algorithm, sep, digest = fragment.partition("=")
    hashes = _hashes({algorithm: digest}) if sep else {}
    if hashes is None:
        log.warning("%s: ignoring %s, whose hash fragment is malformed", url, _short(filename))
        return None
    yanked: bool | str = False
    if "data-yanked" in attributes:
        yanked = attributes["data-yanked"] or True
    size_text = attributes.get("data-size") or ""
    return DistributionFile(
        filename=filename,
        url=without_fragment,
        hashes=hashes,
        requires_python=attributes.get("data-requires-python") or None,
        yanked=yanked,
        metadata_hashes=_html_metadata(attributes),
        size=int(size_text) if size_text.isascii() and size_text.isdigit() else None,
        upload_time=attributes.get("data-upload-time") or None,
    )
