"""A blob is what its name says: checked while it is read for an unpack or before a push.

A blob's name is the sha256 of its bytes, so one byte changed on disk (a bad sector, a
stray editor, a half-copied store) is visible to anyone who hashes it. Hashing costs one
pass over the bytes; the unpack reads them anyway, so the hash rides along
(:func:`extract_verified`), and the unpacked directory only gets its final name when
the digest matched. A push hashes the blob first (:func:`verify_blob`): a registry
would refuse it too, but with its own words, after the upload.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import IO

from ..errors import LabkitError
from ..i18n import _

_CHUNK = 1 << 20


class CorruptBlob(LabkitError):
    """A blob in the store whose content does not match its digest (or its size)."""


def _corrupt(digest: str, actual: str) -> CorruptBlob:
    return CorruptBlob(
        _("blob %(digest)s is corrupt: its content has the digest %(actual)s; remove it with "
          "'labkit system check --fix' and pull or build the image again")
        % {"digest": digest, "actual": actual})


def file_digest(path: Path | str) -> tuple[str, int]:
    """``("sha256:<hex>", size)`` of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def verify_blob(path: Path | str, digest: str, size: int | None = None) -> None:
    """Raise :class:`CorruptBlob` unless the file's sha256 (and size, if given) match."""
    actual, actual_size = file_digest(path)
    if actual != digest or (size is not None and actual_size != size):
        raise _corrupt(digest, actual)


class _Hashing(io.RawIOBase):
    """A raw reader that hashes every byte that passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self.raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.h.update(data)
        return n

    def rest(self) -> str:
        while chunk := self.raw.read(_CHUNK):
            self.h.update(chunk)
        return "sha256:" + self.h.hexdigest()


def extract_verified(blob: IO[bytes], dest: Path, desc: dict, diff_id: str):
    """Unpack the layer blob ``blob`` into ``dest`` while hashing it; raise :class:`CorruptBlob`
    when it is not the blob ``desc`` names (the caller removes ``dest``)."""
    from . import layers

    hashing = _Hashing(blob)
    try:
        report = layers.extract(io.BufferedReader(hashing, _CHUNK), dest, expect_diff_id=diff_id)
    except (layers.UnsafeLayer, OSError) as exc:
        # a corrupt blob usually breaks the gzip stream first: say what it really is
        blob.seek(0, os.SEEK_SET)
        actual = _Hashing(blob).rest()
        if actual != desc["digest"]:
            raise _corrupt(desc["digest"], actual) from exc
        raise
    actual = hashing.rest()
    if actual != desc["digest"]:
        raise _corrupt(desc["digest"], actual)
    return report
