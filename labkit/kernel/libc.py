"""The C library, for the few syscalls Python 3.11's ``os`` lacks."""
from __future__ import annotations

import ctypes
import os
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# Syscall numbers that glibc has no wrapper for, per architecture.
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "openat2": 437, "capget": 125, "capset": 126},
    "aarch64": {"pivot_root": 41, "openat2": 437, "capget": 90, "capset": 91},
}
SYS = _SYSCALLS.get(platform.machine(), _SYSCALLS["x86_64"])


def check(result: int, what: str = "", path: str | None = None) -> int:
    """Raise :class:`OSError` with errno when a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}" if what else os.strerror(err), path)
    return result


def fsencode(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)
