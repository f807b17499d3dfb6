"""Image layers: safe extraction of untrusted tarballs, and reproducible tarballs from a directory.

A layer is a tar (often gzip-compressed) of the files one build step added,
changed or deleted. Deletions are *whiteouts*: in the tar an empty file named
``.wh.NAME`` deletes ``NAME`` of the layers below, and ``.wh..wh..opq`` in a
directory hides everything the lower layers had in it (opaque directory).
OverlayFS spells the same two things differently: a character device 0/0
named ``NAME``, and the extended attribute ``trusted.overlay.opaque=y``.
:func:`extract` converts the tar spelling into the overlay one, so an unpacked
layer can be used directly as an OverlayFS ``lowerdir``; :func:`tar_from_dir`
does the reverse for an overlay upper directory.

Layer tarballs are untrusted input (see ``security-baseline.md`` P7-P10), so
:func:`extract` never uses ``tarfile.extractall``:

* absolute names lose their leading ``/``; a name that climbs out with ``..``
  refuses the whole layer;
* every parent directory is checked with ``lstat``: a path through a symlink
  (``lnk -> /etc`` then ``lnk/passwd``) refuses the layer, and a file is
  created with ``O_EXCL|O_NOFOLLOW`` after removing what was there, so nothing
  is ever written through a link;
* a hard link must name a file extracted earlier from the same tarball, inside
  the destination, never a directory: no extracted inode is a host inode;
* device nodes are skipped (only the 0/0 character device, the overlay
  whiteout, is ever created); FIFOs are kept;
* modes, owners and setuid bits are kept, as Docker does (the runtime sets
  ``no_new_privs``); extended attributes are applied only for
  ``security.capability`` and ``user.*`` (never ``trusted.overlay.*`` from a
  tarball).
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_ALLOWED_XATTRS = ("security.capability",)
_CHUNK = 1 << 20


class UnsafeLayer(ValueError):
    """The tarball tries to write outside its destination, or is malformed."""


# --------------------------------------------------------------------------- streams
class _HashingReader(io.RawIOBase):
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
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class _HashingWriter:
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
                shutil.copyfileobj(raw, self.proc.stdin, _CHUNK)
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
    reader = _HashingReader(open_uncompressed(raw))
    reader.drain()
    return reader.digest, reader.size


# --------------------------------------------------------------------------- extraction
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
            os.lchown(path, ti.uid, ti.gid)
        if not is_link:
            os.chmod(path, ti.mode & 0o7777)
        for key, value in ti.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name in _ALLOWED_XATTRS or name.startswith("user."):
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
                    shutil.copyfileobj(src, out, _CHUNK)
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
            os.setxattr(parent, OPAQUE_XATTR, b"y")
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
    reader = _HashingReader(open_uncompressed(src))
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


# --------------------------------------------------------------------------- writing
def is_whiteout(st: os.stat_result) -> bool:
    """True for an overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | os.PathLike) -> bool:
    """True if the directory carries ``trusted.overlay.opaque=y``."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


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
    outer = _HashingWriter(out)
    gz = None
    if compress == "gzip":
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer, compresslevel=level, mtime=0)  # type: ignore[arg-type]
        inner = _HashingWriter(gz)  # type: ignore[arg-type]
    elif compress is None:
        inner = outer
    else:
        raise ValueError(f"unsupported compression {compress!r}")
    tf = tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
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
    tf.close()
    if gz is not None:
        gz.close()
    from .layout import MT_LAYER, MT_LAYER_GZIP

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
