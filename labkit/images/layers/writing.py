"""Reproducible tarballs: sorted names, fixed owners and times, overlay whiteouts as tar ones.

:func:`write_tar` writes entries; :func:`tar_from_dir` turns a directory (an
overlay upper directory, after a ``RUN``) into a layer.
"""
from __future__ import annotations

import gzip
import io
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from .streams import HashingWriter
from .whiteouts import OPAQUE_MARKER, WHITEOUT_PREFIX, is_opaque, is_whiteout


@dataclass
class Entry:
    """One tar member to write: a TarInfo and, for regular files, where its bytes come from."""

    info: tarfile.TarInfo
    data: bytes | None = None
    path: str | None = None  # read the content from this file (O_NOFOLLOW)


def file_entry(name: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 0) -> Entry:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.REGTYPE, len(data), mode, uid, gid, mtime
    return Entry(ti, data=data)


def dir_entry(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int = 0) -> Entry:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, mode, uid, gid, mtime
    return Entry(ti)


def symlink_entry(name: str, target: str, uid: int = 0, gid: int = 0, mtime: int = 0) -> Entry:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.SYMTYPE, target, 0o777, uid, gid, mtime
    return Entry(ti)


def _walk(top: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative name, path, lstat) for everything under ``top``, sorted by name bytes."""
    with os.scandir(os.path.join(top, rel) if rel else top) as it:
        names = sorted((e.name for e in it), key=os.fsencode)
    for name in names:
        r = f"{rel}/{name}" if rel else name
        path = os.path.join(top, r)
        st = os.lstat(path)
        yield r, path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(top, r)


def dir_entries(
    src: str | os.PathLike,
    *,
    owner: tuple[int, int] | None = (0, 0),
    mtime: int | None = 0,
    whiteouts: bool = True,
    prefix: str = "",
) -> Iterator[Entry]:
    """Tar entries for the tree ``src`` in sorted order (see :func:`tar_from_dir`)."""
    top = os.fspath(src)
    links: dict[tuple[int, int], str] = {}
    prefix = prefix.strip("/")
    for rel, path, st in _walk(top):
        name = f"{prefix}/{rel}" if prefix else rel
        uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
        when = int(st.st_mtime) if mtime is None else mtime
        mode = stat.S_IMODE(st.st_mode)
        if whiteouts and is_whiteout(st):
            parent, base = posixpath.split(name)
            wh = posixpath.join(parent, WHITEOUT_PREFIX + base)
            yield file_entry(wh, b"", mode=0o644, uid=0, gid=0, mtime=0 if mtime is not None else when)
            continue
        ti = tarfile.TarInfo(name)
        ti.uid, ti.gid, ti.mtime, ti.mode = uid, gid, when, mode
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in links:
            ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
            yield Entry(ti)
            continue
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                links[key] = name
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            try:
                cap = os.getxattr(path, "security.capability", follow_symlinks=False)
                ti.pax_headers["SCHILY.xattr.security.capability"] = cap.decode("utf-8", "surrogateescape")
            except OSError:
                pass
            yield Entry(ti, path=path)
        elif stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            yield Entry(ti)
            if whiteouts and is_opaque(path):
                yield file_entry(posixpath.join(name, OPAQUE_MARKER), b"", uid=0, gid=0,
                                 mtime=0 if mtime is not None else when)
        elif stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
            yield Entry(ti)
        elif stat.S_ISFIFO(st.st_mode):
            ti.type = tarfile.FIFOTYPE
            yield Entry(ti)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield Entry(ti)
        # sockets are not representable in tar: skipped, as tar does


@dataclass
class TarResult:
    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of what was written (== diff_id when not compressed)
    size: int  # bytes written
    uncompressed_size: int
    media_type: str


def write_tar(entries: Iterable[Entry], out: IO[bytes] | str | os.PathLike, *,
              compress: str | None = "gzip", level: int = 6) -> TarResult:
    """Write ``entries`` (in the given order) as a PAX tar; gzip with mtime 0 and fixed ``level``."""
    if isinstance(out, (str, os.PathLike)):
        with open(out, "wb") as f:
            return write_tar(entries, f, compress=compress, level=level)
    outer = HashingWriter(out)
    gz = None
    if compress == "gzip":
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer, compresslevel=level, mtime=0)  # type: ignore[arg-type]
        inner = HashingWriter(gz)  # type: ignore[arg-type]
    elif compress is None:
        inner = outer
    else:
        raise ValueError(f"unsupported compression {compress!r}")
    tf = tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
    try:
        for e in entries:
            ti = e.info
            ti.uname = ti.gname = ""
            if e.data is not None:
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            elif e.path is not None and ti.type == tarfile.REGTYPE:
                fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
    except BaseException:
        # a failed write (a full disk): the stream must not flush into the aborted blob later,
        # from the garbage collector (tarfile's _Stream.__del__ writes its buffer)
        tf.closed = tf.fileobj.closed = True  # type: ignore[attr-defined]
        raise
    tf.close()
    if gz is not None:
        gz.close()
    from ..layout import MT_LAYER, MT_LAYER_GZIP

    return TarResult(
        diff_id=inner.digest,
        digest=outer.digest,
        size=outer.size,
        uncompressed_size=inner.size,
        media_type=MT_LAYER_GZIP if gz is not None else MT_LAYER,
    )


def tar_from_dir(
    src: str | os.PathLike,
    out: IO[bytes] | str | os.PathLike,
    *,
    owner: tuple[int, int] | None = (0, 0),
    mtime: int | None = 0,
    whiteouts: bool = True,
    prefix: str = "",
    compress: str | None = "gzip",
    level: int = 6,
) -> TarResult:
    """Write the tree ``src`` (e.g. an overlay upper directory) as a reproducible layer.

    Entries are sorted by name; owner is ``owner`` (default 0:0; ``None``
    keeps each file's own uid/gid, as a ``RUN`` layer needs); mtime is
    ``mtime`` (default 0; ``None`` keeps the files' mtimes); hard links are
    kept as links; with ``whiteouts`` an overlay whiteout (char device 0/0)
    becomes an empty ``.wh.NAME`` and an opaque directory gets a
    ``.wh..wh..opq`` entry. ``out`` is a path or a binary file object (a
    :class:`~labkit.images.layout.BlobWriter` works). Returns digests and sizes.
    """
    return write_tar(
        dir_entries(src, owner=owner, mtime=mtime, whiteouts=whiteouts, prefix=prefix),
        out, compress=compress, level=level,
    )
