"""Linux namespaces: ``unshare(2)`` and ``setns(2)``.

A container is an ordinary process that was given new namespaces: its own
process numbers (pid), mount table (mnt), hostname (uts), System V IPC (ipc),
network stack (net) and cgroup root (cgroup). ``/proc/PID/ns/*`` shows which
namespace a process is in: two processes share a namespace when those links
are equal.
"""
from __future__ import annotations

import ctypes
import os
import platform
import signal

from .libc import check, libc

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# The name used in /proc/PID/ns/ for each flag.
FLAGS = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
    "time": CLONE_NEWTIME,
}

# What every labkit container gets (cgroup only where the kernel has it).
CONTAINER_NAMESPACES = ("mnt", "uts", "ipc", "net", "pid", "cgroup")


_available: set[str] | None = None


def available() -> set[str]:
    """Namespace types this kernel offers (from ``/proc/self/ns``), read once.

    Once: a process that made itself non-dumpable (a container's process before exec)
    may no longer list its own ``/proc/self/ns`` in a user namespace (the files then
    belong to the host's root), and would see no namespace at all to enter."""
    global _available
    if _available is None:
        try:
            names = set(os.listdir("/proc/self/ns"))
        except OSError:
            return set()
        _available = {n for n in FLAGS if n in names}
    return _available


def flags_for(names: tuple[str, ...] | list[str]) -> int:
    have = available()
    flags = 0
    for name in names:
        if name in have:
            flags |= FLAGS[name]
    return flags


_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
# PyDLL keeps the GIL held across the call, so the child starts with it, as after fork().
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


def clone(flags: int) -> int:
    """``clone(2)`` like fork (a copy of this process) but born in new namespaces.

    Returns 0 in the child and its pid in the parent. The child of a new PID
    namespace is its PID 1. Only for a single-threaded caller: unlike
    ``os.fork`` no at-fork hooks run in the child, which must exec or exit.
    """
    nr = _SYS_CLONE.get(platform.machine(), 56)
    pid = _pylibc.syscall(ctypes.c_long(nr), ctypes.c_ulong(flags | signal.SIGCHLD),
                          ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    if pid == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (pid: its next child)."""
    check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an open ``/proc/PID/ns/X``) refers to."""
    check(libc.setns(fd, nstype), "setns")


def ns_id(pid: int | str, name: str) -> str:
    """The namespace link, e.g. ``'pid:[4026531836]'``."""
    return os.readlink(f"/proc/{pid}/ns/{name}")


def enter(pid: int, names: tuple[str, ...] | list[str]) -> None:
    """Join the namespaces ``names`` of process ``pid`` (open all, then join)."""
    fds = []
    try:
        for name in names:
            if name in available():
                fds.append((os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), name))
        # mnt last: after it, /proc/PID may no longer be reachable
        for fd, name in sorted(fds, key=lambda item: item[1] == "mnt"):
            setns(fd, FLAGS[name])
    finally:
        for fd, _name in fds:
            os.close(fd)
