"""Streamed, checksummed, atomic single-file format for replay buffer state.

Layout (little endian)::

    MAGIC (8 bytes)
    array 0 raw bytes | array 1 raw bytes | ...        (C order, no padding)
    footer: UTF-8 JSON {"version", "header", "arrays": [{name, dtype, shape, offset, nbytes, crc32}]}
    footer length (uint64) | footer crc32 (uint32) | END_MAGIC (8 bytes)

Arrays are streamed chunk by chunk (``zlib.crc32`` accumulated over the chunks), so saving a 7 GB
buffer never holds a second copy of it. The file is written to a temporary name in the same
directory, flushed and fsynced, and only then renamed over the destination with ``os.replace``: a
crash mid-save leaves the previous file intact. The footer sits at the end because the checksums are
only known after the data is written; a truncated file therefore loses its end marker and is
rejected before any array is read.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"DRLRPLY1"
END_MAGIC = b"DRLREND1"
FORMAT_VERSION = 1
_TAIL = struct.Struct("<QI")  # footer length, footer crc32
_TAIL_BYTES = _TAIL.size + len(END_MAGIC)
_RESAVE_HINT = (
    "The file cannot be used for an exact resume: restore it from a good copy, or start with an "
    "empty buffer (refill it with fresh environment steps) and save it again."
)


class ReplayLoadError(ValueError):
    """A replay file is missing, truncated, corrupt or incompatible with the requested buffer."""


def _array_chunks(arr: np.ndarray, chunk_bytes: int) -> Iterable[memoryview]:
    raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data
    for start in range(0, len(raw), chunk_bytes):
        yield raw[start : start + chunk_bytes]


class ArraySource:
    """One named array to save: its dtype, shape and a generator of its raw bytes."""

    def __init__(
        self,
        name: str,
        dtype: np.dtype,
        shape: tuple[int, ...],
        chunks: Callable[[], Iterable[memoryview]],
    ) -> None:
        self.name = name
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.chunks = chunks

    @classmethod
    def from_array(cls, name: str, arr: np.ndarray, chunk_bytes: int = 16 << 20) -> ArraySource:
        return cls(name, arr.dtype, arr.shape, lambda: _array_chunks(arr, chunk_bytes))


def write_replay_file(
    path: str | os.PathLike[str], header: dict[str, Any], arrays: list[ArraySource]
) -> None:
    """Write ``header`` (JSON-serialisable) and ``arrays`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            entries = []
            for src in arrays:
                offset = f.tell()
                crc = 0
                nbytes = 0
                for chunk in src.chunks():
                    f.write(chunk)
                    crc = zlib.crc32(chunk, crc)
                    nbytes += len(chunk)
                expected = int(np.prod(src.shape, dtype=np.int64)) * src.dtype.itemsize
                if nbytes != expected:  # a bug in a chunk generator, never user error
                    raise RuntimeError(
                        f"array {src.name}: wrote {nbytes} bytes, expected {expected}"
                    )
                entries.append(
                    {
                        "name": src.name,
                        "dtype": src.dtype.str,
                        "shape": list(src.shape),
                        "offset": offset,
                        "nbytes": nbytes,
                        "crc32": crc,
                    }
                )
            footer = json.dumps(
                {"version": FORMAT_VERSION, "header": header, "arrays": entries}
            ).encode("utf-8")
            f.write(footer)
            f.write(_TAIL.pack(len(footer), zlib.crc32(footer)))
            f.write(END_MAGIC)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (best effort; not supported on every filesystem)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


class ReplayFileReader:
    """Validates a replay file's structure on open; reads and checksums arrays on demand."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ReplayLoadError(
                f"replay file {self.path} does not exist (or is not a file). Check the path; a "
                f"buffer is saved with ReplayBuffer.save(path)."
            )
        self._f: io.BufferedReader = open(self.path, "rb")  # closed in close()
        try:
            self._parse()
        except BaseException:
            self._f.close()
            raise

    def _fail(self, what: str) -> ReplayLoadError:
        return ReplayLoadError(f"replay file {self.path} is {what}. {_RESAVE_HINT}")

    def _parse(self) -> None:
        f = self._f
        size = os.fstat(f.fileno()).st_size
        if size < len(MAGIC) + _TAIL_BYTES:
            raise self._fail(f"truncated or not a replay file ({size} bytes)")
        if f.read(len(MAGIC)) != MAGIC:
            raise self._fail("not a distrl-agents replay file (bad magic bytes)")
        f.seek(size - _TAIL_BYTES)
        tail = f.read(_TAIL_BYTES)
        if tail[_TAIL.size :] != END_MAGIC:
            raise self._fail(
                "truncated (end marker missing: the save was interrupted or the copy is incomplete)"
            )
        footer_len, footer_crc = _TAIL.unpack(tail[: _TAIL.size])
        footer_start = size - _TAIL_BYTES - footer_len
        if footer_start < len(MAGIC):
            raise self._fail("corrupt (footer length out of range)")
        f.seek(footer_start)
        footer = f.read(footer_len)
        if zlib.crc32(footer) != footer_crc:
            raise self._fail("corrupt (footer checksum mismatch)")
        try:
            meta = json.loads(footer.decode("utf-8"))
        except ValueError as exc:
            raise self._fail(f"corrupt (footer is not valid JSON: {exc})") from None
        if meta.get("version") != FORMAT_VERSION:
            raise ReplayLoadError(
                f"replay file {self.path} has format version {meta.get('version')}, this code reads "
                f"version {FORMAT_VERSION}. Load it with the distrl-agents version that wrote it."
            )
        self.header: dict[str, Any] = meta["header"]
        self.entries: dict[str, dict[str, Any]] = {e["name"]: e for e in meta["arrays"]}
        expected_offset = len(MAGIC)
        for e in meta["arrays"]:
            if e["offset"] != expected_offset:
                raise self._fail(f"corrupt (array {e['name']} at an unexpected offset)")
            expected_offset += e["nbytes"]
        if expected_offset != footer_start:
            raise self._fail(
                f"corrupt or truncated (array data is {footer_start - len(MAGIC)} bytes, the footer "
                f"lists {expected_offset - len(MAGIC)})"
            )

    def check(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> dict[str, Any]:
        if name not in self.entries:
            raise self._fail(f"missing array {name!r}")
        e = self.entries[name]
        if np.dtype(e["dtype"]) != np.dtype(dtype) or tuple(e["shape"]) != tuple(shape):
            raise ReplayLoadError(
                f"replay file {self.path}: array {name!r} is {np.dtype(e['dtype'])}{tuple(e['shape'])}"
                f", the buffer expects {np.dtype(dtype)}{tuple(shape)}. Load it into a buffer built "
                f"with the configuration it was saved with."
            )
        return e

    def read_chunks(
        self, name: str, dtype: np.dtype, shape: tuple[int, ...]
    ) -> Callable[[memoryview], None]:
        """A ``read_chunk(buf)`` callable that fills ``buf`` with the next bytes of array ``name``
        (call it until the array is consumed, then call ``finish(name)``)."""
        e = self.check(name, dtype, shape)
        self._f.seek(e["offset"])
        self._crc = 0
        self._left = e["nbytes"]

        def read_chunk(buf: memoryview) -> None:
            n = len(buf)
            if n > self._left:
                raise RuntimeError(f"read past the end of array {name}")
            got = self._f.readinto(buf)
            while got < n:  # readinto may return short reads
                more = self._f.readinto(buf[got:])
                if not more:
                    raise self._fail(f"truncated (array {name!r} ends early)")
                got += more
            self._crc = zlib.crc32(buf, self._crc)
            self._left -= n

        return read_chunk

    def finish(self, name: str) -> None:
        e = self.entries[name]
        if self._left != 0:
            raise RuntimeError(f"array {name} not fully read ({self._left} bytes left)")
        if self._crc != e["crc32"]:
            raise self._fail(f"corrupt (checksum mismatch in array {name!r})")

    def read_into(self, name: str, out: np.ndarray, chunk_bytes: int = 16 << 20) -> None:
        """Read array ``name`` into the preallocated contiguous ``out`` and verify its checksum."""
        read_chunk = self.read_chunks(name, out.dtype, out.shape)
        for chunk in _array_chunks(out, chunk_bytes):
            read_chunk(chunk)
        self.finish(name)

    def read_array(self, name: str) -> np.ndarray:
        e = self.entries[name]
        out = np.empty(tuple(e["shape"]), dtype=np.dtype(e["dtype"]))
        self.read_into(name, out)
        return out

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ReplayFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
