"""Safe extraction of an untrusted layer tarball into a directory usable as an overlay lowerdir.

Tar whiteouts become overlay whiteouts (see :mod:`.whiteouts`); nothing is
written through a link, outside the destination, or as a device node.
"""
from __future__ import annotations

import errno
import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .streams import CHUNK, HashingReader, open_uncompressed
from .whiteouts import OPAQUE_MARKER, WHITEOUT_PREFIX, UnsafeLayer, opaque_xattr

_ALLOWED_XATTRS = ("security.capability",)


@dataclass
class Report:
    """What :func:`extract` did."""

    diff_id: str = ""
    size: int = 0  # uncompressed bytes
    files: int = 0
    whiteouts: int = 0
    opaque: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: reason"


def _clean(name: str) -> str:
    """Relative, normalised member path; ``""`` is the root. Raises if it escapes."""
    if "\x00" in name:
        raise UnsafeLayer(f"NUL byte in name {name!r}")
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == "..":
        raise UnsafeLayer(f"path escapes the layer: {name!r}")
    if rel.startswith("../"):
        raise UnsafeLayer(f"path escapes the layer: {name!r}")
    return "" if rel == "." else rel


class _Extractor:
    def __init__(self, dest: Path) -> None:
        self.dest = os.fspath(dest)
        self.root = os.geteuid() == 0
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.report = Report()

    # parents are created as plain 0755 directories and must never be links
    def _parent(self, rel: str) -> str:
        path = self.dest
        parts = rel.split("/")[:-1]
        for part in parts:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                kind = "symlink" if stat.S_ISLNK(st.st_mode) else "non-directory"
                raise UnsafeLayer(f"path goes through a {kind}: {rel!r}")
        return path

    def _clear(self, path: str, keep_dir: bool) -> bool:
        """Remove what is at ``path``; return True if a directory was kept."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return False

    def _meta(self, path: str, ti: tarfile.TarInfo, is_link: bool = False) -> None:
        if self.root:
            try:
                os.lchown(path, ti.uid, ti.gid)
            except OSError as exc:
                # a rootless engine's user namespace maps 0..65536 (or only 0): an owner
                # beyond its map stays the namespace's root, as podman does
                if exc.errno != errno.EINVAL:
                    raise
                self.report.skipped.append(f"{ti.name}: owner {ti.uid}:{ti.gid} not mapped")
        if not is_link:
            os.chmod(path, ti.mode & 0o7777)
        for key, value in ti.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name in _ALLOWED_XATTRS or (name.startswith("user.") and not name.startswith("user.overlay.")):
                try:
                    os.setxattr(path, name, value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
                except OSError:
                    self.report.skipped.append(f"{ti.name}: xattr {name}")
        if not is_link:
            os.utime(path, (ti.mtime, ti.mtime), follow_symlinks=False)
        else:
            try:
                os.utime(path, (ti.mtime, ti.mtime), follow_symlinks=False)
            except OSError:
                pass

    def member(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        rel = _clean(ti.name)
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(rel, base)
            return
        if rel == "":
            return  # the layer's root directory entry
        parent = self._parent(rel)
        path = os.path.join(parent, base)
        if ti.isdir():
            if not self._clear(path, keep_dir=True):
                os.mkdir(path, 0o700)
            self.dirs.append((path, ti))
        elif ti.isreg():
            self._clear(path, keep_dir=False)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                src = tf.extractfile(ti)
                if src is not None:
                    shutil.copyfileobj(src, out, CHUNK)
            self._meta(path, ti)
        elif ti.issym():
            self._clear(path, keep_dir=False)
            os.symlink(ti.linkname, path)
            self._meta(path, ti, is_link=True)
        elif ti.islnk():
            target_rel = _clean(ti.linkname)
            if target_rel == "":
                raise UnsafeLayer(f"hard link to the layer root: {ti.name!r}")
            target = os.path.join(self._parent_existing(target_rel), posixpath.basename(target_rel))
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                raise UnsafeLayer(
                    f"hard link {ti.name!r} to {ti.linkname!r}, which is not in this layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"hard link to a directory: {ti.name!r}")
            if target_rel == rel:
                return
            self._clear(path, keep_dir=False)
            os.link(target, path, follow_symlinks=False)
        elif ti.ischr() and ti.devmajor == 0 and ti.devminor == 0:
            self._clear(path, keep_dir=False)
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            self.report.whiteouts += 1
        elif ti.ischr() or ti.isblk():
            kind = "char" if ti.ischr() else "block"
            self.report.skipped.append(f"{ti.name}: {kind} device {ti.devmajor},{ti.devminor} not created")
            return
        elif ti.isfifo():
            self._clear(path, keep_dir=False)
            os.mkfifo(path, 0o600)
            self._meta(path, ti)
        else:
            self.report.skipped.append(f"{ti.name}: unsupported type {ti.type!r}")
            return
        self.report.files += 1

    def _parent_existing(self, rel: str) -> str:
        """Like ``_parent`` but the parents must already exist (hard link targets)."""
        path = self.dest
        for part in rel.split("/")[:-1]:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise UnsafeLayer(f"hard link target not in this layer: {rel!r}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"hard link target goes through a link: {rel!r}")
        return path

    def _whiteout(self, rel: str, base: str) -> None:
        parent = self._parent(rel)
        if base == OPAQUE_MARKER:
            os.setxattr(parent, opaque_xattr(), b"y")
            self.report.opaque += 1
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk ...): meaningless here
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name in (".", ".."):
            raise UnsafeLayer(f"bad whiteout: {rel!r}")
        path = os.path.join(parent, name)
        if os.path.lexists(path):
            return  # a whiteout hides lower layers only, not this layer's own file
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self.report.whiteouts += 1

    def _still_a_dir(self, path: str) -> bool:
        """True if ``path`` and all its parents below ``dest`` are real directories.

        A later entry may have replaced a directory (or one of its parents)
        with a symlink; chmod and utime follow symlinks, so they must not be
        applied then, or they would change the host.
        """
        rel = os.path.relpath(path, self.dest)
        cur = self.dest
        for part in rel.split("/"):
            cur = os.path.join(cur, part)
            try:
                if not stat.S_ISDIR(os.lstat(cur).st_mode):
                    return False
            except FileNotFoundError:
                return False
        return True

    def finish(self) -> None:
        # deepest first, so setting a directory's mtime is not undone by its children
        for path, ti in sorted(self.dirs, key=lambda d: d[0].count("/"), reverse=True):
            if self._still_a_dir(path):
                self._meta(path, ti)


def extract(src: IO[bytes] | str | os.PathLike, dest: Path | str, *, expect_diff_id: str | None = None) -> Report:
    """Unpack the layer ``src`` (plain, gzip or zstd tar) into the directory ``dest``.

    ``dest`` should be new and private (labkit unpacks into a temporary
    directory and renames it). Raises :class:`UnsafeLayer` for a tarball that
    tries to escape; ``expect_diff_id`` is checked against the uncompressed
    stream's sha256.
    """
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            return extract(f, dest, expect_diff_id=expect_diff_id)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    reader = HashingReader(open_uncompressed(src))
    ex = _Extractor(dest)
    try:
        with tarfile.open(fileobj=reader, mode="r|", errorlevel=2) as tf:  # type: ignore[call-overload]
            for ti in tf:
                ex.member(tf, ti)
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise UnsafeLayer(f"bad tarball: {exc}") from exc
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            raise UnsafeLayer(f"unsafe path: {exc}") from exc
        raise
    try:
        reader.drain()
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise UnsafeLayer(f"bad tarball: {exc}") from exc
    ex.finish()
    ex.report.diff_id = reader.digest
    ex.report.size = reader.size
    if expect_diff_id is not None and expect_diff_id != reader.digest:
        raise UnsafeLayer(f"layer diff_id {reader.digest} does not match {expect_diff_id}")
    return ex.report
