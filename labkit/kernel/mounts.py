"""Mounts: ``mount(2)``, ``umount2(2)`` and ``pivot_root(2)``.

The container's root is an OverlayFS mount; ``pivot_root`` makes it ``/``
and the host's root is then detached, so no path leads back to it (unlike
``chroot``, which a root process can escape).
"""
from __future__ import annotations

import ctypes
import os

from .libc import SYS, check, fsencode, libc

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    check(
        libc.mount(fsencode(source), fsencode(target), fsencode(fstype), flags, fsencode(data)),
        f"mount {fstype or source} on {target}",
        target,
    )


def umount(target: str, flags: int = 0) -> None:
    check(libc.umount2(fsencode(target), flags), f"umount {target}", target)


def make_private(path: str = "/") -> None:
    """Stop mount events from flowing between this namespace and the host."""
    mount(None, path, None, MS_REC | MS_PRIVATE)


def bind(source: str, target: str, readonly: bool = False, recursive: bool = True,
         extra: int = 0) -> None:
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly or extra:
        flags = MS_BIND | MS_REMOUNT | extra | (MS_RDONLY if readonly else 0)
        mount(None, target, None, flags)


def overlay(lowerdirs: list[str], upperdir: str, workdir: str, target: str) -> None:
    """Mount OverlayFS: ``lowerdirs`` are given top layer first, as the kernel wants."""
    data = f"lowerdir={':'.join(lowerdirs)},upperdir={upperdir},workdir={workdir}"
    from .userns import rootless

    if rootless():
        # In a user namespace overlay may not use trusted.* xattrs: its metadata goes to
        # user.overlay.* (kernel >= 5.11). Without it, removing a lower directory fails (EIO).
        data += ",userxattr"
    mount("overlay", target, "overlay", 0, data)


def pivot_root(new_root: str, put_old: str) -> None:
    check(libc.syscall(SYS["pivot_root"], fsencode(new_root), fsencode(put_old)), "pivot_root")


def enter_root(new_root: str) -> None:
    """Make ``new_root`` the root and drop every path to the old one.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one; a lazy
    unmount then removes it, as runc does, with no extra directory needed.
    """
    os.chdir(new_root)
    pivot_root(".", ".")
    umount(".", MNT_DETACH)
    os.chdir("/")


def locked_flags(path: str) -> int:
    """The flags of the mount at ``path`` that a user namespace may not clear on a remount
    (the kernel "locks" nosuid, nodev, noexec, atime flags of mounts it inherited)."""
    st = os.statvfs(path).f_flag
    out = 0
    for st_bit, ms_bit in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                           (os.ST_NOATIME, 1 << 10), (os.ST_NODIRATIME, 1 << 11), (os.ST_RELATIME, 1 << 21)):
        if st & st_bit:
            out |= ms_bit
    return out
