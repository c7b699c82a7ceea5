"""A wheel's METADATA read over HTTP byte ranges, without downloading the wheel.

A zip keeps its table of contents at its end: a block from there says where
``.dist-info/METADATA`` lies, and one more range reads it, so a wheel of any size
costs two or three small requests (pip and uv read "lazy wheels" so when an index
offers no PEP 658 metadata). The remote file is read through zipfile, with the
same bounds as a wheel on disk (``metadata.read_wheel_metadata_stream``); a
server that ignores ranges raises RangesNotServed at the first request.
"""

from __future__ import annotations

import io

from morgan.errors import UpstreamError
from morgan.index import RangesNotServed, Upstream
from morgan.metadata import MAX_MEMBER_BYTES, MAX_ZIP_DIRECTORY_BYTES, read_wheel_metadata_stream

#: Bytes fetched at a time, aligned: the end records and a small directory come in one.
BLOCK = 64 * 1024
#: The most one wheel may ever cost: its directory and METADATA at their bounds.
MAX_FETCHED = MAX_ZIP_DIRECTORY_BYTES + MAX_MEMBER_BYTES + 4 * BLOCK


class TooMuchToRead(UpstreamError):
    """Reading METADATA by ranges would cost about as much as downloading the wheel."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "its METADATA costs less with the whole file", transient=False)


class RemoteFile(io.RawIOBase):
    """A file on an HTTP server, read and seeked as a local one, a block at a time."""

    def __init__(self, client: Upstream, url: str, size: int | None) -> None:
        super().__init__()
        self._client = client
        self._url = url
        self._blocks: dict[int, bytes] = {}
        self._position = 0
        self.fetched = 0
        if size is None:  # the page did not say (HTML pages seldom do): one byte tells
            _, size = client.get_range(url, 0, 0)
        self._size = size
        #: Past this, downloading the whole file costs about as much, and is verified.
        self._limit = min(MAX_FETCHED, max(4 * BLOCK, size // 4))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._position
        end = min(self._size, start + len(buffer))
        if start >= end:
            return 0
        self._fetch(start // BLOCK, (end - 1) // BLOCK)
        view = memoryview(buffer)
        written = 0
        while start + written < end:
            index, offset = divmod(start + written, BLOCK)
            piece = self._blocks[index][offset : offset + end - start - written]
            view[written : written + len(piece)] = piece
            written += len(piece)
        self._position = end
        return written

    def _fetch(self, first: int, last: int) -> None:
        """Fetch the missing blocks ``first``..``last``, each run of them in one request."""
        index = first
        while index <= last:
            if index in self._blocks:
                index += 1
                continue
            run_end = index
            while run_end + 1 <= last and run_end + 1 not in self._blocks:
                run_end += 1
            low, high = index * BLOCK, min(self._size, (run_end + 1) * BLOCK) - 1
            self.fetched += high - low + 1
            if self.fetched > self._limit:
                raise TooMuchToRead(self._url)
            data, _ = self._client.get_range(self._url, low, high)
            if len(data) != high - low + 1:  # a block cut short would never be read to its end
                raise RangesNotServed(self._url, "the server sent another length than asked")
            for number in range(index, run_end + 1):
                self._blocks[number] = data[(number - index) * BLOCK : (number - index + 1) * BLOCK]
            index = run_end + 1


def read_metadata_by_ranges(
    client: Upstream, url: str, size: int | None, filename: str, project: str
) -> bytes:
    """The wheel's METADATA, read by ranges (RangesNotServed, TooMuchToRead, or
    DistributionError as for a wheel on disk)."""
    with RemoteFile(client, url, size) as remote:
        return read_wheel_metadata_stream(remote, filename, project)  # type: ignore[arg-type]
