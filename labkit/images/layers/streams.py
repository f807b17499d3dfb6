"""Layer streams: gzip, zstd or plain, and a SHA-256 computed while reading or writing.

A layer's *digest* is the hash of the blob as stored (compressed); its
*diff_id* is the hash of the uncompressed tar, which is what the image
config lists.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
from typing import IO

from .whiteouts import UnsafeLayer

CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """Read-through wrapper that hashes (and counts) everything read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.sha.update(data)
            self.size += len(data)
        return data

    def readinto(self, b) -> int:  # pragma: no cover - tarfile uses read()
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class HashingWriter:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def compression_of(head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``None`` (plain tar) from the first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


class _ZstdReader(io.RawIOBase):
    """Decompress zstd with the ``zstd`` command (Python 3.11 has no zstd module)."""

    def __init__(self, raw: IO[bytes]) -> None:
        if shutil.which("zstd") is None:
            raise UnsafeLayer("zstd-compressed layer and no `zstd` command (apt-get install zstd)")
        self.proc = subprocess.Popen(["zstd", "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        import threading

        def feed() -> None:
            try:
                shutil.copyfileobj(raw, self.proc.stdin, CHUNK)
            finally:
                self.proc.stdin.close()

        self.thread = threading.Thread(target=feed, daemon=True)
        self.thread.start()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.proc.stdout.read(n)

    def close(self) -> None:
        self.proc.stdout.close()
        self.thread.join()
        self.proc.wait()
        super().close()


def open_uncompressed(raw: IO[bytes]) -> IO[bytes]:
    """Wrap ``raw`` so reads return the uncompressed tar stream."""
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    kind = compression_of(buffered.peek(4)[:4])
    if kind == "gzip":
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        return _ZstdReader(buffered)  # type: ignore[return-value]
    return buffered


def diff_id_of(raw: IO[bytes]) -> tuple[str, int]:
    """sha256 and size of the *uncompressed* stream (the layer's diff_id)."""
    reader = HashingReader(open_uncompressed(raw))
    reader.drain()
    return reader.digest, reader.size
