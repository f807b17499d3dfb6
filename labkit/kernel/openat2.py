"""Resolve a path *inside* a root directory with ``openat2(RESOLVE_IN_ROOT)``.

A bind-mount target such as ``/data`` must be looked up in the container's
root filesystem as if that directory were ``/``: a symlink in the image
(``data -> /etc``) must not lead to the host's ``/etc``. The kernel does
this for us when asked with ``RESOLVE_IN_ROOT``.
"""
from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat

from .libc import SYS, check, libc

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return check(
        libc.syscall(SYS["openat2"], dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how)),
        "openat2",
        path,
    )


def open_in_root(root_fd: int, path: str, create: str | None = None, symlinks: bool = True,
                 _depth: int = 0) -> int:
    """Open ``path`` under ``root_fd`` as an ``O_PATH`` fd, never leaving the root.

    ``create`` is ``"dir"`` or ``"file"``: missing components are made
    (directories, then the last one of that kind), each step resolved again
    inside the root so a symlink swapped in meanwhile cannot redirect it.
    ``symlinks=False`` refuses any symlink on the way (for /proc, /sys, /dev).
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (0 if symlinks else RESOLVE_NO_SYMLINKS)
    try:
        return openat2(root_fd, "/".join(parts) or ".", O_PATH, resolve)
    except FileNotFoundError:
        if create is None:
            raise
    current = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            try:
                nxt = openat2(root_fd, "/".join(parts[: i + 1]), O_PATH, resolve)
            except FileNotFoundError:
                parent = openat2(root_fd, "/".join(parts[:i]) or ".", os.O_RDONLY | os.O_DIRECTORY, resolve)
                try:
                    if last and create == "file":
                        os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644, dir_fd=parent))
                    else:
                        try:
                            os.mkdir(name, 0o755, dir_fd=parent)
                        except FileExistsError:
                            # a dangling symlink (data -> /missing): create its target, in the root
                            if not symlinks or _depth >= 40:
                                raise
                            link = os.readlink(name, dir_fd=parent)
                            inner = posixpath.normpath("/" + "/".join(parts[:i]) + "/" + link)
                            os.close(open_in_root(root_fd, inner, "dir", symlinks, _depth + 1))
                finally:
                    os.close(parent)
                nxt = openat2(root_fd, "/".join(parts[: i + 1]), O_PATH, resolve)
            os.close(current)
            current = nxt
        return current
    except BaseException:
        os.close(current)
        raise


def fd_path(fd: int) -> str:
    """A path that names ``fd``'s file for ``mount(2)``."""
    return f"/proc/self/fd/{fd}"


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


__all__ = ["open_in_root", "fd_path", "is_dir", "openat2", "errno"]
